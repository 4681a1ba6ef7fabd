import Foundation
import KosmosNN
import KosmosTensor

// Kosmos-2.5 in transformers' format (models/kosmos2_5/modeling_kosmos2_5.py,
// Kosmos2_5ForConditionalGeneration): a Pix2Struct-style vision encoder over a variable number of
// flattened 16 × 16 patches (a linear patch embedding plus learned row and column embeddings,
// T5-style RMS norms, gated-GELU MLPs, padded patches masked out of attention), L2 normalisation,
// the image-to-text projection of Kosmos-2 (dense, latent queries, one cross-attention) to
// `latent_query_num` image tokens, and Kosmos-2's sub-LN text decoder with segment embeddings.

/// HF `Kosmos2_5VisionConfig`.
public struct Kosmos25VisionConfiguration: Decodable, Sendable {
    public var hiddenSize = 1536
    public var patchEmbedHiddenSize = 768
    public var intermediateSize = 3968
    public var headDim = 64
    public var numHiddenLayers = 18
    public var numAttentionHeads = 24
    public var denseActFn = "gelu_new"
    public var layerNormEps: Float = 1e-6
    public var maxNumPatches = 4096

    enum CodingKeys: String, CodingKey {
        case hiddenSize = "hidden_size", patchEmbedHiddenSize = "patch_embed_hidden_size"
        case intermediateSize = "intermediate_size", headDim = "head_dim", numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads", denseActFn = "dense_act_fn", layerNormEps = "layer_norm_eps"
        case maxNumPatches = "max_num_patches"
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = Kosmos25VisionConfiguration()
        hiddenSize = try c.decode(.hiddenSize, default: d.hiddenSize)
        patchEmbedHiddenSize = try c.decode(.patchEmbedHiddenSize, default: d.patchEmbedHiddenSize)
        intermediateSize = try c.decode(.intermediateSize, default: d.intermediateSize)
        headDim = try c.decode(.headDim, default: d.headDim)
        numHiddenLayers = try c.decode(.numHiddenLayers, default: d.numHiddenLayers)
        numAttentionHeads = try c.decode(.numAttentionHeads, default: d.numAttentionHeads)
        denseActFn = try c.decode(.denseActFn, default: d.denseActFn)
        layerNormEps = try c.decode(.layerNormEps, default: d.layerNormEps)
        maxNumPatches = try c.decode(.maxNumPatches, default: d.maxNumPatches)
    }

    func validate() throws {
        func fail(_ field: String, _ why: String) -> ModelError { .invalidConfiguration(field: "vision_config." + field, reason: why) }
        for (name, v) in [("hidden_size", hiddenSize), ("patch_embed_hidden_size", patchEmbedHiddenSize),
                          ("intermediate_size", intermediateSize), ("head_dim", headDim),
                          ("num_attention_heads", numAttentionHeads), ("max_num_patches", maxNumPatches)] where v <= 0 {
            throw fail(name, "must be positive, got \(v)")
        }
        guard numHiddenLayers >= 0 else { throw fail("num_hidden_layers", "must not be negative") }
        guard ["gelu_new", "gelu_pytorch_tanh", "gelu"].contains(denseActFn) else {
            throw fail("dense_act_fn", "'\(denseActFn)' is not supported (gelu_new, gelu_pytorch_tanh, gelu)")
        }
    }
}

/// HF `Kosmos2_5Config` (model_type "kosmos-2.5").
public struct Kosmos25Configuration: Decodable, Sendable {
    /// Kosmos-2.5's text-model defaults (`Kosmos2_5TextConfig`); same fields as Kosmos-2's.
    public static var textDefaults: Kosmos2Configuration.Text {
        var t = Kosmos2Configuration.Text()
        t.vocabSize = 108481
        t.maxPositionEmbeddings = 4096
        t.embedDim = 1536
        t.layers = 24
        t.ffnDim = 6144
        t.attentionHeads = 16
        return t
    }

    public var text = Kosmos25Configuration.textDefaults
    public var vision = Kosmos25VisionConfiguration()
    public var latentQueryNum = 2048
    public var tieWordEmbeddings = true

    enum CodingKeys: String, CodingKey {
        case text = "text_config", vision = "vision_config", latentQueryNum = "latent_query_num"
        case tieWordEmbeddings = "tie_word_embeddings"
    }

    private struct TextWithDefaults: Decodable {
        let text: Kosmos2Configuration.Text
        init(from decoder: Decoder) throws { text = try Kosmos2Configuration.Text(from: decoder, defaults: Kosmos25Configuration.textDefaults) }
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if let t = try c.decodeIfPresent(TextWithDefaults.self, forKey: .text) { text = t.text }
        if let v = try c.decodeIfPresent(Kosmos25VisionConfiguration.self, forKey: .vision) { vision = v }
        latentQueryNum = try c.decode(.latentQueryNum, default: latentQueryNum)
        // transformers 5 ties Kosmos-2.5's head by text_config.tie_word_embeddings alone (the
        // top-level flag is read but not used for it).
        tieWordEmbeddings = text.tieWordEmbeddings
    }

    /// The text model: Kosmos-2's decoder without the LayerNorm inside attention, plus two segment
    /// embeddings (text 0, image 1).
    public var decoder: DecoderConfiguration {
        var d = text.decoder(tied: tieWordEmbeddings)
        d.segmentEmbeddings = 2
        d.sublnAttention = false
        return d
    }
}

/// T5's layer norm (Pix2StructLayerNorm): x / √(mean(x²) + eps) · weight, no mean, no bias.
public final class RMSNorm: Module {
    public let weight: Tensor
    let eps: Float

    init(_ dimension: Int, eps: Float) {
        weight = Tensor.ones([dimension])
        self.eps = eps
        super.init()
        registerParameter("weight", weight)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let rms = (x.square().mean(axis: -1, keepDims: true) + eps).sqrt()
        return weight * (x / rms)
    }
}

/// Kosmos2_5VisionAttention: query/key/value/output without biases, heads × head_dim wide.
final class Kosmos25VisionAttention: Module {
    let query: Linear, key: Linear, value: Linear, output: Linear
    let heads: Int, headDim: Int

    init(_ c: Kosmos25VisionConfiguration, generator: RandomGenerator) {
        heads = c.numAttentionHeads
        headDim = c.headDim
        let inner = heads * headDim
        query = Linear(inFeatures: c.hiddenSize, outFeatures: inner, bias: false, generator: generator)
        key = Linear(inFeatures: c.hiddenSize, outFeatures: inner, bias: false, generator: generator)
        value = Linear(inFeatures: c.hiddenSize, outFeatures: inner, bias: false, generator: generator)
        output = Linear(inFeatures: inner, outFeatures: c.hiddenSize, bias: false, generator: generator)
        super.init()
        registerModule("query", query)
        registerModule("key", key)
        registerModule("value", value)
        registerModule("output", output)
    }

    /// `padding`: batch × patches, true for a padded patch (its key is left out; transformers adds
    /// the float minimum to its score, which softmax turns into an exact 0).
    func callAsFunction(_ x: Tensor, padding: [Bool]) -> Tensor {
        let batch = x.shape[0], length = x.shape[1]
        func split(_ t: Tensor) -> Tensor { t.reshaped([batch, length, heads, headDim]).permuted([0, 2, 1, 3]) }
        let out = Tensor.scaledDotProductAttention(query: split(query(x)), key: split(key(x)), value: split(value(x)),
                                                   keyPadding: padding, scale: Foundation.pow(Float(headDim), -0.5))
        return output(out.permuted([0, 2, 1, 3]).reshaped([batch, length, heads * headDim]))
    }
}

/// T5DenseGatedActDense: wo(act(wi_0 x) · wi_1 x).
final class Kosmos25VisionMLP: Module {
    let wi0: Linear, wi1: Linear, wo: Linear
    let activation: String

    init(_ c: Kosmos25VisionConfiguration, generator: RandomGenerator) {
        wi0 = Linear(inFeatures: c.hiddenSize, outFeatures: c.intermediateSize, bias: false, generator: generator)
        wi1 = Linear(inFeatures: c.hiddenSize, outFeatures: c.intermediateSize, bias: false, generator: generator)
        wo = Linear(inFeatures: c.intermediateSize, outFeatures: c.hiddenSize, bias: false, generator: generator)
        activation = c.denseActFn
        super.init()
        registerModule("wi_0", wi0)
        registerModule("wi_1", wi1)
        registerModule("wo", wo)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let gate = wi0(x)
        return wo((activation == "gelu" ? gate.gelu() : gate.geluTanh()) * wi1(x))
    }
}

final class Kosmos25VisionLayer: Module {
    let attention: Kosmos25VisionAttention
    let mlp: Kosmos25VisionMLP
    let preMlpLayerNorm: RMSNorm, preAttentionLayerNorm: RMSNorm

    init(_ c: Kosmos25VisionConfiguration, generator: RandomGenerator) {
        attention = Kosmos25VisionAttention(c, generator: generator)
        mlp = Kosmos25VisionMLP(c, generator: generator)
        preMlpLayerNorm = RMSNorm(c.hiddenSize, eps: c.layerNormEps)
        preAttentionLayerNorm = RMSNorm(c.hiddenSize, eps: c.layerNormEps)
        super.init()
        registerModule("attention", attention)
        registerModule("mlp", mlp)
        registerModule("pre_mlp_layer_norm", preMlpLayerNorm)
        registerModule("pre_attention_layer_norm", preAttentionLayerNorm)
    }

    func callAsFunction(_ x: Tensor, padding: [Bool]) -> Tensor {
        let h = attention(preAttentionLayerNorm(x), padding: padding) + x
        return mlp(preMlpLayerNorm(h)) + h
    }
}

/// Kosmos2_5VisionModel: embeddings, encoder.layer.N, the final layernorm.
public final class Kosmos25VisionModel: Module {
    public let configuration: Kosmos25VisionConfiguration
    let patchProjection: Linear
    let rowEmbedder: Embedding, columnEmbedder: Embedding
    let layers: ModuleList<Kosmos25VisionLayer>
    let layernorm: RMSNorm

    init(_ c: Kosmos25VisionConfiguration, generator: RandomGenerator) throws {
        try c.validate()
        configuration = c
        patchProjection = Linear(inFeatures: c.patchEmbedHiddenSize, outFeatures: c.hiddenSize, generator: generator)
        rowEmbedder = Embedding(count: c.maxNumPatches, dimension: c.hiddenSize, generator: generator)
        columnEmbedder = Embedding(count: c.maxNumPatches, dimension: c.hiddenSize, generator: generator)
        layers = ModuleList((0..<c.numHiddenLayers).map { _ in Kosmos25VisionLayer(c, generator: generator) })
        layernorm = RMSNorm(c.hiddenSize, eps: c.layerNormEps)
        super.init()
        let embeddings = Module(), encoder = Module()
        embeddings.registerModule("patch_projection", patchProjection)
        embeddings.registerModule("row_embedder", rowEmbedder)
        embeddings.registerModule("column_embedder", columnEmbedder)
        encoder.registerModule("layer", layers)
        registerModule("embeddings", embeddings)
        registerModule("encoder", encoder)
        registerModule("layernorm", layernorm)
    }

    /// flattened patches [batch, patches, 2 + patch values] → last_hidden_state [batch, patches,
    /// hidden] after the final norm. A patch whose values sum to zero is padding (transformers'
    /// mask when none is given, and the processor's own).
    public func callAsFunction(_ flattened: Tensor) throws -> Tensor {
        guard flattened.rank == 3, flattened.shape[2] == 2 + configuration.patchEmbedHiddenSize else {
            throw ModelError.invalidInput("flattened patches \(flattened.shape); the vision encoder takes [batch, patches, \(2 + configuration.patchEmbedHiddenSize)]")
        }
        let batch = flattened.shape[0], length = flattened.shape[1], depth = flattened.shape[2]
        let p = flattened.scalars
        var rows = [Int](), columns = [Int](), padding = [Bool]()
        rows.reserveCapacity(batch * length)
        for i in 0..<(batch * length) {
            let r = Int(p[i * depth]), c = Int(p[i * depth + 1])
            guard r >= 0, r < configuration.maxNumPatches, c >= 0, c < configuration.maxNumPatches,
                  Float(r) == p[i * depth], Float(c) == p[i * depth + 1] else {
                throw ModelError.invalidInput("patch \(i % length) has row/column ids (\(p[i * depth]), \(p[i * depth + 1])); they must be integers below max_num_patches \(configuration.maxNumPatches)")
            }
            rows.append(r)
            columns.append(c)
            var s: Float = 0
            for k in 0..<depth { s += p[i * depth + k] }
            padding.append(s == 0)
        }
        let pixels = flattened.narrowed(axis: 2, start: 2, length: depth - 2)
        var x = patchProjection(pixels) + rowEmbedder.weight.gatherRows(rows, indexShape: [batch, length])
            + columnEmbedder.weight.gatherRows(columns, indexShape: [batch, length])
        for layer in layers.items { x = layer(x, padding: padding) }
        return layernorm(x)
    }
}

/// Kosmos2_5ForConditionalGeneration, loaded from a transformers directory.
public final class Kosmos25Model: Module {
    public let configuration: Kosmos25Configuration
    public let textModel: MagnetoDecoder
    public let visionModel: Kosmos25VisionModel
    public let imageToTextProjection: Kosmos2ImageToTextProjection

    public init(configuration c: Kosmos25Configuration, generator: RandomGenerator) throws {
        guard c.latentQueryNum > 0 else {
            throw ModelError.invalidConfiguration(field: "latent_query_num", reason: "must be positive")
        }
        try c.vision.validate()  // before the decoder's weights are made
        configuration = c
        textModel = try MagnetoDecoder(configuration: c.decoder, generator: generator)
        visionModel = try Kosmos25VisionModel(c.vision, generator: generator)
        imageToTextProjection = Kosmos2ImageToTextProjection(visionDim: c.vision.hiddenSize, textDim: c.text.embedDim,
                                                             latents: c.latentQueryNum, heads: c.text.attentionHeads, generator: generator)
        super.init()
        // text_model.model.* (the decoder), text_model.lm_head (tied or untied, see load),
        // vision_model.*, image_to_text_projection.*.
        let text = Module()
        text.registerModule("model", textModel)
        registerModule("text_model", text)
        registerModule("vision_model", visionModel)
        registerModule("image_to_text_projection", imageToTextProjection)
    }

    /// Loads a transformers Kosmos-2.5 directory (config.json model_type "kosmos-2.5", safetensors).
    public static func load(directory: URL) throws -> Kosmos25Model {
        try loadTransformersDirectory(directory, family: Kosmos25Family.entry, configuration: Kosmos25Configuration.self,
                                      tied: \.tieWordEmbeddings, computed: ["text_model.model.embed_positions.weights"]) {
            try Kosmos25Model(configuration: $0, generator: RandomGenerator(seed: 0))
        }
    }

    /// Flattened patches [images, patches, 2 + patch values] → image embeddings [images,
    /// latent_query_num, text dim]: the vision encoder, L2 normalisation, the projection.
    public func imageEmbeddings(_ flattened: Tensor) throws -> Tensor {
        imageToTextProjection(try visionModel(flattened).l2Normalized())
    }

    /// The text model's input embeddings [1, length, dim] for a prompt in the processor's layout
    /// (`Kosmos25Layout`): token embeddings, the image's embeddings in the slots, and at every
    /// image position (markers and slots) the offset that gives it segment 1's embedding.
    func inputEmbeddings(tokens: [Int], flattened: Tensor) throws -> Tensor {
        let d = configuration.text.embedDim
        let layout = try Kosmos25Layout(tokens: tokens, slots: configuration.latentQueryNum)
        let images = try imageEmbeddings(flattened).reshaped([-1, d])
        guard images.shape[0] == layout.imagePositions.count else {
            throw ModelError.invalidInput("\(layout.imagePositions.count) image positions for \(images.shape[0]) image embeddings")
        }
        let offset = try textModel.segmentOffset(1).scalars
        var segment = [Float](repeating: 0, count: tokens.count * d)
        for p in layout.segmentPositions { segment.replaceSubrange((p * d)..<((p + 1) * d), with: offset) }
        let x = try textModel.embedTokens(tokens).replacingRows(at: layout.imagePositions, with: images)
            + Tensor(shape: [tokens.count, d], scalars: segment)
        return x.reshaped([1, tokens.count, d])
    }

    /// Logits [1, length, vocab] for `tokens` laid out as Kosmos2_5Processor lays them out, with
    /// one image's flattened patches [1, patches, depth] (or none: text only, segment 0 throughout).
    public func logits(tokens: [Int], flattened: Tensor?, cache: DecoderCache? = nil) throws -> Tensor {
        try textModel(tokens: tokens, batch: 1, length: tokens.count,
                      tokenEmbeddings: try flattened.map { try inputEmbeddings(tokens: tokens, flattened: $0) }, cache: cache)
    }
}

/// Where Kosmos2_5Processor puts one image: `<s>` (position 0), `<image>` (1), the slots
/// (2 ..< 2 + N), `</image>`, then the text. Its image_embeds_position_mask is 0, −1, N × 1, −1,
/// then 0: the slots take the image's embeddings, and every nonzero position segment 1.
struct Kosmos25Layout {
    let imagePositions: [Int]
    let segmentPositions: [Int]

    init(tokens: [Int], slots: Int) throws {
        guard tokens.count >= slots + 3 else {
            throw ModelError.invalidInput("\(tokens.count) tokens cannot hold <s>, <image>, \(slots) image slots and </image>")
        }
        imagePositions = Array(2..<(2 + slots))
        segmentPositions = Array(1..<(3 + slots))
    }
}
