import Foundation

/// A Hugging Face `tokenizer.json` (tokenizers 0.2x serialisation) with a Unigram or BPE model and
/// the normalizers / pre-tokenizers / post-processors / decoders that T5, XLM-R, Kosmos-2,
/// Llama-style (SentencePiece-converted) and byte-level BPE (GPT-2, cl100k-style Split regex, as
/// Kosmos-2.5's) tokenizers use. Anything else is rejected with
/// `TokenizerError.unsupported` naming the JSON path, rather than approximated.
public final class HFTokenizer: Tokenizer, @unchecked Sendable {
    struct AddedToken {
        let id: Int
        let content: String
        let bytes: [UInt8]
        let lstrip: Bool
        let rstrip: Bool
        let special: Bool
    }

    let normalizers: [HFNormalizer]
    let preTokenizers: [HFPreTokenizer]
    let model: HFModel
    let decoders: [HFDecoder]
    let template: [TemplatePiece]?
    let added: [AddedToken]
    let splitter: AddedTokenSplitter
    let addedById: [Int: Int]
    let addedByContent: [String: Int]
    public let specialIds: SpecialTokenIds

    enum TemplatePiece { case sequence, special([Int]) }

    public convenience init(contentsOf url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw TokenizerError.unreadable(path: url.path, reason: error.localizedDescription)
        }
        try self.init(data: data)
    }

    public init(data: Data) throws {
        let any: Any
        do { any = try JSONSerialization.jsonObject(with: data) } catch {
            throw TokenizerError.invalidJSON(path: "$", reason: "not valid JSON (\(error.localizedDescription))")
        }
        let root = try J.obj(any, "$")
        guard let m = root["model"] else { throw TokenizerError.invalidJSON(path: "$.model", reason: "missing") }
        let model = try HFModel(try J.obj(m, "$.model"))
        self.model = model
        normalizers = try HFNormalizer.parse(root["normalizer"], "$.normalizer")
        preTokenizers = try HFPreTokenizer.parse(root["pre_tokenizer"], "$.pre_tokenizer")
        decoders = try HFDecoder.parse(root["decoder"], "$.decoder")
        var addedList: [AddedToken] = []
        if let a = root["added_tokens"], !(a is NSNull) {
            for (i, t) in try J.arr(a, "$.added_tokens").enumerated() {
                let p = "$.added_tokens[\(i)]"
                let o = try J.obj(t, p)
                let id = try J.int(o["id"], p + ".id")
                guard id >= 0 else { throw TokenizerError.invalidJSON(path: p + ".id", reason: "negative id \(id)") }
                let content = try J.str(o["content"], p + ".content")
                if content.isEmpty { throw TokenizerError.invalidJSON(path: p + ".content", reason: "empty token") }
                if try J.bool(o["single_word"], p + ".single_word", default: false) {
                    throw TokenizerError.unsupported(path: p + ".single_word", what: "single_word added tokens")
                }
                // tokenizers matches `normalized: true` added tokens in the normalised text instead;
                // that needs offset tracking this implementation does not have, so refuse them.
                if try J.bool(o["normalized"], p + ".normalized", default: false) {
                    throw TokenizerError.unsupported(path: p + ".normalized", what: "normalized added tokens (\(content))")
                }
                addedList.append(AddedToken(id: id, content: content, bytes: Array(content.utf8),
                                            lstrip: try J.bool(o["lstrip"], p + ".lstrip", default: false),
                                            rstrip: try J.bool(o["rstrip"], p + ".rstrip", default: false),
                                            special: try J.bool(o["special"], p + ".special", default: false)))
            }
        }
        added = addedList
        splitter = AddedTokenSplitter(addedList.map { ($0.content, $0.lstrip, $0.rstrip) })
        var byId: [Int: Int] = [:], byContent: [String: Int] = [:]
        for (k, t) in addedList.enumerated() { byId[t.id] = k; byContent[t.content] = t.id }
        addedById = byId
        addedByContent = byContent
        // TemplateProcessing "single" (what encode with special tokens applies); ByteLevel's
        // post-processor only trims offsets, which ids do not carry; a Sequence of them.
        func parseTemplate(_ pp: Any, _ path: String) throws -> [TemplatePiece]? {
            let o = try J.obj(pp, path)
            let type = try J.str(o["type"], path + ".type")
            switch type {
            case "ByteLevel": return nil
            case "Sequence":
                let found = try J.arr(o["processors"], path + ".processors").enumerated()
                    .compactMap { try parseTemplate($0.element, path + ".processors[\($0.offset)]") }
                guard found.count <= 1 else {
                    throw TokenizerError.unsupported(path: path, what: "more than one TemplateProcessing in a Sequence")
                }
                return found.first
            case "TemplateProcessing": break
            default: throw TokenizerError.unsupported(path: path, what: "post-processor \(type)")
            }
            let specials = try J.obj(o["special_tokens"] ?? [String: Any](), path + ".special_tokens")
            var pieces: [TemplatePiece] = []
            for (i, item) in try J.arr(o["single"], path + ".single").enumerated() {
                let p = path + ".single[\(i)]"
                let io = try J.obj(item, p)
                if io["Sequence"] != nil { pieces.append(.sequence); continue }
                let st = try J.obj(io["SpecialToken"], p + ".SpecialToken")
                let name = try J.str(st["id"], p + ".SpecialToken.id")
                let spec = try J.obj(specials[name], path + ".special_tokens.\(name)")
                pieces.append(.special(try J.arr(spec["ids"], path + ".special_tokens.\(name).ids")
                    .enumerated().map { try J.int($0.element, path + ".special_tokens.\(name).ids[\($0.offset)]") }))
            }
            return pieces
        }
        var tpl: [TemplatePiece]?
        if let pp = root["post_processor"], !(pp is NSNull) { tpl = try parseTemplate(pp, "$.post_processor") }
        template = tpl
        let size = max(model.vocabSize, (addedList.map(\.id).max() ?? -1) + 1)
        for t in addedList where t.id >= size {
            throw TokenizerError.invalidJSON(path: "$.added_tokens", reason: "id \(t.id) out of range")
        }
        vocabularySizeStorage = size
        func find(_ names: [String]) -> Int? {
            for n in names { if let id = byContent[n] ?? model.tokenToId[n] { return id } }
            return nil
        }
        specialIds = SpecialTokenIds(bos: find(["<s>", "<|begin_of_text|>"]), eos: find(["</s>", "<|end_of_text|>"]),
                                     pad: find(["<pad>"]), unk: model.unkId)
    }

    private let vocabularySizeStorage: Int
    public var vocabularySize: Int { vocabularySizeStorage }

    public func id(of token: String) -> Int? { addedByContent[token] ?? model.tokenToId[token] }
    public func token(of id: Int) -> String? {
        if let k = addedById[id] { return added[k].content }
        return id >= 0 && id < model.vocab.count ? model.vocab[id] : nil
    }

    /// Encode without the post-processor's special tokens (tokenizers' `add_special_tokens=False`).
    public func encode(_ text: String) -> [Int] { encode(text, addSpecialTokens: false) }

    /// `addSpecialTokens` applies the file's TemplateProcessing, like tokenizers' default.
    public func encode(_ text: String, addSpecialTokens: Bool) -> [Int] {
        var ids: [Int] = []
        let bytes = Array(text.utf8)
        // Added tokens are split out of the raw text first (tokenizers' AddedVocabulary); only
        // non-normalized added tokens are supported, see init.
        let segments = bytes.withUnsafeBufferPointer { splitter.split($0) }.map { ($0.0, $0.1, $0.2.map { added[$0].id }) }
        for (s, e, addedId) in segments {
            if let addedId { ids.append(addedId); continue }
            var str = String(decoding: bytes[s..<e], as: UTF8.self)
            for n in normalizers { str = n.apply(str) }
            if str.isEmpty { continue }
            var words = [str]
            for p in preTokenizers { words = words.flatMap { p.apply($0, isFirst: s == 0) } }
            for w in words where !w.isEmpty { model.encodeWord(w, into: &ids) }
        }
        guard addSpecialTokens, let template else { return ids }
        var out: [Int] = []
        for p in template {
            switch p {
            case .sequence: out.append(contentsOf: ids)
            case .special(let s): out.append(contentsOf: s)
            }
        }
        return out
    }

    /// tokenizers' `decode(ids, skip_special_tokens=False)`; ids outside the vocabulary are skipped.
    public func decode(_ ids: [Int]) -> String { decode(ids, skipSpecialTokens: false) }

    public func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String {
        var tokens: [String] = []
        for id in ids {
            if let k = addedById[id] {
                if skipSpecialTokens && added[k].special { continue }
                tokens.append(added[k].content)
            } else if id >= 0 && id < model.vocab.count {
                tokens.append(model.vocab[id])
            }
        }
        for d in decoders { tokens = d.apply(tokens) }
        return tokens.joined()
    }
}

/// Typed accessors for JSONSerialization output that throw with the JSON path on a wrong type.
enum J {
    static func obj(_ v: Any?, _ p: String) throws -> [String: Any] {
        guard let o = v as? [String: Any] else { throw TokenizerError.invalidJSON(path: p, reason: "expected an object") }
        return o
    }
    static func arr(_ v: Any?, _ p: String) throws -> [Any] {
        guard let o = v as? [Any] else { throw TokenizerError.invalidJSON(path: p, reason: "expected an array") }
        return o
    }
    static func str(_ v: Any?, _ p: String) throws -> String {
        guard let o = v as? String else { throw TokenizerError.invalidJSON(path: p, reason: "expected a string") }
        return o
    }
    static func int(_ v: Any?, _ p: String) throws -> Int {
        guard let n = v as? NSNumber, n.doubleValue == n.doubleValue.rounded(),
              abs(n.doubleValue) < 1e15 else {
            throw TokenizerError.invalidJSON(path: p, reason: "expected an integer")
        }
        return n.intValue
    }
    static func double(_ v: Any?, _ p: String) throws -> Double {
        guard let n = v as? NSNumber else { throw TokenizerError.invalidJSON(path: p, reason: "expected a number") }
        return n.doubleValue
    }
    static func bool(_ v: Any?, _ p: String, default d: Bool) throws -> Bool {
        guard let v, !(v is NSNull) else { return d }
        guard let b = v as? Bool else { throw TokenizerError.invalidJSON(path: p, reason: "expected a boolean") }
        return b
    }
}
