import Foundation
import XCTest
import KosmosNN
import KosmosTensor
@testable import KosmosModels

/// The KV cache against torchscale's incremental decoding (scripts/reference/incremental_reference.py):
/// a 5-token prefill, then 4 tokens one at a time; every step's logits to 1e-5.
final class IncrementalDecodingTests: XCTestCase {
    func check(_ variant: String) throws {
        let fixture = try modelFixture("incremental_\(variant).safetensors")
        let decoder = try MagnetoDecoder(configuration: DecoderParityTests.configuration(variant), generator: RandomGenerator(seed: 0))
        try decoder.load(from: try modelFixture("decoder_\(variant).safetensors"), prefix: "model.", sourceName: variant)
        decoder.eval()
        let tokens = try fixture.int64s("tokens").map { Int($0) }
        let expected = try fixture.floats("step_logits")
        let vocab = 50
        let cache = decoder.makeCache()
        var steps: [Float] = []
        try withoutGrad {
            let prefill = try decoder(tokens: Array(tokens[0..<5]), batch: 1, length: 5, cache: cache)
            steps += Array(prefill.scalars[(4 * vocab)..<(5 * vocab)])
            for t in 5..<9 {
                steps += try decoder(tokens: [tokens[t]], batch: 1, length: 1, cache: cache).scalars
            }
        }
        XCTAssertEqual(cache.length, 9)
        assertAllClose(steps, expected, rtol: 1e-5, atol: 1e-5, "\(variant) incremental logits")
        // And the cached steps agree with one full forward pass.
        let full = try withoutGrad { try decoder(tokens: tokens, batch: 1, length: 9) }
        assertAllClose(steps, Array(full.scalars[(4 * vocab)...]), rtol: 1e-5, atol: 1e-5, "\(variant) cache vs full")
    }

    func testXPos() throws { try check("xpos_subln") }
    func testXPosWithLearnedPositions() throws { try check("xpos_learned") }
    func testWithoutXPos() throws { try check("subln") }

    func testSeveralNewTokensAfterAPrefillMatchTheFullPass() throws {
        let decoder = try MagnetoDecoder(configuration: DecoderParityTests.configuration("xpos_learned"), generator: RandomGenerator(seed: 3))
        decoder.eval()
        let tokens = [4, 8, 15, 16, 23, 42, 7]
        let cache = decoder.makeCache()
        let (first, second, full) = try withoutGrad {
            (try decoder(tokens: Array(tokens[0..<3]), batch: 1, length: 3, cache: cache),
             try decoder(tokens: Array(tokens[3...]), batch: 1, length: 4, cache: cache),
             try decoder(tokens: tokens, batch: 1, length: 7))
        }
        assertAllClose(first.scalars + second.scalars, full.scalars, rtol: 1e-5, atol: 1e-5, "chunked prefill")
        XCTAssertThrowsError(try decoder(tokens: [1], batch: 1, length: 1, keyPadding: [false], cache: cache)) { error in
            XCTAssertTrue("\(error)".contains("8 positions"), "\(error)")
        }
    }

    func testSequencesLongerThanTheContextAreRefused() throws {
        let decoder = try MagnetoDecoder(configuration: DecoderParityTests.configuration("xpos_subln"), generator: RandomGenerator(seed: 3))
        XCTAssertThrowsError(try decoder(tokens: [Int](repeating: 3, count: 17), batch: 1, length: 17)) { error in
            XCTAssertEqual(error as? ModelError, .sequenceTooLong(length: 17, maximum: 16))
        }
        let cache = decoder.makeCache()
        _ = try withoutGrad { try decoder(tokens: [Int](repeating: 3, count: 16), batch: 1, length: 16, cache: cache) }
        XCTAssertThrowsError(try decoder(tokens: [3], batch: 1, length: 1, cache: cache))
    }
}

/// The preallocated KV cache: a long decode (past the first growth of the buffers) equals one full
/// pass at every step; the buffer's attention equals the tensor ops over a contiguous copy.
final class KVCacheTests: XCTestCase {
    func testEveryStepOfALongDecodeEqualsTheFullPass() throws {
        var c = DecoderParityTests.configuration("xpos_subln")
        c.maxTargetPositions = 320
        let decoder = try MagnetoDecoder(configuration: c, generator: RandomGenerator(seed: 11))
        decoder.eval()
        let generator = RandomGenerator(seed: 12)
        let tokens = (0..<300).map { _ in generator.nextInt(below: c.vocabSize) }
        let cache = decoder.makeCache()
        let (steps, full) = try withoutGrad {
            var steps = try decoder(tokens: Array(tokens[0..<7]), batch: 1, length: 7, cache: cache).scalars
            for t in 7..<tokens.count { steps += try decoder(tokens: [tokens[t]], batch: 1, length: 1, cache: cache).scalars }
            return (steps, try decoder(tokens: tokens, batch: 1, length: tokens.count).scalars)
        }
        XCTAssertEqual(cache.length, 300)
        let buffer = try XCTUnwrap(cache.layers[0].buffer as? KVBuffer)
        XCTAssertEqual(buffer.count, 300)
        XCTAssertGreaterThan(buffer.capacity, KVBuffer.chunk, "the buffers grew past their first chunk")
        // Per step, so a failure names the position.
        let vocab = c.vocabSize
        for t in stride(from: 0, to: tokens.count, by: 1) {
            assertAllClose(Array(steps[(t * vocab)..<((t + 1) * vocab)]), Array(full[(t * vocab)..<((t + 1) * vocab)]),
                           rtol: 1e-5, atol: 1e-5, "position \(t)")
        }
        // A copy continues on its own: the original's next step is unchanged by the copy's.
        let copy = cache.copy()
        let (a, b) = try withoutGrad {
            (try decoder(tokens: [3], batch: 1, length: 1, cache: copy).scalars, try decoder(tokens: [3], batch: 1, length: 1, cache: cache).scalars)
        }
        XCTAssertEqual(a, b)
        XCTAssertEqual(copy.length, 301)
        XCTAssertEqual(cache.layers[0].count, 301)
    }

    /// Another `KeyValueCache` plugs in through the cache's storage factory: the decoder uses it for
    /// every layer and gives the same logits.
    func testACacheStorageOfItsOwnIsUsed() throws {
        final class Counting: KeyValueCache {
            let inner: KVBuffer
            let appends: AppendCounter
            init(_ inner: KVBuffer, _ appends: AppendCounter) { self.inner = inner; self.appends = appends }
            var count: Int { inner.count }
            func append(keys: Tensor, values: Tensor) { appends.value += 1; inner.append(keys: keys, values: values) }
            func attention(query: Tensor, causal: Bool, keyPadding: [Bool]?) -> Tensor {
                inner.attention(query: query, causal: causal, keyPadding: keyPadding)
            }
            func copied() -> any KeyValueCache { Counting(inner.copy(), appends) }
        }
        let c = DecoderParityTests.configuration("xpos_subln")
        let decoder = try MagnetoDecoder(configuration: c, generator: RandomGenerator(seed: 5))
        decoder.eval()
        let appends = AppendCounter()
        let counting = DecoderCache(layers: c.decoderLayers, minPosition: -(c.maxTargetPositions / 2)) { batch, heads, headDim, reservation in
            Counting(KVBuffer(batch: batch, heads: heads, headDim: headDim, capacity: reservation), appends)
        }
        let plain = decoder.makeCache()
        let tokens = [3, 9, 4, 11, 7]
        let (a, b) = try withoutGrad {
            var a = try decoder(tokens: Array(tokens[0..<2]), batch: 1, length: 2, cache: counting).scalars
            var b = try decoder(tokens: Array(tokens[0..<2]), batch: 1, length: 2, cache: plain).scalars
            for t in tokens[2...] {
                a += try decoder.next(t, cache: counting).scalars
                b += try decoder.next(t, cache: plain).scalars
            }
            return (a, b)
        }
        XCTAssertEqual(a, b)
        XCTAssertEqual(appends.value, c.decoderLayers * 4, "one append per layer for the prefill and each of 3 steps")
        XCTAssertTrue(counting.layers.allSatisfy { $0.buffer is Counting })
    }

    func testBufferAttentionEqualsTheTensorOps() throws {
        let generator = RandomGenerator(seed: 21)
        let buffer = KVBuffer(batch: 2, heads: 3, headDim: 8)
        var keys: [Tensor] = [], values: [Tensor] = []
        for n in [5, 1, 250, 3] {  // 259 positions: one growth
            let k = Tensor.randn([2, 3, n, 8], generator: generator), v = Tensor.randn([2, 3, n, 8], generator: generator)
            buffer.append(keys: k, values: v)
            keys.append(k)
            values.append(v)
        }
        let k = Tensor.concatenate(keys, axis: 2), v = Tensor.concatenate(values, axis: 2)
        XCTAssertEqual(buffer.storedKeys.scalars, k.scalars)
        XCTAssertEqual(buffer.storedValues.scalars, v.scalars)
        let q = Tensor.randn([2, 3, 4, 8], generator: generator)
        var padding = [Bool](repeating: false, count: 2 * 259)
        for j in [0, 17, 200] { padding[259 + j] = true }
        for (causal, mask) in [(true, nil), (false, nil), (true, padding)] as [(Bool, [Bool]?)] {
            // The fused kernel over contiguous copies exactly; the three tensor ops to float32 rounding.
            let ours = buffer.attention(query: q, causal: causal, keyPadding: mask)
            let fused = Tensor.fusedAttention(query: q, key: k, value: v, causal: causal, keyPadding: mask, scale: 1)
            XCTAssertEqual(ours.scalars, fused.scalars, "causal \(causal), padding \(mask != nil)")
            let ops = Tensor.matmul(Tensor.matmul(q, k, transposeB: true).maskedSoftmax(scale: 1, causal: causal, keyPadding: mask), v)
            XCTAssertEqual(ours.shape, ops.shape)
            for (a, b) in zip(ours.scalars, ops.scalars) {
                XCTAssertEqual(a, b, accuracy: 1e-6 * (1 + abs(b)), "causal \(causal), padding \(mask != nil)")
            }
        }
    }
}

/// A count shared by the copies of a test cache (one thread).
final class AppendCounter {
    var value = 0
}
