import ArgumentParser
import Foundation
import KosmosHub

/// `kosmos pull ORG/NAME[@REVISION]`: a model repository from the Hugging Face Hub into the cache
/// huggingface_hub shares (docs/hub.md).
struct Pull: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Download a model from the Hugging Face Hub into the shared cache (huggingface_hub's layout).",
        discussion: """
        Files go to $HF_HUB_CACHE (default $HF_HOME/hub, ~/.cache/huggingface/hub), where Python's \
        huggingface_hub finds them and from where every --model ORG/NAME reads. Honours HF_ENDPOINT, \
        HF_TOKEN (or the token `huggingface-cli login` saved) and HF_HUB_OFFLINE. A partial file is \
        resumed; LFS files are checked against their SHA-256. Prints the snapshot folder.
        """
    )

    @Argument(help: "The repository: ORG/NAME or ORG/NAME@REVISION (a branch, tag or commit; default main).")
    var repository: String

    @Option(name: .customLong("include"), help: "Only files matching this pattern (fnmatch, as huggingface_hub's allow_patterns; repeatable), e.g. '*.json'.")
    var include: [String] = []

    @Option(help: "Files downloaded at once.")
    var jobs: Int = 4

    func validate() throws {
        guard HubRepository(repository) != nil else {
            throw ValidationError("'\(repository)' is not a Hub repository name: ORG/NAME or ORG/NAME@REVISION")
        }
        guard jobs >= 1 && jobs <= 32 else { throw ValidationError("--jobs takes 1…32, got \(jobs)") }
    }

    func run() throws {
        let snapshot = try HubDownload.pull(HubRepository(repository)!, include: include.map(Glob.init), jobs: jobs)
        print(snapshot.path)
    }
}

/// `--pull`, for every command that takes `--model`.
struct HubPullOption: ParsableArguments {
    @Flag(help: "With --model ORG/NAME: download (or bring up to date) the model into the Hub cache first, as `kosmos pull` does.")
    var pull = false

    /// A `--model` value as a directory: an existing path as it is; `ORG/NAME[@REVISION]` as its
    /// snapshot in the Hub cache (pulled first with --pull); anything else as a path, for the
    /// command's own "no such directory" error.
    func resolve(_ model: String) throws -> String {
        if FileManager.default.fileExists(atPath: model) { return model }
        guard let repository = HubRepository(model) else { return model }
        if pull { return try HubDownload.pull(repository, include: [], jobs: 4).path }
        let settings = try HubSettings()
        guard let snapshot = settings.cache.cachedSnapshot(repository) else { throw HubError.notCached(model) }
        return snapshot.path
    }
}

enum HubDownload {
    static func pull(_ repository: HubRepository, include: [Glob], jobs: Int) throws -> URL {
        let settings = try HubSettings()
        let display = PullDisplay(interactive: isatty(STDERR_FILENO) != 0)
        FileHandle.standardError.write(Data("pulling \(repository) from \(settings.endpoint.absoluteString) into \(settings.cache.root.path)\n".utf8))
        let snapshot = try HubClient(settings: settings, userAgent: "kosmos-swift/1 (+https://github.com)").pull(
            repository, include: include, jobs: jobs, progress: display.handle)
        display.finish()
        return snapshot
    }
}

/// Progress on standard error: on a terminal a bar per file being downloaded and one overall,
/// redrawn at most ten times a second; elsewhere a line as each file starts and ends.
final class PullDisplay: @unchecked Sendable {
    private struct FileState {
        var size: Int64?
        var done: Int64 = 0
    }

    private let interactive: Bool
    private let lock = NSLock()
    private let start = Date()
    private var files = 0
    private var finished = 0
    private var fetched = 0
    private var active: [String: FileState] = [:]
    private var order: [String] = []
    private var bytes: Int64 = 0
    private var drawnLines = 0
    private var lastDraw = Date.distantPast

    init(interactive: Bool) { self.interactive = interactive }

    var handle: @Sendable (PullEvent) -> Void { { [self] event in lock.withLock { update(event) } } }

    private func update(_ event: PullEvent) {
        switch event {
        case .listed(let count, let commit):
            files = count
            say("\(count) file\(count == 1 ? "" : "s") at commit \(commit)")
        case .started(let path, let size, let resumedAt):
            if active[path] == nil { order.append(path) }
            active[path] = FileState(size: size, done: resumedAt)
            if !interactive {
                let sizeText = size.map { " (\(formatByteCount($0))\(resumedAt > 0 ? ", resuming at \(formatByteCount(resumedAt))" : ""))" } ?? ""
                say("downloading \(path)\(sizeText)")
            }
        case .received(let path, let count):
            active[path]?.done += Int64(count)
            bytes += Int64(count)
        case .finished(let path, let downloaded):
            finished += 1
            if downloaded { fetched += 1 }
            active[path] = nil
            order.removeAll { $0 == path }
            if !interactive || downloaded { say("\(downloaded ? "downloaded" : "in the cache:") \(path)") }
        case .retrying(let path, let reason):
            say("\(path): \(reason); resuming")
        }
        draw(force: false)
    }

    func finish() {
        lock.withLock {
            draw(force: true, clearOnly: true)
            let seconds = Date().timeIntervalSince(start)
            let rate = seconds > 0 ? Double(bytes) / seconds : 0
            FileHandle.standardError.write(Data("\(finished) file\(finished == 1 ? "" : "s") ready (\(fetched) downloaded, \(formatByteCount(bytes)) in \(String(format: "%.1f", seconds)) s, \(formatByteCount(Int64(rate)))/s)\n".utf8))
        }
    }

    /// A line above the bars.
    private func say(_ line: String) {
        clear()
        FileHandle.standardError.write(Data((line + "\n").utf8))
        draw(force: true)
    }

    private func clear() {
        guard interactive, drawnLines > 0 else { return }
        FileHandle.standardError.write(Data(("\u{1B}[\(drawnLines)F\u{1B}[J").utf8))
        drawnLines = 0
    }

    private func draw(force: Bool, clearOnly: Bool = false) {
        guard interactive else { return }
        let now = Date()
        guard force || now.timeIntervalSince(lastDraw) >= 0.1 else { return }
        lastDraw = now
        clear()
        if clearOnly { return }
        var lines = order.map { path -> String in
            let state = active[path]!
            return PullDisplay.bar(label: path, done: state.done, total: state.size)
        }
        let seconds = max(now.timeIntervalSince(start), 1e-3)
        lines.append("[\(finished)/\(files) files] \(formatByteCount(bytes)) at \(formatByteCount(Int64(Double(bytes) / seconds)))/s")
        FileHandle.standardError.write(Data((lines.joined(separator: "\n") + "\n").utf8))
        drawnLines = lines.count
    }

    static func bar(label: String, done: Int64, total: Int64?) -> String {
        let name = label.count > 32 ? "…" + label.suffix(31) : label.padding(toLength: 32, withPad: " ", startingAt: 0)
        guard let total, total > 0 else { return "\(name) \(formatByteCount(done))" }
        let fraction = min(1, Double(done) / Double(total))
        let filled = Int(fraction * 24)
        return "\(name) [\(String(repeating: "#", count: filled))\(String(repeating: ".", count: 24 - filled))] \(String(format: "%3.0f%%", fraction * 100)) \(formatByteCount(done))/\(formatByteCount(total))"
    }
}
