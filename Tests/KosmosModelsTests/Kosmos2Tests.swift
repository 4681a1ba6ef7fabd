import Foundation
import XCTest
import KosmosNN
import KosmosTensor
@testable import KosmosModels

/// Kosmos-2 from a transformers directory against Kosmos2ForConditionalGeneration
/// (scripts/reference/kosmos2_reference.py, float32): image embeddings and logits to 1e-5, and the
/// greedy tokens of transformers' cached generate().
final class Kosmos2Tests: XCTestCase {
    func directory() -> URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/kosmos2_tiny")
    }

    func testLogitsAndGreedyGenerationMatchTransformers() throws {
        let expected = try modelFixture("kosmos2_expected.safetensors")
        let model = try Kosmos2Model.load(directory: directory())
        let tokens = try expected.int64s("input_ids").map { Int($0) }
        let positions = try expected.int64s("image_positions").map { Int($0) }
        let pixels = try expected.tensor("pixel_values")
        let embeds = try withoutGrad { try model.imageEmbeddings(pixels) }
        assertAllClose(embeds.scalars, try expected.floats("image_embeds"), rtol: 1e-5, atol: 1e-5, "image embeds")
        let logits = try withoutGrad { try model.logits(tokens: tokens, imagePositions: positions, pixels: pixels) }
        assertAllClose(logits.scalars, try expected.floats("logits"), rtol: 1e-5, atol: 1e-5, "logits")
        var options = GenerationOptions()
        options.maxNewTokens = 6
        options.stopAtEOS = false
        let generated = try model.generate(tokens: tokens, imagePositions: positions, pixels: pixels, options: options)
        XCTAssertEqual(generated, try expected.int64s("greedy").map { Int($0) })
    }

    /// Beam search equals transformers' generate(num_beams=…, early_stopping=False) with the cache:
    /// 3 beams; 2 beams with no_repeat_ngram_size 3; 4 beams with length_penalty 0.6 (8 new tokens, EOS 2).
    func testBeamSearchMatchesTransformers() throws {
        let expected = try modelFixture("kosmos2_expected.safetensors")
        let model = try Kosmos2Model.load(directory: directory())
        let tokens = try expected.int64s("input_ids").map { Int($0) }
        let positions = try expected.int64s("image_positions").map { Int($0) }
        let pixels = try expected.tensor("pixel_values")
        for (name, beams, ngram, penalty) in [("beam3", 3, 0, Float(1)), ("beam2_ngram3", 2, 3, 1), ("beam4_lp", 4, 0, 0.6)] {
            var options = GenerationOptions()
            options.maxNewTokens = 8
            options.numBeams = beams
            options.noRepeatNgramSize = ngram
            options.lengthPenalty = penalty
            let out = try model.generate(tokens: tokens, imagePositions: positions, pixels: pixels, options: options)
            XCTAssertEqual(out, try expected.int64s(name).map { Int($0) }, name)
        }
    }

    func testPromptLayoutFollowsTheProcessor() throws {
        let model = try Kosmos2Model.load(directory: directory())
        XCTAssertEqual(model.promptText("  An image of "), "<s><image> <image> <image> <image> <image> </image> An image of")
        var tokens = [0, 100, 100, 100, 100, 100, 101, 20]
        XCTAssertEqual(try model.imageSlots(in: &tokens, imageTokenId: 100, unknownTokenId: 3), [2, 3, 4, 5])
        XCTAssertEqual(tokens, [0, 100, 4, 5, 6, 7, 101, 20])
        var short = [0, 100, 100, 101]
        XCTAssertThrowsError(try model.imageSlots(in: &short, imageTokenId: 100, unknownTokenId: 3))
    }

    func testWrongModelTypeIsNamed() {
        let clip = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/clip_vision_model")
        XCTAssertThrowsError(try Kosmos2Model.load(directory: clip)) { error in
            XCTAssertTrue("\(error)".contains("model_type 'clip_vision_model' is not supported here (expected kosmos-2)"), "\(error)")
        }
    }

    /// A config.json with no latent queries is refused by name, not trapped on while building tensors.
    func testNonPositiveLatentQueryNumIsAConfigurationError() {
        var c = Kosmos2Configuration()
        c.latentQueryNum = 0
        XCTAssertThrowsError(try Kosmos2Model(configuration: c, generator: RandomGenerator(seed: 0))) { error in
            XCTAssertTrue("\(error)".contains("latent_query_num"), "\(error)")
        }
    }
}
