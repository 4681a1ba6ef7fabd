import Foundation

/// The keys and values of one attention layer as decoding grows and reads them: append new
/// positions, attend over all of them, copy for a beam. `KVBuffer` is the preallocated float32
/// implementation; a quantized or windowed cache implements the same members (`replicated` is
/// optional: nil by default).
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
    fileprivate var keys: TensorStorage
    fileprivate var values: TensorStorage

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

    /// One sequence (batch 1) is shared in place: each copy reads these positions where they lie
    /// and keeps only its own new ones (`SharedPrefixKVCache`); a batch of several is copied.
    public func replicated(_ copies: Int, extra: Int) -> (any KeyValueCache)? {
        precondition(copies > 0 && extra >= 0, "a replica needs at least one copy")
        if batch == 1 && count > 0 { return SharedPrefixKVCache(prefix: self, copies: copies, extra: extra) }
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

/// Several sequences that continue one stored sequence (continuations of one prompt scored as a
/// batch): the prompt's keys and values stay in the `prefix` buffer, read in place by every copy,
/// and each copy's new positions go to a buffer of its own. Attention runs over the two parts and
/// merges them by their log-sum-exp, so nothing of the prompt is copied (for 1,000 class names
/// after one image, copying was 30 MB of a 1.3B model's cache per name). The prefix's first
/// `prefixCount` positions are what it had when the replica was made.
final class SharedPrefixKVCache: KeyValueCache {
    let prefix: KVBuffer
    let prefixCount: Int
    let copies: Int
    let own: KVBuffer

    init(prefix: KVBuffer, copies: Int, extra: Int, own: KVBuffer? = nil) {
        precondition(prefix.batch == 1, "a shared prefix is one sequence")
        self.prefix = prefix
        prefixCount = prefix.count
        self.copies = copies
        self.own = own ?? KVBuffer(batch: copies, heads: prefix.heads, headDim: prefix.headDim, capacity: Swift.max(extra, 1))
    }

    var count: Int { prefixCount + own.count }

    func append(keys: Tensor, values: Tensor) { own.append(keys: keys, values: values) }

    func copied() -> any KeyValueCache { SharedPrefixKVCache(prefix: prefix, copies: copies, extra: 0, own: own.copy()) }

    func replicated(_ copies: Int, extra: Int) -> (any KeyValueCache)? { nil }

    /// Queries [copies, queryHeads, n, headDim], the last n positions of each copy when `causal`.
    func attention(query q: Tensor, causal: Bool, keyPadding: [Bool]?) -> Tensor {
        precondition(keyPadding == nil, "a shared-prefix cache takes no key padding")
        let heads = prefix.heads, d = prefix.headDim, b = copies
        precondition(q.rank == 4 && q.shape[0] == b && q.shape[1] % heads == 0 && q.shape[3] == d,
                     "attention takes queries [\(b), a multiple of \(heads), n, \(d)], got \(q.shape)")
        let h = q.shape[1], n = q.shape[2]
        let out = Tensor.uninitialized([b, h, n, d])
        if n == 0 { return out }
        precondition(!causal || n <= own.count, "causal attention of \(n) queries over \(own.count) new keys")
        // The prompt: every query sees all of it. Queries reordered head-major ([h, b, n, d]) so
        // that the b copies of a head share its key row (the kernel's grouped-query mapping).
        let block = n * d
        let grouped = Tensor.uninitialized([h, b, n, d])
        for i in 0..<b { for j in 0..<h { (grouped.pointer + (j * b + i) * block).update(from: q.pointer + (i * h + j) * block, count: block) } }
        let first = Tensor.uninitialized([h, b, n, d]), second = Tensor.uninitialized([b, h, n, d])
        let lse1 = UnsafeMutablePointer<Float>.allocate(capacity: b * h * n), lse2 = UnsafeMutablePointer<Float>.allocate(capacity: b * h * n)
        defer { lse1.deallocate(); lse2.deallocate() }
        let shared = AttentionLayout(rows: h * b, heads: h * b, queries: n, keys: prefixCount, headDim: d, valueDim: d,
                                     queryStride: block, keyStride: prefix.capacity * d, valueStride: prefix.capacity * d,
                                     outputStride: block, causal: false, scale: 1, group: b * (h / heads))
        fusedAttentionForward(shared, q: grouped.pointer, k: prefix.keys.pointer, v: prefix.values.pointer, out: first.pointer,
                              logSumExp: lse1, padding: nil)
        // Each copy's own positions, causal.
        let mine = AttentionLayout(rows: b * h, heads: h, queries: n, keys: own.count, headDim: d, valueDim: d,
                                   queryStride: block, keyStride: own.capacity * d, valueStride: own.capacity * d,
                                   outputStride: block, causal: causal, scale: 1, group: h / heads)
        fusedAttentionForward(mine, q: q.pointer, k: own.keys.pointer, v: own.values.pointer, out: second.pointer,
                              logSumExp: lse2, padding: nil)
        // softmax over both parts: each part's output weighted by its share of the total.
        for i in 0..<b {
            for j in 0..<h {
                for t in 0..<n {
                    let r1 = (j * b + i) * n + t, r2 = (i * h + j) * n + t
                    let l1 = lse1[r1], l2 = lse2[r2], m = Swift.max(l1, l2)
                    let o = out.pointer + r2 * d, o1 = first.pointer + r1 * d, o2 = second.pointer + r2 * d
                    guard m > -.infinity else { o.update(repeating: 0, count: d); continue }
                    let w1 = Foundation.exp(l1 - m), w2 = Foundation.exp(l2 - m), total = w1 + w2
                    let a = w1 / total, c = w2 / total
                    for e in 0..<d { o[e] = a * o1[e] + c * o2[e] }
                }
            }
        }
        return out
    }
}
