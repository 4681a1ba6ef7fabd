import Foundation

/// Every way a tokenizer file or a tokenizer call can be rejected. Each case says what was wrong
/// and where (file, byte offset or JSON path) so a user can fix the input instead of guessing.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    /// The file could not be read at all.
    case unreadable(path: String, reason: String)
    /// A SentencePiece `ModelProto` is not valid protobuf wire data (truncated, bad tag, ...).
    case malformedProtobuf(offset: Int, reason: String)
    /// The protobuf parsed but its content cannot be used (no pieces, bad ids, bad charsmap, ...).
    case invalidModel(reason: String)
    /// A `tokenizer.json` is not valid JSON or has a field of the wrong type / value.
    case invalidJSON(path: String, reason: String)
    /// A component (normalizer, pre-tokenizer, model, ...) this library does not implement.
    case unsupported(path: String, what: String)
    /// A token id passed to decode / lookup is outside the vocabulary.
    case idOutOfRange(id: Int, vocabularySize: Int)
    /// An argument to an API call is invalid (e.g. an ids JSON that is not an array of integers).
    case invalidArgument(String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason): return "cannot read tokenizer file \(path): \(reason)"
        case let .malformedProtobuf(offset, reason): return "malformed SentencePiece model at byte \(offset): \(reason)"
        case let .invalidModel(reason): return "invalid SentencePiece model: \(reason)"
        case let .invalidJSON(path, reason): return "invalid tokenizer.json at \(path): \(reason)"
        case let .unsupported(path, what): return "unsupported tokenizer.json component at \(path): \(what)"
        case let .idOutOfRange(id, size): return "token id \(id) is out of range for a vocabulary of \(size)"
        case let .invalidArgument(msg): return msg
        }
    }
}
