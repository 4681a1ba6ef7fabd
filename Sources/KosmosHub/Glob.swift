/// Shell-style patterns as huggingface_hub matches `allow_patterns` (Python's `fnmatch.fnmatchcase`):
/// `*` matches any run of characters, `/` included; `?` one character; `[abc]`, `[a-z]` and
/// `[!abc]` a set; everything else itself, case-sensitively. A pattern ending in `/` names a
/// folder and matches everything under it.
public struct Glob: Equatable, CustomStringConvertible {
    public let pattern: String
    private let characters: [Character]

    public init(_ pattern: String) {
        self.pattern = pattern
        characters = Array(pattern.hasSuffix("/") ? pattern + "*" : pattern)
    }

    public var description: String { pattern }

    public func matches(_ name: String) -> Bool {
        let text = Array(name)
        // Iterative matcher with one backtrack point per `*` (the classic two-pointer walk).
        var p = 0, t = 0
        var starP = -1, starT = 0
        while t < text.count {
            if p < characters.count {
                switch characters[p] {
                case "*":
                    starP = p; starT = t; p += 1
                    continue
                case "?":
                    p += 1; t += 1
                    continue
                case "[":
                    if let (matched, next) = matchSet(at: p, text[t]) {
                        if matched { p = next; t += 1; continue }
                    } else if text[t] == "[" {
                        p += 1; t += 1; continue
                    }
                default:
                    if characters[p] == text[t] { p += 1; t += 1; continue }
                }
            }
            guard starP >= 0 else { return false }
            p = starP + 1; starT += 1; t = starT
        }
        while p < characters.count, characters[p] == "*" { p += 1 }
        return p == characters.count
    }

    /// A `[...]` set at `start`: whether `c` is in it and the index after `]`; nil when the
    /// bracket is never closed (then it is a literal `[`, as in fnmatch).
    private func matchSet(at start: Int, _ c: Character) -> (Bool, Int)? {
        var i = start + 1
        var negate = false
        if i < characters.count, characters[i] == "!" { negate = true; i += 1 }
        var matched = false
        var first = true
        while i < characters.count {
            let item = characters[i]
            if item == "]", !first { return (matched != negate, i + 1) }
            first = false
            if i + 2 < characters.count, characters[i + 1] == "-", characters[i + 2] != "]" {
                if item <= c, c <= characters[i + 2] { matched = true }
                i += 3
            } else {
                if item == c { matched = true }
                i += 1
            }
        }
        return nil
    }
}
