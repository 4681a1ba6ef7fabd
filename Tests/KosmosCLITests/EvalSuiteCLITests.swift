import Foundation
import XCTest
import KosmosEval
import KosmosEvalRuns
import KosmosModels

/// `kosmos eval suite` with the multimodal entries beside a language task: each row equals the
/// library's run of the same entry (each of those is checked against its command in its own test).
extension CLITests {
    func testEvalSuiteRunsMultimodalEntries() throws {
        let dir = Self.root.appendingPathComponent("suite-mm")
        try? FileManager.default.removeItem(at: dir)
        let sources = ["images/inputs/rgb8_224x224.png", "images/inputs/palette_63x41.png"]
        for (i, sub) in ["classes/001.Red_car", "classes/002.Blue_bird", "img"].enumerated() {
            try FileManager.default.createDirectory(at: dir.appendingPathComponent(sub), withIntermediateDirectories: true)
            if i < 2 { try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent(sources[i]), to: dir.appendingPathComponent(sub + "/a.png")) }
        }
        for i in 0..<3 { try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent(sources[i % 2]), to: dir.appendingPathComponent("img/\(i).png")) }
        try #"{"context": ["img/0.png", "img/1.png"], "candidates": ["img/2.png", "img/0.png"], "answer": 0}"#.write(to: dir.appendingPathComponent("iq.jsonl"), atomically: true, encoding: .utf8)
        let vizwiz = (0..<2).map { i in ["image": "\(i).png", "question": "What is it?", "answer_type": "other", "answerable": 1,
                                         "answers": (0..<10).map { _ in ["answer": "car", "answer_confidence": "yes"] }] as [String: Any] }
        try JSONSerialization.data(withJSONObject: vizwiz).write(to: dir.appendingPathComponent("val.json"))
        let suite = dir.appendingPathComponent("suite.json")
        try #"""
        {"tasks": [{"task": "copa", "data": "\#(Self.harness.path)/copa_val.jsonl", "limit": 3},
                   {"task": "classify", "images": "classes", "batch_size": 1},
                   {"task": "raven", "data": "iq.jsonl"},
                   {"task": "vizwiz", "annotations": "val.json", "images": "img", "max_tokens": 2, "shots": 1}]}
        """#.write(to: suite, atomically: true, encoding: .utf8)
        let model = Self.harness.appendingPathComponent("model")
        let out = dir.appendingPathComponent("r.json")
        let run = try succeed(["eval", "suite", "--model", model.path, "--config", suite.path, "--out", out.path])
        let session = try ModelSession(directory: model, dtype: .float32)
        let scorer = ContinuationScorer(model: session.model, processor: session.processor, batchSize: 8)
        let entries = try SuiteEntry.load(suite)
        XCTAssertEqual(entries.map(\.task), ["copa", "classify", "raven", "vizwiz"])
        let rows = try entries.flatMap { try $0.run(session: session, scorer: scorer).rows }
        XCTAssertEqual(rows.map(\.metric), ["acc", "top1", "top5", "acc", "accuracy", "unanswerable_ap"])
        XCTAssertTrue(run.stdout.hasPrefix(markdownTable(rows)), run.stdout)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: out)) as? [String: Any])
        XCTAssertEqual((json["results"] as? [[String: Any]])?.map { $0["task"] as? String ?? "?" }, ["copa", "classify", "raven", "vizwiz"])
        // Entries are checked before the model loads: a key of another kind, a missing path.
        try #"{"tasks": [{"task": "raven", "data": "iq.jsonl", "shots": 2}]}"#.write(to: suite, atomically: true, encoding: .utf8)
        let bad = try kosmos(["eval", "suite", "--model", model.path, "--config", suite.path])
        XCTAssertTrue(bad.stderr.contains("at tasks[0]: unknown key \"shots\" for raven (task, data, answer, limit)"), bad.stderr)
        try #"{"tasks": [{"task": "imagenet", "images": "img"}]}"#.write(to: suite, atomically: true, encoding: .utf8)
        let unknown = try kosmos(["eval", "suite", "--model", model.path, "--config", suite.path])
        XCTAssertTrue(unknown.stderr.contains("at tasks[0]: unknown task \"imagenet\"; the known ones: hellaswag, piqa, boolq, cb, copa, storycloze_2016, winogrande, wsc273, relativesize, memorycolor, colorterms, captions, classify, raven, vizwiz, vqa"), unknown.stderr)
        try #"{"tasks": [{"task": "vizwiz", "images": "img"}]}"#.write(to: suite, atomically: true, encoding: .utf8)
        let missing = try kosmos(["eval", "suite", "--model", model.path, "--config", suite.path])
        XCTAssertTrue(missing.stderr.contains("at tasks[0]: needs \"annotations\" (a path)"), missing.stderr)
    }
}
