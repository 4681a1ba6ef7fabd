import Foundation

/// VQA accuracy as the official evaluation (GT-Vision-Lab/VQA, `vqaEval.py`) computes it.
///
/// Per question: the prediction is normalised (newline/tab → space, strip, punctuation rules,
/// lower-case, number words → digits, articles dropped, contractions table). The ten ground-truth
/// answers are *only* punctuation-processed, and only when they are not all identical — as in
/// the reference. For each of the ten answers, acc = min(1, #matches among the other nine / 3);
/// the question's accuracy is the mean of those ten.
///
/// Reference quirks reproduced on purpose (so numbers equal the official tool's):
/// - the per-question-type and per-answer-type breakdowns append the *last* leave-one-out value
///   (`acc` after the loop), not the ten-way mean; the overall score uses the mean;
/// - the period-stripping `re.sub` receives `re.UNICODE` (32) positionally as its *count*, so at
///   most 32 periods are removed per answer;
/// - ground-truth answers are processed in place, so a question predicted twice is scored twice
///   (with the last prediction for that id, as `createIndex` keeps the last) and its ground truth
///   is punctuation-processed twice;
/// - only question ids present in the predictions are scored; an unknown id is an error
///   (the reference asserts "Results do not correspond to current VQA set").
/// Python 3 semantics are used for `\d` (any Unicode decimal digit), `lower()` and `split()`.
public struct VQAEvaluation: Sendable {
    public struct QuestionScore: Sendable, Equatable {
        public var questionID: Int
        /// Mean over the ten leave-one-out subsets, in [0, 1].
        public var accuracy: Double
        /// The last leave-one-out value, which the reference uses for its type breakdowns.
        public var lastLeaveOneOut: Double
        public var questionType: String
        public var answerType: String
        public var normalizedAnswer: String
    }

    /// Overall accuracy × 100, unrounded.
    public var overall: Double
    public var perQuestionType: [String: Double]
    public var perAnswerType: [String: Double]
    public var perQuestion: [QuestionScore]

    /// Rounded to 2 decimals, as `vqaEval.py` (n = 2) reports it.
    public static func reported(_ x: Double) -> Double {
        Double(String(format: "%.2f", x)) ?? x
    }

    public struct Answer: Sendable {
        public var answer: String
        /// The rest of the answer object, canonically encoded: the reference compares whole
        /// answer dicts when it leaves one answer out.
        public var identity: String
    }

    public struct Annotation: Sendable {
        public var questionID: Int
        public var questionType: String
        public var answerType: String
        public var answers: [Answer]
    }

    /// One question of a VQA v2 questions file.
    public struct Question: Sendable, Equatable {
        public var questionID: Int
        public var imageID: Int
        public var text: String
    }

    /// The questions, in file order, with their image ids and text (to ask a model).
    public static func loadQuestionList(_ url: URL) throws -> [Question] {
        let r = JSONReader(path: url.path)
        let root = try r.object(r.load(url), at: "$")
        let qs = try r.array(r.field(root, "questions", at: "$"), at: "$.questions")
        return try qs.enumerated().map { i, q in
            let loc = "$.questions[\(i)]"
            let o = try r.object(q, at: loc)
            return Question(questionID: try r.int(o, "question_id", at: loc), imageID: try r.int(o, "image_id", at: loc),
                            text: try r.string(o, "question", at: loc))
        }
    }

    public static func loadQuestions(_ url: URL) throws -> Set<Int> {
        let r = JSONReader(path: url.path)
        let root = try r.object(r.load(url), at: "$")
        let qs = try r.array(r.field(root, "questions", at: "$"), at: "$.questions")
        var ids = Set<Int>()
        for (i, q) in qs.enumerated() {
            let loc = "$.questions[\(i)]"
            ids.insert(try r.int(r.object(q, at: loc), "question_id", at: loc))
        }
        return ids
    }

    public static func loadAnnotations(_ url: URL) throws -> [Int: Annotation] {
        let r = JSONReader(path: url.path)
        return try parseAnnotations(r.load(url), reader: r)
    }

    static func parseAnnotations(_ json: Any, reader r: JSONReader) throws -> [Int: Annotation] {
        let root = try r.object(json, at: "$")
        let anns = try r.array(r.field(root, "annotations", at: "$"), at: "$.annotations")
        var out: [Int: Annotation] = [:]
        for (i, a) in anns.enumerated() {
            let loc = "$.annotations[\(i)]"
            let o = try r.object(a, at: loc)
            let qid = try r.int(o, "question_id", at: loc)
            let answers = try r.array(r.field(o, "answers", at: loc), at: "\(loc).answers")
            var parsed: [Answer] = []
            for (j, ans) in answers.enumerated() {
                let aloc = "\(loc).answers[\(j)]"
                var ao = try r.object(ans, at: aloc)
                let text = try r.string(ao, "answer", at: aloc)
                ao.removeValue(forKey: "answer")
                let ident = (try? JSONSerialization.data(withJSONObject: ao, options: [.sortedKeys]))
                    .flatMap { String(data: $0, encoding: .utf8) } ?? "\(j)"
                parsed.append(Answer(answer: text, identity: ident))
            }
            // createIndex keeps the last annotation for a question id.
            out[qid] = Annotation(questionID: qid,
                                  questionType: try r.string(o, "question_type", at: loc),
                                  answerType: try r.string(o, "answer_type", at: loc),
                                  answers: parsed)
        }
        return out
    }

    /// Predictions `[{"question_id": Int, "answer": String}]`, in file order (duplicates kept,
    /// see the type's documentation).
    public static func loadPredictions(_ url: URL, annotations: [Int: Annotation], questions: Set<Int>? = nil) throws -> [(Int, String)] {
        let r = JSONReader(path: url.path)
        return try parsePredictions(r.load(url), reader: r, annotations: annotations, questions: questions)
    }

    static func parsePredictions(_ json: Any, reader r: JSONReader, annotations: [Int: Annotation], questions: Set<Int>?) throws -> [(Int, String)] {
        let list = try r.array(json, at: "$")
        if list.isEmpty { throw EvalError.emptyPredictions(path: r.path) }
        var out: [(Int, String)] = []
        for (i, p) in list.enumerated() {
            let loc = "$[\(i)]"
            let o = try r.object(p, at: loc)
            let qid = try r.int(o, "question_id", at: loc)
            let ans = try r.string(o, "answer", at: loc)
            guard annotations[qid] != nil, questions?.contains(qid) ?? true else {
                throw EvalError.unknownID(path: r.path, location: loc, id: qid)
            }
            out.append((qid, ans))
        }
        return out
    }

    public static func evaluate(annotations: [Int: Annotation], predictions: [(Int, String)]) throws -> VQAEvaluation {
        // The reference's results index keeps the last prediction per id, but iterates all ids.
        var lastAnswer: [Int: String] = [:]
        for (q, a) in predictions { lastAnswer[q] = a }
        var gts = annotations
        var accQA: [Double] = []
        var byQType: [String: [Double]] = [:], byAType: [String: [Double]] = [:]
        var qTypeOrder: [String] = [], aTypeOrder: [String] = []
        var per: [QuestionScore] = []
        for (qid, _) in predictions {
            guard var gt = gts[qid] else { throw EvalError.unknownID(path: "predictions", location: "question_id", id: qid) }
            guard !gt.answers.isEmpty else { throw EvalError.noAnswers(questionID: qid) }
            var res = lastAnswer[qid] ?? ""
            res = res.replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "\t", with: " ")
            res = PythonText.strip(res)
            res = VQANormalizer.processPunctuation(res)
            res = VQANormalizer.processDigitArticle(res)
            if Set(gt.answers.map(\.answer)).count > 1 {
                for j in gt.answers.indices { gt.answers[j].answer = VQANormalizer.processPunctuation(gt.answers[j].answer) }
                gts[qid] = gt
            }
            var accs: [Double] = []
            for datum in gt.answers {
                let others = gt.answers.filter { !($0.answer == datum.answer && $0.identity == datum.identity) }
                let matching = others.filter { $0.answer == res }.count
                accs.append(min(1, Double(matching) / 3))
            }
            let acc = accs.last ?? 0
            accQA.append(accs.reduce(0, +) / Double(accs.count))
            if byQType[gt.questionType] == nil { qTypeOrder.append(gt.questionType) }
            if byAType[gt.answerType] == nil { aTypeOrder.append(gt.answerType) }
            byQType[gt.questionType, default: []].append(acc)
            byAType[gt.answerType, default: []].append(acc)
            per.append(QuestionScore(questionID: qid, accuracy: accQA[accQA.count - 1], lastLeaveOneOut: acc,
                                     questionType: gt.questionType, answerType: gt.answerType, normalizedAnswer: res))
        }
        func pct(_ xs: [Double]) -> Double { 100 * xs.reduce(0, +) / Double(max(1, xs.count)) }
        return VQAEvaluation(overall: pct(accQA),
                             perQuestionType: byQType.mapValues(pct),
                             perAnswerType: byAType.mapValues(pct),
                             perQuestion: per)
    }

    public func jsonData() throws -> Data {
        let perQ: [[String: Any]] = perQuestion.map {
            ["question_id": $0.questionID, "accuracy": 100 * $0.accuracy, "question_type": $0.questionType,
             "answer_type": $0.answerType, "normalized_answer": $0.normalizedAnswer]
        }
        let root: [String: Any] = [
            "overall": Self.reported(overall),
            "overall_unrounded": overall,
            "perQuestionType": perQuestionType.mapValues(Self.reported),
            "perAnswerType": perAnswerType.mapValues(Self.reported),
            "num_questions": perQuestion.count,
            "per_question": perQ,
        ]
        return try JSONSerialization.data(withJSONObject: root, options: [.prettyPrinted, .sortedKeys])
    }
}

/// vqaEval.py's answer normalisation, on Unicode scalars (Python 3 `str` code points).
public enum VQANormalizer {
    /// vqaEval.py's punctuation marks, in its order.
    public static let punct: [String] = [";", ":", "/", "'", "[", "]", "\"", "(", ")", "=", "+", "\\", "_",
                                  ">", "<", "@", "`", ",", "?"]
    static let manualMap: [String: String] = ["none": "0", "zero": "0", "one": "1", "two": "2", "three": "3",
                                              "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8",
                                              "nine": "9", "ten": "10"]
    static let articles: Set<String> = ["a", "an", "the"]

    static func isDigit(_ u: Unicode.Scalar) -> Bool { u.properties.numericType == .decimal }

    /// Python `str.replace` on code points (Swift's string replace compares by grapheme
    /// clusters, which differs when a combining mark follows the punctuation).
    static func replaceScalars(_ s: [Unicode.Scalar], _ p: Unicode.Scalar, with r: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(s.count)
        for u in s { if u == p { out.append(contentsOf: r) } else { out.append(u) } }
        return out
    }

    /// `processPunctuation`: each punctuation mark is deleted when it touches a space somewhere in
    /// the *original* text (or when the text has a digit,digit comma anywhere), else replaced by a
    /// space; then periods not followed by a digit are deleted (at most 32, see the type docs).
    public static func processPunctuation(_ text: String, marks: [String] = punct) -> String {
        let input = Array(text.unicodeScalars)
        var hasDigitComma = false
        if input.count >= 3 {
            for i in 1..<(input.count - 1) where input[i] == "," && isDigit(input[i - 1]) && isDigit(input[i + 1]) {
                hasDigitComma = true; break
            }
        }
        var out = input
        for p in marks {
            guard let ps = p.unicodeScalars.first else { continue }
            var touchesSpace = false
            for i in input.indices where input[i] == ps {
                if (i + 1 < input.count && input[i + 1] == " ") || (i > 0 && input[i - 1] == " ") { touchesSpace = true; break }
            }
            out = replaceScalars(out, ps, with: (touchesSpace || hasDigitComma) ? [] : [" "])
        }
        var final: [Unicode.Scalar] = []
        var removed = 0
        for i in out.indices {
            if out[i] == ".", removed < 32, !(i + 1 < out.count && isDigit(out[i + 1])) {
                removed += 1
                continue
            }
            final.append(out[i])
        }
        var v = String.UnicodeScalarView(); v.append(contentsOf: final); return String(v)
    }

    /// `processDigitArticle`: lower-case, split on whitespace, number words → digits, drop
    /// articles, then map contraction-less spellings through the reference's contractions table.
    public static func processDigitArticle(_ text: String) -> String {
        var words: [String] = []
        for w in PythonText.split(text.lowercased()) {
            let m = manualMap[w] ?? w
            if !articles.contains(m) { words.append(m) }
        }
        return words.map { contractions[$0] ?? $0 }.joined(separator: " ")
    }

    /// Full normalisation of a predicted answer.
    public static func normalizePrediction(_ s: String) -> String {
        let t = PythonText.strip(s.replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "\t", with: " "))
        return processDigitArticle(processPunctuation(t))
    }
}
