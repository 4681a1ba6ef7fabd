import ArgumentParser
import Foundation
import KosmosEval
import KosmosModels
import KosmosEvalRuns

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
            let list = Array(anns.prefix(limit ?? Int.max))
            var poolAnnotations = anns
            if let fewshotData {
                poolAnnotations = try VizWizEvaluation.loadAnnotations(URL(fileURLWithPath: fewshotData))
                if shots > 0, let bare = poolAnnotations.first(where: { $0.answers.isEmpty }) {
                    throw ValidationError("\(fewshotData): \(bare.image) has no answers to show as a solved example")
                }
            }
            let pool = VisualQuestion.vizwiz(poolAnnotations, folder: URL(fileURLWithPath: fewshotData == nil ? images : fewshotImages ?? images))
            let start = Date()
            let answered = try answerVisualQuestions(session: try modelOptions.session(), questions: VisualQuestion.vizwiz(list, folder: URL(fileURLWithPath: images)), pool: pool,
                                                     poolIsTheQuestions: fewshotData == nil, shots: shots, maxTokens: maxTokens,
                                                     progress: { reportProgress($0, of: $1, since: start) })
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
