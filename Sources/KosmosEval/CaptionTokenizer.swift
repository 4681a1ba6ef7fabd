import Foundation

/// A Swift re-creation of what the COCO caption evaluation does to text before scoring:
/// pycocoevalcap's `PTBTokenizer` runs Stanford CoreNLP 3.4.1's `PTBTokenizer` with
/// `-preserveLines -lowerCase` and then drops the tokens in its `PUNCTUATIONS` list
/// (`''`, `'`, ` `` `, `` ` ``, `-LRB-`, `-RRB-`, `-LCB-`, `-RCB-`, `.`, `?`, `!`, `,`, `:`, `-`, `--`, `...`, `;`).
///
/// The jar is a large JFlex lexer; this covers what caption-like text needs and was checked
/// against the jar on the stress captions in `Tests/Fixtures/eval/tokenizer_cases.json`:
/// - contractions split as PTB does (`isn't` → `is n't`, `can't` → `ca n't`, `they're` → `they 're`,
///   `'tis` → `'t is`, `cannot` → `can not`, `gonna` → `gon na`), curly apostrophes read as `'`;
/// - `1,000`, `3.5`, `5:30`, `3/4`, `1.5.2`, hyphenated words and `o'clock`-style words stay whole;
/// - brackets become `-lrb-` … `-rcb-` (the filter compares upper-case names, so after
///   `-lowerCase` the jar's output keeps them — reproduced on purpose);
/// - quotes, ellipses, dashes (`--`, `—`) and single `.`/`,`/`?`/`!`/`:`/`;` vanish; runs such as `!!!` stay;
/// - `$`, `%`, `#`, `+`, `=` are split off; `<b>` (an SGML-like tag) stays whole;
/// - characters outside the Basic Multilingual Plane (emoji) are dropped: the jar lexes UTF-16
///   code units and reports surrogates as untokenizable.
///
/// Known differences (not matched): a lower-case single letter with a period at the very end of
/// a caption (`… = c.`): the jar keeps or splits the period depending on whether the *next caption
/// in its batch* starts with a capital letter, which a per-caption tokenizer cannot see; we assume
/// it does (COCO captions start with a capital). Also the jar's full abbreviation list (only common title/street/
/// time abbreviations, initials and dotted acronyms keep their final period here), British/American
/// spelling normalisation options (off in this invocation anyway), and rarer lexer paths
/// (URLs, e-mail addresses, emoticons, phone numbers, fractions like `1 1/2` with non-breaking spaces).
/// On the punctuation-run fixture (703 captions) five rare jar paths are not reproduced: a spaced
/// ellipsis before a number (`3. . .5` → `3 5`), a comma-led number after a comma (`3,,5` →
/// `3 ,5`), `’red` read as `'re d`, and numbers with a dot-dash inside (`3.-5`, `3...-5` whole).
public enum CaptionTokenizer {
    /// pycocoevalcap's removal list as it applies after `-lowerCase` (its bracket names are upper-case,
    /// so they never match lower-cased output).
    static let removed: Set<String> = ["''", "'", "``", "`", ".", "?", "!", ",", ":", "-", "--", "...", ";"]

    /// Abbreviations whose final period the jar keeps (a subset of PTBLexer's list).
    static let abbreviations: Set<String> = [
        "mr", "mrs", "ms", "dr", "st", "jr", "sr", "prof", "vs", "etc", "inc", "ltd", "co", "corp",
        "mt", "ave", "gen", "gov", "sen", "rep", "lt", "col", "capt", "sgt", "messrs", "jan", "feb",
        "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "fig", "dept", "univ",
    ]

    /// Whole words PTB splits into two tokens.
    static let splitWords: [String: [String]] = [
        "cannot": ["can", "not"], "gonna": ["gon", "na"], "gotta": ["got", "ta"], "wanna": ["wan", "na"],
        "lemme": ["lem", "me"], "gimme": ["gim", "me"],
    ]

    /// Tokens of one caption after PTB tokenisation, lower-casing and punctuation removal.
    public static func tokenize(_ caption: String) -> [String] {
        // The jar decides on the original case (`A+B` stays whole, `a+b` does not; a lower-case
        // initial before a capitalised word ends a sentence) and lower-cases on output (`-lowerCase`).
        var tokens: [String] = []
        let cs = chunks(of: normalise(caption))
        for (i, chunk) in cs.enumerated() {
            // At the end of a caption the jar looks at the next caption in its batch; COCO captions
            // start with a capital letter, so that is assumed.
            let nextUpper = i + 1 < cs.count ? (cs[i + 1].first?.isUppercase ?? false) : true
            let pieces = presplit(chunk)
            for (k, piece) in pieces.enumerated() {
                switch piece {
                case .token(let t): tokens.append(t)
                case .word(let w): tokens.append(contentsOf: splitChunk(w, nextUpper: k == pieces.count - 1 ? nextUpper : true))
                }
            }
        }
        return tokens.map { $0.lowercased() }.filter { !removed.contains($0) && !$0.isEmpty }
    }

    /// The string pycocoevalcap hands to the scorers: the kept tokens joined by single spaces.
    public static func tokenizedCaption(_ caption: String) -> String {
        tokenize(caption).joined(separator: " ")
    }

    /// Two or more curly double quotes in a row are one token for the jar, which the filter keeps
    /// (two opening ones become four backticks, two closing ones four apostrophes); these
    /// private-use marks carry such a run to `presplit`.
    static let openQuoteRun: Character = "\u{E000}", closeQuoteRun: Character = "\u{E001}"

    static func normalise(_ s: String) -> String {
        var out = String.UnicodeScalarView()
        let scalars = Array(s.unicodeScalars)
        for (i, u) in scalars.enumerated() {
            if u.value > 0xFFFF { continue } // untokenizable surrogates in the jar
            if u == "\u{201C}" || u == "\u{201D}", (i + 1 < scalars.count && scalars[i + 1] == u) || (i > 0 && scalars[i - 1] == u) {
                out.append(contentsOf: String(u == "\u{201C}" ? openQuoteRun : closeQuoteRun).unicodeScalars)
                continue
            }
            switch u {
            case "\u{2019}", "\u{2018}", "\u{201B}": out.append("'")
            case "\u{201C}", "\u{201D}", "\u{201E}": out.append(contentsOf: " \" ".unicodeScalars)
            case "\u{2014}", "\u{2013}", "\u{2015}": out.append(contentsOf: " -- ".unicodeScalars)
            case "\u{2026}": out.append(contentsOf: " ... ".unicodeScalars)
            default: out.append(u)
            }
        }
        return String(out)
    }

    static func chunks(of s: String) -> [String] {
        var result: [String] = []
        var cur = ""
        for ch in s {
            if ch.unicodeScalars.allSatisfy({ $0.properties.isWhitespace }) {
                if !cur.isEmpty { result.append(cur); cur = "" }
            } else {
                cur.append(ch)
            }
        }
        if !cur.isEmpty { result.append(cur) }
        return result
    }

    static func isDigit(_ c: Character) -> Bool { c.isASCII && c.isNumber }
    static func isLetter(_ c: Character) -> Bool { c.isLetter }

    static let openers: [Character: String] = ["(": "-lrb-", "[": "-lsb-", "{": "-lcb-"]
    static let closers: [Character: String] = [")": "-rrb-", "]": "-rsb-", "}": "-rcb-"]

    /// A piece of a whitespace-free chunk: a final token, or a word for `splitChunk`.
    enum Piece: Equatable {
        case token(String)
        case word(String)
    }

    /// The jar's punctuation that separates wherever it stands, split off a chunk first (checked on
    /// the punctuation-run fixture, Tests/Fixtures/eval/ptb_stress.json): brackets; double quotes and
    /// backticks; runs of `!`/`?` (one token: "?!" stays); periods — three or more are one ellipsis,
    /// two are two periods, one before other punctuation separates, and a single letter or a dotted
    /// acronym takes the first of them ("x.." → "x.", "U.S...." → "U.S."), while ".5" after other
    /// punctuation starts a number ("3..5" → "3", ".", ".5"); hyphens — five or more one token (kept:
    /// "-----"), four "--" + "--", three "--" + "-", two "--", one only inside a word or before a number;
    /// semicolons; commas and colons unless a digit follows (",5" after a comma is a number);
    /// two or more apostrophes, and one before punctuation.
    static func presplit(_ chunk: String) -> [Piece] {
        let c = Array(chunk)
        var pieces: [Piece] = []
        var word = ""
        func flush() { if !word.isEmpty { pieces.append(.word(word)); word = "" } }
        func emit(_ t: String) { flush(); pieces.append(.token(t)) }
        func run(_ i: Int, _ ch: Character) -> Int { var j = i; while j < c.count, c[j] == ch { j += 1 }; return j - i }
        func alnum(_ i: Int) -> Bool { i < c.count && (c[i].isLetter || c[i].isNumber) }
        func digit(_ i: Int) -> Bool { i < c.count && isDigit(c[i]) }
        // A single letter or a dotted acronym ("U.S"): takes a following period.
        func initialLike(_ w: String) -> Bool {
            !w.isEmpty && w.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { $0.count == 1 && $0.first!.isLetter }
        }
        if c.count >= 3, c.first == "<", c.last == ">" { return [.word(chunk)] }
        var i = 0
        while i < c.count {
            let ch = c[i]
            if let t = openers[ch] ?? closers[ch] { emit(t); i += 1; continue }
            switch ch {
            case "\"":
                emit("''"); i += 1
            case "`":
                let n = run(i, "`"); emit("``"); i += n
            case openQuoteRun, closeQuoteRun:
                let n = run(i, ch); emit(String(repeating: ch == openQuoteRun ? "``" : "''", count: n)); i += n
            case "!", "?":
                var j = i
                while j < c.count, c[j] == "!" || c[j] == "?" { j += 1 }
                emit(String(c[i..<j])); i = j
            case ".":
                let n = run(i, ".")
                if n >= 2 || (i + 1 < c.count && !alnum(i + 1)) {
                    if initialLike(word) { let t = word + "."; word = ""; emit(t); i += n; continue }
                    if n >= 3 { emit("..."); i += n; continue }
                    if n == 2 {
                        emit(".")
                        if digit(i + 2) { word = "." } else { emit(".") }
                        i += 2
                        continue
                    }
                    emit("."); i += 1; continue
                }
                if word.isEmpty && i + 1 < c.count && !digit(i + 1) { emit("."); i += 1; continue }
                word.append(ch); i += 1
            case "-":
                let n = run(i, "-")
                if n >= 5 { emit(String(repeating: "-", count: n)) } else if n >= 2 { emit("--"); if n > 2 { emit(n == 4 ? "--" : "-") } }
                else if !word.isEmpty && alnum(i + 1) { word.append(ch) }
                else if i + 2 < c.count, c[i + 1] == ".", digit(i + 2) { flush(); word = "-" }
                else if word.isEmpty && digit(i + 1) { word = "-" }
                else { emit("-") }
                i += n
            case ";":
                emit(";"); i += 1
            case ",", ":":
                if digit(i + 1) { word.append(ch) } else { emit(String(ch)) }
                i += 1
            case "'":
                let n = run(i, "'")
                if n >= 2 { emit("''"); i += n; continue }
                if i + 1 < c.count, !alnum(i + 1), word != "'n" { emit("'"); i += 1; continue }
                word.append(ch); i += 1
            default:
                word.append(ch); i += 1
            }
        }
        flush()
        return pieces
    }

    /// Splits one whitespace-free chunk into PTB tokens.
    static func splitChunk(_ chunk: String, nextUpper: Bool = true) -> [String] {
        var chars = Array(chunk)
        var front: [String] = []
        var back: [String] = []
        // Tag-like `<b>` is one token for the jar.
        if chars.count >= 3, chars.first == "<", chars.last == ">" { return [chunk] }
        // Leading punctuation.
        while let c = chars.first {
            if let t = openers[c] { front.append(t); chars.removeFirst(); continue }
            if c == "\"" { front.append("``"); chars.removeFirst(); continue }
            if c == "$" || c == "#" { front.append(String(c)); chars.removeFirst(); continue }
            if c == "'" {
                let rest = String(chars.dropFirst()).lowercased()
                // `'tis` / `'twas` → `'t is`; `'n'` stays whole.
                if rest == "n'" { return front + [chunk] + back }
                if rest.hasPrefix("t"), ["tis", "twas"].contains(where: { rest.hasPrefix($0) }) {
                    front.append("'t"); chars.removeFirst(2); continue
                }
                front.append("`"); chars.removeFirst(); continue
            }
            if c == "-" && chars.count > 1 && chars[1] == "-" { front.append("--"); chars.removeFirst(2); continue }
            break
        }
        // Trailing punctuation.
        while let c = chars.last {
            if let t = closers[c] { back.insert(t, at: 0); chars.removeLast(); continue }
            if c == "\"" { back.insert("''", at: 0); chars.removeLast(); continue }
            if c == "%" || c == "$" { back.insert(String(c), at: 0); chars.removeLast(); continue }
            if c == "!" || c == "?" {
                var n = 0
                while n < chars.count, chars[chars.count - 1 - n] == c { n += 1 }
                back.insert(String(repeating: String(c), count: n), at: 0)
                chars.removeLast(n); continue
            }
            if c == "," || c == ";" || c == ":" {
                back.insert(String(c), at: 0); chars.removeLast(); continue
            }
            if c == "." {
                var n = 0
                while n < chars.count, chars[chars.count - 1 - n] == "." { n += 1 }
                // `c...` → `c.`: a single-letter initial swallows the ellipsis in the jar.
                if n == 3, chars.count == 4, chars[0].isLetter {
                    return front + [String(chars[0]) + "."] + back
                }
                if n >= 2 { back.insert(n == 3 ? "..." : String(repeating: ".", count: n), at: 0); chars.removeLast(n); continue }
                let core = String(chars.dropLast())
                if keepsPeriod(core, nextUpper: nextUpper) { break }
                back.insert(".", at: 0); chars.removeLast(); continue
            }
            if c == "'" {
                // `dogs'` → `dogs '`; a lone trailing quote after other letters too.
                back.insert("'", at: 0); chars.removeLast(); continue
            }
            if c == "-" && chars.count > 1 && chars[chars.count - 2] == "-" { back.insert("--", at: 0); chars.removeLast(2); continue }
            break
        }
        return front + splitCore(String(chars)) + back
    }

    static func keepsPeriod(_ original: String, nextUpper: Bool) -> Bool {
        if original.isEmpty { return false }
        let cs = Array(original)
        // Initials keep their period (`J. Smith`), but a lower-case letter before a capitalised
        // word is read as a sentence end (`x c. The dog` → `x c . the dog`).
        if cs.count == 1 && isLetter(cs[0]) { return cs[0].isUppercase || !nextUpper }
        let core = original.lowercased()
        if abbreviations.contains(core) { return true }
        // Dotted acronyms: u.s, p.m, n.y.c
        let parts = core.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count >= 2, parts.allSatisfy({ $0.count == 1 && $0.allSatisfy { isLetter($0) } }) { return true }
        return false
    }

    static func splitCore(_ core: String) -> [String] {
        if core.isEmpty { return [] }
        var cs = Array(core)
        // Internal `--` separates words.
        if let r = core.range(of: "--") {
            let a = String(core[core.startIndex..<r.lowerBound])
            let b = String(core[r.upperBound...])
            return splitChunk(a) + ["--"] + splitChunk(b)
        }
        // All-capital `AT&T` / `A+B` stay whole; otherwise `+`, `=`, `&` are their own tokens.
        let capsJoined = cs.allSatisfy { ($0.isLetter && $0.isUppercase) || $0 == "&" || $0 == "+" }
            && cs.first?.isLetter == true && cs.last?.isLetter == true
        if !capsJoined, let i = cs.firstIndex(where: { $0 == "+" || $0 == "=" || $0 == "&" }), cs.count > 1 {
            return splitCore(String(cs[..<i])) + [String(cs[i])] + splitCore(String(cs[(i + 1)...]))
        }
        // Feet and inches (`5'10`): the apostrophe is its own token.
        if let i = cs.indices.first(where: { cs[$0] == "'" && $0 > 0 && $0 + 1 < cs.count && isDigit(cs[$0 - 1]) && isDigit(cs[$0 + 1]) }) {
            return splitCore(String(cs[..<i])) + ["'"] + splitCore(String(cs[(i + 1)...]))
        }
        // A comma not between digits separates.
        if let i = cs.indices.first(where: { cs[$0] == "," && !($0 > 0 && $0 + 1 < cs.count && isDigit(cs[$0 - 1]) && isDigit(cs[$0 + 1])) }) {
            return splitCore(String(cs[..<i])) + [","] + splitCore(String(cs[(i + 1)...]))
        }
        // `50%` was handled as trailing; `$5` as leading. Now contractions.
        let lower = core.lowercased()
        if let parts = splitWords[lower] { return parts }
        cs = Array(lower)
        if lower.hasSuffix("n't"), cs.count > 3 {
            return [String(cs[..<(cs.count - 3)]), "n't"]
        }
        for suffix in ["'s", "'re", "'m", "'ll", "'d", "'ve"] where lower.hasSuffix(suffix) && cs.count > suffix.count {
            let stem = String(cs[..<(cs.count - suffix.count)])
            if stem.last.map({ $0.isLetter || $0.isNumber }) == true {
                return [stem, suffix]
            }
        }
        return [core]
    }
}
