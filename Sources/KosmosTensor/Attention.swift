import Foundation

extension Tensor {
    /// Softmax over the last axis of attention scores [batch, heads, queries, keys] after
    /// multiplying by `scale`, with masked positions excluded (probability 0):
    /// - `causal`: query i sees keys j ≤ i + (keys − queries), i.e. the queries are the last
    ///   positions of the key sequence (equal to PyTorch's `is_causal` when queries == keys, and
    ///   right for a KV cache where new queries follow cached keys);
    /// - `keyPadding`: batch × keys flags, true where a key is padding and must be ignored.
    /// A query row that sees no key at all gets zeros (PyTorch would give NaN).
    public func maskedSoftmax(scale: Float, causal: Bool, keyPadding: [Bool]? = nil) -> Tensor {
        precondition(rank == 4, "maskedSoftmax expects [batch, heads, queries, keys], got \(shape)")
        let batch = shape[0], heads = shape[1], queries = shape[2], keys = shape[3]
        if let keyPadding {
            precondition(keyPadding.count == batch * keys, "keyPadding needs \(batch)×\(keys) flags, got \(keyPadding.count)")
        }
        let rows = batch * heads * queries
        let out = Tensor.uninitialized(shape)
        let x = pointer, o = out.pointer
        let shift = keys - queries
        keyPadding.withUnsafeBufferPointerOrNil { padding in
            Parallel.forRanges(rows, minimumPerChunk: Swift.max(1, Parallel.elementGrain / Swift.max(keys, 1))) { range in
                for r in range {
                    let b = r / (heads * queries), q = r % queries
                    let xr = x + r * keys, orow = o + r * keys
                    let visible = causal ? Swift.max(0, Swift.min(keys, q + shift + 1)) : keys
                    let sv = Vec(repeating: scale)
                    var j = 0
                    while j + vecWidth <= visible { storeVec(loadVec(xr + j) * sv, orow + j); j += vecWidth }
                    while j < visible { orow[j] = xr[j] * scale; j += 1 }
                    for j in visible..<keys { orow[j] = -.infinity }
                    if let padding {
                        let pb = padding.baseAddress! + b * keys
                        for j in 0..<visible where pb[j] { orow[j] = -.infinity }
                    }
                    softmaxRow(orow, orow, keys)
                }
            }
        }
        if Tensor.needsGrad(self) {
            let y = out.detached()
            out.recorded("masked_softmax", [self]) { g in
                let dx = Tensor.uninitialized(y.shape)
                softmaxBackwardRows(y.pointer, g.pointer, dx.pointer, rows: rows, n: keys, scale: scale)
                return [dx]
            }
        }
        return out
    }

    /// softmax(q·kᵀ·scale + masks)·v for q [batch, heads, queries, headDim], k [batch, heads, keys,
    /// headDim], v [batch, heads, keys, valueDim]. `scale` defaults to headDim^-½. `bias` is an
    /// optional additive mask broadcastable to [batch, heads, queries, keys], added after scaling
    /// (as torch's float attn_mask). Dropout on the probabilities when `dropout` is given.
    /// Without a bias this is `fusedAttention` (memory linear in length; dropout drawn inside the
    /// kernel from a seed the generator gives, `AttentionDropout`); with one, `unfusedAttention`,
    /// which materialises the probabilities the bias acts on.
    public static func scaledDotProductAttention(
        query: Tensor, key: Tensor, value: Tensor,
        causal: Bool = false, keyPadding: [Bool]? = nil, bias: Tensor? = nil,
        scale: Float? = nil, dropout: (probability: Float, generator: RandomGenerator)? = nil
    ) -> Tensor {
        if bias == nil {
            let mask = dropout.flatMap { $0.probability > 0 ? AttentionDropout(probability: $0.probability, seed: $0.generator.next()) : nil }
            return fusedAttention(query: query, key: key, value: value, causal: causal, keyPadding: keyPadding, scale: scale, dropout: mask)
        }
        return unfusedAttention(query: query, key: key, value: value, causal: causal, keyPadding: keyPadding, bias: bias,
                                scale: scale, dropout: dropout)
    }

    /// The same attention as three ops (scores, masked softmax, weighted sum) with the
    /// queries × keys probabilities in memory: the reference the fused kernel is tested against,
    /// and the path for an additive bias or dropout on the probabilities.
    public static func unfusedAttention(
        query: Tensor, key: Tensor, value: Tensor,
        causal: Bool = false, keyPadding: [Bool]? = nil, bias: Tensor? = nil,
        scale: Float? = nil, dropout: (probability: Float, generator: RandomGenerator)? = nil
    ) -> Tensor {
        precondition(query.rank == 4 && key.rank == 4 && value.rank == 4,
                     "attention expects rank-4 query/key/value, got \(query.shape), \(key.shape), \(value.shape)")
        let headDim = query.shape[3]
        let factor = scale ?? 1 / Float(headDim).squareRoot()
        let (key, value) = (key.repeatingHeads(query.shape[1]), value.repeatingHeads(query.shape[1]))
        let scores = matmul(query, key, transposeB: true)
        var probabilities: Tensor
        if let bias {
            probabilities = (scores.scaled(by: factor) + bias).maskedSoftmax(scale: 1, causal: causal, keyPadding: keyPadding)
        } else {
            probabilities = scores.maskedSoftmax(scale: factor, causal: causal, keyPadding: keyPadding)
        }
        if let dropout, dropout.probability > 0 {
            probabilities = probabilities.dropout(probability: dropout.probability, generator: dropout.generator)
        }
        return matmul(probabilities, value)
    }
}

extension Tensor {
    /// [batch, kvHeads, n, d] → [batch, heads, n, d] with head h a copy of head h / (heads / kvHeads)
    /// (grouped-query attention through ops that want one key head per query head); itself when
    /// the counts are equal. The gradient sums over each group.
    func repeatingHeads(_ heads: Int) -> Tensor {
        let kvHeads = shape[1]
        guard heads != kvHeads else { return self }
        precondition(kvHeads > 0 && heads % kvHeads == 0, "\(kvHeads) key/value heads do not divide \(heads) heads")
        let (b, n, d) = (shape[0], shape[2], shape[3])
        return unsqueezed(2).expanded(to: [b, kvHeads, heads / kvHeads, n, d]).reshaped([b, heads, n, d])
    }
}

extension Optional where Wrapped == [Bool] {
    /// Runs `body` with the array's buffer, or nil when there is no array.
    func withUnsafeBufferPointerOrNil<R>(_ body: (UnsafeBufferPointer<Bool>?) -> R) -> R {
        switch self {
        case .some(let array): return array.withUnsafeBufferPointer { body($0) }
        case .none: return body(nil)
        }
    }
}
