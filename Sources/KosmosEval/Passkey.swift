import Foundation

/// The synthetic passkey retrieval task (Mohtashami & Jaggi, "Landmark Attention", 2023): a
/// five-digit number stated once at some depth of repeated filler text, then asked for at the end.
/// A model that answers at a length it never trained on shows how far its positions carry what it
/// learned. Text only: token counts come from the caller's tokenizer (`count`).
public enum PasskeyTask {
    public static let introduction = "There is an important piece of information hidden inside a lot of irrelevant text. Find it and remember it. I will ask you about it."
    public static let filler = " The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
    public static let question = " What is the pass key? The pass key is"

    /// The sentence that states the key.
    public static func statement(_ key: Int) -> String { " The pass key is \(key). Remember it. \(key) is the pass key." }

    /// The prompt with `fillers` filler sentences, `before` of them ahead of the key.
    public static func prompt(key: Int, fillers: Int, before: Int) -> String {
        precondition(before >= 0 && before <= fillers, "the key goes among the fillers")
        return introduction + String(repeating: filler, count: before) + statement(key)
            + String(repeating: filler, count: fillers - before) + question
    }

    /// The longest prompt of at most `tokens` tokens (as `count` measures them) with the key after
    /// the fraction `depth` (0…1) of the filler. Nil when even no filler exceeds `tokens`.
    public static func prompt(key: Int, depth: Double, tokens: Int, count: (String) -> Int) -> (text: String, tokens: Int)? {
        func make(_ n: Int) -> String { prompt(key: key, fillers: n, before: Int((depth * Double(n)).rounded())) }
        let bare = count(make(0))
        guard bare <= tokens else { return nil }
        // Token counts grow with the filler count (each filler adds about the same): bisect.
        var low = 0, high = 1
        while count(make(high)) <= tokens { low = high; high *= 2 }
        while high - low > 1 {
            let mid = (low + high) / 2
            if count(make(mid)) <= tokens { low = mid } else { high = mid }
        }
        let text = make(low)
        return (text, count(text))
    }

    /// Whether generated text answers `key`: its first run of digits is the key.
    public static func isCorrect(_ generated: String, key: Int) -> Bool {
        func isDigit(_ c: Character) -> Bool { c.isASCII && c.isNumber }
        guard let start = generated.firstIndex(where: isDigit) else { return false }
        return generated[start...].prefix(while: isDigit) == String(key)
    }

    /// A training document: the prompt followed by its answer (" 12345.").
    public static func document(key: Int, fillers: Int, before: Int) -> String {
        prompt(key: key, fillers: fillers, before: before) + " \(key)."
    }

    /// The keys of a run: five-digit numbers from a seeded generator (SplitMix64), one per trial.
    public static func keys(count: Int, seed: UInt64) -> [Int] {
        var state = seed
        return (0..<count).map { _ in
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            return 10_000 + Int(z % 90_000)
        }
    }

    /// `n` depths evenly from 0 (right after the introduction) to 1 (right before the question).
    public static func depths(_ n: Int) -> [Double] {
        n <= 1 ? [0.5] : (0..<n).map { Double($0) / Double(n - 1) }
    }
}

/// The results of a passkey run: accuracy by length (rows) and depth (columns).
public struct PasskeyReport: Codable, Equatable, Sendable {
    public var model: String
    /// Target prompt lengths in tokens, and the longest prompt actually built for each.
    public var lengths: [Int]
    public var promptTokens: [Int]
    public var depths: [Double]
    public var trials: Int
    /// accuracy[length][depth], the fraction of trials answered.
    public var accuracy: [[Double]]
    /// The model's positions and, when known, the longest sequence it was trained on.
    public var maxPositions: Int

    public init(model: String, lengths: [Int], promptTokens: [Int], depths: [Double], trials: Int, accuracy: [[Double]], maxPositions: Int) {
        self.model = model
        self.lengths = lengths
        self.promptTokens = promptTokens
        self.depths = depths
        self.trials = trials
        self.accuracy = accuracy
        self.maxPositions = maxPositions
    }

    enum CodingKeys: String, CodingKey {
        case model, lengths, depths, trials, accuracy
        case promptTokens = "prompt_tokens", maxPositions = "max_positions"
    }

    /// Accuracy over every depth of each length.
    public var meanByLength: [Double] { accuracy.map { $0.isEmpty ? 0 : $0.reduce(0, +) / Double($0.count) } }

    /// A plain-text table: one row per length, one column per depth, percentages, and the mean.
    public var table: String {
        var lines = ["tokens  " + depths.map { String(format: "%5.0f%%", 100 * $0) }.joined(separator: " ") + "   mean"]
        for (i, length) in lengths.enumerated() {
            let cells = accuracy[i].map { String(format: "%5.0f%%", 100 * $0) }.joined(separator: " ")
            lines.append(String(format: "%6d  ", length) + cells + String(format: "  %5.1f%%", 100 * meanByLength[i]))
        }
        lines.append("(columns: the key's depth in the filler; \(trials) trial\(trials == 1 ? "" : "s") per cell)")
        return lines.joined(separator: "\n")
    }
}
