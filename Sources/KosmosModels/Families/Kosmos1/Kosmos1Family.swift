import Foundation
import KosmosAudio
import KosmosTensor
import KosmosTokenizers

/// Kosmos-1 (this project's format, model_type "kosmos-1"): CLIP ViT → perceiver resampler →
/// Magneto decoder; `<image>` placeholders anywhere in the text, any number of images.
public enum Kosmos1Family {
    public static let entry = ModelFamily(
        name: "Kosmos-1", modelTypes: ["kosmos-1"], architectures: ["KosmosModel"],
        load: { try KosmosModel.load(directory: $0) },
        visionTower: { try KosmosModel.load(directory: $0).visionModel },
        describe: describe)

    static func describe(_ data: Data, file: URL) throws -> [String] {
        let c = try ModelDirectory.decode(KosmosConfiguration.self, from: data, file: file)
        try c.validate()
        let d = c.decoder, v = c.vision, r = c.resampler
        return [
            "decoder: \(d.decoderLayers) layers × \(d.decoderEmbedDim), ffn \(d.decoderFfnEmbedDim), \(d.decoderAttentionHeads) heads, "
                + "xpos \(d.xposRelPos), subln \(d.subln), positions \(d.absolutePositions.rawValue), vocab \(c.vocabSize)",
            "vision: \(v.numHiddenLayers) layers × \(v.hiddenSize), patch \(v.patchSize) at \(v.imageSize)px (\(v.tokenCount) tokens), \(v.hiddenAct)",
            "resampler: depth \(r.depth), \(r.heads) heads × \(r.dimHead), \(r.numLatents) latents → \(c.numImageTokens) image tokens",
            "tokens: <image> \(c.imageTokenId), </image> \(c.imageEndTokenId), pad \(c.padTokenId), bos \(c.bosTokenId.map(String.init) ?? "none"), eos \(c.eosTokenId.map(String.init) ?? "none")",
        ] + (c.audio.map { a in
            let e = a.encoder, f = a.featureExtractor
            return ["audio: Whisper encoder \(e.encoderLayers) layers × \(e.dModel), \(e.numMelBins) mel bins, \(AudioError.seconds(f.chunkLength)) s at \(f.samplingRate) Hz → "
                + "\(a.connector.rawValue) → \(a.numAudioTokens) audio tokens; <audio> \(a.audioTokenId), </audio> \(a.audioEndTokenId)"]
        } ?? [])
    }
}

extension KosmosModel: GenerativeModel {
    public var family: ModelFamily { Kosmos1Family.entry }
    public var textDecoder: any TextDecoder { decoder }
    public var eosTokenId: Int? { configuration.eosTokenId }
    public var contextLength: Int { configuration.decoder.maxTargetPositions }
    public var mediaKinds: [MediaKind] {
        [.image] + (configuration.audio == nil ? [] : [.audio]) + (configuration.video == nil ? [] : [.video])
    }
    public var imageSize: Int { configuration.vision.imageSize }
    public var audioConfiguration: AudioConfiguration? { configuration.audio }
    public var videoConfiguration: VideoConfiguration? { configuration.video }

    /// tokenizer.model, tokenizer.json, sentencepiece.bpe.model or spiece.model in the directory.
    public func loadTokenizer(directory: URL, explicit: URL?) throws -> Tokenizer {
        guard let url = explicit ?? ModelDirectory.tokenizerFile(in: directory) else {
            throw ModelDirectoryError.noTokenizer(directory, files: ["tokenizer.model", "tokenizer.json"])
        }
        return try TokenizerLoader.load(url)
    }

    public func processor(tokenizer: Tokenizer) throws -> any InputProcessor {
        Kosmos1Processor(model: self, tokenizer: tokenizer)
    }

    public func decoderInput(_ input: ModelInput) throws -> DecoderInput {
        let batch = try makeBatch([KosmosSequence(tokens: input.tokens, images: try input.media.tensors(of: .image, for: self),
                                                  audio: try input.media.tensors(of: .audio, for: self),
                                                  videos: try input.media.tensors(of: .video, for: self))])
        return DecoderInput(tokens: batch.tokens, embeddings: try inputEmbeddings(batch))
    }
}

extension ModelInput {
    /// A Kosmos-1 sequence as model input (its images in order).
    public init(_ sequence: KosmosSequence) {
        self.init(tokens: sequence.tokens, media: sequence.images.map(MediaItem.image) + sequence.audio.map(MediaItem.audio)
                  + sequence.videos.map(MediaItem.video))
    }
}

/// Kosmos-1's prompt layout: each text segment tokenized on its own, each `<image>` marker replaced
/// by `<image>`, num_image_tokens slots and `</image>` (`KosmosModel.promptTokens`).
public struct Kosmos1Processor: InputProcessor {
    public let model: KosmosModel
    public let tokenizer: Tokenizer
    public var supportsGrounding: Bool { false }

    public func mediaLimit(_ kind: MediaKind) -> Int? { nil }

    public func input(text: String, media: [MediaItem], grounding: Bool) throws -> ModelInput {
        if grounding { throw ModelError.invalidInput("grounding needs a Kosmos-2 model") }
        let images = try media.tensors(of: .image, for: model), clips = try media.tensors(of: .audio, for: model)
        let videos = try media.tensors(of: .video, for: model)
        // The items in the order of their placeholders: each kind keeps its own order.
        return ModelInput(tokens: try model.promptTokens(text, imageCount: images.count, audioCount: clips.count,
                                                         videoFrames: videos.map { $0.shape[0] }, encode: tokenizer.encode),
                          media: media)
    }

    public func output(_ ids: [Int], grounding: Bool) -> ModelOutput {
        ModelOutput(text: tokenizer.decode(ids.filter { $0 != model.eosTokenId }), entities: nil)
    }
}
