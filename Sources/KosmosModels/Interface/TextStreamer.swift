import Foundation

/// Turns generated ids into text as they come, for everything that streams (`kosmos generate`,
/// `chat`, the server): the text so far with the first stop string cut off, and deltas of the part
/// that is settled. Held back until settled: an unfinished UTF-8 sequence at the end (decoded as
/// U+FFFD) and a tail that could be the start of a stop string. A delta is only ever an extension of
/// what was handed out before; if a later decode changes earlier text (a detokenizer may), nothing
/// is handed out until the text extends the handed-out part again, and `finish` says whether the
/// final text still does.
public struct TextStreamer {
    public let stops: [String]
    private let decode: ([Int]) -> String
    public private(set) var ids: [Int] = []
    /// The decoded text so far, cut at the first stop string.
    public private(set) var text = ""
    /// What the deltas add up to.
    public private(set) var emitted = ""
    /// Whether a stop string has appeared (generation should end).
    public private(set) var stopped = false

    /// `decode` gives the text of all ids so far (EOS and a family's markup handled by the caller).
    public init(stops: [String] = [], decode: @escaping ([Int]) -> String) {
        self.stops = stops.filter { !$0.isEmpty }
        self.decode = decode
    }

    /// Adds one id; returns the settled new text (maybe empty).
    public mutating func add(_ id: Int) -> String {
        ids.append(id)
        return update(final: false)
    }

    /// Sets all ids at once (a caller that decodes in its own loop, as the scheduler does).
    public mutating func set(_ all: [Int], final: Bool) -> String {
        ids = all
        return update(final: final)
    }

    /// The text still held back once generation has ended, and whether the final text extends
    /// what was handed out (false: the caller must show `text` whole).
    public mutating func finish() -> (rest: String, extendsEmitted: Bool) {
        let extends = text.hasPrefix(emitted)
        let rest = extends ? String(text.dropFirst(emitted.count)) : ""
        if extends { emitted = text }
        return (rest, extends)
    }

    private mutating func update(final: Bool) -> String {
        text = decode(ids)
        if let cut = stops.compactMap({ text.range(of: $0)?.lowerBound }).min() {
            text = String(text[..<cut])
            stopped = true
        }
        if final || stopped { return finish().rest }
        var safe = text
        while safe.last == "\u{FFFD}" { safe.removeLast() }
        let holdBack = stops.map { stop in
            (1..<max(1, stop.count)).reversed().first { safe.hasSuffix(String(stop.prefix($0))) } ?? 0
        }.max() ?? 0
        safe.removeLast(min(holdBack, safe.count))
        guard safe.hasPrefix(emitted), safe.count > emitted.count else { return "" }
        let delta = String(safe.dropFirst(emitted.count))
        emitted = safe
        return delta
    }
}
