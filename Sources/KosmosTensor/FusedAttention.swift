import CKosmosKernels
import Foundation

/// Where the matrices of one attention call are: `rows` = batch × heads (query and output
/// matrices of row r start at r × their stride), and what each query may see. `group` query heads
/// share one key/value head (grouped-query attention; 1: one each): row r reads the key and value
/// matrices of key row r / group (batch × heads / group of them).
struct AttentionLayout {
    let rows: Int, heads: Int, queries: Int, keys: Int, headDim: Int, valueDim: Int
    let queryStride: Int, keyStride: Int, valueStride: Int, outputStride: Int
    let causal: Bool
    let scale: Float
    var group = 1
    /// Dropout on the probabilities (after the softmax, as torch's attention dropout): each
    /// (row, query, key) kept or dropped by a hash of `seed` and its indices, so the forward and
    /// the backward see the same mask without storing it.
    var dropout: AttentionDropout? = nil

    /// Key/value rows: batch × key/value heads.
    var keyRows: Int { rows / group }

    /// Keys query i sees: j < visible(i) (the queries are the last positions of the keys when causal).
    @inline(__always) func visible(_ i: Int) -> Int {
        causal ? Swift.max(0, Swift.min(keys, i + keys - queries + 1)) : keys
    }
}

/// The dropout mask of the fused attention: a counter-based draw (SplitMix64 of the seed and the
/// indices) per (row, query, key), so any tile order and thread split gives the same mask.
public struct AttentionDropout: Sendable, Equatable {
    public let probability: Float
    public let seed: UInt64
    /// 1 / (1 − p): a kept probability's scale.
    let keepScale: Float

    public init(probability: Float, seed: UInt64) {
        precondition(probability >= 0 && probability < 1, "attention dropout takes a probability in [0, 1)")
        self.probability = probability
        self.seed = seed
        keepScale = 1 / (1 - probability)
    }

    /// The factor of one probability: 0 (dropped) or 1 / (1 − p) (kept).
    @inline(__always) public func factor(row: Int, query: Int, key: Int) -> Float {
        var z = seed &+ UInt64(truncatingIfNeeded: row) &* 0x9E37_79B9_7F4A_7C15
            &+ UInt64(truncatingIfNeeded: query) &* 0xC2B2_AE3D_27D4_EB4F &+ UInt64(truncatingIfNeeded: key) &* 0x1656_67B1_9E37_79F9
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        // The top 24 bits as a uniform in [0, 1).
        let u = Float(z >> 40) * (1 / Float(1 << 24))
        return u < probability ? 0 : keepScale
    }
}

/// Queries per tile and keys per block of the fused kernel: a tile's scores are queryTile × keyBlock
/// floats (8 KB), and a key block (keyBlock × headDim floats) stays in L1/L2 while the tile's queries use it.
private let queryTile = 16
private let keyBlock = 128

/// softmax(q·kᵀ·scale + masks)·v one query tile at a time with an online softmax: the scores of a
/// tile against one block of keys are the only scores that exist, so memory is linear in length.
/// `logSumExp` (rows × queries) receives log Σ exp of each query's scores (−inf when it sees no
/// key) for the backward pass. A query that sees no key gets zeros, as `maskedSoftmax` gives.
func fusedAttentionForward(_ l: AttentionLayout, q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                           out: UnsafeMutablePointer<Float>, logSumExp: UnsafeMutablePointer<Float>?,
                           padding: UnsafePointer<Bool>?) {
    let tiles = (l.queries + queryTile - 1) / queryTile
    let work = queryTile * Swift.max(l.keys, 1) * (l.headDim + l.valueDim) * 2
    Parallel.forRanges(l.rows * tiles, minimumPerChunk: Swift.max(1, 1_000_000 / Swift.max(work, 1))) { range in
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: queryTile * keyBlock)
        let transposed = UnsafeMutablePointer<Float>.allocate(capacity: l.headDim * keyBlock)
        let maxima = UnsafeMutablePointer<Float>.allocate(capacity: queryTile)
        let sums = UnsafeMutablePointer<Float>.allocate(capacity: queryTile)
        let accumulators = UnsafeMutablePointer<Float>.allocate(capacity: queryTile * l.valueDim)
        defer { scores.deallocate(); transposed.deallocate(); maxima.deallocate(); sums.deallocate(); accumulators.deallocate() }
        for task in range {
            let r = task / tiles, i0 = (task % tiles) * queryTile, i1 = Swift.min(l.queries, i0 + queryTile)
            let rows = i1 - i0
            let qr = q + r * l.queryStride, kr = k + (r / l.group) * l.keyStride, vr = v + (r / l.group) * l.valueStride
            let pad = padding.map { $0 + (r / l.heads) * l.keys }
            maxima.update(repeating: -.infinity, count: queryTile)
            sums.update(repeating: 0, count: queryTile)
            accumulators.update(repeating: 0, count: queryTile * l.valueDim)
            let limit = l.visible(i1 - 1)
            var j0 = 0
            while j0 < limit {
                let j1 = Swift.min(limit, j0 + keyBlock), n = j1 - j0
                // The tile's scores against this block, then each row's mask and online softmax.
                kk_attention_scores(Int32(rows), Int32(n), Int32(l.headDim), qr + i0 * l.headDim, l.headDim,
                                    kr + j0 * l.headDim, l.headDim, l.scale, scores, keyBlock, transposed)
                for t in 0..<rows {
                    let row = scores + t * keyBlock
                    let end = Swift.min(j1, l.visible(i0 + t))
                    var blockMax = -Float.infinity
                    if let pad {
                        for j in j0..<Swift.max(j0, end) {
                            if pad[j] { row[j - j0] = -.infinity } else { blockMax = Swift.max(blockMax, row[j - j0]) }
                        }
                    } else if end > j0 {
                        // No padding: the vector maximum (exact, NaN skipped like the loop above).
                        blockMax = rowMax(row, end - j0)
                    }
                    if blockMax == -.infinity {
                        row.update(repeating: 0, count: n)
                        continue
                    }
                    for j in Swift.max(j0, end)..<j1 { row[j - j0] = -.infinity }
                    let newMax = Swift.max(maxima[t], blockMax)
                    if maxima[t] != -.infinity && maxima[t] != newMax {
                        let correction = fastExp(maxima[t] - newMax)
                        sums[t] *= correction
                        scaleRow(accumulators + t * l.valueDim, correction, l.valueDim)
                    }
                    maxima[t] = newMax
                    expShifted(row, newMax, n)
                    sums[t] += rowSum(row, n)
                    // Dropout acts on the normalised probabilities: the sum above is the softmax's,
                    // the values accumulated are the kept ones, scaled.
                    if let dropout = l.dropout {
                        for j in 0..<n where row[j] != 0 { row[j] *= dropout.factor(row: r, query: i0 + t, key: j0 + j) }
                    }
                }
                kk_attention_accumulate(Int32(rows), Int32(n), Int32(l.valueDim), scores, keyBlock, vr + j0 * l.valueDim,
                                        l.valueDim, accumulators, l.valueDim)
                j0 = j1
            }
            for i in i0..<i1 {
                let t = i - i0, o = out + r * l.outputStride + i * l.valueDim
                if sums[t] > 0 {
                    let inverse = 1 / sums[t], acc = accumulators + t * l.valueDim
                    for d in 0..<l.valueDim { o[d] = acc[d] * inverse }
                    logSumExp?[r * l.queries + i] = maxima[t] + Foundation.log(sums[t])
                } else {
                    o.update(repeating: 0, count: l.valueDim)
                    logSumExp?[r * l.queries + i] = -.infinity
                }
            }
        }
    }
}

/// Gradients of the fused attention, tile by tile as the forward pass: each tile's scores are
/// recomputed by the same kernel (so they are the forward's numbers exactly), the probabilities
/// come from them and the saved log Σ exp, and the four products run on the tile; nothing larger
/// than a tile is stored. dq, dk, dv must start at zero; each key/value row (with the `group` query
/// rows that read it) is one task, so a thread owns the dk and dv it accumulates.
func fusedAttentionBackward(_ l: AttentionLayout, q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                            out: UnsafePointer<Float>, gradOut: UnsafePointer<Float>, logSumExp: UnsafePointer<Float>,
                            padding: UnsafePointer<Bool>?,
                            dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>) {
    Parallel.forRanges(l.keyRows, minimumPerChunk: 1) { range in
        let probabilities = UnsafeMutablePointer<Float>.allocate(capacity: queryTile * keyBlock)
        let gradScores = UnsafeMutablePointer<Float>.allocate(capacity: queryTile * keyBlock)
        let transposedTile = UnsafeMutablePointer<Float>.allocate(capacity: queryTile * keyBlock)
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(l.headDim, l.valueDim) * keyBlock)
        let deltas = UnsafeMutablePointer<Float>.allocate(capacity: queryTile)
        defer {
            probabilities.deallocate(); gradScores.deallocate(); transposedTile.deallocate(); scratch.deallocate(); deltas.deallocate()
        }
        for r in range.lazy.flatMap({ kv in (kv * l.group)..<((kv + 1) * l.group) }) {
            let qr = q + r * l.queryStride, kr = k + (r / l.group) * l.keyStride, vr = v + (r / l.group) * l.valueStride
            let orow = out + r * l.outputStride, gr = gradOut + r * l.outputStride
            let dqr = dq + r * l.queryStride, dkr = dk + (r / l.group) * l.keyStride, dvr = dv + (r / l.group) * l.valueStride
            let pad = padding.map { $0 + (r / l.heads) * l.keys }
            var i0 = 0
            while i0 < l.queries {
                let i1 = Swift.min(l.queries, i0 + queryTile), rows = i1 - i0
                for t in 0..<rows { deltas[t] = rowDot(gr + (i0 + t) * l.valueDim, orow + (i0 + t) * l.valueDim, l.valueDim) }
                let limit = l.visible(i1 - 1)
                var j0 = 0
                while j0 < limit {
                    let j1 = Swift.min(limit, j0 + keyBlock), n = j1 - j0
                    kk_attention_scores(Int32(rows), Int32(n), Int32(l.headDim), qr + i0 * l.headDim, l.headDim,
                                        kr + j0 * l.headDim, l.headDim, l.scale, probabilities, keyBlock, scratch)
                    // dP = dO · Vᵀ over the tile.
                    kk_attention_scores(Int32(rows), Int32(n), Int32(l.valueDim), gr + i0 * l.valueDim, l.valueDim,
                                        vr + j0 * l.valueDim, l.valueDim, 1, gradScores, keyBlock, scratch)
                    for t in 0..<rows {
                        let p = probabilities + t * keyBlock, ds = gradScores + t * keyBlock
                        let lse = logSumExp[r * l.queries + i0 + t]
                        let end = lse == -.infinity ? j0 : Swift.min(j1, l.visible(i0 + t))
                        for j in 0..<n {
                            let key = j0 + j
                            if key >= end || (pad?[key] ?? false) {
                                p[j] = 0
                                ds[j] = 0
                            } else if let dropout = l.dropout {
                                // P̃ = P·m/(1−p) reached the output: dP = (dO·Vᵀ)·m/(1−p), dV uses P̃;
                                // Δ = dO·O holds as without dropout (O = P̃·V).
                                let probability = fastExp(p[j] - lse), factor = dropout.factor(row: r, query: i0 + t, key: key)
                                ds[j] = probability * (ds[j] * factor - deltas[t]) * l.scale
                                p[j] = probability * factor
                            } else {
                                p[j] = fastExp(p[j] - lse)
                                ds[j] = p[j] * (ds[j] - deltas[t]) * l.scale
                            }
                        }
                    }
                    // dV += Pᵀ·dO, dQ += dS·K, dK += dSᵀ·Q.
                    transpose(probabilities, rows: rows, cols: n, into: transposedTile)
                    kk_attention_accumulate(Int32(n), Int32(rows), Int32(l.valueDim), transposedTile, rows,
                                            gr + i0 * l.valueDim, l.valueDim, dvr + j0 * l.valueDim, l.valueDim)
                    kk_attention_accumulate(Int32(rows), Int32(n), Int32(l.headDim), gradScores, keyBlock,
                                            kr + j0 * l.headDim, l.headDim, dqr + i0 * l.headDim, l.headDim)
                    transpose(gradScores, rows: rows, cols: n, into: transposedTile)
                    kk_attention_accumulate(Int32(n), Int32(rows), Int32(l.headDim), transposedTile, rows,
                                            qr + i0 * l.headDim, l.headDim, dkr + j0 * l.headDim, l.headDim)
                    j0 = j1
                }
                i0 = i1
            }
        }
    }
}

/// out[j × rows + t] = tile[t × keyBlock + j]: a tile's rows × cols, transposed, packed.
@inline(__always) private func transpose(_ tile: UnsafePointer<Float>, rows: Int, cols: Int, into out: UnsafeMutablePointer<Float>) {
    for t in 0..<rows {
        for j in 0..<cols { out[j * rows + t] = tile[t * keyBlock + j] }
    }
}

/// x[j] = exp(x[j] − shift) in place (−inf becomes 0).
@inline(__always) private func expShifted(_ x: UnsafeMutablePointer<Float>, _ shift: Float, _ n: Int) {
    let sv = Vec(repeating: shift)
    var j = 0
    while j + vecWidth <= n { storeVec(fastExp(loadVec(x + j) - sv), x + j); j += vecWidth }
    while j < n { x[j] = fastExp(x[j] - shift); j += 1 }
}

/// y *= a over n floats.
@inline(__always) private func scaleRow(_ y: UnsafeMutablePointer<Float>, _ a: Float, _ n: Int) {
    let av = Vec(repeating: a)
    var d = 0
    while d + vecWidth <= n { storeVec(loadVec(y + d) * av, y + d); d += vecWidth }
    while d < n { y[d] *= a; d += 1 }
}

extension Tensor {
    /// softmax(q·kᵀ·scale + masks)·v for q [batch, heads, queries, headDim], k [batch, kvHeads, keys,
    /// headDim], v [batch, kvHeads, keys, valueDim], without the queries × keys matrix: tiled with an
    /// online softmax forward, the probabilities recomputed backward. kvHeads divides heads (grouped-
    /// query attention: query head h reads key/value head h / (heads / kvHeads)). Masks as `maskedSoftmax`:
    /// `causal` (queries are the last positions of the keys) and `keyPadding` (batch × keys, true
    /// where a key is padding). Equal to `unfusedAttention` to rounding (tests hold it to 1e-6).
    public static func fusedAttention(query: Tensor, key: Tensor, value: Tensor, causal: Bool = false,
                                      keyPadding: [Bool]? = nil, scale: Float? = nil, dropout: AttentionDropout? = nil) -> Tensor {
        var layout = attentionLayout(query, key, value, causal: causal, keyPadding: keyPadding, scale: scale)
        if let dropout, dropout.probability > 0 { layout.dropout = dropout }
        let out = Tensor.uninitialized([query.shape[0], query.shape[1], layout.queries, layout.valueDim])
        if out.count == 0 { return out }
        let recording = needsGrad([query, key, value])
        let logSumExp = recording ? Tensor.uninitialized([layout.rows * layout.queries]) : nil
        keyPadding.withUnsafeBufferPointerOrNil { padding in
            fusedAttentionForward(layout, q: query.pointer, k: key.pointer, v: value.pointer, out: out.pointer,
                                  logSumExp: logSumExp?.pointer, padding: padding?.baseAddress)
        }
        if recording, let logSumExp {
            let saved = out.detached()
            out.recorded("fused_attention", [query, key, value]) { g in
                let dq = Tensor.zeros(query.shape), dk = Tensor.zeros(key.shape), dv = Tensor.zeros(value.shape)
                keyPadding.withUnsafeBufferPointerOrNil { padding in
                    fusedAttentionBackward(layout, q: query.pointer, k: key.pointer, v: value.pointer, out: saved.pointer,
                                           gradOut: g.pointer, logSumExp: logSumExp.pointer, padding: padding?.baseAddress,
                                           dq: dq.pointer, dk: dk.pointer, dv: dv.pointer)
                }
                return [query.requiresGrad ? dq : nil, key.requiresGrad ? dk : nil, value.requiresGrad ? dv : nil]
            }
        }
        return out
    }

    static func attentionLayout(_ q: Tensor, _ k: Tensor, _ v: Tensor, causal: Bool, keyPadding: [Bool]?, scale: Float?) -> AttentionLayout {
        precondition(q.rank == 4 && k.rank == 4 && v.rank == 4,
                     "attention expects rank-4 query/key/value, got \(q.shape), \(k.shape), \(v.shape)")
        let batch = q.shape[0], heads = q.shape[1], queries = q.shape[2], headDim = q.shape[3]
        let keys = k.shape[2], valueDim = v.shape[3], kvHeads = k.shape[1]
        precondition(k.shape[0] == batch && kvHeads > 0 && heads % kvHeads == 0 && k.shape[3] == headDim && v.shape[0] == batch
                     && v.shape[1] == kvHeads && v.shape[2] == keys,
                     "attention: query \(q.shape), key \(k.shape) and value \(v.shape) do not fit together")
        if let keyPadding {
            precondition(keyPadding.count == batch * keys, "keyPadding needs \(batch)×\(keys) flags, got \(keyPadding.count)")
        }
        return AttentionLayout(rows: batch * heads, heads: heads, queries: queries, keys: keys, headDim: headDim, valueDim: valueDim,
                               queryStride: queries * headDim, keyStride: keys * headDim, valueStride: keys * valueDim,
                               outputStride: queries * valueDim, causal: causal,
                               scale: scale ?? 1 / Float(headDim).squareRoot(), group: heads / kvHeads)
    }
}
