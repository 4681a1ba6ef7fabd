import Foundation
import XCTest
import KosmosEval
import KosmosModels

/// `kosmos eval score-vizwiz` / `eval vizwiz`.
extension CLITests {
    /// The scores printed and written equal the VizWiz evaluation's (vizwiz_reference.py).
    func testScoreVizWizPrintsTheReferenceScores() throws {
        let eval = Self.fixtures.appendingPathComponent("eval")
        let expected = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: eval.appendingPathComponent("vizwiz_expected.json"))) as? [String: Any])
        let scored = try XCTUnwrap(expected["scored"] as? [String: Any])
        let out = Self.root.appendingPathComponent("vizwiz-scores.json")
        let run = try succeed(["eval", "score-vizwiz", "--annotations", eval.appendingPathComponent("vizwiz_annotations.json").path,
                               "--predictions", eval.appendingPathComponent("vizwiz_predictions_scored.json").path, "--out", out.path])
        let accuracy = try XCTUnwrap(scored["accuracy"] as? [String: Any]), unanswerability = try XCTUnwrap(scored["unanswerability"] as? [String: Double])
        XCTAssertTrue(run.stdout.contains(String(format: "overall accuracy: %.2f", try XCTUnwrap(accuracy["overall"] as? Double))), run.stdout)
        XCTAssertTrue(run.stdout.contains(String(format: "unanswerable: average precision %.2f, F1 %.2f",
                                                 unanswerability["average_precision"]!, unanswerability["f1_score"]!)), run.stdout)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: out)) as? [String: Any])
        let scores = try XCTUnwrap(json["scores"] as? [String: Any])
        XCTAssertEqual(scores["perAnswerType"] as? [String: Double], accuracy["perAnswerType"] as? [String: Double])
        let missing = try kosmos(["eval", "score-vizwiz", "--annotations", eval.appendingPathComponent("vizwiz_annotations.json").path,
                                  "--predictions", eval.appendingPathComponent("vqa_predictions.json").path])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("vqa_predictions.json: at [0]: missing key \"image\""), missing.stderr)
    }

    /// Answers equal the library's generation on the same interleaved prompt, with solved examples
    /// drawn from a separate training file (K drawn, no item to leave out).
    func testEvalVizWizAnswersAfterTrainingExamples() throws {
        let dir = Self.root.appendingPathComponent("vizwiz")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for (name, file) in [("a.png", "images/inputs/rgb8_224x224.png"), ("b.png", "images/inputs/palette_63x41.png"),
                             ("c.png", "images/inputs/palette_63x41.png"), ("d.png", "images/inputs/rgb8_224x224.png"), ("e.png", "images/inputs/palette_63x41.png")] {
            try? FileManager.default.removeItem(at: dir.appendingPathComponent(name))
            try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent(file), to: dir.appendingPathComponent(name))
        }
        func annotation(_ image: String, _ question: String, _ answer: String) -> [String: Any] {
            ["image": image, "question": question, "answer_type": answer == "unanswerable" ? "unanswerable" : "other",
             "answerable": answer == "unanswerable" ? 0 : 1,
             "answers": (0..<10).map { ["answer": $0 < 7 ? answer : "blue", "answer_confidence": "yes"] }]
        }
        let val = [annotation("a.png", "What color is this?", "red"), annotation("b.png", "What does it say?", "unanswerable")]
        let train = [annotation("c.png", "Is it a can?", "yes"), annotation("d.png", "What brand?", "unanswerable"), annotation("e.png", "Which flavor?", "tomato")]
        try JSONSerialization.data(withJSONObject: val).write(to: dir.appendingPathComponent("val.json"))
        try JSONSerialization.data(withJSONObject: train).write(to: dir.appendingPathComponent("train.json"))
        let model = Self.harness.appendingPathComponent("model")
        let out = dir.appendingPathComponent("r.json")
        let run = try succeed(["eval", "vizwiz", "--model", model.path, "--annotations", dir.appendingPathComponent("val.json").path,
                               "--images", dir.path, "--shots", "2", "--fewshot-data", dir.appendingPathComponent("train.json").path,
                               "--max-tokens", "3", "--out", out.path])
        XCTAssertTrue(run.stdout.contains("questions scored: 2 of 2 annotated"), run.stdout)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: out)) as? [String: Any])
        let predictions = try XCTUnwrap(json["predictions"] as? [[String: Any]])
        var random = PythonRandom(seed: 1234)
        let session = try ModelSession(directory: model, dtype: .float32)
        var answers: [VizWizEvaluation.Prediction] = []
        for (i, p) in predictions.enumerated() {
            let demos = try fewShotIndices(count: 3, shots: 2, random: &random, isItem: nil)
            XCTAssertEqual(p["demonstrations"] as? [String], demos.map { train[$0]["image"] as! String })
            let prompt = demos.map { "<image>Question: \(train[$0]["question"]!) Answer: \(($0 == 0 ? "yes" : $0 == 1 ? "unanswerable" : "tomato"))\n" }.joined()
                + "<image>Question: \(val[i]["question"]!) Answer:"
            let files = (demos.map { train[$0]["image"] as! String } + [val[i]["image"] as! String]).map { dir.appendingPathComponent($0) }
            var options = GenerationOptions()
            options.maxNewTokens = 3
            let text = session.processor.output(try session.model.generate(try session.input(text: prompt, imageFiles: files), options: options), grounding: false).text
            let expected = String(text.split(separator: "\n", omittingEmptySubsequences: false).first ?? "").trimmingCharacters(in: .whitespaces)
            XCTAssertEqual(p["answer"] as? String, expected, "question \(i)")
            answers.append(.init(image: val[i]["image"] as! String, answer: expected))
        }
        // The scores written are those of the library's evaluation of the same answers.
        let annotations = try VizWizEvaluation.loadAnnotations(dir.appendingPathComponent("val.json"))
        let reference = try VizWizEvaluation.evaluate(annotations: annotations, predictions: answers)
        let scores = try XCTUnwrap(json["scores"] as? [String: Any])
        XCTAssertEqual(scores["overall"] as? Double, VQAEvaluation.reported(reference.overall))
        let bad = try kosmos(["eval", "vizwiz", "--model", model.path, "--annotations", dir.appendingPathComponent("val.json").path,
                              "--images", dir.path, "--shots", "2"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("--shots: at 2: draws 3 solved examples; the pool has 2"), bad.stderr)
    }
}
