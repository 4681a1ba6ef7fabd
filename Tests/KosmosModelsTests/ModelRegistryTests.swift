import Foundation
import XCTest
import KosmosTensor
import KosmosTokenizers
@testable import KosmosModels

/// The registry decides which family a directory holds, in one place: by model_type, else by
/// architectures; an unknown type is refused with the list of known ones.
final class ModelRegistryTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    func directory(config: [String: Any]) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kosmos-registry-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        try JSONSerialization.data(withJSONObject: config).write(to: dir.appendingPathComponent("config.json"))
        return dir
    }

    func testKosmos1DirectoryLoadsAsKosmos1() throws {
        var c = KosmosConfiguration.preset(named: "kosmos-tiny")!
        c.decoder.decoderLayers = 1
        let model = try KosmosModel(configuration: c, generator: RandomGenerator(seed: 1))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kosmos-registry-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        try model.save(directory: dir)
        XCTAssertEqual(try ModelRegistry.family(of: dir), Kosmos1Family.entry)
        let loaded = try ModelRegistry.load(dir)
        XCTAssertTrue(loaded is KosmosModel)
        XCTAssertEqual(loaded.family, Kosmos1Family.entry)
        XCTAssertEqual(loaded.mediaKinds, [.image])
        XCTAssertEqual(loaded.contextLength, c.decoder.maxTargetPositions)
        XCTAssertEqual(loaded.eosTokenId, c.eosTokenId)
        XCTAssertEqual(try ModelRegistry.loadVisionTower(dir).configuration.hiddenSize, c.vision.hiddenSize)
    }

    func testKosmos2DirectoryLoadsAsKosmos2WithItsTokenizer() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kosmos-registry-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        for name in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent("kosmos2_untied/\(name)"), to: dir.appendingPathComponent(name))
        }
        try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent("tokenizers/bpe_nmt_nfkc.model"),
                                         to: dir.appendingPathComponent("sentencepiece.bpe.model"))
        XCTAssertEqual(try ModelRegistry.family(of: dir), Kosmos2Family.entry)
        let session = try ModelSession(directory: dir)
        XCTAssertTrue(session.model is Kosmos2Model)
        XCTAssertTrue(session.processor.supportsGrounding)
        XCTAssertEqual(session.processor.mediaLimit(.image), 1)
        // The SentencePiece file is read in Kosmos-2's layout (the image and grounding tokens exist).
        XCTAssertNotNil(session.tokenizer.id(of: "<image>"))
        XCTAssertEqual(session.tokenizer.vocabularySize, session.model.textDecoder.vocabularySize)
        XCTAssertThrowsError(try ModelRegistry.loadVisionTower(dir)) { error in
            XCTAssertTrue("\(error)".contains("'kosmos-2' is not supported"), "\(error)")
        }
    }

    func testArchitecturesNameAFamilyWhenModelTypeDoesNot() throws {
        XCTAssertEqual(ModelRegistry.family(modelType: "something-else", architectures: ["Kosmos2ForConditionalGeneration"]), Kosmos2Family.entry)
        XCTAssertNil(ModelRegistry.family(modelType: "something-else", architectures: ["LlamaForCausalLM"]))
    }

    func testUnknownModelTypeListsTheKnownOnes() throws {
        let dir = try directory(config: ["model_type": "llama", "architectures": ["LlamaForCausalLM"]])
        XCTAssertThrowsError(try ModelRegistry.load(dir)) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("model_type 'llama' is not supported"), message)
            XCTAssertTrue(message.contains("kosmos-1, kosmos-2 or kosmos-2.5"), message)
        }
        XCTAssertEqual(ModelRegistry.modelTypes, ["kosmos-1", "kosmos-2", "kosmos-2.5"])
        XCTAssertEqual(ModelRegistry.family(modelType: "something-else", architectures: ["Kosmos2_5ForConditionalGeneration"]), Kosmos25Family.entry)
    }
}
