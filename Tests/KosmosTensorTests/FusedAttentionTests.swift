import Foundation
import XCTest
@testable import KosmosTensor

/// The fused attention kernel against the unfused ops (scores, masked softmax, weighted sum):
/// forward and every gradient to 1e-6, over the masks and the tile and block boundaries.
final class FusedAttentionTests: XCTestCase {
    private struct Case {
        let batch: Int, heads: Int, queries: Int, keys: Int, headDim: Int, valueDim: Int
        let causal: Bool
        let padded: Bool
    }

    private let cases: [Case] = [
        Case(batch: 1, heads: 1, queries: 1, keys: 1, headDim: 8, valueDim: 8, causal: false, padded: false),
        Case(batch: 2, heads: 3, queries: 17, keys: 17, headDim: 16, valueDim: 16, causal: true, padded: false),
        Case(batch: 2, heads: 2, queries: 5, keys: 300, headDim: 24, valueDim: 20, causal: true, padded: true),
        Case(batch: 1, heads: 2, queries: 40, keys: 260, headDim: 64, valueDim: 64, causal: false, padded: true),
        Case(batch: 3, heads: 1, queries: 33, keys: 33, headDim: 7, valueDim: 5, causal: true, padded: true),
    ]

    private func padding(_ c: Case, _ generator: RandomGenerator) -> [Bool]? {
        guard c.padded else { return nil }
        // Random padding, and in the last sequence every key padded (its queries see nothing).
        var flags = (0..<c.batch * c.keys).map { _ in generator.nextFloat() < 0.3 }
        if c.batch > 1 { for j in 0..<c.keys { flags[(c.batch - 1) * c.keys + j] = true } }
        return flags
    }

    func testForwardAndGradientsEqualUnfused() {
        let generator = RandomGenerator(seed: 11)
        for c in cases {
            let q = Tensor.randn([c.batch, c.heads, c.queries, c.headDim], generator: generator)
            let k = Tensor.randn([c.batch, c.heads, c.keys, c.headDim], generator: generator)
            let v = Tensor.randn([c.batch, c.heads, c.keys, c.valueDim], generator: generator)
            let weights = Tensor.randn([c.batch, c.heads, c.queries, c.valueDim], generator: generator)
            let pad = padding(c, generator)
            var results: [[Tensor]] = []
            for fused in [true, false] {
                let qi = q.clone(), ki = k.clone(), vi = v.clone()
                for t in [qi, ki, vi] { t.requiresGrad = true }
                let out = fused
                    ? Tensor.fusedAttention(query: qi, key: ki, value: vi, causal: c.causal, keyPadding: pad, scale: 0.3)
                    : Tensor.unfusedAttention(query: qi, key: ki, value: vi, causal: c.causal, keyPadding: pad, scale: 0.3)
                (out * weights).sum().backward()
                results.append([out.detached(), qi.grad!, ki.grad!, vi.grad!])
            }
            let exact = float64Attention(q: q.scalars, k: k.scalars, v: v.scalars, weights: weights.scalars, rows: c.batch * c.heads,
                                         heads: c.heads, queries: c.queries, keys: c.keys, headDim: c.headDim, valueDim: c.valueDim,
                                         causal: c.causal, padding: pad, scale: 0.3)
            for (index, name) in ["output", "dq", "dk", "dv"].enumerated() {
                let f = results[0][index].scalars, u = results[1][index].scalars
                func worst(_ a: [Float]) -> Float { zip(a, exact[index]).map { abs($0 - $1) / (1 + abs($1)) }.max() ?? 0 }
                // Against float64: within 1e-6 (relative to 1 + |x|), or, where the float32 dot products
                // are long enough that the unfused ops themselves are further off (headDim 64: about
                // 1.3e-6), no further off than 1.5× the unfused ops.
                let bound = Swift.max(1e-6, 1.5 * worst(u))
                XCTAssertLessThanOrEqual(worst(f), bound, "\(c) \(name) against float64 (unfused: \(worst(u)))")
                // Against the unfused float32 ops: 1e-6 where the dot products are short. At headDim 64
                // the two float32 summation orders are each ~1e-6 from float64, so they can differ by
                // twice that; there the float64 bound above is the test.
                if c.headDim <= 24 {
                    assertClose(f, u, rtol: 1e-6, atol: 1e-6, "\(c) \(name) against unfused")
                }
            }
        }
    }

    /// Grouped-query attention (fewer key/value heads than query heads): the fused kernel equals
    /// the unfused ops, which repeat each key/value head for its group, forward and gradients (the
    /// key/value gradients summed over the group), and the KV buffer reads its stored heads the same way.
    func testGroupedKeyValueHeadsEqualRepeatedHeads() {
        let generator = RandomGenerator(seed: 14)
        for kvHeads in [1, 2] {
            let q = Tensor.randn([2, 4, 19, 8], generator: generator)
            let k = Tensor.randn([2, kvHeads, 150, 8], generator: generator), v = Tensor.randn([2, kvHeads, 150, 8], generator: generator)
            let weights = Tensor.randn([2, 4, 19, 8], generator: generator)
            let pad = (0..<2 * 150).map { $0 % 5 == 2 }
            var results: [[Tensor]] = []
            for fused in [true, false] {
                let qi = q.clone(), ki = k.clone(), vi = v.clone()
                for t in [qi, ki, vi] { t.requiresGrad = true }
                let out = fused
                    ? Tensor.fusedAttention(query: qi, key: ki, value: vi, causal: true, keyPadding: pad, scale: 0.4)
                    : Tensor.unfusedAttention(query: qi, key: ki, value: vi, causal: true, keyPadding: pad, scale: 0.4)
                (out * weights).sum().backward()
                XCTAssertEqual(ki.grad?.shape, k.shape)
                results.append([out.detached(), qi.grad!, ki.grad!, vi.grad!])
            }
            for (index, name) in ["output", "dq", "dk", "dv"].enumerated() {
                assertClose(results[0][index].scalars, results[1][index].scalars, rtol: 1e-5, atol: 1e-6, "kv heads \(kvHeads): \(name)")
            }
            let buffer = KVBuffer(batch: 2, heads: kvHeads, headDim: 8)
            buffer.append(keys: k, values: v)
            let cached = buffer.attention(query: q.scaled(by: 0.4), causal: true, keyPadding: pad)
            // The buffer takes queries scaled already (rounded once more than the kernel's scale).
            assertClose(cached.scalars, results[0][0].scalars, rtol: 1e-5, atol: 1e-6, "kv heads \(kvHeads): the buffer's attention")
        }
    }

    /// Dropout inside the fused kernel (a mask drawn per row, query and key from a seed) equals the
    /// unfused ops multiplying the softmax by that same mask, forward and gradients, over masks,
    /// padding, grouped heads and tile boundaries; it drops the asked fraction.
    func testDropoutInTheKernelEqualsTheUnfusedOpsWithTheSameMask() {
        let generator = RandomGenerator(seed: 15)
        let dropout = AttentionDropout(probability: 0.3, seed: 987)
        let (batch, heads, kvHeads, queries, keys, d) = (2, 4, 2, 21, 150, 8)
        let q = Tensor.randn([batch, heads, queries, d], generator: generator)
        let k = Tensor.randn([batch, kvHeads, keys, d], generator: generator), v = Tensor.randn([batch, kvHeads, keys, d], generator: generator)
        let weights = Tensor.randn([batch, heads, queries, d], generator: generator)
        let pad = (0..<batch * keys).map { $0 % 9 == 4 }
        var mask = [Float](repeating: 0, count: batch * heads * queries * keys)
        for r in 0..<batch * heads {
            for i in 0..<queries { for j in 0..<keys { mask[(r * queries + i) * keys + j] = dropout.factor(row: r, query: i, key: j) } }
        }
        var results: [[Tensor]] = []
        for fused in [true, false] {
            let qi = q.clone(), ki = k.clone(), vi = v.clone()
            for t in [qi, ki, vi] { t.requiresGrad = true }
            let out: Tensor
            if fused {
                out = Tensor.fusedAttention(query: qi, key: ki, value: vi, causal: true, keyPadding: pad, scale: 0.35, dropout: dropout)
            } else {
                let scores = Tensor.matmul(qi, ki.repeatingHeads(heads), transposeB: true)
                let probabilities = scores.maskedSoftmax(scale: 0.35, causal: true, keyPadding: pad)
                    * Tensor(shape: [batch, heads, queries, keys], scalars: mask)
                out = Tensor.matmul(probabilities, vi.repeatingHeads(heads))
            }
            (out * weights).sum().backward()
            results.append([out.detached(), qi.grad!, ki.grad!, vi.grad!])
        }
        for (index, name) in ["output", "dq", "dk", "dv"].enumerated() {
            assertClose(results[0][index].scalars, results[1][index].scalars, rtol: 1e-5, atol: 1e-6, "dropout: \(name)")
        }
        let dropped = mask.filter { $0 == 0 }.count
        XCTAssertEqual(Double(dropped) / Double(mask.count), 0.3, accuracy: 0.01)
        XCTAssertTrue(mask.allSatisfy { $0 == 0 || abs($0 - 1 / 0.7) < 1e-6 })
        // Probability 0 is no dropout; another seed, another mask.
        let plain = withoutGrad { Tensor.fusedAttention(query: q, key: k, value: v, causal: true, scale: 0.35) }
        let zero = withoutGrad { Tensor.fusedAttention(query: q, key: k, value: v, causal: true, scale: 0.35, dropout: AttentionDropout(probability: 0, seed: 5)) }
        XCTAssertEqual(plain.scalars, zero.scalars)
        let other = AttentionDropout(probability: 0.3, seed: 988)
        let differing = (0..<1000).filter { dropout.factor(row: 1, query: $0 % 21, key: $0) != other.factor(row: 1, query: $0 % 21, key: $0) }
        XCTAssertGreaterThan(differing.count, 300, "another seed draws another mask")
    }

    func testScaledDotProductAttentionIsFusedWithoutBiasOrDropout() {
        let generator = RandomGenerator(seed: 12)
        let q = Tensor.randn([1, 2, 9, 8], generator: generator), k = Tensor.randn([1, 2, 9, 8], generator: generator)
        let v = Tensor.randn([1, 2, 9, 8], generator: generator)
        let a = withoutGrad { Tensor.scaledDotProductAttention(query: q, key: k, value: v, causal: true) }
        let f = withoutGrad { Tensor.fusedAttention(query: q, key: k, value: v, causal: true) }
        XCTAssertEqual(a.scalars, f.scalars)
        // An additive bias takes the unfused path and still agrees with it.
        let bias = Tensor.randn([1, 1, 9, 9], generator: generator)
        let withBias = withoutGrad { Tensor.scaledDotProductAttention(query: q, key: k, value: v, bias: bias) }
        let reference = withoutGrad { Tensor.unfusedAttention(query: q, key: k, value: v, bias: bias) }
        XCTAssertEqual(withBias.scalars, reference.scalars)
    }

    /// The KV buffer's attention (the fused kernel over strided storage) equals the fused kernel over
    /// contiguous copies of the stored keys exactly, and the unfused ops to rounding, for a chunk of
    /// queries after a prefix (a chunked prefill).
    func testKVBufferAttentionEqualsUnfused() {
        let generator = RandomGenerator(seed: 13)
        let buffer = KVBuffer(batch: 2, heads: 3, headDim: 16)
        buffer.append(keys: Tensor.randn([2, 3, 200, 16], generator: generator), values: Tensor.randn([2, 3, 200, 16], generator: generator))
        buffer.append(keys: Tensor.randn([2, 3, 70, 16], generator: generator), values: Tensor.randn([2, 3, 70, 16], generator: generator))
        let q = Tensor.randn([2, 3, 70, 16], generator: generator)
        let pad = (0..<2 * 270).map { $0 % 7 == 3 }
        let ours = buffer.attention(query: q, causal: true, keyPadding: pad)
        let fused = withoutGrad {
            Tensor.fusedAttention(query: q, key: buffer.storedKeys, value: buffer.storedValues, causal: true, keyPadding: pad, scale: 1)
        }
        XCTAssertEqual(ours.scalars, fused.scalars)
        let reference = withoutGrad {
            Tensor.unfusedAttention(query: q, key: buffer.storedKeys, value: buffer.storedValues, causal: true, keyPadding: pad, scale: 1)
        }
        assertClose(ours, reference, rtol: 1e-5, atol: 1e-5, "scale 1: scores up to ~15, so exp amplifies the float32 order")
    }
}

/// Attention and its gradients in float64 (the reference both float32 paths are measured against):
/// returns output, dq, dk, dv for the loss Σ out·weights.
func float64Attention(q: [Float], k: [Float], v: [Float], weights: [Float], rows: Int, heads: Int, queries: Int, keys: Int,
                      headDim: Int, valueDim: Int, causal: Bool, padding: [Bool]?, scale: Double) -> [[Float]] {
    var out = [Double](repeating: 0, count: rows * queries * valueDim)
    var dq = [Double](repeating: 0, count: q.count), dk = [Double](repeating: 0, count: k.count), dv = [Double](repeating: 0, count: v.count)
    for r in 0..<rows {
        let b = r / heads
        for i in 0..<queries {
            let visible = causal ? max(0, min(keys, i + keys - queries + 1)) : keys
            var s = [Double](repeating: -.infinity, count: keys)
            for j in 0..<visible where !(padding?[b * keys + j] ?? false) {
                var dot = 0.0
                for d in 0..<headDim { dot += Double(q[(r * queries + i) * headDim + d]) * Double(k[(r * keys + j) * headDim + d]) }
                s[j] = dot * scale
            }
            let m = s.max()!
            if m == -.infinity { continue }
            let e = s.map { $0 == -.infinity ? 0 : Foundation.exp($0 - m) }
            let total = e.reduce(0, +)
            let p = e.map { $0 / total }
            let g = (0..<valueDim).map { Double(weights[(r * queries + i) * valueDim + $0]) }
            var dp = [Double](repeating: 0, count: keys)
            for j in 0..<keys where p[j] != 0 {
                for d in 0..<valueDim {
                    out[(r * queries + i) * valueDim + d] += p[j] * Double(v[(r * keys + j) * valueDim + d])
                    dv[(r * keys + j) * valueDim + d] += p[j] * g[d]
                    dp[j] += g[d] * Double(v[(r * keys + j) * valueDim + d])
                }
            }
            let delta = (0..<keys).reduce(0.0) { $0 + p[$1] * dp[$1] }
            for j in 0..<keys where p[j] != 0 {
                let ds = p[j] * (dp[j] - delta) * scale
                for d in 0..<headDim {
                    dq[(r * queries + i) * headDim + d] += ds * Double(k[(r * keys + j) * headDim + d])
                    dk[(r * keys + j) * headDim + d] += ds * Double(q[(r * queries + i) * headDim + d])
                }
            }
        }
    }
    return [out, dq, dk, dv].map { $0.map(Float.init) }
}
