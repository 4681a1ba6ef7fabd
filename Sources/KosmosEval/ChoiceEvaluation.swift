import Foundation

/// A (context, continuation) pair as the harness logs it (`arguments`): before the context's
/// trailing whitespace moves into the continuation.
public struct ChoiceRequest: Equatable, Sendable {
    public var context: String
    public var continuation: String

    public init(context: String, continuation: String) {
        self.context = context
        self.continuation = continuation
    }

    /// `TemplateLM._encode_pair`'s first step: the context's trailing whitespace (Python's
    /// `rstrip`) moved to the front of the continuation, so a word keeps its leading space.
    public var split: (context: String, continuation: String) {
        let stripped = PythonText.rstrip(context)
        let moved = PythonText.slice(context, PythonText.length(stripped))
        return (stripped, moved + continuation)
    }
}

/// What a model says of one request.
public struct ChoiceScore: Equatable, Sendable {
    public var logLikelihood: Double
    public var isGreedy: Bool

    public init(logLikelihood: Double, isGreedy: Bool) {
        self.logLikelihood = logLikelihood
        self.isGreedy = isGreedy
    }
}

/// One scored item.
public struct ChoiceItemResult {
    public var docID: Int
    public var gold: Int
    public var requests: [ChoiceRequest]
    public var scores: [ChoiceScore]
    /// argmax of the log-likelihoods (the first maximum, as numpy's argmax).
    public var prediction: Int
    /// argmax of log-likelihood ÷ the choice's length in code points.
    public var normalizedPrediction: Int
}

/// A task's result: its metrics as the harness aggregates them, and every item.
public struct ChoiceTaskResult {
    public var task: String
    public var shots: Int
    public var metrics: [ChoiceTask.Metric]
    public var items: [ChoiceItemResult]

    /// The metric's value over the items: `acc`/`acc_norm` the mean, `f1` CB's mean of three
    /// one-class F1 scores.
    public func value(_ metric: ChoiceTask.Metric) -> Double {
        switch metric {
        case .acc: return Self.mean(items.map { $0.prediction == $0.gold ? 1 : 0 })
        case .accNorm: return Self.mean(items.map { $0.normalizedPrediction == $0.gold ? 1 : 0 })
        case .f1:
            let f1s = (0..<3).map { c -> Double in
                var tp = 0.0, fp = 0.0, fn = 0.0
                for item in items {
                    let predicted = item.prediction == c, actual = item.gold == c
                    if predicted && actual { tp += 1 } else if predicted { fp += 1 } else if actual { fn += 1 }
                }
                // sklearn's f1_score: 2tp / (2tp + fp + fn), 0 where that is 0/0 (zero_division).
                return 2 * tp + fp + fn == 0 ? 0 : 2 * tp / (2 * tp + fp + fn)
            }
            return (f1s[0] + f1s[1] + f1s[2]) / 3
        }
    }

    /// The standard error as the harness reports it: `mean_stderr` (sample standard deviation
    /// over √n) for the means; nil ("N/A") for F1 (its aggregation is not bootstrapped) and for a
    /// single item.
    public func standardError(_ metric: ChoiceTask.Metric) -> Double? {
        guard items.count > 1 else { return nil }
        let values: [Double]
        switch metric {
        case .acc: values = items.map { $0.prediction == $0.gold ? 1 : 0 }
        case .accNorm: values = items.map { $0.normalizedPrediction == $0.gold ? 1 : 0 }
        case .f1: return nil
        }
        return Self.meanStandardError(values)
    }

    /// The harness's `mean_stderr`: sample standard deviation over √n; nil for one value.
    static func meanStandardError(_ values: [Double]) -> Double? {
        guard values.count > 1 else { return nil }
        let mu = mean(values)
        var squares = 0.0
        for v in values { squares += (v - mu) * (v - mu) }
        return (squares / Double(values.count - 1)).squareRoot() / Double(values.count).squareRoot()
    }

    static func mean(_ values: [Double]) -> Double {
        var total = 0.0
        for v in values { total += v }
        return total / Double(values.count)
    }

    /// The result as JSON: the metrics (with `_stderr`, "N/A" where the harness has none), and
    /// per item every choice's context, continuation, log-likelihood and greedy flag, and the answer.
    public func json() -> [String: Any] {
        var m: [String: Any] = [:]
        for metric in metrics {
            m[metric.rawValue] = value(metric)
            m[metric.rawValue + "_stderr"] = standardError(metric) ?? "N/A"
        }
        let list: [[String: Any]] = items.map { item in
            [
                "doc_id": item.docID, "gold": item.gold, "prediction": item.prediction,
                "prediction_norm": item.normalizedPrediction,
                "choices": zip(item.requests, item.scores).map { r, s in
                    ["context": r.context, "continuation": r.continuation, "loglikelihood": s.logLikelihood, "is_greedy": s.isGreedy] as [String: Any]
                },
            ]
        }
        return ["task": task, "shots": shots, "items": items.count, "metrics": m, "documents": list]
    }
}

/// Multiple-choice evaluation as lm-evaluation-harness runs it: few-shot examples drawn by its
/// sampler, each item's requests built from its rules, each request scored by a model, and the
/// item judged by the highest log-likelihood.
public struct ChoiceEvaluation {
    public var task: ChoiceTask
    public var documents: [ChoiceDocument]
    /// Where few-shot examples come from: the `--fewshot-data` file, or the documents themselves.
    public var fewshotPool: [ChoiceDocument]?
    public var shots: Int
    /// The harness's `fewshot_random_seed` default.
    public var seed: UInt64 = 1234

    public init(task: ChoiceTask, documents: [ChoiceDocument], fewshotPool: [ChoiceDocument]? = nil, shots: Int = 0) throws {
        self.task = task
        self.documents = documents
        self.fewshotPool = fewshotPool
        self.shots = shots
        guard shots >= 0 else { throw EvalError.malformed(path: "--shots", location: "\(shots)", reason: "must be 0 or more") }
        let pool = fewshotPool ?? documents
        let needed = shots + (fewshotPool == nil || task.dropsItself ? 1 : 0)
        if shots > 0 && pool.count < needed {
            throw EvalError.malformed(path: "--shots", location: "\(shots)",
                                      reason: "the few-shot pool (\(fewshotPool == nil ? "the --data file" : "the --fewshot-data file")) has \(pool.count) items; \(shots) shots draw \(needed)")
        }
    }

    /// Every item's requests, in order, with the few-shot examples drawn as the harness draws
    /// them: one `random.Random(seed)` over the items in order, K + 1 drawn and the item dropped
    /// where the item may be in the pool, the first K kept.
    public func requests(limit: Int? = nil) throws -> [[ChoiceRequest]] {
        var random = PythonRandom(seed: seed)
        let pool = fewshotPool ?? documents
        let drops = fewshotPool == nil || task.dropsItself
        return try documents.prefix(limit ?? documents.count).map { doc in
            var prefix = ""
            if shots > 0 {
                let drawn = try fewShotIndices(count: pool.count, shots: shots, random: &random,
                                           isItem: drops ? { pool[$0].record == doc.record } : nil)
                prefix = drawn.map { Self.example(pool[$0]) }.joined()
            }
            switch doc.layout {
            case .sharedContext(let text):
                return doc.choices.map { ChoiceRequest(context: prefix + text, continuation: " " + $0) }
            case .sharedContinuation(let target):
                return doc.choices.map { ChoiceRequest(context: prefix + $0, continuation: " " + target) }
            }
        }
    }

    /// A solved example as the harness renders it without a chat template: question, the target
    /// delimiter, the answer, the few-shot delimiter ("\n\n").
    static func example(_ doc: ChoiceDocument) -> String {
        switch doc.layout {
        case .sharedContext(let text):
            return text + " " + doc.choices[doc.gold] + "\n\n"
        case .sharedContinuation(let target):
            // No answer (an empty rest of the sentence): the harness adds neither delimiter.
            return target.isEmpty ? doc.choices[doc.gold] : doc.choices[doc.gold] + " " + target + "\n\n"
        }
    }

    /// Scores the first `limit` items; `score` gets one item's requests at a time (its choices
    /// share a context, or a continuation), already split as the harness splits them.
    public func run(limit: Int? = nil, score: ([(context: String, continuation: String)]) throws -> [ChoiceScore],
                    progress: (Int, Int) -> Void = { _, _ in }) throws -> ChoiceTaskResult {
        let all = try requests(limit: limit)
        var items: [ChoiceItemResult] = []
        for (i, requests) in all.enumerated() {
            let doc = documents[i]
            let scores = try score(requests.map(\.split))
            precondition(scores.count == requests.count, "a score per request")
            let lls = scores.map(\.logLikelihood)
            let lengths = doc.choices.map { Double(PythonText.length($0)) }
            items.append(ChoiceItemResult(docID: i, gold: doc.gold, requests: requests, scores: scores,
                                          prediction: Self.argmax(lls),
                                          normalizedPrediction: Self.argmax(zip(lls, lengths).map { $0 / $1 })))
            progress(i + 1, all.count)
        }
        return ChoiceTaskResult(task: task.name, shots: shots, metrics: task.metrics, items: items)
    }

    /// numpy's argmax: the first maximum, or the first NaN if there is one.
    static func argmax(_ values: [Double]) -> Int {
        if let nan = values.firstIndex(where: \.isNaN) { return nan }
        var best = 0
        for (i, v) in values.enumerated() where v > values[best] { best = i }
        return best
    }
}
