import Foundation
import KosmosNN
import KosmosTensor

// The Magneto (sub-LN) decoder of torchscale 0.3: torchscale/architecture/decoder.py,
// component/multihead_attention.py, component/feedforward_network.py,
// component/xpos_relative_position.py. Module and parameter names equal torchscale's state_dict keys.

/// torchscale's XPOS: rotary position angles on interleaved pairs, with a per-pair decay
/// ζᵢ^(n/scale_base) (ζᵢ = (2i + 0.4d)/(1.4d), n a centred position) on queries and its inverse on keys.
public final class XPos: Module {
    public let headDim: Int
    public let scaleBase: Float
    /// Buffer `scale` [headDim/2] = ζ, saved in the state dict as torchscale does.
    public let scale: Tensor

    public init(headDim: Int, scaleBase: Float) {
        self.headDim = headDim
        self.scaleBase = scaleBase
        // (arange(0, d, 2) + 0.4·d) / (1.4·d), in float32 like the reference buffer.
        let offset = Float(0.4 * Double(headDim)), divisor = Float(1.4 * Double(headDim))
        scale = Tensor(shape: [headDim / 2], scalars: (0..<headDim / 2).map { (Float(2 * $0) + offset) / divisor })
        super.init()
        registerBuffer("scale", scale)
    }

    /// Coefficient tables (cos·ζⁿ, sin·ζⁿ) for the last `length` of `length + offset` positions, as
    /// XPOS.forward computes them: angles from positions 0..<length+offset, decay exponents from the
    /// same positions centred at −(length+offset)//2; `downscale` (keys) uses 1/ζⁿ.
    public func tables(length: Int, offset: Int = 0, downscale: Bool) -> (cos: Tensor, sin: Tensor) {
        tables(length: length, offset: offset, minPosition: Int((-Double(length + offset) / 2).rounded(.down)), downscale: downscale)
    }

    /// The tables for positions offset..<offset+length with the decay exponents centred on a given
    /// `minPosition` (position p decays as ζ^((p + minPosition)/scale_base)). In q·k the centre
    /// cancels (ζ^((i + m)/s) · ζ^(−(j + m)/s) = ζ^((i − j)/s)), so a KV cache may rotate each key
    /// once with a fixed centre instead of re-rotating every key at every step as torchscale does.
    public func tables(length: Int, offset: Int, minPosition: Int, downscale: Bool) -> (cos: Tensor, sin: Tensor) {
        let half = headDim / 2
        let rows = length + offset
        let inverseFrequency = (0..<half).map { 1 / Foundation.pow(Float(10000), Float($0) / Float(half)) }
        let zeta = scale.scalars
        var cosTable = [Float](repeating: 0, count: length * half)
        var sinTable = [Float](repeating: 0, count: length * half)
        for row in offset..<rows {
            let exponent = Float(minPosition + row) / scaleBase
            for i in 0..<half {
                var decay = Foundation.pow(zeta[i], exponent)
                if downscale { decay = 1 / decay }
                let angle = Float(row) * inverseFrequency[i]
                cosTable[(row - offset) * half + i] = Foundation.cos(angle) * decay
                sinTable[(row - offset) * half + i] = Foundation.sin(angle) * decay
            }
        }
        return (Tensor(shape: [length, half], scalars: cosTable), Tensor(shape: [length, half], scalars: sinTable))
    }

    /// Applies xPos to x of shape [..., length, headDim].
    public func callAsFunction(_ x: Tensor, offset: Int = 0, downscale: Bool) -> Tensor {
        let t = tables(length: x.shape[x.rank - 2], offset: offset, downscale: downscale)
        return x.rotatingPairs(cos: t.cos, sin: t.sin)
    }

    /// Applies xPos to x [..., length, headDim] at positions offset..<offset+length, centred on `minPosition`.
    public func callAsFunction(_ x: Tensor, offset: Int, minPosition: Int, downscale: Bool) -> Tensor {
        let t = tables(length: x.shape[x.rank - 2], offset: offset, minPosition: minPosition, downscale: downscale)
        return x.rotatingPairs(cos: t.cos, sin: t.sin)
    }
}

/// The keys and values one attention layer has seen, in a preallocated `KVBuffer` (appends write
/// in place; a step copies nothing of the past). With xPos, each key is stored already rotated and
/// decayed, once, with the decay centred on a fixed position (`minPosition`) instead of torchscale's
/// centre at half the current length, which would re-rotate every cached key at every step; the
/// centre cancels in q·k, so the scores are torchscale's up to float32 rounding (tested to 1e-5
/// against its incremental decoding).
public final class LayerKVCache {
    /// Makes the storage at the first append: (batch, heads, head size, reservation) → a cache.
    public typealias Storage = (_ batch: Int, _ heads: Int, _ headDim: Int, _ reservation: Int) -> any KeyValueCache
    /// The preallocated float32 storage.
    public static let preallocated: Storage = { KVBuffer(batch: $0, heads: $1, headDim: $2, capacity: $3) }

    /// Created by the first append (its batch, heads and head size come from the keys).
    public internal(set) var buffer: (any KeyValueCache)?
    /// The centre of the xPos decay exponents of this cache's keys and queries.
    public let minPosition: Int
    /// Positions to allocate at the first append (0: the appended ones plus the growth chunk).
    public let reservation: Int
    let storage: Storage

    public init(minPosition: Int = 0, reservation: Int = 0, storage: @escaping Storage = LayerKVCache.preallocated) {
        self.minPosition = minPosition
        self.reservation = reservation
        self.storage = storage
    }

    /// Positions stored.
    public var count: Int { buffer?.count ?? 0 }

    /// The storage for `batch` × `heads` × `headDim` keys, made at the first call.
    func buffer(batch: Int, heads: Int, headDim: Int) -> any KeyValueCache {
        if let buffer { return buffer }
        let made = storage(batch, heads, headDim, reservation)
        buffer = made
        return made
    }

    /// The same positions in storage of its own.
    public func copy() -> LayerKVCache {
        let copy = LayerKVCache(minPosition: minPosition, reservation: reservation, storage: storage)
        copy.buffer = buffer?.copied()
        return copy
    }

    /// Each stored sequence `copies` times, with room for `extra` more positions (nil where the
    /// storage cannot replicate itself).
    public func replicated(_ copies: Int, extra: Int) -> LayerKVCache? {
        let copy = LayerKVCache(minPosition: minPosition, reservation: reservation, storage: storage)
        if let buffer {
            guard let replica = buffer.replicated(copies, extra: extra) else { return nil }
            copy.buffer = replica
        }
        return copy
    }
}

/// Everything a decoder needs to continue a sequence one step at a time without recomputing it.
public final class DecoderCache {
    public let layers: [LayerKVCache]
    /// Positions already processed.
    public internal(set) var length = 0

    /// `minPosition`: the xPos centre of every layer (`MagnetoDecoder.makeCache` uses
    /// −max_target_positions/2, which keeps the decay factors within ζ^(±max/2/scale_base));
    /// `reservation`: positions to allocate up front.
    /// `storage` makes each layer's keys and values (default: `KVBuffer`, preallocated float32).
    public init(layers: Int, minPosition: Int = 0, reservation: Int = 0,
                storage: @escaping LayerKVCache.Storage = LayerKVCache.preallocated) {
        self.layers = (0..<layers).map { _ in LayerKVCache(minPosition: minPosition, reservation: reservation, storage: storage) }
    }

    private init(layers: [LayerKVCache], length: Int) {
        self.layers = layers
        self.length = length
    }

    /// A cache that continues from the same positions, with buffers of its own (beam search).
    public func copy() -> DecoderCache {
        DecoderCache(layers: layers.map { $0.copy() }, length: length)
    }

    /// A cache of `copies` sequences, each continuing from this one's positions (several
    /// continuations of one prompt in one batched pass), with room for `extra` more positions;
    /// nil where a layer's storage cannot replicate itself.
    public func replicated(_ copies: Int, extra: Int = 0) -> DecoderCache? {
        var replicas: [LayerKVCache] = []
        for layer in layers {
            guard let replica = layer.replicated(copies, extra: extra) else { return nil }
            replicas.append(replica)
        }
        return DecoderCache(layers: replicas, length: length)
    }
}

/// torchscale's MultiheadAttention used as causal self-attention, with sub-LN (`inner_attn_ln`
/// on the concatenated heads before `out_proj`) and optional xPos; and, as configuration options
/// beyond torchscale, fewer key/value heads than query heads (multi-query and grouped-query
/// attention) and QK-norm (scripts/reference/attention_variants_reference.py).
public final class MagnetoSelfAttention: Module {
    public let kProj: Linear, vProj: Linear, qProj: Linear, outProj: Linear
    public let innerAttnLn: LayerNorm?
    /// QK-norm: LayerNorms over each head's query and key (head-size weights shared by the heads).
    public let qNorm: LayerNorm?, kNorm: LayerNorm?
    public let xpos: XPos?
    public let heads: Int
    /// Key/value heads: `heads` unless grouped (a divisor of it; 1 is multi-query).
    public let kvHeads: Int
    public let headDim: Int
    let attentionDropout: Float
    let generator: RandomGenerator

    public init(configuration c: DecoderConfiguration, generator: RandomGenerator) {
        let d = c.decoderEmbedDim
        heads = c.decoderAttentionHeads
        kvHeads = c.kvAttentionHeads
        headDim = d / heads
        kProj = Linear(inFeatures: d, outFeatures: kvHeads * headDim, generator: generator)
        vProj = Linear(inFeatures: d, outFeatures: kvHeads * headDim, generator: generator)
        qProj = Linear(inFeatures: d, outFeatures: d, generator: generator)
        outProj = Linear(inFeatures: d, outFeatures: d, generator: generator)
        innerAttnLn = c.innerAttentionLayerNorm ? LayerNorm(d, eps: c.layernormEps) : nil
        qNorm = c.qkNorm ? LayerNorm(headDim, eps: c.layernormEps) : nil
        kNorm = c.qkNorm ? LayerNorm(headDim, eps: c.layernormEps) : nil
        xpos = c.xposRelPos ? XPos(headDim: d / heads, scaleBase: c.xposScaleBase) : nil
        attentionDropout = c.attentionDropout
        self.generator = generator
        super.init()
        registerModule("k_proj", kProj)
        registerModule("v_proj", vProj)
        registerModule("q_proj", qProj)
        registerModule("out_proj", outProj)
        if let innerAttnLn { registerModule("inner_attn_ln", innerAttnLn) }
        if let qNorm, let kNorm {
            registerModule("q_norm", qNorm)
            registerModule("k_norm", kNorm)
        }
        if let xpos { registerModule("xpos", xpos) }
    }

    /// Queries (QK-normed, then scaled by head_dim^-½ as the reference scales them before xPos),
    /// keys (QK-normed) and values of x [batch, length, dim]: [batch, length, heads × headDim] and
    /// [batch, length, kvHeads × headDim].
    func project(_ x: Tensor) -> (query: Tensor, key: Tensor, value: Tensor) {
        func normed(_ t: Tensor, _ norm: LayerNorm?, heads: Int) -> Tensor {
            guard let norm else { return t }
            let shape = t.shape
            return norm(t.reshaped([shape[0], shape[1], heads, headDim])).reshaped(shape)
        }
        let projected = Linear.apply([qProj, kProj, vProj], to: x)
        let query = normed(projected[0], qNorm, heads: heads).scaled(by: Foundation.pow(Float(headDim), -0.5))
        return (query, normed(projected[1], kNorm, heads: kvHeads), projected[2])
    }

    /// x [batch, length, dim] → [batch, length, dim]; causal. With a cache, x holds the new
    /// positions only: they attend to the cached ones too, and are appended to the cache.
    /// `keyPadding` has batch × (all key positions) flags.
    public func callAsFunction(_ x: Tensor, keyPadding: [Bool]? = nil, cache: LayerKVCache? = nil) -> Tensor {
        let batch = x.shape[0], length = x.shape[1], dim = x.shape[2]
        let (query, key, value) = project(x)
        let attention = attend(query: query, key: key, value: value, keyPadding: keyPadding, cache: cache)
        return output(attention.reshaped([batch, length, dim]))
    }

    /// One new position for each of n independent sequences: row i of x [n, 1, dim] continues the
    /// sequence whose keys and values are in `caches[i]` (each of its own length). The projections
    /// run once over all n rows; attention runs per sequence against its own cache, with xPos
    /// centred on that sequence's length. Each cache grows by one position.
    public func step(_ x: Tensor, caches: [LayerKVCache]) -> Tensor {
        let n = x.shape[0], dim = x.shape[2]
        precondition(x.shape[1] == 1 && caches.count == n, "step takes one position per sequence and one cache per row")
        let (queries, keys, values) = project(x)
        var rows: [Tensor] = []
        rows.reserveCapacity(n)
        for (i, cache) in caches.enumerated() {
            func row(_ t: Tensor) -> Tensor { n == 1 ? t : t.narrowed(axis: 0, start: i, length: 1) }
            rows.append(attend(query: row(queries), key: row(keys), value: row(values), keyPadding: nil, cache: cache))
        }
        let attention = n == 1 ? rows[0] : Tensor.concatenate(rows, axis: 0)
        return output(attention.reshaped([n, 1, dim]))
    }

    /// Attention of projected (and scaled) queries [batch, length, dim] over keys and values
    /// [batch, length, kvHeads × headDim], the cached positions first; returns the heads merged
    /// [batch, length, dim] before sub-LN.
    func attend(query: Tensor, key: Tensor, value: Tensor, keyPadding: [Bool]?, cache: LayerKVCache?) -> Tensor {
        let batch = query.shape[0], length = query.shape[1], dim = query.shape[2]
        func splitHeads(_ t: Tensor, _ heads: Int) -> Tensor {
            t.reshaped([batch, length, heads, headDim]).permuted([0, 2, 1, 3])
        }
        var q = splitHeads(query, heads)
        var k = splitHeads(key, kvHeads)
        let v = splitHeads(value, kvHeads)
        if let cache {
            // New keys rotated once at their own positions, appended in place; attention reads the
            // stored prefix (inference: no dropout, no autograd through the cache).
            let start = cache.count
            if let xpos {
                k = xpos(k, offset: start, minPosition: cache.minPosition, downscale: true)
                q = xpos(q, offset: start, minPosition: cache.minPosition, downscale: false)
            }
            let buffer = cache.buffer(batch: batch, heads: kvHeads, headDim: headDim)
            buffer.append(keys: k, values: v)
            return buffer.attention(query: q, causal: true, keyPadding: keyPadding).permuted([0, 2, 1, 3]).reshaped([batch, length, dim])
        }
        if let xpos {
            // Queries are the last `length` of the key positions: torchscale's offset src_len − 1
            // for one new token, 0 on the first step.
            let offset = k.shape[2] - length
            k = xpos(k, offset: 0, downscale: true)
            q = xpos(q, offset: offset, downscale: false)
        }
        // Queries come scaled (torchscale scales before rotating): scale 1 here. Fused unless
        // attention dropout is on while training.
        let attention = Tensor.scaledDotProductAttention(
            query: q, key: k, value: v, causal: true, keyPadding: keyPadding, scale: 1,
            dropout: isTraining && attentionDropout > 0 ? (attentionDropout, generator) : nil)
        return attention.permuted([0, 2, 1, 3]).reshaped([batch, length, dim])
    }

    /// Sub-LN over the merged heads, then out_proj.
    func output(_ attention: Tensor) -> Tensor {
        outProj(innerAttnLn.map { $0(attention) } ?? attention)
    }
}

/// torchscale's FeedForwardNetwork: fc1 → activation → dropout → ffn_layernorm (sub-LN) → fc2 → dropout.
public final class MagnetoFeedForward: Module {
    public let fc1: Linear, fc2: Linear
    public let ffnLayernorm: LayerNorm?
    let activation: String
    let activationDropout: Dropout, dropout: Dropout

    public init(configuration c: DecoderConfiguration, generator: RandomGenerator) {
        fc1 = Linear(inFeatures: c.decoderEmbedDim, outFeatures: c.decoderFfnEmbedDim, generator: generator)
        fc2 = Linear(inFeatures: c.decoderFfnEmbedDim, outFeatures: c.decoderEmbedDim, generator: generator)
        ffnLayernorm = c.subln ? LayerNorm(c.decoderFfnEmbedDim, eps: c.layernormEps) : nil
        activation = c.activationFn
        activationDropout = Dropout(probability: c.activationDropout, generator: generator)
        dropout = Dropout(probability: c.dropout, generator: generator)
        super.init()
        registerModule("fc1", fc1)
        registerModule("fc2", fc2)
        if let ffnLayernorm { registerModule("ffn_layernorm", ffnLayernorm) }
        registerModule("activation_dropout_module", activationDropout)
        registerModule("dropout_module", dropout)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        var h = fc1(x)
        h = activation == "relu" ? h.relu() : h.gelu()
        h = activationDropout(h)
        if let ffnLayernorm { h = ffnLayernorm(h) }
        return dropout(fc2(h))
    }
}

/// torchscale's DecoderLayer without cross-attention (decoder-only).
public final class MagnetoDecoderLayer: Module {
    public let selfAttn: MagnetoSelfAttention
    public let selfAttnLayerNorm: LayerNorm
    public let ffn: MagnetoFeedForward
    public let finalLayerNorm: LayerNorm
    let dropout: Dropout
    let normalizeBefore: Bool

    public init(configuration c: DecoderConfiguration, generator: RandomGenerator) {
        selfAttn = MagnetoSelfAttention(configuration: c, generator: generator)
        selfAttnLayerNorm = LayerNorm(c.decoderEmbedDim, eps: c.layernormEps)
        ffn = MagnetoFeedForward(configuration: c, generator: generator)
        finalLayerNorm = LayerNorm(c.decoderEmbedDim, eps: c.layernormEps)
        dropout = Dropout(probability: c.dropout, generator: generator)
        normalizeBefore = c.decoderNormalizeBefore
        super.init()
        registerModule("self_attn", selfAttn)
        registerModule("self_attn_layer_norm", selfAttnLayerNorm)
        registerModule("ffn", ffn)
        registerModule("final_layer_norm", finalLayerNorm)
        registerModule("dropout_module", dropout)
    }

    public func callAsFunction(_ input: Tensor, keyPadding: [Bool]? = nil, cache: LayerKVCache? = nil) -> Tensor {
        forward(input) { selfAttn($0, keyPadding: keyPadding, cache: cache) }
    }

    /// One new position for each of n independent sequences (x [n, 1, dim]), see `MagnetoSelfAttention.step`.
    public func step(_ input: Tensor, caches: [LayerKVCache]) -> Tensor {
        forward(input) { selfAttn.step($0, caches: caches) }
    }

    func forward(_ input: Tensor, attention: (Tensor) -> Tensor) -> Tensor {
        var x = input
        var residual = x
        if normalizeBefore { x = selfAttnLayerNorm(x) }
        x = residual + dropout(attention(x))
        if !normalizeBefore { x = selfAttnLayerNorm(x) }
        residual = x
        if normalizeBefore { x = finalLayerNorm(x) }
        x = residual + ffn(x)
        if !normalizeBefore { x = finalLayerNorm(x) }
        return x
    }
}

/// torchscale's Decoder (decoder-only): embeddings, layers, final layer_norm, output projection.
public final class MagnetoDecoder: Module {
    public let configuration: DecoderConfiguration
    public let embedTokens: Embedding
    /// Learned absolute positions (`embed_positions.weight`, max_target_positions + 2 rows).
    public let embedPositions: Embedding?
    /// Segment embeddings (`segment_emb`), when the configuration has them: row 0 is added at
    /// every position together with the absolute positions.
    public let segmentEmbedding: Embedding?
    public let layernormEmbedding: LayerNorm?
    public let layers: ModuleList<MagnetoDecoderLayer>
    public let layerNorm: LayerNorm?
    public let outputProjection: Linear
    let dropout: Dropout
    let embedScale: Float
    /// The generator every dropout of the decoder draws from.
    let generator: RandomGenerator
    /// Activation checkpointing while training: each layer keeps only its input and runs again
    /// in the backward pass (`Tensor.checkpoint`, dropout replayed), so a long sequence needs the
    /// activations of one layer at a time instead of all of them. Same gradients, one more forward.
    public var checkpointActivations = false

    /// A freshly initialised decoder, as torchscale initialises it: PyTorch's default Linear init,
    /// then (sub-LN) every fc1, fc2, out_proj and v_proj parameter, biases included, × √(ln 2N);
    /// output projection N(0, d^-½); token embeddings N(0, d^-½) with the padding row zero
    /// (torchscale's TextEmbedding); learned positions likewise.
    public init(configuration c: DecoderConfiguration, generator: RandomGenerator) throws {
        try c.validate()
        configuration = c
        let d = c.decoderEmbedDim
        embedTokens = Embedding(count: c.vocabSize, dimension: d, paddingIndex: c.paddingIdx, generator: generator)
        // Generated in the weight's dtype (16-bit weights take the float32 values rounded).
        let table = Tensor.randn([c.vocabSize, d], std: Foundation.pow(Float(d), -0.5), generator: generator, dtype: embedTokens.weight.dtype)
        table.zeroRow(c.paddingIdx)
        embedTokens.weight.copy(from: table)
        if c.absolutePositions == .learned {
            let table = Embedding(count: c.maxTargetPositions + 2, dimension: d, followsWeightDType: false, generator: generator)
            table.weight.copy(from: Tensor.randn(table.weight.shape, std: Foundation.pow(Float(d), -0.5), generator: generator))
            embedPositions = table
        } else {
            embedPositions = nil
        }
        if c.segmentEmbeddings > 0 {
            let table = Embedding(count: c.segmentEmbeddings, dimension: d, followsWeightDType: false, generator: generator)
            table.weight.copy(from: Tensor.randn(table.weight.shape, std: Foundation.pow(Float(d), -0.5), generator: generator))
            segmentEmbedding = table
        } else {
            segmentEmbedding = nil
        }
        layernormEmbedding = c.layernormEmbedding ? LayerNorm(d, eps: c.layernormEps) : nil
        layers = ModuleList((0..<c.decoderLayers).map { _ in MagnetoDecoderLayer(configuration: c, generator: generator) })
        layerNorm = c.decoderNormalizeBefore ? LayerNorm(d, eps: c.layernormEps) : nil
        if c.shareDecoderInputOutputEmbed {
            outputProjection = Linear(sharing: embedTokens.weight)
        } else {
            outputProjection = Linear(inFeatures: d, outFeatures: c.vocabSize, bias: false, generator: generator)
            outputProjection.weight.copy(from: Tensor.randn([c.vocabSize, d], std: Foundation.pow(Float(d), -0.5), generator: generator,
                                                            dtype: outputProjection.weight.dtype))
        }
        dropout = Dropout(probability: c.dropout, generator: generator)
        embedScale = c.noScaleEmbedding ? 1 : Float(d).squareRoot()
        self.generator = generator
        super.init()
        registerModule("embed_tokens", embedTokens)
        if let embedPositions { registerModule("embed_positions", embedPositions) }
        if let segmentEmbedding { registerModule("segment_emb", segmentEmbedding) }
        if let layernormEmbedding { registerModule("layernorm_embedding", layernormEmbedding) }
        registerModule("layers", layers)
        if let layerNorm { registerModule("layer_norm", layerNorm) }
        registerModule("output_projection", outputProjection)
        registerModule("dropout_module", dropout)
        if c.subln && !RandomInitialisation.isSkipped {
            let factor = Float(Foundation.log(Double(c.decoderLayers * 2)).squareRoot())
            for (name, p) in namedParameters()
            where ["fc1", "fc2", "out_proj", "v_proj"].contains(where: { name.contains($0) }) {
                p.scaleInPlace(by: factor)
            }
        }
    }

    /// Token embeddings (scaled), plus absolute positions, layernorm_embedding and dropout, as
    /// Decoder.forward_embedding. `tokenEmbeddings` [batch, length, dim] replaces the table lookup
    /// (Kosmos places image embeddings in it); positions still follow the token positions.
    /// `positionOffset` is the number of positions before these tokens (a cache's length).
    public func embed(tokens: [Int], batch: Int, length: Int, tokenEmbeddings: Tensor? = nil,
                      positionOffset: Int = 0) throws -> Tensor {
        guard tokens.count == batch * length else {
            throw ModelError.invalidInput("\(tokens.count) token ids for a batch of \(batch) × \(length)")
        }
        var x = try tokenEmbeddings ?? embedTokens(tokens, shape: [batch, length])
        if embedScale != 1 { x = x.scaled(by: embedScale) }
        switch configuration.absolutePositions {
        case .none:
            break
        case .learned:
            guard let embedPositions else { break }
            let end = positionOffset + length
            guard end + 2 <= embedPositions.count else {
                throw ModelError.sequenceTooLong(length: end, maximum: embedPositions.count - 2)
            }
            // torchscale's PositionalEmbedding: positions 2..<length+2 whatever the padding.
            x = x + embedPositions.weight.gatherRows(Array((positionOffset + 2)..<(end + 2)), indexShape: [length])
        case .sinusoidal:
            x = x + withSegment(sinusoidalPositions(length: length, offset: positionOffset))
        }
        if let layernormEmbedding { x = layernormEmbedding(x) }
        return dropout(x)
    }

    /// Position rows [length, dim] plus segment 0's embedding when the decoder has segments
    /// (summed before they meet the tokens, as transformers' Kosmos-2.5 adds them). A prompt
    /// position in another segment s gets (segment_emb[s] − segment_emb[0]) / embed scale added to
    /// its input embedding by the family (`segmentOffset(_:)`).
    func withSegment(_ positions: Tensor) -> Tensor {
        guard let segmentEmbedding else { return positions }
        return positions + segmentEmbedding.weight.gatherRows([0], indexShape: [1])
    }

    /// What a prompt position in segment `s` adds to its (unscaled) input embedding so that the
    /// decoder, which adds segment 0 everywhere, gives it segment `s`'s embedding: [dim].
    public func segmentOffset(_ s: Int) throws -> Tensor {
        guard let segmentEmbedding, s >= 0, s < segmentEmbedding.count else {
            throw ModelError.invalidInput("segment \(s) for a decoder with \(segmentEmbedding?.count ?? 0) segment embeddings")
        }
        let difference = segmentEmbedding.weight.gatherRows([s]) - segmentEmbedding.weight.gatherRows([0])
        return (embedScale == 1 ? difference : difference.scaled(by: 1 / embedScale)).reshaped([configuration.decoderEmbedDim])
    }

    /// fairseq's sinusoidal table rows for positions padding_idx+1+offset ..< padding_idx+1+offset+length.
    func sinusoidalPositions(length: Int, offset: Int = 0) -> Tensor {
        let d = configuration.decoderEmbedDim, half = d / 2
        // In float32 like fairseq's get_embedding: exp(arange(half) · −ln(10000)/(half−1)).
        let negativeStep = Float(-(Foundation.log(Double(10000)) / Double(max(half - 1, 1))))
        var values = [Float](repeating: 0, count: length * d)
        for row in 0..<length {
            let position = Float(configuration.paddingIdx + 1 + offset + row)
            for i in 0..<half {
                let frequency = Foundation.exp(Float(i) * negativeStep)
                let angle = position * frequency
                values[row * d + i] = Foundation.sin(angle)
                values[row * d + half + i] = Foundation.cos(angle)
            }
        }
        return Tensor(shape: [length, d], scalars: values)
    }

    /// Hidden states after the final layer norm: [batch, length, dim]. With a cache, `tokens` are
    /// the new positions only, they see the cached ones, and the cache grows by `length`;
    /// `keyPadding` then covers all positions (cached + new).
    public func features(tokens: [Int], batch: Int, length: Int, tokenEmbeddings: Tensor? = nil,
                         keyPadding: [Bool]? = nil, cache: DecoderCache? = nil) throws -> Tensor {
        if let cache, cache.layers.count != layers.count {
            throw ModelError.invalidInput("a cache for \(cache.layers.count) layers used with a \(layers.count)-layer decoder")
        }
        let offset = cache?.length ?? 0
        // The context the model was configured (and trained) for; a longer sequence is refused
        // rather than silently run past its positions.
        if offset + length > configuration.maxTargetPositions {
            throw ModelError.sequenceTooLong(length: offset + length, maximum: configuration.maxTargetPositions)
        }
        if let keyPadding, keyPadding.count != batch * (offset + length) {
            throw ModelError.invalidInput("key padding has \(keyPadding.count) flags for \(batch) × \(offset + length) positions")
        }
        var x = try embed(tokens: tokens, batch: batch, length: length, tokenEmbeddings: tokenEmbeddings, positionOffset: offset)
        let checkpointing = checkpointActivations && isTraining && cache == nil && GradMode.isEnabled
        for (i, layer) in layers.items.enumerated() {
            if checkpointing {
                x = Tensor.checkpoint(x, replaying: [generator]) { layer($0, keyPadding: keyPadding) }
            } else {
                x = layer(x, keyPadding: keyPadding, cache: cache?.layers[i])
            }
        }
        if let layerNorm { x = layerNorm(x) }
        cache?.length += length
        return x
    }

    /// Logits [batch, length, vocab].
    public func callAsFunction(tokens: [Int], batch: Int, length: Int, tokenEmbeddings: Tensor? = nil,
                               keyPadding: [Bool]? = nil, cache: DecoderCache? = nil) throws -> Tensor {
        outputProjection(try features(tokens: tokens, batch: batch, length: length,
                                      tokenEmbeddings: tokenEmbeddings, keyPadding: keyPadding, cache: cache))
    }

    /// Advances n independent sequences by one token each in one pass: `tokens[i]` is appended to
    /// the sequence cached in `caches[i]` (every cache of its own length, each a distinct object).
    /// The linear layers (projections, FFN, output projection) run as one product over the n rows,
    /// so the weights are read once per step for all sequences; attention runs per sequence against
    /// its own cache, with its own position offset. Returns logits [n, vocab]; each cache grows by one.
    public func step(tokens: [Int], caches: [DecoderCache]) throws -> Tensor {
        let n = tokens.count
        guard n > 0 else { throw ModelError.invalidInput("a decoding step over no sequences") }
        guard caches.count == n else { throw ModelError.invalidInput("\(n) tokens for \(caches.count) caches") }
        guard Set(caches.map(ObjectIdentifier.init)).count == n else {
            throw ModelError.invalidInput("the same cache appears twice in one decoding step")
        }
        for cache in caches {
            if cache.layers.count != layers.count {
                throw ModelError.invalidInput("a cache for \(cache.layers.count) layers used with a \(layers.count)-layer decoder")
            }
            if cache.length + 1 > configuration.maxTargetPositions {
                throw ModelError.sequenceTooLong(length: cache.length + 1, maximum: configuration.maxTargetPositions)
            }
        }
        let d = configuration.decoderEmbedDim
        var x = try embedTokens(tokens, shape: [n, 1])
        if embedScale != 1 { x = x.scaled(by: embedScale) }
        let offsets = caches.map(\.length)
        switch configuration.absolutePositions {
        case .none:
            break
        case .learned:
            if let embedPositions {
                // Checked above: length + 1 ≤ max_target_positions, and the table has 2 more rows.
                x = x + embedPositions.weight.gatherRows(offsets.map { $0 + 2 }, indexShape: [n, 1])
            }
        case .sinusoidal:
            x = x + withSegment(Tensor.concatenate(offsets.map { sinusoidalPositions(length: 1, offset: $0) }, axis: 0)).reshaped([n, 1, d])
        }
        if let layernormEmbedding { x = layernormEmbedding(x) }
        x = dropout(x)
        for (i, layer) in layers.items.enumerated() { x = layer.step(x, caches: caches.map { $0.layers[i] }) }
        if let layerNorm { x = layerNorm(x) }
        for cache in caches { cache.length += 1 }
        return outputProjection(x).reshaped([n, configuration.vocabSize])
    }

    /// An empty cache for this decoder.
    /// `reservation`: positions to allocate up front (the prompt plus the new tokens, when known).
    public func makeCache(reservation: Int = 0) -> DecoderCache {
        DecoderCache(layers: layers.count, minPosition: -(configuration.maxTargetPositions / 2),
                     reservation: min(reservation, configuration.maxTargetPositions))
    }
}
