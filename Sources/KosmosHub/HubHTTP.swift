import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// What a request came back with: the status, the headers (looked up case-insensitively) and,
/// for requests not streamed to a file, the body.
public struct HTTPReply {
    public let status: Int
    public let url: URL
    let response: HTTPURLResponse?
    public var body: Data

    public func header(_ name: String) -> String? { response?.value(forHTTPHeaderField: name) }
}

/// Blocking HTTP requests over URLSession (libcurl on Linux: HTTPS, proxies from the usual
/// variables), called from the pull's worker threads. Each call runs its own session so that a
/// delegate sees only its own task.
final class HubHTTP: Sendable {
    let userAgent: String
    let timeout: TimeInterval

    init(userAgent: String, timeout: TimeInterval) {
        self.userAgent = userAgent
        self.timeout = timeout
    }

    /// A request whose body is small (the API's JSON, a HEAD). Redirects are returned, not
    /// followed, when `followRedirects` is false.
    func send(_ method: String, _ url: URL, headers: [String: String], followRedirects: Bool) throws -> HTTPReply {
        let task = Transfer(followRedirects: followRedirects, sink: nil)
        return try task.run(request(method, url, headers: headers), timeout: timeout)
    }

    /// A GET whose body goes to `sink` as it arrives (redirects followed); `sink` may throw to
    /// stop the transfer (a full disk). The reply's body is empty unless the status is an error.
    func download(_ url: URL, headers: [String: String], sink: @escaping (HTTPReply, Data) throws -> Void) throws -> HTTPReply {
        let task = Transfer(followRedirects: true, sink: sink)
        return try task.run(request("GET", url, headers: headers), timeout: timeout)
    }

    private func request(_ method: String, _ url: URL, headers: [String: String]) -> URLRequest {
        var request = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: timeout)
        request.httpMethod = method
        request.setValue(userAgent, forHTTPHeaderField: "User-Agent")
        // The real size of a file, never a compressed one (as huggingface_hub asks).
        request.setValue("identity", forHTTPHeaderField: "Accept-Encoding")
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        return request
    }
}

/// One request's delegate: collects the reply, streams a successful body to the sink.
private final class Transfer: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    let followRedirects: Bool
    let sink: ((HTTPReply, Data) throws -> Void)?
    let done = DispatchSemaphore(value: 0)
    var reply: HTTPReply?
    var failure: Error?
    var sinkError: Error?

    init(followRedirects: Bool, sink: ((HTTPReply, Data) throws -> Void)?) {
        self.followRedirects = followRedirects
        self.sink = sink
    }

    func run(_ request: URLRequest, timeout: TimeInterval) throws -> HTTPReply {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        configuration.urlCache = nil
        configuration.httpCookieStorage = nil
        let session = URLSession(configuration: configuration, delegate: self, delegateQueue: nil)
        session.dataTask(with: request).resume()
        done.wait()
        session.finishTasksAndInvalidate()
        if let sinkError { throw sinkError }
        let url = request.url?.absoluteString ?? "?"
        if let failure { throw HubError.network(url: url, reason: Transfer.describe(failure)) }
        guard let reply else { throw HubError.network(url: url, reason: "no reply") }
        return reply
    }

    static func describe(_ error: Error) -> String {
        let ns = error as NSError
        if ns.domain == NSURLErrorDomain {
            switch ns.code {
            case NSURLErrorTimedOut: return "timed out"
            case NSURLErrorCannotConnectToHost: return "could not connect"
            case NSURLErrorNetworkConnectionLost: return "the connection was lost"
            case NSURLErrorCannotFindHost: return "host not found"
            default: break
            }
        }
        return ns.localizedDescription
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        let http = response as? HTTPURLResponse
        reply = HTTPReply(status: http?.statusCode ?? 0, url: response.url ?? dataTask.originalRequest!.url!, response: http, body: Data())
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        guard sinkError == nil, let current = reply else { return }
        if let sink, (200 ..< 300).contains(current.status) {
            do { try sink(current, data) } catch {
                sinkError = error
                dataTask.cancel()
            }
        } else if current.body.count < 1 << 24 {
            reply!.body.append(data)
        }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                    newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void) {
        completionHandler(followRedirects ? request : nil)
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        if let error, sinkError == nil { failure = error }
        done.signal()
    }
}
