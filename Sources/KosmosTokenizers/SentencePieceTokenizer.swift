import Foundation

/// A SentencePiece `.model` (unigram or BPE) that encodes and decodes like the Python
/// `sentencepiece.SentencePieceProcessor` with default options.
public final class SentencePieceTokenizer: Tokenizer, @unchecked Sendable {
    public let model: SentencePieceModel
    let normalizer: SentencePieceNormalizer
    /// Pieces the encoder may emit from text: NORMAL, USER_DEFINED and UNUSED, as in
    /// model_interface.cc (`pieces_`); CONTROL/UNKNOWN/BYTE live in `reserved`.
    let pieceTrie: ByteTrie
    let userDefinedTrie: ByteTrie?
    let scores: [Float]
    /// Piece kinds as bytes for the hot loop.
    let kinds: [UInt8]
    /// BPE: (left piece id, right piece id) -> id of the piece spelled left+right, for every way
    /// a piece splits into two pieces. Same answers as looking the concatenation up, faster.
    let pairMerges: PairMap
    /// BPE merges can be run word by word (see encodeBPE).
    let bpeWordLocal: Bool
    static let kindUnused: UInt8 = 5
    static let kindUserDefined: UInt8 = 4
    let types: [SentencePieceModel.PieceType]
    let pieceBytes: [[UInt8]]
    let unkId: Int
    /// `<0xNN>` piece id for each byte, when byte fallback is on.
    let byteIds: [Int]
    let byteValueOfId: [Int16]
    let minScore: Float
    let maxScore: Float
    private var lookup: [String: Int] = [:]
    public let specialIds: SpecialTokenIds

    public convenience init(contentsOf url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw TokenizerError.unreadable(path: url.path, reason: error.localizedDescription)
        }
        try self.init(data: data)
    }

    public init(data: Data) throws {
        let m = try SentencePieceModel(data: data)
        model = m
        var unk: Int?
        var trieEntries: [([UInt8], Int)] = []
        var udEntries: [([UInt8], Int)] = []
        var byteIdsTmp = [Int](repeating: -1, count: 256)
        var byteVal = [Int16](repeating: -1, count: m.pieces.count)
        var lo = Float.greatestFiniteMagnitude
        // The reference initialises max_score_ to FLT_MIN (the smallest positive float), not -FLT_MAX.
        var hi = Float.leastNormalMagnitude
        for (i, p) in m.pieces.enumerated() {
            if lookup[p.piece] != nil {
                throw TokenizerError.invalidModel(reason: "piece \"\(p.piece)\" (id \(i)) is defined twice")
            }
            lookup[p.piece] = i
            let bytes = Array(p.piece.utf8)
            switch p.type {
            case .normal, .unused:
                trieEntries.append((bytes, i))
            case .userDefined:
                trieEntries.append((bytes, i))
                udEntries.append((bytes, i))
            case .unknown:
                if unk != nil { throw TokenizerError.invalidModel(reason: "more than one UNKNOWN piece (second at id \(i))") }
                unk = i
            case .byte:
                guard let v = Self.byteValue(p.piece) else {
                    throw TokenizerError.invalidModel(reason: "BYTE piece \"\(p.piece)\" (id \(i)) is not of the form <0xNN>")
                }
                byteIdsTmp[v] = i
                byteVal[i] = Int16(v)
            case .control:
                break
            }
            if p.type == .normal {
                lo = min(lo, p.score)
                hi = max(hi, p.score)
            }
        }
        guard let unkId = unk else { throw TokenizerError.invalidModel(reason: "the model defines no UNKNOWN piece") }
        if m.trainer.byteFallback, let missing = byteIdsTmp.firstIndex(of: -1) {
            throw TokenizerError.invalidModel(reason: String(format: "byte_fallback is on but piece <0x%02X> is missing", missing))
        }
        self.unkId = unkId
        minScore = lo
        maxScore = hi
        byteIds = byteIdsTmp
        byteValueOfId = byteVal
        scores = m.pieces.map(\.score)
        types = m.pieces.map(\.type)
        kinds = m.pieces.map { UInt8($0.type.rawValue) }
        pieceBytes = m.pieces.map { Array($0.piece.utf8) }
        pieceTrie = ByteTrie(trieEntries)
        var pm: [Int64: Int64] = [:]
        if m.trainer.modelType == .bpe {
            let trie = pieceTrie
            for (bytes, id) in trieEntries where bytes.count > 1 {
                bytes.withUnsafeBufferPointer { bp in
                    for k in 1..<bp.count {
                        if let l = trie.exact(bp, from: 0, to: k), let r = trie.exact(bp, from: k, to: bp.count) {
                            pm[Int64(l) << 32 | Int64(r)] = Int64(id)
                        }
                    }
                }
            }
        }
        pairMerges = PairMap(pm)
        // Word-local merging is exact only when no piece has U+2581 after other text and no
        // piece is UNUSED (whose re-segmentation record is shared across the whole line).
        bpeWordLocal = m.trainer.modelType == .bpe && !m.pieces.contains(where: { $0.type == .unused }) && trieEntries.allSatisfy { entry in
            let u = entry.0
            var seenOther = false
            var j = 0
            while j < u.count {
                let isSpace = j + 2 < u.count && u[j] == 0xE2 && u[j + 1] == 0x96 && u[j + 2] == 0x81
                if isSpace {
                    if seenOther { return false }
                    j += 3
                } else {
                    seenOther = true
                    j += 1
                }
            }
            return true
        }
        userDefinedTrie = udEntries.isEmpty ? nil : ByteTrie(udEntries)
        let cm = m.normalizer.precompiledCharsmap.isEmpty ? nil : try PrecompiledCharsmap(m.normalizer.precompiledCharsmap)
        normalizer = SentencePieceNormalizer(
            charsmap: cm, addDummyPrefix: m.normalizer.addDummyPrefix,
            removeExtraWhitespaces: m.normalizer.removeExtraWhitespaces,
            escapeWhitespaces: m.normalizer.escapeWhitespaces,
            treatWhitespaceAsSuffix: m.trainer.treatWhitespaceAsSuffix, userDefined: userDefinedTrie)
        if m.trainer.modelType != .unigram && m.trainer.modelType != .bpe {
            throw TokenizerError.invalidModel(reason: "model_type \(m.trainer.modelType) is not supported (only UNIGRAM and BPE)")
        }
        func validId(_ id: Int) -> Int? { id >= 0 && id < m.pieces.count ? id : nil }
        specialIds = SpecialTokenIds(bos: validId(m.trainer.bosId), eos: validId(m.trainer.eosId),
                                     pad: validId(m.trainer.padId), unk: unkId)
    }

    static func byteValue(_ piece: String) -> Int? {
        let u = Array(piece.utf8)
        guard u.count == 6, u[0] == 0x3C, u[1] == 0x30, u[2] == 0x78, u[5] == 0x3E else { return nil }
        return Int(String(decoding: u[3...4], as: UTF8.self), radix: 16)
    }

    public var vocabularySize: Int { model.pieces.count }
    public func id(of token: String) -> Int? { lookup[token] }
    public func token(of id: Int) -> String? { id >= 0 && id < model.pieces.count ? model.pieces[id].piece : nil }

    /// Normalised UTF-8 bytes (with U+2581 for spaces) as the encoder sees them.
    public func normalize(_ text: String) -> String { String(decoding: normalizer.normalize(text), as: UTF8.self) }

    public func encode(_ text: String) -> [Int] {
        let norm = normalizer.normalize(text)
        var ids: [Int] = []
        ids.reserveCapacity(norm.count / 3 + 1)
        norm.withUnsafeBufferPointer { b in
            // (start, end, id) segments from the model, then the processor's post-pass.
            var segs: [(Int, Int, Int)] = []
            if model.trainer.modelType == .bpe { encodeBPE(b, &segs) } else { encodeUnigram(b, &segs) }
            // Consecutive unknown segments are reported as one unknown piece by the reference
            // (observed: "ᚠᚡᚢ" -> one <unk> in both unigram and BPE); with byte_fallback that piece
            // is spelled out as <0xNN> pieces (sentencepiece_processor.cc, Encode).
            var k = 0
            while k < segs.count {
                var (s, e, id) = segs[k]
                if id == unkId {
                    while k + 1 < segs.count && segs[k + 1].2 == unkId { k += 1; e = segs[k].1 }
                    if model.trainer.byteFallback {
                        for p in s..<e { ids.append(byteIds[Int(b[p])]) }
                    } else {
                        ids.append(unkId)
                    }
                } else {
                    ids.append(id)
                }
                _ = s; s = 0
                k += 1
            }
        }
        return ids
    }

    // MARK: Unigram (unigram_model.cc, EncodeOptimized): Viterbi over all pieces starting at each char.

    private func encodeUnigram(_ b: UnsafeBufferPointer<UInt8>, _ segs: inout [(Int, Int, Int)]) {
        let n = b.count
        if n == 0 { return }
        let unkScore = minScore - 10.0  // kUnkPenalty
        let unk = unkId
        let maxScore = self.maxScore
        // One allocation per call, raw pointers in the loop: no array uniqueness checks.
        let bestScore = UnsafeMutablePointer<Float>.allocate(capacity: n + 1)
        let startsAt = UnsafeMutablePointer<Int32>.allocate(capacity: n + 1)
        let bestId = UnsafeMutablePointer<Int32>.allocate(capacity: n + 1)
        defer { bestScore.deallocate(); startsAt.deallocate(); bestId.deallocate() }
        bestScore.initialize(repeating: 0, count: n + 1)
        startsAt.initialize(repeating: -1, count: n + 1)
        bestId.initialize(repeating: -1, count: n + 1)
        scores.withUnsafeBufferPointer { sc in
        kinds.withUnsafeBufferPointer { kd in
            var pos = 0
            while pos < n {
                // Positions inside a multi-byte char are never starts, as in the reference.
                let here = bestScore[pos]
                let mblen = min(utf8CharLength(b[pos]), n - pos)
                var hasSingle = false
                pieceTrie.forEachPrefix(b, from: pos, to: n) { len, id in
                    let k = kd[id]
                    if k == Self.kindUnused { return }
                    let score: Float = k == Self.kindUserDefined ? (Float(len) * maxScore - 0.1) : sc[id]
                    let cand = score + here
                    let target = pos + len
                    if startsAt[target] == -1 || cand > bestScore[target] {
                        bestScore[target] = cand
                        startsAt[target] = Int32(pos)
                        bestId[target] = Int32(id)
                    }
                    if len == mblen { hasSingle = true }
                }
                if !hasSingle {
                    let target = pos + mblen
                    let cand = unkScore + here
                    if startsAt[target] == -1 || cand > bestScore[target] {
                        bestScore[target] = cand
                        startsAt[target] = Int32(pos)
                        bestId[target] = Int32(unk)
                    }
                }
                pos += mblen
            }
        }
        }
        let first = segs.count
        var endsAt = n
        while endsAt > 0 {
            let s = Int(startsAt[endsAt])
            if s < 0 { break }  // unreachable for a lattice built over whole characters
            segs.append((s, endsAt, Int(bestId[endsAt])))
            endsAt = s
        }
        segs[first...].reverse()
    }

    // MARK: BPE (bpe_model.cc, Encode): repeatedly merge the best-scoring adjacent pair.

    private struct Pair: Comparable {
        var score: Float
        var left: Int
        var right: Int
        var size: Int
        var id: Int32
        // Max-heap order: higher score first, then the leftmost pair (the reference's comparator).
        static func < (a: Pair, b: Pair) -> Bool { a.score < b.score || (a.score == b.score && a.left > b.left) }
    }

    private func encodeBPE(_ b: UnsafeBufferPointer<UInt8>, _ segs: inout [(Int, Int, Int)]) {
        let n = b.count
        if n == 0 { return }
        // Initial symbols: characters, or whole user-defined symbols (frozen, never merged).
        var start: [Int] = [], len: [Int] = [], prev: [Int] = [], next: [Int] = [], frozen: [Bool] = []
        var symId: [Int32] = []  // piece id of each symbol, -1 when its text is not a piece
        start.reserveCapacity(n); len.reserveCapacity(n); symId.reserveCapacity(n)
        var i = 0
        while i < n {
            var l = min(utf8CharLength(b[i]), n - i)
            var fz = false
            if let ud = userDefinedTrie, let (ml, _) = ud.longestPrefix(b, from: i, to: n) { l = ml; fz = true }
            symId.append(Int32(pieceTrie.exact(b, from: i, to: i + l) ?? -1))
            start.append(i); len.append(l); frozen.append(fz)
            prev.append(start.count - 2)
            i += l
            next.append(start.count)
        }
        let count = start.count
        var heap = Heap<Pair>()
        var revMerge: [Int: (Int, Int, Int, Int)] = [:]  // unused piece id -> (ls, le, rs, re)
        func maybeAdd(_ left: Int, _ right: Int, _ lo: Int, _ hi: Int) {
            if left < lo || right < lo || left >= hi || right >= hi || frozen[left] || frozen[right] { return }
            let s = start[left], e = start[right] + len[right]
            let found: Int32
            let a = symId[left], c = symId[right]
            if a >= 0 && c >= 0 {
                found = Int32(truncatingIfNeeded: pairMerges.get(Int64(a) << 32 | Int64(c)))
            } else {
                found = Int32(pieceTrie.exact(b, from: s, to: e) ?? -1)
            }
            if found < 0 { return }
            let id = Int(found)
            heap.push(Pair(score: scores[id], left: left, right: right, size: e - s, id: found))
            if kinds[id] == Self.kindUnused { revMerge[id] = (s, start[right], start[right], e) }
        }
        // Merge within [lo, hi). When no piece has U+2581 after its first non-U+2581 character
        // (and none is UNUSED), no merge can cross the start of a new word, so each word is
        // merged on its own: same result as one pass over the line, with much smaller heaps.
        func mergeRange(_ lo: Int, _ hi: Int) {
            if hi - lo < 2 { return }
            heap.removeAll()
            for k in lo..<(hi - 1) { maybeAdd(k, k + 1, lo, hi) }
            while let top = heap.pop() {
                if len[top.left] == 0 || len[top.right] == 0 || len[top.left] + len[top.right] != top.size { continue }
                len[top.left] += len[top.right]
                symId[top.left] = top.id
                next[top.left] = next[top.right]
                if next[top.right] < hi { prev[next[top.right]] = top.left }
                len[top.right] = 0
                maybeAdd(prev[top.left], top.left, lo, hi)
                maybeAdd(top.left, next[top.left], lo, hi)
            }
        }
        if bpeWordLocal {
            var lo = 0
            for k in 1..<max(count, 1) {
                let st = start[k]
                let startsWord = b[st] == 0xE2 && st + 2 < n && b[st + 1] == 0x96 && b[st + 2] == 0x81
                let pst = start[k - 1]
                let prevIsSpace = b[pst] == 0xE2 && len[k - 1] == 3 && b[pst + 1] == 0x96 && b[pst + 2] == 0x81
                if startsWord && !prevIsSpace {
                    mergeRange(lo, k)
                    lo = k
                }
            }
            mergeRange(lo, count)
        } else {
            mergeRange(0, count)
        }
        func resegment(_ s: Int, _ e: Int) {
            let id = pieceTrie.exact(b, from: s, to: e)
            guard let id, kinds[id] == Self.kindUnused, let r = revMerge[id] else {
                segs.append((s, e, id ?? unkId))
                return
            }
            resegment(r.0, r.1)
            resegment(r.2, r.3)
        }
        var k = 0
        while k < count {
            resegment(start[k], start[k] + len[k])
            k = next[k]
        }
    }

    // MARK: Decode (sentencepiece_processor.cc, Decode)

    public func decode(_ ids: [Int]) -> String { decode(ids, atTextStart: true) }

    /// `atTextStart` false: the ids continue earlier text, so the dummy-prefix space is kept.
    func decode(_ ids: [Int], atTextStart: Bool) -> String {
        var out: [UInt8] = []
        var pendingBytes: [UInt8] = []
        let space = SentencePieceNormalizer.space
        let stripLead = model.normalizer.addDummyPrefix
        func flushBytes() {
            if pendingBytes.isEmpty { return }
            out.append(contentsOf: Array(decodeUTF8Lossy(pendingBytes).utf8))
            pendingBytes.removeAll()
        }
        // Leading-U+2581 strip at the start of text (the dummy prefix). Observed reference
        // behaviour (sentencepiece 0.2, see tokenizers_reference.py fixtures): control pieces are
        // skipped; with remove_extra_whitespaces the strip continues while nothing has been printed
        // yet, otherwise only the first printing piece is stripped; no trailing strip is done even
        // with treat_whitespace_as_suffix.
        var atStart = atTextStart
        for id in ids {
            guard id >= 0, id < types.count else { continue }  // out of range: use decodeChecked to reject
            switch types[id] {
            case .control:
                continue
            case .byte:
                pendingBytes.append(UInt8(byteValueOfId[id]))
                atStart = false
                continue
            case .unknown:
                flushBytes()
                out.append(contentsOf: Array(model.trainer.unkSurface.utf8))
                atStart = false
                continue
            default:
                flushBytes()
            }
            var piece = pieceBytes[id][...]
            if stripLead && atStart && piece.starts(with: space) { piece = piece.dropFirst(3) }
            if !(model.normalizer.removeExtraWhitespaces && piece.isEmpty) { atStart = false }
            var j = piece.startIndex
            while j < piece.endIndex {
                if j + 2 < piece.endIndex && piece[j] == 0xE2 && piece[j + 1] == 0x96 && piece[j + 2] == 0x81 {
                    out.append(0x20); j += 3
                } else {
                    out.append(piece[j]); j += 1
                }
            }
        }
        flushBytes()
        return String(decoding: out, as: UTF8.self)
    }
}

/// Open-addressing hash map from a 64-bit pair key to a piece id; Swift's `Dictionary` hashing
/// (SipHash) dominated BPE encoding time.
struct PairMap: Sendable {
    private var keys: [Int64]
    private var values: [Int64]
    private let mask: Int

    init(_ d: [Int64: Int64]) {
        var cap = 16
        while cap < d.count * 2 { cap <<= 1 }
        keys = [Int64](repeating: -1, count: cap)
        values = [Int64](repeating: -1, count: cap)
        mask = cap - 1
        for (k, v) in d {
            var h = Self.hash(k) & mask
            while keys[h] != -1 { h = (h + 1) & mask }
            keys[h] = k
            values[h] = v
        }
    }

    @inline(__always) private static func hash(_ k: Int64) -> Int {
        Int(truncatingIfNeeded: (UInt64(bitPattern: k) &* 0x9E37_79B9_7F4A_7C15) >> 29)
    }

    /// The value stored for `k`, or -1.
    @inline(__always) func get(_ k: Int64) -> Int64 {
        var h = Self.hash(k) & mask
        while true {
            let x = keys[h]
            if x == k { return values[h] }
            if x == -1 { return -1 }
            h = (h + 1) & mask
        }
    }
}

/// Binary max-heap.
struct Heap<T: Comparable> {
    private var items: [T] = []
    var isEmpty: Bool { items.isEmpty }
    mutating func removeAll() { items.removeAll(keepingCapacity: true) }
    mutating func push(_ x: T) {
        items.append(x)
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if items[p] < items[i] { items.swapAt(p, i); i = p } else { break }
        }
    }
    mutating func pop() -> T? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count && items[m] < items[l] { m = l }
                if r < items.count && items[m] < items[r] { m = r }
                if m == i { break }
                items.swapAt(i, m); i = m
            }
        }
        return top
    }
}
