import ArgumentParser
import Foundation
import KosmosEval

/// `kosmos eval …`: captioning and VQA scores equal to the COCO / VQA reference tools.
/// All computation lives in KosmosEval; this file only parses options and prints.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Score predictions with COCO caption metrics or VQA accuracy; run multiple-choice benchmarks, caption a COCO set or measure perplexity with a model.",
        subcommands: [ScoreCaptions.self, ScoreVQA.self, ScoreVizWiz.self, EvalTask.self, EvalSuite.self, EvalCaptions.self, EvalVQA.self, EvalVizWiz.self, EvalRaven.self, EvalClassify.self, EvalPerplexity.self, EvalShapes.self, EvalSounds.self, EvalMotion.self, EvalPasskey.self]
    )
}

struct ScoreCaptions: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "score-captions",
        abstract: "BLEU-1..4, ROUGE-L and CIDEr-D as pycocoevalcap computes them (METEOR and SPICE need Java and are not computed)."
    )

    @Option(help: "Predictions in the COCO results format: [{\"image_id\", \"caption\"}].")
    var predictions: String

    @Option(help: "COCO captions annotation JSON ({\"images\", \"annotations\"}), or Karpathy's split file (dataset_flickr30k.json, dataset_coco.json).")
    var annotations: String

    @Option(help: "The split of a Karpathy file to score (default: test).")
    var split: String?

    @Option(help: "Write the scores (overall and per image) as JSON here.")
    var out: String?

    func run() throws {
        try reportingEvalErrors {
            let anns = try CaptionEvaluation.loadAnnotations(URL(fileURLWithPath: annotations), split: split)
            let preds = try CaptionEvaluation.loadPredictions(URL(fileURLWithPath: predictions), annotations: anns)
            let result = try CaptionEvaluation.evaluate(annotations: anns, predictions: preds)
            print("images scored: \(result.perImage.count) (only images with a prediction, as pycocoevalcap)")
            print("metric".padding(toLength: 10, withPad: " ", startingAt: 0) + "score")
            for name in CaptionEvaluation.metricNames {
                print(name.padding(toLength: 10, withPad: " ", startingAt: 0) + String(format: "%.4f", result.scores[name] ?? 0))
            }
            if let out {
                try result.jsonData().write(to: URL(fileURLWithPath: out))
                print("wrote \(out)")
            }
        }
    }
}

struct ScoreVQA: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "score-vqa",
        abstract: "VQA accuracy as the official vqaEval.py computes it (overall, per answer type, per question type)."
    )

    @Option(help: "Predictions: [{\"question_id\", \"answer\"}].")
    var predictions: String

    @Option(help: "VQA v2 questions JSON ({\"questions\": [...]}).")
    var questions: String

    @Option(help: "VQA v2 annotations JSON ({\"annotations\": [...]}).")
    var annotations: String

    @Option(help: "Write the scores as JSON here.")
    var out: String?

    func run() throws {
        try reportingEvalErrors {
            let qs = try VQAEvaluation.loadQuestions(URL(fileURLWithPath: questions))
            let anns = try VQAEvaluation.loadAnnotations(URL(fileURLWithPath: annotations))
            let preds = try VQAEvaluation.loadPredictions(URL(fileURLWithPath: predictions), annotations: anns, questions: qs)
            let r = try VQAEvaluation.evaluate(annotations: anns, predictions: preds)
            print("questions scored: \(r.perQuestion.count)")
            print(String(format: "overall accuracy: %.2f", VQAEvaluation.reported(r.overall)))
            print("per answer type:")
            for k in r.perAnswerType.keys.sorted() {
                print("  " + k.padding(toLength: 28, withPad: " ", startingAt: 0) + String(format: "%.2f", VQAEvaluation.reported(r.perAnswerType[k] ?? 0)))
            }
            print("per question type:")
            for k in r.perQuestionType.keys.sorted() {
                print("  " + k.padding(toLength: 28, withPad: " ", startingAt: 0) + String(format: "%.2f", VQAEvaluation.reported(r.perQuestionType[k] ?? 0)))
            }
            if let out {
                try r.jsonData().write(to: URL(fileURLWithPath: out))
                print("wrote \(out)")
            }
        }
    }
}

/// Runs `body`; a bad input file (EvalError) is the user's to fix: say what and where on stderr,
/// without the usage text, and exit 1.
func reportingEvalErrors(_ body: () throws -> Void) throws {
    do { try body() } catch let e as EvalError {
        FileHandle.standardError.write(Data("error: \(e.description)\n".utf8))
        throw ExitCode.failure
    }
}
