import Foundation

/// A byte trie over UTF-8 piece strings, flattened into arrays after building so that lookups do
/// no hashing and no allocation: the root has a direct 256-entry table, inner nodes a short sorted
/// edge list (piece vocabularies fan out little below the first byte).
struct ByteTrie: Sendable {
    private var rootTable = [Int32](repeating: -1, count: 256)
    private var edgeStart: [Int32] = []
    private var edgeCount: [Int32] = []
    private var values: [Int32] = []
    private var labels: [UInt8] = []
    private var targets: [Int32] = []
    /// Nodes with many children (e.g. the one after U+2581, the word-start marker) get a dense
    /// 256-entry table so lookups stay O(1); `denseBase[node]` is its offset or -1.
    private var denseBase: [Int32] = []
    private var dense: [Int32] = []
    static let denseThreshold = 12

    /// True when some key starts with byte `b`.
    @inline(__always) func hasKey(startingWith b: UInt8) -> Bool { rootTable[Int(b)] >= 0 }

    var isEmpty: Bool { values.count <= 1 && (values.first ?? -1) < 0 }

    /// Builds from (key bytes, value); later duplicates overwrite earlier ones.
    init(_ entries: [([UInt8], Int)]) {
        // Build with per-node dictionaries, then flatten breadth-first.
        var children: [[UInt8: Int]] = [[:]]
        var vals: [Int32] = [-1]
        for (key, value) in entries where !key.isEmpty {
            var node = 0
            for b in key {
                if let next = children[node][b] {
                    node = next
                } else {
                    children.append([:])
                    vals.append(-1)
                    children[node][b] = children.count - 1
                    node = children.count - 1
                }
            }
            vals[node] = Int32(value)
        }
        // Renumber breadth-first so children of a node are contiguous in `labels`/`targets`.
        var order = [0]
        var newIndex = [Int](repeating: -1, count: children.count)
        newIndex[0] = 0
        var head = 0
        while head < order.count {
            let n = order[head]; head += 1
            for (_, c) in children[n].sorted(by: { $0.key < $1.key }) {
                newIndex[c] = order.count
                order.append(c)
            }
        }
        edgeStart = [Int32](repeating: 0, count: order.count)
        edgeCount = [Int32](repeating: 0, count: order.count)
        values = [Int32](repeating: -1, count: order.count)
        denseBase = [Int32](repeating: -1, count: order.count)
        for (ni, old) in order.enumerated() {
            values[ni] = vals[old]
            if ni != 0 && children[old].count >= Self.denseThreshold {
                denseBase[ni] = Int32(dense.count)
                var table = [Int32](repeating: -1, count: 256)
                for (b, c) in children[old] { table[Int(b)] = Int32(newIndex[c]) }
                dense.append(contentsOf: table)
            }
            edgeStart[ni] = Int32(labels.count)
            let sorted = children[old].sorted(by: { $0.key < $1.key })
            edgeCount[ni] = Int32(sorted.count)
            for (b, c) in sorted {
                labels.append(b)
                targets.append(Int32(newIndex[c]))
                if ni == 0 { rootTable[Int(b)] = Int32(newIndex[c]) }
            }
        }
    }

    @inline(__always)
    private func child(_ node: Int, _ b: UInt8) -> Int {
        if node == 0 { return Int(rootTable[Int(b)]) }
        let d = denseBase[node]
        if d >= 0 { return Int(dense[Int(d) + Int(b)]) }
        let s = Int(edgeStart[node]), e = s + Int(edgeCount[node])
        var i = s
        while i < e {
            let l = labels[i]
            if l == b { return Int(targets[i]) }
            if l > b { return -1 }
            i += 1
        }
        return -1
    }

    /// Calls `body(length, value)` for every key that is a prefix of `bytes[start..<end]`, shortest first.
    @inline(__always)
    func forEachPrefix(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int, _ body: (Int, Int) -> Void) {
        var node = 0
        var i = start
        while i < end {
            node = child(node, bytes[i])
            if node < 0 { return }
            i += 1
            let v = values[node]
            if v >= 0 { body(i - start, Int(v)) }
        }
    }

    /// Longest key that is a prefix of `bytes[start..<end]`: (length, value), or nil.
    @inline(__always)
    func longestPrefix(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int) -> (Int, Int)? {
        var best: (Int, Int)?
        forEachPrefix(bytes, from: start, to: end) { best = ($0, $1) }
        return best
    }

    /// Exact lookup of `bytes[start..<end]`.
    @inline(__always)
    func exact(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int) -> Int? {
        var node = 0
        var i = start
        while i < end {
            node = child(node, bytes[i])
            if node < 0 { return nil }
            i += 1
        }
        let v = values[node]
        return v >= 0 ? Int(v) : nil
    }

    func exact(_ key: [UInt8]) -> Int? {
        key.withUnsafeBufferPointer { exact($0, from: 0, to: $0.count) }
    }
}

/// Length of the UTF-8 sequence a lead byte announces, as sentencepiece's `OneCharLen` does
/// (a lookup on the high nibble; continuation bytes count as 1 so malformed input still advances).
@inline(__always)
func utf8CharLength(_ lead: UInt8) -> Int {
    switch lead >> 4 {
    case 0xC, 0xD: return 2
    case 0xE: return 3
    case 0xF: return 4
    default: return 1
    }
}

/// Decodes one UTF-8 scalar at `i` with full validation (shortest form, no surrogates, <= U+10FFFF).
/// Returns the byte length if valid, else nil. Mirrors sentencepiece's `string_util::DecodeUTF8`.
@inline(__always)
func validUTF8Length(_ b: UnsafeBufferPointer<UInt8>, _ i: Int, _ end: Int) -> Int? {
    let c0 = b[i]
    if c0 < 0x80 { return 1 }
    @inline(__always) func cont(_ k: Int) -> UInt32? {
        guard k < end, b[k] & 0xC0 == 0x80 else { return nil }
        return UInt32(b[k] & 0x3F)
    }
    if c0 & 0xE0 == 0xC0 {
        guard let c1 = cont(i + 1) else { return nil }
        let cp = (UInt32(c0 & 0x1F) << 6) | c1
        return cp >= 0x80 ? 2 : nil
    }
    if c0 & 0xF0 == 0xE0 {
        guard let c1 = cont(i + 1), let c2 = cont(i + 2) else { return nil }
        let cp = (UInt32(c0 & 0x0F) << 12) | (c1 << 6) | c2
        return (cp >= 0x800 && !(0xD800...0xDFFF).contains(cp)) ? 3 : nil
    }
    if c0 & 0xF8 == 0xF0 {
        guard let c1 = cont(i + 1), let c2 = cont(i + 2), let c3 = cont(i + 3) else { return nil }
        let cp = (UInt32(c0 & 0x07) << 18) | (c1 << 12) | (c2 << 6) | c3
        return (cp >= 0x10000 && cp <= 0x10FFFF) ? 4 : nil
    }
    return nil
}

/// Bytes to text where each byte that does not start a valid UTF-8 sequence becomes U+FFFD, as
/// sentencepiece does when decoding byte pieces (one replacement per bad byte).
func decodeUTF8Lossy(_ bytes: [UInt8]) -> String {
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count)
    bytes.withUnsafeBufferPointer { b in
        var i = 0
        while i < b.count {
            if let n = validUTF8Length(b, i, b.count) {
                out.append(contentsOf: b[i..<(i + n)])
                i += n
            } else {
                out.append(contentsOf: [0xEF, 0xBF, 0xBD])
                i += 1
            }
        }
    }
    return String(decoding: out, as: UTF8.self)
}
