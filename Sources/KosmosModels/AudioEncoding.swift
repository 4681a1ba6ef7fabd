import Foundation
import KosmosAudio
import KosmosNN
import KosmosTensor

/// How the audio encoder's positions become the decoder's audio tokens.
public enum AudioConnector: String, Codable, Sendable, CaseIterable {
    /// flamingo-pytorch's PerceiverResampler over the encoder output (one time step), then
    /// audio_proj: num_audio_tokens = its num_latents. The default, as images use it.
    case perceiver
    /// The mean of each `pool_stride` consecutive encoder positions, then audio_proj: the tokens
    /// keep the clip's time order one to one (num_audio_tokens = max_source_positions/pool_stride).
    case pool
}

/// A Kosmos-1 directory's `audio_config` (docs/audio.md): Whisper's encoder (WhisperConfig names),
/// its feature extractor (WhisperFeatureExtractor names), the connector, and the markers.
public struct AudioConfiguration: Codable, Equatable, Sendable {
    public var encoder = WhisperEncoderConfiguration()
    public var featureExtractor = AudioFeatureConfiguration()
    public var connector = AudioConnector.perceiver
    public var resampler = PerceiverConfiguration()
    public var poolStride = 1
    public var numAudioTokens = 64
    public var audioTokenId = 32002
    public var audioEndTokenId = 32003
    /// Longest file accepted, in seconds (0: no limit). Clips longer than the feature extractor's
    /// chunk_length (30 s for Whisper) are truncated to it, as WhisperFeatureExtractor does.
    public var maxDuration: Double = 600

    public init() {
        resampler.dim = encoder.dModel
        resampler.numLatents = numAudioTokens
        resampler.numMediaEmbeds = 1
    }

    enum CodingKeys: String, CodingKey {
        case encoder, connector, resampler
        case featureExtractor = "feature_extractor"
        case poolStride = "pool_stride"
        case numAudioTokens = "num_audio_tokens"
        case audioTokenId = "audio_token_id"
        case audioEndTokenId = "audio_end_token_id"
        case maxDuration = "max_duration"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = AudioConfiguration()
        encoder = try c.decode(.encoder, default: d.encoder)
        featureExtractor = try c.decode(.featureExtractor, default: d.featureExtractor)
        connector = try c.decode(.connector, default: d.connector)
        resampler = try c.decode(.resampler, default: d.resampler)
        poolStride = try c.decode(.poolStride, default: d.poolStride)
        numAudioTokens = try c.decode(.numAudioTokens, default: d.numAudioTokens)
        audioTokenId = try c.decode(.audioTokenId, default: d.audioTokenId)
        audioEndTokenId = try c.decode(.audioEndTokenId, default: d.audioEndTokenId)
        maxDuration = try c.decode(.maxDuration, default: d.maxDuration)
    }

    public func validate() throws {
        func fail(_ field: String, _ why: String) -> ModelError { .invalidConfiguration(field: "audio_config." + field, reason: why) }
        try encoder.validate(prefix: "audio_config.encoder.")
        do {
            try featureExtractor.validate(source: "audio_config.feature_extractor")
        } catch let error as AudioError {
            throw fail("feature_extractor", error.description)
        }
        guard featureExtractor.featureSize == encoder.numMelBins else {
            throw fail("feature_extractor.feature_size", "\(featureExtractor.featureSize) differs from the encoder's num_mel_bins \(encoder.numMelBins)")
        }
        guard featureExtractor.frameCount == encoder.inputFrames else {
            throw fail("feature_extractor.chunk_length", "\(featureExtractor.chunkLength) s gives \(featureExtractor.frameCount) frames; the encoder takes 2 × max_source_positions = \(encoder.inputFrames)")
        }
        guard numAudioTokens > 0 else { throw fail("num_audio_tokens", "must be positive") }
        switch connector {
        case .perceiver:
            try resampler.validate()
            guard resampler.dim == encoder.dModel else { throw fail("resampler.dim", "\(resampler.dim) differs from the encoder's d_model \(encoder.dModel)") }
            guard resampler.numLatents == numAudioTokens else {
                throw fail("num_audio_tokens", "\(numAudioTokens) differs from resampler.num_latents \(resampler.numLatents)")
            }
        case .pool:
            guard poolStride > 0, encoder.maxSourcePositions % poolStride == 0 else {
                throw fail("pool_stride", "\(poolStride) does not divide max_source_positions \(encoder.maxSourcePositions)")
            }
            guard numAudioTokens == encoder.maxSourcePositions / poolStride else {
                throw fail("num_audio_tokens", "\(numAudioTokens); the pool connector gives max_source_positions / pool_stride = \(encoder.maxSourcePositions / poolStride)")
            }
        }
        guard audioTokenId != audioEndTokenId else { throw fail("audio_end_token_id", "equals audio_token_id \(audioTokenId)") }
        guard maxDuration >= 0 && maxDuration.isFinite else { throw fail("max_duration", "must be a non-negative number of seconds") }
    }

    /// The audio path of a transformers Whisper directory: its encoder's config.json fields and its
    /// preprocessor_config.json (WhisperFeatureExtractor's; defaults when absent), the connector
    /// and markers at their defaults (a Kosmos model sets those).
    public init(whisperDirectory directory: URL) throws {
        self.init()
        let (data, type, url) = try ModelDirectory.configuration(in: directory)
        guard type == "whisper" else { throw ModelDirectoryError.unknownModelType(type, url, expected: ["whisper"]) }
        encoder = try ModelDirectory.decode(WhisperEncoderConfiguration.self, from: data, file: url)
        let preprocessor = directory.appendingPathComponent("preprocessor_config.json")
        if let bytes = FileManager.default.contents(atPath: preprocessor.path) {
            featureExtractor = try ModelDirectory.decode(AudioFeatureConfiguration.self, from: bytes, file: preprocessor)
        } else {
            featureExtractor.featureSize = encoder.numMelBins
        }
        resampler.dim = encoder.dModel
    }

    /// The decoder that reads files for this configuration (its rate, its longest clip).
    public var decoder: AudioDecoder {
        AudioDecoder(sampleRate: featureExtractor.samplingRate, maxDuration: maxDuration)
    }
}

/// The audio path of a Kosmos model: Whisper encoder → connector → audio_proj, registered by the
/// model as `audio_model`, `audio_perceiver` (perceiver connector) and `audio_proj`.
public final class AudioTower {
    public let configuration: AudioConfiguration
    public let encoder: WhisperEncoder
    public let perceiver: PerceiverResampler?
    public let projection: Linear

    init(configuration c: AudioConfiguration, decoderDim: Int, generator: RandomGenerator) throws {
        configuration = c
        encoder = try WhisperEncoder(configuration: c.encoder, generator: generator)
        perceiver = c.connector == .perceiver ? try PerceiverResampler(configuration: c.resampler, generator: generator) : nil
        projection = Linear(inFeatures: c.encoder.dModel, outFeatures: decoderDim, bias: false, generator: generator)
        projection.weight.copy(from: Tensor.randn(projection.weight.shape, std: Foundation.pow(Float(decoderDim), -0.5), generator: generator))
    }

    func register(in model: Module) {
        model.registerModule("audio_model", encoder)
        if let perceiver { model.registerModule("audio_perceiver", perceiver) }
        model.registerModule("audio_proj", projection)
    }

    /// Encoder output [clips, positions, d_model] → [clips, num_audio_tokens, decoder dim].
    public func embeddings(encoderOutput: Tensor) throws -> Tensor {
        let c = configuration, clips = encoderOutput.shape[0], d = c.encoder.dModel
        let tokens: Tensor
        switch c.connector {
        case .perceiver:
            tokens = try perceiver!(encoderOutput).reshaped([clips, c.numAudioTokens, d])
        case .pool:
            tokens = c.poolStride == 1 ? encoderOutput
                : encoderOutput.reshaped([clips, c.numAudioTokens, c.poolStride, d]).mean(axis: 2)
        }
        return projection(tokens)
    }

    /// Log-mel features [clips, mel bins, frames] → [clips, num_audio_tokens, decoder dim].
    public func embeddings(features: Tensor) throws -> Tensor {
        try embeddings(encoderOutput: try encoder(features))
    }
}

/// Turns audio files into the log-mel features an audio tower expects ([mel bins, frames]), with
/// the configuration's decoder (its rate, its longest clip) and feature extractor.
public struct AudioInput: Sendable {
    public let configuration: AudioConfiguration
    public let decoder: AudioDecoder
    public let extractor: LogMelExtractor

    public init(configuration: AudioConfiguration) throws {
        self.configuration = configuration
        decoder = configuration.decoder
        extractor = try LogMelExtractor(configuration: configuration.featureExtractor)
    }

    public func features(_ clip: AudioClip) -> (tensor: Tensor, features: LogMelFeatures) {
        let f = extractor.features(clip.samples)
        return (Tensor(shape: [f.featureSize, f.frames], scalars: f.values), f)
    }

    /// Decodes a file (any supported format) and computes its features.
    public func load(_ url: URL) throws -> Tensor {
        features(try decoder.decode(contentsOf: url)).tensor
    }

    /// The same from bytes (a request's base64 data); `source` names them in errors.
    public func load(data: [UInt8], source: String) throws -> Tensor {
        features(try decoder.decode(data, source: source)).tensor
    }
}
