import Foundation
import XCTest
@testable import KosmosTokenizers

/// Byte-level BPE tokenizer.json files (Kosmos-2.5's layout: a cl100k-style Split regex, ByteLevel,
/// BPE with ignore_merges, added tokens after the vocabulary) against the `tokenizers` library.
/// Every expected id and decoded string comes from scripts/reference/bytelevel_reference.py.
final class ByteLevelTests: XCTestCase {
    private struct Variant {
        let name: String
        let preTokenizer: Any?
        let ids: [[Int]]
        let decoded: [String?]
        let vocabSize: Int
    }

    private func fixtures() throws -> (base: [String: Any], strings: [String], variants: [Variant]) {
        let base = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: Fixtures.dir.appendingPathComponent(
            "bytelevel.tokenizer.json"))) as? [String: Any])
        let parity = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: Fixtures.dir.appendingPathComponent(
            "bytelevel_parity.json"))) as? [String: Any])
        let strings = try XCTUnwrap(parity["strings_b64"] as? [String]).map(Fixtures.unbase64)
        let models = try XCTUnwrap(parity["models"] as? [String: Any])
        let variants = try models.sorted { $0.key < $1.key }.map { name, value -> Variant in
            let m = try XCTUnwrap(value as? [String: Any], name)
            let decoded = try XCTUnwrap(m["decoded_b64"] as? [Any], name).map { try ($0 as? String).map(Fixtures.unbase64) }
            return Variant(name: name, preTokenizer: m["pre_tokenizer"].flatMap { $0 is NSNull ? nil : $0 },
                           ids: try XCTUnwrap(m["ids"] as? [[Int]], name), decoded: decoded,
                           vocabSize: try XCTUnwrap(m["vocab_size"] as? Int, name))
        }
        return (base, strings, variants)
    }

    func testEncodingAndDecodingEqualTheTokenizersLibrary() throws {
        let (base, strings, variants) = try fixtures()
        XCTAssertEqual(variants.count, 7)
        XCTAssertGreaterThanOrEqual(strings.count, 300)
        for variant in variants {
            var json = base
            if let pre = variant.preTokenizer { json["pre_tokenizer"] = pre }
            let tokenizer = try HFTokenizer(data: JSONSerialization.data(withJSONObject: json))
            XCTAssertEqual(tokenizer.vocabularySize, variant.vocabSize, variant.name)
            var encodeFailures = 0, decodeFailures = 0
            for (i, s) in strings.enumerated() {
                let got = tokenizer.encode(s)
                if got != variant.ids[i] {
                    encodeFailures += 1
                    if encodeFailures <= 3 { XCTFail("\(variant.name) encode #\(i) \(s.debugDescription): got \(got), expected \(variant.ids[i])") }
                }
                let text = tokenizer.decode(variant.ids[i]), expected = variant.decoded[i] ?? s
                if text != expected {
                    decodeFailures += 1
                    if decodeFailures <= 3 { XCTFail("\(variant.name) decode #\(i): got \(text.debugDescription), expected \(expected.debugDescription)") }
                }
            }
            XCTAssertEqual(encodeFailures, 0, "\(variant.name): \(encodeFailures) of \(strings.count) encodings differ")
            XCTAssertEqual(decodeFailures, 0, "\(variant.name): \(decodeFailures) of \(strings.count) decodings differ")
        }
    }

    func testTheAlphabetIsGPT2sAndRoundTripsEveryByte() {
        XCTAssertEqual(ByteLevelAlphabet.scalars[Int(UInt8(ascii: " "))], "Ġ")
        XCTAssertEqual(ByteLevelAlphabet.scalars[Int(UInt8(ascii: "\n"))], "Ċ")
        XCTAssertEqual(ByteLevelAlphabet.scalars[Int(UInt8(ascii: "A"))], "A")
        XCTAssertEqual(ByteLevelAlphabet.scalars[0], "\u{100}")
        XCTAssertEqual(ByteLevelAlphabet.scalars[173], "\u{143}")  // the soft hyphen, last of the 68 remapped bytes
        XCTAssertEqual(Set(ByteLevelAlphabet.scalars).count, 256)
        let text = "a\u{0}é😀\u{FFFD}"
        XCTAssertEqual(ByteLevelAlphabet.decode([ByteLevelAlphabet.encode(text)]), text)
        // A token cut inside a character decodes to U+FFFD, as from_utf8_lossy does.
        XCTAssertEqual(ByteLevelAlphabet.decode([String(ByteLevelAlphabet.encode("é").unicodeScalars.prefix(1))]), "\u{FFFD}")
    }

    func testUnknownSplitBehaviourAndBadPatternsNameThePath() throws {
        var json = try fixtures().base
        func error(_ pre: Any) -> String {
            json["pre_tokenizer"] = pre
            do {
                _ = try HFTokenizer(data: JSONSerialization.data(withJSONObject: json))
                return "no error"
            } catch { return "\(error)" }
        }
        XCTAssertTrue(error(["type": "Split", "pattern": ["String": " "], "behavior": "Sideways"]).contains("$.pre_tokenizer.behavior"))
        XCTAssertTrue(error(["type": "Split", "pattern": ["Regex": "(unclosed"], "behavior": "Isolated"]).contains("$.pre_tokenizer.pattern.Regex"))
        XCTAssertTrue(error(["type": "Split", "pattern": ["Glob": "*"], "behavior": "Isolated"]).contains("$.pre_tokenizer.pattern"))
    }
}
