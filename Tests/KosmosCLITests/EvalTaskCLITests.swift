import Foundation
import XCTest
import KosmosEval
import KosmosModels

/// `kosmos eval task` / `eval suite` and the scorer under them, against lm-evaluation-harness
/// 0.4.13 scoring the same tiny Kosmos-1 model (PyTorch, torchscale) on the same files
/// (scripts/reference/harness_reference.py → Tests/Fixtures/harness).
extension CLITests {
    static var harness: URL { fixtures.appendingPathComponent("harness") }

    static func harnessRuns() throws -> [[String: Any]] {
        let expected = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: harness.appendingPathComponent("expected.json"))) as? [String: Any])
        return try XCTUnwrap(expected["runs"] as? [[String: Any]])
    }

    static let harnessFiles = ["hellaswag": "hellaswag_val.jsonl", "piqa": "piqa_valid.jsonl", "boolq": "boolq_val.jsonl",
                               "cb": "cb_val.jsonl", "copa": "copa_val.jsonl", "storycloze_2016": "storycloze_2016_val.csv",
                               "winogrande": "winogrande_dev.jsonl", "wsc273": "WSCollection.xml",
                               "relativesize": "relativesize_pairs.txt", "memorycolor": "memorycolor.csv", "colorterms": "colorterms.csv"]

    /// Every choice's log-likelihood within 1e-4 (relative) of the harness's, is_greedy, the chosen
    /// answers and the metrics exactly — all eleven tasks at 0 shots, and HellaSwag, Winogrande,
    /// WSC273, RelativeSize (2 shots) and COPA (3 shots); batched (8 continuations a pass) and one at a time alike.
    func testScorerEqualsTheHarnessOnEveryTask() throws {
        let session = try ModelSession(directory: Self.harness.appendingPathComponent("model"), dtype: .float32)
        for batch in [8, 1] {
            let scorer = ContinuationScorer(model: session.model, processor: session.processor, batchSize: batch)
            var worst = 0.0
            for run in try Self.harnessRuns() {
                let name = try XCTUnwrap(run["task"] as? String), shots = try XCTUnwrap(run["shots"] as? Int)
                let task = try ChoiceTask.named(name)
                let evaluation = try ChoiceEvaluation(task: task, documents: try task.load(Self.harness.appendingPathComponent(Self.harnessFiles[name]!)), shots: shots)
                let result = try evaluation.run(score: { requests in
                    try scorer.score(requests).map { ChoiceScore(logLikelihood: $0.logLikelihood, isGreedy: $0.isGreedy) }
                })
                let samples = try XCTUnwrap(run["samples"] as? [[String: Any]])
                XCTAssertEqual(result.items.count, samples.count)
                for (item, sample) in zip(result.items, samples) {
                    let lls = try XCTUnwrap(sample["loglikelihoods"] as? [Double]), greedy = try XCTUnwrap(sample["is_greedy"] as? [Bool])
                    for (mine, theirs) in zip(item.scores.map(\.logLikelihood), lls) {
                        worst = max(worst, abs(mine - theirs) / abs(theirs))
                        XCTAssertEqual(mine, theirs, accuracy: 1e-4 * abs(theirs), "\(name) \(shots)-shot doc \(item.docID)")
                    }
                    XCTAssertEqual(item.scores.map(\.isGreedy), greedy, "\(name) doc \(item.docID)")
                    XCTAssertEqual(item.prediction == item.gold ? 1.0 : 0.0, sample["acc"] as? Double, "\(name) doc \(item.docID)")
                }
                let metrics = try XCTUnwrap(run["metrics"] as? [String: Any])
                XCTAssertEqual(Set(metrics.keys), Set(result.metrics.flatMap { [$0.rawValue, $0.rawValue + "_stderr"] }))
                for metric in result.metrics {
                    // From Python's repr: Foundation's JSON reader rounds some decimals an ulp off.
                    let value = try XCTUnwrap(Double(try XCTUnwrap((run["metrics_repr"] as? [String: String])?[metric.rawValue])))
                    XCTAssertEqual(result.value(metric), value, "\(name) \(shots)-shot \(metric)")
                }
            }
            print("largest relative log-likelihood difference from the harness (batch \(batch)): \(worst)")
        }
    }

    /// A continuation that adds no tokens is an error naming it, not a silent zero.
    func testEmptyContinuationIsRefused() throws {
        let session = try ModelSession(directory: Self.harness.appendingPathComponent("model"), dtype: .float32)
        let scorer = ContinuationScorer(model: session.model, processor: session.processor)
        XCTAssertThrowsError(try scorer.score([(context: "Answer:", continuation: "")])) { error in
            XCTAssertEqual("\(error)".contains("the continuation \"\" comes to no tokens after its context"), true, "\(error)")
        }
    }

    /// A context + continuation past the model's 1,024 positions is cut from the left as HFLM
    /// cuts it: the last 1,025 tokens, all but the last fed.
    func testLongRequestsAreCutFromTheLeftAsHFLMCutsThem() throws {
        let session = try ModelSession(directory: Self.harness.appendingPathComponent("model"), dtype: .float32)
        let scorer = ContinuationScorer(model: session.model, processor: session.processor)
        let context = Array(repeating: "The red dog picks up the ball.", count: 200).joined(separator: " ")
        let (prompt, continuation) = try scorer.encode(context: context, continuation: " The cat")
        XCTAssertGreaterThan(prompt.tokens.count, 1100)
        let kept = Array((prompt.tokens + continuation).suffix(1025))
        let expected = try session.model.continuationScores(of: [continuation], after: ModelInput(tokens: Array(kept.dropLast(continuation.count))))
        XCTAssertEqual(try scorer.score([(context: context, continuation: " The cat"), (context: "The red dog", continuation: " The cat")])[0], expected[0])
    }

    func testEvalTaskCommandWritesTheHarnessNumbers() throws {
        let out = Self.root.appendingPathComponent("copa3.json")
        let run = try succeed(["eval", "task", "--model", Self.harness.appendingPathComponent("model").path, "--task", "copa",
                               "--data", Self.harness.appendingPathComponent("copa_val.jsonl").path, "--shots", "3", "--out", out.path])
        let expected = try XCTUnwrap(try Self.harnessRuns().first { $0["task"] as? String == "copa" && $0["shots"] as? Int == 3 })
        let metrics = try XCTUnwrap(expected["metrics"] as? [String: Double])
        XCTAssertTrue(run.stdout.contains(String(format: "| copa | 3 | acc | %.4f | %.4f | 10 |", metrics["acc"]!, metrics["acc_stderr"]!)), run.stdout)
        XCTAssertTrue(run.stderr.contains("[10/10]"), "progress line: \(run.stderr)")
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: out)) as? [String: Any])
        XCTAssertEqual((json["metrics"] as? [String: Any])?["acc"] as? Double, metrics["acc"])
        let documents = try XCTUnwrap(json["documents"] as? [[String: Any]])
        let samples = try XCTUnwrap(expected["samples"] as? [[String: Any]])
        for (doc, sample) in zip(documents, samples) {
            let choices = try XCTUnwrap(doc["choices"] as? [[String: Any]])
            XCTAssertEqual(choices.map { [$0["context"] as! String, $0["continuation"] as! String] }, sample["arguments"] as? [[String]])
            for (c, ll) in zip(choices, sample["loglikelihoods"] as! [Double]) {
                XCTAssertEqual(c["loglikelihood"] as! Double, ll, accuracy: 1e-4 * abs(ll))
            }
        }
        let unknown = try kosmos(["eval", "task", "--model", Self.harness.appendingPathComponent("model").path, "--task", "hellaswg", "--data", out.path])
        XCTAssertEqual(unknown.status, 1)
        XCTAssertTrue(unknown.stderr.contains("unknown task; the known ones: hellaswag, piqa, boolq, cb, copa, storycloze_2016, winogrande, wsc273, relativesize, memorycolor, colorterms"), unknown.stderr)
    }

    func testEvalSuiteRunsSeveralTasksIntoOneTable() throws {
        let suite = Self.root.appendingPathComponent("suite.json")
        let files = Self.harness.path
        try #"{"tasks": [{"task": "cb", "data": "\#(files)/cb_val.jsonl"}, {"task": "winogrande", "data": "\#(files)/winogrande_dev.jsonl", "shots": 2, "limit": 5}]}"#
            .write(to: suite, atomically: true, encoding: .utf8)
        let out = Self.root.appendingPathComponent("suite-result.json")
        let run = try succeed(["eval", "suite", "--model", Self.harness.appendingPathComponent("model").path, "--config", suite.path, "--out", out.path])
        let runs = try Self.harnessRuns()
        let cb = try XCTUnwrap(runs.first { $0["task"] as? String == "cb" }?["metrics"] as? [String: Any])
        XCTAssertTrue(run.stdout.contains(String(format: "| cb | 0 | f1 | %.4f | N/A | 10 |", cb["f1"] as! Double)), run.stdout)
        // The first five Winogrande items: the harness's per-item acc over those five.
        let wino = try XCTUnwrap(runs.first { $0["task"] as? String == "winogrande" && $0["shots"] as? Int == 2 }?["samples"] as? [[String: Any]])
        let acc = wino.prefix(5).map { $0["acc"] as! Double }.reduce(0, +) / 5
        XCTAssertTrue(run.stdout.contains(String(format: "| winogrande | 2 | acc | %.4f |", acc)), run.stdout)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: out)) as? [String: Any])
        XCTAssertEqual((json["results"] as? [Any])?.count, 2)
        try #"{"tasks": [{"task": "cb", "data": "x.jsonl", "shot": 2}]}"#.write(to: suite, atomically: true, encoding: .utf8)
        let bad = try kosmos(["eval", "suite", "--model", Self.harness.appendingPathComponent("model").path, "--config", suite.path])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("unknown key \"shot\""), bad.stderr)
    }
}

/// Few-shot VQA: solved examples (image, question, the common answer) before each question,
/// drawn as the harness draws few-shot examples; the answer equals the library's generation on
/// the same interleaved prompt.
extension CLITests {
    func testFewShotVQAInterleavesSolvedExamples() throws {
        let dir = Self.root.appendingPathComponent("vqa-fewshot")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for (id, file) in [(1, "images/inputs/rgb8_224x224.png"), (2, "images/inputs/palette_63x41.png")] {
            try? FileManager.default.removeItem(at: dir.appendingPathComponent("\(id).png"))
            try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent(file), to: dir.appendingPathComponent("\(id).png"))
        }
        let texts = ["What color is the car?", "Is it raining?", "How many dogs are there?", "What is on the table?"]
        let answers = ["red", "no", "2", "bread"]
        let questions = texts.enumerated().map { i, t in ["question_id": 10 + i, "image_id": 1 + i % 2, "question": t] as [String: Any] }
        let annotations = answers.enumerated().map { i, a in
            ["question_id": 10 + i, "image_id": 1 + i % 2, "question_type": "what", "answer_type": "other", "multiple_choice_answer": a,
             "answers": (0..<10).map { k in ["answer": k < 6 ? a : "other", "answer_confidence": "yes", "answer_id": k + 1] }] as [String: Any]
        }
        try JSONSerialization.data(withJSONObject: ["questions": questions]).write(to: dir.appendingPathComponent("q.json"))
        try JSONSerialization.data(withJSONObject: ["annotations": annotations]).write(to: dir.appendingPathComponent("a.json"))
        let model = Self.harness.appendingPathComponent("model")
        let out = dir.appendingPathComponent("r.json")
        _ = try succeed(["eval", "vqa", "--model", model.path, "--questions", dir.appendingPathComponent("q.json").path,
                         "--annotations", dir.appendingPathComponent("a.json").path, "--images", dir.path, "--image-pattern", "%d.png",
                         "--shots", "2", "--max-tokens", "3", "--out", out.path])
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: out)) as? [String: Any])
        let predictions = try XCTUnwrap(json["predictions"] as? [[String: Any]])
        XCTAssertEqual(predictions.count, 4)
        var random = PythonRandom(seed: 1234)
        let session = try ModelSession(directory: model, dtype: .float32)
        for (i, p) in predictions.enumerated() {
            let demos = try XCTUnwrap(p["demonstrations"] as? [Int])
            XCTAssertEqual(demos, try fewShotIndices(count: 4, shots: 2, random: &random, isItem: { $0 == i }).map { 10 + $0 })
            XCTAssertFalse(demos.contains(10 + i))
            let prompt = demos.map { "<image>Question: \(texts[$0 - 10]) Answer: \(answers[$0 - 10])\n" }.joined() + "<image>Question: \(texts[i]) Answer:"
            let files = (demos.map { 1 + ($0 - 10) % 2 } + [1 + i % 2]).map { dir.appendingPathComponent("\($0).png") }
            var options = GenerationOptions()
            options.maxNewTokens = 3
            let ids = try session.model.generate(try session.input(text: prompt, imageFiles: files), options: options)
            let text = session.processor.output(ids, grounding: false).text
            let expected = String(text.split(separator: "\n", omittingEmptySubsequences: false).first ?? "").trimmingCharacters(in: .whitespaces)
            XCTAssertEqual(p["answer"] as? String, expected, "question \(10 + i)")
        }
    }
}
