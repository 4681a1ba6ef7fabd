import Foundation
import XCTest
import KosmosNN
import KosmosTensor
@testable import KosmosModels

/// The assembled Kosmos-1 model against the PyTorch assembly of torchscale, transformers and
/// flamingo-pytorch (scripts/reference/kosmos_reference.py): a batch of a sequence with two
/// interleaved images and a shorter text-only one.
final class KosmosParityTests: XCTestCase {
    /// The configuration of scripts/reference/kosmos_reference.py's model (and of
    /// training_reference.py's), shared with KosmosTrainingTests through the fixture file.
    static func tinyConfiguration() -> KosmosConfiguration {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/kosmos_tiny_config.json")
        return try! JSONDecoder().decode(KosmosConfiguration.self, from: Data(contentsOf: url))
    }

    static func loadBatch(_ model: KosmosModel, _ fixture: SafeTensorsFile) throws -> KosmosBatch {
        let tokens = try fixture.int64s("tokens").map { Int($0) }
        let lengths = try fixture.int64s("lengths").map { Int($0) }
        let width = tokens.count / 2
        let pixels = try fixture.tensor("pixels")
        let images = [pixels.narrowed(axis: 0, start: 0, length: 1).squeezed(0),
                      pixels.narrowed(axis: 0, start: 1, length: 1).squeezed(0)]
        return try model.makeBatch([
            KosmosSequence(tokens: Array(tokens[0..<lengths[0]]), images: images),
            KosmosSequence(tokens: Array(tokens[width..<(width + lengths[1])])),
        ])
    }

    func testForwardLossGradientsAndTrainingMatchPyTorch() throws {
        let fixture = try modelFixture("kosmos_tiny.safetensors")
        let model = try KosmosModel(configuration: Self.tinyConfiguration(), generator: RandomGenerator(seed: 0))
        try model.load(from: fixture, prefix: "model.", sourceName: "kosmos_tiny")
        model.eval()
        let batch = try Self.loadBatch(model, fixture)
        XCTAssertEqual(batch.slotPositions.count, 8)
        let logits = try model.logits(batch)
        assertAllClose(logits.scalars, try fixture.floats("logits"), rtol: 1e-5, atol: 1e-5, "logits")
        let loss = logits.reshaped([-1, 40]).crossEntropy(targets: batch.labels)
        XCTAssertEqual(loss.item(), try fixture.floats("loss")[0], accuracy: 1e-5 * loss.item())
        loss.backward()
        for (name, parameter) in model.namedParameters() {
            if fixture.entry("grad.\(name)") == nil {
                // Unused by Kosmos (the pooled output's post_layernorm): no gradient on either side.
                XCTAssertNil(parameter.grad, name)
                continue
            }
            guard let grad = parameter.grad else { XCTFail("no gradient for \(name)"); continue }
            assertGradientClose(grad.scalars, try fixture.floats("grad.\(name)"), "grad \(name)")
        }

        let fresh = try KosmosModel(configuration: Self.tinyConfiguration(), generator: RandomGenerator(seed: 0))
        try fresh.load(from: fixture, prefix: "model.", sourceName: "kosmos_tiny")
        fresh.eval()
        let losses = try adamWLosses(fresh) { try fresh.loss(batch) }
        assertAllClose(losses, try fixture.floats("adamw_losses"), rtol: 1e-4, atol: 0, "AdamW losses")
    }

    func testLabelsIgnoreSlotsPaddingAndPredictionsIntoSlots() throws {
        let model = try KosmosModel(configuration: Self.tinyConfiguration(), generator: RandomGenerator(seed: 1))
        let image = Tensor.zeros([3, 16, 16])
        let batch = try model.makeBatch([
            KosmosSequence(tokens: [1, 5, 38, 0, 0, 0, 0, 39, 6, 2], images: [image]),
            KosmosSequence(tokens: [1, 7, 8]),
        ])
        XCTAssertEqual(batch.length, 10)
        XCTAssertEqual(batch.slotPositions, [3, 4, 5, 6])
        XCTAssertEqual(batch.padding, [Bool](repeating: false, count: 10) + [false, false, false] + [Bool](repeating: true, count: 7))
        // Position t predicts token t+1; slots (3...6) are never targets, </image> and text are.
        XCTAssertEqual(Array(batch.labels[0..<10]), [5, 38, -100, -100, -100, -100, 39, 6, 2, -100])
        XCTAssertEqual(Array(batch.labels[10..<20]), [7, 8] + [Int](repeating: -100, count: 8))
    }

    func testBadSequencesAreNamedErrors() throws {
        let model = try KosmosModel(configuration: Self.tinyConfiguration(), generator: RandomGenerator(seed: 1))
        let image = Tensor.zeros([3, 16, 16])
        let cases: [(KosmosSequence, String)] = [
            (KosmosSequence(tokens: [1, 38, 0, 0, 0, 0, 39], images: []), "1 <image> marker(s) but 0 image(s)"),
            (KosmosSequence(tokens: [1, 5], images: [image]), "0 <image> marker(s) but 1 image(s)"),
            (KosmosSequence(tokens: [1, 38, 0, 0, 39], images: [image]), "is not followed by 4 slots"),
            (KosmosSequence(tokens: [1, 39], images: []), "</image> at position 1 without"),
            (KosmosSequence(tokens: [1, 40], images: []), "token id 40 is outside the vocabulary"),
            (KosmosSequence(tokens: [1, 38, 0, 0, 0, 0, 39], images: [Tensor.zeros([3, 8, 8])]), "expects [3, 16, 16]"),
        ]
        for (sequence, message) in cases {
            XCTAssertThrowsError(try model.makeBatch([sequence])) { error in
                XCTAssertTrue("\(error)".contains(message), "\(error) should mention \(message)")
            }
        }
    }

    func testVisionFreezePolicies() throws {
        let model = try KosmosModel(configuration: Self.tinyConfiguration(), generator: RandomGenerator(seed: 1))
        model.applyVisionFreeze(.allButLastLayer)
        let trainable = Set(model.namedParameters().filter { $0.tensor.requiresGrad }.map(\.name))
        XCTAssertTrue(trainable.contains("vision_model.encoder.layers.1.mlp.fc1.weight"))
        XCTAssertFalse(trainable.contains("vision_model.encoder.layers.0.mlp.fc1.weight"))
        XCTAssertFalse(trainable.contains("vision_model.embeddings.class_embedding"))
        XCTAssertTrue(trainable.contains("perceiver.latents"))
        XCTAssertTrue(trainable.contains("decoder.layers.0.ffn.fc1.weight"))
        model.applyVisionFreeze(.all)
        XCTAssertFalse(model.visionModel.parameters().contains { $0.requiresGrad })
        model.applyVisionFreeze(.none)
        XCTAssertTrue(model.visionModel.parameters().allSatisfy { $0.requiresGrad })
    }
}
