import Foundation
import XCTest
@testable import KosmosEval

/// Malformed inputs throw typed errors that say what and where.
final class EvalInputErrorTests: XCTestCase {
    let anns = CaptionEvaluation.Annotations(imageOrder: [1, 2], captions: [1: ["a dog"], 2: ["a cat"]])

    func parseCaptions(_ text: String) throws -> [Int: String] {
        let r = JSONReader(path: "pred.json")
        return try CaptionEvaluation.parsePredictions(r.parse(Data(text.utf8)), reader: r, annotations: anns)
    }

    func testInvalidJSON() {
        XCTAssertThrowsError(try parseCaptions("[{")) { e in
            guard case EvalError.invalidJSON(let p, _) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(p, "pred.json")
        }
    }

    func testWrongShapes() {
        XCTAssertThrowsError(try parseCaptions("{}")) { e in
            XCTAssertEqual(e as? EvalError, .malformed(path: "pred.json", location: "$", reason: "expected an array"))
        }
        XCTAssertThrowsError(try parseCaptions("[{\"image_id\": 1}]")) { e in
            XCTAssertEqual(e as? EvalError, .malformed(path: "pred.json", location: "$[0]", reason: "missing key \"caption\""))
        }
        XCTAssertThrowsError(try parseCaptions("[{\"image_id\": \"1\", \"caption\": \"x\"}]")) { e in
            XCTAssertEqual(e as? EvalError, .malformed(path: "pred.json", location: "$[0].image_id", reason: "expected an integer id"))
        }
        XCTAssertThrowsError(try parseCaptions("[{\"image_id\": 1, \"caption\": 5}]")) { e in
            XCTAssertEqual(e as? EvalError, .malformed(path: "pred.json", location: "$[0].caption", reason: "expected a string"))
        }
        XCTAssertThrowsError(try parseCaptions("[]")) { e in
            XCTAssertEqual(e as? EvalError, .emptyPredictions(path: "pred.json"))
        }
    }

    func testUnknownAndDuplicateImages() {
        XCTAssertThrowsError(try parseCaptions("[{\"image_id\": 7, \"caption\": \"x\"}]")) { e in
            XCTAssertEqual(e as? EvalError, .unknownID(path: "pred.json", location: "$[0]", id: 7))
        }
        XCTAssertThrowsError(try parseCaptions("[{\"image_id\": 1, \"caption\": \"x\"}, {\"image_id\": 1, \"caption\": \"y\"}]")) { e in
            XCTAssertEqual(e as? EvalError, .duplicatePrediction(path: "pred.json", location: "$[1]", id: 1))
        }
    }

    func testImageWithoutReferences() {
        let a = CaptionEvaluation.Annotations(imageOrder: [1, 3], captions: [1: ["a dog"]])
        XCTAssertThrowsError(try CaptionEvaluation.evaluate(annotations: a, predictions: [3: "a dog"])) { e in
            XCTAssertEqual(e as? EvalError, .noReferences(imageID: 3))
        }
    }

    func testMissingFile() {
        XCTAssertThrowsError(try CaptionEvaluation.loadAnnotations(URL(fileURLWithPath: "/nonexistent/coco.json"))) { e in
            guard case EvalError.unreadable(let p, _) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(p, "/nonexistent/coco.json")
        }
    }

    func testVQAErrors() throws {
        let r = JSONReader(path: "a.json")
        XCTAssertThrowsError(try VQAEvaluation.parseAnnotations(r.parse(Data("{\"annotations\": [{\"question_id\": 1}]}".utf8)), reader: r)) { e in
            XCTAssertEqual(e as? EvalError, .malformed(path: "a.json", location: "$.annotations[0]", reason: "missing key \"answers\""))
        }
        let ok = "{\"annotations\": [{\"question_id\": 1, \"question_type\": \"what\", \"answer_type\": \"other\", \"answers\": []}]}"
        let anns = try VQAEvaluation.parseAnnotations(r.parse(Data(ok.utf8)), reader: r)
        let pr = JSONReader(path: "p.json")
        XCTAssertThrowsError(try VQAEvaluation.parsePredictions(pr.parse(Data("[{\"question_id\": 2, \"answer\": \"x\"}]".utf8)), reader: pr, annotations: anns, questions: nil)) { e in
            XCTAssertEqual(e as? EvalError, .unknownID(path: "p.json", location: "$[0]", id: 2))
        }
        XCTAssertThrowsError(try VQAEvaluation.evaluate(annotations: anns, predictions: [(1, "x")])) { e in
            XCTAssertEqual(e as? EvalError, .noAnswers(questionID: 1))
        }
    }
}
