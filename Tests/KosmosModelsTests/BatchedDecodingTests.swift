import Foundation
import XCTest
import KosmosNN
import KosmosTensor
@testable import KosmosModels

/// `MagnetoDecoder.step(tokens:caches:)` advances several sequences of different lengths in one
/// pass; its logits equal stepping each sequence alone, and batched generation is token-identical
/// to generating each prompt alone — with xPos, learned positions, and Kosmos-2's sinusoidal ones.
final class BatchedDecodingTests: XCTestCase {
    func kosmos2Directory() -> URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/kosmos2_tiny")
    }

    func kosmos1(xpos: Bool) throws -> KosmosModel {
        var c = KosmosParityTests.tinyConfiguration()
        c.decoder.maxTargetPositions = 64
        if !xpos {
            c.decoder.xposRelPos = false
            c.decoder.absolutePositions = .learned
        }
        let model = try KosmosModel(configuration: c, generator: RandomGenerator(seed: 21))
        model.eval()
        return model
    }

    func prompts(lengths: [Int], vocabulary: Int, seed: UInt64) -> [[Int]] {
        let generator = RandomGenerator(seed: seed)
        // Ids 3..<30: clear of pad, bos, eos and (Kosmos-1 tiny) the image markers.
        return lengths.map { n in (0..<n).map { _ in 3 + generator.nextInt(below: min(vocabulary, 30) - 3) } }
    }

    /// Prefills each prompt into two caches, then steps one set batched and the other one sequence
    /// at a time for `steps` steps, feeding each sequence its own argmax.
    func assertBatchedStepsMatch(_ decoder: MagnetoDecoder, prompts: [[Int]], steps: Int,
                                 file: StaticString = #filePath, line: UInt = #line) throws {
        try withoutGrad {
            let batched = prompts.map { _ in decoder.makeCache() }
            let alone = prompts.map { _ in decoder.makeCache() }
            var next: [Int] = []
            for (i, prompt) in prompts.enumerated() {
                _ = try decoder(tokens: prompt, batch: 1, length: prompt.count, cache: batched[i])
                let logits = try decoder(tokens: prompt, batch: 1, length: prompt.count, cache: alone[i])
                next.append(TokenSampler.argmax(Array(logits.scalars.suffix(decoder.configuration.vocabSize))))
            }
            let vocabulary = decoder.configuration.vocabSize
            for step in 0..<steps {
                let together = try decoder.step(tokens: next, caches: batched)
                XCTAssertEqual(together.shape, [prompts.count, vocabulary], file: file, line: line)
                for i in prompts.indices {
                    let single = try decoder(tokens: [next[i]], batch: 1, length: 1, cache: alone[i]).scalars
                    let row = Array(together.scalars[(i * vocabulary)..<((i + 1) * vocabulary)])
                    assertAllClose(row, single, rtol: 1e-5, atol: 1e-6, "step \(step), sequence \(i)", file: file, line: line)
                    XCTAssertEqual(batched[i].length, alone[i].length, file: file, line: line)
                    next[i] = TokenSampler.argmax(single)
                }
            }
        }
    }

    func testBatchedStepEqualsSingleStepsWithXPos() throws {
        let model = try kosmos1(xpos: true)
        try assertBatchedStepsMatch(model.decoder, prompts: prompts(lengths: [3, 9, 1, 14, 6], vocabulary: 40, seed: 1), steps: 5)
    }

    func testBatchedStepEqualsSingleStepsWithLearnedPositions() throws {
        let model = try kosmos1(xpos: false)
        try assertBatchedStepsMatch(model.decoder, prompts: prompts(lengths: [5, 2, 11, 7], vocabulary: 40, seed: 2), steps: 5)
    }

    func testBatchedStepEqualsSingleStepsWithKosmos2() throws {
        let model = try Kosmos2Model.load(directory: kosmos2Directory())
        try assertBatchedStepsMatch(model.textModel, prompts: prompts(lengths: [4, 10, 1, 7], vocabulary: 120, seed: 3), steps: 5)
    }

    func testStepRefusesBadInput() throws {
        let model = try kosmos1(xpos: true)
        let cache = model.decoder.makeCache()
        XCTAssertThrowsError(try model.decoder.step(tokens: [], caches: []))
        XCTAssertThrowsError(try model.decoder.step(tokens: [3, 4], caches: [cache]))
        XCTAssertThrowsError(try model.decoder.step(tokens: [3, 4], caches: [cache, cache]))
        XCTAssertThrowsError(try model.decoder.step(tokens: [99], caches: [cache]))
    }

    func testBatchedGreedyGenerationIsTokenIdenticalKosmos1() throws {
        for xpos in [true, false] {
            let model = try kosmos1(xpos: xpos)
            let image = Tensor.randn([3, 16, 16], generator: RandomGenerator(seed: 12))
            var sequences = prompts(lengths: [2, 8, 5], vocabulary: 40, seed: 4).map { KosmosSequence(tokens: $0) }
            sequences.append(KosmosSequence(tokens: [1, 5, 38, 0, 0, 0, 0, 39, 6], images: [image]))
            var options = GenerationOptions()
            options.maxNewTokens = 8
            options.stopAtEOS = false
            let together = try model.generate(sequences, options: options)
            XCTAssertEqual(together, try sequences.map { try model.generate($0, options: options) }, "xpos \(xpos)")
            // Sampling: each sequence has its own seeded sampler, so the draws match too.
            options.temperature = 1.3
            options.topP = 0.9
            options.seed = 5
            XCTAssertEqual(try model.generate(sequences, options: options),
                           try sequences.map { try model.generate($0, options: options) }, "sampling, xpos \(xpos)")
        }
    }

    func testBatchedGreedyGenerationIsTokenIdenticalKosmos2() throws {
        let expected = try modelFixture("kosmos2_expected.safetensors")
        let model = try Kosmos2Model.load(directory: kosmos2Directory())
        let tokens = try expected.int64s("input_ids").map { Int($0) }
        let positions = try expected.int64s("image_positions").map { Int($0) }
        let pixels = try expected.tensor("pixel_values")
        var inputs = [Kosmos2Prompt(tokens: tokens, imagePositions: positions, pixels: pixels)]
        inputs += prompts(lengths: [3, 12], vocabulary: 120, seed: 6).map { Kosmos2Prompt(tokens: $0, imagePositions: [], pixels: nil) }
        inputs.append(Kosmos2Prompt(tokens: tokens + [20, 21], imagePositions: positions, pixels: pixels))
        var options = GenerationOptions()
        options.maxNewTokens = 8
        options.stopAtEOS = false
        let together = try model.generate(inputs, options: options)
        let alone = try inputs.map {
            try model.generate(tokens: $0.tokens, imagePositions: $0.imagePositions, pixels: $0.pixels, options: options)
        }
        XCTAssertEqual(together, alone)
        let reference = try expected.int64s("greedy").map { Int($0) }
        XCTAssertEqual(Array(together[0].prefix(reference.count)), reference)
        // Beam search falls back to one prompt at a time.
        options.numBeams = 2
        XCTAssertEqual(try model.generate(Array(inputs.prefix(2)), options: options),
                       try inputs.prefix(2).map { try model.generate(tokens: $0.tokens, imagePositions: $0.imagePositions, pixels: $0.pixels, options: options) })
    }

    /// Members join and leave between steps (continuous batching) and still get their own tokens;
    /// a stopped member leaves at once; EOS and the token limit finish members with their reason.
    func testMembersJoinAndLeaveBetweenSteps() throws {
        let model = try kosmos1(xpos: true)
        let texts = prompts(lengths: [4, 7, 2], vocabulary: 40, seed: 7)
        var options = GenerationOptions()
        options.maxNewTokens = 6
        options.stopAtEOS = false
        let alone = try texts.map { try model.generate(KosmosSequence(tokens: $0), options: options) }
        let batch = DecodingBatch(decoder: model.decoder, eos: model.configuration.eosTokenId)
        let prefill: ([Int]) -> (DecoderCache) throws -> Tensor = { tokens in
            { cache in try model.decoder(tokens: tokens, batch: 1, length: tokens.count, cache: cache) }
        }
        let first = try batch.add(prompt: texts[0], options: options, prefill: prefill(texts[0]))
        try batch.step()
        try batch.step()
        let second = try batch.add(prompt: texts[1], options: options, prefill: prefill(texts[1]))
        try batch.step()
        let third = try batch.add(prompt: texts[2], options: options, prefill: prefill(texts[2]))
        XCTAssertEqual(batch.running.count, 3)
        try batch.step()
        batch.finish(third)
        XCTAssertEqual(third.finishReason, .stopped)
        XCTAssertEqual(batch.running.count, 2)
        while !batch.running.isEmpty { try batch.step() }
        XCTAssertEqual(first.generated, alone[0])
        XCTAssertEqual(second.generated, alone[1])
        XCTAssertEqual(third.generated, Array(alone[2].prefix(2)))
        XCTAssertEqual(first.finishReason, .length)
        // EOS: the same prompt, with EOS set to its third greedy token, ends there.
        var eosOptions = options
        eosOptions.stopAtEOS = true
        let eos = alone[0][2]
        let eosBatch = DecodingBatch(decoder: model.decoder, eos: eos)
        let member = try eosBatch.add(prompt: texts[0], options: eosOptions, prefill: prefill(texts[0]))
        while !eosBatch.running.isEmpty { try eosBatch.step() }
        XCTAssertEqual(member.generated, Array(alone[0].prefix(through: try XCTUnwrap(alone[0].firstIndex(of: eos)))))
        XCTAssertEqual(member.finishReason, .endOfSequence)
        // Zero new tokens: finished before any work; beams are refused.
        var none = options
        none.maxNewTokens = 0
        XCTAssertEqual(try batch.add(prompt: texts[0], options: none, prefill: prefill(texts[0])).generated, [])
        var beams = options
        beams.numBeams = 2
        XCTAssertThrowsError(try batch.add(prompt: texts[0], options: beams, prefill: prefill(texts[0])))
    }
}
