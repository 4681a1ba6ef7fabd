import XCTest
@testable import KosmosTensor

/// Continuations of one prompt read the prompt's keys in place (`SharedPrefixKVCache`): the same
/// attention as copies of the prompt in a batch buffer, for grouped-query heads, causal and not,
/// after the replica grows and after it is copied.
final class SharedPrefixCacheTests: XCTestCase {
    func testSharedPrefixAttentionEqualsCopiedPrompts() throws {
        let generator = RandomGenerator(seed: 11)
        for (queryHeads, kvHeads) in [(4, 4), (4, 2)] {
            let d = 8, prompt = 7, copies = 3
            let prefix = KVBuffer(batch: 1, heads: kvHeads, headDim: d)
            let pk = Tensor.randn([1, kvHeads, prompt, d], generator: generator), pv = Tensor.randn([1, kvHeads, prompt, d], generator: generator)
            prefix.append(keys: pk, values: pv)
            let replica = try XCTUnwrap(prefix.replicated(copies, extra: 4))
            XCTAssertTrue(replica is SharedPrefixKVCache)
            // The reference: the prompt copied into every row of a batch buffer.
            let batch = KVBuffer(batch: copies, heads: kvHeads, headDim: d)
            batch.append(keys: Tensor.concatenate(Array(repeating: pk, count: copies), axis: 0),
                         values: Tensor.concatenate(Array(repeating: pv, count: copies), axis: 0))
            var reference: any KeyValueCache = batch
            var shared = replica
            for (step, n) in [3, 1, 2].enumerated() {
                let k = Tensor.randn([copies, kvHeads, n, d], generator: generator), v = Tensor.randn([copies, kvHeads, n, d], generator: generator)
                shared.append(keys: k, values: v)
                reference.append(keys: k, values: v)
                XCTAssertEqual(shared.count, reference.count)
                let q = Tensor.randn([copies, queryHeads, n, d], generator: generator)
                for causal in [true, false] {
                    let a = shared.attention(query: q, causal: causal, keyPadding: nil).scalars
                    let b = reference.attention(query: q, causal: causal, keyPadding: nil).scalars
                    XCTAssertEqual(a.count, b.count)
                    let worst = zip(a, b).map { abs($0 - $1) }.max()!
                    XCTAssertLessThan(worst, 1e-6, "heads \(queryHeads)/\(kvHeads) step \(step) causal \(causal)")
                }
                if step == 1 { shared = shared.copied(); reference = reference.copied() }
            }
            // The prompt itself is untouched by the replica's appends.
            XCTAssertEqual(prefix.count, prompt)
        }
    }
}
