import Foundation

/// SentencePiece's precompiled normalisation map (normalizer.cc, `DecodePrecompiledCharsMap`):
/// a little-endian uint32 trie size, a Darts-clone double-array trie of that many bytes, then a
/// blob of NUL-terminated replacement strings the trie's values point into. The same blob is
/// what HF `tokenizer.json` stores (base64) in a `Precompiled` normalizer.
struct PrecompiledCharsmap: Sendable {
    private let units: [UInt32]
    private let normalized: [UInt8]

    init(_ blob: [UInt8]) throws {
        guard blob.count >= 4 else {
            throw TokenizerError.invalidModel(reason: "precompiled_charsmap is \(blob.count) bytes, too short for its header")
        }
        let trieSize = Int(UInt32(blob[0]) | UInt32(blob[1]) << 8 | UInt32(blob[2]) << 16 | UInt32(blob[3]) << 24)
        guard trieSize % 4 == 0, trieSize >= 4, trieSize <= blob.count - 4 else {
            throw TokenizerError.invalidModel(reason: "precompiled_charsmap trie size \(trieSize) does not fit in its \(blob.count)-byte blob")
        }
        var u = [UInt32](repeating: 0, count: trieSize / 4)
        for k in 0..<u.count {
            let o = 4 + 4 * k
            u[k] = UInt32(blob[o]) | UInt32(blob[o + 1]) << 8 | UInt32(blob[o + 2]) << 16 | UInt32(blob[o + 3]) << 24
        }
        units = u
        normalized = Array(blob[(4 + trieSize)...])
        // Every replacement must end in NUL inside the blob, or a lookup would run off its end.
        if let last = normalized.last, last != 0 {
            throw TokenizerError.invalidModel(reason: "precompiled_charsmap normalized strings are not NUL-terminated")
        }
    }

    /// For a first byte `c`: whether `c` alone has a replacement, and which second bytes continue
    /// a key (NFKC maps e.g. "A" + U+0300, so keys start with ASCII letters).
    func firstByteInfo(_ c: UInt8) -> (mappedAlone: Bool, seconds: [Bool]) {
        var seconds = [Bool](repeating: false, count: 256)
        let n = units.count
        guard c != 0 else { return (false, seconds) }
        var pos = Self.offset(units[0]) ^ Int(c)
        guard pos >= 0, pos < n, Self.label(units[pos]) == UInt32(c) else { return (false, seconds) }
        let unit = units[pos]
        pos ^= Self.offset(unit)
        let alone = Self.hasLeaf(unit)
        for d in 1..<256 {
            let q = pos ^ d
            if q >= 0, q < n, Self.label(units[q]) == UInt32(d) { seconds[d] = true }
        }
        return (alone, seconds)
    }

    // Darts-clone unit layout (darts.h, DoubleArrayUnit).
    @inline(__always) private static func hasLeaf(_ u: UInt32) -> Bool { (u >> 8) & 1 == 1 }
    @inline(__always) private static func value(_ u: UInt32) -> Int { Int(u & 0x7FFF_FFFF) }
    @inline(__always) private static func label(_ u: UInt32) -> UInt32 { u & (0x8000_0000 | 0xFF) }
    @inline(__always) private static func offset(_ u: UInt32) -> Int { Int((u >> 10) << ((u & (1 << 9)) >> 6)) }

    /// Longest match at `start`: (matched byte length, offset of its replacement in the blob).
    /// Out-of-range trie positions (corrupt data) end the search instead of trapping.
    @inline(__always)
    func longestMatch(_ b: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> (Int, Int)? {
        longestMatch(b, start, end, stopAtFirst: false)
    }

    func longestOrShortest(_ b: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int, shortest: Bool) -> Int? {
        longestMatch(b, start, end, stopAtFirst: shortest)?.1
    }

    @inline(__always)
    private func longestMatch(_ b: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int, stopAtFirst: Bool) -> (Int, Int)? {
        let n = units.count
        var pos = 0
        var unit = units[0]
        pos ^= Self.offset(unit)
        var best: (Int, Int)?
        var i = start
        while i < end {
            let c = b[i]
            // Darts stops at NUL in the key, like C strings.
            if c == 0 { break }
            pos ^= Int(c)
            guard pos >= 0, pos < n else { break }
            unit = units[pos]
            if Self.label(unit) != UInt32(c) { break }
            pos ^= Self.offset(unit)
            i += 1
            if Self.hasLeaf(unit) {
                guard pos >= 0, pos < n else { break }
                best = (i - start, Self.value(units[pos]))
                if stopAtFirst { return best }
            }
        }
        return best
    }

    /// Appends the replacement string at `offset`; returns false if the offset is out of range.
    @inline(__always)
    func appendReplacement(at offset: Int, to out: inout [UInt8]) -> Bool {
        guard offset >= 0, offset < normalized.count else { return false }
        var k = offset
        while k < normalized.count, normalized[k] != 0 {
            out.append(normalized[k])
            k += 1
        }
        return true
    }

    func replacementIsEmpty(at offset: Int) -> Bool { offset < normalized.count && normalized[offset] == 0 }
}

extension PrecompiledCharsmap {
    /// First (shortest) match's replacement offset — what tokenizers' spm_precompiled `transform` uses.
    func shortestMatchOffset(_ b: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Int? {
        longestOrShortest(b, start, end, shortest: true)
    }
}
