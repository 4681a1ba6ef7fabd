import Foundation
import XCTest
import KosmosNN
import KosmosTensor
@testable import KosmosModels

/// The KV cache against torchscale's incremental decoding (scripts/reference/incremental_reference.py):
/// a 5-token prefill, then 4 tokens one at a time; every step's logits to 1e-5.
final class IncrementalDecodingTests: XCTestCase {
    func check(_ variant: String) throws {
        let fixture = try modelFixture("incremental_\(variant).safetensors")
        let decoder = try MagnetoDecoder(configuration: DecoderParityTests.configuration(variant), generator: RandomGenerator(seed: 0))
        try decoder.load(from: try modelFixture("decoder_\(variant).safetensors"), prefix: "model.", sourceName: variant)
        decoder.eval()
        let tokens = try fixture.int64s("tokens").map { Int($0) }
        let expected = try fixture.floats("step_logits")
        let vocab = 50
        let cache = decoder.makeCache()
        var steps: [Float] = []
        try withoutGrad {
            let prefill = try decoder(tokens: Array(tokens[0..<5]), batch: 1, length: 5, cache: cache)
            steps += Array(prefill.scalars[(4 * vocab)..<(5 * vocab)])
            for t in 5..<9 {
                steps += try decoder(tokens: [tokens[t]], batch: 1, length: 1, cache: cache).scalars
            }
        }
        XCTAssertEqual(cache.length, 9)
        assertAllClose(steps, expected, rtol: 1e-5, atol: 1e-5, "\(variant) incremental logits")
        // And the cached steps agree with one full forward pass.
        let full = try withoutGrad { try decoder(tokens: tokens, batch: 1, length: 9) }
        assertAllClose(steps, Array(full.scalars[(4 * vocab)...]), rtol: 1e-5, atol: 1e-5, "\(variant) cache vs full")
    }

    func testXPos() throws { try check("xpos_subln") }
    func testXPosWithLearnedPositions() throws { try check("xpos_learned") }
    func testWithoutXPos() throws { try check("subln") }

    func testSeveralNewTokensAfterAPrefillMatchTheFullPass() throws {
        let decoder = try MagnetoDecoder(configuration: DecoderParityTests.configuration("xpos_learned"), generator: RandomGenerator(seed: 3))
        decoder.eval()
        let tokens = [4, 8, 15, 16, 23, 42, 7]
        let cache = decoder.makeCache()
        let (first, second, full) = try withoutGrad {
            (try decoder(tokens: Array(tokens[0..<3]), batch: 1, length: 3, cache: cache),
             try decoder(tokens: Array(tokens[3...]), batch: 1, length: 4, cache: cache),
             try decoder(tokens: tokens, batch: 1, length: 7))
        }
        assertAllClose(first.scalars + second.scalars, full.scalars, rtol: 1e-5, atol: 1e-5, "chunked prefill")
        XCTAssertThrowsError(try decoder(tokens: [1], batch: 1, length: 1, keyPadding: [false], cache: cache)) { error in
            XCTAssertTrue("\(error)".contains("8 positions"), "\(error)")
        }
    }

    func testSequencesLongerThanTheContextAreRefused() throws {
        let decoder = try MagnetoDecoder(configuration: DecoderParityTests.configuration("xpos_subln"), generator: RandomGenerator(seed: 3))
        XCTAssertThrowsError(try decoder(tokens: [Int](repeating: 3, count: 17), batch: 1, length: 17)) { error in
            XCTAssertEqual(error as? ModelError, .sequenceTooLong(length: 17, maximum: 16))
        }
        let cache = decoder.makeCache()
        _ = try withoutGrad { try decoder(tokens: [Int](repeating: 3, count: 16), batch: 1, length: 16, cache: cache) }
        XCTAssertThrowsError(try decoder(tokens: [3], batch: 1, length: 1, cache: cache))
    }
}
