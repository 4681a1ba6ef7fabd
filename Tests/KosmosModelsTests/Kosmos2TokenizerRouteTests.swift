import Foundation
import XCTest
import KosmosTokenizers
@testable import KosmosModels

/// A Kosmos-2 directory's two tokenizer files give the same prompt ids, equal to Kosmos2Processor's
/// (scripts/reference/kosmos2_untied_reference.py: the fast tokenizer.json route and the slow
/// SentencePiece route agree in Python too), for prompts with <grounding>, <phrase>, <object>,
/// <patch_index_NNNN>, multi-object delimiters and the image tokens.
final class Kosmos2TokenizerRouteTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")
    static let sentencePiece = fixtures.appendingPathComponent("tokenizers/bpe_nmt_nfkc.model")
    static let tokenizerJSON = fixtures.appendingPathComponent("tokenizers/hf_kosmos2_bpe.tokenizer.json")

    struct Cases: Decodable {
        struct Case: Decodable {
            let prompt: String
            let ids: [Int]
            let imagePositions: [Int]
            enum CodingKeys: String, CodingKey { case prompt, ids, imagePositions = "image_positions" }
        }
        let cases: [Case]
    }

    /// A directory with the untied fixture's config and weights and only the given tokenizer files.
    private func directory(with files: [(URL, String)]) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kosmos2-tok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        for name in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent("kosmos2_untied/\(name)"),
                                             to: dir.appendingPathComponent(name))
        }
        for (source, name) in files { try FileManager.default.copyItem(at: source, to: dir.appendingPathComponent(name)) }
        return dir
    }

    func testBothRoutesGiveTheProcessorsIds() throws {
        let cases = try JSONDecoder().decode(Cases.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("kosmos2_prompts.json"))).cases
        XCTAssertEqual(cases.count, 5)
        let onlySentencePiece = try directory(with: [(Self.sentencePiece, "sentencepiece.bpe.model")])
        let onlyJSON = try directory(with: [(Self.tokenizerJSON, "tokenizer.json")])
        let both = try directory(with: [(Self.sentencePiece, "sentencepiece.bpe.model"), (Self.tokenizerJSON, "tokenizer.json")])
        XCTAssertEqual(TokenizerLoader.kosmos2TokenizerFile(in: onlySentencePiece)?.lastPathComponent, "sentencepiece.bpe.model")
        XCTAssertEqual(TokenizerLoader.kosmos2TokenizerFile(in: onlyJSON)?.lastPathComponent, "tokenizer.json")
        XCTAssertEqual(TokenizerLoader.kosmos2TokenizerFile(in: both)?.lastPathComponent, "tokenizer.json")
        let model = try Kosmos2Model.load(directory: onlySentencePiece)
        for dir in [onlySentencePiece, onlyJSON] {
            let file = try XCTUnwrap(TokenizerLoader.kosmos2TokenizerFile(in: dir))
            let tokenizer = try TokenizerLoader.loadKosmos2(file)
            XCTAssertEqual(tokenizer.vocabularySize, model.configuration.text.vocabSize, file.lastPathComponent)
            let image = try XCTUnwrap(tokenizer.id(of: "<image>"))
            let unknown = try XCTUnwrap(tokenizer.specialIds.unk)
            for c in cases {
                var ids = tokenizer.encode(model.promptText(c.prompt))
                let positions = try model.imageSlots(in: &ids, imageTokenId: image, unknownTokenId: unknown)
                XCTAssertEqual(ids, c.ids, "\(file.lastPathComponent): \(c.prompt)")
                XCTAssertEqual(positions, c.imagePositions, "\(file.lastPathComponent): \(c.prompt)")
            }
            for tag in ["<grounding>", "<phrase>", "</phrase>", "<object>", "</object>", "<patch_index_0012>",
                        "</delimiter_of_multi_objects/>", "</image>"] {
                XCTAssertEqual(tokenizer.decode([try XCTUnwrap(tokenizer.id(of: tag))]), tag, file.lastPathComponent)
            }
        }
    }

    /// Decoding agrees too: text after a tag keeps its leading space on both routes (tokenizer.json's
    /// Metaspace decoder strips only the very first one), so grounded phrases read the same.
    func testBothRoutesDecodeAlike() throws {
        let cases = try JSONDecoder().decode(Cases.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("kosmos2_prompts.json"))).cases
        let sentencePiece = try TokenizerLoader.loadKosmos2(Self.sentencePiece)
        let json = try TokenizerLoader.loadKosmos2(Self.tokenizerJSON)
        var sequences = cases.map(\.ids) + cases.map { Array($0.ids.dropFirst(7)) }
        sequences.append(json.encode("<phrase> a snowman</phrase><object><patch_index_0044><patch_index_0863></object> warming himself"))
        sequences.append(json.encode(" An image of<phrase> a dog</phrase> and 東京 café"))
        for ids in sequences {
            XCTAssertEqual(sentencePiece.decode(ids), json.decode(ids), "\(ids)")
        }
        XCTAssertEqual(sentencePiece.decode(sequences[sequences.count - 2]),
                       "<phrase> a snowman</phrase><object><patch_index_0044><patch_index_0863></object> warming himself")
    }

    /// Another model's tokenizer.json (no <image>) is refused, naming the file.
    func testATokenizerWithoutKosmos2TokensIsRefused() throws {
        let llama = Self.fixtures.appendingPathComponent("tokenizers/hf_llama_bpe.tokenizer.json")
        XCTAssertThrowsError(try TokenizerLoader.loadKosmos2(llama)) { error in
            XCTAssertTrue("\(error)".contains("hf_llama_bpe.tokenizer.json"), "\(error)")
            XCTAssertTrue("\(error)".contains("not a Kosmos-2 tokenizer"), "\(error)")
        }
    }
}
