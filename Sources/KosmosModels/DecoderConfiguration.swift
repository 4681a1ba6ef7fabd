import Foundation

/// torchscale's `DecoderConfig` (torchscale/architecture/config.py), decoded from JSON with the
/// same field names; absent fields take torchscale's defaults. Only the fields that change the
/// dense decoder are kept (no mixture-of-experts, no relative position buckets).
public struct DecoderConfiguration: Codable, Equatable, Sendable {
    /// Absolute position embeddings added to the token embeddings (torchscale passes these in as a
    /// module; here they are part of the configuration).
    public enum AbsolutePositions: String, Codable, Sendable {
        case none
        /// torchscale's PositionalEmbedding: a learned table, positions starting at 2 (fairseq's offset).
        case learned
        /// fairseq's sinusoidal table (half sin, half cos), positions starting at 2.
        case sinusoidal
    }

    public var decoderEmbedDim = 768
    public var decoderAttentionHeads = 12
    public var decoderFfnEmbedDim = 3072
    public var decoderLayers = 12
    public var decoderNormalizeBefore = true
    public var activationFn = "gelu"
    public var dropout: Float = 0
    public var attentionDropout: Float = 0
    public var activationDropout: Float = 0
    public var noScaleEmbedding = true
    public var layernormEmbedding = false
    public var subln = true
    public var shareDecoderInputOutputEmbed = false
    public var maxTargetPositions = 1024
    public var layernormEps: Float = 1e-5
    public var vocabSize = -1
    public var xposRelPos = false
    public var xposScaleBase: Float = 512
    public var absolutePositions = AbsolutePositions.none
    /// fairseq's padding index: the sinusoidal table's zero row and the position offset.
    public var paddingIdx = 1
    /// Key/value heads (multi-query: 1; grouped-query: a divisor of the heads); nil: one per head,
    /// as torchscale. Query head h reads key/value head h / (heads / kvHeads); k_proj and v_proj
    /// give kvHeads × head size features, and the KV cache holds that many heads.
    public var decoderKvAttentionHeads: Int? = nil
    /// QK-norm: a LayerNorm over each head's query and key (`q_norm`, `k_norm`, head-size weights
    /// shared by the heads) after the projections, before the scaling and xPos.
    public var qkNorm = false
    /// Segment embeddings (`segment_emb`, this many rows) added with the positions, as
    /// Kosmos-2.5's text model does: the decoder adds row 0 at every position; a family whose
    /// prompt has other segments adds the difference to its input embeddings (MagnetoDecoder.embed).
    public var segmentEmbeddings = 0
    /// Whether sub-LN includes the LayerNorm inside attention (`inner_attn_ln`); nil: as `subln`.
    /// Kosmos-2.5's text model has sub-LN's ffn_layernorm without it.
    public var sublnAttention: Bool? = nil

    public init() {}

    /// Whether attention has sub-LN's `inner_attn_ln`.
    public var innerAttentionLayerNorm: Bool { sublnAttention ?? subln }

    /// Key/value heads in effect.
    public var kvAttentionHeads: Int { decoderKvAttentionHeads ?? decoderAttentionHeads }

    /// The most positions xPos can carry in float32 (nil without xPos). Its fastest-decaying pair
    /// (ζ₀ = 0.4d / 1.4d ≈ 0.2857) scales a query at centred position n by ζ₀^(n/scale_base) and a
    /// key by ζ₀^(−n/scale_base); with positions centred (|n| ≤ max/2) the largest factor is
    /// ζ₀^(−max/2/scale_base), which must stay within 2^118, leaving 2^10 of float32's 2^128 for the
    /// values it multiplies (bfloat16 has float32's exponent range; the cache is float32). 66,856
    /// positions at scale base 512; the limit grows with the scale base.
    public var xposPositionLimit: Int? {
        guard xposRelPos else { return nil }
        let d = decoderEmbedDim / Swift.max(decoderAttentionHeads, 1)
        let fastest = Double(Float(0.4 * Double(d)) / Float(1.4 * Double(d)))
        return Int((2 * Double(xposScaleBase) * 118 * Foundation.log(2.0) / -Foundation.log(fastest)).rounded(.down))
    }

    enum CodingKeys: String, CodingKey {
        case decoderEmbedDim = "decoder_embed_dim"
        case decoderAttentionHeads = "decoder_attention_heads"
        case decoderFfnEmbedDim = "decoder_ffn_embed_dim"
        case decoderLayers = "decoder_layers"
        case decoderNormalizeBefore = "decoder_normalize_before"
        case activationFn = "activation_fn"
        case dropout
        case attentionDropout = "attention_dropout"
        case activationDropout = "activation_dropout"
        case noScaleEmbedding = "no_scale_embedding"
        case layernormEmbedding = "layernorm_embedding"
        case subln
        case shareDecoderInputOutputEmbed = "share_decoder_input_output_embed"
        case maxTargetPositions = "max_target_positions"
        case layernormEps = "layernorm_eps"
        case vocabSize = "vocab_size"
        case xposRelPos = "xpos_rel_pos"
        case xposScaleBase = "xpos_scale_base"
        case absolutePositions = "absolute_positions"
        case paddingIdx = "padding_idx"
        case decoderKvAttentionHeads = "decoder_kv_attention_heads"
        case qkNorm = "qk_norm"
        case segmentEmbeddings = "segment_embeddings"
        case sublnAttention = "subln_attention"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = DecoderConfiguration()
        decoderEmbedDim = try c.decode(.decoderEmbedDim, default: d.decoderEmbedDim)
        decoderAttentionHeads = try c.decode(.decoderAttentionHeads, default: d.decoderAttentionHeads)
        decoderFfnEmbedDim = try c.decode(.decoderFfnEmbedDim, default: d.decoderFfnEmbedDim)
        decoderLayers = try c.decode(.decoderLayers, default: d.decoderLayers)
        decoderNormalizeBefore = try c.decode(.decoderNormalizeBefore, default: d.decoderNormalizeBefore)
        activationFn = try c.decode(.activationFn, default: d.activationFn)
        dropout = try c.decode(.dropout, default: d.dropout)
        attentionDropout = try c.decode(.attentionDropout, default: d.attentionDropout)
        activationDropout = try c.decode(.activationDropout, default: d.activationDropout)
        noScaleEmbedding = try c.decode(.noScaleEmbedding, default: d.noScaleEmbedding)
        layernormEmbedding = try c.decode(.layernormEmbedding, default: d.layernormEmbedding)
        subln = try c.decode(.subln, default: d.subln)
        shareDecoderInputOutputEmbed = try c.decode(.shareDecoderInputOutputEmbed, default: d.shareDecoderInputOutputEmbed)
        maxTargetPositions = try c.decode(.maxTargetPositions, default: d.maxTargetPositions)
        layernormEps = try c.decode(.layernormEps, default: d.layernormEps)
        vocabSize = try c.decode(.vocabSize, default: d.vocabSize)
        xposRelPos = try c.decode(.xposRelPos, default: d.xposRelPos)
        xposScaleBase = try c.decode(.xposScaleBase, default: d.xposScaleBase)
        absolutePositions = try c.decode(.absolutePositions, default: d.absolutePositions)
        paddingIdx = try c.decode(.paddingIdx, default: d.paddingIdx)
        decoderKvAttentionHeads = try c.decodeIfPresent(Int.self, forKey: .decoderKvAttentionHeads)
        qkNorm = try c.decode(.qkNorm, default: d.qkNorm)
        segmentEmbeddings = try c.decode(.segmentEmbeddings, default: d.segmentEmbeddings)
        sublnAttention = try c.decodeIfPresent(Bool.self, forKey: .sublnAttention)
        // torchscale: subln forces pre-norm.
        if subln { decoderNormalizeBefore = true }
    }

    /// Rejects configurations the decoder cannot be built from, naming the field.
    public func validate() throws {
        func fail(_ field: String, _ why: String) -> ModelError { .invalidConfiguration(field: field, reason: why) }
        guard decoderEmbedDim > 0 else { throw fail("decoder_embed_dim", "must be positive") }
        guard decoderAttentionHeads > 0, decoderEmbedDim % decoderAttentionHeads == 0 else {
            throw fail("decoder_attention_heads", "\(decoderAttentionHeads) does not divide decoder_embed_dim \(decoderEmbedDim)")
        }
        guard !xposRelPos || (decoderEmbedDim / decoderAttentionHeads) % 2 == 0 else {
            throw fail("xpos_rel_pos", "xPos needs an even head dimension")
        }
        if let kv = decoderKvAttentionHeads {
            guard kv > 0, decoderAttentionHeads % kv == 0 else {
                throw fail("decoder_kv_attention_heads", "\(kv) key/value heads do not divide the \(decoderAttentionHeads) attention heads; use a divisor of \(decoderAttentionHeads) (1: multi-query)")
            }
        }
        guard segmentEmbeddings >= 0 else { throw fail("segment_embeddings", "must not be negative") }
        guard segmentEmbeddings == 0 || absolutePositions == .sinusoidal else {
            throw fail("segment_embeddings", "segment embeddings are added with sinusoidal positions (absolute_positions \"sinusoidal\"); this configuration has \(absolutePositions.rawValue)")
        }
        guard xposScaleBase > 0, xposScaleBase.isFinite else { throw fail("xpos_scale_base", "must be positive") }
        if let limit = xposPositionLimit, maxTargetPositions > limit {
            throw fail("max_target_positions", "\(maxTargetPositions) positions are more than xPos can carry in float32 at xpos_scale_base \(xposScaleBase == xposScaleBase.rounded() ? String(Int(xposScaleBase)) : String(xposScaleBase)): its fastest-decaying pair scales queries and keys by 0.2857^(±positions/2/scale_base), which must stay within 2^±118, so at most \(limit) positions; lower max_target_positions or raise xpos_scale_base (the limit grows with it)")
        }
        guard decoderFfnEmbedDim > 0 else { throw fail("decoder_ffn_embed_dim", "must be positive") }
        guard decoderLayers > 0 else { throw fail("decoder_layers", "must be positive") }
        guard vocabSize > 0 else { throw fail("vocab_size", "must be positive") }
        guard ["gelu", "relu"].contains(activationFn) else {
            throw fail("activation_fn", "'\(activationFn)' is not supported (gelu, relu)")
        }
        for (name, p) in [("dropout", dropout), ("attention_dropout", attentionDropout), ("activation_dropout", activationDropout)] {
            guard p >= 0 && p < 1 else { throw fail(name, "must be in [0, 1)") }
        }
        guard layernormEps > 0 else { throw fail("layernorm_eps", "must be positive") }
        guard absolutePositions == .none || maxTargetPositions > 0 else {
            throw fail("max_target_positions", "must be positive with absolute positions")
        }
    }
}

/// Errors of model construction, loading and inputs.
public enum ModelError: Error, CustomStringConvertible, Equatable {
    case invalidConfiguration(field: String, reason: String)
    case sequenceTooLong(length: Int, maximum: Int)
    case invalidInput(String)

    public var description: String {
        switch self {
        case let .invalidConfiguration(field, reason): return "configuration field \(field): \(reason)"
        case let .sequenceTooLong(length, maximum): return "sequence of \(length) tokens is longer than the model's \(maximum) positions; shorten the input"
        case let .invalidInput(text): return text
        }
    }
}
