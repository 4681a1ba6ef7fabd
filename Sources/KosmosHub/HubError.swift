import Foundation

/// Why a pull or a cache lookup failed, in words a user can act on.
public enum HubError: Error, CustomStringConvertible, Equatable, Sendable {
    case repositoryNotFound(String)
    case revisionNotFound(repository: String, revision: String)
    case fileNotFound(repository: String, path: String)
    case unauthorized(repository: String, path: String?, tokenGiven: Bool)
    case offline(String)
    case notCached(String)
    case http(url: String, status: Int, message: String)
    case network(url: String, reason: String)
    case protocolError(String)
    case checksumMismatch(path: String, expected: String, actual: String)
    case sizeMismatch(path: String, expected: Int64, actual: Int64)
    case diskFull(path: String, needed: Int64, available: Int64)
    case io(path: String, reason: String)
    case noFilesMatched(repository: String, patterns: [String])

    public var description: String {
        switch self {
        case .repositoryNotFound(let id):
            return "repository '\(id)' was not found on the Hub (404): check the name; a private repository also answers 404 without a token (HF_TOKEN)"
        case .revisionNotFound(let id, let revision):
            return "repository '\(id)' has no revision '\(revision)' (a branch, tag or commit)"
        case .fileNotFound(let id, let path):
            return "repository '\(id)' has no file '\(path)'"
        case .unauthorized(let id, let path, let tokenGiven):
            let what = path.map { "'\($0)' of '\(id)'" } ?? "'\(id)'"
            return tokenGiven
                ? "access to \(what) was refused with the token given: the repository is gated or private; accept its conditions on the Hub with the account whose token HF_TOKEN holds"
                : "access to \(what) needs a token: the repository is gated or private; set HF_TOKEN (or run `huggingface-cli login`) after accepting its conditions on the Hub"
        case .offline(let what):
            return "HF_HUB_OFFLINE is set, so \(what) cannot be downloaded; unset it, or pull it first"
        case .notCached(let spec):
            return "'\(spec)' is neither a local directory nor in the Hub cache: run `kosmos pull \(spec)` first (or add --pull)"
        case .http(let url, let status, let message):
            return "\(url): HTTP \(status)\(message.isEmpty ? "" : ": \(message)")"
        case .network(let url, let reason):
            return "\(url): \(reason)"
        case .protocolError(let message):
            return message
        case .checksumMismatch(let path, let expected, let actual):
            return "\(path): the downloaded bytes have SHA-256 \(actual), the Hub says \(expected); the file was removed, pull again"
        case .sizeMismatch(let path, let expected, let actual):
            return "\(path): \(actual) bytes downloaded, the Hub says \(expected); the file was removed, pull again"
        case .diskFull(let path, let needed, let available):
            return "\(path): not enough disk space: \(formatByteCount(needed)) needed, \(formatByteCount(available)) free"
        case .io(let path, let reason):
            return "\(path): \(reason)"
        case .noFilesMatched(let id, let patterns):
            return "no file of '\(id)' matches \(patterns.joined(separator: ", "))"
        }
    }
}

/// A byte count as people read it: "3.25 GB", "12.0 MB", "950 B".
public func formatByteCount(_ count: Int64) -> String {
    let value = Double(count)
    if value >= 1e9 { return String(format: "%.2f GB", value / 1e9) }
    if value >= 1e6 { return String(format: "%.1f MB", value / 1e6) }
    if value >= 1e3 { return String(format: "%.1f kB", value / 1e3) }
    return "\(count) B"
}

extension HubError: LocalizedError {
    public var errorDescription: String? { description }
}
