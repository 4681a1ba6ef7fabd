import Foundation
import KosmosTensor
import XCTest
@testable import KosmosTokenizers

/// Broken files must throw a TokenizerError (never trap).
final class MalformedInputTests: XCTestCase {
    private func bytes(_ name: String) throws -> Data { try Data(contentsOf: Fixtures.dir.appendingPathComponent(name)) }

    private func expectSPError(_ data: Data, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try SentencePieceTokenizer(data: data), what, file: file, line: line) { e in
            XCTAssertTrue(e is TokenizerError, "\(what): \(e)", file: file, line: line)
        }
    }

    func testTruncatedModelsThrow() throws {
        let data = try bytes("uni_nmt_nfkc.model")
        // Cut at many points, including inside varints, strings and the charsmap.
        for cut in [0, 1, 2, 3, 5, 17, 100, 1000, data.count / 3, data.count / 2, data.count - 1] {
            let d = data.prefix(cut)
            do {
                _ = try SentencePieceTokenizer(data: d)
                // A cut exactly between two pieces is a valid (smaller) protobuf; that's fine only
                // if the loader still found its UNKNOWN piece.
            } catch let e as TokenizerError {
                XCTAssertFalse(e.description.isEmpty)
            }
        }
        expectSPError(data.prefix(data.count / 2), "half a model (trainer spec and normalizer lost mid-piece)")
    }

    func testWrongWireTypesAndBadValuesThrow() throws {
        // Field 1 (pieces) declared as varint.
        expectSPError(Data([0x08, 0x01]), "pieces as varint")
        // Length running past the end.
        expectSPError(Data([0x0A, 0x7F, 0x01]), "length past end")
        // Piece with an unknown type 9.
        expectSPError(Data([0x0A, 0x07, 0x0A, 0x01, 0x61, 0x15, 0, 0, 0, 0] + [0x18, 0x09].prefix(0)) + Data([0x0A, 0x05, 0x0A, 0x01, 0x61, 0x18, 0x09]), "bad piece type")
        // A model with pieces but no UNKNOWN piece.
        expectSPError(Data([0x0A, 0x05, 0x0A, 0x01, 0x61, 0x18, 0x01]), "no unk")
        // Piece string that is not UTF-8.
        expectSPError(Data([0x0A, 0x05, 0x0A, 0x01, 0xFF, 0x18, 0x02]), "non-UTF-8 piece")
        // Field number 0.
        expectSPError(Data([0x00, 0x00]), "field 0")
        // Random bytes (seeded, so a failure repeats): each blob is refused with a TokenizerError,
        // or, if it happens to parse, gives a tokenizer with pieces that encodes and decodes.
        let rng = RandomGenerator(seed: 0x5eed)
        var refused = 0
        for i in 0..<200 {
            let d = Data((0...rng.nextInt(below: 64)).map { _ in UInt8(rng.nextInt(below: 256)) })
            do {
                let tokenizer = try SentencePieceTokenizer(data: d)
                XCTAssertGreaterThan(tokenizer.vocabularySize, 0, "blob \(i)")
                let ids = tokenizer.encode("a b")
                XCTAssertTrue(ids.allSatisfy { $0 >= 0 && $0 < tokenizer.vocabularySize }, "blob \(i): \(ids)")
                _ = tokenizer.decode(ids)
            } catch is TokenizerError {
                refused += 1
            } catch {
                XCTFail("blob \(i): \(error) is not a TokenizerError")
            }
        }
        XCTAssertGreaterThan(refused, 150, "random bytes are almost never a model")
    }

    func testCorruptCharsmapThrowsOrStaysInBounds() throws {
        // Header claiming a trie larger than the blob.
        XCTAssertThrowsError(try PrecompiledCharsmap([0xFF, 0xFF, 0, 0, 1, 2, 3, 4]))
        XCTAssertThrowsError(try PrecompiledCharsmap([1, 0]))
        // A trie of garbage units must not read out of bounds during normalisation.
        let junk: [UInt8] = [8, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0x41, 0x01, 0xFF, 0x7F, 0x61, 0]
        let cm = try PrecompiledCharsmap(junk)
        _ = HFNormalizer.precompiled(cm, "Aa東京 😀")
    }

    func testMalformedTokenizerJSONThrows() throws {
        let good = try bytes("hf_llama_bpe.tokenizer.json")
        XCTAssertThrowsError(try HFTokenizer(data: good.prefix(good.count / 2))) { XCTAssertTrue($0 is TokenizerError) }
        guard var root = try JSONSerialization.jsonObject(with: good) as? [String: Any],
              var model = root["model"] as? [String: Any], var vocab = model["vocab"] as? [String: Any] else {
            return XCTFail("fixture layout")
        }
        func reject(_ mutate: (inout [String: Any]) -> Void, _ what: String) throws {
            var r = root
            mutate(&r)
            let d = try JSONSerialization.data(withJSONObject: r)
            XCTAssertThrowsError(try HFTokenizer(data: d), what) { e in
                XCTAssertTrue(e is TokenizerError, what)
                XCTAssertTrue("\(e)".contains("$"), "error should name the JSON path: \(e)")
            }
        }
        try reject({ $0["model"] = "BPE" }, "model as string")
        try reject({ r in var m = model; m["type"] = "WordLevel"; r["model"] = m }, "unsupported model")
        try reject({ r in var m = model; m["merges"] = [["nope", "missing"]]; r["model"] = m }, "merge of unknown tokens")
        vocab["<s>"] = 99999
        try reject({ r in var m = model; m["vocab"] = vocab; r["model"] = m }, "out-of-range vocab id")
        vocab["<s>"] = "one"
        try reject({ r in var m = model; m["vocab"] = vocab; r["model"] = m }, "vocab id as string")
        try reject({ $0["added_tokens"] = [["id": -4, "content": "<x>"]] }, "negative added id")
        try reject({ $0["added_tokens"] = [["id": 1, "content": 7]] }, "added content as number")
        try reject({ $0["normalizer"] = ["type": "BertNormalizer"] }, "unsupported normalizer")
        try reject({ $0["decoder"] = ["type": "Strip", "content": " ", "start": "x", "stop": 0] }, "Strip start as string")
        model["type"] = "Unigram"; model["vocab"] = [["a", -1.0]]; model["unk_id"] = 5
        root["model"] = model
        try reject({ _ in }, "unigram unk_id out of range")
    }

    func testLoaderPicksFormatAndReportsMissingFiles() throws {
        XCTAssertTrue(try TokenizerLoader.load(Fixtures.dir.appendingPathComponent("uni_nmt_nfkc.model")) is SentencePieceTokenizer)
        XCTAssertTrue(try TokenizerLoader.load(Fixtures.dir.appendingPathComponent("hf_t5_unigram.tokenizer.json")) is HFTokenizer)
        XCTAssertThrowsError(try TokenizerLoader.load(Fixtures.dir.appendingPathComponent("missing.model"))) { e in
            guard case TokenizerError.unreadable = e else { return XCTFail("\(e)") }
        }
        let sp = try TokenizerLoader.load(Fixtures.dir.appendingPathComponent("uni_nmt_nfkc.model"))
        XCTAssertThrowsError(try sp.decodeChecked([0, sp.vocabularySize]))
        XCTAssertEqual(sp.decode([-1, sp.vocabularySize + 5]), "")
    }
}

