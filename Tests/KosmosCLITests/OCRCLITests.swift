import Foundation
import XCTest
import KosmosModels
import KosmosTensor
import KosmosVision

/// `kosmos ocr` on the tiny Kosmos-2.5 fixture (scripts/reference/kosmos2_5_reference.py): the
/// greedy text equals transformers' generation, in every output form.
extension CLITests {
    static var kosmos25: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/kosmos2_5")
    }

    /// transformers' decode(skip_special_tokens=True) of row `row` (prompt + 24 new tokens), without the prompt.
    func kosmos25Expected(_ row: Int, prompt: String) throws -> String {
        let index = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: Self.kosmos25.appendingPathComponent("model.json"))) as? [String: Any])
        let decoded = try XCTUnwrap((index["decoded"] as? [String: Any])?["skip_special_tokens"] as? [String])
        XCTAssertTrue(decoded[row].hasPrefix(prompt))
        return String(decoded[row].dropFirst(prompt.count))
    }

    func testOCRPrintsTransformersGenerationAsJSONMarkdownAndLines() throws {
        let model = Self.kosmos25.appendingPathComponent("tiny").path
        let tall = Self.kosmos25.appendingPathComponent("images/tall_rgb.png").path
        let big = Self.kosmos25.appendingPathComponent("images/big_rgb.png").path
        let json = try succeed(["ocr", "--model", model, tall, big, "--json", "--max-tokens", "24"])
        let objects = json.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(objects.count, 2, json.stdout)
        for (k, (line, row)) in zip(objects, [0, 2]).enumerated() {
            let o = try jsonObject(line)
            XCTAssertEqual(o["text"] as? String, try kosmos25Expected(row, prompt: "<ocr>"), "image \(k)")
            XCTAssertEqual(o["task"] as? String, "<ocr>")
            XCTAssertEqual(o["width"] as? Int, k == 0 ? 23 : 260)
            // The random model writes no well-formed box, so no line survives the post-processing.
            XCTAssertEqual((o["lines"] as? [Any])?.count, 0)
        }
        let md = try succeed(["ocr", "--model", model, big, "--markdown", "--max-tokens", "24"])
        XCTAssertEqual(md.stdout, "# \(big)\n" + (try kosmos25Expected(3, prompt: "<md>")) + "\n")
        let plain = try succeed(["ocr", "--model", model, tall, "--max-tokens", "4"])
        XCTAssertEqual(plain.stdout, "# \(tall)\n")
    }

    func testOCRRefusesOtherFamiliesAndBadFlags() throws {
        let tall = Self.kosmos25.appendingPathComponent("images/tall_rgb.png").path
        let other = try kosmos(["ocr", "--model", Self.kosmos2.path, tall])
        XCTAssertNotEqual(other.status, 0)
        XCTAssertTrue(other.stderr.contains("Kosmos-2.5"), other.stderr)
        let flags = try kosmos(["ocr", "--model", Self.kosmos25.appendingPathComponent("tiny").path, tall, "--markdown", "--draw", "/tmp/x.png"])
        XCTAssertNotEqual(flags.status, 0)
        XCTAssertTrue(flags.stderr.contains("--draw"), flags.stderr)
    }
}
