import Foundation
import KosmosTensor

/// How `generate` picks tokens.
public struct GenerationOptions: Sendable, Equatable {
    public var maxNewTokens = 32
    /// 0 is greedy decoding; otherwise logits are divided by it before sampling.
    public var temperature: Float = 0
    /// Sample among the k most likely tokens only.
    public var topK: Int? = nil
    /// Sample among the most likely tokens whose probabilities add up to at least p (nucleus).
    public var topP: Float? = nil
    /// > 1 discourages tokens already in the sequence (prompt included), as transformers'
    /// RepetitionPenaltyLogitsProcessor: positive logits divided, negative multiplied.
    public var repetitionPenalty: Float = 1
    /// Never repeat an n-gram of this size already in the sequence (0: off), as transformers' no_repeat_ngram_size.
    public var noRepeatNgramSize = 0
    public var seed: UInt64 = 0
    public var stopAtEOS = true

    public init() {}

    public func validate() throws {
        func fail(_ what: String) -> ModelError { .invalidInput("generation option \(what)") }
        guard maxNewTokens >= 0 else { throw fail("max new tokens must not be negative") }
        guard temperature >= 0, temperature.isFinite else { throw fail("temperature must be ≥ 0") }
        if let topK, topK < 1 { throw fail("top-k must be at least 1") }
        if let topP, !(topP > 0 && topP <= 1) { throw fail("top-p must be in (0, 1]") }
        guard repetitionPenalty > 0, repetitionPenalty.isFinite else { throw fail("repetition penalty must be positive") }
        guard noRepeatNgramSize >= 0 else { throw fail("no-repeat n-gram size must not be negative") }
    }
}

/// Picks the next token from one row of logits.
public struct TokenSampler {
    public let options: GenerationOptions
    let generator: RandomGenerator

    public init(options: GenerationOptions) {
        self.options = options
        generator = RandomGenerator(seed: options.seed)
    }

    /// The next token after `history` (the whole sequence so far, prompt included).
    public func next(logits row: [Float], history: [Int]) -> Int {
        var logits = row
        if options.repetitionPenalty != 1 {
            for id in Set(history) where id >= 0 && id < logits.count {
                logits[id] = logits[id] > 0 ? logits[id] / options.repetitionPenalty : logits[id] * options.repetitionPenalty
            }
        }
        let n = options.noRepeatNgramSize
        if n > 0 && history.count >= n {
            // Tokens that would complete an n-gram seen before: the last n−1 tokens as a prefix.
            let prefix = Array(history.suffix(n - 1))
            for start in 0...(history.count - n) where Array(history[start..<(start + n - 1)]) == prefix {
                let banned = history[start + n - 1]
                if banned >= 0 && banned < logits.count { logits[banned] = -.infinity }
            }
        }
        if options.temperature == 0 {
            return Self.argmax(logits)
        }
        var candidates = logits.indices.map { (id: $0, logit: logits[$0] / options.temperature) }.filter { $0.logit > -.infinity }
        guard !candidates.isEmpty else { return Self.argmax(logits) }
        candidates.sort { $0.logit > $1.logit || ($0.logit == $1.logit && $0.id < $1.id) }
        if let k = options.topK, k < candidates.count { candidates.removeLast(candidates.count - k) }
        let maximum = candidates[0].logit
        var probabilities = candidates.map { Double(Foundation.exp($0.logit - maximum)) }
        var total = probabilities.reduce(0, +)
        if let p = options.topP, p < 1 {
            // Keep the most likely tokens until their mass reaches p (at least one).
            var mass = 0.0, keep = 0
            for probability in probabilities {
                keep += 1
                mass += probability / total
                if mass >= Double(p) { break }
            }
            candidates.removeLast(candidates.count - keep)
            probabilities.removeLast(probabilities.count - keep)
            total = probabilities.reduce(0, +)
        }
        var u = generator.nextDouble() * total
        for (candidate, probability) in zip(candidates, probabilities) {
            u -= probability
            if u < 0 { return candidate.id }
        }
        return candidates[candidates.count - 1].id
    }

    static func argmax(_ values: [Float]) -> Int {
        var best = 0
        for i in values.indices where values[i] > values[best] { best = i }
        return best
    }
}

extension KosmosModel {
    /// Continues `sequence` (its images encoded once, in the prefill) one token at a time with the
    /// decoder's KV cache. `onToken` sees each new id as it is chosen and returns false to stop.
    /// Returns the new ids (EOS included when it ended the text).
    public func generate(_ sequence: KosmosSequence, options: GenerationOptions = GenerationOptions(),
                         onToken: (Int) -> Bool = { _ in true }) throws -> [Int] {
        let batch = try makeBatch([sequence])
        let cache = decoder.makeCache()
        return try runGeneration(prompt: sequence.tokens, eos: configuration.eosTokenId, options: options, onToken: onToken,
                                 prefill: { try logits(batch, cache: cache) },
                                 step: { next in try decoder(tokens: [next], batch: 1, length: 1, cache: cache) })
    }
}

/// The decoding loop shared by the models: `prefill` returns logits [1, length, vocab] for the
/// prompt (filling a cache), `step` the logits [1, 1, vocab] after one more token.
func runGeneration(prompt: [Int], eos: Int?, options: GenerationOptions, onToken: (Int) -> Bool,
                   prefill: () throws -> Tensor, step: (Int) throws -> Tensor) throws -> [Int] {
    try options.validate()
    let sampler = TokenSampler(options: options)
    var history = prompt
    var generated: [Int] = []
    try withoutGrad {
        let first = try prefill()
        var row = first.narrowed(axis: 1, start: first.shape[1] - 1, length: 1).scalars
        while generated.count < options.maxNewTokens {
            let next = sampler.next(logits: row, history: history)
            generated.append(next)
            history.append(next)
            if !onToken(next) { break }
            if options.stopAtEOS, next == eos { break }
            if generated.count == options.maxNewTokens { break }
            row = try step(next).scalars
        }
    }
    return generated
}
