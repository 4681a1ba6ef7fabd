import Foundation
import KosmosTensor
import KosmosTokenizers
import KosmosVision

/// A kind of media a model reads between markers of its own in the interleaved sequence. A model
/// lists the kinds it takes (`GenerativeModel.mediaKinds`); video joins this list.
public enum MediaKind: String, Sendable, CaseIterable, CustomStringConvertible {
    case image
    case audio
    case video

    /// The placeholder that marks an item's place in a prompt's text.
    public var placeholder: String { "<\(rawValue)>" }
    public var description: String { rawValue }
}

/// One preprocessed media item of a prompt: for an image, pixels [3, size, size]; for audio,
/// log-mel features [mel bins, frames]; for video, frames [T, 3, size, size].
public struct MediaItem {
    public var kind: MediaKind
    public var tensor: Tensor

    public init(kind: MediaKind, tensor: Tensor) {
        self.kind = kind
        self.tensor = tensor
    }

    public static func image(_ pixels: Tensor) -> MediaItem { MediaItem(kind: .image, tensor: pixels) }
    public static func audio(_ features: Tensor) -> MediaItem { MediaItem(kind: .audio, tensor: features) }
    public static func video(_ frames: Tensor) -> MediaItem { MediaItem(kind: .video, tensor: frames) }
}

/// A prompt ready for a model: token ids, the media in the order of their placeholders, and (for
/// a family that fills fixed slots) the token positions that receive the media embeddings.
public struct ModelInput {
    public var tokens: [Int]
    public var media: [MediaItem]
    public var mediaPositions: [Int]

    public init(tokens: [Int], media: [MediaItem] = [], mediaPositions: [Int] = []) {
        self.tokens = tokens
        self.media = media
        self.mediaPositions = mediaPositions
    }
}

extension Array where Element == MediaItem {
    /// The items as images, refusing a kind the model does not take.
    func images(for model: some GenerativeModel) throws -> [Tensor] {
        try tensors(of: .image, for: model)
    }

    /// The tensors of the items of `kind`, in order, refusing any item of a kind the model does
    /// not take.
    func tensors(of kind: MediaKind, for model: some GenerativeModel) throws -> [Tensor] {
        if let item = first(where: { !model.mediaKinds.contains($0.kind) }) {
            throw ModelError.invalidInput("\(model.family.name)\(model.mediaKinds.contains(.image) && item.kind != .image ? " without \(item.kind)_config" : "") does not take \(item.kind) input (it takes \(model.mediaKinds.map(\.description).joined(separator: ", ")))")
        }
        return filter { $0.kind == kind }.map(\.tensor)
    }
}

/// What a generated id sequence says: its text and, for a grounding family, the phrases with boxes.
public struct ModelOutput: Sendable {
    public var text: String
    public var entities: [GroundedEntity]?
}

/// A loaded model of any family that reads interleaved text and media and writes text: what
/// generation, the server and eval need, with nothing family-specific. Every family implements it
/// (Kosmos-1, Kosmos-2) and registers in `ModelRegistry`.
public protocol GenerativeModel: AnyObject {
    /// The registry entry the model was loaded through.
    var family: ModelFamily { get }
    /// The text decoder (its KV caches, one step, batched steps).
    var textDecoder: any TextDecoder { get }
    var eosTokenId: Int? { get }
    /// Positions in all: prompt plus new tokens.
    var contextLength: Int { get }
    /// The media the model takes, and each image's side in pixels.
    var mediaKinds: [MediaKind] { get }
    var imageSize: Int { get }
    /// How audio files become its audio input (nil: it takes no audio).
    var audioConfiguration: AudioConfiguration? { get }
    /// How many frames of a video it reads (nil: it takes no video).
    var videoConfiguration: VideoConfiguration? { get }

    /// The family's tokenizer from a model directory (or the explicit file), as the family's
    /// Python processor builds it.
    func loadTokenizer(directory: URL, explicit: URL?) throws -> Tokenizer
    /// The family's input processor over a tokenizer.
    func processor(tokenizer: Tokenizer) throws -> any InputProcessor
    /// The prompt as the decoder reads it: its token ids and, when it has media, the embeddings of
    /// every position with the media's encodings in their places (the media encoded here, once).
    /// `prefill` and `PromptPrefill` run it through the decoder.
    func decoderInput(_ input: ModelInput) throws -> DecoderInput
    /// How image files become this model's image items: CLIP pixels of `imageSize` from the
    /// directory's preprocessor_config.json (the default), or the family's own preprocessing.
    func imageInput(directory: URL?, decodeOptions: DecodeOptions) throws -> ImageInput
}

extension GenerativeModel {
    public func imageInput(directory: URL?, decodeOptions: DecodeOptions) throws -> ImageInput {
        try ImageInput(modelDirectory: directory, imageSize: imageSize, decodeOptions: decodeOptions)
    }

    /// The logits [1, 1, vocab] after one more token.
    public func step(_ token: Int, cache: DecoderCache) throws -> Tensor {
        try textDecoder.next(token, cache: cache)
    }

    /// Several prompts decoded together: each prefilled alone, then one batched decoder step per
    /// token (beam search: one prompt at a time). `onToken(i, id)` sees prompt i's new ids; each
    /// result equals `generate` on that prompt alone.
    public func generate(_ inputs: [ModelInput], options: GenerationOptions = GenerationOptions(),
                         onToken: (Int, Int) -> Bool = { _, _ in true }) throws -> [[Int]] {
        try runBatchedGeneration(prompts: inputs.map(\.tokens), eos: eosTokenId, options: options, decoder: textDecoder,
                                 onToken: onToken, prefill: { i, cache in try prefill(inputs[i], cache: cache, chunkSize: options.prefillChunkSize) })
    }

    /// Generates after `input` with the KV cache (greedy, sampling or beam search, as `options`
    /// say); `onToken` sees each new id and returns false to stop. Returns the new ids.
    public func generate(_ input: ModelInput, options: GenerationOptions = GenerationOptions(),
                         onToken: (Int) -> Bool = { _ in true }) throws -> [Int] {
        try runGeneration(prompt: input.tokens, eos: eosTokenId, options: options, onToken: onToken,
                          makeCache: { textDecoder.makeCache(reservation: input.tokens.count + options.maxNewTokens) },
                          prefill: { cache in try prefill(input, cache: cache, chunkSize: options.prefillChunkSize) },
                          step: { next, cache in try step(next, cache: cache) })
    }
}

/// A family's input processor: user text with media placeholders (`<image>`) and preprocessed
/// media → token ids, media and positions; generated ids → text.
public protocol InputProcessor {
    var tokenizer: Tokenizer { get }
    /// Whether `grounding` means anything to this family (phrases with boxes).
    var supportsGrounding: Bool { get }
    /// The most media items of each kind one prompt takes (nil: no limit).
    func mediaLimit(_ kind: MediaKind) -> Int?
    func input(text: String, media: [MediaItem], grounding: Bool) throws -> ModelInput
    /// The text of generated ids (EOS and family markup handled); entities when `grounding`.
    func output(_ ids: [Int], grounding: Bool) -> ModelOutput
}

/// The text decoder of a family, as generation and batching drive it: caches, one new position for
/// one sequence, and one new position for each of several sequences at once. `MagnetoDecoder`
/// implements it; a family with another decoder implements it too and needs nothing else here.
public protocol TextDecoder: AnyObject {
    /// Token ids it scores (the logits' last axis).
    var vocabularySize: Int { get }
    /// The most positions a cache may hold.
    var maxPositions: Int { get }
    /// Its size in a few words, for logs ("24 layers × 2048, vocab 32002").
    var summary: String { get }
    /// An empty cache; `reservation` positions are allocated up front (0: grown as needed).
    func makeCache(reservation: Int) -> DecoderCache
    /// Logits [1, 1, vocab] after appending `token` to the sequence in `cache`.
    func next(_ token: Int, cache: DecoderCache) throws -> Tensor
    /// Logits [n, vocab] after appending `tokens[i]` to the sequence in `caches[i]`, in one pass.
    func step(tokens: [Int], caches: [DecoderCache]) throws -> Tensor
    /// Appends positions `range` of `input` to the sequence in `cache` in one pass; with `logits`,
    /// returns the logits [1, 1, vocab] after the range's last position (nil otherwise). A chunk
    /// of a prefill: only the range's activations exist, so memory follows the chunk, not the prompt.
    func extend(_ input: DecoderInput, range: Range<Int>, cache: DecoderCache, logits: Bool) throws -> Tensor?
    /// Logits [batch, length, vocab] at every new position after appending `tokens` (batch ×
    /// length ids, row by row) to the `batch` sequences in `cache` (one made by
    /// `DecoderCache.replicated`): several continuations of one prefix scored in one pass.
    func continuationLogits(tokens: [Int], batch: Int, length: Int, cache: DecoderCache) throws -> Tensor
}

extension MagnetoDecoder: TextDecoder {
    public var vocabularySize: Int { configuration.vocabSize }
    public var maxPositions: Int { configuration.maxTargetPositions }
    public var summary: String {
        "\(configuration.decoderLayers) layers × \(configuration.decoderEmbedDim), vocab \(configuration.vocabSize)"
    }

    public func next(_ token: Int, cache: DecoderCache) throws -> Tensor {
        try self(tokens: [token], batch: 1, length: 1, cache: cache)
    }

    public func continuationLogits(tokens: [Int], batch: Int, length: Int, cache: DecoderCache) throws -> Tensor {
        try self(tokens: tokens, batch: batch, length: length, cache: cache)
    }

    public func extend(_ input: DecoderInput, range: Range<Int>, cache: DecoderCache, logits: Bool) throws -> Tensor? {
        guard !range.isEmpty, range.lowerBound >= 0, range.upperBound <= input.tokens.count else {
            throw ModelError.invalidInput("positions \(range) of a \(input.tokens.count)-token prompt")
        }
        let embeddings = input.embeddings.map {
            range.count == $0.shape[1] ? $0 : $0.narrowed(axis: 1, start: range.lowerBound, length: range.count)
        }
        let hidden = try features(tokens: Array(input.tokens[range]), batch: 1, length: range.count,
                                  tokenEmbeddings: embeddings, cache: cache)
        guard logits else { return nil }
        return outputProjection(range.count == 1 ? hidden : hidden.narrowed(axis: 1, start: range.count - 1, length: 1))
    }
}
