import Foundation
import XCTest
import KosmosNN
import KosmosTensor
@testable import KosmosModels

/// Whisper's encoder against transformers' WhisperEncoder (scripts/reference/audio_reference.py):
/// a tiny random WhisperForConditionalGeneration saved by transformers, its encoder's output from
/// a float64 run, and every gradient of a weighted sum of that output.
final class WhisperEncoderTests: XCTestCase {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/whisper_tiny")

    func testEncoderOutputAndGradientsMatchTransformers() throws {
        let fixture = try modelFixture("whisper_encoder_expected.safetensors")
        let encoder = try WhisperEncoder.load(directory: Self.directory)
        XCTAssertEqual(encoder.configuration.numMelBins, 8)
        XCTAssertEqual(encoder.configuration.maxSourcePositions, 16)
        let input = try fixture.tensor("input_features")
        input.requiresGrad = true
        let hidden = try encoder(input)
        XCTAssertEqual(hidden.shape, [2, 16, 24])
        assertAllClose(hidden.scalars, try fixture.floats("last_hidden_state"), rtol: 1e-5, atol: 1e-5, "last_hidden_state")
        let loss = (hidden * (try fixture.tensor("loss_weights"))).sum()
        XCTAssertEqual(loss.item(), try fixture.floats("loss")[0], accuracy: 1e-5 * abs(loss.item()))
        loss.backward()
        var checked = 0
        for (name, parameter) in encoder.namedParameters() {
            guard let grad = parameter.grad else { XCTFail("no gradient for \(name)"); continue }
            assertGradientClose(grad.scalars, try fixture.floats("grad.\(name)"), "grad \(name)")
            checked += 1
        }
        XCTAssertEqual(checked, 36)
        assertGradientClose(input.grad!.scalars, try fixture.floats("input_features_grad"), "input_features grad")
        // The position table is fixed, as in transformers (no gradient, not a parameter).
        XCTAssertFalse(encoder.namedParameters().contains { $0.name.contains("embed_positions") })
        XCTAssertTrue(encoder.stateDict().contains { $0.name == "embed_positions.weight" })
    }

    func testSinusoidsEqualTheStoredTable() throws {
        let weights = try SafeTensorsFile(url: Self.directory.appendingPathComponent("model.safetensors"))
        assertAllClose(WhisperEncoder.sinusoids(length: 16, channels: 24).scalars,
                       try weights.floats("model.encoder.embed_positions.weight"), rtol: 0, atol: 1e-6, "sinusoids")
    }

    func testWrongFeatureShapesAreNamedErrors() throws {
        let encoder = try WhisperEncoder.load(directory: Self.directory)
        XCTAssertThrowsError(try encoder(Tensor.zeros([1, 8, 30]))) { XCTAssertTrue("\($0)".contains("expects [batch, 8, 32]"), "\($0)") }
        XCTAssertThrowsError(try encoder(Tensor.zeros([1, 80, 32]))) { XCTAssertTrue("\($0)".contains("expects [batch, 8, 32]"), "\($0)") }
    }
}
