import Foundation
import XCTest
import KosmosNN
import KosmosTensor
@testable import KosmosModels

/// A prompt prefilled a chunk at a time (`PromptPrefill`) gives the logits of one full pass over
/// it, for every chunk size (a chunk boundary inside an image's slots included), and the cache it
/// leaves decodes as one filled in one go; bad sizes and prompts past the positions are refused.
final class ChunkedPrefillTests: XCTestCase {
    func kosmos1(positions: Int = 512) throws -> KosmosModel {
        var c = KosmosParityTests.tinyConfiguration()
        c.decoder.maxTargetPositions = positions
        let model = try KosmosModel(configuration: c, generator: RandomGenerator(seed: 31))
        model.eval()
        return model
    }

    /// `length` text ids (3..<38: no pad, bos, eos or image marker) with one image's markers and
    /// slots at `imageAt`.
    func sequence(length: Int, imageAt: Int?, seed: UInt64) -> KosmosSequence {
        let generator = RandomGenerator(seed: seed)
        var tokens = (0..<length).map { _ in 3 + generator.nextInt(below: 35) }
        guard let imageAt else { return KosmosSequence(tokens: tokens) }
        tokens.replaceSubrange(imageAt..<(imageAt + 6), with: [38, 0, 0, 0, 0, 39])
        return KosmosSequence(tokens: tokens, images: [Tensor.randn([3, 16, 16], generator: RandomGenerator(seed: seed + 1))])
    }

    func lastRow(_ logits: Tensor) -> [Float] {
        Array(logits.scalars.suffix(logits.shape[logits.rank - 1]))
    }

    func testChunkedPrefillEqualsOneFullPass() throws {
        let model = try kosmos1()
        let sequence = self.sequence(length: 300, imageAt: 61, seed: 7)
        let full = try withoutGrad { try model.logits(try model.makeBatch([sequence])) }
        // Sizes that put a boundary inside the image's slots (5: 60|65), at odd places, exactly at
        // the end, and past it.
        for chunk in [1, 5, 64, 299, 300, 1000] {
            let cache = model.decoder.makeCache(reservation: 0)
            let logits = try model.prefill(ModelInput(sequence), cache: cache, chunkSize: chunk)
            XCTAssertEqual(logits.shape, [1, 1, 40], "chunk \(chunk)")
            XCTAssertEqual(cache.length, 300, "chunk \(chunk)")
            assertAllClose(lastRow(logits), lastRow(full), rtol: 1e-5, atol: 1e-5, "chunk \(chunk)")
            // The cache it leaves continues as a full pass over the longer sequence.
            var tokens = sequence.tokens
            for next in [9, 17, 4] {
                let step = try withoutGrad { try model.step(next, cache: cache) }
                tokens.append(next)
                let reference = try withoutGrad {
                    try model.logits(try model.makeBatch([KosmosSequence(tokens: tokens, images: sequence.images)]))
                }
                assertAllClose(lastRow(step), lastRow(reference), rtol: 1e-5, atol: 1e-5, "chunk \(chunk), after \(tokens.count) tokens")
            }
        }
    }

    func testPrefillAdvancesOneChunkAtATime() throws {
        let model = try kosmos1()
        let sequence = self.sequence(length: 40, imageAt: nil, seed: 8)
        let cache = model.decoder.makeCache(reservation: 0)
        let prefill = try model.startPrefill(ModelInput(sequence), cache: cache, chunkSize: 16)
        XCTAssertNil(try prefill.advance())
        XCTAssertEqual(cache.length, 16)
        XCTAssertNil(try prefill.advance())
        XCTAssertEqual(prefill.position, 32)
        XCTAssertFalse(prefill.isFinished)
        let logits = try XCTUnwrap(try prefill.advance())
        XCTAssertTrue(prefill.isFinished)
        XCTAssertEqual(cache.length, 40)
        let full = try withoutGrad { try model.logits(try model.makeBatch([sequence])) }
        assertAllClose(lastRow(logits), lastRow(full), rtol: 1e-5, atol: 1e-5, "chunks of 16")
    }

    func testKosmos2ChunkedPrefillEqualsOneFullPass() throws {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/kosmos2_tiny")
        let model = try Kosmos2Model.load(directory: directory)
        let generator = RandomGenerator(seed: 9)
        let tokens = [0] + (0..<59).map { _ in 5 + generator.nextInt(below: 100) }
        let full = try withoutGrad { try model.logits(tokens: tokens, imagePositions: [], pixels: nil) }
        for chunk in [7, 32, 60] {
            let logits = try model.prefill(ModelInput(tokens: tokens), cache: model.textDecoder.makeCache(reservation: 0), chunkSize: chunk)
            assertAllClose(lastRow(logits), lastRow(full), rtol: 1e-5, atol: 1e-5, "chunk \(chunk)")
        }
    }

    /// Generation with any chunk size picks the same tokens (greedy).
    func testGenerationDoesNotDependOnTheChunkSize() throws {
        let model = try kosmos1()
        let sequence = self.sequence(length: 120, imageAt: 10, seed: 10)
        var options = GenerationOptions()
        options.maxNewTokens = 6
        options.stopAtEOS = false
        let reference = try model.generate(sequence, options: options)
        for chunk in [3, 50] {
            options.prefillChunkSize = chunk
            XCTAssertEqual(try model.generate(sequence, options: options), reference, "chunk \(chunk)")
        }
    }

    func testBadChunkSizesAndPromptsPastThePositionsAreRefused() throws {
        let model = try kosmos1(positions: 64)
        let cache = model.decoder.makeCache(reservation: 0)
        let short = ModelInput(tokens: [3, 4, 5])
        for size in [0, -3] {
            XCTAssertThrowsError(try model.prefill(short, cache: cache, chunkSize: size)) { error in
                XCTAssertTrue("\(error)".contains("chunk size must be at least 1"), "\(error)")
            }
            var options = GenerationOptions()
            options.prefillChunkSize = size
            XCTAssertThrowsError(try options.validate()) { error in XCTAssertTrue("\(error)".contains("prefill chunk size"), "\(error)") }
        }
        XCTAssertEqual(cache.length, 0, "nothing ran")
        // 70 positions for a 64-position model: refused before any work, with both numbers.
        let long = ModelInput(tokens: Array(repeating: 5, count: 70))
        XCTAssertThrowsError(try model.prefill(long, cache: cache, chunkSize: 16)) { error in
            XCTAssertTrue("\(error)".contains("70") && "\(error)".contains("64"), "\(error)")
        }
        XCTAssertEqual(cache.length, 0, "a prompt past the positions leaves the cache empty")
        XCTAssertThrowsError(try model.prefill(ModelInput(tokens: []), cache: cache))
    }
}
