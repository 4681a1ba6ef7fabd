import Foundation

/// The keys and values of one attention layer as decoding grows and reads them: append new
/// positions, attend over all of them, copy for a beam. `KVBuffer` is the preallocated float32
/// implementation; a quantized or windowed cache implements the same four members.
public protocol KeyValueCache: AnyObject {
    /// Positions stored.
    var count: Int { get }
    /// Appends positions: keys and values [batch, heads, n, headDim].
    func append(keys: Tensor, values: Tensor)
    /// softmax(q·kᵀ + masks)·v over the stored positions for queries [batch, heads, n, headDim]
    /// (scaled and rotated already; their heads a multiple of the stored ones: grouped-query
    /// attention); `causal`: the queries are the last n positions.
    func attention(query: Tensor, causal: Bool, keyPadding: [Bool]?) -> Tensor
    /// An independent cache with the same positions.
    func copied() -> any KeyValueCache
    /// An independent cache of `copies` × its batch sequences: each stored sequence `copies` times
    /// in a row, with room for `extra` more positions (several continuations of one prefix, scored
    /// as one batch); nil where the storage cannot (the default), and callers go one at a time.
    func replicated(_ copies: Int, extra: Int) -> (any KeyValueCache)?
}

extension KeyValueCache {
    public func replicated(_ copies: Int, extra: Int) -> (any KeyValueCache)? { nil }
}

/// The keys and values one attention layer has seen, for `batch` sequences, stored
/// [batch, heads, capacity, headDim] in preallocated buffers: an append writes the new positions
/// in place, and `attention` reads the stored prefix where it lies, so nothing of the past is
/// copied at a decoding step. The capacity grows in chunks (by half again, at least `chunk`
/// positions); `reserve` sets it up front when the final length is known. Inference only: no
/// autograd passes through it.
public final class KVBuffer {
    public let batch: Int
    public let heads: Int
    public let headDim: Int
    /// Positions stored.
    public private(set) var count = 0
    /// Positions the buffers hold before they must grow.
    public private(set) var capacity = 0
    /// The smallest growth, in positions.
    public static let chunk = 256
    private var keys: TensorStorage
    private var values: TensorStorage

    public init(batch: Int, heads: Int, headDim: Int, capacity: Int = 0) {
        precondition(batch > 0 && heads > 0 && headDim > 0, "a KV buffer needs a batch, heads and a head size")
        self.batch = batch
        self.heads = heads
        self.headDim = headDim
        keys = TensorStorage(count: 0)
        values = TensorStorage(count: 0)
        if capacity > 0 { reserve(capacity) }
    }

    /// Makes room for at least `positions` positions in all (stored ones kept).
    public func reserve(_ positions: Int) {
        guard positions > capacity else { return }
        let rows = batch * heads
        let newKeys = TensorStorage(count: rows * positions * headDim)
        let newValues = TensorStorage(count: rows * positions * headDim)
        if count > 0 {
            let used = count * headDim
            for r in 0..<rows {
                (newKeys.pointer + r * positions * headDim).update(from: keys.pointer + r * capacity * headDim, count: used)
                (newValues.pointer + r * positions * headDim).update(from: values.pointer + r * capacity * headDim, count: used)
            }
        }
        keys = newKeys
        values = newValues
        capacity = positions
    }

    /// Appends `n` positions: keys and values [batch, heads, n, headDim].
    public func append(keys k: Tensor, values v: Tensor) {
        precondition(k.shape == v.shape && k.rank == 4 && k.shape[0] == batch && k.shape[1] == heads && k.shape[3] == headDim,
                     "append takes keys and values [\(batch), \(heads), n, \(headDim)], got \(k.shape) and \(v.shape)")
        let n = k.shape[2]
        if count + n > capacity { reserve(Swift.max(count + n, capacity + Swift.max(Self.chunk, capacity / 2))) }
        let block = n * headDim
        for r in 0..<batch * heads {
            let at = r * capacity * headDim + count * headDim
            (keys.pointer + at).update(from: k.pointer + r * block, count: block)
            (values.pointer + at).update(from: v.pointer + r * block, count: block)
        }
        count += n
    }

    /// softmax(q·kᵀ + masks)·v over the stored positions, for queries [batch, queryHeads, n, headDim]
    /// already scaled (and rotated); returns [batch, queryHeads, n, headDim]. queryHeads is a
    /// multiple of the stored heads (grouped-query attention: query head h reads stored head
    /// h / (queryHeads / heads)). `causal`: the queries are
    /// the last n stored positions (query i sees keys j ≤ count − n + i). `keyPadding`: batch ×
    /// count flags, true where a key is padding. The fused kernel of `Tensor.fusedAttention`, reading
    /// the stored prefix where it lies: no scores matrix, so a long prompt prefilled in chunks
    /// needs memory linear in its length.
    public func attention(query q: Tensor, causal: Bool, keyPadding: [Bool]? = nil) -> Tensor {
        precondition(q.rank == 4 && q.shape[0] == batch && q.shape[1] % heads == 0 && q.shape[3] == headDim,
                     "attention takes queries [\(batch), a multiple of \(heads), n, \(headDim)], got \(q.shape)")
        let queryHeads = q.shape[1]
        let n = q.shape[2], keyCount = count
        precondition(!causal || n <= keyCount, "causal attention of \(n) queries over \(keyCount) keys")
        if let keyPadding {
            precondition(keyPadding.count == batch * keyCount, "keyPadding needs \(batch)×\(keyCount) flags, got \(keyPadding.count)")
        }
        let out = Tensor.uninitialized([batch, queryHeads, n, headDim])
        if n == 0 { return out }
        guard keyCount > 0 else { out.fill(0); return out }
        let layout = AttentionLayout(rows: batch * queryHeads, heads: queryHeads, queries: n, keys: keyCount, headDim: headDim,
                                     valueDim: headDim, queryStride: n * headDim, keyStride: capacity * headDim,
                                     valueStride: capacity * headDim, outputStride: n * headDim, causal: causal, scale: 1,
                                     group: queryHeads / heads)
        keyPadding.withUnsafeBufferPointerOrNil { padding in
            fusedAttentionForward(layout, q: q.pointer, k: keys.pointer, v: values.pointer, out: out.pointer,
                                  logSumExp: nil, padding: padding?.baseAddress)
        }
        return out
    }

    /// An independent buffer with the same positions (for beam search, where beams part ways).
    public func copy() -> KVBuffer {
        let c = KVBuffer(batch: batch, heads: heads, headDim: headDim, capacity: Swift.max(count, 1))
        if count > 0 { c.append(keys: storedKeys, values: storedValues) }
        return c
    }

    /// The stored keys as a contiguous tensor [batch, heads, count, headDim] (a copy).
    public var storedKeys: Tensor { contiguous(keys) }
    /// The stored values as a contiguous tensor [batch, heads, count, headDim] (a copy).
    public var storedValues: Tensor { contiguous(values) }

    private func contiguous(_ storage: TensorStorage) -> Tensor {
        let t = Tensor.uninitialized([batch, heads, count, headDim])
        let block = count * headDim
        for r in 0..<batch * heads {
            (t.pointer + r * block).update(from: storage.pointer + r * capacity * headDim, count: block)
        }
        return t
    }
}

extension KVBuffer: KeyValueCache {
    public func copied() -> any KeyValueCache { copy() }

    public func replicated(_ copies: Int, extra: Int) -> (any KeyValueCache)? {
        precondition(copies > 0 && extra >= 0, "a replica needs at least one copy")
        let c = KVBuffer(batch: batch * copies, heads: heads, headDim: headDim, capacity: Swift.max(count + extra, 1))
        guard count > 0 else { return c }
        let keys = storedKeys, values = storedValues
        let block = heads * count * headDim
        let k = Tensor.uninitialized([batch * copies, heads, count, headDim])
        let v = Tensor.uninitialized([batch * copies, heads, count, headDim])
        for b in 0..<batch {
            for r in 0..<copies {
                (k.pointer + (b * copies + r) * block).update(from: keys.pointer + b * block, count: block)
                (v.pointer + (b * copies + r) * block).update(from: values.pointer + b * block, count: block)
            }
        }
        c.append(keys: k, values: v)
        return c
    }
}
