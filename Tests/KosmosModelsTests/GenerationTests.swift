import Foundation
import XCTest
import KosmosNN
import KosmosTensor
@testable import KosmosModels

final class GenerationTests: XCTestCase {
    func tinyModel() throws -> KosmosModel {
        try KosmosModel(configuration: KosmosParityTests.tinyConfiguration(), generator: RandomGenerator(seed: 11))
    }

    func sequence() -> KosmosSequence {
        KosmosSequence(tokens: [1, 5, 38, 0, 0, 0, 0, 39, 6],
                       images: [Tensor.randn([3, 16, 16], generator: RandomGenerator(seed: 12))])
    }

    /// Greedy decoding with the cache picks, at every step, the argmax of a full forward pass over
    /// the whole sequence so far (images included).
    func testGreedyWithCacheEqualsArgmaxOfFullPasses() throws {
        let model = try tinyModel()
        model.eval()
        var options = GenerationOptions()
        options.maxNewTokens = 6
        options.stopAtEOS = false
        let generated = try model.generate(sequence(), options: options)
        XCTAssertEqual(generated.count, 6)
        var tokens = sequence().tokens
        for id in generated {
            let batch = try model.makeBatch([KosmosSequence(tokens: tokens, images: sequence().images)])
            let logits = try withoutGrad { try model.logits(batch) }
            XCTAssertEqual(TokenSampler.argmax(Array(logits.scalars.suffix(40))), id)
            tokens.append(id)
        }
    }

    func testSamplingIsSeededAndTopKOneIsGreedy() throws {
        let model = try tinyModel()
        model.eval()
        var options = GenerationOptions()
        options.maxNewTokens = 8
        options.stopAtEOS = false
        options.temperature = 1.5
        options.seed = 7
        let a = try model.generate(sequence(), options: options)
        let b = try model.generate(sequence(), options: options)
        XCTAssertEqual(a, b)
        options.topK = 1
        var greedy = options
        greedy.temperature = 0
        greedy.topK = nil
        XCTAssertEqual(try model.generate(sequence(), options: options), try model.generate(sequence(), options: greedy))
    }

    func testStopsAtEOSAndWhenTheCallbackSaysSo() throws {
        let model = try tinyModel()
        var options = GenerationOptions()
        options.maxNewTokens = 5
        options.stopAtEOS = false
        var seen = 0
        let out = try model.generate(sequence(), options: options) { _ in seen += 1; return seen < 2 }
        XCTAssertEqual(out.count, 2)
        // The same weights with EOS set to the first greedy token: generation ends right there.
        let first = try XCTUnwrap(out.first)
        var configuration = KosmosParityTests.tinyConfiguration()
        configuration.eosTokenId = first
        let stopping = try KosmosModel(configuration: configuration, generator: RandomGenerator(seed: 11))
        options.stopAtEOS = true
        XCTAssertEqual(try stopping.generate(sequence(), options: options), [first])
    }

    func testRepetitionPenaltyAndNoRepeatNgrams() {
        var options = GenerationOptions()
        options.repetitionPenalty = 2
        // Token 2 (logit 3) is in the history: 3/2 = 1.5 < token 1's 2.
        XCTAssertEqual(TokenSampler(options: options).next(logits: [0, 2, 3], history: [2]), 1)
        // Negative logits are multiplied: −1 × 2 = −2 < token 0's −1.5.
        XCTAssertEqual(TokenSampler(options: options).next(logits: [-1.5, -1, -3], history: [1]), 0)
        options = GenerationOptions()
        options.noRepeatNgramSize = 2
        // History "4 7 … 4": the bigram (4, 7) exists, so 7 is banned after 4.
        XCTAssertEqual(TokenSampler(options: options).next(logits: [0, 0, 0, 0, 0, 0, 0, 9, 1], history: [4, 7, 3, 4]), 8)
    }

    func testTopPKeepsTheNucleus() {
        var options = GenerationOptions()
        options.temperature = 1
        options.topP = 0.5
        // Token 3 holds e^5/(e^5 + 3) ≈ 98% of the mass: the nucleus for p = 0.5 is token 3 alone.
        for seed in 0..<20 {
            options.seed = UInt64(seed)
            XCTAssertEqual(TokenSampler(options: options).next(logits: [0, 0, 0, 5], history: []), 3)
        }
    }

    /// Log-probability of `continuation` after the prompt (prefill, then the cache step by step,
    /// which equals a full pass — IncrementalDecodingTests — and accepts any token ids).
    func logProbability(_ model: KosmosModel, _ continuation: [Int]) throws -> Double {
        let batch = try model.makeBatch([sequence()])
        let cache = model.decoder.makeCache()
        return try withoutGrad {
            var row = try model.logits(batch, cache: cache).narrowed(axis: 1, start: batch.length - 1, length: 1)
            var total = 0.0
            for id in continuation {
                total += Double(row.logSoftmax().scalars[id])
                row = try model.decoder(tokens: [id], batch: 1, length: 1, cache: cache)
            }
            return total
        }
    }

    /// With no EOS, beam search returns a continuation at least as likely as greedy's, and with
    /// enough beams for two tokens (40 × 40 candidates fit in 40 beams) it finds the best pair.
    func testBeamSearchFindsLikelierContinuations() throws {
        let model = try tinyModel()
        model.eval()
        var options = GenerationOptions()
        options.maxNewTokens = 2
        options.stopAtEOS = false
        let greedy = try model.generate(sequence(), options: options)
        options.numBeams = 40
        let beam = try model.generate(sequence(), options: options)
        XCTAssertEqual(beam.count, 2)
        let beamScore = try logProbability(model, beam)
        XCTAssertGreaterThanOrEqual(beamScore, try logProbability(model, greedy) - 1e-5)
        var best = -Double.infinity
        for a in 0..<40 { for b in [0, 1, 5, 9, 17, 33, 39] { best = max(best, try logProbability(model, [a, b])) } }
        XCTAssertGreaterThanOrEqual(beamScore, best - 1e-5)
    }

    /// Perplexity pools the negative log-likelihood over all predicted tokens of all texts.
    func testPerplexityIsTheExponentOfTheMeanTokenLoss() throws {
        let model = try tinyModel()
        model.eval()
        let texts = [[1, 5, 6, 7], [1, 9, 10], [3]]
        let (perplexity, tokens) = try model.perplexity(of: texts)
        XCTAssertEqual(tokens, 5)
        var total = 0.0
        for text in texts.prefix(2) {
            let batch = try model.makeBatch([KosmosSequence(tokens: text)])
            total += Double(try withoutGrad { try model.loss(batch) }.item()) * Double(text.count - 1)
        }
        XCTAssertEqual(perplexity, Foundation.exp(total / 5), accuracy: 1e-4 * perplexity)
        XCTAssertThrowsError(try model.perplexity(of: [[1]]))
    }

    /// Scoring continuations from one shared prefill equals scoring each with its own cache.
    func testLogLikelihoodsOfContinuations() throws {
        let model = try tinyModel()
        model.eval()
        let candidates = [[5, 6], [7], [9, 10, 11]]
        let scores = try model.logLikelihoods(of: candidates, after: sequence())
        XCTAssertEqual(scores.count, 3)
        for (candidate, score) in zip(candidates, scores) {
            XCTAssertEqual(score, try logProbability(model, candidate), accuracy: 1e-4)
        }
    }

    func testInvalidOptionsAreErrors() throws {
        let model = try tinyModel()
        var options = GenerationOptions()
        options.topP = 1.5
        XCTAssertThrowsError(try model.generate(sequence(), options: options))
        options = GenerationOptions()
        options.temperature = -1
        XCTAssertThrowsError(try model.generate(sequence(), options: options))
    }
}
