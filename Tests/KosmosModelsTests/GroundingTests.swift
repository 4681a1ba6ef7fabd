import Foundation
import XCTest
@testable import KosmosModels

/// Grounding post-processing against transformers' clean_text_and_extract_entities_with_bboxes on
/// strings written for the test (scripts/reference/grounding_reference.py): nested, malformed,
/// multi-object, no-phrase and no-object cases, unicode and spaces.
final class GroundingTests: XCTestCase {
    struct Expected: Decodable {
        struct Case: Decodable {
            let input: String
            let text: String
            let entities: [GroundedEntity]
        }
        let cases: [Case]
    }

    func testMatchesTransformers() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/grounding_expected.json")
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: url))
        XCTAssertGreaterThanOrEqual(expected.cases.count, 10)
        for c in expected.cases {
            let (text, entities) = Grounding.cleanTextAndExtractEntities(c.input)
            XCTAssertEqual(text, c.text, c.input)
            XCTAssertEqual(entities, c.entities, c.input)
        }
    }

    /// post_process_generation keeps only the text after the last `</image>`.
    func testPostProcessTakesTheTextAfterTheImage() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/grounding_expected.json")
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: url))
        for c in expected.cases {
            let (text, entities) = Grounding.postProcess("<image><phrase> not this</phrase></image>" + c.input)
            XCTAssertEqual(text, c.text, c.input)
            XCTAssertEqual(entities, c.entities, c.input)
        }
    }
}
