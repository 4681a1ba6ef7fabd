import Foundation
import XCTest
@testable import KosmosEval

/// Expected values come from the VizWiz challenge's own evaluation class (accuracy, and sklearn's
/// average precision and F1 for answerability), run by scripts/reference/vizwiz_reference.py.
final class VizWizParityTests: XCTestCase {
    func testNormalizationMatchesTheVizWizEvaluation() throws {
        let expected = try XCTUnwrap(loadEvalJSON("vizwiz_expected.json") as? [String: Any])
        let cases = try XCTUnwrap(expected["normalization"] as? [[String: String]])
        XCTAssertGreaterThan(cases.count, 20)
        for c in cases {
            XCTAssertEqual(VizWizEvaluation.normalize(c["text"] ?? ""), c["normalized"], "normalisation of \(c["text"]!.debugDescription)")
        }
    }

    /// Both results files: answers only (answerability derived from "unanswerable"), and answers
    /// with answerability scores (ties included) for the average precision's ranking.
    func testAccuracyAndAnswerabilityMatchTheVizWizEvaluation() throws {
        let expected = try XCTUnwrap(loadEvalJSON("vizwiz_expected.json") as? [String: Any])
        let annotations = try VizWizEvaluation.loadAnnotations(evalFixtureURL("vizwiz_annotations.json"))
        XCTAssertEqual(annotations.count, 40)
        for (file, key) in [("vizwiz_predictions.json", "derived"), ("vizwiz_predictions_scored.json", "scored")] {
            let run = try XCTUnwrap(expected[key] as? [String: Any])
            let predictions = try VizWizEvaluation.loadPredictions(evalFixtureURL(file), annotations: annotations)
            let r = try VizWizEvaluation.evaluate(annotations: annotations, predictions: predictions)
            let accuracy = try XCTUnwrap(run["accuracy"] as? [String: Any])
            XCTAssertEqual(VQAEvaluation.reported(r.overall), accuracy["overall"] as? Double, key)
            let types = try XCTUnwrap(accuracy["perAnswerType"] as? [String: Double])
            XCTAssertEqual(r.perAnswerType.mapValues(VQAEvaluation.reported), types, key)
            let perImage = try XCTUnwrap(run["evalQA"] as? [String: Double])
            XCTAssertEqual(r.perImage.count, perImage.count)
            for s in r.perImage { XCTAssertEqual(VQAEvaluation.reported(100 * s.accuracy), perImage[s.image], "\(key) \(s.image)") }
            XCTAssertEqual(r.perImage.map(\.answerable), run["answerable"] as? [Double], key)
            let unanswerability = try XCTUnwrap(run["unanswerability"] as? [String: Double])
            XCTAssertEqual(r.averagePrecision.map(VQAEvaluation.reported), unanswerability["average_precision"], key)
            XCTAssertEqual(r.f1.map(VQAEvaluation.reported), unanswerability["f1_score"], key)
        }
    }

    func testBadVizWizFilesAreNamed() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vizwiz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func file(_ text: String) throws -> URL {
            let url = dir.appendingPathComponent(UUID().uuidString + ".json")
            try text.write(to: url, atomically: true, encoding: .utf8)
            return url
        }
        func message(_ body: () throws -> Any) -> String {
            do { _ = try body(); return "no error" } catch { return "\(error)" }
        }
        let twice = try file(#"[{"image": "a.jpg", "question": "q"}, {"image": "a.jpg", "question": "r"}]"#)
        XCTAssertEqual(message { try VizWizEvaluation.loadAnnotations(twice) }, "\(twice.path): at [1].image: a.jpg appears twice (VizWiz has one question per image)")
        let label = try file(#"[{"image": "a.jpg", "question": "q", "answerable": 2}]"#)
        XCTAssertEqual(message { try VizWizEvaluation.loadAnnotations(label) }, "\(label.path): at [0].answerable: expected 0 or 1")
        let annotations = try VizWizEvaluation.loadAnnotations(try file(#"[{"image": "a.jpg", "question": "q"}]"#))
        let unknown = try file(#"[{"image": "b.jpg", "answer": "x"}]"#)
        XCTAssertEqual(message { try VizWizEvaluation.loadPredictions(unknown, annotations: annotations) }, "\(unknown.path): at [0].image: b.jpg is not in the annotations")
        let score = try file(#"[{"image": "a.jpg", "answer": "x", "answerable": "yes"}]"#)
        XCTAssertEqual(message { try VizWizEvaluation.loadPredictions(score, annotations: annotations) }, "\(score.path): at [0].answerable: expected a number")
        // The test split has no answers: generating is fine, scoring is not.
        XCTAssertEqual(message { try VizWizEvaluation.evaluate(annotations: annotations, predictions: [.init(image: "a.jpg", answer: "x")]) },
                       "annotations: at a.jpg: no answers to score against (the test split has none)")
    }
}
