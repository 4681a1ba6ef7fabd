import Foundation
import KosmosNN
import KosmosTensor

// The CLIP vision transformer of Hugging Face transformers (models/clip/modeling_clip.py:
// CLIPVisionEmbeddings, CLIPAttention, CLIPMLP, CLIPEncoderLayer, CLIPVisionTransformer), with the
// same parameter names, so `vision_model.*` of a CLIPModel or CLIPVisionModel checkpoint loads as is.

/// HF `CLIPVisionConfig`, decoded with its field names; absent fields take transformers' defaults.
public struct CLIPVisionConfiguration: Codable, Equatable, Sendable {
    public var hiddenSize = 768
    public var intermediateSize = 3072
    public var numHiddenLayers = 12
    public var numAttentionHeads = 12
    public var numChannels = 3
    public var imageSize = 224
    public var patchSize = 32
    public var hiddenAct = "quick_gelu"
    public var layerNormEps: Float = 1e-5
    public var attentionDropout: Float = 0
    public var initializerRange: Float = 0.02
    public var initializerFactor: Float = 1

    public init() {}

    enum CodingKeys: String, CodingKey {
        case hiddenSize = "hidden_size"
        case intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads"
        case numChannels = "num_channels"
        case imageSize = "image_size"
        case patchSize = "patch_size"
        case hiddenAct = "hidden_act"
        case layerNormEps = "layer_norm_eps"
        case attentionDropout = "attention_dropout"
        case initializerRange = "initializer_range"
        case initializerFactor = "initializer_factor"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = CLIPVisionConfiguration()
        hiddenSize = try c.decode(.hiddenSize, default: d.hiddenSize)
        intermediateSize = try c.decode(.intermediateSize, default: d.intermediateSize)
        numHiddenLayers = try c.decode(.numHiddenLayers, default: d.numHiddenLayers)
        numAttentionHeads = try c.decode(.numAttentionHeads, default: d.numAttentionHeads)
        numChannels = try c.decode(.numChannels, default: d.numChannels)
        imageSize = try c.decode(.imageSize, default: d.imageSize)
        patchSize = try c.decode(.patchSize, default: d.patchSize)
        hiddenAct = try c.decode(.hiddenAct, default: d.hiddenAct)
        layerNormEps = try c.decode(.layerNormEps, default: d.layerNormEps)
        attentionDropout = try c.decode(.attentionDropout, default: d.attentionDropout)
        initializerRange = try c.decode(.initializerRange, default: d.initializerRange)
        initializerFactor = try c.decode(.initializerFactor, default: d.initializerFactor)
    }

    /// Patches per image side.
    public var gridSize: Int { imageSize / patchSize }
    /// Tokens per image: the class token and one per patch.
    public var tokenCount: Int { 1 + gridSize * gridSize }

    public func validate() throws {
        func fail(_ field: String, _ why: String) -> ModelError { .invalidConfiguration(field: field, reason: why) }
        guard hiddenSize > 0 else { throw fail("hidden_size", "must be positive") }
        guard numAttentionHeads > 0, hiddenSize % numAttentionHeads == 0 else {
            throw fail("num_attention_heads", "\(numAttentionHeads) does not divide hidden_size \(hiddenSize)")
        }
        guard intermediateSize > 0 else { throw fail("intermediate_size", "must be positive") }
        guard numHiddenLayers > 0 else { throw fail("num_hidden_layers", "must be positive") }
        guard patchSize > 0, imageSize > 0, imageSize % patchSize == 0 else {
            throw fail("patch_size", "image_size \(imageSize) must be a positive multiple of patch_size \(patchSize)")
        }
        guard numChannels > 0 else { throw fail("num_channels", "must be positive") }
        guard ["quick_gelu", "gelu"].contains(hiddenAct) else {
            throw fail("hidden_act", "'\(hiddenAct)' is not supported (quick_gelu, gelu)")
        }
        guard attentionDropout >= 0 && attentionDropout < 1 else { throw fail("attention_dropout", "must be in [0, 1)") }
    }
}

/// Patch, class and position embeddings (CLIPVisionEmbeddings). The stride-patch convolution is
/// computed as patchify + one product with the conv weight viewed as [hidden, channels·patch²].
public final class CLIPVisionEmbeddings: Module {
    public let classEmbedding: Tensor
    /// Conv2d weight [hidden, channels, patch, patch], no bias.
    public let patchEmbeddingWeight: Tensor
    public let positionEmbedding: Embedding
    let configuration: CLIPVisionConfiguration

    init(configuration c: CLIPVisionConfiguration, generator: RandomGenerator) {
        configuration = c
        let factor = c.initializerFactor
        classEmbedding = Tensor.randn([c.hiddenSize], std: Foundation.pow(Float(c.hiddenSize), -0.5) * factor, generator: generator)
        patchEmbeddingWeight = Tensor.randn([c.hiddenSize, c.numChannels, c.patchSize, c.patchSize],
                                            std: c.initializerRange * factor, generator: generator)
        positionEmbedding = Embedding(count: c.tokenCount, dimension: c.hiddenSize, followsWeightDType: false, generator: generator)
        positionEmbedding.weight.copy(from: Tensor.randn([c.tokenCount, c.hiddenSize], std: c.initializerRange * factor,
                                                         generator: generator))
        super.init()
        registerParameter("class_embedding", classEmbedding)
        let patchEmbedding = Module()
        patchEmbedding.registerParameter("weight", patchEmbeddingWeight)
        registerModule("patch_embedding", patchEmbedding)
        registerModule("position_embedding", positionEmbedding)
    }

    /// pixel values [batch, channels, size, size] → [batch, 1 + patches, hidden].
    func callAsFunction(_ pixels: Tensor) -> Tensor {
        let c = configuration
        let batch = pixels.shape[0]
        let patches = pixels.patchified(patchSize: c.patchSize)
        let kernel = patchEmbeddingWeight.reshaped([c.hiddenSize, c.numChannels * c.patchSize * c.patchSize])
        let patchEmbeds = Tensor.matmul(patches, kernel, transposeB: true)
        let classEmbeds = classEmbedding.reshaped([1, 1, c.hiddenSize]).expanded(to: [batch, 1, c.hiddenSize])
        let tokens = Tensor.concatenate([classEmbeds, patchEmbeds], axis: 1)
        return tokens + positionEmbedding.weight
    }
}

/// Bidirectional multi-head self-attention with biases (CLIPAttention).
public final class CLIPAttention: Module {
    public let kProj: Linear, vProj: Linear, qProj: Linear, outProj: Linear
    let heads: Int
    let dropout: Float
    let generator: RandomGenerator

    init(configuration c: CLIPVisionConfiguration, generator: RandomGenerator) {
        let d = c.hiddenSize
        heads = c.numAttentionHeads
        dropout = c.attentionDropout
        self.generator = generator
        kProj = Linear(inFeatures: d, outFeatures: d, generator: generator)
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

/// Multi-head self-attention without a mask over [batch, length, dim] (the encoders' attention:
/// CLIP's, Whisper's): heads split from the projections, scores scaled by head_dim^-½.
func bidirectionalAttention(_ x: Tensor, q: Linear, k: Linear, v: Linear, out: Linear, heads: Int,
                            dropout: (Float, RandomGenerator)?) -> Tensor {
    let batch = x.shape[0], length = x.shape[1], dim = x.shape[2], headDim = dim / heads
    func split(_ t: Tensor) -> Tensor { t.reshaped([batch, length, heads, headDim]).permuted([0, 2, 1, 3]) }
    let attended = Tensor.scaledDotProductAttention(query: split(q(x)), key: split(k(x)), value: split(v(x)),
                                                    scale: Foundation.pow(Float(headDim), -0.5), dropout: dropout)
    return out(attended.permuted([0, 2, 1, 3]).reshaped([batch, length, dim]))
}

/// fc1 → quick_gelu (or gelu) → fc2 (CLIPMLP).
public final class CLIPMLP: Module {
    public let fc1: Linear, fc2: Linear
    let activation: String

    init(configuration c: CLIPVisionConfiguration, generator: RandomGenerator) {
        fc1 = Linear(inFeatures: c.hiddenSize, outFeatures: c.intermediateSize, generator: generator)
        fc2 = Linear(inFeatures: c.intermediateSize, outFeatures: c.hiddenSize, generator: generator)
        activation = c.hiddenAct
        super.init()
        registerModule("fc1", fc1)
        registerModule("fc2", fc2)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let h = fc1(x)
        return fc2(activation == "gelu" ? h.gelu() : h.quickGelu())
    }
}

/// Pre-norm encoder layer: x + attn(layer_norm1(x)), then x + mlp(layer_norm2(x)).
public final class CLIPEncoderLayer: Module {
    public let selfAttn: CLIPAttention
    public let layerNorm1: LayerNorm
    public let mlp: CLIPMLP
    public let layerNorm2: LayerNorm

    init(configuration c: CLIPVisionConfiguration, generator: RandomGenerator) {
        selfAttn = CLIPAttention(configuration: c, generator: generator)
        layerNorm1 = LayerNorm(c.hiddenSize, eps: c.layerNormEps)
        mlp = CLIPMLP(configuration: c, generator: generator)
        layerNorm2 = LayerNorm(c.hiddenSize, eps: c.layerNormEps)
        super.init()
        registerModule("self_attn", selfAttn)
        registerModule("layer_norm1", layerNorm1)
        registerModule("mlp", mlp)
        registerModule("layer_norm2", layerNorm2)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let h = x + selfAttn(layerNorm1(x))
        return h + mlp(layerNorm2(h))
    }
}

/// The vision tower (HF CLIPVisionTransformer; registered as `vision_model` by its owners).
public final class CLIPVisionTransformer: Module {
    public let configuration: CLIPVisionConfiguration
    public let embeddings: CLIPVisionEmbeddings
    public let preLayrnorm: LayerNorm
    public let layers: ModuleList<CLIPEncoderLayer>
    public let postLayernorm: LayerNorm

    /// A fresh tower initialised as transformers' CLIPPreTrainedModel._init_weights does: q/k/v
    /// N(0, (d^-½)(2L)^-½), out_proj N(0, d^-½), fc1 N(0, (2d)^-½), fc2 N(0, d^-½(2L)^-½), biases 0,
    /// norms 1/0 (all × initializer_factor).
    public init(configuration c: CLIPVisionConfiguration, generator: RandomGenerator) throws {
        try c.validate()
        configuration = c
        embeddings = CLIPVisionEmbeddings(configuration: c, generator: generator)
        preLayrnorm = LayerNorm(c.hiddenSize, eps: c.layerNormEps)
        layers = ModuleList((0..<c.numHiddenLayers).map { _ in CLIPEncoderLayer(configuration: c, generator: generator) })
        postLayernorm = LayerNorm(c.hiddenSize, eps: c.layerNormEps)
        super.init()
        registerModule("embeddings", embeddings)
        registerModule("pre_layrnorm", preLayrnorm)
        let encoder = Module()
        encoder.registerModule("layers", layers)
        registerModule("encoder", encoder)
        registerModule("post_layernorm", postLayernorm)

        let d = Float(c.hiddenSize), factor = c.initializerFactor
        let inStd = Foundation.pow(d, -0.5) * Foundation.pow(Float(2 * c.numHiddenLayers), -0.5) * factor
        for layer in layers.items {
            let a = layer.selfAttn
            for (linear, std) in [(a.qProj, inStd), (a.kProj, inStd), (a.vProj, inStd), (a.outProj, Foundation.pow(d, -0.5) * factor),
                                  (layer.mlp.fc1, Foundation.pow(2 * d, -0.5) * factor), (layer.mlp.fc2, inStd)] {
                linear.weight.copy(from: Tensor.randn(linear.weight.shape, std: std, generator: generator, dtype: linear.weight.dtype))
                linear.bias?.fill(0)
            }
        }
    }

    /// pixel values [batch, channels, size, size] → (last_hidden_state [batch, tokens, hidden],
    /// pooled output [batch, hidden] = post_layernorm of the class token).
    public func callAsFunction(_ pixels: Tensor) throws -> (lastHiddenState: Tensor, pooled: Tensor) {
        let c = configuration
        guard pixels.rank == 4, pixels.shape[1] == c.numChannels, pixels.shape[2] == c.imageSize, pixels.shape[3] == c.imageSize else {
            throw ModelError.invalidInput("pixel values of shape \(pixels.shape); the vision tower expects [batch, \(c.numChannels), \(c.imageSize), \(c.imageSize)]")
        }
        var x = preLayrnorm(embeddings(pixels))
        for layer in layers.items { x = layer(x) }
        let classToken = x.narrowed(axis: 1, start: 0, length: 1).reshaped([pixels.shape[0], c.hiddenSize])
        return (x, postLayernorm(classToken))
    }
}
