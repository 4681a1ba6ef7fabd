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
    /// > 1: beam search with this many beams (greedy scoring; sampling options are ignored), as
    /// transformers' beam search with early_stopping False.
    public var numBeams = 1
    /// Beam scores are divided by (new tokens)^lengthPenalty when a hypothesis finishes.
    public var lengthPenalty: Float = 1
    /// Prompt positions per prefill chunk (`PromptPrefill`): the prompt's activations exist for one
    /// chunk at a time; the logits equal a one-shot prefill's to rounding.
    public var prefillChunkSize = PromptPrefill.defaultChunkSize

    public init() {}

    public func validate() throws {
        func fail(_ what: String) -> ModelError { .invalidInput("generation option \(what)") }
        guard maxNewTokens >= 0 else { throw fail("max new tokens must not be negative") }
        guard temperature >= 0, temperature.isFinite else { throw fail("temperature must be ≥ 0") }
        if let topK, topK < 1 { throw fail("top-k must be at least 1") }
        if let topP, !(topP > 0 && topP <= 1) { throw fail("top-p must be in (0, 1]") }
        guard repetitionPenalty > 0, repetitionPenalty.isFinite else { throw fail("repetition penalty must be positive") }
        guard noRepeatNgramSize >= 0 else { throw fail("no-repeat n-gram size must not be negative") }
        guard numBeams >= 1 && numBeams <= 64 else { throw fail("beams must be between 1 and 64") }
        guard lengthPenalty.isFinite else { throw fail("length penalty must be finite") }
        guard prefillChunkSize >= 1 else { throw fail("prefill chunk size must be at least 1 position, not \(prefillChunkSize)") }
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
        process(&logits, history: history)
        return pick(logits)
    }

    /// Repetition penalty and n-gram bans, as transformers' logits processors apply them.
    func process(_ logits: inout [Float], history: [Int]) {
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
    }

    func pick(_ logits: [Float]) -> Int {
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

    public static func argmax(_ values: [Float]) -> Int {
        var best = 0
        for i in values.indices where values[i] > values[best] { best = i }
        return best
    }
}

extension KosmosModel {
    /// Continues `sequence` (its images encoded once, in the prefill) one token at a time with the
    /// decoder's KV cache. `onToken` sees each new id as it is chosen and returns false to stop
    /// (with beam search it sees the final tokens at the end). Returns the new ids (EOS included
    /// when it ended the text).
    public func generate(_ sequence: KosmosSequence, options: GenerationOptions = GenerationOptions(),
                         onToken: (Int) -> Bool = { _ in true }) throws -> [Int] {
        try generate(ModelInput(sequence), options: options, onToken: onToken)
    }
}

/// The decoding loop shared by the models: `prefill` returns logits [1, length, vocab] for the
/// prompt (filling a cache), `step` the logits [1, 1, vocab] after one more token.
public func runGeneration(prompt: [Int], eos: Int?, options: GenerationOptions, onToken: (Int) -> Bool,
                   makeCache: () -> DecoderCache,
                   prefill: (DecoderCache) throws -> Tensor, step: (Int, DecoderCache) throws -> Tensor) throws -> [Int] {
    try options.validate()
    if options.numBeams > 1 {
        let tokens = try beamSearch(prompt: prompt, eos: eos, options: options, makeCache: makeCache, prefill: prefill, step: step)
        for id in tokens where !onToken(id) { break }
        return tokens
    }
    let sampler = TokenSampler(options: options)
    let cache = makeCache()
    var history = prompt
    var generated: [Int] = []
    try withoutGrad {
        let first = try prefill(cache)
        var row = first.narrowed(axis: 1, start: first.shape[1] - 1, length: 1).scalars
        while generated.count < options.maxNewTokens {
            let next = sampler.next(logits: row, history: history)
            generated.append(next)
            history.append(next)
            if !onToken(next) { break }
            if options.stopAtEOS, next == eos { break }
            if generated.count == options.maxNewTokens { break }
            row = try step(next, cache).scalars
        }
    }
    return generated
}

/// Beam search as transformers 5 runs it (generation/utils.py `_beam_search`, early_stopping
/// False): log-softmax scores accumulated per beam, the top 2·beams continuations kept, those ending
/// in EOS (or reaching the length limit) finished with score / (new tokens)^length_penalty, the best
/// `beams` unfinished ones continued, and the early-stop heuristic on the best running score.
func beamSearch(prompt: [Int], eos: Int?, options: GenerationOptions, makeCache: () -> DecoderCache,
                prefill: (DecoderCache) throws -> Tensor, step: (Int, DecoderCache) throws -> Tensor) throws -> [Int] {
    struct Beam { var tokens: [Int]; var score: Float; var cache: DecoderCache; var logits: [Float] }
    let beams = options.numBeams
    let processor = TokenSampler(options: options)
    let maxLength = prompt.count + options.maxNewTokens
    let beamsToKeep = Swift.max(2, 1 + (eos == nil || !options.stopAtEOS ? 0 : 1)) * beams
    let penalty = Double(options.lengthPenalty)
    var finished: [(tokens: [Int], score: Float, done: Bool)] = Array(repeating: ([], -1e9, false), count: beams)
    return try withoutGrad {
        let cache = makeCache()
        let first = try prefill(cache)
        var running = [Beam(tokens: prompt, score: 0,
                            cache: cache, logits: first.narrowed(axis: 1, start: first.shape[1] - 1, length: 1).scalars)]
        var improvementPossible = true
        var currentLength = prompt.count
        while improvementPossible && currentLength < maxLength {
            // Accumulated log-probabilities of every continuation of every running beam.
            var candidates: [(score: Float, beam: Int, token: Int)] = []
            for (b, beam) in running.enumerated() {
                var scores = Tensor(shape: [beam.logits.count], scalars: beam.logits).logSoftmax().scalars
                processor.process(&scores, history: beam.tokens)
                for (v, s) in scores.enumerated() where s > -.infinity { candidates.append((s + beam.score, b, v)) }
            }
            candidates.sort { $0.score > $1.score || ($0.score == $1.score && ($0.beam, $0.token) < ($1.beam, $1.token)) }
            let top = Array(candidates.prefix(beamsToKeep))
            let hits = top.map { c in (options.stopAtEOS && c.token == eos) || currentLength + 1 >= maxLength }
            // Finished hypotheses: only among the first `beams` candidates, normalised by length.
            let newTokens = Double(currentLength + 1 - prompt.count)
            var merged = finished
            for (i, c) in top.enumerated() {
                var score = Float(Double(c.score) / Foundation.pow(newTokens, penalty))
                if !improvementPossible { score += -1e9 }
                let justFinished = hits[i] && i < beams
                if !justFinished { score += -1e9 }
                merged.append((running[c.beam].tokens + [c.token], score, justFinished))
            }
            // Stable: equal scores keep their order, as torch.topk over a merged list does in practice.
            let mergedOrder = merged.indices.sorted { a, b in
                merged[a].score > merged[b].score || (merged[a].score == merged[b].score && a < b)
            }
            finished = mergedOrder.prefix(beams).map { merged[$0] }
            // The best unfinished continuations run on (a finished one only fills a gap, at −1e9).
            var runOn: [(score: Float, beam: Int, token: Int)] = []
            for (i, c) in top.enumerated() {
                let adjusted: Float = hits[i] ? c.score - 1e9 : c.score
                runOn.append((adjusted, c.beam, c.token))
            }
            let runOrder = runOn.indices.sorted { a, b in
                runOn[a].score > runOn[b].score || (runOn[a].score == runOn[b].score && a < b)
            }
            let next = runOrder.prefix(beams).map { runOn[$0] }
            currentLength += 1
            if hits.allSatisfy({ $0 }) { break }
            var nextRunning: [Beam] = []
            for c in next {
                let parent = running[c.beam]
                let cache = parent.cache.copy()
                let logits = currentLength < maxLength ? try step(c.token, cache).scalars : []
                nextRunning.append(Beam(tokens: parent.tokens + [c.token], score: c.score, cache: cache, logits: logits))
            }
            running = nextRunning
            // Early-stop heuristic: can the best running beam still beat the worst finished one?
            let best = Double(running[0].score) / Foundation.pow(Double(currentLength - prompt.count), penalty)
            let worstFinished = finished.map(\.score).min() ?? -1e9
            improvementPossible = improvementPossible && finished.contains { slot in
                best > Double(slot.done ? worstFinished : -1e9)
            }
        }
        guard let best = finished.first, best.done else {
            return Array(running[0].tokens.dropFirst(prompt.count))
        }
        return Array(best.tokens.dropFirst(prompt.count))
    }
}

extension KosmosModel {
    /// Perplexity of text token sequences: exp(total next-token negative log-likelihood / number of
    /// predicted tokens), each sequence run on its own. Returns the perplexity and the token count.
    public func perplexity(of sequences: [[Int]]) throws -> (perplexity: Double, tokens: Int) {
        var totalLoss = 0.0, count = 0
        try withoutGrad {
            for tokens in sequences where tokens.count >= 2 {
                let batch = try makeBatch([KosmosSequence(tokens: tokens)])
                let loss = try logits(batch).reshaped([-1, configuration.vocabSize])
                    .crossEntropy(targets: batch.labels, reduction: .sum).item()
                totalLoss += Double(loss)
                count += batch.labels.filter { $0 != -100 }.count
            }
        }
        guard count > 0 else { throw ModelError.invalidInput("no text with at least two tokens to measure perplexity on") }
        return (Foundation.exp(totalLoss / Double(count)), count)
    }
}

extension KosmosModel {
    /// Log-likelihood of each continuation after `sequence` (`GenerativeModel.logLikelihoods`).
    public func logLikelihoods(of continuations: [[Int]], after sequence: KosmosSequence) throws -> [Double] {
        try logLikelihoods(of: continuations, after: ModelInput(tokens: sequence.tokens, media: sequence.images.map(MediaItem.image)))
    }
}

/// Sequences decoded together, one token each per step, in one decoder pass (`MagnetoDecoder.step`):
/// every member has its own KV cache, sampler and options; a member joins after its prompt is
/// prefilled on its own, and leaves the batch when it finishes (EOS, its token limit, the model's
/// context, or `finish(_:)`), so members can come and go between steps (continuous batching).
/// Each member's tokens equal what `runGeneration` picks for it alone. Not thread-safe: one owner
/// drives it, as it drives the model.
public final class DecodingBatch {
    public enum FinishReason: String, Sendable {
        /// The model produced its end-of-sequence token.
        case endOfSequence = "stop"
        /// `maxNewTokens` new tokens, or the model's context is full.
        case length
        /// The owner ended it (`finish(_:)`): a stop string, a cancelled request.
        case stopped
    }

    public final class Member {
        public let promptLength: Int
        public let options: GenerationOptions
        /// New token ids so far (EOS included when it ended the sequence).
        public fileprivate(set) var generated: [Int] = []
        /// Set when the member has left the batch.
        public fileprivate(set) var finishReason: FinishReason?
        public var isFinished: Bool { finishReason != nil }
        /// Whatever the owner wants to keep with the sequence (a request, an index).
        public var userInfo: Any?
        let sampler: TokenSampler
        /// Its keys and values (the owner prefills it between `makeMember` and `join`).
        public let cache: DecoderCache
        fileprivate var history: [Int]

        init(prompt: [Int], options: GenerationOptions, cache: DecoderCache) {
            promptLength = prompt.count
            self.options = options
            sampler = TokenSampler(options: options)
            history = prompt
            self.cache = cache
        }

        /// The positions the member's cache holds.
        public var cachedLength: Int { cache.length }
    }

    public let decoder: any TextDecoder
    public let eos: Int?
    /// Members still decoding, in the order they joined.
    public private(set) var running: [Member] = []

    public init(decoder: any TextDecoder, eos: Int?) {
        self.decoder = decoder
        self.eos = eos
    }

    /// Prefills `prompt` on its own into a fresh cache (`prefill` returns logits [1, length, vocab]
    /// for it, or [1, 1, vocab] for its last position), picks the first new token, and adds the
    /// sequence to the batch unless that already finished it. Beam search is not batched (numBeams must be 1).
    @discardableResult
    public func add(prompt: [Int], options: GenerationOptions, prefill: (DecoderCache) throws -> Tensor) throws -> Member {
        let member = try makeMember(prompt: prompt, options: options)
        if member.isFinished { return member }
        try join(member, logits: try withoutGrad { try prefill(member.cache) })
        return member
    }

    /// A member for `prompt` with an empty cache (sized for the prompt and its new tokens) that is
    /// not running yet: the owner prefills `member.cache` (at its own pace: `PromptPrefill`), then
    /// `join`s it. A member allowed no new tokens comes back finished.
    public func makeMember(prompt: [Int], options: GenerationOptions) throws -> Member {
        try options.validate()
        guard options.numBeams == 1 else {
            throw ModelError.invalidInput("beam search is not batched; generate with several beams one prompt at a time")
        }
        let member = Member(prompt: prompt, options: options, cache: decoder.makeCache(reservation: prompt.count + options.maxNewTokens))
        if options.maxNewTokens == 0 { member.finishReason = .length }
        return member
    }

    /// Starts a prefilled member: its first token from the prefill's logits (the last position of
    /// [1, length, vocab]), then it runs with the batch unless that token finished it.
    public func join(_ member: Member, logits: Tensor) throws {
        guard logits.rank == 3, logits.shape[0] == 1, logits.shape[1] >= 1 else {
            throw ModelError.invalidInput("prefill returned logits of shape \(logits.shape); expected [1, length, vocab]")
        }
        accept(member, logits: logits.narrowed(axis: 1, start: logits.shape[1] - 1, length: 1).scalars)
        if !member.isFinished { running.append(member) }
    }

    /// Ends a member now; it leaves the batch before the next step.
    public func finish(_ member: Member, reason: FinishReason = .stopped) {
        guard !member.isFinished else { return }
        member.finishReason = reason
        running.removeAll { $0 === member }
    }

    /// One decoder pass over every running member: each gets its next token (the last of its
    /// `generated`). Returns the members stepped; those that finished have left `running`.
    @discardableResult
    public func step() throws -> [Member] {
        // A member whose cache is at the model's context cannot take one more position.
        for member in running where member.cache.length >= decoder.maxPositions {
            finish(member, reason: .length)
        }
        let members = running
        guard !members.isEmpty else { return [] }
        let logits = try withoutGrad {
            try decoder.step(tokens: members.map { $0.generated[$0.generated.count - 1] }, caches: members.map(\.cache))
        }
        let vocabulary = logits.shape[1]
        let scalars = logits.scalars
        for (i, member) in members.enumerated() {
            accept(member, logits: Array(scalars[(i * vocabulary)..<((i + 1) * vocabulary)]))
            if member.isFinished { running.removeAll { $0 === member } }
        }
        return members
    }

    /// Picks the member's next token from its logits row, as `runGeneration` does.
    private func accept(_ member: Member, logits row: [Float]) {
        let next = member.sampler.next(logits: row, history: member.history)
        member.generated.append(next)
        member.history.append(next)
        if member.options.stopAtEOS, next == eos {
            member.finishReason = .endOfSequence
        } else if member.generated.count >= member.options.maxNewTokens {
            member.finishReason = .length
        }
    }
}

/// Generates for several prompts at once: each prompt is prefilled alone (`prefill(i, cache)`
/// returns logits [1, length, vocab] for prompt i), then all advance together, one batched
/// decoder step per token. `onToken(i, id)` sees each new id of prompt i and returns false to stop
/// that prompt. Beam search runs one prompt at a time. Returns the new ids per prompt, in order.
func runBatchedGeneration(prompts: [[Int]], eos: Int?, options: GenerationOptions, decoder: any TextDecoder,
                          onToken: (Int, Int) -> Bool,
                          prefill: (Int, DecoderCache) throws -> Tensor) throws -> [[Int]] {
    try options.validate()
    if options.numBeams > 1 {
        return try prompts.indices.map { i in
            try runGeneration(prompt: prompts[i], eos: eos, options: options, onToken: { onToken(i, $0) },
                              makeCache: { decoder.makeCache(reservation: prompts[i].count + options.maxNewTokens) }, prefill: { try prefill(i, $0) },
                              step: { next, cache in try decoder.next(next, cache: cache) })
        }
    }
    let batch = DecodingBatch(decoder: decoder, eos: eos)
    var members: [DecodingBatch.Member] = []
    for (i, prompt) in prompts.enumerated() {
        let member = try batch.add(prompt: prompt, options: options) { try prefill(i, $0) }
        member.userInfo = i
        members.append(member)
        if let id = member.generated.last, !onToken(i, id) { batch.finish(member) }
    }
    while !batch.running.isEmpty {
        for member in try batch.step() {
            guard let i = member.userInfo as? Int, let id = member.generated.last else { continue }
            if !onToken(i, id) { batch.finish(member) }
        }
    }
    return members.map(\.generated)
}

extension KosmosModel {
    /// Generates for several sequences together (see `runBatchedGeneration`): each is prefilled
    /// (its images encoded) alone, then all decode in one batched step per token. The result for
    /// each sequence equals `generate(_:options:onToken:)` on it alone.
    public func generate(_ sequences: [KosmosSequence], options: GenerationOptions = GenerationOptions(),
                         onToken: (Int, Int) -> Bool = { _, _ in true }) throws -> [[Int]] {
        try generate(sequences.map(ModelInput.init), options: options, onToken: onToken)
    }
}
