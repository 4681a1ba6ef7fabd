import Foundation
import KosmosTensor

/// A prompt as a decoder reads it: token ids and, when media take some positions, the input
/// embeddings of every position ([1, length, dim], the media's encodings in their places, before
/// any scaling the decoder applies). Made once per prompt by `GenerativeModel.decoderInput`.
public struct DecoderInput {
    public let tokens: [Int]
    public let embeddings: Tensor?

    public init(tokens: [Int], embeddings: Tensor? = nil) {
        self.tokens = tokens
        self.embeddings = embeddings
    }
}

/// A prompt being run into a KV cache a chunk of positions at a time: each `advance()` appends the
/// next `chunkSize` positions, and the last one returns the logits after the prompt. Between
/// chunks the owner may do other work with the model (the server decodes other requests), so a
/// long prompt neither stalls the others nor needs activations for more than one chunk. The chunks
/// attend to everything before them through the cache, so the result equals a one-shot prefill to
/// float32 rounding (tests: 1e-5).
public final class PromptPrefill {
    /// Positions per chunk when no size is given: big enough that a chunk's products run at full
    /// speed, small enough that a chunk's activations (chunk × the FFN width) stay small.
    public static let defaultChunkSize = 512

    public let decoder: any TextDecoder
    public let input: DecoderInput
    public let cache: DecoderCache
    public let chunkSize: Int
    /// Prompt positions already in the cache.
    public private(set) var position = 0

    /// Checks the prompt against the decoder's positions before any work is done.
    public init(decoder: any TextDecoder, input: DecoderInput, cache: DecoderCache, chunkSize: Int = PromptPrefill.defaultChunkSize) throws {
        try Self.check(length: input.tokens.count, cache: cache, decoder: decoder, chunkSize: chunkSize)
        self.decoder = decoder
        self.input = input
        self.cache = cache
        self.chunkSize = chunkSize
    }

    /// Refuses a chunk size below 1, an empty prompt, and one that does not fit the decoder's
    /// positions after what `cache` holds (both numbers named).
    static func check(length: Int, cache: DecoderCache, decoder: any TextDecoder, chunkSize: Int) throws {
        guard chunkSize >= 1 else { throw ModelError.invalidInput("a prefill chunk size must be at least 1 position, not \(chunkSize)") }
        guard length > 0 else { throw ModelError.invalidInput("an empty prompt") }
        guard cache.length + length <= decoder.maxPositions else {
            throw ModelError.sequenceTooLong(length: cache.length + length, maximum: decoder.maxPositions)
        }
    }

    public var length: Int { input.tokens.count }
    public var isFinished: Bool { position == length }

    /// Runs the next chunk (of at most `limit` positions, when less than the chunk size); returns
    /// the logits [1, 1, vocab] after the prompt's last position when this chunk was the last, nil before.
    @discardableResult
    public func advance(limit: Int = .max) throws -> Tensor? {
        precondition(!isFinished, "the prompt is already prefilled")
        precondition(limit >= 1, "a chunk of at least one position")
        let end = Swift.min(length, position + Swift.min(chunkSize, limit))
        let logits = try withoutGrad { try decoder.extend(input, range: position..<end, cache: cache, logits: end == length) }
        position = end
        return logits
    }

    /// Runs every remaining chunk: the logits [1, 1, vocab] after the prompt.
    public func run() throws -> Tensor {
        while true {
            if let logits = try advance() { return logits }
        }
    }
}

extension GenerativeModel {
    /// Runs the prompt (its media encoded) into `cache` in chunks of `chunkSize` positions: the
    /// logits [1, 1, vocab] after its last position. Memory follows the chunk, not the prompt's
    /// length (no logits for the other positions, attention without a scores matrix).
    public func prefill(_ input: ModelInput, cache: DecoderCache, chunkSize: Int = PromptPrefill.defaultChunkSize) throws -> Tensor {
        try startPrefill(input, cache: cache, chunkSize: chunkSize).run()
    }

    /// A prefill of `input` into `cache` to be advanced a chunk at a time (`PromptPrefill`). The
    /// prompt's length is checked against the model's positions first, then its media are encoded.
    public func startPrefill(_ input: ModelInput, cache: DecoderCache, chunkSize: Int = PromptPrefill.defaultChunkSize) throws -> PromptPrefill {
        // Checked before the media are encoded (the prefill checks again, cheaply).
        try PromptPrefill.check(length: input.tokens.count, cache: cache, decoder: textDecoder, chunkSize: chunkSize)
        let decoder = textDecoder
        return try PromptPrefill(decoder: decoder, input: try decoderInput(input), cache: cache, chunkSize: chunkSize)
    }
}
