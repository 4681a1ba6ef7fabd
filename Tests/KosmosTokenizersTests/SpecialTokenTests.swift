import Foundation
import XCTest
@testable import KosmosTokenizers

final class SpecialTokenTests: XCTestCase {
    private func layered() throws -> ([String], [String: [String: Any]]) {
        let data = try Data(contentsOf: Fixtures.dir.appendingPathComponent("parity.json"))
        guard let root = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let b64 = root["strings_b64"] as? [String], let layered = root["layered"] as? [String: [String: Any]] else {
            throw TokenizerError.invalidArgument("parity.json has no layered cases")
        }
        return (try b64.map(Fixtures.unbase64), layered)
    }

    private func build(_ c: [String: Any]) throws -> SpecialTokensTokenizer {
        guard let file = c["file"] as? String, let layout = c["layout"] as? String else {
            throw TokenizerError.invalidArgument("layered case without file/layout")
        }
        let sp = try SentencePieceTokenizer(contentsOf: Fixtures.dir.appendingPathComponent(file))
        return layout == "kosmos2" ? try .kosmos2(base: sp) : try .kosmosX(base: sp)
    }

    /// Ids from transformers' slow-tokenizer path (its Trie split + sentencepiece), see
    /// tokenizers_reference.py `layered_cases`.
    func testLayeredTokenizersMatchTransformersSlowPath() throws {
        let (strings, cases) = try layered()
        XCTAssertEqual(Set(cases.keys), ["kosmosx_sp", "kosmos2_sp"])
        for (name, c) in cases {
            let tok = try build(c)
            XCTAssertEqual(tok.vocabularySize, c["vocab_size"] as? Int, name)
            guard let expected = c["ids"] as? [[Int]] else { return XCTFail("\(name) has no ids") }
            var failures = 0
            for (i, s) in strings.enumerated() where tok.encode(s) != expected[i] {
                failures += 1
                if failures <= 5 { XCTFail("\(name) #\(i) \(s.debugDescription): got \(tok.encode(s)), expected \(expected[i])") }
            }
            XCTAssertEqual(failures, 0, name)
        }
    }

    /// The SentencePiece-based Kosmos-2 layout gives every id the same token as the tokenizer.json
    /// built by transformers' XLMRobertaTokenizer + Kosmos2Processor from the same model.
    func testKosmos2LayoutMatchesKosmos2Processor() throws {
        let sp = try SentencePieceTokenizer(contentsOf: Fixtures.dir.appendingPathComponent("bpe_nmt_nfkc.model"))
        let k2 = try SpecialTokensTokenizer.kosmos2(base: sp)
        let hf = try HFTokenizer(contentsOf: Fixtures.dir.appendingPathComponent("hf_kosmos2_bpe.tokenizer.json"))
        XCTAssertEqual(k2.vocabularySize, hf.vocabularySize)
        for id in 0..<hf.vocabularySize {
            XCTAssertEqual(k2.token(of: id), hf.token(of: id), "id \(id)")
        }
        for t in Kosmos2Tokens.all { XCTAssertEqual(k2.id(of: t), hf.id(of: t), t) }
        XCTAssertEqual(k2.id(of: "<patch_index_1023>"), hf.vocabularySize - 1)
        XCTAssertEqual(k2.specialIds, SpecialTokenIds(bos: 0, eos: 2, pad: 1, unk: 3))
    }

    func testMultimodalIdsAreConfigurable() throws {
        let sp = try SentencePieceTokenizer(contentsOf: Fixtures.dir.appendingPathComponent("uni_nmt_nfkc.model"))
        let n = sp.vocabularySize
        let def = try SpecialTokensTokenizer.kosmosX(base: sp)
        XCTAssertEqual(def.vocabularySize, n + 2)
        XCTAssertEqual(def.id(of: "<image>"), n)
        XCTAssertEqual(def.id(of: "</image>"), n + 1)
        XCTAssertNil(def.id(of: "<audio>"))
        let custom = try SpecialTokensTokenizer.kosmosX(
            base: sp, tokens: MultimodalTokens(image: n + 10, imageEnd: n + 11, audio: n + 12, audioEnd: n + 13))
        XCTAssertEqual(custom.vocabularySize, n + 14)
        let ids = custom.encode("<audio>x</audio><image></image>")
        XCTAssertEqual(ids.first, n + 12)
        XCTAssertEqual(Array(ids.suffix(3)), [n + 13, n + 10, n + 11])
        XCTAssertEqual(custom.decode(ids, skipSpecialTokens: true), custom.decode(sp.encode("x")))
        // An id that collides with a SentencePiece piece is refused.
        XCTAssertThrowsError(try SpecialTokensTokenizer.kosmosX(base: sp, tokens: MultimodalTokens(image: 5, imageEnd: n)))
        // BOS/EOS come from the model's trainer spec.
        XCTAssertEqual(sp.specialIds, SpecialTokenIds(bos: 1, eos: 2, pad: nil, unk: 0))
        XCTAssertEqual(sp.encode("x", options: EncodeOptions(addBOS: true, addEOS: true)), [1] + sp.encode("x") + [2])
    }

    func testTokenizerJSONPostProcessorMatchesPython() throws {
        let parity = try Fixtures.load()
        for m in parity.models where m.name.hasPrefix("hf_") {
            guard let withSpecial = m.idsWithSpecial else { continue }
            let tok = try HFTokenizer(contentsOf: Fixtures.dir.appendingPathComponent(m.file))
            for (i, exp) in withSpecial.enumerated() {
                XCTAssertEqual(tok.encode(parity.strings[i], addSpecialTokens: true), exp, "\(m.name) #\(i)")
            }
        }
    }
}
