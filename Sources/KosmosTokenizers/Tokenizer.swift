import Foundation

/// What the model code calls. `encode` never adds BOS/EOS unless asked through `encode(_:options:)`.
public protocol Tokenizer: AnyObject {
    func encode(_ text: String) -> [Int]
    func decode(_ ids: [Int]) -> String
    var vocabularySize: Int { get }
    func id(of token: String) -> Int?
    func token(of id: Int) -> String?
    /// BOS / EOS / PAD / UNK ids as the tokenizer file declares them (nil when it has none).
    var specialIds: SpecialTokenIds { get }
}

public struct SpecialTokenIds: Sendable, Equatable {
    public var bos: Int?
    public var eos: Int?
    public var pad: Int?
    public var unk: Int?
    public init(bos: Int? = nil, eos: Int? = nil, pad: Int? = nil, unk: Int? = nil) {
        self.bos = bos; self.eos = eos; self.pad = pad; self.unk = unk
    }
}

public struct EncodeOptions: Sendable {
    public var addBOS = false
    public var addEOS = false
    public init(addBOS: Bool = false, addEOS: Bool = false) { self.addBOS = addBOS; self.addEOS = addEOS }
}

extension Tokenizer {
    /// Encodes and wraps in BOS / EOS when requested and the tokenizer defines them.
    public func encode(_ text: String, options: EncodeOptions) -> [Int] {
        var ids = encode(text)
        if options.addBOS, let b = specialIds.bos { ids.insert(b, at: 0) }
        if options.addEOS, let e = specialIds.eos { ids.append(e) }
        return ids
    }

    /// Checked decode: rejects ids outside the vocabulary instead of silently dropping them.
    public func decodeChecked(_ ids: [Int]) throws -> String {
        for id in ids where id < 0 || id >= vocabularySize {
            throw TokenizerError.idOutOfRange(id: id, vocabularySize: vocabularySize)
        }
        return decode(ids)
    }
}

/// Picks the implementation from the file: `tokenizer.json` (or any file starting with `{`) is
/// read as HF tokenizers JSON, anything else as a SentencePiece `ModelProto`.
public enum TokenizerLoader {
    public static func load(_ url: URL) throws -> Tokenizer {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw TokenizerError.unreadable(path: url.path, reason: error.localizedDescription)
        }
        let firstNonSpace = data.first(where: { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 })
        if url.pathExtension.lowercased() == "json" || firstNonSpace == UInt8(ascii: "{") {
            return try HFTokenizer(data: data)
        }
        return try SentencePieceTokenizer(data: data)
    }
}
