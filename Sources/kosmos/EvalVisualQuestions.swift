import ArgumentParser
import Foundation
import KosmosEval
import KosmosModels

/// One question of an open-ended VQA set for the answering loop: its text, its image, and the
/// answer it shows when it is a solved example (the one most annotators gave).
struct VisualQuestion {
    var text: String
    var image: URL
    var demonstrationAnswer: String
}

/// The answer most annotators gave (the first of those tied, as Counter.most_common orders them).
func commonAnswer(_ answers: [String]) -> String {
    var counts: [String: Int] = [:], order: [String] = []
    for x in answers {
        if counts[x] == nil { order.append(x) }
        counts[x, default: 0] += 1
    }
    var best = ""
    for x in order where best.isEmpty || counts[x]! > counts[best]! { best = x }
    return best
}

/// The Kosmos-1 paper's VQA prompt after its solved examples: "<image>Question: q Answer: a\n"
/// per example, then "<image>Question: q Answer:".
func visualQuestionPrompt(_ question: String, examples: [VisualQuestion]) -> String {
    examples.map { "<image>Question: \($0.text) Answer: \($0.demonstrationAnswer)\n" }.joined() + "<image>Question: \(question) Answer:"
}

/// Answers each question greedily (up to a newline or EOS), after `shots` solved examples drawn
/// from `pool` as lm-evaluation-harness draws few-shot examples (one Random(1234) across the
/// questions); when the pool is the questions' own file, question i is pool[i] and never its own
/// example. Returns each answer with the pool indices of its examples.
func answerVisualQuestions(session: ModelSession, questions: [VisualQuestion], pool: [VisualQuestion], poolIsTheQuestions: Bool,
                           shots: Int, maxTokens: Int) throws -> [(answer: String, demonstrations: [Int])] {
    guard shots >= 0 else { throw ValidationError("--shots must be 0 or more") }
    guard !questions.isEmpty else { throw ValidationError("no annotated questions to answer") }
    let need = poolIsTheQuestions ? shots + 1 : shots
    if shots > 0 && pool.count < need {
        throw ValidationError("--shots \(shots) draws \(need) solved examples; the pool has \(pool.count)")
    }
    var options = GenerationOptions()
    options.maxNewTokens = maxTokens
    var random = PythonRandom(seed: 1234)
    var out: [(answer: String, demonstrations: [Int])] = []
    let start = Date()
    for (i, q) in questions.enumerated() {
        let examples = try fewShotIndices(count: pool.count, shots: shots, random: &random, isItem: poolIsTheQuestions ? { $0 == i } : nil)
        let text = visualQuestionPrompt(q.text, examples: examples.map { pool[$0] })
        let stream = TextStream(tokenizer: session.tokenizer, eos: session.model.eosTokenId, stops: ["\n"], quiet: true)
        _ = try session.model.generate(try session.input(text: text, imageFiles: examples.map { pool[$0].image } + [q.image]),
                                       options: options, onToken: stream.add)
        out.append((stream.text.trimmingCharacters(in: .whitespaces), examples))
        reportProgress(i + 1, of: questions.count, since: start)
    }
    return out
}

/// `kosmos eval score-vizwiz`: a VizWiz results file scored as the challenge's evaluation scores it.
struct ScoreVizWiz: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "score-vizwiz",
        abstract: "VizWiz-VQA accuracy and answerability (average precision, F1) as the VizWiz evaluation computes them."
    )

    @Option(help: "Predictions: [{\"image\", \"answer\", \"answerable\"?}] (answerable: P(answerable); without it, 0 for \"unanswerable\", else 1).")
    var predictions: String

    @Option(help: "VizWiz annotations (val.json: [{image, question, answers, answer_type, answerable}]).")
    var annotations: String

    @Option(help: "Write the scores as JSON here.")
    var out: String?

    func run() throws {
        try reportingEvalErrors {
            let anns = try VizWizEvaluation.loadAnnotations(URL(fileURLWithPath: annotations))
            let preds = try VizWizEvaluation.loadPredictions(URL(fileURLWithPath: predictions), annotations: anns)
            try printVizWiz(try VizWizEvaluation.evaluate(annotations: anns, predictions: preds), annotated: anns.count, out: out, extra: [:])
        }
    }
}

func printVizWiz(_ r: VizWizEvaluation, annotated: Int, out: String?, extra: [String: Any]) throws {
    print("questions scored: \(r.perImage.count) of \(annotated) annotated")
    print(String(format: "overall accuracy: %.2f", VQAEvaluation.reported(r.overall)))
    for k in r.perAnswerType.keys.sorted() {
        print("  " + k.padding(toLength: 20, withPad: " ", startingAt: 0) + String(format: "%.2f", VQAEvaluation.reported(r.perAnswerType[k] ?? 0)))
    }
    if let ap = r.averagePrecision, let f1 = r.f1 {
        print(String(format: "unanswerable: average precision %.2f, F1 %.2f", VQAEvaluation.reported(ap), VQAEvaluation.reported(f1)))
    }
    if let out {
        var root = extra
        root["scores"] = try JSONSerialization.jsonObject(with: try r.jsonData())
        try JSONSerialization.data(withJSONObject: root, options: [.prettyPrinted, .sortedKeys]).write(to: URL(fileURLWithPath: out))
        print("wrote \(out)")
    }
}

/// `kosmos eval vizwiz`: answer VizWiz questions with a model (the paper's "Question: q Answer:"
/// prompt, greedy) and score them.
struct EvalVizWiz: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vizwiz",
        abstract: "Answer VizWiz-VQA questions with a Kosmos-1 or Kosmos-2 model; score accuracy and answerability as the VizWiz evaluation does."
    )

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "VizWiz annotations (val.json; test.json answers without scoring).")
    var annotations: String

    @Option(help: "Folder of the images (the annotations' image file names).")
    var images: String

    @Option(help: "Answer only the first N questions.")
    var limit: Int?

    @Option(name: .customLong("max-tokens"), help: "Most tokens per answer.")
    var maxTokens = 10

    @Option(help: "Solved examples before each question (interleaved image, question, answer), drawn as lm-evaluation-harness draws few-shot examples; Kosmos-1.")
    var shots = 0

    @Option(name: .customLong("fewshot-data"), help: "Draw the solved examples from this annotation file (the paper draws from train.json) instead of the other questions.")
    var fewshotData: String?

    @Option(name: .customLong("fewshot-images"), help: "Folder of the --fewshot-data images (default: --images).")
    var fewshotImages: String?

    @Option(help: "Write predictions and scores as JSON here.")
    var out: String?

    func run() throws {
        try reportingEvalErrors {
            let anns = try VizWizEvaluation.loadAnnotations(URL(fileURLWithPath: annotations))
            func questions(_ list: [VizWizEvaluation.Annotation], in folder: String) -> [VisualQuestion] {
                list.map { VisualQuestion(text: $0.question, image: URL(fileURLWithPath: folder).appendingPathComponent($0.image),
                                          demonstrationAnswer: commonAnswer($0.answers)) }
            }
            let list = Array(anns.prefix(limit ?? Int.max))
            var poolAnnotations = anns
            if let fewshotData {
                poolAnnotations = try VizWizEvaluation.loadAnnotations(URL(fileURLWithPath: fewshotData))
                if shots > 0, let bare = poolAnnotations.first(where: { $0.answers.isEmpty }) {
                    throw ValidationError("\(fewshotData): \(bare.image) has no answers to show as a solved example")
                }
            }
            let pool = questions(poolAnnotations, in: fewshotData == nil ? images : fewshotImages ?? images)
            let answered = try answerVisualQuestions(session: try modelOptions.session(), questions: questions(list, in: images), pool: pool,
                                                     poolIsTheQuestions: fewshotData == nil, shots: shots, maxTokens: maxTokens)
            let predictions = zip(list, answered).map { a, p -> [String: Any] in
                ["image": a.image, "answer": p.answer, "demonstrations": p.demonstrations.map { poolAnnotations[$0].image }]
            }
            if list.allSatisfy({ !$0.answers.isEmpty }) {
                let scored = zip(list, answered).map { VizWizEvaluation.Prediction(image: $0.image, answer: $1.answer) }
                try printVizWiz(try VizWizEvaluation.evaluate(annotations: anns, predictions: scored), annotated: anns.count,
                                out: out, extra: ["predictions": predictions])
            } else {
                print("questions answered: \(list.count) (no answers in \(annotations) to score against: the test split)")
                if let out {
                    try JSONSerialization.data(withJSONObject: ["predictions": predictions], options: [.prettyPrinted, .sortedKeys])
                        .write(to: URL(fileURLWithPath: out))
                    print("wrote \(out)")
                }
            }
        }
    }
}
