import Foundation
import KosmosNN
import KosmosTensor

// flamingo-pytorch's PerceiverResampler (flamingo_pytorch/flamingo_pytorch.py), parameter names
// equal to its state_dict: latents, media_pos_emb, layers.{i}.0.* (PerceiverAttention),
// layers.{i}.1.{0,1,3}.* (the FeedForward nn.Sequential), norm.*.

/// The constructor arguments of flamingo-pytorch's PerceiverResampler, with its defaults.
public struct PerceiverConfiguration: Codable, Equatable, Sendable {
    public var dim = 1024
    public var depth = 2
    public var dimHead = 64
    public var heads = 8
    public var numLatents = 64
    /// Rows of media_pos_emb: the most media frames (time steps) per sample.
    public var numMediaEmbeds = 4
    public var ffMult = 4

    public init() {}

    enum CodingKeys: String, CodingKey {
        case dim, depth, heads
        case dimHead = "dim_head"
        case numLatents = "num_latents"
        case numMediaEmbeds = "num_media_embeds"
        case ffMult = "ff_mult"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = PerceiverConfiguration()
        dim = try c.decode(.dim, default: d.dim)
        depth = try c.decode(.depth, default: d.depth)
        dimHead = try c.decode(.dimHead, default: d.dimHead)
        heads = try c.decode(.heads, default: d.heads)
        numLatents = try c.decode(.numLatents, default: d.numLatents)
        numMediaEmbeds = try c.decode(.numMediaEmbeds, default: d.numMediaEmbeds)
        ffMult = try c.decode(.ffMult, default: d.ffMult)
    }

    public func validate() throws {
        for (field, value) in [("dim", dim), ("depth", depth), ("dim_head", dimHead), ("heads", heads),
                               ("num_latents", numLatents), ("num_media_embeds", numMediaEmbeds), ("ff_mult", ffMult)] where value <= 0 {
            throw ModelError.invalidConfiguration(field: field, reason: "must be positive")
        }
    }
}

/// Latents attend to the media tokens and to themselves (keys/values from concat(media, latents)).
public final class PerceiverAttention: Module {
    public let normMedia: LayerNorm, normLatents: LayerNorm
    public let toQ: Linear, toKV: Linear, toOut: Linear
    let heads: Int, dimHead: Int

    init(configuration c: PerceiverConfiguration, generator: RandomGenerator) {
        heads = c.heads
        dimHead = c.dimHead
        let inner = c.heads * c.dimHead
        normMedia = LayerNorm(c.dim)
        normLatents = LayerNorm(c.dim)
        toQ = Linear(inFeatures: c.dim, outFeatures: inner, bias: false, generator: generator)
        toKV = Linear(inFeatures: c.dim, outFeatures: 2 * inner, bias: false, generator: generator)
        toOut = Linear(inFeatures: inner, outFeatures: c.dim, bias: false, generator: generator)
        super.init()
        registerModule("norm_media", normMedia)
        registerModule("norm_latents", normLatents)
        registerModule("to_q", toQ)
        registerModule("to_kv", toKV)
        registerModule("to_out", toOut)
    }

    /// media [b, t, n, dim], latents [b, t, l, dim] → [b, t, l, dim].
    func callAsFunction(_ media: Tensor, _ latents: Tensor) -> Tensor {
        let b = media.shape[0], t = media.shape[1], n = media.shape[2], l = latents.shape[2]
        let inner = heads * dimHead
        let x = normMedia(media), lat = normLatents(latents)
        // Heads are split as [b, t, heads, tokens, dim_head]; the reference orders them
        // [b, heads, t, ...], which only reorders independent products.
        func split(_ tensor: Tensor, _ tokens: Int) -> Tensor {
            tensor.reshaped([b, t, tokens, heads, dimHead]).permuted([0, 1, 3, 2, 4])
        }
        let q = split(toQ(lat), l).scaled(by: Foundation.pow(Float(dimHead), -0.5))
        let kv = toKV(Tensor.concatenate([x, lat], axis: 2)).split(axis: 3, sizes: [inner, inner])
        let k = split(kv[0], n + l), v = split(kv[1], n + l)
        // The reference subtracts the (detached) row maximum before softmax; softmax does the same.
        let attention = Tensor.matmul(q, k, transposeB: true).softmax()
        let out = Tensor.matmul(attention, v).permuted([0, 1, 3, 2, 4]).reshaped([b, t, l, inner])
        return toOut(out)
    }
}

/// LayerNorm → Linear(dim, dim·mult) → GELU → Linear(dim·mult, dim), no biases; registered under the
/// nn.Sequential indices 0, 1, 3.
public final class PerceiverFeedForward: Module {
    public let norm: LayerNorm, fc1: Linear, fc2: Linear

    init(configuration c: PerceiverConfiguration, generator: RandomGenerator) {
        norm = LayerNorm(c.dim)
        fc1 = Linear(inFeatures: c.dim, outFeatures: c.dim * c.ffMult, bias: false, generator: generator)
        fc2 = Linear(inFeatures: c.dim * c.ffMult, outFeatures: c.dim, bias: false, generator: generator)
        super.init()
        registerModule("0", norm)
        registerModule("1", fc1)
        registerModule("3", fc2)
    }

    func callAsFunction(_ x: Tensor) -> Tensor { fc2(fc1(norm(x)).gelu()) }
}

/// One resampler layer: the nn.ModuleList [PerceiverAttention, FeedForward] of the reference.
public final class PerceiverLayer: Module {
    public let attention: PerceiverAttention
    public let feedForward: PerceiverFeedForward

    init(configuration c: PerceiverConfiguration, generator: RandomGenerator) {
        attention = PerceiverAttention(configuration: c, generator: generator)
        feedForward = PerceiverFeedForward(configuration: c, generator: generator)
        super.init()
        registerModule("0", attention)
        registerModule("1", feedForward)
    }
}

/// Turns each media item's tokens into `numLatents` tokens.
public final class PerceiverResampler: Module {
    public let configuration: PerceiverConfiguration
    public let latents: Tensor
    public let mediaPosEmb: Tensor
    public let layers: ModuleList<PerceiverLayer>
    public let norm: LayerNorm

    /// Fresh parameters as the reference: latents and media_pos_emb N(0, 1), Linear defaults.
    public init(configuration c: PerceiverConfiguration, generator: RandomGenerator) throws {
        try c.validate()
        configuration = c
        latents = Tensor.randn([c.numLatents, c.dim], generator: generator)
        mediaPosEmb = Tensor.randn([c.numMediaEmbeds, 1, c.dim], generator: generator)
        layers = ModuleList((0..<c.depth).map { _ in PerceiverLayer(configuration: c, generator: generator) })
        norm = LayerNorm(c.dim)
        super.init()
        registerParameter("latents", latents)
        registerParameter("media_pos_emb", mediaPosEmb)
        registerModule("layers", layers)
        registerModule("norm", norm)
    }

    /// media [b, n, dim] (one frame) or [b, t, n, dim] → [b, t, num_latents, dim].
    public func callAsFunction(_ media: Tensor) throws -> Tensor {
        var x = media.rank == 3 ? media.unsqueezed(1) : media
        guard x.rank == 4, x.shape[3] == configuration.dim else {
            throw ModelError.invalidInput("resampler input of shape \(media.shape); expected [batch, (frames,) tokens, \(configuration.dim)]")
        }
        let b = x.shape[0], t = x.shape[1]
        guard t <= configuration.numMediaEmbeds else {
            throw ModelError.invalidInput("\(t) media frames, but the resampler has num_media_embeds = \(configuration.numMediaEmbeds)")
        }
        x = x + mediaPosEmb.narrowed(axis: 0, start: 0, length: t)
        var lat = latents.expanded(to: [b, t, configuration.numLatents, configuration.dim])
        for layer in layers.items {
            lat = layer.attention(x, lat) + lat
            lat = layer.feedForward(lat) + lat
        }
        return norm(lat)
    }
}
