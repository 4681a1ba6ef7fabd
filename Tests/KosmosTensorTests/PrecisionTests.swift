import CKosmosKernels
import Foundation
import XCTest
@testable import KosmosTensor

/// bfloat16/float16 storage, the conversions, the few-rows kernels at every ISA level against the
/// scalar twin, and the products through oneDNN against float32 BLAS.
final class PrecisionTests: XCTestCase {
    override func tearDown() {
        Kernels.limitISA(Int(KK_ISA_AVX512_BF16))
        super.tearDown()
    }

    /// Every level this CPU has, lowest first (the scalar one always).
    private var levels: [Int] { Array(0...Int(kk_cpu_isa())) }

    /// Values that exercise rounding: ties both ways, subnormals, the largest finite values, ±inf,
    /// NaN, and random numbers over many magnitudes.
    private func awkwardFloats() -> [Float] {
        var values: [Float] = [0, -0, 1, -1, .infinity, -.infinity, .nan, .greatestFiniteMagnitude, -.greatestFiniteMagnitude,
                               .leastNormalMagnitude, .leastNonzeroMagnitude, -.leastNonzeroMagnitude, 65504, 65520, 65519.99,
                               1e-8, 6e-5, 3.3895314e38]
        // bfloat16 ties: the bits below the kept 16 are exactly 0x8000, with an even and an odd kept part.
        for kept: UInt32 in [0x3F80, 0x3F81, 0x4000, 0x4001, 0xBF80, 0xBF81] {
            values.append(Float(bitPattern: kept << 16 | 0x8000))
            values.append(Float(bitPattern: kept << 16 | 0x7FFF))
            values.append(Float(bitPattern: kept << 16 | 0x8001))
        }
        let generator = RandomGenerator(seed: 7)
        for _ in 0..<1000 {
            let magnitude = Float(generator.nextInt(below: 80)) - 40
            values.append((generator.nextFloat() * 2 - 1) * Float(Foundation.pow(10, Double(magnitude) / 2)))
        }
        return values
    }

    func testBFloat16ConversionIsPyTorchsRoundingAtEveryLevel() {
        let values = awkwardFloats()
        let expected = values.map { HalfPrecision.bf16Bits(from: $0) }
        for level in levels {
            Kernels.limitISA(level)
            var bits = [UInt16](repeating: 0, count: values.count)
            kk_bf16_from_f32(values, &bits, values.count)
            XCTAssertEqual(bits, expected, "level \(level)")
            var back = [Float](repeating: 0, count: values.count)
            kk_f32_from_bf16(bits, &back, values.count)
            for (b, w) in zip(bits, back) where !w.isNaN {
                XCTAssertEqual(w, HalfPrecision.float(fromBF16: b), "level \(level)")
            }
        }
    }

    func testFloat16ConversionIsIEEERoundingAtEveryLevel() {
        let values = awkwardFloats()
        for level in levels {
            Kernels.limitISA(level)
            var bits = [UInt16](repeating: 0, count: values.count)
            kk_f16_from_f32(values, &bits, values.count)
            for (i, v) in values.enumerated() {
                if v.isNaN {
                    XCTAssertTrue(HalfPrecision.float(fromF16: bits[i]).isNaN, "level \(level): NaN stays NaN")
                } else {
                    XCTAssertEqual(bits[i], HalfPrecision.f16Bits(from: v), "level \(level): \(v)")
                }
            }
            var back = [Float](repeating: 0, count: values.count)
            kk_f32_from_f16(bits, &back, values.count)
            for (b, w) in zip(bits, back) where !w.isNaN {
                XCTAssertEqual(w, HalfPrecision.float(fromF16: b), "level \(level)")
            }
        }
    }

    /// c = a · wᵀ with w 16-bit: each level against a float64 sum of the exactly widened weights,
    /// for row counts around the kernel's groups of 4 and lengths with and without a tail.
    func testRowsTimesWeightAtEveryLevelAgainstFloat64() {
        let generator = RandomGenerator(seed: 3)
        for (m, k, n) in [(1, 64, 9), (1, 37, 13), (2, 100, 5), (4, 16, 7), (5, 129, 11), (7, 3, 4)] {
            let a = (0..<m * k).map { _ in generator.nextFloat() * 2 - 1 }
            let wide = (0..<n * k).map { _ in generator.nextFloat() * 2 - 1 }
            for half in [false, true] {
                var w = [UInt16](repeating: 0, count: n * k)
                if half { kk_f16_from_f32(wide, &w, w.count) } else { kk_bf16_from_f32(wide, &w, w.count) }
                let widened = w.map { half ? HalfPrecision.float(fromF16: $0) : HalfPrecision.float(fromBF16: $0) }
                var expected = [Float](repeating: 0, count: m * n)
                for i in 0..<m {
                    for j in 0..<n {
                        var sum = 0.0
                        for p in 0..<k { sum += Double(a[i * k + p]) * Double(widened[j * k + p]) }
                        expected[i * n + j] = Float(sum)
                    }
                }
                for level in levels {
                    Kernels.limitISA(level)
                    var c = [Float](repeating: .nan, count: m * n)
                    // Two column ranges, as two threads would split them.
                    let split = n / 2
                    for (j0, j1) in [(0, split), (split, n)] {
                        if half {
                            kk_rows_times_weight_f16(Int32(m), j0, j1, k, a, k, w, k, &c, n)
                        } else {
                            kk_rows_times_weight_bf16(Int32(m), j0, j1, k, a, k, w, k, &c, n)
                        }
                    }
                    assertClose(c, expected, rtol: 1e-5, atol: 1e-5, "m \(m) k \(k) n \(n) \(half ? "f16" : "bf16") level \(level)")
                }
            }
        }
    }

    /// The fused attention's tile kernels at every level against float64 sums, with odd sizes (the
    /// vector tails) and leading dimensions wider than the rows.
    func testAttentionTileKernelsAtEveryLevelAgainstFloat64() {
        let generator = RandomGenerator(seed: 8)
        let (rows, cols, d, dv) = (5, 37, 19, 23)
        let q = (0..<rows * (d + 3)).map { _ in generator.nextFloat() * 2 - 1 }
        let k = (0..<cols * (d + 1)).map { _ in generator.nextFloat() * 2 - 1 }
        let p = (0..<rows * (cols + 2)).map { _ in generator.nextFloat() }
        let v = (0..<cols * dv).map { _ in generator.nextFloat() * 2 - 1 }
        let start = (0..<rows * dv).map { _ in generator.nextFloat() }
        var scores = [Float](repeating: 0, count: rows * cols), sums = start
        for i in 0..<rows {
            for j in 0..<cols {
                var t = 0.0
                for e in 0..<d { t += Double(q[i * (d + 3) + e]) * Double(k[j * (d + 1) + e]) }
                scores[i * cols + j] = Float(t * 0.5)
            }
            for e in 0..<dv {
                var t = Double(start[i * dv + e])
                for j in 0..<cols { t += Double(p[i * (cols + 2) + j]) * Double(v[j * dv + e]) }
                sums[i * dv + e] = Float(t)
            }
        }
        for level in levels {
            Kernels.limitISA(level)
            var s = [Float](repeating: .nan, count: rows * cols), scratch = [Float](repeating: 0, count: d * cols)
            kk_attention_scores(Int32(rows), Int32(cols), Int32(d), q, d + 3, k, d + 1, 0.5, &s, cols, &scratch)
            assertClose(s, scores, rtol: 1e-5, atol: 1e-6, "scores, level \(level)")
            var acc = start
            kk_attention_accumulate(Int32(rows), Int32(cols), Int32(dv), p, cols + 2, v, dv, &acc, dv)
            assertClose(acc, sums, rtol: 1e-5, atol: 1e-5, "accumulate, level \(level)")
        }
    }

    func testTensorConversionsKeepValuesAndShapes() {
        let generator = RandomGenerator(seed: 1)
        let t = Tensor.randn([3, 5], generator: generator)
        let b = t.converted(to: .bfloat16)
        XCTAssertEqual(b.dtype, .bfloat16)
        XCTAssertEqual(b.shape, [3, 5])
        XCTAssertEqual(b.scalars, t.scalars.map { HalfPrecision.float(fromBF16: HalfPrecision.bf16Bits(from: $0)) })
        XCTAssertEqual(b.clone().scalars, b.scalars)
        XCTAssertEqual(b.clone().dtype, .bfloat16)
        XCTAssertTrue(t.converted(to: .float32) === t, "converting to its own dtype is the same tensor")
        let h = b.converted(to: .float16)
        XCTAssertEqual(h.scalars, b.scalars, "bfloat16 → float16 is exact for values of this range")
        // In place: every holder sees the new storage.
        let tied = t
        t.convert(to: .bfloat16)
        XCTAssertEqual(tied.dtype, .bfloat16)
        XCTAssertEqual(tied.scalars, b.scalars)
        let f = Tensor.zeros([3, 5]).converted(to: .bfloat16)
        f.copy(from: t)
        XCTAssertEqual(f.scalars, b.scalars)
        f.fill(2.5)
        XCTAssertEqual(f.scalars, [Float](repeating: 2.5, count: 15))
        XCTAssertEqual(b.reshaped([15]).scalars, b.scalars, "a reshape shares the 16-bit storage")
    }

    func testGatherRowsWidensSixteenBitTables() {
        let table = Tensor.randn([6, 20], generator: RandomGenerator(seed: 2))
        for dtype in [DType.bfloat16, .float16] {
            let narrow = table.converted(to: dtype)
            let rows = narrow.gatherRows([4, 0, 4])
            XCTAssertEqual(rows.dtype, .float32)
            let expected = narrow.scalars
            XCTAssertEqual(rows.scalars, Array(expected[80..<100]) + Array(expected[0..<20]) + Array(expected[80..<100]))
        }
    }

    /// x · Wᵀ with W bfloat16 or float16, over the few-rows kernel (≤ 4 rows), oneDNN (more rows,
    /// bfloat16 rounding the rows too) and the widening fallback (other orientations): each against
    /// float32 products of the same rounded values.
    func testSixteenBitWeightProductsAgainstFloat32() {
        let generator = RandomGenerator(seed: 4)
        for dtype in [DType.bfloat16, .float16] {
            for rows in [1, 3, 4, 5, 40] {
                let x = Tensor.randn([rows, 72], generator: generator)
                let w = Tensor.randn([33, 72], generator: generator).converted(to: dtype)
                let wide = w.converted(to: .float32)
                let product = withoutGrad { Tensor.matmul(x, w, transposeB: true) }
                let roundsRows = dtype == .bfloat16 && rows > 4 && Kernels.oneDNNAvailable
                let xr = roundsRows ? x.converted(to: .bfloat16).converted(to: .float32) : x
                let expected = withoutGrad { Tensor.matmul(xr, wide, transposeB: true) }
                assertClose(product, expected, rtol: 1e-5, atol: 1e-5, "\(dtype) \(rows) rows")
                // W read untransposed (x · W for W [72, 33], as a gradient reads it): bfloat16 through
                // oneDNN with the rows rounded, float16 widened.
                let wt = Tensor.randn([72, 33], generator: generator).converted(to: dtype)
                let xt = dtype == .bfloat16 && Kernels.oneDNNAvailable ? x.converted(to: .bfloat16).converted(to: .float32) : x
                assertClose(withoutGrad { Tensor.matmul(x, wt) }, withoutGrad { Tensor.matmul(xt, wt.converted(to: .float32)) },
                            rtol: 1e-5, atol: 1e-5, "\(dtype) \(rows) rows, weight not transposed")
            }
        }
        // Batched rows (a [2, 3, k] input) are folded into one product.
        let x = Tensor.randn([2, 3, 24], generator: generator)
        let w = Tensor.randn([10, 24], generator: generator).converted(to: .bfloat16)
        let product = withoutGrad { Tensor.matmul(x, w, transposeB: true) }
        XCTAssertEqual(product.shape, [2, 3, 10])
        let xr = Kernels.oneDNNAvailable ? x.converted(to: .bfloat16).converted(to: .float32) : x
        assertClose(product, withoutGrad { Tensor.matmul(xr, w.converted(to: .float32), transposeB: true) }, rtol: 1e-5, atol: 1e-5)
    }

    /// Random tensors generated straight into 16-bit storage (a block at a time) are the float32
    /// ones rounded, and leave the generator where the float32 fill leaves it, across block
    /// boundaries and with an odd count (the last normal pair half used). In-place scaling and
    /// row zeroing of 16-bit tensors equal the float32 route.
    func testSixteenBitGenerationAndInPlaceOpsEqualTheFloat32Route() {
        for dtype in [DType.bfloat16, .float16] {
            let shape = [3, 16_385]
            let (a, b) = (RandomGenerator(seed: 8), RandomGenerator(seed: 8))
            XCTAssertEqual(Tensor.randn(shape, std: 0.5, generator: a, dtype: dtype).scalars,
                           Tensor.randn(shape, std: 0.5, generator: b).converted(to: dtype).scalars, "\(dtype) randn")
            XCTAssertEqual(Tensor.uniform(shape, low: -2, high: 3, generator: a, dtype: dtype).scalars,
                           Tensor.uniform(shape, low: -2, high: 3, generator: b).converted(to: dtype).scalars, "\(dtype) uniform")
            XCTAssertEqual(a.nextFloat(), b.nextFloat(), "\(dtype): the streams stay in step")

            let t = Tensor.randn(shape, generator: a).converted(to: dtype)
            let expected = withoutGrad { t.converted(to: .float32).scaled(by: 1.7) }.converted(to: dtype)
            t.scaleInPlace(by: 1.7)
            XCTAssertEqual(t.scalars, expected.scalars, "\(dtype) scaleInPlace")
            t.zeroRow(1)
            XCTAssertTrue(t.scalars[16_385..<32_770].allSatisfy { $0 == 0 } && t.scalars[0] != 0 && t.scalars[32_770] != 0)
        }
    }

    /// Mixed precision: a float32 weight cast to bfloat16 for the product. The forward and both
    /// gradients are the float32 products of the bfloat16-rounded operands (the incoming gradient
    /// rounded too, as PyTorch's autocast computes them), every transposition; the weight's
    /// gradient reaches the float32 master through the cast and is float32.
    func testMixedPrecisionProductAndGradientsAreProductsOfRoundedOperands() throws {
        guard Kernels.oneDNNAvailable else {
            #if os(Linux) && arch(x86_64)
            XCTFail("oneDNN is not available: scripts/install-deps.sh installs libdnnl-dev")
            #endif
            return
        }
        let generator = RandomGenerator(seed: 6)
        func rounded(_ t: Tensor) -> Tensor { withoutGrad { t.converted(to: .bfloat16).converted(to: .float32) } }
        for (ta, tb) in [(false, true), (false, false), (true, false), (true, true)] {
            let x = Tensor.randn(ta ? [72, 40] : [2, 20, 72], generator: generator)
            x.requiresGrad = true
            let master = Tensor.randn(tb ? [33, 72] : [72, 33], generator: generator)
            master.requiresGrad = true
            let y = Tensor.matmul(x, master.converted(to: .bfloat16), transposeA: ta, transposeB: tb)
            let r = Tensor.randn(y.shape, generator: generator)
            (y * r).sum().backward()
            let label = "transposeA \(ta) transposeB \(tb)"
            let (dx, dw) = (try XCTUnwrap(x.grad), try XCTUnwrap(master.grad))
            XCTAssertEqual(dw.dtype, .float32, label)
            XCTAssertEqual(dw.shape, master.shape, label)
            // The same op on float32 copies of the rounded values.
            let xr = rounded(x), wr = rounded(master), gr = rounded(r)
            xr.requiresGrad = true
            wr.requiresGrad = true
            let yr = Tensor.matmul(xr, wr, transposeA: ta, transposeB: tb)
            assertClose(withoutGrad { y }, withoutGrad { yr }, rtol: 1e-5, atol: 1e-5, label + " forward")
            (yr * gr).sum().backward()
            assertClose(dx, try XCTUnwrap(xr.grad), rtol: 1e-5, atol: 1e-5, label + " input gradient")
            assertClose(dw, try XCTUnwrap(wr.grad), rtol: 1e-5, atol: 1e-5, label + " weight gradient")
        }
    }

    /// `Tensor.linear` without autograd (the bias inside oneDNN's product where oneDNN computes it)
    /// equals the product plus the bias, float32 and bfloat16 weights, every row count's backend;
    /// with autograd it is the recorded product and add, gradients included.
    func testLinearWithTheBiasInTheProductEqualsProductPlusBias() {
        let generator = RandomGenerator(seed: 9)
        for dtype in [DType.float32, .bfloat16] {
            for shape in [[1, 96], [5, 96], [3, 40, 96], [300, 96]] {
                let x = Tensor.randn(shape, generator: generator)
                let w = Tensor.randn([130, 96], generator: generator).converted(to: dtype)
                let b = Tensor.randn([130], generator: generator)
                let fused = withoutGrad { Tensor.linear(x, weight: w, bias: b) }
                let plain = withoutGrad { Tensor.matmul(x, w, transposeB: true) + b }
                XCTAssertEqual(fused.shape, plain.shape)
                assertClose(fused, plain, rtol: 1e-6, atol: 1e-6, "\(dtype) \(shape)")
                XCTAssertEqual(withoutGrad { Tensor.linear(x, weight: w, bias: nil) }.scalars,
                               withoutGrad { Tensor.matmul(x, w, transposeB: true) }.scalars)
            }
        }
        let x = Tensor.randn([64, 96], generator: generator), w = Tensor.randn([130, 96], generator: generator)
        let b = Tensor.randn([130], generator: generator)
        b.requiresGrad = true
        let y = Tensor.linear(x, weight: w, bias: b)
        y.sum().backward()
        XCTAssertEqual(try XCTUnwrap(b.grad).scalars, [Float](repeating: 64, count: 130))
    }

    /// oneDNN's float32 products equal OpenBLAS's to rounding, in every orientation.
    func testOneDNNFloat32ProductsEqualBLAS() throws {
        guard Kernels.oneDNNAvailable else {
            #if os(Linux) && arch(x86_64)
            XCTFail("oneDNN is not available: scripts/install-deps.sh installs libdnnl-dev")
            #endif
            return
        }
        let saved = Kernels.float32Backend
        defer { Kernels.float32Backend = saved }
        let generator = RandomGenerator(seed: 5)
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let a = Tensor.randn(ta ? [96, 70] : [70, 96], generator: generator)
            let b = Tensor.randn(tb ? [80, 96] : [96, 80], generator: generator)
            Kernels.float32Backend = .onednn
            let ours = withoutGrad { Tensor.matmul(a, b, transposeA: ta, transposeB: tb) }
            Kernels.float32Backend = .blas
            let blas = withoutGrad { Tensor.matmul(a, b, transposeA: ta, transposeB: tb) }
            assertClose(ours, blas, rtol: 1e-5, atol: 1e-4, "transposeA \(ta) transposeB \(tb)")
        }
        let implementation = try XCTUnwrap(Kernels.oneDNNImplementation(m: 64, n: 64, k: 64, dtype: .bfloat16))
        XCTAssertFalse(implementation.isEmpty)
    }
}
