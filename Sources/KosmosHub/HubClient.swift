import Foundation

/// Where the Hub is and who we are to it, from the variables huggingface_hub reads.
public struct HubSettings: Sendable {
    /// `HF_ENDPOINT` (default https://huggingface.co), without a trailing slash.
    public var endpoint: URL
    /// `HF_TOKEN`, else the file `HF_TOKEN_PATH` (default `HF_HOME/token`) that `huggingface-cli login` writes.
    public var token: String?
    /// `HF_HUB_OFFLINE` (or `TRANSFORMERS_OFFLINE`) set to 1/true/yes/on: no request is made.
    public var offline: Bool
    public var cache: HubCache
    /// Seconds a request may go without any byte before it fails.
    public var timeout: TimeInterval = 30
    /// Attempts per file after a dropped connection (each resumes where the last stopped).
    public var attempts = 3
    /// The free bytes of the file system holding a folder (a test replaces it to act out a full disk).
    var freeBytes: @Sendable (String) -> Int64? = { folder in
        ((try? FileManager.default.attributesOfFileSystem(forPath: folder))?[.systemFreeSize] as? NSNumber)?.int64Value
    }

    public init(endpoint: URL, token: String?, offline: Bool, cache: HubCache) {
        self.endpoint = endpoint
        self.token = token
        self.offline = offline
        self.cache = cache
    }

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        let text = environment["HF_ENDPOINT"].flatMap { $0.isEmpty ? nil : $0 } ?? "https://huggingface.co"
        var trimmed = text
        while trimmed.hasSuffix("/") { trimmed.removeLast() }
        guard let endpoint = URL(string: trimmed), let scheme = endpoint.scheme, ["http", "https"].contains(scheme), endpoint.host != nil else {
            throw HubError.protocolError("HF_ENDPOINT '\(text)' is not an http(s) address")
        }
        var token = environment["HF_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        if token == nil {
            let path = environment["HF_TOKEN_PATH"].flatMap { $0.isEmpty ? nil : HubCache.expand($0) }
                ?? (HubCache.home(environment) as NSString).appendingPathComponent("token")
            token = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            if token?.isEmpty == true { token = nil }
        }
        let offline = ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"].contains { name in
            ["1", "ON", "YES", "TRUE"].contains(environment[name]?.uppercased() ?? "")
        }
        self.init(endpoint: endpoint, token: token, offline: offline, cache: HubCache(environment: environment))
    }
}

/// What a HEAD on `resolve/REVISION/PATH` says of a file.
public struct HubFileMetadata: Equatable, Sendable {
    /// The commit the revision resolved to (`X-Repo-Commit`).
    public let commit: String
    /// The blob's name: `X-Linked-Etag` (an LFS file's SHA-256) or else `ETag` (a small file's git
    /// blob hash), quotes and `W/` removed.
    public let etag: String
    /// `X-Linked-Size`, else `Content-Length` of a reply that was not a redirect.
    public let size: Int64?
    /// Where the bytes are: the `Location` of a redirect to another host (the CDN), else the resolve URL.
    public let location: URL
    /// Whether the etag is an LFS SHA-256 the downloaded bytes must equal.
    public var isLFS: Bool { etag.count == 64 && etag.allSatisfy { $0.isHexDigit } }
}

/// A file's progress during a pull, reported from the worker threads.
public enum PullEvent: Sendable {
    case listed(files: Int, commit: String)
    case started(path: String, size: Int64?, resumedAt: Int64)
    case received(path: String, bytes: Int)
    case finished(path: String, downloaded: Bool)
    case retrying(path: String, reason: String)
}

/// The Hub's HTTP API as far as pulling a model needs it.
public final class HubClient: Sendable {
    public let settings: HubSettings
    let http: HubHTTP

    public init(settings: HubSettings, userAgent: String = "kosmos-swift") {
        self.settings = settings
        http = HubHTTP(userAgent: userAgent, timeout: settings.timeout)
    }

    var cache: HubCache { settings.cache }

    func authorization(for url: URL) -> [String: String] {
        // The token goes to the Hub only, never to the storage host a file redirects to.
        guard let token = settings.token, url.host == settings.endpoint.host, url.port == settings.endpoint.port else { return [:] }
        return ["Authorization": "Bearer \(token)"]
    }

    private func endpointURL(_ parts: [String]) -> URL {
        let allowed = CharacterSet.urlPathAllowed.subtracting(CharacterSet(charactersIn: "/?#"))
        let encoded = parts.map { $0.addingPercentEncoding(withAllowedCharacters: allowed) ?? $0 }
        return URL(string: settings.endpoint.absoluteString + "/" + encoded.joined(separator: "/"))!
    }

    private func split(_ path: String) -> [String] { path.split(separator: "/").map(String.init) }

    /// `GET /api/models/ORG/NAME/revision/REVISION`: the commit and the repository's files.
    public func modelInfo(_ repository: HubRepository) throws -> (commit: String, files: [String]) {
        let url = endpointURL(["api", "models"] + split(repository.id) + ["revision", repository.revision])
        let reply = try http.send("GET", url, headers: authorization(for: url), followRedirects: true)
        try check(reply, repository: repository, path: nil)
        guard let json = try? JSONSerialization.jsonObject(with: reply.body) as? [String: Any],
              let commit = json["sha"] as? String, HubRepository.isCommitHash(commit),
              let siblings = json["siblings"] as? [[String: Any]] else {
            throw HubError.protocolError("\(url): the Hub's model info has no commit sha or file list")
        }
        return (commit, siblings.compactMap { $0["rfilename"] as? String })
    }

    /// `HEAD /ORG/NAME/resolve/REVISION/PATH`, following redirects within the Hub (a renamed
    /// repository) and stopping at one to another host (the file's storage).
    public func fileMetadata(_ repository: HubRepository, revision: String, path: String) throws -> HubFileMetadata {
        var url = endpointURL(split(repository.id) + ["resolve", revision] + split(path))
        for _ in 0 ..< 6 {
            let reply = try http.send("HEAD", url, headers: authorization(for: url), followRedirects: false)
            if (300 ..< 400).contains(reply.status), let location = reply.header("Location") {
                guard let next = URL(string: location, relativeTo: url)?.absoluteURL else {
                    throw HubError.protocolError("\(url): a redirect to '\(location)', which is not an address")
                }
                if location.hasPrefix("/") || next.host == url.host && next.port == url.port, reply.header("X-Linked-Etag") == nil {
                    url = next
                    continue
                }
                return try metadata(reply, location: next, path: path, redirected: true)
            }
            try check(reply, repository: repository, path: path)
            return try metadata(reply, location: url, path: path, redirected: false)
        }
        throw HubError.protocolError("\(url): too many redirects")
    }

    private func metadata(_ reply: HTTPReply, location: URL, path: String, redirected: Bool) throws -> HubFileMetadata {
        guard let commit = reply.header("X-Repo-Commit"), HubRepository.isCommitHash(commit) else {
            throw HubError.protocolError("\(reply.url): the Hub's reply for '\(path)' has no X-Repo-Commit header")
        }
        guard let raw = reply.header("X-Linked-Etag") ?? reply.header("ETag") else {
            throw HubError.protocolError("\(reply.url): the Hub's reply for '\(path)' has no ETag")
        }
        var etag = Substring(raw.trimmingCharacters(in: .whitespaces))
        if etag.hasPrefix("W/") { etag = etag.dropFirst(2) }
        etag = etag.drop { $0 == "\"" }
        while etag.last == "\"" { etag = etag.dropLast() }
        guard !etag.isEmpty, etag.allSatisfy({ $0.isLetter || $0.isNumber || "-_".contains($0) }) else {
            throw HubError.protocolError("\(reply.url): ETag '\(raw)' cannot name a cache file")
        }
        let size = (reply.header("X-Linked-Size") ?? (redirected ? nil : reply.header("Content-Length"))).flatMap { Int64($0) }
        return HubFileMetadata(commit: commit, etag: String(etag), size: size, location: location)
    }

    /// Turns an error status into the error a user reads (the Hub names its cause in X-Error-Code).
    func check(_ reply: HTTPReply, repository: HubRepository, path: String?) throws {
        guard !(200 ..< 300).contains(reply.status) else { return }
        let code = reply.header("X-Error-Code") ?? ""
        let message = reply.header("X-Error-Message") ?? String(decoding: reply.body.prefix(300), as: UTF8.self)
        switch (reply.status, code) {
        case (_, "GatedRepo"), (403, _):
            throw HubError.unauthorized(repository: repository.id, path: path, tokenGiven: settings.token != nil)
        case (_, "RepoNotFound"):
            throw HubError.repositoryNotFound(repository.id)
        case (_, "RevisionNotFound"):
            throw HubError.revisionNotFound(repository: repository.id, revision: repository.revision)
        case (_, "EntryNotFound"):
            throw HubError.fileNotFound(repository: repository.id, path: path ?? "")
        case (401, _):
            throw HubError.unauthorized(repository: repository.id, path: path, tokenGiven: settings.token != nil)
        case (404, _):
            if let path { throw HubError.fileNotFound(repository: repository.id, path: path) }
            throw HubError.repositoryNotFound(repository.id)
        default:
            throw HubError.http(url: reply.url.absoluteString, status: reply.status, message: message.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }
}
