import Foundation

/// Python `str` operations the reference tools' rules use (the harness's tasks, vqaEval.py's
/// normalisation), on Unicode code points (a Python string's characters) rather than Swift's
/// grapheme clusters: "\r\n" is two characters to Python, and a length, an index or a strip must
/// count as Python counts.
enum PythonText {
    /// `str.isspace()` for one code point: Unicode White_Space plus the information separators
    /// U+001C–U+001F that CPython also counts (bidirectional class B or S).
    static func isSpace(_ c: Unicode.Scalar) -> Bool {
        c.properties.isWhitespace || (0x1C...0x1F).contains(c.value)
    }

    /// `s.split()`: runs of Python whitespace separate, none at the ends.
    static func split(_ s: String) -> [String] {
        var out: [String] = []
        var cur = String.UnicodeScalarView()
        for u in s.unicodeScalars {
            if isSpace(u) { if !cur.isEmpty { out.append(String(cur)); cur = .init() } } else { cur.append(u) }
        }
        if !cur.isEmpty { out.append(String(cur)) }
        return out
    }

    /// `len(s)`: code points.
    static func length(_ s: String) -> Int { s.unicodeScalars.count }

    /// `s.strip()`.
    static func strip(_ s: String) -> String {
        let u = Array(s.unicodeScalars)
        guard let first = u.firstIndex(where: { !isSpace($0) }), let last = u.lastIndex(where: { !isSpace($0) }) else { return "" }
        return string(u[first...last])
    }

    /// `s.rstrip()`.
    static func rstrip(_ s: String) -> String {
        let u = Array(s.unicodeScalars)
        guard let last = u.lastIndex(where: { !isSpace($0) }) else { return "" }
        return string(u[...last])
    }

    /// `s.capitalize()`: the first character title-cased, the rest lower-cased (full case mappings,
    /// and CPython's final-sigma rule: Σ after a cased letter and not before one becomes ς).
    static func capitalize(_ s: String) -> String {
        let u = Array(s.unicodeScalars)
        guard let first = u.first else { return s }
        var out = first.properties.titlecaseMapping
        for i in 1..<u.count {
            out += u[i] == "\u{03A3}" ? (isFinalSigma(u, i) ? "\u{03C2}" : "\u{03C3}") : u[i].properties.lowercaseMapping
        }
        return out
    }

    /// CPython's `handle_capital_sigma`: \p{cased} \p{case-ignorable}* Σ, not followed by
    /// \p{case-ignorable}* \p{cased}.
    private static func isFinalSigma(_ u: [Unicode.Scalar], _ i: Int) -> Bool {
        var j = i - 1
        while j >= 0, u[j].properties.isCaseIgnorable { j -= 1 }
        guard j >= 0, u[j].properties.isCased else { return false }
        var k = i + 1
        while k < u.count, u[k].properties.isCaseIgnorable { k += 1 }
        return k == u.count || !u[k].properties.isCased
    }

    /// `s[0].lower() + s[1:]`.
    static func lowerFirst(_ s: String) -> String {
        guard let first = s.unicodeScalars.first else { return s }
        return first.properties.lowercaseMapping + String(String.UnicodeScalarView(s.unicodeScalars.dropFirst()))
    }

    /// `s.replace(old, new)`: every non-overlapping occurrence, left to right, in one pass.
    static func replace(_ s: String, _ old: String, _ new: String) -> String {
        let u = Array(s.unicodeScalars), o = Array(old.unicodeScalars)
        precondition(!o.isEmpty, "replace of an empty string")
        var out = String.UnicodeScalarView()
        var i = 0
        while i < u.count {
            if i + o.count <= u.count, Array(u[i..<i + o.count]) == o {
                out.append(contentsOf: new.unicodeScalars)
                i += o.count
            } else {
                out.append(u[i])
                i += 1
            }
        }
        return String(out)
    }

    /// `re.sub(r"\[.*?\]", "", s)`: the shortest "[...]" from each "[" (no newline inside: `.`
    /// does not match one), removed left to right.
    static func removeBracketed(_ s: String) -> String {
        let u = Array(s.unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        scan: while i < u.count {
            if u[i] == "[" {
                var j = i + 1
                while j < u.count, u[j] != "\n" {
                    if u[j] == "]" { i = j + 1; continue scan }
                    j += 1
                }
            }
            out.append(u[i])
            i += 1
        }
        return String(out)
    }

    /// The index of the first `c` in code points (`s.index(c)`), nil when absent.
    static func index(of c: Unicode.Scalar, in s: String) -> Int? {
        s.unicodeScalars.firstIndex(of: c).map { s.unicodeScalars.distance(from: s.unicodeScalars.startIndex, to: $0) }
    }

    /// `s[from:to]` in code points.
    static func slice(_ s: String, _ from: Int, _ to: Int? = nil) -> String {
        let u = Array(s.unicodeScalars)
        let end = Swift.min(to ?? u.count, u.count)
        return from >= end ? "" : string(u[from..<end])
    }

    private static func string(_ scalars: ArraySlice<Unicode.Scalar>) -> String {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        return String(view)
    }
}
