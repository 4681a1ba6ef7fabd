import Foundation
import XCTest
@testable import KosmosTokenizers

/// Fixtures come from scripts/reference/tokenizers_reference.py (Python sentencepiece, tokenizers
/// and transformers); every expected value below is read from them.
enum Fixtures {
    static let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/tokenizers")

    struct ModelCase {
        let name: String
        let file: String
        let ids: [[Int]]
        let decoded: [String]
        let idsWithSpecial: [[Int]]?
        let vocabSize: Int
    }

    struct Parity {
        let strings: [String]
        let models: [ModelCase]
    }

    static func unbase64(_ s: String) throws -> String {
        guard let d = Data(base64Encoded: s) else { throw TokenizerError.invalidArgument("bad base64 in parity.json") }
        return String(decoding: d, as: UTF8.self)
    }

    static func load() throws -> Parity {
        let data = try Data(contentsOf: dir.appendingPathComponent("parity.json"))
        guard let root = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let b64 = root["strings_b64"] as? [String], let models = root["models"] as? [String: Any] else {
            throw TokenizerError.invalidArgument("parity.json has an unexpected layout")
        }
        // Base64 because Foundation's JSON reader on Linux drops U+FEFF inside strings.
        let strings = try b64.map(unbase64)
        var cases: [ModelCase] = []
        for (name, v) in models.sorted(by: { $0.key < $1.key }) {
            guard let m = v as? [String: Any], let file = m["file"] as? String, let ids = m["ids"] as? [[Int]],
                  let decodedB64 = m["decoded_b64"] as? [Any], let vs = m["vocab_size"] as? Int else {
                throw TokenizerError.invalidArgument("parity.json model \(name) has an unexpected layout")
            }
            cases.append(ModelCase(name: name, file: file, ids: ids, decoded: try zip(decodedB64, strings).map { d, s in
                // null in the fixture means "decodes back to the input string".
                if let d = d as? String { return try unbase64(d) }
                return s
            },
                                   idsWithSpecial: m["ids_with_special"] as? [[Int]], vocabSize: vs))
        }
        return Parity(strings: strings, models: cases)
    }
}

final class ParityTests: XCTestCase {
    private func check(prefix: String) throws {
        let parity = try Fixtures.load()
        let models = parity.models.filter { $0.name.hasPrefix(prefix) || (prefix == "sp" && !$0.name.hasPrefix("hf_")) }
        XCTAssertGreaterThanOrEqual(models.count, 3)
        for m in models {
            let tok = try TokenizerLoader.load(Fixtures.dir.appendingPathComponent(m.file))
            XCTAssertEqual(tok.vocabularySize, m.vocabSize, m.name)
            var encodeFailures = 0, decodeFailures = 0
            for (i, s) in parity.strings.enumerated() {
                let got = tok.encode(s)
                if got != m.ids[i] {
                    encodeFailures += 1
                    if encodeFailures <= 5 {
                        XCTFail("\(m.name) encode #\(i) \(s.debugDescription): got \(got), expected \(m.ids[i])")
                    }
                }
                let text = tok.decode(m.ids[i])
                if text != m.decoded[i] {
                    decodeFailures += 1
                    if decodeFailures <= 5 {
                        XCTFail("\(m.name) decode #\(i) \(m.ids[i]): got \(text.debugDescription), expected \(m.decoded[i].debugDescription)")
                    }
                }
            }
            XCTAssertEqual(encodeFailures, 0, "\(m.name): \(encodeFailures) of \(parity.strings.count) encodings differ")
            XCTAssertEqual(decodeFailures, 0, "\(m.name): \(decodeFailures) of \(parity.strings.count) decodings differ")
        }
    }

    func testSentencePieceModelsMatchPythonSentencePiece() throws { try check(prefix: "sp") }
    func testTokenizerJSONMatchesPythonTokenizers() throws { try check(prefix: "hf_") }
}
