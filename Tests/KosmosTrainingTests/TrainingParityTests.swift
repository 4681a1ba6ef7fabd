import Foundation
import XCTest
import KosmosModels
import KosmosNN
import KosmosTensor
@testable import KosmosTraining

/// 20 optimizer steps of the tiny Kosmos against PyTorch (scripts/reference/training_reference.py):
/// gradient accumulation over two micro-batches weighted by labelled tokens, a vision tower frozen
/// but for its last layer, clipping that acts on some steps and not others, warmup then linear
/// decay, and AdamW with decayed (ndim ≥ 2) and non-decayed groups. The reference runs in float64;
/// we run in float32.
final class TrainingParityTests: XCTestCase {
    /// kosmos_reference.py's tiny model, the same file KosmosParityTests reads.
    static func tinyConfiguration() throws -> KosmosConfiguration {
        try JSONDecoder().decode(KosmosConfiguration.self,
                                 from: Data(contentsOf: TrainingTestSupport.fixtures.appendingPathComponent("kosmos_tiny_config.json")))
    }

    func microBatch(_ k: Int, model: KosmosModel, fixture: SafeTensorsFile) throws -> KosmosBatch {
        let tokens = try fixture.int64s("batch.\(k).tokens").map { Int($0) }
        let lengths = try fixture.int64s("batch.\(k).lengths").map { Int($0) }
        let width = tokens.count / lengths.count
        let pixels = fixture.entry("batch.\(k).pixels") != nil ? try fixture.tensor("batch.\(k).pixels") : nil
        var next = 0
        var sequences: [KosmosSequence] = []
        for (b, length) in lengths.enumerated() {
            let ids = Array(tokens[(b * width)..<(b * width + length)])
            let count = ids.filter { $0 == 38 }.count
            let images = (0..<count).map { i in pixels!.narrowed(axis: 0, start: next + i, length: 1).squeezed(0) }
            next += count
            sequences.append(KosmosSequence(tokens: ids, images: images))
        }
        XCTAssertEqual(next, pixels?.shape[0] ?? 0, "every image of micro-batch \(k) is used")
        return try model.makeBatch(sequences)
    }

    /// A float64 tensor of the fixture, read from its raw little-endian bytes.
    func doubles(_ file: SafeTensorsFile, _ name: String) throws -> [Double] {
        guard let entry = file.entry(name) else { throw TrainingError.data("fixture has no \(name)") }
        XCTAssertEqual(entry.dtype, SafeTensorsDType.f64, name)
        return try file.withRawBytes(name) { raw in
            (0..<(raw.count / 8)).map { Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self))) }
        }
    }

    func testTwentyStepsMatchPyTorch() throws {
        let fixture = try SafeTensorsFile(url: TrainingTestSupport.fixtures.appendingPathComponent("training_tiny.safetensors"))
        let model = try KosmosModel(configuration: try Self.tinyConfiguration(), generator: RandomGenerator(seed: 0))
        try model.load(from: fixture, prefix: "model.", strict: false, sourceName: "training_tiny")
        model.train()
        model.applyVisionFreeze(.allButLastLayer)
        var settings = TrainingConfiguration.Optimizer()
        settings.weightDecay = 0.1
        settings.maxGradNorm = Double(fixture.metadata["max_norm"] ?? "") ?? 2.5
        let stepper = TrainingStep(model: model, optimizer: settings,
                                   schedule: LearningRateSchedule(kind: .linear, peak: 1e-3, warmupSteps: 5, totalSteps: 20))
        // The frozen tower is out of the optimizer; its last layer is in.
        XCTAssertFalse(stepper.trainable.contains { $0.name.hasPrefix("vision_model.encoder.layers.0.") })
        XCTAssertTrue(stepper.trainable.contains { $0.name.hasPrefix("vision_model.encoder.layers.1.") })

        let batches = try (0..<4).map { try microBatch($0, model: model, fixture: fixture) }
        let expectedLosses = try doubles(fixture, "losses"), expectedNorms = try doubles(fixture, "grad_norms")
        let expectedRates = try doubles(fixture, "lrs")
        for s in 0..<20 {
            let r = try stepper.step(index: s, microBatches: [batches[(2 * s) % 4], batches[(2 * s + 1) % 4]])
            XCTAssertEqual(r.learningRate, expectedRates[s], accuracy: 1e-15, "lr of step \(s)")
            XCTAssertEqual(r.loss, expectedLosses[s], accuracy: 1e-4 * abs(expectedLosses[s]), "loss of step \(s)")
            XCTAssertEqual(r.gradNorm, expectedNorms[s], accuracy: 1e-4 * expectedNorms[s], "gradient norm of step \(s)")
        }
        // Relative error, with elements smaller than 1e-2 (small biases) compared in absolute terms
        // at that scale: their relative error says nothing about the update arithmetic.
        var worst = (name: "", error: 0.0)
        for (name, p) in model.namedParameters() {
            let expected = try doubles(fixture, "final.\(name)")
            let actual = p.scalars
            XCTAssertEqual(actual.count, expected.count, name)
            for (a, e) in zip(actual, expected) {
                let error = abs(Double(a) - e) / max(abs(e), 1e-2)
                if error > worst.error { worst = (name, error) }
            }
        }
        print("largest final-weight error: \(worst.error) (\(worst.name))")
        XCTAssertLessThanOrEqual(worst.error, 1e-4, "final weight \(worst.name)")
    }
}
