import Foundation
import XCTest
@testable import KosmosTensor

/// Shapes, broadcasting rules, products against naive loops, autograd bookkeeping.
final class EngineTests: XCTestCase {
    let generator = RandomGenerator(seed: 21)

    func testBroadcastShapeRules() {
        XCTAssertEqual(broadcastShapes([2, 3, 4], [4]), [2, 3, 4])
        XCTAssertEqual(broadcastShapes([2, 1, 4], [3, 1]), [2, 3, 4])
        XCTAssertEqual(broadcastShapes([], [5, 2]), [5, 2])
        XCTAssertEqual(broadcastShapes([1], [0]), [0])
        XCTAssertNil(broadcastShapes([2, 3], [4, 3]))
        XCTAssertNil(broadcastShapes([3], [4]))
    }

    /// Broadcasting arithmetic equals an explicit index computation for many shape pairs
    /// (covering the coalesced, vector-scalar and strided inner loops, and sizes across SIMD width).
    func testBroadcastValuesAgainstIndexLoop() {
        let pairs: [([Int], [Int])] = [
            ([2, 3, 4], [4]), ([2, 3, 4], [3, 1]), ([4, 1, 6], [3, 6]), ([5], [2, 3, 5]),
            ([2, 1, 33], [1, 7, 1]), ([1, 40], [40, 1]), ([3, 17], []), ([], [3, 17]), ([2, 2, 2, 19], [2, 1, 2, 19]),
        ]
        for (sa, sb) in pairs {
            let a = Tensor.randn(sa, generator: generator), b = Tensor.randn(sb, generator: generator)
            let out = a * b + a
            let shape = broadcastShapes(sa, sb)!
            XCTAssertEqual(out.shape, shape)
            let strides = contiguousStrides(shape)
            func index(_ flat: Int, _ own: [Int]) -> Int {
                let ownStrides = contiguousStrides(own)
                var result = 0
                for d in 0..<own.count where own[d] != 1 {
                    let outAxis = d + shape.count - own.count
                    result += (flat / strides[outAxis]) % shape[outAxis] * ownStrides[d]
                }
                return result
            }
            let av = a.scalars, bv = b.scalars, ov = out.scalars
            for i in 0..<ov.count {
                let x = av[index(i, sa)], y = bv[index(i, sb)]
                XCTAssertEqual(ov[i], x * y + x, "\(sa) ⊙ \(sb) at \(i)")
            }
        }
    }

    func testReductionShapes() {
        let x = Tensor.randn([2, 3, 4], generator: generator)
        XCTAssertEqual(x.sum().shape, [])
        XCTAssertEqual(x.sum(axes: [0, 2]).shape, [3])
        XCTAssertEqual(x.sum(axes: [0, 2], keepDims: true).shape, [1, 3, 1])
        XCTAssertEqual(x.sum(axis: -1).shape, [2, 3])
        XCTAssertEqual(x.mean(axis: 1, keepDims: true).shape, [2, 1, 4])
        XCTAssertEqual(x.max(axis: 2).values.shape, [2, 3])
        let v = x.scalars
        var expected = [Float](repeating: 0, count: 3)
        for i in 0..<2 { for j in 0..<3 { for k in 0..<4 { expected[j] += v[i * 12 + j * 4 + k] } } }
        assertClose(x.sum(axes: [0, 2]).scalars, expected, rtol: 1e-6, atol: 1e-6, "sum over axes 0, 2")
        XCTAssertEqual(x.max().item(), v.max()!)
    }

    func testLargeSumIsIndependentOfThreadCount() {
        let x = Tensor.randn([300_001], generator: generator)
        let saved = Parallel.threadCount
        defer { Parallel.threadCount = saved }
        Parallel.threadCount = 1
        let serial = x.sum().item()
        let serialSoftmax = x.reshaped([1, -1]).softmax().scalars
        Parallel.threadCount = 2
        XCTAssertEqual(x.sum().item(), serial)
        XCTAssertEqual(x.reshaped([1, -1]).softmax().scalars, serialSoftmax)
        let exact = x.scalars.reduce(0.0) { $0 + Double($1) }
        XCTAssertEqual(Double(serial), exact, accuracy: 1e-3)
    }

    func naiveProduct(_ a: [Float], _ b: [Float], m: Int, k: Int, n: Int, ta: Bool, tb: Bool) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var s: Double = 0
                for p in 0..<k {
                    let x = ta ? a[p * m + i] : a[i * k + p]
                    let y = tb ? b[j * k + p] : b[p * n + j]
                    s += Double(x) * Double(y)
                }
                c[i * n + j] = Float(s)
            }
        }
        return c
    }

    func testMatmulAgainstNaiveLoops() {
        for (m, k, n) in [(1, 1, 1), (1, 37, 19), (3, 5, 2), (17, 33, 9), (64, 64, 64)] {
            for ta in [false, true] {
                for tb in [false, true] {
                    let a = Tensor.randn(ta ? [k, m] : [m, k], generator: generator)
                    let b = Tensor.randn(tb ? [n, k] : [k, n], generator: generator)
                    let c = Tensor.matmul(a, b, transposeA: ta, transposeB: tb)
                    XCTAssertEqual(c.shape, [m, n])
                    assertClose(c.scalars, naiveProduct(a.scalars, b.scalars, m: m, k: k, n: n, ta: ta, tb: tb),
                                rtol: 1e-5, atol: 1e-5, "\(m)×\(k)×\(n) ta \(ta) tb \(tb)")
                }
            }
        }
    }

    func testBatchedMatmulMatchesPerBatchProducts() {
        // 12 heads of small products take the parallel-over-batch path.
        let a = Tensor.randn([2, 6, 7, 8], generator: generator)
        let b = Tensor.randn([2, 6, 9, 8], generator: generator)
        let c = Tensor.matmul(a, b, transposeB: true)
        XCTAssertEqual(c.shape, [2, 6, 7, 9])
        for batch in 0..<12 {
            let a2 = Array(a.scalars[(batch * 56)..<((batch + 1) * 56)])
            let b2 = Array(b.scalars[(batch * 72)..<((batch + 1) * 72)])
            let expected = naiveProduct(a2, b2, m: 7, k: 8, n: 9, ta: false, tb: true)
            assertClose(Array(c.scalars[(batch * 63)..<((batch + 1) * 63)]), expected, rtol: 1e-5, atol: 1e-5, "batch \(batch)")
        }
    }

    func testNoGradScopeRecordsNothing() {
        let w = Tensor.randn([3, 3], generator: generator, requiresGrad: true)
        let x = Tensor.randn([2, 3], generator: generator)
        let y = withoutGrad { Tensor.matmul(x, w).gelu().sum() }
        XCTAssertFalse(y.requiresGrad)
        XCTAssertNil(y.gradFn)
        let z = Tensor.matmul(x, w).sum()
        XCTAssertTrue(z.requiresGrad)
        XCTAssertNotNil(z.gradFn)
        // Nothing upstream requires grad: no graph even with grad mode on.
        let plain = (x * 2).exp().sum()
        XCTAssertFalse(plain.requiresGrad)
        XCTAssertNil(plain.gradFn)
    }

    func testNoGradIsPerThread() {
        let w = Tensor.randn([4], generator: generator, requiresGrad: true)
        final class Flag: @unchecked Sendable { var value = false }
        let otherThreadRecorded = Flag()
        withoutGrad {
            let done = DispatchSemaphore(value: 0)
            Thread {
                otherThreadRecorded.value = (w * 2).requiresGrad
                done.signal()
            }.start()
            done.wait()
            XCTAssertFalse((w * 2).requiresGrad)
        }
        XCTAssertTrue(otherThreadRecorded.value)
    }

    func testGradientsAccumulateAcrossBackwardCalls() {
        let w = Tensor(shape: [3], scalars: [1, 2, 3], requiresGrad: true)
        (w * w).sum().backward()
        XCTAssertEqual(w.grad?.scalars, [2, 4, 6])
        (w * 3).sum().backward()
        XCTAssertEqual(w.grad?.scalars, [5, 7, 9])
        w.zeroGrad()
        XCTAssertNil(w.grad)
    }

    func testSharedSubexpressionGetsBothContributions() {
        let x = Tensor(shape: [2], scalars: [0.5, -1], requiresGrad: true)
        let h = x.tanh()
        let y = (h * h + h * 3).sum()
        y.backward()
        let t = x.scalars.map { Foundation.tanh($0) }
        let expected = zip(t, t).map { th, _ in (2 * th + 3) * (1 - th * th) }
        assertClose(x.grad!.scalars, expected, rtol: 1e-6, atol: 1e-6, "d/dx (tanh² + 3 tanh)")
    }

    func testReshapeSharesStorageAndPermuteCopies() {
        let x = Tensor.arange(6).reshaped([2, 3])
        XCTAssertTrue(x.reshaped([3, 2]).storage === x.storage)
        XCTAssertEqual(x.permuted([1, 0]).scalars, [0, 3, 1, 4, 2, 5])
        XCTAssertEqual(x.narrowed(axis: 1, start: 1, length: 2).scalars, [1, 2, 4, 5])
        XCTAssertEqual(Tensor.concatenate([x, x.scaled(by: 10)], axis: 0).shape, [4, 3])
        XCTAssertEqual(Tensor.concatenate([x, x], axis: 1).scalars, [0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5])
    }

    func testMaskedSoftmaxSemantics() {
        // One batch, one head, 2 queries over 3 keys, key 0 padded, causal bottom-right aligned.
        let scores = Tensor(shape: [1, 1, 2, 3], scalars: [1, 2, 3, 1, 2, 3])
        let p = scores.maskedSoftmax(scale: 1, causal: true, keyPadding: [true, false, false]).scalars
        // Query 0 sees keys ≤ 1, minus the padded key 0: only key 1.
        XCTAssertEqual(Array(p[0..<3]), [0, 1, 0])
        let e2 = Foundation.exp(Float(2)), e3 = Foundation.exp(Float(3))
        assertClose(Array(p[3..<6]), [0, e2 / (e2 + e3), e3 / (e2 + e3)], rtol: 1e-6, atol: 1e-7, "query 1")
        // A row that sees nothing is zeros, not NaN.
        let none = scores.maskedSoftmax(scale: 1, causal: false, keyPadding: [true, true, true]).scalars
        XCTAssertEqual(none, [0, 0, 0, 0, 0, 0])
    }

    func testCrossEntropyAllIgnoredIsNaNLikePyTorch() {
        let logits = Tensor.randn([2, 4], generator: generator)
        XCTAssertTrue(logits.crossEntropy(targets: [-100, -100]).item().isNaN)
    }
}

extension EngineTests {
    func testGatherRowsGivesThePaddingRowNoGradient() {
        let table = Tensor.randn([4, 3], generator: generator, requiresGrad: true)
        table.gatherRows([1, 2, 1, 0], paddingIndex: 1).sum().backward()
        XCTAssertEqual(table.grad?.scalars, [1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0])
    }
}

extension EngineTests {
    /// Patch k of image b holds pixels (c, gy·p + y, gx·p + x) at index (c·p + y)·p + x.
    func testPatchifyLayout() {
        let image = Tensor.arange(2 * 2 * 4 * 6).reshaped([2, 2, 4, 6])
        let patches = image.patchified(patchSize: 2)
        XCTAssertEqual(patches.shape, [2, 6, 8])
        let v = patches.scalars
        for b in 0..<2 { for gy in 0..<2 { for gx in 0..<3 { for c in 0..<2 { for y in 0..<2 { for x in 0..<2 {
            let expected = Float(((b * 2 + c) * 4 + gy * 2 + y) * 6 + gx * 2 + x)
            XCTAssertEqual(v[(b * 6 + gy * 3 + gx) * 8 + (c * 2 + y) * 2 + x], expected)
        } } } } } }
    }
}

extension EngineTests {
    func testCrossEntropyOfNoRows() {
        let empty = Tensor.zeros([0, 5])
        XCTAssertTrue(empty.crossEntropy(targets: []).item().isNaN)
        XCTAssertEqual(empty.crossEntropy(targets: [], reduction: .sum).item(), 0)
    }
}

/// Products with a few rows against a weight stored n×k (several sequences decoding together)
/// take the skinny path instead of sgemm; they must agree with exact arithmetic and not depend on
/// the thread count.
final class LargeBufferTests: XCTestCase {
    /// Freed large buffers are reused by the next request of their size, and beyond the cache
    /// limit the oldest are given back (not the newest: sizes that recur stay).
    func testLargeBuffersAreReusedAndTheOldestGivenBack() {
        let saved = LargeBuffers.cacheLimit
        defer { LargeBuffers.cacheLimit = saved }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        // Sizes no other test allocates (1 MiB plus an odd number of pages).
        let sizes = [(1 << 20) + 7 * page, (1 << 20) + 11 * page, (1 << 20) + 13 * page, (1 << 20) + 17 * page]
        let buffers = sizes.map { LargeBuffers.allocate($0) }
        LargeBuffers.cacheLimit = sizes[1] + sizes[2] + sizes[3]
        for (buffer, size) in zip(buffers, sizes) { LargeBuffers.release(buffer, size) }
        XCTAssertEqual(LargeBuffers.cachedBytes, sizes[1] + sizes[2] + sizes[3], "the oldest (first) buffer and older ones given back")
        XCTAssertEqual(LargeBuffers.allocate(sizes[2]), buffers[2], "a freed buffer is reused for its size")
        XCTAssertEqual(LargeBuffers.cachedBytes, sizes[1] + sizes[3])
        let fresh = LargeBuffers.allocate(sizes[0])
        XCTAssertEqual(LargeBuffers.cachedBytes, sizes[1] + sizes[3], "the evicted size is mapped anew")
        LargeBuffers.release(fresh, sizes[0])
        LargeBuffers.release(buffers[2], sizes[2])
        LargeBuffers.cacheLimit = 0
        LargeBuffers.release(LargeBuffers.allocate(sizes[0]), sizes[0])
        XCTAssertEqual(LargeBuffers.cachedBytes, 0, "a zero limit keeps nothing")
    }
}

final class SkinnyProductTests: XCTestCase {
    func testFewRowsTimesTransposedWeightMatchesFloat64() {
        let generator = RandomGenerator(seed: 5)
        for m in [2, 3, 4] {
            let k = 333, n = 300   // k leaves a tail after the 32-wide loop; n·k is above the threshold
            let a = Tensor.randn([m, k], generator: generator)
            let w = Tensor.randn([n, k], generator: generator)
            let c = Tensor.matmul(a, w, transposeB: true)
            XCTAssertEqual(c.shape, [m, n])
            let av = a.scalars, wv = w.scalars, cv = c.scalars
            var worst = 0.0
            for i in 0..<m {
                for j in 0..<n {
                    var exact = 0.0
                    for p in 0..<k { exact += Double(av[i * k + p]) * Double(wv[j * k + p]) }
                    worst = max(worst, abs(Double(cv[i * n + j]) - exact) / max(1, abs(exact)))
                }
            }
            XCTAssertLessThan(worst, 1e-5, "m \(m)")
        }
    }

    func testSkinnyProductDoesNotDependOnThreads() {
        let generator = RandomGenerator(seed: 6)
        let a = Tensor.randn([4, 512], generator: generator), w = Tensor.randn([1024, 512], generator: generator)
        let saved = Parallel.threadCount
        defer { Parallel.threadCount = saved }
        Parallel.threadCount = 1
        let one = Tensor.matmul(a, w, transposeB: true).scalars
        Parallel.threadCount = 4
        XCTAssertEqual(Tensor.matmul(a, w, transposeB: true).scalars, one)
    }
}
