import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A minimal blocking HTTP/1.1 client for loopback only (127.0.0.1), for the server's tests and
/// `kosmos bench serve`: one connection per request (`Connection: close`), the response read to the
/// end of the connection; chunked bodies are de-chunked.
public enum LoopbackClient {
    public struct Reply: Sendable {
        public let status: Int
        public let headers: [String: String]
        public let body: Data
        public var text: String { String(decoding: body, as: UTF8.self) }
    }

    public enum Failure: Error, CustomStringConvertible {
        case connect(Int32), io(String), malformed(String)
        public var description: String {
            switch self {
            case .connect(let e): return "connect to 127.0.0.1 failed (errno \(e))"
            case .io(let s): return "I/O: \(s)"
            case .malformed(let s): return "malformed response: \(s)"
            }
        }
    }

    /// Sends one request and reads the whole response.
    public static func send(port: Int, method: String = "POST", path: String, body: Data? = nil,
                            headers: [String: String] = [:], timeout: Double = 120) throws -> Reply {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        var all = headers
        if let body {
            all["Content-Length"] = "\(body.count)"
            if all["Content-Type"] == nil { all["Content-Type"] = "application/json" }
        }
        for (name, value) in all.sorted(by: { $0.key < $1.key }) { head += "\(name): \(value)\r\n" }
        head += "\r\n"
        return try parse(exchange(port: port, bytes: Data(head.utf8) + (body ?? Data()), timeout: timeout))
    }

    /// Sends raw bytes and reads until the server closes (or `readLimit` bytes, then hangs up).
    public static func exchange(port: Int, bytes: Data, timeout: Double = 120, readLimit: Int = .max) throws -> Data {
        let connection = try Connection(port: port, timeout: timeout)
        defer { connection.close() }
        try connection.send(bytes)
        return try connection.read(limit: readLimit)
    }

    /// One open connection, for tests that act between sending and hanging up (a client that
    /// leaves mid-request). Closed by `close()` or when released.
    public final class Connection {
        private var fd: Int32

        /// Connects to 127.0.0.1:`port`; `timeout` bounds each send and receive.
        public init(port: Int, timeout: Double = 120) throws {
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw Failure.connect(errno) }
            var time = timeval(tv_sec: Int(timeout), tv_usec: .init((timeout - Double(Int(timeout))) * 1e6))
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard connected == 0 else {
                let error = errno
                close()
                throw Failure.connect(error)
            }
        }

        deinit { close() }

        public func send(_ bytes: Data) throws {
            var sent = 0
            try bytes.withUnsafeBytes { raw in
                while sent < raw.count {
                    let n = Glibc.send(fd, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
                    // The server may answer (413) and close before reading everything: stop sending then.
                    if n <= 0 { if sent > 0 { return }; throw Failure.io("send failed (errno \(errno))") }
                    sent += n
                }
            }
        }

        /// Reads until the server closes or `limit` bytes have come.
        public func read(limit: Int = .max) throws -> Data {
            var received = Data()
            var buffer = [UInt8](repeating: 0, count: 65536)
            while received.count < limit {
                let n = recv(fd, &buffer, min(buffer.count, limit - received.count), 0)
                if n == 0 { break }
                if n < 0 {
                    if errno == EINTR { continue }
                    if errno == ECONNRESET && !received.isEmpty { break }
                    throw Failure.io("recv failed (errno \(errno))")
                }
                received.append(contentsOf: buffer[0..<n])
            }
            return received
        }

        public func close() {
            if fd >= 0 { _ = Glibc.close(fd) }
            fd = -1
        }
    }

    /// Splits a raw response into status, headers and (de-chunked) body.
    public static func parse(_ data: Data) throws -> Reply {
        let separator = Data("\r\n\r\n".utf8)
        guard let split = data.range(of: separator) else { throw Failure.malformed("no end of headers in \(data.count) bytes") }
        let headLines = String(decoding: data[..<split.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = headLines.first?.split(separator: " ") ?? []
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { throw Failure.malformed("status line \(headLines.first ?? "")") }
        var headers: [String: String] = [:]
        for line in headLines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body = Data(data[split.upperBound...])
        if headers["transfer-encoding"]?.lowercased() == "chunked" {
            var out = Data()
            var rest = body[...]
            while let lineEnd = rest.range(of: Data("\r\n".utf8)) {
                let sizeText = String(decoding: rest[..<lineEnd.lowerBound], as: UTF8.self).split(separator: ";").first ?? ""
                guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else { break }
                if size == 0 { break }
                let start = lineEnd.upperBound
                guard rest.distance(from: start, to: rest.endIndex) >= size else { out += rest[start...]; break }
                let end = rest.index(start, offsetBy: size)
                out += rest[start..<end]
                rest = rest[min(rest.endIndex, rest.index(end, offsetBy: 2, limitedBy: rest.endIndex) ?? rest.endIndex)...]
            }
            body = out
        }
        return Reply(status: status, headers: headers, body: body)
    }

    /// The JSON objects of a server-sent-events body (`data: {...}` lines), and whether it ended with `data: [DONE]`.
    public static func events(_ body: Data) -> (objects: [[String: Any]], done: Bool) {
        var objects: [[String: Any]] = []
        var done = false
        for line in String(decoding: body, as: UTF8.self).components(separatedBy: "\n") where line.hasPrefix("data: ") {
            let payload = line.dropFirst(6)
            if payload == "[DONE]" { done = true; continue }
            if let object = try? JSONSerialization.jsonObject(with: Data(payload.utf8)) as? [String: Any] { objects.append(object) }
        }
        return (objects, done)
    }
}
