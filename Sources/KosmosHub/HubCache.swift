import Foundation

/// A model repository on the Hub: `ORG/NAME`, with an optional `@REVISION` (branch, tag or commit).
public struct HubRepository: Equatable, Hashable, Sendable, CustomStringConvertible {
    public let id: String
    public let revision: String

    public static let defaultRevision = "main"

    /// Parses `ORG/NAME` or `ORG/NAME@REVISION`; nil when the text is not of that form (a local
    /// path such as `./model`, `/data/model` or `runs/demo/latest`).
    public init?(_ text: String) {
        var name = Substring(text)
        var revision = HubRepository.defaultRevision
        if let at = text.firstIndex(of: "@") {
            name = text[..<at]
            revision = String(text[text.index(after: at)...])
            guard !revision.isEmpty, !revision.contains("/"), !revision.hasPrefix(".") else { return nil }
        }
        let parts = name.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy(HubRepository.isValidPart) else { return nil }
        id = String(name)
        self.revision = revision
    }

    public init(id: String, revision: String = HubRepository.defaultRevision) {
        self.id = id
        self.revision = revision
    }

    /// The Hub's rule for a namespace or name: letters, digits, `-`, `_`, `.`; not starting or
    /// ending with `-` or `.`, no `--` or `..`.
    static func isValidPart(_ part: Substring) -> Bool {
        guard !part.isEmpty, part.count <= 96 else { return false }
        guard part.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }) else { return false }
        guard let first = part.first, let last = part.last, !"-.".contains(first), !"-.".contains(last) else { return false }
        return !part.contains("--") && !part.contains("..")
    }

    public var description: String { revision == HubRepository.defaultRevision ? id : "\(id)@\(revision)" }

    /// The cache's folder name: `models--ORG--NAME`.
    public var folderName: String { "models--" + id.replacingOccurrences(of: "/", with: "--") }

    /// Whether the revision is a full commit hash (40 hexadecimal digits), which needs no ref.
    public var revisionIsCommit: Bool { HubRepository.isCommitHash(revision) }

    static func isCommitHash(_ text: String) -> Bool {
        text.count == 40 && text.allSatisfy { $0.isHexDigit && !$0.isUppercase }
    }
}

/// The Hub cache as huggingface_hub lays it out, so that a file either library downloaded serves
/// both: `ROOT/models--ORG--NAME/blobs/ETAG` holds the bytes, `snapshots/COMMIT/PATH` is a relative
/// symbolic link to the blob, `refs/REVISION` holds the commit a branch or tag pointed to when it
/// was last resolved. A download in progress is `blobs/ETAG.incomplete`, never in `snapshots/`.
public struct HubCache: Sendable {
    public let root: URL

    public init(root: URL) { self.root = root }

    /// The root huggingface_hub would use: `HF_HUB_CACHE`, else `HF_HOME/hub`, else
    /// `XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        root = URL(fileURLWithPath: HubCache.expand(HubCache.rootPath(environment)), isDirectory: true)
    }

    static func rootPath(_ environment: [String: String]) -> String {
        if let cache = environment["HF_HUB_CACHE"], !cache.isEmpty { return cache }
        if let cache = environment["HUGGINGFACE_HUB_CACHE"], !cache.isEmpty { return cache }
        return (HubCache.home(environment) as NSString).appendingPathComponent("hub")
    }

    /// `HF_HOME`, else `XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`.
    static func home(_ environment: [String: String]) -> String {
        if let home = environment["HF_HOME"], !home.isEmpty { return expand(home) }
        let xdg = environment["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? "~/.cache"
        return (expand(xdg) as NSString).appendingPathComponent("huggingface")
    }

    static func expand(_ path: String) -> String { (path as NSString).expandingTildeInPath }

    public func folder(_ repository: HubRepository) -> URL {
        root.appendingPathComponent(repository.folderName, isDirectory: true)
    }

    public func blob(_ repository: HubRepository, etag: String) -> URL {
        folder(repository).appendingPathComponent("blobs/\(etag)")
    }

    public func snapshot(_ repository: HubRepository, commit: String) -> URL {
        folder(repository).appendingPathComponent("snapshots/\(commit)", isDirectory: true)
    }

    /// The commit a revision resolves to from the cache alone: the revision itself when it is a
    /// commit hash, else the content of `refs/REVISION`.
    public func cachedCommit(_ repository: HubRepository) -> String? {
        if repository.revisionIsCommit { return repository.revision }
        let ref = folder(repository).appendingPathComponent("refs/\(repository.revision)")
        guard let text = try? String(contentsOf: ref, encoding: .utf8) else { return nil }
        let commit = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return HubRepository.isCommitHash(commit) ? commit : nil
    }

    /// The snapshot folder of a cached revision, if it holds a `config.json` or any file.
    public func cachedSnapshot(_ repository: HubRepository) -> URL? {
        guard let commit = cachedCommit(repository) else { return nil }
        let folder = snapshot(repository, commit: commit)
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: folder.path), !entries.isEmpty else { return nil }
        return folder
    }

    /// Records `refs/REVISION` → commit (atomically: a reader never sees a half-written ref).
    public func writeRef(_ repository: HubRepository, commit: String) throws {
        guard !repository.revisionIsCommit else { return }
        let ref = folder(repository).appendingPathComponent("refs/\(repository.revision)")
        if (try? String(contentsOf: ref, encoding: .utf8)) == commit { return }
        try FileManager.default.createDirectory(at: ref.deletingLastPathComponent(), withIntermediateDirectories: true)
        let temporary = ref.deletingLastPathComponent().appendingPathComponent(".\(ref.lastPathComponent).\(UUID().uuidString.prefix(8)).tmp")
        try Data(commit.utf8).write(to: temporary)
        guard rename(temporary.path, ref.path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: temporary)
            throw HubError.io(path: ref.path, reason: reason)
        }
    }

    /// Makes `snapshots/COMMIT/PATH` a relative link to `blobs/ETAG` (replacing any older link).
    public func link(_ repository: HubRepository, commit: String, path: String, etag: String) throws {
        let pointer = snapshot(repository, commit: commit).appendingPathComponent(path)
        let directory = pointer.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        // From snapshots/COMMIT/a/b/file up to the repository folder: one ".." per level.
        let depth = path.split(separator: "/").count + 1
        let target = String(repeating: "../", count: depth) + "blobs/\(etag)"
        let temporary = directory.appendingPathComponent(".\(pointer.lastPathComponent).\(UUID().uuidString.prefix(8)).link")
        guard symlink(target, temporary.path) == 0 else { throw HubError.io(path: temporary.path, reason: String(cString: strerror(errno))) }
        guard rename(temporary.path, pointer.path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary.path)
            throw HubError.io(path: pointer.path, reason: reason)
        }
    }

    /// Holds `.locks/models--ORG--NAME/ETAG.lock` exclusively (flock, as Python's filelock on
    /// Unix) until `unlock()`: two pulls of one file, by us or by huggingface_hub, take turns.
    public func lockBlob(_ repository: HubRepository, etag: String) throws -> BlobLock {
        let folder = root.appendingPathComponent(".locks/\(repository.folderName)", isDirectory: true)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let path = folder.appendingPathComponent("\(etag).lock").path
        let descriptor = open(path, O_RDWR | O_CREAT, 0o644)
        guard descriptor >= 0 else { throw HubError.io(path: path, reason: String(cString: strerror(errno))) }
        while flock(descriptor, LOCK_EX) != 0 {
            guard errno == EINTR else {
                let reason = String(cString: strerror(errno))
                close(descriptor)
                throw HubError.io(path: path, reason: reason)
            }
        }
        return BlobLock(descriptor: descriptor)
    }

    /// Whether the snapshot already holds `path` as a link to an existing blob.
    public func hasFile(_ repository: HubRepository, commit: String, path: String) -> Bool {
        FileManager.default.fileExists(atPath: snapshot(repository, commit: commit).appendingPathComponent(path).path)
    }
}

/// An exclusive lock on one blob (`HubCache.lockBlob`).
public struct BlobLock {
    let descriptor: Int32

    public func unlock() {
        _ = flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}
