import Foundation
import KosmosNN
import KosmosTensor

// The audio encoder of Hugging Face transformers' Whisper (models/whisper/modeling_whisper.py:
// WhisperEncoder, WhisperEncoderLayer, WhisperAttention), with the same parameter names, so
// `model.encoder.*` of a WhisperForConditionalGeneration checkpoint (or `encoder.*` of a
// WhisperModel) loads as is.

/// The encoder fields of HF `WhisperConfig`, with its names and defaults.
public struct WhisperEncoderConfiguration: Codable, Equatable, Sendable {
    public var numMelBins = 80
    public var dModel = 384
    public var encoderLayers = 4
    public var encoderAttentionHeads = 6
    public var encoderFfnDim = 1536
    /// Encoder positions: the conv stack halves the frames, so inputs are 2 × this many frames.
    public var maxSourcePositions = 1500
    public var activationFunction = "gelu"
    public var dropout: Float = 0
    public var attentionDropout: Float = 0
    public var activationDropout: Float = 0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case numMelBins = "num_mel_bins"
        case dModel = "d_model"
        case encoderLayers = "encoder_layers"
        case encoderAttentionHeads = "encoder_attention_heads"
        case encoderFfnDim = "encoder_ffn_dim"
        case maxSourcePositions = "max_source_positions"
        case activationFunction = "activation_function"
        case dropout
        case attentionDropout = "attention_dropout"
        case activationDropout = "activation_dropout"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = WhisperEncoderConfiguration()
        numMelBins = try c.decode(.numMelBins, default: d.numMelBins)
        dModel = try c.decode(.dModel, default: d.dModel)
        encoderLayers = try c.decode(.encoderLayers, default: d.encoderLayers)
        encoderAttentionHeads = try c.decode(.encoderAttentionHeads, default: d.encoderAttentionHeads)
        encoderFfnDim = try c.decode(.encoderFfnDim, default: d.encoderFfnDim)
        maxSourcePositions = try c.decode(.maxSourcePositions, default: d.maxSourcePositions)
        activationFunction = try c.decode(.activationFunction, default: d.activationFunction)
        dropout = try c.decode(.dropout, default: d.dropout)
        attentionDropout = try c.decode(.attentionDropout, default: d.attentionDropout)
        activationDropout = try c.decode(.activationDropout, default: d.activationDropout)
    }

    /// Input frames the encoder takes (conv2 has stride 2).
    public var inputFrames: Int { 2 * maxSourcePositions }

    public func validate(prefix: String = "") throws {
        func fail(_ field: String, _ why: String) -> ModelError { .invalidConfiguration(field: prefix + field, reason: why) }
        for (field, value) in [("num_mel_bins", numMelBins), ("d_model", dModel), ("encoder_layers", encoderLayers),
                               ("encoder_ffn_dim", encoderFfnDim), ("max_source_positions", maxSourcePositions)] where value <= 0 {
            throw fail(field, "must be positive")
        }
        guard encoderAttentionHeads > 0, dModel % encoderAttentionHeads == 0 else {
            throw fail("encoder_attention_heads", "\(encoderAttentionHeads) does not divide d_model \(dModel)")
        }
        guard dModel % 2 == 0 else { throw fail("d_model", "\(dModel) must be even (sinusoidal positions)") }
        guard activationFunction == "gelu" else { throw fail("activation_function", "'\(activationFunction)' is not supported (gelu)") }
        for (field, p) in [("dropout", dropout), ("attention_dropout", attentionDropout), ("activation_dropout", activationDropout)]
            where !(p >= 0 && p < 1) {
            throw fail(field, "must be in [0, 1)")
        }
    }
}

/// Multi-head self-attention, k_proj without bias (WhisperAttention, encoder use: no mask).
public final class WhisperAttention: Module {
    public let kProj: Linear, vProj: Linear, qProj: Linear, outProj: Linear
    let heads: Int, dropout: Float
    let generator: RandomGenerator

    init(configuration c: WhisperEncoderConfiguration, generator: RandomGenerator) {
        let d = c.dModel
        heads = c.encoderAttentionHeads
        dropout = c.attentionDropout
        self.generator = generator
        kProj = Linear(inFeatures: d, outFeatures: d, bias: false, generator: generator)
        vProj = Linear(inFeatures: d, outFeatures: d, generator: generator)
        qProj = Linear(inFeatures: d, outFeatures: d, generator: generator)
        outProj = Linear(inFeatures: d, outFeatures: d, generator: generator)
        super.init()
        registerModule("k_proj", kProj)
        registerModule("v_proj", vProj)
        registerModule("q_proj", qProj)
        registerModule("out_proj", outProj)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        bidirectionalAttention(x, q: qProj, k: kProj, v: vProj, out: outProj, heads: heads,
                               dropout: isTraining && dropout > 0 ? (dropout, generator) : nil)
    }
}

/// Pre-LN block: x + attn(self_attn_layer_norm(x)), then x + fc2(gelu(fc1(final_layer_norm(x)))).
public final class WhisperEncoderLayer: Module {
    public let selfAttn: WhisperAttention
    public let selfAttnLayerNorm: LayerNorm
    public let fc1: Linear, fc2: Linear
    public let finalLayerNorm: LayerNorm
    let dropout: Float, activationDropout: Float
    let generator: RandomGenerator

    init(configuration c: WhisperEncoderConfiguration, generator: RandomGenerator) {
        selfAttn = WhisperAttention(configuration: c, generator: generator)
        selfAttnLayerNorm = LayerNorm(c.dModel)
        fc1 = Linear(inFeatures: c.dModel, outFeatures: c.encoderFfnDim, generator: generator)
        fc2 = Linear(inFeatures: c.encoderFfnDim, outFeatures: c.dModel, generator: generator)
        finalLayerNorm = LayerNorm(c.dModel)
        dropout = c.dropout
        activationDropout = c.activationDropout
        self.generator = generator
        super.init()
        registerModule("self_attn", selfAttn)
        registerModule("self_attn_layer_norm", selfAttnLayerNorm)
        registerModule("fc1", fc1)
        registerModule("fc2", fc2)
        registerModule("final_layer_norm", finalLayerNorm)
    }

    func drop(_ x: Tensor, _ p: Float) -> Tensor { isTraining && p > 0 ? x.dropout(probability: p, generator: generator) : x }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let h = x + drop(selfAttn(selfAttnLayerNorm(x)), dropout)
        return h + drop(fc2(drop(fc1(finalLayerNorm(h)).gelu(), activationDropout)), dropout)
    }
}

/// Whisper's encoder: log-mel [batch, mel bins, 2·positions] → conv1 (k3, p1) → GELU → conv2
/// (k3, stride 2, p1) → GELU → + sinusoidal positions (`embed_positions.weight`, a fixed table:
/// transformers does not train it) → pre-LN layers → layer_norm: [batch, positions, d_model].
public final class WhisperEncoder: Module {
    public let configuration: WhisperEncoderConfiguration
    public let conv1: Conv1d, conv2: Conv1d
    public let embedPositions: Tensor
    public let layers: ModuleList<WhisperEncoderLayer>
    public let layerNorm: LayerNorm
    let generator: RandomGenerator

    /// A fresh encoder: PyTorch's default initialisation of every layer, positions sinusoidal.
    public init(configuration c: WhisperEncoderConfiguration, generator: RandomGenerator) throws {
        try c.validate()
        configuration = c
        self.generator = generator
        conv1 = Conv1d(inChannels: c.numMelBins, outChannels: c.dModel, kernel: 3, padding: 1, generator: generator)
        conv2 = Conv1d(inChannels: c.dModel, outChannels: c.dModel, kernel: 3, stride: 2, padding: 1, generator: generator)
        embedPositions = Self.sinusoids(length: c.maxSourcePositions, channels: c.dModel)
        layers = ModuleList((0..<c.encoderLayers).map { _ in WhisperEncoderLayer(configuration: c, generator: generator) })
        layerNorm = LayerNorm(c.dModel)
        super.init()
        registerModule("conv1", conv1)
        registerModule("conv2", conv2)
        let positions = Module()
        positions.registerBuffer("weight", embedPositions)
        registerModule("embed_positions", positions)
        registerModule("layers", layers)
        registerModule("layer_norm", layerNorm)
    }

    /// Whisper's position table: [sin(t·τ_i) | cos(t·τ_i)], τ_i = 10000^(−i/(channels/2 − 1)).
    public static func sinusoids(length: Int, channels: Int) -> Tensor {
        let half = channels / 2
        let increment = Foundation.log(10000.0) / Double(max(half - 1, 1))
        var values = [Float](repeating: 0, count: length * channels)
        for t in 0..<length {
            for i in 0..<half {
                let angle = Double(t) * Foundation.exp(-increment * Double(i))
                values[t * channels + i] = Float(Foundation.sin(angle))
                values[t * channels + half + i] = Float(Foundation.cos(angle))
            }
        }
        return Tensor(shape: [length, channels], scalars: values)
    }

    /// input_features [batch, num_mel_bins, 2·max_source_positions] → last_hidden_state
    /// [batch, max_source_positions, d_model].
    public func callAsFunction(_ features: Tensor) throws -> Tensor {
        let c = configuration
        guard features.rank == 3, features.shape[1] == c.numMelBins, features.shape[2] == c.inputFrames else {
            throw ModelError.invalidInput("audio features of shape \(features.shape); the Whisper encoder expects [batch, \(c.numMelBins), \(c.inputFrames)] (num_mel_bins × 2·max_source_positions frames)")
        }
        let x = conv2(conv1(features.permuted([0, 2, 1])).gelu()).gelu()
        var h = x + embedPositions
        if isTraining && c.dropout > 0 { h = h.dropout(probability: c.dropout, generator: generator) }
        for layer in layers.items { h = layer(h) }
        return layerNorm(h)
    }

    /// The encoder of a transformers Whisper directory (config.json with model_type "whisper";
    /// weights under `model.encoder.` or `encoder.`; the decoder's are ignored).
    public static func load(directory: URL) throws -> WhisperEncoder {
        let (data, type, url) = try ModelDirectory.configuration(in: directory)
        guard type == "whisper" else {
            throw ModelDirectoryError.unknownModelType(type, url, expected: ["whisper"])
        }
        let configuration = try ModelDirectory.decode(WhisperEncoderConfiguration.self, from: data, file: url)
        let encoder = try withoutRandomInitialisation { try WhisperEncoder(configuration: configuration, generator: RandomGenerator(seed: 0)) }
        try encoder.loadWeights(whisperDirectory: directory)
        encoder.eval()
        return encoder
    }

    /// Fills this encoder from a transformers Whisper directory's weights (`model.encoder.*` or
    /// `encoder.*`); its configuration must have the directory's shapes.
    public func loadWeights(whisperDirectory directory: URL) throws {
        let weights = try ModelDirectory.weights(in: directory)
        let prefix = weights.entry("model.encoder.conv1.weight") != nil ? "model.encoder." : "encoder."
        try load(from: weights, prefix: prefix, sourceName: directory.lastPathComponent)
    }
}
