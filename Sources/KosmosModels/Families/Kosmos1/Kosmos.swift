import Foundation
import KosmosNN
import KosmosTensor

/// A Kosmos-1 model directory's `config.json` (see docs/model-format.md): the decoder in torchscale's
/// DecoderConfig names, the vision tower in HF CLIPVisionConfig names, the resampler in
/// flamingo-pytorch's argument names, and the multimodal token ids.
public struct KosmosConfiguration: Codable, Equatable, Sendable {
    public var modelType = "kosmos-1"
    public var decoder = DecoderConfiguration()
    public var vision = CLIPVisionConfiguration()
    public var resampler = PerceiverConfiguration()
    /// Embeddings per image in the sequence (the resampler's num_latents).
    public var numImageTokens = 64
    public var imageTokenId = 32000
    public var imageEndTokenId = 32001
    /// The id stored at image slots in `input_ids` (their embeddings are replaced); default the pad id.
    public var imageSlotTokenId: Int? = nil
    public var bosTokenId: Int? = 1
    public var eosTokenId: Int? = 2
    public var padTokenId = 0
    public var vocabSize = 32002
    /// The audio path (`audio_config`), absent in an image-and-text model.
    public var audio: AudioConfiguration? = nil
    /// Video input (`video_config`): frames through the vision tower and the resampler's time embeddings.
    public var video: VideoConfiguration? = nil

    public init() {}

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type"
        case decoder, vision, resampler
        case numImageTokens = "num_image_tokens"
        case imageTokenId = "image_token_id"
        case imageEndTokenId = "image_end_token_id"
        case imageSlotTokenId = "image_slot_token_id"
        case bosTokenId = "bos_token_id"
        case eosTokenId = "eos_token_id"
        case padTokenId = "pad_token_id"
        case vocabSize = "vocab_size"
        case audio = "audio_config"
        case video = "video_config"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = KosmosConfiguration()
        modelType = try c.decode(.modelType, default: d.modelType)
        self.decoder = try c.decode(.decoder, default: d.decoder)
        vision = try c.decode(.vision, default: d.vision)
        resampler = try c.decode(.resampler, default: d.resampler)
        numImageTokens = try c.decode(.numImageTokens, default: d.numImageTokens)
        imageTokenId = try c.decode(.imageTokenId, default: d.imageTokenId)
        imageEndTokenId = try c.decode(.imageEndTokenId, default: d.imageEndTokenId)
        imageSlotTokenId = try c.decodeIfPresent(Int.self, forKey: .imageSlotTokenId)
        // An explicit null means "none" (T5 has no bos); an absent key takes the default.
        bosTokenId = c.contains(.bosTokenId) ? try c.decodeIfPresent(Int.self, forKey: .bosTokenId) : d.bosTokenId
        eosTokenId = c.contains(.eosTokenId) ? try c.decodeIfPresent(Int.self, forKey: .eosTokenId) : d.eosTokenId
        padTokenId = try c.decode(.padTokenId, default: d.padTokenId)
        vocabSize = try c.decode(.vocabSize, default: d.vocabSize)
        audio = try c.decodeIfPresent(AudioConfiguration.self, forKey: .audio)
        video = try c.decodeIfPresent(VideoConfiguration.self, forKey: .video)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(modelType, forKey: .modelType)
        try c.encode(decoder, forKey: .decoder)
        try c.encode(vision, forKey: .vision)
        try c.encode(resampler, forKey: .resampler)
        try c.encode(numImageTokens, forKey: .numImageTokens)
        try c.encode(imageTokenId, forKey: .imageTokenId)
        try c.encode(imageEndTokenId, forKey: .imageEndTokenId)
        try c.encodeIfPresent(imageSlotTokenId, forKey: .imageSlotTokenId)
        try c.encode(bosTokenId, forKey: .bosTokenId)
        try c.encode(eosTokenId, forKey: .eosTokenId)
        try c.encode(padTokenId, forKey: .padTokenId)
        try c.encode(vocabSize, forKey: .vocabSize)
        try c.encodeIfPresent(audio, forKey: .audio)
        try c.encodeIfPresent(video, forKey: .video)
    }

    public var slotTokenId: Int { imageSlotTokenId ?? padTokenId }

    public func validate() throws {
        guard Kosmos1Family.entry.modelTypes.contains(modelType) else {
            throw ModelError.invalidConfiguration(field: "model_type", reason: "'\(modelType)' is not a Kosmos-1 model (expected \"kosmos-1\")")
        }
        try decoder.validate()
        try vision.validate()
        try resampler.validate()
        func fail(_ field: String, _ why: String) -> ModelError { .invalidConfiguration(field: field, reason: why) }
        guard decoder.vocabSize == vocabSize else {
            throw fail("decoder.vocab_size", "\(decoder.vocabSize) differs from vocab_size \(vocabSize)")
        }
        guard resampler.dim == vision.hiddenSize else {
            throw fail("resampler.dim", "\(resampler.dim) differs from the vision hidden_size \(vision.hiddenSize)")
        }
        guard numImageTokens == resampler.numLatents else {
            throw fail("num_image_tokens", "\(numImageTokens) differs from resampler.num_latents \(resampler.numLatents)")
        }
        var ids = [("image_token_id", imageTokenId), ("image_end_token_id", imageEndTokenId),
                   ("pad_token_id", padTokenId), ("image_slot_token_id", slotTokenId)]
            + [("bos_token_id", bosTokenId), ("eos_token_id", eosTokenId)].compactMap({ f, v in v.map { (f, $0) } })
        if let audio {
            try audio.validate()
            ids += [("audio_config.audio_token_id", audio.audioTokenId), ("audio_config.audio_end_token_id", audio.audioEndTokenId)]
            for (field, id) in [("audio_config.audio_token_id", audio.audioTokenId), ("audio_config.audio_end_token_id", audio.audioEndTokenId)]
                where [imageTokenId, imageEndTokenId, slotTokenId].contains(id) {
                throw fail(field, "\(id) is also an image marker or the slot id")
            }
        }
        if let video {
            try video.validate(resampler: resampler)
            let markers = [imageTokenId, imageEndTokenId, slotTokenId] + [audio?.audioTokenId, audio?.audioEndTokenId].compactMap { $0 }
            for (field, id) in [("video_config.video_token_id", video.videoTokenId), ("video_config.video_end_token_id", video.videoEndTokenId)] {
                guard !markers.contains(id) else { throw fail(field, "\(id) is also an image or audio marker or the slot id") }
                ids.append((field, id))
            }
        }
        for (field, id) in ids {
            guard id >= 0 && id < vocabSize else { throw fail(field, "\(id) is outside the vocabulary of \(vocabSize)") }
        }
    }
}

/// Which vision parameters train. The paper freezes CLIP except its last layer.
public enum VisionFreezePolicy: String, Codable, Sendable, CaseIterable {
    case none
    case all
    case allButLastLayer = "all-but-last-layer"
}

/// One training or inference sequence: token ids where every image occupies `<image>`, then
/// num_image_tokens slots, then `</image>` (every audio clip likewise `<audio>`, num_audio_tokens
/// slots, `</audio>`); the images in order of appearance (pixel values [channels, size, size]) and
/// the clips in order of appearance (log-mel features [mel bins, frames]).
public struct KosmosSequence {
    public var tokens: [Int]
    public var images: [Tensor]
    public var audio: [Tensor]
    /// Videos in order of appearance, each its frames [frames, channels, size, size]; a video of T
    /// frames takes T × num_image_tokens slots between `<video>` and `</video>`.
    public var videos: [Tensor]

    public init(tokens: [Int], images: [Tensor] = [], audio: [Tensor] = [], videos: [Tensor] = []) {
        self.tokens = tokens
        self.images = images
        self.audio = audio
        self.videos = videos
    }
}

/// A padded batch ready for the model.
public struct KosmosBatch {
    public let tokens: [Int]
    public let batch: Int
    public let length: Int
    /// batch × length, true at padding.
    public let padding: [Bool]
    /// Flat positions (b·length + t) of image slots, in image order.
    public let slotPositions: [Int]
    /// All images of the batch stacked [images, channels, size, size] (nil without images).
    public let pixels: Tensor?
    /// Next-token targets per position, −100 where no loss is taken.
    public let labels: [Int]
    /// Flat positions of audio slots, in clip order, and every clip's features stacked
    /// [clips, mel bins, frames] (nil without audio).
    public var audioSlotPositions: [Int] = []
    public var audioFeatures: Tensor? = nil
    /// Flat positions of video slots (each video's frames' latents in frame order), the frames of
    /// every video stacked [Σ frames, channels, size, size], and each video's frame count.
    public var videoSlotPositions: [Int] = []
    public var videoPixels: Tensor? = nil
    public var videoFrameCounts: [Int] = []
}

/// The Kosmos-1 model: CLIP vision tower → perceiver resampler → image_proj → image embeddings in
/// the token sequence → Magneto decoder.
public final class KosmosModel: Module {
    public let configuration: KosmosConfiguration
    public let decoder: MagnetoDecoder
    public let visionModel: CLIPVisionTransformer
    public let perceiver: PerceiverResampler
    public let imageProj: Linear
    /// Whisper encoder, connector and audio_proj when the configuration has `audio_config`.
    public let audioTower: AudioTower?

    /// A fresh model initialised as the references initialise each part; image_proj N(0, d^-½).
    public init(configuration c: KosmosConfiguration, generator: RandomGenerator) throws {
        try c.validate()
        configuration = c
        decoder = try MagnetoDecoder(configuration: c.decoder, generator: generator)
        visionModel = try CLIPVisionTransformer(configuration: c.vision, generator: generator)
        perceiver = try PerceiverResampler(configuration: c.resampler, generator: generator)
        imageProj = Linear(inFeatures: c.vision.hiddenSize, outFeatures: c.decoder.decoderEmbedDim, bias: false, generator: generator)
        imageProj.weight.copy(from: Tensor.randn(imageProj.weight.shape, std: Foundation.pow(Float(c.decoder.decoderEmbedDim), -0.5),
                                                 generator: generator))
        audioTower = try c.audio.map { try AudioTower(configuration: $0, decoderDim: c.decoder.decoderEmbedDim, generator: generator) }
        super.init()
        registerModule("decoder", decoder)
        registerModule("vision_model", visionModel)
        registerModule("perceiver", perceiver)
        registerModule("image_proj", imageProj)
        audioTower?.register(in: self)
    }

    /// Freezes vision parameters by `policy` (everything else keeps training).
    public func applyVisionFreeze(_ policy: VisionFreezePolicy) {
        visionModel.setRequiresGrad(policy == .none)
        if policy == .allButLastLayer, let last = visionModel.layers.items.last {
            last.setRequiresGrad(true)
        }
    }

    /// Freezes the audio encoder by `policy` (its last layer and final layer_norm train under
    /// all-but-last-layer); the connector and audio_proj keep training. Nothing without audio.
    public func applyAudioFreeze(_ policy: VisionFreezePolicy) {
        guard let encoder = audioTower?.encoder else { return }
        encoder.setRequiresGrad(policy == .none)
        if policy == .allButLastLayer {
            encoder.layers.items.last?.setRequiresGrad(true)
            encoder.layerNorm.setRequiresGrad(true)
        }
    }

    /// Pads sequences on the right, checks the image layout, and builds the loss labels: the
    /// target of position t is token t+1, ignored (−100) where t+1 is padding or an image slot.
    public func makeBatch(_ sequences: [KosmosSequence]) throws -> KosmosBatch {
        let c = configuration
        guard !sequences.isEmpty else { throw ModelError.invalidInput("an empty batch") }
        let length = sequences.map(\.tokens.count).max() ?? 0
        guard length > 0 else { throw ModelError.invalidInput("every sequence in the batch is empty") }
        var tokens: [Int] = [], padding: [Bool] = [], labels: [Int] = [], images: [Tensor] = [], clips: [Tensor] = []
        var videos: [Tensor] = []
        // Per media kind: its markers and the flat slot positions found (images, audio, video).
        var kinds: [(name: String, plural: String, open: Int, close: Int, positions: [Int])] = [
            ("image", "image(s)", c.imageTokenId, c.imageEndTokenId, []),
        ]
        if let a = c.audio { kinds.append(("audio", "audio clip(s)", a.audioTokenId, a.audioEndTokenId, [])) }
        if let v = c.video { kinds.append(("video", "video(s)", v.videoTokenId, v.videoEndTokenId, [])) }
        var isSlot = [Bool](repeating: false, count: sequences.count * length)
        for (b, sequence) in sequences.enumerated() {
            let ids = sequence.tokens
            if let bad = ids.first(where: { $0 < 0 || $0 >= c.vocabSize }) {
                throw ModelError.invalidInput("sequence \(b): token id \(bad) is outside the vocabulary of \(c.vocabSize)")
            }
            if !sequence.audio.isEmpty && c.audio == nil {
                throw ModelError.invalidInput("sequence \(b) has audio but the model has no audio_config")
            }
            if !sequence.videos.isEmpty && c.video == nil {
                throw ModelError.invalidInput("sequence \(b) has video but the model has no video_config")
            }
            // The items of each kind in this sequence, and the slots item j of a kind takes.
            func items(_ name: String) -> Int {
                name == "image" ? sequence.images.count : name == "audio" ? sequence.audio.count : sequence.videos.count
            }
            func slots(_ name: String, _ j: Int) -> Int {
                switch name {
                case "image": return c.numImageTokens
                case "audio": return c.audio?.numAudioTokens ?? 0
                default: return sequence.videos[j].shape[0] * c.numImageTokens
                }
            }
            var markers = [Int](repeating: 0, count: kinds.count), t = 0
            scan: while t < ids.count {
                for (k, kind) in kinds.enumerated() {
                    if ids[t] == kind.open {
                        // A video's slots follow from its frames: without the video they are unknown.
                        guard kind.name != "video" || markers[k] < items(kind.name) else {
                            throw ModelError.invalidInput("sequence \(b) has more <video> markers than its \(items(kind.name)) video(s)")
                        }
                        let count = slots(kind.name, markers[k])
                        let end = t + 1 + count
                        guard end < ids.count, ids[end] == kind.close else {
                            throw ModelError.invalidInput("sequence \(b): <\(kind.name)> at position \(t) is not followed by \(count) slots and </\(kind.name)>")
                        }
                        for s in (t + 1)..<end {
                            kinds[k].positions.append(b * length + s)
                            isSlot[b * length + s] = true
                        }
                        markers[k] += 1
                        t = end + 1
                        continue scan
                    }
                    if ids[t] == kind.close {
                        throw ModelError.invalidInput("sequence \(b): </\(kind.name)> at position \(t) without a matching <\(kind.name)>")
                    }
                }
                t += 1
            }
            for (k, kind) in kinds.enumerated() where markers[k] != items(kind.name) {
                throw ModelError.invalidInput("sequence \(b) has \(markers[k]) <\(kind.name)> marker(s) but \(items(kind.name)) \(kind.plural)")
            }
            images += sequence.images
            clips += sequence.audio
            videos += sequence.videos
            tokens += ids + [Int](repeating: c.padTokenId, count: length - ids.count)
            padding += [Bool](repeating: false, count: ids.count) + [Bool](repeating: true, count: length - ids.count)
        }
        for b in 0..<sequences.count {
            for t in 0..<length {
                let next = b * length + t + 1
                let usable = t + 1 < length && !padding[next] && !isSlot[next]
                labels.append(usable ? tokens[next] : -100)
            }
        }
        var pixels: Tensor? = nil
        if !images.isEmpty {
            let v = c.vision
            for (i, image) in images.enumerated() where image.shape != [v.numChannels, v.imageSize, v.imageSize] {
                throw ModelError.invalidInput("image \(i) has shape \(image.shape); the vision tower expects [\(v.numChannels), \(v.imageSize), \(v.imageSize)]")
            }
            pixels = Tensor.concatenate(images.map { $0.unsqueezed(0) }, axis: 0)
        }
        var batch = KosmosBatch(tokens: tokens, batch: sequences.count, length: length, padding: padding,
                                slotPositions: kinds[0].positions, pixels: pixels, labels: labels)
        if let a = c.audio, !clips.isEmpty {
            let shape = [a.encoder.numMelBins, a.encoder.inputFrames]
            for (i, clip) in clips.enumerated() where clip.shape != shape {
                throw ModelError.invalidInput("audio clip \(i) has features of shape \(clip.shape); the audio encoder expects \(shape) (num_mel_bins × frames)")
            }
            batch.audioSlotPositions = kinds[1].positions
            batch.audioFeatures = Tensor.concatenate(clips.map { $0.unsqueezed(0) }, axis: 0)
        }
        if let v = c.video, !videos.isEmpty {
            let vision = c.vision
            for (i, video) in videos.enumerated() {
                guard video.rank == 4, Array(video.shape.dropFirst()) == [vision.numChannels, vision.imageSize, vision.imageSize] else {
                    throw ModelError.invalidInput("video \(i) has frames of shape \(video.shape); the vision tower expects [frames, \(vision.numChannels), \(vision.imageSize), \(vision.imageSize)]")
                }
                guard video.shape[0] >= 1 && video.shape[0] <= v.maxFrames else {
                    throw ModelError.invalidInput("video \(i) has \(video.shape[0]) frames; video_config.max_frames is \(v.maxFrames)")
                }
            }
            batch.videoSlotPositions = kinds[kinds.count - 1].positions
            batch.videoFrameCounts = videos.map { $0.shape[0] }
            batch.videoPixels = Tensor.concatenate(videos, axis: 0)
        }
        return batch
    }

    /// Vision tower last_hidden_state [images, tokens, vision dim] → [images, num_image_tokens, dim].
    public func imageEmbeddings(visionFeatures: Tensor) throws -> Tensor {
        let resampled = try perceiver(visionFeatures)
        let count = visionFeatures.shape[0]
        return imageProj(resampled.reshaped([count, configuration.numImageTokens, configuration.resampler.dim]))
    }

    /// Videos' frames [Σ frames, channels, size, size] (each video's `counts[i]` frames in turn) →
    /// [Σ frames · num_image_tokens, dim]: every frame through the vision tower, each video's
    /// frames through the resampler together ([1, T, tokens, dim], so its time embeddings
    /// media_pos_emb[0..<T] tell the frames apart), the latents in frame order, then image_proj.
    public func videoEmbeddings(frames: Tensor, counts: [Int]) throws -> Tensor {
        let features = try visionModel(frames).lastHiddenState
        let tokens = features.shape[1], dim = configuration.resampler.dim
        var start = 0, parts: [Tensor] = []
        for count in counts {
            let video = features.narrowed(axis: 0, start: start, length: count).reshaped([1, count, tokens, dim])
            parts.append(try perceiver(video).reshaped([count * configuration.numImageTokens, dim]))
            start += count
        }
        return imageProj(parts.count == 1 ? parts[0] : Tensor.concatenate(parts, axis: 0))
    }

    /// Logits [batch, length, vocab] of a batch. With a cache (generation), the batch's positions
    /// are appended to it.
    /// `imageEmbeddings` [images, num_image_tokens, dim] skips the image path when the caller
    /// already ran it (`kosmos forward` writes the features too).
    public func logits(_ batch: KosmosBatch, cache: DecoderCache? = nil, imageEmbeddings precomputed: Tensor? = nil) throws -> Tensor {
        try decoder(tokens: batch.tokens, batch: batch.batch, length: batch.length,
                    tokenEmbeddings: try inputEmbeddings(batch, imageEmbeddings: precomputed),
                    keyPadding: cache == nil ? batch.padding : nil, cache: cache)
    }

    /// The decoder's input embeddings [batch, length, dim] with the images' embeddings in their
    /// slots (the images encoded unless `precomputed`); nil when the batch has no images (the
    /// decoder looks the tokens up itself).
    func inputEmbeddings(_ batch: KosmosBatch, imageEmbeddings precomputed: Tensor? = nil) throws -> Tensor? {
        guard batch.pixels != nil || batch.audioFeatures != nil || batch.videoPixels != nil else { return nil }
        let d = configuration.decoder.decoderEmbedDim
        var embeddings = try decoder.embedTokens(batch.tokens).reshaped([-1, d])
        if let pixels = batch.pixels {
            let images = try precomputed ?? imageEmbeddings(visionFeatures: try visionModel(pixels).lastHiddenState)
            embeddings = embeddings.replacingRows(at: batch.slotPositions, with: images.reshaped([-1, d]))
        }
        if let features = batch.audioFeatures, let tower = audioTower {
            embeddings = embeddings.replacingRows(at: batch.audioSlotPositions, with: try tower.embeddings(features: features).reshaped([-1, d]))
        }
        if let frames = batch.videoPixels {
            embeddings = embeddings.replacingRows(at: batch.videoSlotPositions,
                                                  with: try videoEmbeddings(frames: frames, counts: batch.videoFrameCounts).reshaped([-1, d]))
        }
        return embeddings.reshaped([batch.batch, batch.length, d])
    }

    /// Mean next-token cross-entropy over the batch's labelled positions.
    public func loss(_ batch: KosmosBatch) throws -> Tensor {
        try logits(batch).reshaped([-1, configuration.vocabSize]).crossEntropy(targets: batch.labels)
    }
}
