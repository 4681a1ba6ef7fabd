import Foundation

extension HubClient {
    /// Downloads the files of `repository` that match `include` (all when empty) into the cache and
    /// returns the snapshot folder. Files already in the snapshot are not asked for again; a blob
    /// another snapshot (or huggingface_hub) downloaded is linked, not downloaded; a partial blob
    /// (`.incomplete`) is resumed with a Range request. `jobs` files download at once. The ref
    /// (`refs/REVISION`) is written last, so a pull that stops early leaves the revision where
    /// it was.
    public func pull(_ repository: HubRepository, include: [Glob] = [], jobs: Int = 4,
                     progress: @escaping @Sendable (PullEvent) -> Void = { _ in }) throws -> URL {
        if settings.offline {
            if let snapshot = cache.cachedSnapshot(repository) { return snapshot }
            throw HubError.offline("'\(repository)'")
        }
        let (commit, listed) = try modelInfo(repository)
        let files = include.isEmpty ? listed : listed.filter { name in include.contains { $0.matches(name) } }
        if files.isEmpty {
            if include.isEmpty { throw HubError.protocolError("repository '\(repository.id)' has no files at \(repository.revision)") }
            throw HubError.noFilesMatched(repository: repository.id, patterns: include.map(\.pattern))
        }
        progress(.listed(files: files.count, commit: commit))
        try FileManager.default.createDirectory(at: cache.snapshot(repository, commit: commit), withIntermediateDirectories: true)

        let queue = WorkQueue(files)
        DispatchQueue.concurrentPerform(iterations: max(1, min(jobs, files.count))) { _ in
            while let path = queue.next() {
                do {
                    try fetch(repository, commit: commit, path: path, progress: progress)
                } catch {
                    queue.fail(error)
                }
            }
        }
        if let firstError = queue.firstError { throw firstError }
        try cache.writeRef(repository, commit: commit)
        return cache.snapshot(repository, commit: commit)
    }

    /// One file into `snapshots/COMMIT/PATH`.
    func fetch(_ repository: HubRepository, commit: String, path: String, progress: @escaping @Sendable (PullEvent) -> Void) throws {
        guard !path.split(separator: "/").contains(where: { $0 == ".." || $0 == "." }), !path.hasPrefix("/") else {
            throw HubError.protocolError("the Hub listed '\(path)', which is not a path inside the repository")
        }
        if cache.hasFile(repository, commit: commit, path: path) {
            progress(.finished(path: path, downloaded: false))
            return
        }
        let file = try fileMetadata(repository, revision: commit, path: path)
        let blob = cache.blob(repository, etag: file.etag)
        let manager = FileManager.default
        // One writer per blob, across processes (huggingface_hub takes the same lock file).
        let lock = try cache.lockBlob(repository, etag: file.etag)
        defer { lock.unlock() }
        if let attributes = try? manager.attributesOfItem(atPath: blob.path),
           file.size == nil || (attributes[.size] as? NSNumber)?.int64Value == file.size {
            try cache.link(repository, commit: commit, path: path, etag: file.etag)
            progress(.finished(path: path, downloaded: false))
            return
        }
        try manager.createDirectory(at: blob.deletingLastPathComponent(), withIntermediateDirectories: true)
        let partial = URL(fileURLWithPath: blob.path + ".incomplete")
        var attempt = 0
        var digest: String?
        while true {
            attempt += 1
            do {
                digest = try download(file, repository: repository, path: path, to: partial, progress: progress)
                break
            } catch let error as HubError {
                // A dropped connection or a Hub that is briefly unwell (429, 5xx) is tried again.
                guard attempt < settings.attempts else { throw error }
                switch error {
                case .network(_, let reason): progress(.retrying(path: path, reason: reason))
                case .http(_, let status, _) where status == 429 || status >= 500: progress(.retrying(path: path, reason: "HTTP \(status)"))
                default: throw error
                }
            }
        }
        try verify(partial, file: file, digest: digest, path: path)
        guard rename(partial.path, blob.path) == 0 else { throw HubError.io(path: blob.path, reason: String(cString: strerror(errno))) }
        try cache.link(repository, commit: commit, path: path, etag: file.etag)
        progress(.finished(path: path, downloaded: true))
    }

    /// Appends the rest of the file to `partial` (a Range request from its current size) and
    /// returns the SHA-256 of the whole file for an LFS file (the bytes already there hashed
    /// first, the rest as it arrives: no second pass over the file).
    private func download(_ file: HubFileMetadata, repository: HubRepository, path: String, to partial: URL,
                          progress: @escaping @Sendable (PullEvent) -> Void) throws -> String? {
        let manager = FileManager.default
        var have = ((try? manager.attributesOfItem(atPath: partial.path))?[.size] as? NSNumber)?.int64Value ?? 0
        if let size = file.size {
            if have > size { try? manager.removeItem(at: partial); have = 0 }
            if have == size, size > 0 { return file.isLFS ? try HubClient.sha256(of: partial) : nil }
            try checkSpace(for: size - have, at: partial)
        }
        if !manager.fileExists(atPath: partial.path) { _ = manager.createFile(atPath: partial.path, contents: nil) }
        guard let handle = FileHandle(forUpdatingAtPath: partial.path) else {
            throw HubError.io(path: partial.path, reason: "cannot be opened for writing")
        }
        defer { try? handle.close() }
        have = Int64(try handle.seekToEnd())
        var hasher: SHA256? = file.isLFS ? SHA256() : nil
        if hasher != nil, have > 0 { hasher = try HubClient.sha256State(of: partial) }
        var headers = authorization(for: file.location)
        if have > 0 { headers["Range"] = "bytes=\(have)-" }
        progress(.started(path: path, size: file.size, resumedAt: have))
        var started = false
        let reply = try http.download(file.location, headers: headers) { reply, data in
            if !started {
                started = true
                // 206 continues the partial file; anything else sends the whole file again.
                if reply.status != 206, have > 0 {
                    try handle.truncate(atOffset: 0)
                    have = 0
                    if hasher != nil { hasher = SHA256() }
                }
            }
            do { try handle.write(contentsOf: data) } catch {
                try? handle.close()
                try? manager.removeItem(at: partial)
                let available = self.settings.freeBytes(partial.deletingLastPathComponent().path) ?? 0
                if (error as NSError).code == Int(ENOSPC) || (error as NSError).code == NSFileWriteOutOfSpaceError {
                    throw HubError.diskFull(path: partial.path, needed: (file.size ?? 0) - have, available: available)
                }
                throw HubError.io(path: partial.path, reason: error.localizedDescription)
            }
            have += Int64(data.count)
            if hasher != nil { data.withUnsafeBytes { hasher!.update($0) } }
            progress(.received(path: path, bytes: data.count))
        }
        if reply.status == 416, have > 0 {
            // The range starts at or past the end: start over.
            try handle.truncate(atOffset: 0)
            throw HubError.network(url: file.location.absoluteString, reason: "the server refused to resume the file")
        }
        guard (200 ..< 300).contains(reply.status) else {
            try check(reply, repository: repository, path: path)
            throw HubError.http(url: file.location.absoluteString, status: reply.status, message: "")
        }
        if let size = file.size, have < size {
            throw HubError.network(url: file.location.absoluteString, reason: "the connection closed after \(have) of \(size) bytes")
        }
        return hasher?.finalizeHex()
    }

    /// Size, and for an LFS file the SHA-256; a file that fails either is removed.
    private func verify(_ partial: URL, file: HubFileMetadata, digest: String?, path: String) throws {
        let actual = ((try? FileManager.default.attributesOfItem(atPath: partial.path))?[.size] as? NSNumber)?.int64Value ?? -1
        if let size = file.size, actual != size {
            try? FileManager.default.removeItem(at: partial)
            throw HubError.sizeMismatch(path: path, expected: size, actual: actual)
        }
        guard file.isLFS, let digest else { return }
        if digest != file.etag.lowercased() {
            try? FileManager.default.removeItem(at: partial)
            throw HubError.checksumMismatch(path: path, expected: file.etag.lowercased(), actual: digest)
        }
    }

    static func sha256(of url: URL) throws -> String {
        var hasher = try sha256State(of: url)
        return hasher.finalizeHex()
    }

    static func sha256State(of url: URL) throws -> SHA256 {
        guard let handle = FileHandle(forReadingAtPath: url.path) else { throw HubError.io(path: url.path, reason: "cannot be read") }
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            chunk.withUnsafeBytes { hasher.update($0) }
        }
        return hasher
    }

    private func checkSpace(for bytes: Int64, at url: URL) throws {
        let folder = url.deletingLastPathComponent().path
        guard bytes > 0, let free = settings.freeBytes(folder) else { return }
        if free < bytes { throw HubError.diskFull(path: folder, needed: bytes, available: free) }
    }
}

/// The files still to fetch, handed to the workers one at a time; the first failure stops them.
private final class WorkQueue: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String]
    private var index = 0
    private var error: Error?

    init(_ items: [String]) { self.items = items }

    func next() -> String? {
        lock.lock(); defer { lock.unlock() }
        guard error == nil, index < items.count else { return nil }
        index += 1
        return items[index - 1]
    }

    func fail(_ failure: Error) {
        lock.lock(); defer { lock.unlock() }
        if error == nil { error = failure }
    }

    var firstError: Error? {
        lock.lock(); defer { lock.unlock() }
        return error
    }
}
