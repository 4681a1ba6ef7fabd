import Foundation
import KosmosHub
#if canImport(Glibc)
import Glibc
#endif

/// A loopback HTTP server that answers like the Hugging Face Hub, for the pull tests: model info
/// (`/api/models/ORG/NAME/revision/REV`), `resolve/REV/PATH` with the Hub's headers (small files
/// answered directly with their git ETag, LFS files redirected to a storage host with
/// `X-Linked-Etag`/`X-Linked-Size`), storage downloads with Range, gated repositories, renamed
/// ones, and faults on demand: a connection dropped mid-file, bytes that do not match their hash.
/// It binds port 0 (the kernel picks a free one), one thread per connection, `Connection: close`.
final class FakeHub: @unchecked Sendable {
    struct Repository {
        var commit: String
        var files: [String: Data]
        /// Paths stored with LFS (their ETag is the SHA-256 of the bytes).
        var lfs: Set<String> = []
        /// Branches and tags besides `main`.
        var refs: [String: String] = [:]
        var gated = false
    }

    struct Request {
        let method: String
        let path: String
        let headers: [String: String]
    }

    let token = "hf_test_token"
    private let lock = NSLock()
    private var repositories: [String: Repository] = [:]
    private var renamed: [String: String] = [:]
    private var requestLog: [Request] = []
    /// Storage downloads of a blob (by SHA-256) that send half the bytes and close, counted down.
    private var drops: [String: Int] = [:]
    /// Blobs served with their last byte changed (the ETag then no longer matches).
    private var corrupt: Set<String> = []
    private var listener: Int32 = -1
    private(set) var port: UInt16 = 0

    var endpoint: URL { URL(string: "http://127.0.0.1:\(port)")! }

    init() throws {
        listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard listener >= 0 else { throw POSIXError(.EIO) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listener, 64) == 0 else { close(listener); throw POSIXError(.EADDRINUSE) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        port = UInt16(bigEndian: address.sin_port)
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    func add(_ id: String, _ repository: Repository) { lock.withLock { repositories[id] = repository } }
    func rename(_ old: String, to new: String) { lock.withLock { renamed[old] = new } }
    func dropConnection(sha256: String, times: Int) { lock.withLock { drops[sha256] = times } }
    func corruptBlob(sha256: String) { lock.withLock { _ = corrupt.insert(sha256) } }
    var requests: [Request] { lock.withLock { requestLog } }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 { return }
            let thread = Thread { [self] in serve(client) }
            thread.start()
        }
    }

    private func serve(_ client: Int32) {
        defer { close(client) }
        var buffer = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 4096)
        while !buffer.containsHeaderEnd {
            let count = read(client, &chunk, chunk.count)
            if count <= 0 { return }
            buffer += chunk[0 ..< count]
        }
        let head = String(decoding: buffer, as: UTF8.self).components(separatedBy: "\r\n")
        let parts = head[0].split(separator: " ")
        guard parts.count >= 2 else { return }
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let request = Request(method: String(parts[0]), path: String(parts[1]), headers: headers)
        lock.withLock { requestLog.append(request) }
        let reply = answer(request)
        var text = "HTTP/1.1 \(reply.status) \(reply.status < 400 ? "OK" : "Error")\r\n"
        var replyHeaders = reply.headers
        replyHeaders["Content-Length"] = replyHeaders["Content-Length"] ?? String(reply.body.count)
        replyHeaders["Connection"] = "close"
        for (name, value) in replyHeaders.sorted(by: { $0.key < $1.key }) { text += "\(name): \(value)\r\n" }
        text += "\r\n"
        send(client, Data(text.utf8))
        if request.method != "HEAD" { send(client, reply.body) }
    }

    private func send(_ client: Int32, _ data: Data) {
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = write(client, raw.baseAddress! + offset, raw.count - offset)
                if written <= 0 { return }
                offset += written
            }
        }
    }

    private struct Reply {
        var status: Int
        var headers: [String: String] = [:]
        var body = Data()
    }

    private func error(_ status: Int, _ code: String) -> Reply {
        Reply(status: status, headers: ["X-Error-Code": code, "X-Error-Message": code], body: Data("{\"error\":\"\(code)\"}".utf8))
    }

    private func answer(_ request: Request) -> Reply {
        lock.lock(); defer { lock.unlock() }
        let path = request.path.removingPercentEncoding ?? request.path
        let segments = path.split(separator: "?")[0].split(separator: "/").map(String.init)
        if segments.count >= 6, segments[0] == "api", segments[1] == "models", segments[4] == "revision" {
            let id = segments[2] + "/" + segments[3]
            guard let repository = repositories[id] else { return error(404, "RepoNotFound") }
            guard let commit = resolve(repository, segments[5]) else { return error(404, "RevisionNotFound") }
            let siblings = repository.files.keys.sorted().map { ["rfilename": $0] }
            let json: [String: Any] = ["id": id, "sha": commit, "siblings": siblings, "gated": repository.gated]
            return Reply(status: 200, headers: ["Content-Type": "application/json"], body: try! JSONSerialization.data(withJSONObject: json))
        }
        if segments.count >= 5, segments[2] == "resolve" {
            let id = segments[0] + "/" + segments[1]
            if let new = renamed[id] {
                let rest = segments.dropFirst(2).joined(separator: "/")
                return Reply(status: 307, headers: ["Location": "/\(new)/\(rest)"])
            }
            guard let repository = repositories[id] else { return error(404, "RepoNotFound") }
            guard let commit = resolve(repository, segments[3]) else { return error(404, "RevisionNotFound") }
            let file = segments.dropFirst(4).joined(separator: "/")
            guard let bytes = repository.files[file] else { return error(404, "EntryNotFound") }
            if repository.gated, request.headers["authorization"] != "Bearer \(token)" { return error(401, "GatedRepo") }
            var headers = ["X-Repo-Commit": commit]
            if repository.lfs.contains(file) {
                let sha = SHA256.hex(of: bytes)
                headers["X-Linked-Etag"] = "\"\(sha)\""
                headers["X-Linked-Size"] = String(bytes.count)
                headers["ETag"] = "W/\"\(String(sha.prefix(40)))\""
                // Another host name for the same server: the token must not follow the file there.
                headers["Location"] = "http://localhost:\(port)/cdn/\(sha)?signature=fake"
                headers["Content-Length"] = "0"
                return Reply(status: 302, headers: headers)
            }
            headers["ETag"] = "\"\(String(SHA256.hex(of: Data("blob \(bytes.count)\0".utf8) + bytes).prefix(40)))\""
            return Reply(status: 200, headers: headers, body: bytes)
        }
        if segments.count == 2, segments[0] == "cdn" {
            let sha = segments[1]
            guard var bytes = repositories.values.lazy.flatMap({ $0.files.values }).first(where: { SHA256.hex(of: $0) == sha }) else {
                return error(404, "NoSuchKey")
            }
            if corrupt.contains(sha), !bytes.isEmpty { bytes[bytes.count - 1] ^= 0xFF }
            var start = 0
            var status = 200
            var headers: [String: String] = [:]
            if let range = request.headers["range"], range.hasPrefix("bytes="), range.hasSuffix("-"),
               let from = Int(range.dropFirst(6).dropLast()) {
                guard from < bytes.count else { return Reply(status: 416, headers: ["Content-Range": "bytes */\(bytes.count)"]) }
                start = from
                status = 206
                headers["Content-Range"] = "bytes \(from)-\(bytes.count - 1)/\(bytes.count)"
            }
            var body = bytes.subdata(in: start ..< bytes.count)
            headers["Content-Length"] = String(body.count)
            if let left = drops[sha], left > 0, request.method == "GET" {
                drops[sha] = left - 1
                body = body.prefix(body.count / 2)
            }
            return Reply(status: status, headers: headers, body: body)
        }
        return error(404, "NotFound")
    }

    private func resolve(_ repository: Repository, _ revision: String) -> String? {
        if revision == "main" || revision == repository.commit { return repository.commit }
        if repository.refs.values.contains(revision) { return revision }
        return repository.refs[revision]
    }
}

private extension Array where Element == UInt8 {
    var containsHeaderEnd: Bool {
        guard count >= 4 else { return false }
        for i in 0 ... count - 4 where self[i] == 13 && self[i + 1] == 10 && self[i + 2] == 13 && self[i + 3] == 10 { return true }
        return false
    }
}
