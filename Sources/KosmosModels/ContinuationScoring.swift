import Foundation
import KosmosTensor

/// The log-likelihood of a continuation after a context, and whether greedy decoding would have
/// produced it (every continuation token the argmax at its position).
public struct ContinuationScore: Equatable, Sendable {
    public var logLikelihood: Double
    public var isGreedy: Bool
    /// Tokens the continuation came to.
    public var tokens: Int

    public init(logLikelihood: Double, isGreedy: Bool, tokens: Int) {
        self.logLikelihood = logLikelihood
        self.isGreedy = isGreedy
        self.tokens = tokens
    }
}

/// Scores continuations of contexts the way a causal language model is scored by
/// lm-evaluation-harness (`TemplateLM._encode_pair` + HFLM's `_loglikelihood_tokens`): context +
/// continuation encoded whole by the family's processor (the model's BOS stays with the context),
/// the continuation's tokens are those after the separately encoded context's length, and its
/// log-likelihood is the sum of the log-softmax at each of them. The caller moves a context's
/// trailing whitespace into its continuation first (the harness does, before encoding).
///
/// Requests that share a context (the choices of one item) share one prefill: the context runs
/// once into a KV cache, which is replicated for the continuations, and up to `batchSize` of them
/// run as one batched pass. A sequence longer than the model's positions is cut from the left as
/// HFLM cuts it (text only: an image's slots cannot be cut), and scored alone.
public struct ContinuationScorer {
    public let model: any GenerativeModel
    public let processor: any InputProcessor
    /// Continuations per batched pass.
    public var batchSize: Int

    public init(model: any GenerativeModel, processor: any InputProcessor, batchSize: Int = 8) {
        self.model = model
        self.processor = processor
        self.batchSize = Swift.max(1, batchSize)
    }

    /// Token ids of a request: the context's (what the prompt prefill reads) and the continuation's.
    public func encode(context: String, continuation: String, media: [MediaItem] = []) throws -> (context: ModelInput, continuation: [Int]) {
        try encode(prompt: try processor.input(text: context, media: media, grounding: false), context: context,
                   continuation: continuation, media: media)
    }

    /// The continuation's ids after an already encoded context.
    private func encode(prompt: ModelInput, context: String, continuation: String, media: [MediaItem]) throws -> (context: ModelInput, continuation: [Int]) {
        let whole = try processor.input(text: context + continuation, media: media, grounding: false).tokens
        let rest = Array(whole.dropFirst(prompt.tokens.count))
        guard !rest.isEmpty else {
            throw ModelError.invalidInput("the continuation \(String(reflecting: continuation)) comes to no tokens after its context")
        }
        return (prompt, rest)
    }

    /// The scores of `requests` (context, continuation), in order; every request reads `media`
    /// (the images its context's placeholders name).
    public func score(_ requests: [(context: String, continuation: String)], media: [MediaItem] = []) throws -> [ContinuationScore] {
        // Each distinct context is encoded once (an item's choices share theirs).
        var prompts: [String: ModelInput] = [:]
        let encoded = try requests.map { r -> (context: ModelInput, continuation: [Int]) in
            if prompts[r.context] == nil { prompts[r.context] = try processor.input(text: r.context, media: media, grounding: false) }
            return try encode(prompt: prompts[r.context]!, context: r.context, continuation: r.continuation, media: media)
        }
        var results = [ContinuationScore?](repeating: nil, count: requests.count)
        var groups: [[Int]: [Int]] = [:], order: [[Int]] = []
        for (i, e) in encoded.enumerated() {
            if groups[e.context.tokens] == nil { order.append(e.context.tokens) }
            groups[e.context.tokens, default: []].append(i)
        }
        let limit = model.textDecoder.maxPositions
        for key in order {
            let members = groups[key]!
            let fits = members.filter { key.count + encoded[$0].continuation.count - 1 <= limit }
            if !fits.isEmpty {
                for (i, score) in zip(fits, try model.continuationScores(of: fits.map { encoded[$0].continuation }, after: encoded[fits[0]].context, batchSize: batchSize)) {
                    results[i] = score
                }
            }
            for i in members where key.count + encoded[i].continuation.count - 1 > limit {
                results[i] = try scoreTruncated(encoded[i].context, encoded[i].continuation, limit: limit)
            }
        }
        return results.map { $0! }
    }

    /// A request longer than the model's positions, cut from the left as HFLM cuts it: the last
    /// `limit` + 1 tokens of context + continuation, all but the last fed.
    private func scoreTruncated(_ context: ModelInput, _ continuation: [Int], limit: Int) throws -> ContinuationScore {
        guard context.media.isEmpty else {
            throw ModelError.sequenceTooLong(length: context.tokens.count + continuation.count - 1, maximum: limit)
        }
        guard continuation.count <= limit else {
            throw ModelError.invalidInput("a continuation of \(continuation.count) tokens is longer than the model's \(limit) positions")
        }
        let all = context.tokens + continuation
        let kept = Array(all.suffix(limit + 1))
        return try model.continuationScores(of: [continuation], after: ModelInput(tokens: Array(kept.prefix(kept.count - continuation.count))))[0]
    }
}

extension GenerativeModel {
    /// Log-likelihood of each continuation (token ids) after `input`: the prompt (and its media)
    /// runs once into the KV cache; the cache is replicated for up to `batchSize` continuations,
    /// which run as one batched pass (each fed all but its last token, shorter ones padded at
    /// their end: causal attention keeps padding from changing earlier positions). For zero-shot
    /// classification ("The photo of the {class}"), multiple-choice tasks and other ranking. An
    /// empty continuation scores 0.
    public func continuationScores(of continuations: [[Int]], after input: ModelInput, batchSize: Int = 8) throws -> [ContinuationScore] {
        let decoder = textDecoder, vocab = decoder.vocabularySize
        for tokens in continuations {
            if let id = tokens.first(where: { $0 < 0 || $0 >= vocab }) {
                throw ModelError.invalidInput("token id \(id) is outside the vocabulary of \(vocab)")
            }
        }
        return try withoutGrad {
            let cache = decoder.makeCache(reservation: input.tokens.count)
            let firstRow = try prefill(input, cache: cache).scalars
            // Every continuation's first token is scored on this one row: normalise it once.
            let first = LogSoftmaxRow(firstRow, offset: 0, vocab: vocab)
            var scores: [ContinuationScore] = []
            var start = 0
            while start < continuations.count {
                let part = Array(continuations[start..<Swift.min(start + Swift.max(1, batchSize), continuations.count)])
                start += part.count
                let length = part.map { Swift.max(0, $0.count - 1) }.max()!
                var rows: [Float] = []
                if length > 0 {
                    let fed = part.map { c in Array(c.dropLast()) + [Int](repeating: c.first ?? 0, count: length - Swift.max(0, c.count - 1)) }
                    if let replica = cache.replicated(part.count, extra: length) {
                        rows = try decoder.continuationLogits(tokens: fed.flatMap { $0 }, batch: part.count, length: length, cache: replica).scalars
                    } else {
                        // A cache storage that cannot replicate itself: one continuation at a time.
                        for tokens in fed {
                            rows += try decoder.continuationLogits(tokens: tokens, batch: 1, length: length, cache: cache.copy()).scalars
                        }
                    }
                }
                for (b, c) in part.enumerated() {
                    var total = 0.0, greedy = true
                    for (t, token) in c.enumerated() {
                        let row = t == 0 ? first : LogSoftmaxRow(rows, offset: (b * length + t - 1) * vocab, vocab: vocab)
                        total += row.logProbability(token)
                        greedy = greedy && row.argmax == token
                    }
                    scores.append(ContinuationScore(logLikelihood: total, isGreedy: greedy, tokens: c.count))
                }
            }
            return scores
        }
    }

    /// Log-likelihood of each continuation after `input` (`continuationScores`).
    public func logLikelihoods(of continuations: [[Int]], after input: ModelInput, batchSize: Int = 8) throws -> [Double] {
        try continuationScores(of: continuations, after: input, batchSize: batchSize).map(\.logLikelihood)
    }
}

/// One row of logits ready for log-softmax lookups: its maximum, the log of its exp-sum after the
/// maximum, and its argmax (the first maximum, as torch's argmax picks it).
private struct LogSoftmaxRow {
    let logits: [Float]
    let offset: Int
    let maximum: Float
    let logSum: Double
    let argmax: Int

    init(_ logits: [Float], offset: Int, vocab: Int) {
        var best = 0
        var maximum = logits[offset]
        for j in 1..<vocab where logits[offset + j] > maximum {
            maximum = logits[offset + j]
            best = j
        }
        var sum = 0.0
        for j in 0..<vocab { sum += Foundation.exp(Double(logits[offset + j] - maximum)) }
        self.logits = logits
        self.offset = offset
        self.maximum = maximum
        logSum = Foundation.log(sum)
        argmax = best
    }

    func logProbability(_ token: Int) -> Double { Double(logits[offset + token] - maximum) - logSum }
}
