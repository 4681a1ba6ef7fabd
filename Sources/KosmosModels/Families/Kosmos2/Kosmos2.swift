import Foundation
import KosmosNN
import KosmosTensor

// Microsoft's released Kosmos-2 in transformers' format (models/kosmos2/modeling_kosmos2.py,
// Kosmos2ForConditionalGeneration): a CLIP tower whose whole last_hidden_state goes through
// post_layernorm and L2 normalisation, an image-to-text projection (dense, 64 latent queries, one
// cross-attention over concat(dense(features), latents)), and a sub-LN text decoder with scaled
// embeddings and fairseq sinusoidal positions — our MagnetoDecoder with those options.

/// HF `Kosmos2Config` (model_type "kosmos-2") with its text and vision sub-configurations.
public struct Kosmos2Configuration: Decodable, Sendable {
    public struct Text: Decodable, Sendable {
        public var vocabSize = 65037
        public var maxPositionEmbeddings = 2048
        public var embedDim = 2048
        public var layers = 24
        public var ffnDim = 8192
        public var attentionHeads = 32
        public var activationFunction = "gelu"
        public var layerNormEps: Float = 1e-5
        public var scaleEmbedding = true
        public var padTokenId = 1
        public var bosTokenId = 0
        public var eosTokenId = 2
        /// text_config's own tie_word_embeddings (transformers ties the head if it or the top level says so).
        public var tieWordEmbeddings = true

        enum CodingKeys: String, CodingKey {
            case vocabSize = "vocab_size", maxPositionEmbeddings = "max_position_embeddings", embedDim = "embed_dim"
            case layers, ffnDim = "ffn_dim", attentionHeads = "attention_heads", activationFunction = "activation_function"
            case layerNormEps = "layer_norm_eps", scaleEmbedding = "scale_embedding", padTokenId = "pad_token_id"
            case bosTokenId = "bos_token_id", eosTokenId = "eos_token_id", tieWordEmbeddings = "tie_word_embeddings"
        }

        public init() {}

        public init(from decoder: Decoder) throws { try self.init(from: decoder, defaults: Text()) }

        /// Decoded with another family's defaults for absent fields (Kosmos-2.5's text model has
        /// these fields with other defaults).
        public init(from decoder: Decoder, defaults d: Text) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            vocabSize = try c.decode(.vocabSize, default: d.vocabSize)
            maxPositionEmbeddings = try c.decode(.maxPositionEmbeddings, default: d.maxPositionEmbeddings)
            embedDim = try c.decode(.embedDim, default: d.embedDim)
            layers = try c.decode(.layers, default: d.layers)
            ffnDim = try c.decode(.ffnDim, default: d.ffnDim)
            attentionHeads = try c.decode(.attentionHeads, default: d.attentionHeads)
            activationFunction = try c.decode(.activationFunction, default: d.activationFunction)
            layerNormEps = try c.decode(.layerNormEps, default: d.layerNormEps)
            scaleEmbedding = try c.decode(.scaleEmbedding, default: d.scaleEmbedding)
            padTokenId = try c.decode(.padTokenId, default: d.padTokenId)
            bosTokenId = try c.decode(.bosTokenId, default: d.bosTokenId)
            eosTokenId = try c.decode(.eosTokenId, default: d.eosTokenId)
            tieWordEmbeddings = try c.decode(.tieWordEmbeddings, default: d.tieWordEmbeddings)
        }
    }

    public var text = Text()
    public var vision = CLIPVisionConfiguration()
    public var latentQueryNum = 64
    /// Whether the LM head is the token embeddings. transformers 5 ties it when the top level or
    /// text_config says so; `Kosmos2Model.load` unties it anyway when the checkpoint holds a
    /// different `text_model.lm_head.weight`, as transformers' from_pretrained does.
    public var tieWordEmbeddings = true

    enum CodingKeys: String, CodingKey {
        case text = "text_config", vision = "vision_config", latentQueryNum = "latent_query_num"
        case tieWordEmbeddings = "tie_word_embeddings"
    }

    public init() {
        vision.hiddenSize = 1024
        vision.intermediateSize = 4096
        vision.numHiddenLayers = 24
        vision.numAttentionHeads = 16
        vision.patchSize = 14
    }

    public init(from decoder: Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        text = try c.decode(.text, default: text)
        if let v = try c.decodeIfPresent(CLIPVisionConfiguration.self, forKey: .vision) { vision = v }
        latentQueryNum = try c.decode(.latentQueryNum, default: latentQueryNum)
        tieWordEmbeddings = try c.decode(.tieWordEmbeddings, default: tieWordEmbeddings)
        tieWordEmbeddings = tieWordEmbeddings || text.tieWordEmbeddings
    }

    /// The text model as a MagnetoDecoder configuration (see `Text.decoder(tied:)`).
    public var decoder: DecoderConfiguration { text.decoder(tied: tieWordEmbeddings) }
}

extension Kosmos2Configuration.Text {
    /// The text model as a MagnetoDecoder configuration: sub-LN, no xPos, sinusoidal positions
    /// from padding_idx + 1, √d-scaled embeddings, the LM head tied to the embeddings unless
    /// `tied` is false (then it is the decoder's own output_projection).
    public func decoder(tied: Bool) -> DecoderConfiguration {
        let text = self
        var d = DecoderConfiguration()
        d.decoderEmbedDim = text.embedDim
        d.decoderLayers = text.layers
        d.decoderFfnEmbedDim = text.ffnDim
        d.decoderAttentionHeads = text.attentionHeads
        d.activationFn = text.activationFunction
        d.layernormEps = text.layerNormEps
        d.noScaleEmbedding = !text.scaleEmbedding
        d.subln = true
        d.xposRelPos = false
        d.absolutePositions = .sinusoidal
        d.paddingIdx = text.padTokenId
        d.vocabSize = text.vocabSize
        d.maxTargetPositions = text.maxPositionEmbeddings
        d.shareDecoderInputOutputEmbed = tied
        return d
    }
}

/// Cross-attention with biases and no norm (Kosmos2's KosmosTextAttention as x_attn): queries from
/// `query`, keys and values from `keyValue`; scores scaled by head_dim^-½.
public final class CrossAttention: Module {
    public let kProj: Linear, vProj: Linear, qProj: Linear, outProj: Linear
    let heads: Int, headDim: Int

    init(dimension: Int, heads: Int, generator: RandomGenerator) {
        self.heads = heads
        headDim = dimension / heads
        kProj = Linear(inFeatures: dimension, outFeatures: dimension, generator: generator)
        vProj = Linear(inFeatures: dimension, outFeatures: dimension, generator: generator)
        qProj = Linear(inFeatures: dimension, outFeatures: dimension, generator: generator)
        outProj = Linear(inFeatures: dimension, outFeatures: dimension, generator: generator)
        super.init()
        registerModule("k_proj", kProj)
        registerModule("v_proj", vProj)
        registerModule("q_proj", qProj)
        registerModule("out_proj", outProj)
    }

    func callAsFunction(query: Tensor, keyValue: Tensor) -> Tensor {
        let batch = query.shape[0], queries = query.shape[1], keys = keyValue.shape[1], dim = query.shape[2]
        func split(_ t: Tensor, _ length: Int) -> Tensor { t.reshaped([batch, length, heads, headDim]).permuted([0, 2, 1, 3]) }
        let out = Tensor.scaledDotProductAttention(query: split(qProj(query), queries), key: split(kProj(keyValue), keys),
                                                   value: split(vProj(keyValue), keys), scale: Foundation.pow(Float(headDim), -0.5))
        return outProj(out.permuted([0, 2, 1, 3]).reshaped([batch, queries, dim]))
    }
}

/// Kosmos2ImageToTextProjection: image features → `latentQueryNum` text-space embeddings.
public final class Kosmos2ImageToTextProjection: Module {
    public let dense: Linear
    public let latentQuery: Tensor
    public let xAttn: CrossAttention

    /// `visionDim` features → `latents` × `textDim` embeddings, the cross-attention with `heads` heads.
    init(visionDim: Int, textDim: Int, latents: Int, heads: Int, generator: RandomGenerator) {
        dense = Linear(inFeatures: visionDim, outFeatures: textDim, generator: generator)
        latentQuery = Tensor.randn([latents, textDim], generator: generator)
        xAttn = CrossAttention(dimension: textDim, heads: heads, generator: generator)
        super.init()
        registerModule("dense", dense)
        registerParameter("latent_query", latentQuery)
        registerModule("x_attn", xAttn)
    }

    func callAsFunction(_ features: Tensor) -> Tensor {
        let hidden = dense(features)
        let batch = hidden.shape[0]
        let latents = latentQuery.unsqueezed(0).expanded(to: [batch] + latentQuery.shape)
        return xAttn(query: latents, keyValue: Tensor.concatenate([hidden, latents], axis: 1))
    }
}

/// Kosmos2ForConditionalGeneration, loaded from a transformers directory.
public final class Kosmos2Model: Module {
    public let configuration: Kosmos2Configuration
    public let textModel: MagnetoDecoder
    public let visionModel: CLIPVisionTransformer
    public let imageToTextProjection: Kosmos2ImageToTextProjection

    public init(configuration c: Kosmos2Configuration, generator: RandomGenerator) throws {
        // The text and vision parts are checked by their own configurations; the projection's
        // latent count comes straight from config.json.
        guard c.latentQueryNum > 0 else {
            throw ModelError.invalidConfiguration(field: "latent_query_num", reason: "must be positive")
        }
        configuration = c
        textModel = try MagnetoDecoder(configuration: c.decoder, generator: generator)
        visionModel = try CLIPVisionTransformer(configuration: c.vision, generator: generator)
        imageToTextProjection = Kosmos2ImageToTextProjection(visionDim: c.vision.hiddenSize, textDim: c.text.embedDim,
                                                             latents: c.latentQueryNum, heads: c.text.attentionHeads, generator: generator)
        super.init()
        // State-dict layout: text_model.model.* (the decoder), vision_model.model.* (the tower),
        // image_to_text_projection.*; the LM head is tied to text_model.model.embed_tokens, or (untied)
        // text_model.model.output_projection, which load(directory:) reads from text_model.lm_head.
        let text = Module(), vision = Module()
        text.registerModule("model", textModel)
        vision.registerModule("model", visionModel)
        registerModule("text_model", text)
        registerModule("vision_model", vision)
        registerModule("image_to_text_projection", imageToTextProjection)
    }

    /// Loads a transformers Kosmos-2 directory (config.json model_type "kosmos-2", safetensors).
    /// A tied head is text_model.lm_head.weight in the file (or absent); an untied one is read from
    /// there into the decoder's output projection. Position tables are computed, not stored.
    public static func load(directory: URL) throws -> Kosmos2Model {
        try loadTransformersDirectory(directory, family: Kosmos2Family.entry, configuration: Kosmos2Configuration.self,
                                      tied: \.tieWordEmbeddings,
                                      computed: ["text_model.model.embed_positions.weights", "vision_model.model.embeddings.position_ids"]) {
            try Kosmos2Model(configuration: $0, generator: RandomGenerator(seed: 0))
        }
    }

    /// pixel values [images, 3, size, size] → image embeddings [images, latentQueryNum, text dim]:
    /// post_layernorm over every token, L2 normalisation, then the projection.
    public func imageEmbeddings(_ pixels: Tensor) throws -> Tensor {
        let last = try visionModel(pixels).lastHiddenState
        return imageToTextProjection(visionModel.postLayernorm(last).l2Normalized())
    }

    /// Logits [1, length, vocab] for `tokens` whose `imagePositions` take the image embeddings (in
    /// order), before the √d scaling as transformers does. With a cache the tokens are appended.
    public func logits(tokens: [Int], imagePositions: [Int], pixels: Tensor?, cache: DecoderCache? = nil) throws -> Tensor {
        try textModel(tokens: tokens, batch: 1, length: tokens.count,
                      tokenEmbeddings: try inputEmbeddings(tokens: tokens, imagePositions: imagePositions, pixels: pixels), cache: cache)
    }

    /// The text model's input embeddings [1, length, dim] with the image's embeddings at
    /// `imagePositions` (the image encoded here); nil without an image.
    func inputEmbeddings(tokens: [Int], imagePositions: [Int], pixels: Tensor?) throws -> Tensor? {
        guard let pixels else { return nil }
        let d = configuration.text.embedDim
        let images = try imageEmbeddings(pixels).reshaped([-1, d])
        guard images.shape[0] == imagePositions.count else {
            throw ModelError.invalidInput("\(imagePositions.count) image positions for \(images.shape[0]) image embeddings")
        }
        return try textModel.embedTokens(tokens).replacingRows(at: imagePositions, with: images).reshaped([1, tokens.count, d])
    }

    /// Kosmos2Processor's prompt text for one image: `<s>`, `<image>`, 64 image slots, `</image>`, then
    /// the text; the caller tokenizes it and `imageSlots(in:)` sets the slot ids.
    public func promptText(_ text: String) -> String {
        let slots = [String](repeating: "<image>", count: configuration.latentQueryNum)
        return "<s>" + (["<image>"] + slots + ["</image>"]).joined(separator: " ") + " " + text.trimmingCharacters(in: .whitespaces)
    }

    /// Replaces the ids of the 64 placeholder tokens after the first `<image>` with the processor's
    /// image token ids (unk + 1 …) and returns their positions.
    public func imageSlots(in tokens: inout [Int], imageTokenId: Int, unknownTokenId: Int) throws -> [Int] {
        guard let start = tokens.firstIndex(of: imageTokenId), start + configuration.latentQueryNum < tokens.count else {
            throw ModelError.invalidInput("the prompt has no <image> followed by \(configuration.latentQueryNum) image tokens")
        }
        let positions = Array((start + 1)...(start + configuration.latentQueryNum))
        for (i, p) in positions.enumerated() { tokens[p] = unknownTokenId + 1 + i }
        return positions
    }

    /// Continues tokens (with one image) using the KV cache, as KosmosModel.generate.
    public func generate(tokens: [Int], imagePositions: [Int], pixels: Tensor?, options: GenerationOptions = GenerationOptions(),
                         onToken: (Int) -> Bool = { _ in true }) throws -> [Int] {
        try generate(ModelInput(Kosmos2Prompt(tokens: tokens, imagePositions: imagePositions, pixels: pixels)),
                     options: options, onToken: onToken)
    }
}

/// One Kosmos-2 generation input: token ids whose `imagePositions` take the image's embeddings.
public struct Kosmos2Prompt {
    public var tokens: [Int]
    public var imagePositions: [Int]
    /// [1, 3, size, size], or nil for text only.
    public var pixels: Tensor?

    public init(tokens: [Int], imagePositions: [Int], pixels: Tensor?) {
        self.tokens = tokens
        self.imagePositions = imagePositions
        self.pixels = pixels
    }
}

extension Kosmos2Model {
    /// Generates for several prompts together: each is prefilled alone, then all decode in one
    /// batched decoder step per token (beam search: one prompt at a time). Each result equals
    /// `generate(tokens:imagePositions:pixels:options:onToken:)` on that prompt alone.
    public func generate(_ prompts: [Kosmos2Prompt], options: GenerationOptions = GenerationOptions(),
                         onToken: (Int, Int) -> Bool = { _, _ in true }) throws -> [[Int]] {
        try generate(prompts.map(ModelInput.init), options: options, onToken: onToken)
    }
}
