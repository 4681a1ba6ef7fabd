import Foundation

/// The Kosmos-1 paper's Raven-style IQ test (Huang et al. 2023, section 4.2): the matrix's images
/// flattened and shown one by one, each of the candidates appended separately, and the candidate
/// for which the model is likeliest to answer "Yes" to "Is it correct?" taken as its answer.
///
/// The items come from a manifest, one JSON object per line: `{"context": [image, ...],
/// "candidates": [image, ...], "answer": i}` (paths relative to the manifest, `answer` 0-based).
/// The released IQ50 archive (aka.ms/kosmos-iq50) could not be inspected here; docs/evaluation.md
/// says how to write the manifest for a folder of images.
public struct RavenItem: Equatable, Sendable {
    public var context: [URL]
    public var candidates: [URL]
    public var answer: Int
    /// The manifest's line.
    public var line: Int

    /// The paper's prompt for one candidate: "Here are {n} images:" with the context images, "The
    /// following image is:" with the candidate, then "Is it correct?".
    public func prompt(imageToken: String = "<image>") -> String {
        "Here are \(RavenItem.spelled(context.count)) images:" + String(repeating: imageToken, count: context.count)
            + "The following image is:" + imageToken + "Is it correct?"
    }

    /// The number as the paper writes it ("three", "four", "eight"); digits past nine.
    static func spelled(_ n: Int) -> String {
        let words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
        return words.indices.contains(n) ? words[n] : String(n)
    }

    /// Images for candidate `c`: the context's, then the candidate.
    public func images(candidate c: Int) -> [URL] { context + [candidates[c]] }

    public static func load(_ url: URL) throws -> [RavenItem] {
        let folder = url.deletingLastPathComponent()
        return try JSONLines.read(url) { r in
            let context = try r.strings("context"), candidates = try r.strings("candidates")
            guard !context.isEmpty else {
                throw EvalError.malformed(path: url.path, location: "line \(r.number).context", reason: "no context images")
            }
            guard candidates.count >= 2 else {
                throw EvalError.malformed(path: url.path, location: "line \(r.number).candidates", reason: "expected two or more candidate images")
            }
            let resolve = { (p: String) in p.hasPrefix("/") ? URL(fileURLWithPath: p) : folder.appendingPathComponent(p) }
            return RavenItem(context: context.map(resolve), candidates: candidates.map(resolve),
                             answer: try r.index("answer", below: candidates.count), line: r.number)
        }
    }
}

/// Accuracy over items scored by the log-probability of "Yes" per candidate (the first maximum
/// is the prediction), with the harness's `mean_stderr`.
public struct RavenEvaluation: Sendable {
    public struct Item: Sendable {
        public var line: Int
        public var yesLogProbabilities: [Double]
        public var prediction: Int
        public var answer: Int
    }

    public var items: [Item]

    public init(items: [RavenItem], yesLogProbabilities: [[Double]]) {
        self.items = zip(items, yesLogProbabilities).map { item, scores in
            var best = 0
            for (i, s) in scores.enumerated() where s > scores[best] { best = i }
            return Item(line: item.line, yesLogProbabilities: scores, prediction: best, answer: item.answer)
        }
    }

    public var accuracy: Double { Double(items.filter { $0.prediction == $0.answer }.count) / Double(max(1, items.count)) }

    /// The harness's `mean_stderr` of the 0/1 outcomes (nil for one item).
    public var standardError: Double? {
        ChoiceTaskResult.meanStandardError(items.map { $0.prediction == $0.answer ? 1.0 : 0.0 })
    }

    public func json() -> [String: Any] {
        var root: [String: Any] = ["accuracy": accuracy, "items": items.count,
                                   "per_item": items.map { ["line": $0.line, "yes_log_probabilities": $0.yesLogProbabilities,
                                                            "prediction": $0.prediction, "answer": $0.answer] as [String: Any] }]
        root["accuracy_stderr"] = standardError ?? "N/A"
        return root
    }
}
