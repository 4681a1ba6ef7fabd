import Foundation
import XCTest
import KosmosNN
import KosmosTensor
@testable import KosmosModels

/// Kosmos-1 with an audio path against a PyTorch assembly of the same parts (scripts/reference/
/// audio_reference.py): torchscale's decoder, transformers' CLIP vision tower and WhisperEncoder,
/// two flamingo-pytorch resamplers. Sequence 0 interleaves text, an image and two audio clips;
/// sequence 1 is text and one clip, shorter.
final class KosmosAudioParityTests: XCTestCase {
    static func configuration() throws -> KosmosConfiguration { try fixtureConfiguration("kosmos_audio_tiny_config.json") }

    static func loadBatch(_ model: KosmosModel, _ fixture: SafeTensorsFile) throws -> KosmosBatch {
        let tokens = try fixture.int64s("tokens").map { Int($0) }
        let lengths = try fixture.int64s("lengths").map { Int($0) }
        let width = tokens.count / 2
        let image = try fixture.tensor("pixels").squeezed(0)
        let features = try fixture.tensor("input_features")
        let clip = { (i: Int) in features.narrowed(axis: 0, start: i, length: 1).squeezed(0) }
        return try model.makeBatch([
            KosmosSequence(tokens: Array(tokens[0..<lengths[0]]), images: [image], audio: [clip(0), clip(1)]),
            KosmosSequence(tokens: Array(tokens[width..<(width + lengths[1])]), audio: [clip(2)]),
        ])
    }

    func testTextImageAndAudioMatchPyTorch() throws {
        let fixture = try modelFixture("kosmos_audio_tiny.safetensors")
        let model = try KosmosModel(configuration: try Self.configuration(), generator: RandomGenerator(seed: 0))
        XCTAssertEqual(model.mediaKinds, [.image, .audio])
        try model.load(from: fixture, prefix: "model.", sourceName: "kosmos_audio_tiny")
        model.eval()
        let batch = try Self.loadBatch(model, fixture)
        XCTAssertEqual(batch.slotPositions.count, 4)
        XCTAssertEqual(batch.audioSlotPositions, [12, 13, 14, 20, 21, 22, 31, 32, 33])
        let logits = try model.logits(batch)
        assertAllClose(logits.scalars, try fixture.floats("logits"), rtol: 1e-5, atol: 1e-5, "logits")
        let loss = logits.reshaped([-1, 42]).crossEntropy(targets: batch.labels)
        XCTAssertEqual(loss.item(), try fixture.floats("loss")[0], accuracy: 1e-5 * loss.item())
        loss.backward()
        var checked = 0
        for (name, parameter) in model.namedParameters() {
            if fixture.entry("grad.\(name)") == nil {
                XCTAssertNil(parameter.grad, name)   // the pooled output's post_layernorm: unused on both sides
                continue
            }
            guard let grad = parameter.grad else { XCTFail("no gradient for \(name)"); continue }
            assertGradientClose(grad.scalars, try fixture.floats("grad.\(name)"), "grad \(name)")
            checked += 1
        }
        XCTAssertEqual(checked, 149)

        let fresh = try KosmosModel(configuration: try Self.configuration(), generator: RandomGenerator(seed: 0))
        try fresh.load(from: fixture, prefix: "model.", sourceName: "kosmos_audio_tiny")
        fresh.eval()
        let losses = try adamWLosses(fresh) { try fresh.loss(batch) }
        assertAllClose(losses, try fixture.floats("adamw_losses"), rtol: 1e-4, atol: 0, "AdamW losses")
    }

    func testAudioFreezePolicies() throws {
        let model = try KosmosModel(configuration: try Self.configuration(), generator: RandomGenerator(seed: 1))
        model.applyAudioFreeze(.allButLastLayer)
        let trainable = Set(model.namedParameters().filter { $0.tensor.requiresGrad }.map(\.name))
        XCTAssertTrue(trainable.contains("audio_model.layers.1.fc1.weight"))
        XCTAssertTrue(trainable.contains("audio_model.layer_norm.weight"))
        XCTAssertFalse(trainable.contains("audio_model.layers.0.fc1.weight"))
        XCTAssertFalse(trainable.contains("audio_model.conv1.weight"))
        XCTAssertTrue(trainable.contains("audio_perceiver.latents"))
        XCTAssertTrue(trainable.contains("audio_proj.weight"))
        model.applyAudioFreeze(.all)
        XCTAssertFalse(model.audioTower!.encoder.parameters().contains { $0.requiresGrad })
        model.applyAudioFreeze(.none)
        XCTAssertTrue(model.audioTower!.encoder.parameters().allSatisfy { $0.requiresGrad })
    }

    func testAudioLabelsAndBadSequences() throws {
        let model = try KosmosModel(configuration: try Self.configuration(), generator: RandomGenerator(seed: 1))
        let clip = Tensor.zeros([8, 32])
        let batch = try model.makeBatch([KosmosSequence(tokens: [1, 5, 40, 0, 0, 0, 41, 6, 2], audio: [clip])])
        XCTAssertEqual(batch.audioSlotPositions, [3, 4, 5])
        // Slots are never targets; <audio>, </audio> and text are.
        XCTAssertEqual(batch.labels, [5, 40, -100, -100, -100, 41, 6, 2, -100])
        let cases: [(KosmosSequence, String)] = [
            (KosmosSequence(tokens: [1, 40, 0, 0, 0, 41]), "1 <audio> marker(s) but 0 audio clip(s)"),
            (KosmosSequence(tokens: [1, 40, 0, 0, 41], audio: [clip]), "<audio> at position 1 is not followed by 3 slots"),
            (KosmosSequence(tokens: [1, 41]), "</audio> at position 1 without"),
            (KosmosSequence(tokens: [1, 40, 0, 0, 0, 41], audio: [Tensor.zeros([8, 30])]), "expects [8, 32]"),
        ]
        for (sequence, message) in cases {
            XCTAssertThrowsError(try model.makeBatch([sequence])) { XCTAssertTrue("\($0)".contains(message), "\($0) should mention \(message)") }
        }
        let imageOnly = try KosmosModel(configuration: KosmosParityTests.tinyConfiguration(), generator: RandomGenerator(seed: 1))
        XCTAssertThrowsError(try imageOnly.makeBatch([KosmosSequence(tokens: [1, 5], audio: [clip])])) {
            XCTAssertTrue("\($0)".contains("no audio_config"), "\($0)")
        }
    }

    func testPromptsPlaceImagesAndAudioInOrder() throws {
        let model = try KosmosModel(configuration: try Self.configuration(), generator: RandomGenerator(seed: 1))
        let encode: (String) -> [Int] = { $0.unicodeScalars.map { Int($0.value) % 30 + 3 } }
        let tokens = try model.promptTokens("a<audio>b<image>c<audio>", imageCount: 1, audioCount: 2, encode: encode)
        XCTAssertEqual(tokens, [1] + encode("a") + [40, 0, 0, 0, 41] + encode("b") + [38, 0, 0, 0, 0, 39] + encode("c") + [40, 0, 0, 0, 41])
        XCTAssertThrowsError(try model.promptTokens("<audio>", imageCount: 0, audioCount: 2, encode: encode)) {
            XCTAssertTrue("\($0)".contains("1 <audio> marker(s) but 2"), "\($0)")
        }
        var bad = try Self.configuration()
        bad.audio!.featureExtractor.chunkLength = 1
        XCTAssertThrowsError(try bad.validate()) { XCTAssertTrue("\($0)".contains("audio_config.feature_extractor.chunk_length"), "\($0)") }
        bad = try Self.configuration()
        bad.audio!.audioTokenId = 38
        XCTAssertThrowsError(try bad.validate()) { XCTAssertTrue("\($0)".contains("image marker"), "\($0)") }
    }
}
