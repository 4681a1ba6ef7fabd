import Foundation
import XCTest
@testable import KosmosEval

/// Expected values come from the original GT-Vision-Lab/VQA vqaEval.py, run by
/// scripts/reference/eval_reference.py.
final class VQAParityTests: XCTestCase {
    func testNormalizationMatchesVqaEval() throws {
        let cases = try XCTUnwrap(loadEvalJSON("vqa_normalization_cases.json") as? [[String: String]])
        XCTAssertGreaterThan(cases.count, 50)
        for c in cases {
            let input = c["input"] ?? ""
            XCTAssertEqual(VQANormalizer.processPunctuation(input), c["punctuation"], "punctuation of \(input.debugDescription)")
            XCTAssertEqual(VQANormalizer.normalizePrediction(input), c["normalized"], "normalisation of \(input.debugDescription)")
        }
    }

    func testAccuracyMatchesVqaEval() throws {
        let exp = try XCTUnwrap(loadEvalJSON("vqa_expected.json") as? [String: Any])
        let qs = try VQAEvaluation.loadQuestions(evalFixtureURL("vqa_questions.json"))
        let anns = try VQAEvaluation.loadAnnotations(evalFixtureURL("vqa_annotations.json"))
        let preds = try VQAEvaluation.loadPredictions(evalFixtureURL("vqa_predictions.json"), annotations: anns, questions: qs)
        XCTAssertGreaterThanOrEqual(anns.count, 200)
        let r = try VQAEvaluation.evaluate(annotations: anns, predictions: preds)
        var maxDiff = 0.0
        func cmp(_ a: Double?, _ b: Double?, _ what: String) {
            guard let a, let b else { XCTFail("missing \(what)"); return }
            maxDiff = max(maxDiff, abs(a - b))
            XCTAssertLessThanOrEqual(abs(a - b), 1e-6, what)
        }
        cmp(r.overall, exp["overall"] as? Double, "overall")
        let pq = try XCTUnwrap(exp["perQuestionType"] as? [String: Double])
        let pa = try XCTUnwrap(exp["perAnswerType"] as? [String: Double])
        XCTAssertEqual(Set(pq.keys), Set(r.perQuestionType.keys))
        XCTAssertEqual(Set(pa.keys), Set(r.perAnswerType.keys))
        for (k, v) in pq { cmp(r.perQuestionType[k], v, "question type \(k)") }
        for (k, v) in pa { cmp(r.perAnswerType[k], v, "answer type \(k)") }
        let evalQA = try XCTUnwrap(exp["evalQA_last_leave_one_out"] as? [String: Double])
        for q in r.perQuestion { cmp(100 * q.lastLeaveOneOut, evalQA[String(q.questionID)], "question \(q.questionID)") }
        // The numbers the tool prints (rounded to 2 decimals).
        let rep = try XCTUnwrap(exp["reported"] as? [String: Any])
        XCTAssertEqual(VQAEvaluation.reported(r.overall), rep["overall"] as? Double)
        let repA = try XCTUnwrap(rep["perAnswerType"] as? [String: Double])
        for (k, v) in repA { XCTAssertEqual(VQAEvaluation.reported(r.perAnswerType[k] ?? .nan), v, k) }
        print("vqa parity: max |diff| = \(maxDiff)")
    }
}
