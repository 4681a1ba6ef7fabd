import Foundation

/// Text normalisation exactly as sentencepiece's `Normalizer::Normalize` (normalizer.cc) does it:
/// user-defined symbols pass through untouched, everything else goes through the precompiled
/// charsmap (longest match), then spaces are squeezed / escaped to U+2581 and the dummy prefix
/// is added. Works on UTF-8 bytes.
struct SentencePieceNormalizer: Sendable {
    init(charsmap: PrecompiledCharsmap?, addDummyPrefix: Bool, removeExtraWhitespaces: Bool, escapeWhitespaces: Bool,
         treatWhitespaceAsSuffix: Bool, userDefined: ByteTrie?) {
        self.charsmap = charsmap
        self.addDummyPrefix = addDummyPrefix
        self.removeExtraWhitespaces = removeExtraWhitespaces
        self.escapeWhitespaces = escapeWhitespaces
        self.treatWhitespaceAsSuffix = treatWhitespaceAsSuffix
        self.userDefined = userDefined
        // ASCII bytes that neither a user-defined symbol nor the charsmap can touch normalise to
        // themselves; the hot loop copies them without the general lookup.
        // An ASCII byte also passes when the next byte cannot continue any charsmap key.
        var pass = [Bool](repeating: false, count: 128)
        var second = [Bool](repeating: false, count: 128 * 256)
        for c in 1..<128 {
            let b = UInt8(c)
            if let ud = userDefined, ud.hasKey(startingWith: b) { continue }
            if let cm = charsmap {
                let info = cm.firstByteInfo(b)
                if info.mappedAlone { continue }
                for d in 0..<256 where info.seconds[d] { second[c * 256 + d] = true }
            }
            pass[c] = true
        }
        asciiPassthrough = pass
        asciiSecondContinues = second
    }

    let asciiPassthrough: [Bool]
    /// [c * 256 + d]: some charsmap key starts with bytes c, d.
    let asciiSecondContinues: [Bool]
    let charsmap: PrecompiledCharsmap?
    let addDummyPrefix: Bool
    let removeExtraWhitespaces: Bool
    let escapeWhitespaces: Bool
    let treatWhitespaceAsSuffix: Bool
    /// User-defined symbols; the reference matches them before normalisation (`SetPrefixMatcher`).
    let userDefined: ByteTrie?

    static let space: [UInt8] = [0xE2, 0x96, 0x81]

    /// One step of `NormalizePrefix`: appends the normalised form of the next unit at `i` to
    /// `out` and returns how many input bytes it consumed.
    @inline(__always)
    private func normalizePrefix(_ b: UnsafeBufferPointer<UInt8>, _ i: Int, _ end: Int, _ out: inout [UInt8]) -> Int {
        if let ud = userDefined, let (len, _) = ud.longestPrefix(b, from: i, to: end) {
            out.append(contentsOf: b[i..<(i + len)])
            return len
        }
        if let cm = charsmap, let (len, off) = cm.longestMatch(b, i, end), cm.appendReplacement(at: off, to: &out) {
            return len
        }
        if let n = validUTF8Length(b, i, end) {
            out.append(contentsOf: b[i..<(i + n)])
            return n
        }
        // Invalid UTF-8: the reference emits U+FFFD and consumes one byte.
        out.append(contentsOf: [0xEF, 0xBF, 0xBD])
        return 1
    }

    func normalize(_ text: String) -> [UInt8] {
        var t = text
        return t.withUTF8 { normalize($0) }
    }

    func normalize(_ b: UnsafeBufferPointer<UInt8>) -> [UInt8] {
        let end = b.count
        var out: [UInt8] = []
        out.reserveCapacity(end + end / 4 + 3)
        var scratch: [UInt8] = []
        scratch.reserveCapacity(32)
        var i = 0
        if removeExtraWhitespaces {
            // Drop leading units that normalise to exactly " ".
            while i < end {
                scratch.removeAll(keepingCapacity: true)
                let n = normalizePrefix(b, i, end, &scratch)
                if scratch.count == 1 && scratch[0] == 0x20 { i += n } else { break }
            }
        }
        if i >= end { return [] }
        let ws: [UInt8] = escapeWhitespaces ? Self.space : [0x20]
        if !treatWhitespaceAsSuffix && addDummyPrefix { out.append(contentsOf: ws) }
        var isPrevSpace = removeExtraWhitespaces
        while i < end {
            let c = b[i]
            if c < 0x80 && asciiPassthrough[Int(c)] && (i + 1 >= end || !asciiSecondContinues[Int(c) &* 256 &+ Int(b[i + 1])]) {
                // Same effect as the general path below for a unit that normalises to `c`.
                if c == 0x20 {
                    if !(isPrevSpace && removeExtraWhitespaces) {
                        if escapeWhitespaces { out.append(0xE2); out.append(0x96); out.append(0x81) } else { out.append(0x20) }
                        isPrevSpace = true
                    }
                } else {
                    out.append(c)
                    isPrevSpace = false
                }
                if !removeExtraWhitespaces { isPrevSpace = false }
                i += 1
                continue
            }
            scratch.removeAll(keepingCapacity: true)
            let n = normalizePrefix(b, i, end, &scratch)
            var s = 0
            if isPrevSpace && removeExtraWhitespaces {
                while s < scratch.count && scratch[s] == 0x20 { s += 1 }
            }
            if s < scratch.count {
                for k in s..<scratch.count {
                    let c = scratch[k]
                    if escapeWhitespaces && c == 0x20 { out.append(contentsOf: Self.space) } else { out.append(c) }
                }
                isPrevSpace = scratch[scratch.count - 1] == 0x20
            }
            i += n
            if !removeExtraWhitespaces { isPrevSpace = false }
        }
        if removeExtraWhitespaces {
            while out.count >= ws.count && out[(out.count - ws.count)...].elementsEqual(ws) {
                out.removeLast(ws.count)
            }
        }
        if treatWhitespaceAsSuffix && addDummyPrefix { out.append(contentsOf: ws) }
        return out
    }
}
