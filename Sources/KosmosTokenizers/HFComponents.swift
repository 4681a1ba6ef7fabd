import Foundation

let metaspace = "\u{2581}"

/// Replaces every occurrence of `a` by `b`, on UTF-8 bytes (Foundation's replacingOccurrences
/// goes through NSString and was the top cost of tokenizer.json encoding).
func replaceAll(_ s: String, _ a: String, _ b: String) -> String {
    if a.isEmpty { return s }
    var text = s
    let pat = Array(a.utf8), rep = Array(b.utf8)
    return text.withUTF8 { t -> String in
        let n = t.count, m = pat.count
        guard n >= m else { return s }
        var out: [UInt8] = []
        out.reserveCapacity(n + n / 2)
        var i = 0
        var changed = false
        while i < n {
            if t[i] == pat[0] && i + m <= n {
                var k = 1
                while k < m && t[i + k] == pat[k] { k += 1 }
                if k == m { out.append(contentsOf: rep); i += m; changed = true; continue }
            }
            out.append(t[i]); i += 1
        }
        return changed ? String(decoding: out, as: UTF8.self) : s
    }
}

enum HFNormalizer {
    case precompiled(PrecompiledCharsmap)
    case strip(left: Bool, right: Bool)
    case replaceString(String, String)
    /// Only the pattern the SentencePiece converters emit: a run of two or more spaces.
    case replaceSpaceRun(String)
    case prepend(String)
    case nfkc, nfc, nfd, nfkd, lowercase

    static func parse(_ v: Any?, _ p: String) throws -> [HFNormalizer] {
        guard let v, !(v is NSNull) else { return [] }
        let o = try J.obj(v, p)
        let type = try J.str(o["type"], p + ".type")
        switch type {
        case "Sequence":
            return try J.arr(o["normalizers"], p + ".normalizers").enumerated()
                .flatMap { try parse($0.element, p + ".normalizers[\($0.offset)]") }
        case "Precompiled":
            let b64 = try J.str(o["precompiled_charsmap"], p + ".precompiled_charsmap")
            guard let d = Data(base64Encoded: b64) else {
                throw TokenizerError.invalidJSON(path: p + ".precompiled_charsmap", reason: "not base64")
            }
            if d.isEmpty { return [] }
            do { return [.precompiled(try PrecompiledCharsmap([UInt8](d)))] } catch let e as TokenizerError {
                throw TokenizerError.invalidJSON(path: p + ".precompiled_charsmap", reason: e.description)
            }
        case "Strip":
            return [.strip(left: try J.bool(o["strip_left"], p + ".strip_left", default: false),
                           right: try J.bool(o["strip_right"], p + ".strip_right", default: false))]
        case "Replace":
            let content = try J.str(o["content"], p + ".content")
            let pat = try J.obj(o["pattern"], p + ".pattern")
            if let s = pat["String"] { return [.replaceString(try J.str(s, p + ".pattern.String"), content)] }
            let re = try J.str(pat["Regex"], p + ".pattern.Regex")
            if re == " {2,}" { return [.replaceSpaceRun(content)] }
            throw TokenizerError.unsupported(path: p + ".pattern.Regex", what: "regex \(re)")
        case "Prepend": return [.prepend(try J.str(o["prepend"], p + ".prepend"))]
        case "NFKC": return [.nfkc]
        case "NFC": return [.nfc]
        case "NFD": return [.nfd]
        case "NFKD": return [.nfkd]
        case "Lowercase": return [.lowercase]
        default: throw TokenizerError.unsupported(path: p, what: "normalizer \(type)")
        }
    }

    func apply(_ s: String) -> String {
        switch self {
        case .precompiled(let cm): return Self.precompiled(cm, s)
        case let .strip(left, right):
            // Fast exit when the ends are ASCII non-whitespace.
            if let f = s.utf8.first, let l = s.utf8.last, f < 0x80, l < 0x80,
               !(left && (f == 0x20 || (0x09...0x0D).contains(f))), !(right && (l == 0x20 || (0x09...0x0D).contains(l))) {
                return s
            }
            var sc = Substring(s).unicodeScalars
            if left { while let f = sc.first, f.properties.isWhitespace { sc.removeFirst() } }
            if right { while let l = sc.last, l.properties.isWhitespace { sc.removeLast() } }
            return String(sc)
        case let .replaceString(a, b): return replaceAll(s, a, b)
        case .replaceSpaceRun(let c):
            // Runs of two or more U+0020 become `c`; ASCII space never occurs inside a multi-byte char.
            var text = s
            let rep = Array(c.utf8)
            return text.withUTF8 { t -> String in
                var out: [UInt8] = []
                out.reserveCapacity(t.count)
                var run = 0
                var changed = false
                for x in t {
                    if x == 0x20 { run += 1; continue }
                    if run > 0 { if run >= 2 { out.append(contentsOf: rep); changed = true } else { out.append(0x20) }; run = 0 }
                    out.append(x)
                }
                if run > 0 { if run >= 2 { out.append(contentsOf: rep); changed = true } else { out.append(0x20) } }
                return changed ? String(decoding: out, as: UTF8.self) : s
            }
        case .prepend(let p): return s.isEmpty ? s : p + s
        case .nfkc: return s.precomposedStringWithCompatibilityMapping
        case .nfc: return s.precomposedStringWithCanonicalMapping
        case .nfd: return s.decomposedStringWithCanonicalMapping
        case .nfkd: return s.decomposedStringWithCompatibilityMapping
        case .lowercase: return s.lowercased()
        }
    }

    /// tokenizers' `Precompiled` (spm_precompiled `normalize_string`): per extended grapheme
    /// cluster; a cluster under 6 bytes is replaced whole by the map's entry for its first
    /// (shortest) matching prefix, otherwise each scalar is looked up on its own. This is not
    /// the same as sentencepiece's longest-match walk, and the reference says so in a comment.
    static func precompiled(_ cm: PrecompiledCharsmap, _ s: String) -> String {
        var out: [UInt8] = []
        var text = s
        out.reserveCapacity(text.utf8.count)
        let utf8 = text.utf8
        let base = utf8.startIndex
        text.withUTF8 { b in
            let n = b.count
            var i = 0
            while i < n {
                // Grapheme [i, e): a lone ASCII byte when the next byte is ASCII too (no combining
                // mark can follow) and it is not "\r\n"; otherwise ask String for the boundary.
                var e: Int
                let c = b[i]
                if c < 0x80 && (i + 1 == n || (b[i + 1] < 0x80 && !(c == 0x0D && b[i + 1] == 0x0A))) {
                    e = i + 1
                } else {
                    let idx = utf8.index(base, offsetBy: i)
                    let nextIdx = s.index(after: idx)
                    e = utf8.distance(from: base, to: nextIdx)
                    if e <= i || e > n { e = min(n, i + utf8CharLength(c)) }
                }
                let g = UnsafeBufferPointer(rebasing: b[i..<e])
                if g.count < 6, let off = cm.shortestMatchOffset(g, 0, g.count), cm.appendReplacement(at: off, to: &out) {
                    i = e
                    continue
                }
                // Scalar by scalar.
                var j = i
                while j < e {
                    let l = min(utf8CharLength(b[j]), e - j)
                    let sc = UnsafeBufferPointer(rebasing: b[j..<(j + l)])
                    if let off = cm.shortestMatchOffset(sc, 0, l), cm.appendReplacement(at: off, to: &out) {
                    } else {
                        out.append(contentsOf: sc)
                    }
                    j += l
                }
                i = e
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

enum HFPreTokenizer {
    case metaspace(replacement: String, prepend: String, split: Bool)
    case whitespaceSplit
    case split(HFSplitPattern, behavior: HFSplitBehavior, invert: Bool)
    /// Optionally a space before each piece that has none, GPT-2's split (`use_regex`), then the
    /// bytes written in the byte-level alphabet.
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)

    static func parse(_ v: Any?, _ p: String) throws -> [HFPreTokenizer] {
        guard let v, !(v is NSNull) else { return [] }
        let o = try J.obj(v, p)
        let type = try J.str(o["type"], p + ".type")
        switch type {
        case "Sequence":
            return try J.arr(o["pretokenizers"], p + ".pretokenizers").enumerated()
                .flatMap { try parse($0.element, p + ".pretokenizers[\($0.offset)]") }
        case "Metaspace":
            var scheme = (o["prepend_scheme"] as? String) ?? "always"
            if o["prepend_scheme"] == nil, let add = o["add_prefix_space"] as? Bool { scheme = add ? "always" : "never" }
            guard ["always", "first", "never"].contains(scheme) else {
                throw TokenizerError.invalidJSON(path: p + ".prepend_scheme", reason: "unknown scheme \(scheme)")
            }
            return [.metaspace(replacement: try J.str(o["replacement"], p + ".replacement"), prepend: scheme,
                               split: try J.bool(o["split"], p + ".split", default: true))]
        case "WhitespaceSplit": return [.whitespaceSplit]
        case "Split":
            let name = try J.str(o["behavior"], p + ".behavior")
            guard let behavior = HFSplitBehavior(rawValue: name) else {
                throw TokenizerError.unsupported(path: p + ".behavior", what: "split behavior \(name)")
            }
            return [.split(try HFSplitPattern(try J.obj(o["pattern"], p + ".pattern"), p + ".pattern"), behavior: behavior,
                           invert: try J.bool(o["invert"], p + ".invert", default: false))]
        case "ByteLevel":
            return [.byteLevel(addPrefixSpace: try J.bool(o["add_prefix_space"], p + ".add_prefix_space", default: true),
                               useRegex: try J.bool(o["use_regex"], p + ".use_regex", default: true))]
        default: throw TokenizerError.unsupported(path: p, what: "pre-tokenizer \(type)")
        }
    }

    /// `isFirst`: the segment starts at offset 0 of the input (Metaspace's "first" scheme).
    func apply(_ s: String, isFirst: Bool) -> [String] {
        switch self {
        case let .metaspace(rep, scheme, split):
            var t = replaceAll(s, " ", rep)
            if !t.hasPrefix(rep) && (scheme == "always" || (scheme == "first" && isFirst)) { t = rep + t }
            guard split else { return [t] }
            // Split with MergedWithNext: every occurrence of the replacement starts a new word.
            let r = Array(rep.utf8)
            return t.withUTF8 { b -> [String] in
                var words: [String] = []
                var start = 0
                var i = 0
                while i < b.count {
                    if b[i] == r[0] && i + r.count <= b.count && (1..<r.count).allSatisfy({ b[i + $0] == r[$0] }) {
                        if i > start { words.append(String(decoding: UnsafeBufferPointer(rebasing: b[start..<i]), as: UTF8.self)) }
                        start = i
                        i += r.count
                    } else {
                        i += 1
                    }
                }
                if start < b.count { words.append(String(decoding: UnsafeBufferPointer(rebasing: b[start..<b.count]), as: UTF8.self)) }
                return words
            }
        case .whitespaceSplit:
            return s.split(whereSeparator: { $0.isWhitespace }).map(String.init)
        case let .split(pattern, behavior, invert):
            return behavior.split(s, pattern, invert: invert)
        case let .byteLevel(addPrefixSpace, useRegex):
            let t = addPrefixSpace && !s.hasPrefix(" ") ? " " + s : s
            let pieces = useRegex ? HFSplitBehavior.isolated.split(t, gpt2SplitPattern, invert: false) : [t]
            return pieces.map(ByteLevelAlphabet.encode)
        }
    }
}

enum HFDecoder {
    case metaspace(replacement: String, prepend: Bool)
    case replace(String, String)
    case byteFallback
    case fuse
    case strip(content: Character, start: Int, stop: Int)
    case byteLevel

    static func parse(_ v: Any?, _ p: String) throws -> [HFDecoder] {
        guard let v, !(v is NSNull) else { return [] }
        let o = try J.obj(v, p)
        let type = try J.str(o["type"], p + ".type")
        switch type {
        case "Sequence":
            return try J.arr(o["decoders"], p + ".decoders").enumerated()
                .flatMap { try parse($0.element, p + ".decoders[\($0.offset)]") }
        case "Metaspace":
            var scheme = (o["prepend_scheme"] as? String) ?? "always"
            if o["prepend_scheme"] == nil, let add = o["add_prefix_space"] as? Bool { scheme = add ? "always" : "never" }
            return [.metaspace(replacement: try J.str(o["replacement"], p + ".replacement"), prepend: scheme != "never")]
        case "Replace":
            let pat = try J.obj(o["pattern"], p + ".pattern")
            guard let s = pat["String"] else { throw TokenizerError.unsupported(path: p + ".pattern", what: "regex in a Replace decoder") }
            return [.replace(try J.str(s, p + ".pattern.String"), try J.str(o["content"], p + ".content"))]
        case "ByteFallback": return [.byteFallback]
        case "ByteLevel": return [.byteLevel]
        case "Fuse": return [.fuse]
        case "Strip":
            let c = try J.str(o["content"], p + ".content")
            guard c.count == 1, let ch = c.first else { throw TokenizerError.invalidJSON(path: p + ".content", reason: "expected one character") }
            return [.strip(content: ch, start: try J.int(o["start"], p + ".start"), stop: try J.int(o["stop"], p + ".stop"))]
        default: throw TokenizerError.unsupported(path: p, what: "decoder \(type)")
        }
    }

    func apply(_ tokens: [String]) -> [String] {
        switch self {
        case let .metaspace(rep, prepend):
            return tokens.enumerated().map { i, t in
                var s = replaceAll(t, rep, " ")
                if i == 0 && prepend && s.hasPrefix(" ") { s.removeFirst() }
                return s
            }
        case let .replace(a, b): return tokens.map { replaceAll($0, a, b) }
        case .fuse: return [tokens.joined()]
        case .byteLevel: return [ByteLevelAlphabet.decode(tokens)]
        case let .strip(c, start, stop):
            return tokens.map { t in
                var s = Substring(t)
                var k = 0
                while k < start, s.first == c { s.removeFirst(); k += 1 }
                k = 0
                while k < stop, s.last == c { s.removeLast(); k += 1 }
                return String(s)
            }
        case .byteFallback:
            // Runs of <0xNN> tokens become their UTF-8 text, or one U+FFFD per byte token when
            // the run is not valid UTF-8 (tokenizers' ByteFallback decoder).
            var out: [String] = []
            var pending: [UInt8] = []
            func flush() {
                if pending.isEmpty { return }
                if let s = String(validating: pending, as: UTF8.self) { out.append(s) } else {
                    out.append(contentsOf: Array(repeating: "\u{FFFD}", count: pending.count))
                }
                pending.removeAll()
            }
            for t in tokens {
                if let v = SentencePieceTokenizer.byteValue(t) { pending.append(UInt8(v)) } else { flush(); out.append(t) }
            }
            flush()
            return out
        }
    }
}

struct BPESymbols {
    var sym: [Int] = [], lens: [Int] = [], prev: [Int] = [], next: [Int] = []
    init(capacity: Int) {
        sym.reserveCapacity(capacity); lens.reserveCapacity(capacity)
        prev.reserveCapacity(capacity); next.reserveCapacity(capacity)
    }
    mutating func push(_ id: Int, _ l: Int) {
        sym.append(id); lens.append(l); prev.append(sym.count - 2); next.append(sym.count)
    }
}

/// Unigram or BPE model of a tokenizer.json.
final class HFModel {
    enum Kind { case unigram, bpe }
    let kind: Kind
    let vocab: [String]
    let tokenToId: [String: Int]
    let scores: [Double]
    let trie: ByteTrie
    let unkId: Int?
    let byteFallback: Bool
    let fuseUnk: Bool
    let ignoreMerges: Bool
    let minScore: Double
    /// BPE: (left id, right id) -> rank << 32 | merged id.
    let merges: PairMap
    let byteIds: [Int]

    var vocabSize: Int { vocab.count }

    init(_ o: [String: Any]) throws {
        let p = "$.model"
        let type = try J.str(o["type"], p + ".type")
        var v: [String] = [], sc: [Double] = [], t2i: [String: Int] = [:]
        switch type {
        case "Unigram":
            kind = .unigram
            for (i, e) in try J.arr(o["vocab"], p + ".vocab").enumerated() {
                let pair = try J.arr(e, p + ".vocab[\(i)]")
                guard pair.count == 2 else { throw TokenizerError.invalidJSON(path: p + ".vocab[\(i)]", reason: "expected [piece, score]") }
                let s = try J.str(pair[0], p + ".vocab[\(i)][0]")
                v.append(s); sc.append(try J.double(pair[1], p + ".vocab[\(i)][1]"))
                if t2i[s] == nil { t2i[s] = i }
            }
            if let u = o["unk_id"], !(u is NSNull) {
                let uid = try J.int(u, p + ".unk_id")
                guard uid >= 0 && uid < v.count else { throw TokenizerError.invalidJSON(path: p + ".unk_id", reason: "unk_id \(uid) is outside the vocabulary of \(v.count)") }
                unkId = uid
            } else { unkId = nil }
            fuseUnk = true
            ignoreMerges = false
            merges = PairMap([:])
        case "BPE":
            kind = .bpe
            let d = try J.obj(o["vocab"], p + ".vocab")
            v = [String](repeating: "", count: d.count)
            var seen = [Bool](repeating: false, count: d.count)
            for (k, val) in d {
                let id = try J.int(val, p + ".vocab.\(k)")
                guard id >= 0 && id < d.count, !seen[id] else {
                    throw TokenizerError.invalidJSON(path: p + ".vocab.\(k)", reason: "id \(id) is out of range or repeated (ids must be 0..<\(d.count))")
                }
                seen[id] = true
                v[id] = k; t2i[k] = id
            }
            for key in ["continuing_subword_prefix", "end_of_word_suffix", "dropout"] {
                if let x = o[key], !(x is NSNull) { throw TokenizerError.unsupported(path: p + "." + key, what: key) }
            }
            if let u = o["unk_token"], !(u is NSNull) {
                let s = try J.str(u, p + ".unk_token")
                guard let id = t2i[s] else { throw TokenizerError.invalidJSON(path: p + ".unk_token", reason: "\(s) is not in the vocabulary") }
                unkId = id
            } else { unkId = nil }
            fuseUnk = try J.bool(o["fuse_unk"], p + ".fuse_unk", default: false)
            ignoreMerges = try J.bool(o["ignore_merges"], p + ".ignore_merges", default: false)
            var mm: [Int64: Int64] = [:]
            for (rank, e) in try J.arr(o["merges"], p + ".merges").enumerated() {
                let mp = p + ".merges[\(rank)]"
                let a: String, b: String
                if let s = e as? String {
                    let parts = s.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
                    guard parts.count == 2 else { throw TokenizerError.invalidJSON(path: mp, reason: "expected \"left right\"") }
                    a = String(parts[0]); b = String(parts[1])
                } else {
                    let arr = try J.arr(e, mp)
                    guard arr.count == 2 else { throw TokenizerError.invalidJSON(path: mp, reason: "expected [left, right]") }
                    a = try J.str(arr[0], mp + "[0]"); b = try J.str(arr[1], mp + "[1]")
                }
                guard let ia = t2i[a], let ib = t2i[b], let im = t2i[a + b] else {
                    throw TokenizerError.invalidJSON(path: mp, reason: "merge \(a) + \(b) uses a token that is not in the vocabulary")
                }
                let key = Int64(ia) << 32 | Int64(ib)
                if mm[key] == nil { mm[key] = Int64(rank) << 32 | Int64(im) }
            }
            merges = PairMap(mm)
            sc = []
        default:
            throw TokenizerError.unsupported(path: p + ".type", what: "model \(type)")
        }
        byteFallback = try J.bool(o["byte_fallback"], p + ".byte_fallback", default: false)
        vocab = v; scores = sc; tokenToId = t2i
        minScore = sc.min() ?? 0
        // Unigram: all pieces (first id wins on duplicates, like tokenizers' token_to_ids).
        // BPE: used for single-character lookups.
        trie = ByteTrie(v.enumerated().map { (Array($0.element.utf8), $0.offset) }.reversed())
        byteIds = (0..<256).map { t2i[String(format: "<0x%02X>", $0)] ?? -1 }
    }

    func encodeWord(_ w: String, into ids: inout [Int]) {
        switch kind {
        case .unigram: encodeUnigram(w, &ids)
        case .bpe: encodeBPE(w, &ids)
        }
    }

    /// A token string that is not in the vocabulary: its bytes as <0xNN> pieces when byte
    /// fallback is on and all exist, else the unk id (tokenizers' Unigram/BPE byte_fallback).
    private func emitUnknown(_ bytes: ArraySlice<UInt8>, _ ids: inout [Int]) {
        if byteFallback && bytes.allSatisfy({ byteIds[Int($0)] >= 0 }) {
            for b in bytes { ids.append(byteIds[Int(b)]) }
        } else if let u = unkId {
            ids.append(u)
        }
    }

    // tokenizers/src/models/unigram/model.rs, encode_optimized (f64 scores, K_UNK_PENALTY = 10).
    private func encodeUnigram(_ w: String, _ ids: inout [Int]) {
        let bytes = Array(w.utf8)
        let n = bytes.count
        var best = [Double](repeating: 0, count: n + 1)
        var startsAt = [Int](repeating: -1, count: n + 1)
        var bestId = [Int](repeating: -1, count: n + 1)
        let unkScore = minScore - 10
        bytes.withUnsafeBufferPointer { b in
            var pos = 0
            while pos < n {
                let here = best[pos]
                let mblen = min(utf8CharLength(b[pos]), n - pos)
                var single = false
                trie.forEachPrefix(b, from: pos, to: n) { len, id in
                    let cand = scores[id] + here
                    let t = pos + len
                    if startsAt[t] == -1 || cand > best[t] { best[t] = cand; startsAt[t] = pos; bestId[t] = id }
                    if len == mblen { single = true }
                }
                if !single, let u = unkId {
                    let t = pos + mblen
                    let cand = unkScore + here
                    if startsAt[t] == -1 || cand > best[t] { best[t] = cand; startsAt[t] = pos; bestId[t] = u }
                }
                pos += mblen
            }
        }
        var segs: [(Int, Int, Int)] = []
        var e = n
        while e > 0 {
            let s = startsAt[e]
            if s < 0 { break }
            // Consecutive unknowns are fused into one token (fuse_unk is always on for Unigram).
            if bestId[e] == unkId, let last = segs.last, last.2 == unkId, last.0 == e {
                segs[segs.count - 1] = (s, last.1, last.2)
            } else {
                segs.append((s, e, bestId[e]))
            }
            e = s
        }
        for (s, e, id) in segs.reversed() {
            if id == unkId { emitUnknown(bytes[s..<e], &ids) } else { ids.append(id) }
        }
    }

    private struct Merge: Comparable {
        let rank: Int, pos: Int, newId: Int
        // Min-heap on (rank, pos) through the max-heap by reversing the order.
        static func < (a: Merge, b: Merge) -> Bool { a.rank > b.rank || (a.rank == b.rank && a.pos > b.pos) }
    }

    @inline(__always) private func mergeLookup(_ a: Int, _ b: Int) -> (rank: Int, id: Int)? {
        let v = merges.get(Int64(a) << 32 | Int64(b))
        return v < 0 ? nil : (Int(v >> 32), Int(v & 0xFFFF_FFFF))
    }

    // tokenizers/src/models/bpe/model.rs merge_word + word.rs merge_all.
    private func encodeBPE(_ w: String, _ ids: inout [Int]) {
        if ignoreMerges, let id = tokenToId[w] { ids.append(id); return }
        // Symbols as parallel arrays in a struct: mutations stay statically checked (a nested
        // func capturing the arrays cost dynamic exclusivity checks on every push).
        let bytes = Array(w.utf8)
        var st = BPESymbols(capacity: bytes.count)
        var pendingUnk: (Int, Int)?
        var i = 0
        while i < bytes.count {
            let l = min(utf8CharLength(bytes[i]), bytes.count - i)
            let found = bytes.withUnsafeBufferPointer { trie.exact($0, from: i, to: i + l) }
            if let id = found {
                if let u = pendingUnk { st.push(u.0, u.1); pendingUnk = nil }
                st.push(id, l)
            } else if byteFallback && (i..<(i + l)).allSatisfy({ byteIds[Int(bytes[$0])] >= 0 }) {
                if let u = pendingUnk { st.push(u.0, u.1); pendingUnk = nil }
                for k in i..<(i + l) { st.push(byteIds[Int(bytes[k])], 1) }
            } else if let u = unkId {
                if fuseUnk, let p = pendingUnk { pendingUnk = (p.0, p.1 + l) } else {
                    if let p = pendingUnk { st.push(p.0, p.1) }
                    pendingUnk = (u, l)
                }
            }
            i += l
        }
        if let u = pendingUnk { st.push(u.0, u.1) }
        var sym = st.sym, lens = st.lens, prev = st.prev, next = st.next
        if sym.isEmpty { return }
        next[sym.count - 1] = -1
        var heap = Heap<Merge>()
        for i in 0..<(sym.count - 1) {
            if let m = mergeLookup(sym[i], sym[i + 1]) { heap.push(Merge(rank: m.rank, pos: i, newId: m.id)) }
        }
        while let top = heap.pop() {
            if lens[top.pos] == 0 || next[top.pos] == -1 { continue }
            let np = next[top.pos]
            guard let m = mergeLookup(sym[top.pos], sym[np]), m.id == top.newId else { continue }
            sym[top.pos] = top.newId
            lens[top.pos] += lens[np]
            next[top.pos] = next[np]
            lens[np] = 0
            if next[np] >= 0 && next[np] < sym.count { prev[next[np]] = top.pos }
            let cp = prev[top.pos]
            if cp >= 0, let m2 = mergeLookup(sym[cp], sym[top.pos]) {
                heap.push(Merge(rank: m2.rank, pos: cp, newId: m2.id))
            }
            let cn = next[top.pos]
            if cn >= 0 && cn < sym.count, let m3 = mergeLookup(sym[top.pos], sym[cn]) {
                heap.push(Merge(rank: m3.rank, pos: top.pos, newId: m3.id))
            }
        }
        var k = 0
        while k >= 0 && k < sym.count {
            if lens[k] > 0 { ids.append(sym[k]) }
            k = next[k]
        }
    }
}
