import Foundation
import XCTest
import KosmosEval
import KosmosModels
import KosmosEvalRuns

/// `kosmos eval raven`: every candidate's log P("Yes") equals the library's on the paper's prompt
/// built here from the documented text, and the prediction is their first maximum.
extension CLITests {
    func testEvalRavenRanksCandidatesByTheProbabilityOfYes() throws {
        let dir = Self.root.appendingPathComponent("raven")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("img"), withIntermediateDirectories: true)
        let sources = ["images/inputs/rgb8_224x224.png", "images/inputs/palette_63x41.png"]
        for i in 0..<6 {
            let target = dir.appendingPathComponent("img/\(i).png")
            try? FileManager.default.removeItem(at: target)
            try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent(sources[i % 2]), to: target)
        }
        let lines = [#"{"context": ["img/0.png", "img/1.png", "img/2.png"], "candidates": ["img/3.png", "img/4.png", "img/5.png"], "answer": 1}"#,
                     #"{"context": ["img/1.png", "img/0.png", "img/3.png", "img/2.png"], "candidates": ["img/4.png", "img/5.png"], "answer": 0}"#]
        let manifest = dir.appendingPathComponent("iq.jsonl")
        try (lines.joined(separator: "\n") + "\n").write(to: manifest, atomically: true, encoding: .utf8)
        let model = Self.harness.appendingPathComponent("model")
        let out = dir.appendingPathComponent("r.json")
        let run = try succeed(["eval", "raven", "--model", model.path, "--data", manifest.path, "--out", out.path])
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: out)) as? [String: Any])
        let perItem = try XCTUnwrap(json["per_item"] as? [[String: Any]])
        XCTAssertEqual(perItem.count, 2)
        let session = try ModelSession(directory: model, dtype: .float32)
        let yes = Array(session.tokenizer.encode("Is it correct? Yes").dropFirst(session.tokenizer.encode("Is it correct?").count))
        XCTAssertFalse(yes.isEmpty)
        let prompts = ["Here are three images:<image><image><image>The following image is:<image>Is it correct?",
                       "Here are four images:<image><image><image><image>The following image is:<image>Is it correct?"]
        let images = [[0, 1, 2], [1, 0, 3, 2]], candidates = [[3, 4, 5], [4, 5]], answers = [1, 0]
        var right = 0
        for (i, item) in perItem.enumerated() {
            let scores = try XCTUnwrap(item["yes_log_probabilities"] as? [Double])
            let expected = try candidates[i].map { c in
                try session.model.logLikelihoods(of: [yes], after: try session.input(text: prompts[i], imageFiles: (images[i] + [c]).map { dir.appendingPathComponent("img/\($0).png") }))[0]
            }
            // Within a few ulps: Foundation's JSON reader on Linux misreads some decimals by one or two.
            XCTAssertEqual(scores.count, expected.count)
            for (a, b) in zip(scores, expected) { XCTAssertEqual(a, b, accuracy: 1e-12 * abs(b), "item \(i)") }
            let best = expected.indices.max { expected[$0] < expected[$1] || (expected[$0] == expected[$1] && $0 > $1) }!
            XCTAssertEqual(item["prediction"] as? Int, best)
            if best == answers[i] { right += 1 }
        }
        XCTAssertEqual(json["accuracy"] as? Double, Double(right) / 2)
        XCTAssertTrue(run.stdout.contains(String(format: "items: 2  accuracy: %.4f", Double(right) / 2)), run.stdout)
        // A bad manifest names the line and the field.
        try #"{"context": [], "candidates": ["a", "b"], "answer": 0}"#.write(to: manifest, atomically: true, encoding: .utf8)
        let empty = try kosmos(["eval", "raven", "--model", model.path, "--data", manifest.path])
        XCTAssertNotEqual(empty.status, 0)
        XCTAssertTrue(empty.stderr.contains("iq.jsonl: at line 1.context: no context images"), empty.stderr)
        try #"{"context": ["a"], "candidates": ["a", "b"], "answer": 2}"#.write(to: manifest, atomically: true, encoding: .utf8)
        let answer = try kosmos(["eval", "raven", "--model", model.path, "--data", manifest.path])
        XCTAssertTrue(answer.stderr.contains("iq.jsonl: at line 1.answer: expected an index 0..<2"), answer.stderr)
    }
}

/// The Raven scoring against the reference written from the paper's description
/// (scripts/reference/raven_reference.py: the PyTorch Kosmos-1 of the same weights, transformers'
/// CLIP preprocessing, the paper's prompt): every candidate's log P(Yes) within 1e-4 relative, the
/// predictions and the accuracy exactly.
extension CLITests {
    func testRavenScoresEqualTheReference() throws {
        let dir = Self.fixtures.appendingPathComponent("eval/raven")
        let expected = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("expected.json"))) as? [String: Any])
        let session = try ModelSession(directory: Self.harness.appendingPathComponent("model"), dtype: .float32)
        XCTAssertEqual(ravenAnswerTokens(session, answer: "Yes"), expected["yes_tokens"] as? [Int])
        let items = try RavenItem.load(dir.appendingPathComponent("iq.jsonl"))
        XCTAssertEqual(items.map(\.context.count), [3, 4, 8, 2])
        let result = try scoreRaven(session: session, items: items)
        let theirs = try XCTUnwrap(expected["items"] as? [[String: Any]])
        XCTAssertEqual(result.items.count, theirs.count)
        var worst = 0.0
        for (n, (mine, ref)) in zip(result.items, theirs).enumerated() {
            let scores = try XCTUnwrap(ref["yes_log_probabilities"] as? [Double])
            XCTAssertEqual(mine.yesLogProbabilities.count, scores.count)
            for (c, (a, b)) in zip(mine.yesLogProbabilities, scores).enumerated() {
                worst = max(worst, abs(a - b) / abs(b))
                XCTAssertEqual(a, b, accuracy: 1e-4 * abs(b), "item \(n) candidate \(c)")
            }
            XCTAssertEqual(mine.prediction, ref["prediction"] as? Int)
            XCTAssertEqual(mine.answer, ref["answer"] as? Int)
        }
        XCTAssertEqual(result.accuracy, expected["accuracy"] as? Double)
        print("Raven log P(Yes): max relative difference \(worst)")
    }
}
