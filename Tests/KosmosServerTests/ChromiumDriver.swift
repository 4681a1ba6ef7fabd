import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Headless Chromium driven through the DevTools protocol over a pipe (`--remote-debugging-pipe`:
/// the browser reads commands on fd 3 and writes replies on fd 4, each a JSON object ending in a
/// NUL), so no port is opened for it. Enough of the protocol for the chat page's test: a page
/// session, navigation, script evaluation, file inputs, screenshots.
final class ChromiumDriver {
    struct Failure: Error, CustomStringConvertible { let description: String }

    private let pid: pid_t
    private let commands: Int32
    private let replies: Int32
    private var buffer = [UInt8]()
    private var nextId = 0
    private let profile: URL
    private(set) var session: String?

    /// The browser executable: $CHROMIUM, else chromium or chromium-browser on the PATH.
    static func executable() -> String? {
        if let explicit = ProcessInfo.processInfo.environment["CHROMIUM"], !explicit.isEmpty { return explicit }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for folder in path.split(separator: ":") {
            for name in ["chromium", "chromium-browser", "google-chrome"] {
                let candidate = "\(folder)/\(name)"
                if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            }
        }
        return nil
    }

    init(width: Int = 1100, height: Int = 760) throws {
        guard let executable = Self.executable() else {
            throw Failure(description: "no chromium on the PATH (Debian: apt-get install chromium; scripts/test.sh installs it)")
        }
        profile = FileManager.default.temporaryDirectory.appendingPathComponent("kosmos-chromium-\(UUID().uuidString)")
        var toBrowser: [Int32] = [0, 0], fromBrowser: [Int32] = [0, 0]
        guard pipe(&toBrowser) == 0, pipe(&fromBrowser) == 0 else { throw Failure(description: "pipe failed") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, toBrowser[0], 3)
        posix_spawn_file_actions_adddup2(&actions, fromBrowser[1], 4)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let arguments = [executable, "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
                         "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
                         "--user-data-dir=\(profile.path)", "--window-size=\(width),\(height)", "about:blank"]
        var argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var child: pid_t = 0
        let spawned = posix_spawn(&child, executable, &actions, nil, &argv, environ)
        close(toBrowser[0])
        close(fromBrowser[1])
        guard spawned == 0 else {
            close(toBrowser[1]); close(fromBrowser[0])
            throw Failure(description: "could not start \(executable): \(String(cString: strerror(spawned)))")
        }
        pid = child
        commands = toBrowser[1]
        replies = fromBrowser[0]
    }

    deinit {
        close(commands)
        close(replies)
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        try? FileManager.default.removeItem(at: profile)
    }

    /// Sends one command and returns its `result` (events in between are skipped). The deadline
    /// only bounds a failure.
    @discardableResult
    func send(_ method: String, _ params: [String: Any] = [:], browserLevel: Bool = false, seconds: Double = 60) throws -> [String: Any] {
        nextId += 1
        var message: [String: Any] = ["id": nextId, "method": method, "params": params]
        if !browserLevel, let session { message["sessionId"] = session }
        var bytes = [UInt8](try JSONSerialization.data(withJSONObject: message))
        bytes.append(0)
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBufferPointer { write(commands, $0.baseAddress, $0.count) }
            guard written > 0 else { throw Failure(description: "chromium closed its command pipe") }
            offset += written
        }
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            let reply = try readMessage(deadline: deadline, waitingFor: method)
            guard reply["id"] as? Int == nextId else { continue }
            if let error = reply["error"] as? [String: Any] {
                throw Failure(description: "\(method): \(error["message"] ?? error)")
            }
            return reply["result"] as? [String: Any] ?? [:]
        }
    }

    private func readMessage(deadline: Date, waitingFor method: String) throws -> [String: Any] {
        while true {
            if let end = buffer.firstIndex(of: 0) {
                let data = Data(buffer[..<end])
                buffer.removeSubrange(...end)
                guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else { continue }
                return object
            }
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { throw Failure(description: "no reply from chromium to \(method)") }
            var descriptor = pollfd(fd: replies, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, Int32(min(left, 1) * 1000))
            if ready <= 0 { continue }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let count = read(replies, &chunk, chunk.count)
            guard count > 0 else { throw Failure(description: "chromium closed its reply pipe while waiting for \(method)") }
            buffer += chunk[..<count]
        }
    }

    /// A page to drive: a new target, attached in flattened mode (commands carry its session id).
    func openPage(_ url: String) throws {
        let target = try send("Target.createTarget", ["url": "about:blank"], browserLevel: true)
        guard let id = target["targetId"] as? String else { throw Failure(description: "no targetId") }
        let attached = try send("Target.attachToTarget", ["targetId": id, "flatten": true], browserLevel: true)
        session = attached["sessionId"] as? String
        try send("Page.enable")
        try send("Runtime.enable")
        try send("Page.navigate", ["url": url])
    }

    /// The value of a script expression (promises awaited).
    func evaluate(_ expression: String) throws -> Any? {
        let result = try send("Runtime.evaluate", ["expression": expression, "returnByValue": true, "awaitPromise": true])
        if let exception = result["exceptionDetails"] as? [String: Any] {
            throw Failure(description: "script failed: \(expression): \(exception["text"] ?? exception)")
        }
        return (result["result"] as? [String: Any])?["value"]
    }

    /// Polls `expression` until it is truthy; the deadline only bounds a failure.
    func waitFor(_ expression: String, seconds: Double = 60) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            if let value = try evaluate(expression), (value as? Bool) ?? true, !(value is NSNull) { return }
            guard Date() < deadline else { throw Failure(description: "waited \(seconds) s for \(expression)") }
            usleep(20_000)
        }
    }

    /// Sets the files of an `<input type=file>` found by `selector` (as a user choosing them).
    func setFiles(_ selector: String, _ paths: [String]) throws {
        let found = try send("Runtime.evaluate", ["expression": "document.querySelector(\(Self.quoted(selector)))"])
        guard let object = (found["result"] as? [String: Any])?["objectId"] as? String else {
            throw Failure(description: "no element \(selector)")
        }
        try send("DOM.setFileInputFiles", ["files": paths, "objectId": object])
    }

    func screenshot() throws -> Data {
        let shot = try send("Page.captureScreenshot", ["format": "png"])
        guard let text = shot["data"] as? String, let data = Data(base64Encoded: text) else { throw Failure(description: "no screenshot") }
        return data
    }

    static func quoted(_ text: String) -> String {
        String(decoding: try! JSONSerialization.data(withJSONObject: [text]), as: UTF8.self).dropFirst().dropLast().description
    }
}
