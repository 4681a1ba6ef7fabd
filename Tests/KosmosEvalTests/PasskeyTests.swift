import XCTest
@testable import KosmosEval

/// The passkey prompts: as long as allowed and no longer, the key once at the asked depth, and
/// answers scored by their first number.
final class PasskeyTests: XCTestCase {
    /// Words as tokens: enough to check the lengths the builder picks.
    let words = { (text: String) in text.split(separator: " ").count }

    func testPromptsAreTheLongestThatFitWithTheKeyAtItsDepth() throws {
        for (tokens, depth) in [(400, 0.0), (400, 1.0), (1000, 0.5), (5000, 0.25)] {
            let prompt = try XCTUnwrap(PasskeyTask.prompt(key: 48213, depth: depth, tokens: tokens, count: words))
            XCTAssertEqual(prompt.tokens, words(prompt.text))
            XCTAssertLessThanOrEqual(prompt.tokens, tokens)
            // One more filler sentence would not fit.
            let fillers = prompt.text.components(separatedBy: PasskeyTask.filler).count - 1
            XCTAssertGreaterThan(words(PasskeyTask.prompt(key: 48213, fillers: fillers + 1, before: 0)), tokens)
            XCTAssertEqual(prompt.text.components(separatedBy: "The pass key is 48213.").count, 2, "the key is stated once")
            XCTAssertTrue(prompt.text.hasSuffix(PasskeyTask.question))
            let before = prompt.text.components(separatedBy: PasskeyTask.statement(48213))[0].components(separatedBy: PasskeyTask.filler).count - 1
            XCTAssertEqual(before, Int((depth * Double(fillers)).rounded()), "depth \(depth)")
        }
        XCTAssertNil(PasskeyTask.prompt(key: 48213, depth: 0, tokens: 10, count: words), "too short for even the question")
    }

    func testAnswersAreScoredByTheirFirstNumber() {
        XCTAssertTrue(PasskeyTask.isCorrect(" 48213.", key: 48213))
        XCTAssertTrue(PasskeyTask.isCorrect("48213 is the pass key", key: 48213))
        XCTAssertTrue(PasskeyTask.isCorrect(" the key: 48213", key: 48213))
        XCTAssertFalse(PasskeyTask.isCorrect(" 4821.", key: 48213))
        XCTAssertFalse(PasskeyTask.isCorrect(" 482130", key: 48213))
        XCTAssertFalse(PasskeyTask.isCorrect(" 12 48213", key: 48213))
        XCTAssertFalse(PasskeyTask.isCorrect("", key: 48213))
    }

    func testKeysDepthsAndTheReport() throws {
        let keys = PasskeyTask.keys(count: 50, seed: 3)
        XCTAssertEqual(keys, PasskeyTask.keys(count: 50, seed: 3))
        XCTAssertNotEqual(keys, PasskeyTask.keys(count: 50, seed: 4))
        XCTAssertTrue(keys.allSatisfy { (10_000...99_999).contains($0) })
        XCTAssertGreaterThan(Set(keys).count, 45)
        XCTAssertEqual(PasskeyTask.depths(5), [0, 0.25, 0.5, 0.75, 1])
        XCTAssertEqual(PasskeyTask.depths(1), [0.5])
        let report = PasskeyReport(model: "m", lengths: [1024, 4096], promptTokens: [1020, 4090], depths: [0, 1], trials: 2,
                                   accuracy: [[1, 0.5], [0, 0]], maxPositions: 65536)
        XCTAssertEqual(report.meanByLength, [0.75, 0])
        XCTAssertEqual(try JSONDecoder().decode(PasskeyReport.self, from: JSONEncoder().encode(report)), report)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: JSONEncoder().encode(report)) as? [String: Any])
        XCTAssertEqual(json["prompt_tokens"] as? [Int], [1020, 4090])
        XCTAssertTrue(report.table.contains("  1024    100%    50%   75.0%"), report.table)
    }
}
