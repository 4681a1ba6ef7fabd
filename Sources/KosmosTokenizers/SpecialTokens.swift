import Foundation

/// One token matched in raw text before segmentation (a multimodal marker, a Kosmos-2 tag, ...).
public struct AddedTokenSpec: Sendable, Equatable {
    public var content: String
    public var id: Int
    /// Swallow whitespace to the left of the match (Kosmos2Processor adds its tokens with lstrip=True).
    public var lstrip: Bool
    public var rstrip: Bool
    /// Special tokens are dropped by `decode(_:skipSpecialTokens: true)`.
    public var special: Bool
    public init(_ content: String, id: Int, lstrip: Bool = false, rstrip: Bool = false, special: Bool = true) {
        self.content = content; self.id = id; self.lstrip = lstrip; self.rstrip = rstrip; self.special = special
    }
}

/// Multimodal marker tokens. Kosmos-X (T5 vocabulary, 32,000 pieces) appends `<image>` and
/// `</image>` for 32,002; `<audio>`/`</audio>` are reserved and only added when given ids.
public struct MultimodalTokens: Sendable, Equatable {
    public var image: Int
    public var imageEnd: Int
    public var audio: Int?
    public var audioEnd: Int?
    public init(image: Int, imageEnd: Int, audio: Int? = nil, audioEnd: Int? = nil) {
        self.image = image; self.imageEnd = imageEnd; self.audio = audio; self.audioEnd = audioEnd
    }
    /// `<image>`, `</image>` (then `<audio>`, `</audio>` if `includeAudio`) right after the vocabulary.
    public static func appended(toVocabularyOf size: Int, includeAudio: Bool = false) -> MultimodalTokens {
        MultimodalTokens(image: size, imageEnd: size + 1, audio: includeAudio ? size + 2 : nil,
                         audioEnd: includeAudio ? size + 3 : nil)
    }
    public var specs: [AddedTokenSpec] {
        var s = [AddedTokenSpec("<image>", id: image), AddedTokenSpec("</image>", id: imageEnd)]
        if let audio { s.append(AddedTokenSpec("<audio>", id: audio)) }
        if let audioEnd { s.append(AddedTokenSpec("</audio>", id: audioEnd)) }
        return s
    }
}

/// Kosmos-2's extra tokens, in the order transformers' Kosmos2Processor adds them
/// (processing_kosmos2.py: eod, boi, eoi, eoc, eol, bop, eop, boo, eoo, dom, grd, then
/// `<patch_index_0000>` … `<patch_index_1023>`), all with lstrip=True and not special.
public enum Kosmos2Tokens {
    public static let tags = ["</doc>", "<image>", "</image>", "</chunk>", "</line>", "<phrase>", "</phrase>",
                              "<object>", "</object>", "</delimiter_of_multi_objects/>", "<grounding>"]
    public static let patchIndexCount = 1024
    public static func patchIndexToken(_ i: Int) -> String {
        let s = String(i)
        return "<patch_index_" + String(repeating: "0", count: max(0, 4 - s.count)) + s + ">"
    }
    public static var all: [String] { tags + (0..<patchIndexCount).map(patchIndexToken) }
}

/// Finds added tokens in raw UTF-8 text: leftmost match, longest at that position (what both
/// tokenizers' AddedVocabulary and transformers' slow-tokenizer Trie do), widened over whitespace
/// for lstrip / rstrip tokens. Returns (start, end, token index or nil) segments covering the text.
struct AddedTokenSplitter {
    let trie: ByteTrie
    let lstrip: [Bool]
    let rstrip: [Bool]
    let isEmpty: Bool

    init(_ tokens: [(content: String, lstrip: Bool, rstrip: Bool)]) {
        trie = ByteTrie(tokens.enumerated().map { (Array($0.element.content.utf8), $0.offset) })
        lstrip = tokens.map(\.lstrip)
        rstrip = tokens.map(\.rstrip)
        isEmpty = tokens.isEmpty
    }

    func split(_ b: UnsafeBufferPointer<UInt8>) -> [(Int, Int, Int?)] {
        var segments: [(Int, Int, Int?)] = []
        if isEmpty {
            if b.count > 0 { segments.append((0, b.count, nil)) }
            return segments
        }
        var i = 0, segStart = 0
        while i < b.count {
            if let (len, k) = trie.longestPrefix(b, from: i, to: b.count) {
                var s = i, e = i + len
                if lstrip[k] { while s > segStart, let w = whitespaceStart(before: s, b), w >= segStart { s = w } }
                if rstrip[k] { while e < b.count, let w = whitespaceEnd(after: e, b) { e = w } }
                if s > segStart { segments.append((segStart, s, nil)) }
                segments.append((s, e, k))
                i = e
                segStart = e
            } else {
                i += utf8CharLength(b[i])
            }
        }
        if segStart < b.count { segments.append((segStart, b.count, nil)) }
        return segments
    }

    private func scalar(_ b: UnsafeBufferPointer<UInt8>, _ s: Int, _ e: Int) -> Unicode.Scalar? {
        String(decoding: UnsafeBufferPointer(rebasing: b[s..<e]), as: UTF8.self).unicodeScalars.first
    }
    private func whitespaceStart(before i: Int, _ b: UnsafeBufferPointer<UInt8>) -> Int? {
        var s = i - 1
        while s > 0 && b[s] & 0xC0 == 0x80 { s -= 1 }
        guard s >= 0, let sc = scalar(b, s, i), sc.properties.isWhitespace else { return nil }
        return s
    }
    private func whitespaceEnd(after i: Int, _ b: UnsafeBufferPointer<UInt8>) -> Int? {
        let e = min(b.count, i + utf8CharLength(b[i]))
        guard let sc = scalar(b, i, e), sc.properties.isWhitespace else { return nil }
        return e
    }
}

/// A SentencePiece model plus tokens matched in the raw text before SentencePiece sees it, with
/// an optional id remapping of the SentencePiece ids (Kosmos-2's fairseq/XLM-R offset). Text
/// between added tokens is encoded by SentencePiece on its own, as transformers' slow
/// (SentencePiece-backed) tokenizers do.
public final class SpecialTokensTokenizer: Tokenizer, @unchecked Sendable {
    public let base: SentencePieceTokenizer
    public let addedTokens: [AddedTokenSpec]
    let splitter: AddedTokenSplitter
    let toOuter: [Int]           // SentencePiece id -> outer id
    let toBase: [Int: Int]       // outer id -> SentencePiece id
    let addedById: [Int: Int]
    let addedByContent: [String: Int]
    let size: Int
    public let specialIds: SpecialTokenIds
    /// Decode SentencePiece runs after earlier text as continuing it (keeping their leading space),
    /// as a tokenizer.json Metaspace decoder does; set for the Kosmos-2 layout, whose
    /// tokenizer.json route decodes that way.
    var continuesTextAfterAddedTokens = false

    /// `idMap` maps each SentencePiece id to the id this tokenizer reports (identity when nil).
    public init(base: SentencePieceTokenizer, addedTokens: [AddedTokenSpec], idMap: [Int]? = nil,
                specialIds: SpecialTokenIds? = nil) throws {
        self.base = base
        self.addedTokens = addedTokens
        let map = idMap ?? Array(0..<base.vocabularySize)
        guard map.count == base.vocabularySize else {
            throw TokenizerError.invalidArgument("idMap has \(map.count) entries for \(base.vocabularySize) pieces")
        }
        toOuter = map
        var back: [Int: Int] = [:]
        for (b, o) in map.enumerated() where o >= 0 { back[o] = b }
        toBase = back
        var byId: [Int: Int] = [:], byContent: [String: Int] = [:]
        for (k, t) in addedTokens.enumerated() {
            guard t.id >= 0, !t.content.isEmpty else {
                throw TokenizerError.invalidArgument("added token \(t.content.debugDescription) has an invalid id \(t.id) or empty content")
            }
            if byContent[t.content] != nil { throw TokenizerError.invalidArgument("added token \(t.content) is listed twice") }
            // Re-declaring a piece under its own id (<s> in the XLM-R layout) is fine; any other reuse is not.
            let samePiece = back[t.id].flatMap { base.token(of: $0) } == t.content
            if byId[t.id] != nil || (back[t.id] != nil && !samePiece) {
                throw TokenizerError.invalidArgument("id \(t.id) of added token \(t.content) is already used")
            }
            byId[t.id] = k; byContent[t.content] = t.id
        }
        addedById = byId
        addedByContent = byContent
        splitter = AddedTokenSplitter(addedTokens.map { ($0.content, $0.lstrip, $0.rstrip) })
        size = max((map.max() ?? -1) + 1, (addedTokens.map(\.id).max() ?? -1) + 1)
        self.specialIds = specialIds ?? SpecialTokenIds(
            bos: base.specialIds.bos.map { map[$0] }, eos: base.specialIds.eos.map { map[$0] },
            pad: base.specialIds.pad.map { map[$0] }, unk: base.specialIds.unk.map { map[$0] })
    }

    /// Kosmos-X layout: the SentencePiece vocabulary as is, then the multimodal tokens
    /// (by default `<image>` = N, `</image>` = N+1 for an N-piece model).
    public static func kosmosX(base: SentencePieceTokenizer, tokens: MultimodalTokens? = nil) throws -> SpecialTokensTokenizer {
        try SpecialTokensTokenizer(base: base, addedTokens: (tokens ?? .appended(toVocabularyOf: base.vocabularySize)).specs)
    }

    /// Kosmos-2 layout over its SentencePiece model: XLM-R's fairseq ids (`<s>`=0, `<pad>`=1,
    /// `</s>`=2, `<unk>`=3, piece k>=3 -> k+1; tokenization_xlm_roberta.py), `<mask>` = N+1, then
    /// Kosmos2Processor's tokens from N+2 in `Kosmos2Tokens.all` order.
    public static func kosmos2(base: SentencePieceTokenizer) throws -> SpecialTokensTokenizer {
        let n = base.vocabularySize
        guard n >= 3, base.specialIds.unk == 0, base.specialIds.bos == 1, base.specialIds.eos == 2 else {
            throw TokenizerError.invalidModel(reason: "the Kosmos-2 layout needs a model with <unk>=0, <s>=1, </s>=2 (XLM-R style)")
        }
        var map = [Int](repeating: 0, count: n)
        map[0] = 3; map[1] = 0; map[2] = 2
        for k in 3..<n { map[k] = k + 1 }
        var added = [AddedTokenSpec("<pad>", id: 1), AddedTokenSpec("<mask>", id: n + 1, lstrip: true)]
        // <s>, </s>, <unk> are matched in text too (they are special added tokens in transformers).
        added += [AddedTokenSpec("<s>", id: 0), AddedTokenSpec("</s>", id: 2), AddedTokenSpec("<unk>", id: 3)]
        for (k, t) in Kosmos2Tokens.all.enumerated() {
            added.append(AddedTokenSpec(t, id: n + 2 + k, lstrip: true, special: false))
        }
        let tokenizer = try SpecialTokensTokenizer(base: base, addedTokens: added, idMapSkippingPad: map)
        tokenizer.continuesTextAfterAddedTokens = true
        return tokenizer
    }

    private convenience init(base: SentencePieceTokenizer, addedTokens: [AddedTokenSpec], idMapSkippingPad map: [Int]) throws {
        // <pad> (id 1) has no SentencePiece piece in the XLM-R layout; it is an added token.
        try self.init(base: base, addedTokens: addedTokens, idMap: map,
                      specialIds: SpecialTokenIds(bos: 0, eos: 2, pad: 1, unk: 3))
    }

    public var vocabularySize: Int { size }

    public func id(of token: String) -> Int? {
        if let a = addedByContent[token] { return a }
        return base.id(of: token).map { toOuter[$0] }
    }

    public func token(of id: Int) -> String? {
        if let k = addedById[id] { return addedTokens[k].content }
        return toBase[id].flatMap { base.token(of: $0) }
    }

    public func encode(_ text: String) -> [Int] {
        var bytes = Array(text.utf8)
        var ids: [Int] = []
        let segs = bytes.withUnsafeMutableBufferPointer { splitter.split(UnsafeBufferPointer($0)) }
        for (s, e, k) in segs {
            if let k { ids.append(addedTokens[k].id); continue }
            for id in base.encode(String(decoding: bytes[s..<e], as: UTF8.self)) { ids.append(toOuter[id]) }
        }
        _ = bytes.count; bytes = []
        return ids
    }

    public func decode(_ ids: [Int]) -> String { decode(ids, skipSpecialTokens: false) }

    /// Runs of SentencePiece ids decode as SentencePiece does; added tokens print their text.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String {
        var out = ""
        var run: [Int] = []
        func flush() {
            guard !run.isEmpty else { return }
            out += base.decode(run, atTextStart: !(continuesTextAfterAddedTokens && !out.isEmpty))
            run.removeAll()
        }
        for id in ids {
            if let k = addedById[id] {
                flush()
                if !(skipSpecialTokens && addedTokens[k].special) { out += addedTokens[k].content }
            } else if let b = toBase[id] {
                run.append(b)
            }
        }
        flush()
        return out
    }
}
