import Foundation

/// VizWiz-VQA scored as the VizWiz challenge's evaluation code scores it (the `VQAEval` class of
/// its Python API: `evaluate` and `evaluate_unanswerability`).
///
/// Accuracy differs from VQA v2's (`VQAEvaluation`) in three ways the reference has: the
/// prediction is always normalised (newline/tab → space, strip, its punctuation list — with
/// `{ } - !`, without `: '` —, lower-case, number words, articles, the same contractions table)
/// and the ten ground-truth answers never are; each of the ten leave-one-out scores is
/// min(1, #matches among the other nine / 3), the image's accuracy their mean; the per-answer-type
/// figures average those means (VQA v2's use the last leave-one-out value). "unanswerable" is an
/// answer like any other.
///
/// Answerability: average precision of detecting *unanswerable* questions, sklearn's
/// `average_precision_score(1 - answerable, 1 - predicted answerable)`, and F1 of
/// `1 - predicted > 0.5`. A prediction without an `answerable` score gets 0 when its normalised
/// answer is "unanswerable", else 1 (a generative model has no other score to give).
public struct VizWizEvaluation: Sendable {
    public struct Annotation: Sendable, Equatable {
        public var image: String
        public var question: String
        /// The ten crowd answers (`answers[].answer`; empty in the test split).
        public var answers: [String]
        public var answerType: String
        /// 1 when the question can be answered from the image; nil where the file has no label.
        public var answerable: Int?
    }

    public struct Prediction: Sendable, Equatable {
        public var image: String
        public var answer: String
        /// P(answerable) or a 0/1 label; nil: derived from the answer.
        public var answerable: Double?

        public init(image: String, answer: String, answerable: Double? = nil) {
            self.image = image
            self.answer = answer
            self.answerable = answerable
        }
    }

    public struct ImageScore: Sendable, Equatable {
        public var image: String
        /// Mean of the ten leave-one-out scores, in [0, 1].
        public var accuracy: Double
        public var answerType: String
        public var normalizedAnswer: String
        /// The answerability score used (given, or derived from the answer).
        public var answerable: Double
    }

    /// × 100, unrounded (`VQAEvaluation.reported` rounds as the reference does).
    public var overall: Double
    public var perAnswerType: [String: Double]
    public var perImage: [ImageScore]
    /// Average precision and F1 of detecting unanswerable questions, × 100; nil when an image
    /// scored has no `answerable` label.
    public var averagePrecision: Double?
    public var f1: Double?

    /// The reference's punctuation marks, in its order.
    public static let punctuation = [";", "/", "[", "]", "\"", "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"]

    /// The prediction's normalisation.
    public static func normalize(_ answer: String) -> String {
        let t = PythonText.strip(answer.replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "\t", with: " "))
        return VQANormalizer.processDigitArticle(VQANormalizer.processPunctuation(t, marks: punctuation))
    }

    /// A VizWiz annotation file (`train.json`, `val.json`, `test.json`): a JSON list of
    /// {image, question, answers: [{answer, answer_confidence}], answer_type, answerable}.
    public static func loadAnnotations(_ url: URL) throws -> [Annotation] {
        let r = JSONReader(path: url.path)
        let list = try r.array(try r.load(url), at: "$")
        var seen = Set<String>()
        return try list.enumerated().map { i, value in
            let loc = "[\(i)]"
            let o = try r.object(value, at: loc)
            let image = try r.string(o, "image", at: loc)
            guard seen.insert(image).inserted else {
                throw EvalError.malformed(path: url.path, location: loc + ".image", reason: "\(image) appears twice (VizWiz has one question per image)")
            }
            var answers: [String] = []
            if let raw = o["answers"] {
                answers = try r.array(raw, at: loc + ".answers").enumerated().map { j, a in
                    try r.string(try r.object(a, at: "\(loc).answers[\(j)]"), "answer", at: "\(loc).answers[\(j)]")
                }
            }
            var answerable: Int?
            if o["answerable"] != nil {
                answerable = try r.int(o, "answerable", at: loc)
                guard answerable == 0 || answerable == 1 else {
                    throw EvalError.malformed(path: url.path, location: loc + ".answerable", reason: "expected 0 or 1")
                }
            }
            return Annotation(image: image, question: try r.string(o, "question", at: loc), answers: answers,
                              answerType: o["answer_type"] == nil ? "" : try r.string(o, "answer_type", at: loc), answerable: answerable)
        }
    }

    /// A results file: [{image, answer, answerable?}], the image names those of the annotations.
    public static func loadPredictions(_ url: URL, annotations: [Annotation]) throws -> [Prediction] {
        let r = JSONReader(path: url.path)
        let known = Set(annotations.map(\.image))
        let list = try r.array(try r.load(url), at: "$")
        guard !list.isEmpty else { throw EvalError.emptyPredictions(path: url.path) }
        var seen = Set<String>()
        return try list.enumerated().map { i, value in
            let loc = "[\(i)]"
            let o = try r.object(value, at: loc)
            let image = try r.string(o, "image", at: loc)
            guard known.contains(image) else {
                throw EvalError.malformed(path: url.path, location: loc + ".image", reason: "\(image) is not in the annotations")
            }
            guard seen.insert(image).inserted else {
                throw EvalError.malformed(path: url.path, location: loc + ".image", reason: "a second prediction for \(image)")
            }
            var score: Double?
            if let v = o["answerable"] {
                guard let n = v as? NSNumber, String(cString: n.objCType) != "c", n.doubleValue.isFinite else {
                    throw EvalError.malformed(path: url.path, location: loc + ".answerable", reason: "expected a number")
                }
                score = n.doubleValue
            }
            return Prediction(image: image, answer: try r.string(o, "answer", at: loc), answerable: score)
        }
    }

    /// Scores the predicted images, in the annotations' order (the reference's `evaluate(imgs)`).
    public static func evaluate(annotations: [Annotation], predictions: [Prediction]) throws -> VizWizEvaluation {
        let byImage = Dictionary(predictions.map { ($0.image, $0) }, uniquingKeysWith: { _, last in last })
        var per: [ImageScore] = []
        var byType: [String: [Double]] = [:]
        for a in annotations {
            guard let p = byImage[a.image] else { continue }
            guard !a.answers.isEmpty else {
                throw EvalError.malformed(path: "annotations", location: a.image, reason: "no answers to score against (the test split has none)")
            }
            let answer = normalize(p.answer)
            var accs: [Double] = []
            for i in a.answers.indices {
                var matching = 0
                for (j, other) in a.answers.enumerated() where j != i && other == answer { matching += 1 }
                accs.append(min(1, Double(matching) / 3))
            }
            let acc = accs.reduce(0, +) / Double(accs.count)
            byType[a.answerType, default: []].append(acc)
            per.append(ImageScore(image: a.image, accuracy: acc, answerType: a.answerType, normalizedAnswer: answer,
                                  answerable: p.answerable ?? (answer == "unanswerable" ? 0 : 1)))
        }
        guard !per.isEmpty else { throw EvalError.emptyPredictions(path: "predictions") }
        func pct(_ xs: [Double]) -> Double { 100 * xs.reduce(0, +) / Double(xs.count) }
        let answerable = Dictionary(annotations.map { ($0.image, $0.answerable) }, uniquingKeysWith: { a, _ in a })
        let labels = per.map { answerable[$0.image] ?? nil }
        var ap: Double?, f1: Double?
        if labels.allSatisfy({ $0 != nil }) {
            let unanswerable = labels.map { 1 - $0! }, scores = per.map { 1 - $0.answerable }
            ap = 100 * averagePrecision(labels: unanswerable, scores: scores)
            f1 = 100 * f1Score(labels: unanswerable, predicted: scores.map { $0 > 0.5 })
        }
        return VizWizEvaluation(overall: pct(per.map(\.accuracy)), perAnswerType: byType.mapValues(pct), perImage: per,
                                averagePrecision: ap, f1: f1)
    }

    /// sklearn's `average_precision_score` for binary labels: the thresholds are the distinct
    /// scores, highest first; AP = Σ (R_k − R_{k−1}) · P_k. With no positive label sklearn sets
    /// recall to 1 everywhere, so AP is the precision at the highest threshold (0).
    public static func averagePrecision(labels: [Int], scores: [Double]) -> Double {
        let order = scores.indices.sorted { scores[$0] > scores[$1] || (scores[$0] == scores[$1] && $0 > $1) }
        let positives = labels.reduce(0, +)
        var tp = 0, seen = 0, previousRecall = 0.0
        var terms: [Double] = []
        for (k, i) in order.enumerated() {
            tp += labels[i]
            seen += 1
            if k + 1 < order.count && scores[order[k + 1]] == scores[i] { continue }  // ties are one threshold
            let precision = Double(tp) / Double(seen)
            let recall = positives == 0 ? 1 : Double(tp) / Double(positives)
            terms.append((recall - previousRecall) * precision)
            previousRecall = recall
        }
        return terms.reduce(0, +)
    }

    /// Binary F1 of the positive class; 0 where it is undefined (sklearn's zero_division).
    public static func f1Score(labels: [Int], predicted: [Bool]) -> Double {
        var tp = 0, fp = 0, fn = 0
        for (l, p) in zip(labels, predicted) {
            if p && l == 1 { tp += 1 } else if p { fp += 1 } else if l == 1 { fn += 1 }
        }
        return 2 * tp + fp + fn == 0 ? 0 : Double(2 * tp) / Double(2 * tp + fp + fn)
    }

    public func jsonData() throws -> Data {
        var root: [String: Any] = [
            "overall": VQAEvaluation.reported(overall),
            "overall_unrounded": overall,
            "perAnswerType": perAnswerType.mapValues(VQAEvaluation.reported),
            "num_questions": perImage.count,
            "per_image": perImage.map {
                ["image": $0.image, "accuracy": 100 * $0.accuracy, "answer_type": $0.answerType,
                 "normalized_answer": $0.normalizedAnswer, "answerable": $0.answerable] as [String: Any]
            },
        ]
        if let averagePrecision, let f1 {
            root["unanswerability"] = ["average_precision": VQAEvaluation.reported(averagePrecision), "f1_score": VQAEvaluation.reported(f1)]
        }
        return try JSONSerialization.data(withJSONObject: root, options: [.prettyPrinted, .sortedKeys])
    }
}
