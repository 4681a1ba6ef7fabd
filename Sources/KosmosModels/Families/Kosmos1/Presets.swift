import Foundation

extension KosmosConfiguration {
    /// Named configurations for `kosmos init --preset`.
    public static let presetNames = ["kosmos-1", "kosmos-tiny"]

    /// The configuration named `name`, or nil.
    ///
    /// - `kosmos-1`: the paper's 1.3B decoder (24 layers × 2048, ffn 8192, 32 heads, xPos, sub-LN)
    ///   with CLIP ViT-L/14 at 224 and a 2-layer resampler to 64 tokens, vocabulary 32,002 (the T5
    ///   SentencePiece vocabulary plus `<image>` 32000 and `</image>` 32001; T5's pad 0 and eos 1,
    ///   no bos). The resampler's media_pos_emb has 257 rows as in the Kosmos-X design.
    /// - `kosmos-tiny`: the same shape of model small enough to train on a laptop CPU in minutes
    ///   (2 decoder layers × 128, a 2-layer ViT with 32-pixel patches at 224, 16 image tokens), with
    ///   the same vocabulary and token ids.
    public static func preset(named name: String) -> KosmosConfiguration? {
        var c = KosmosConfiguration()
        c.vocabSize = 32002
        c.imageTokenId = 32000
        c.imageEndTokenId = 32001
        c.padTokenId = 0
        c.eosTokenId = 1
        c.bosTokenId = nil
        c.decoder.vocabSize = 32002
        c.decoder.xposRelPos = true
        c.decoder.subln = true
        c.decoder.paddingIdx = 0
        c.decoder.maxTargetPositions = 2048
        switch name {
        case "kosmos-1":
            c.decoder.decoderLayers = 24
            c.decoder.decoderEmbedDim = 2048
            c.decoder.decoderFfnEmbedDim = 8192
            c.decoder.decoderAttentionHeads = 32
            c.decoder.dropout = 0.1
            c.vision.hiddenSize = 1024
            c.vision.intermediateSize = 4096
            c.vision.numHiddenLayers = 24
            c.vision.numAttentionHeads = 16
            c.vision.patchSize = 14
            c.vision.imageSize = 224
            c.resampler.dim = 1024
            c.resampler.depth = 2
            c.resampler.dimHead = 64
            c.resampler.heads = 8
            c.resampler.numLatents = 64
            c.resampler.numMediaEmbeds = 257
            c.numImageTokens = 64
        case "kosmos-tiny":
            c.decoder.decoderLayers = 2
            c.decoder.decoderEmbedDim = 128
            c.decoder.decoderFfnEmbedDim = 512
            c.decoder.decoderAttentionHeads = 4
            c.decoder.maxTargetPositions = 512
            c.vision.hiddenSize = 64
            c.vision.intermediateSize = 256
            c.vision.numHiddenLayers = 2
            c.vision.numAttentionHeads = 4
            c.vision.patchSize = 32
            c.vision.imageSize = 224
            c.resampler.dim = 64
            c.resampler.depth = 1
            c.resampler.dimHead = 16
            c.resampler.heads = 4
            c.resampler.numLatents = 16
            c.resampler.numMediaEmbeds = 1
            c.numImageTokens = 16
        default:
            return nil
        }
        return c
    }
}
