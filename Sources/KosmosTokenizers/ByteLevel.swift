import Foundation

/// GPT-2's reversible map of the 256 byte values to printable characters, which byte-level BPE
/// vocabularies are written in (tokenizers' `ByteLevel`): the bytes of '!'…'~', '¡'…'¬' and
/// '®'…'ÿ' stand for themselves; the other 68, in increasing order, become U+0100, U+0101, ….
enum ByteLevelAlphabet {
    /// The character (one scalar) that stands for each byte.
    static let scalars: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            if (33...126).contains(byte) || (161...172).contains(byte) || (174...255).contains(byte) {
                table[byte] = Unicode.Scalar(UInt32(byte))!
            } else {
                table[byte] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return table
    }()

    /// The byte each alphabet character stands for.
    static let bytes: [Unicode.Scalar: UInt8] = {
        var map: [Unicode.Scalar: UInt8] = [:]
        for (byte, scalar) in scalars.enumerated() { map[scalar] = UInt8(byte) }
        return map
    }()

    /// Text's UTF-8 bytes written in the alphabet.
    static func encode(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        for byte in text.utf8 { out.append(scalars[Int(byte)]) }
        return String(out)
    }

    /// tokenizers' ByteLevel decoder: each token's characters back to their bytes (a token with a
    /// character outside the alphabet, such as an added token, keeps its own UTF-8), then all the
    /// bytes read as UTF-8, invalid sequences replaced by U+FFFD.
    static func decode(_ tokens: [String]) -> String {
        var bytes: [UInt8] = []
        for token in tokens {
            let mapped = token.unicodeScalars.compactMap { Self.bytes[$0] }
            if mapped.count == token.unicodeScalars.count { bytes += mapped } else { bytes += Array(token.utf8) }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// A Split pre-tokenizer's pattern: a literal string or an Oniguruma regex as tokenizers runs it,
/// here through ICU (NSRegularExpression).
struct HFSplitPattern {
    let regex: NSRegularExpression

    init(_ o: [String: Any], _ p: String) throws {
        if let literal = o["String"] {
            let s = try J.str(literal, p + ".String")
            guard !s.isEmpty else { throw TokenizerError.invalidJSON(path: p + ".String", reason: "empty pattern") }
            regex = try NSRegularExpression(pattern: NSRegularExpression.escapedPattern(for: s))
        } else if let source = o["Regex"] {
            let s = try J.str(source, p + ".Regex")
            do { regex = try NSRegularExpression(pattern: Self.icuPattern(s)) } catch {
                throw TokenizerError.unsupported(path: p + ".Regex", what: "regex \(s) (\(error.localizedDescription))")
            }
        } else {
            throw TokenizerError.invalidJSON(path: p, reason: "expected {\"String\": …} or {\"Regex\": …}")
        }
    }

    /// Oniguruma's `\s` (as tokenizers compiles patterns: Unicode White_Space) is wider than ICU's
    /// ([\t\n\f\r\p{Z}]): it has U+000B and U+0085 too. `\s` and `\S` are rewritten to the wider
    /// class, inside and outside brackets; everything else these patterns use (\p{L}, \p{N},
    /// (?i:…), look-ahead, {m,n}) means the same in both.
    static func icuPattern(_ onig: String) -> String {
        let space = "\\t\\n\\x{0B}\\f\\r\\x{85}\\p{Z}"
        var out = ""
        var inClass = 0
        var chars = Array(onig)[...]
        while let c = chars.popFirst() {
            if c == "\\", let e = chars.popFirst() {
                switch e {
                case "s": out += inClass > 0 ? space : "[" + space + "]"
                case "S" where inClass == 0: out += "[^" + space + "]"
                default: out += "\\" + String(e)
                }
                continue
            }
            if c == "[" { inClass += 1 } else if c == "]" && inClass > 0 { inClass -= 1 }
            out.append(c)
        }
        return out
    }

    /// The non-empty matches in `s`, in order.
    func matches(in s: String) -> [Range<String.Index>] {
        // Indices from UTF-16 offsets directly: `Range(_:in:)` rounds to Character boundaries.
        // Matches come in order, so the cursor only moves forward (linear in the text).
        let u = s.utf16
        var cursor = u.startIndex, offset = 0
        func index(_ target: Int) -> String.Index {
            cursor = u.index(cursor, offsetBy: target - offset)
            offset = target
            return cursor
        }
        return regex.matches(in: s, range: NSRange(location: 0, length: u.count)).compactMap { m in
            guard m.range.length > 0 else { return nil }
            let lo = index(m.range.location)
            return lo..<index(m.range.location + m.range.length)
        }
    }
}

/// How a Split pre-tokenizer keeps its matches (tokenizers' SplitDelimiterBehavior).
enum HFSplitBehavior: String {
    case removed = "Removed", isolated = "Isolated", mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext", contiguous = "Contiguous"

    /// `s` cut at the pattern's matches, each piece kept, dropped or joined as the behaviour says.
    func split(_ s: String, _ pattern: HFSplitPattern, invert: Bool) -> [String] {
        var pieces: [(range: Range<String.Index>, isMatch: Bool)] = []
        var cursor = s.startIndex
        for m in pattern.matches(in: s) {
            if cursor < m.lowerBound { pieces.append((cursor..<m.lowerBound, invert)) }
            pieces.append((m, !invert))
            cursor = m.upperBound
        }
        if cursor < s.endIndex { pieces.append((cursor..<s.endIndex, invert)) }
        var kept: [Range<String.Index>] = []
        switch self {
        case .removed:
            kept = pieces.filter { !$0.isMatch }.map(\.range)
        case .isolated:
            kept = pieces.map(\.range)
        case .mergedWithPrevious, .contiguous:
            // A match joins the piece before it (Contiguous: any piece joins a previous one of its kind).
            var previousMatch = false
            for piece in pieces {
                let joins = self == .contiguous ? piece.isMatch == previousMatch : piece.isMatch && !previousMatch
                if joins, let last = kept.last { kept[kept.count - 1] = last.lowerBound..<piece.range.upperBound } else { kept.append(piece.range) }
                previousMatch = piece.isMatch
            }
        case .mergedWithNext:
            var previousMatch = false
            for piece in pieces.reversed() {
                if piece.isMatch && !previousMatch, let last = kept.last {
                    kept[kept.count - 1] = piece.range.lowerBound..<last.upperBound
                } else {
                    kept.append(piece.range)
                }
                previousMatch = piece.isMatch
            }
            kept.reverse()
        }
        // Through the scalar view: a String subscript rounds to Character boundaries, which would
        // glue "\r" to the "\n" after it (one grapheme) where the pattern split them.
        return kept.map { String(s.unicodeScalars[$0]) }
    }
}

/// GPT-2's split pattern, which ByteLevel applies itself when `use_regex` is on.
let gpt2SplitPattern = try! HFSplitPattern(
    ["Regex": "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"], "gpt2")
