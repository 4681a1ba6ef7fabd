import CKosmosKernels
import Foundation
import XCTest
@testable import KosmosTensor

/// The quantized formats against their numpy definition (scripts/reference/quantization_reference.py),
/// every ISA level's kernels against the scalar ones, and the products' two paths.
final class QuantizationTests: XCTestCase {
    override func tearDown() {
        Kernels.limitISA(Int(KK_ISA_AVX512_BF16))
        super.tearDown()
    }

    private var levels: [Int] { Array(0...Int(kk_cpu_isa())) }
    private let reference = try! SafeTensorsFile(url: fixtureURL("quantization_reference.safetensors"))

    private func bytes(_ name: String) throws -> [UInt8] { try reference.withRawBytes(name) { [UInt8]($0) } }
    private func floats(_ name: String) throws -> [Float] { try reference.floats(name) }
    private func tensor(_ name: String) throws -> Tensor { try reference.tensor(name) }

    private func matrix(_ q: QuantizedMatrix) -> (levels: [UInt8], scales: [UInt8], minimums: [UInt8]?) {
        ([UInt8](q.levelBytes), [UInt8](q.scaleBytes), q.minimumBytes.map { [UInt8]($0) })
    }

    func testQuantizationEqualsTheNumpyDefinitionBitForBit() throws {
        for group in [32, 64] {
            let w = try tensor("g\(group).weight")
            for level in levels {
                Kernels.limitISA(level)
                let q8 = try QuantizedMatrix(quantizing: w, format: .q8, groupSize: group)
                XCTAssertEqual(matrix(q8).levels, try bytes("g\(group).q8.levels"), "q8 levels g\(group) level \(level)")
                XCTAssertEqual(matrix(q8).scales, try bytes("g\(group).q8.scales"), "q8 scales g\(group)")
                XCTAssertNil(matrix(q8).minimums)
                XCTAssertEqual(q8.dequantized().scalars, try floats("g\(group).q8.dequantized"), "q8 dequantized g\(group) level \(level)")
                XCTAssertEqual(q8.dequantized(to: .bfloat16).scalars,
                               try floats("g\(group).q8.dequantized").map { HalfPrecision.float(fromBF16: HalfPrecision.bf16Bits(from: $0)) },
                               "q8 bf16 g\(group) level \(level)")

                let q4 = try QuantizedMatrix(quantizing: w, format: .q4, groupSize: group)
                XCTAssertEqual(matrix(q4).levels, try bytes("g\(group).q4.levels"), "q4 levels g\(group) level \(level)")
                XCTAssertEqual(matrix(q4).scales, try bytes("g\(group).q4.scales"), "q4 scales g\(group)")
                XCTAssertEqual(matrix(q4).minimums, try bytes("g\(group).q4.minimums"), "q4 minimums g\(group)")
                XCTAssertEqual(q4.dequantized().scalars, try floats("g\(group).q4.dequantized"), "q4 dequantized g\(group) level \(level)")
                // bfloat16 dequantization is the float32 values rounded once.
                XCTAssertEqual(q4.dequantized(to: .bfloat16).scalars,
                               try floats("g\(group).q4.dequantized").map { HalfPrecision.float(fromBF16: HalfPrecision.bf16Bits(from: $0)) })
            }
        }
    }

    func testAStoredMatrixReadsTheSameAsTheQuantizedOne() throws {
        let w = try tensor("g64.weight")
        let q = try QuantizedMatrix(quantizing: w, format: .q4, groupSize: 64)
        let stored = try QuantizedMatrix(format: .q4, rows: q.rows, columns: q.columns, groupSize: 64,
                                         levels: q.levelBytes, scales: q.scaleBytes, minimums: q.minimumBytes,
                                         owners: [q], tensor: "w")
        XCTAssertEqual(stored.dequantized().scalars, q.dequantized().scalars)
    }

    /// Random weights and activations of a Linear's shape; k a multiple of 64 and not of 128 so
    /// every block and group loop has an odd count.
    private func randomCase(rows: Int, columns: Int, m: Int, seed: UInt64) -> (w: Tensor, x: Tensor) {
        let g = RandomGenerator(seed: seed)
        return (Tensor.randn([rows, columns], std: 0.05, generator: g), Tensor.randn([m, columns], generator: g))
    }

    /// The rows kernels quantize the activations per 32-column block (dx = max|x|/127): against
    /// the exact product of the unquantized activations each output may be off by
    /// Σ|w|·dx/2 (rounding to the nearest level) plus float32 rounding (k·2⁻²³·Σ|x·w|).
    private func assertWithinActivationQuantization(_ actual: [Float], x: Tensor, w: Tensor, _ label: String) {
        let xs = x.scalars, ws = w.scalars
        let k = w.shape[1], n = w.shape[0], m = x.shape[0]
        for i in 0..<m {
            let dx = (0..<(k / 32)).map { b in Double((0..<32).map { abs(xs[i * k + 32 * b + $0]) }.max()!) / 127 }
            for j in 0..<n {
                var exact = 0.0, magnitude = 0.0, rounding = 0.0
                for p in 0..<k {
                    let term = Double(xs[i * k + p]) * Double(ws[j * k + p])
                    exact += term
                    magnitude += abs(term)
                    rounding += abs(Double(ws[j * k + p])) * dx[p / 32] / 2
                }
                let bound = rounding * (1 + 1e-6) + Double(k) * 0x1p-23 * (magnitude + rounding) + 1e-30
                XCTAssertLessThanOrEqual(abs(Double(actual[i * n + j]) - exact), bound, "\(label) [\(i), \(j)]")
            }
        }
    }

    func testRowsKernelsAtEveryLevelEqualTheScalarOneBitForBit() throws {
        for format in QuantizationFormat.allCases {
            // Column counts whose blocks end a pair or a four early (224: 7 blocks), and a group
            // of three blocks (96), whose scales do not spread evenly over 16 lanes.
            for (group, widths) in [(32, [192, 224, 576]), (64, [192, 576]), (96, [192, 576])] {
                for m in [1, 3, 6, 17] {
                    for columns in widths {
                    let (w, random) = randomCase(rows: 37, columns: columns, m: m, seed: UInt64(group + m))
                    // Blocks the activations' quantizer must round alike at every level: all zeros
                    // (dx = 0), exact halves (dx = 1: ties to even), and subnormal values.
                    var values = random.scalars
                    let edge = (m - 1) * columns
                    for u in 0..<32 { values[edge + u] = 0 }
                    for u in 0..<32 { values[edge + 32 + u] = u == 0 ? 127 : Float(u) - 15.5 }
                    for u in 0..<32 { values[edge + 64 + u] = Float(u - 16) * 0x1p-140 }
                    let x = Tensor(shape: random.shape, scalars: values)
                    let q = try QuantizedMatrix(quantizing: w, format: format, groupSize: group)
                    var results: [[Float]] = []
                    for level in levels {
                        Kernels.limitISA(level)
                        var c = [Float](repeating: .nan, count: m * 37)
                        // Two column ranges, as two threads would split them: the first through the
                        // one-step function, the second through activations prepared once (for q8
                        // by q4's preparation, which must serve it too).
                        x.withUnsafeBufferPointer { a in
                            let prepared = kk_q_activations_make(format == .q8 && m == 3 ? 4 : format == .q8 ? 8 : 4,
                                                                 Int32(m), columns, a.baseAddress, columns, group)!
                            defer { kk_q_activations_free(prepared) }
                            switch format {
                            case .q8:
                                kk_q8_rows_times_weight(Int32(m), 0, 20, columns, a.baseAddress, columns,
                                                        q.levels.assumingMemoryBound(to: Int8.self), q.scales, group, &c, 37)
                                kk_q8_rows_times_prepared(20, 37, prepared, q.levels.assumingMemoryBound(to: Int8.self), q.scales, &c, 37)
                            case .q4:
                                kk_q4_rows_times_weight(Int32(m), 0, 20, columns, a.baseAddress, columns,
                                                        q.levels.assumingMemoryBound(to: UInt8.self), q.scales, q.minimums, group, &c, 37)
                                kk_q4_rows_times_prepared(20, 37, prepared, q.levels.assumingMemoryBound(to: UInt8.self), q.scales,
                                                          q.minimums, &c, 37)
                            }
                        }
                        assertWithinActivationQuantization(c, x: x, w: q.dequantized(), "\(format) g\(group) m\(m) level \(level)")
                        results.append(c)
                    }
                    for (level, c) in results.enumerated().dropFirst() {
                        XCTAssertEqual(c.map(\.bitPattern), results[0].map(\.bitPattern), "\(format) g\(group) m\(m) k\(columns) level \(level)")
                    }
                    }
                }
            }
        }
    }

    /// Few rows: the numpy definition's product of the quantized activations and weights.
    func testRowsProductsAgainstTheReferenceProduct() throws {
        for group in [32, 64] {
            for format in QuantizationFormat.allCases {
                let q = try QuantizedMatrix(quantizing: try tensor("g\(group).weight"), format: format, groupSize: group)
                let y = q.linear(try tensor("g\(group).x"), bias: nil)
                let expected = try floats("g\(group).\(format).rows_product")
                assertClose(y.scalars, expected, rtol: 1e-5, atol: 1e-6, "\(format) g\(group)")
            }
        }
    }

    /// More rows than the rows kernels take: the weight dequantized to bfloat16 and the product of
    /// the bfloat16 path, the same numbers as a bfloat16 Linear over that weight.
    func testManyRowsUseTheDequantizedBFloat16Product() throws {
        let m = quantizedRowsKernelLimit + 5
        let (w, x) = randomCase(rows: 48, columns: 128, m: m, seed: 3)
        let bias = Tensor.randn([48], generator: RandomGenerator(seed: 4))
        for format in QuantizationFormat.allCases {
            let q = try QuantizedMatrix(quantizing: w, format: format, groupSize: 32)
            let y = q.linear(x, bias: bias)
            let reference = Tensor.linear(x, weight: q.dequantized(to: .bfloat16), bias: bias)
            XCTAssertEqual(y.shape, [m, 48])
            XCTAssertEqual(y.scalars, reference.scalars, "\(format)")
            // Few rows (the rows kernels): each row's numbers do not depend on the rows beside it
            // (a server's batched decoding step equals each sequence's own).
            let few = x.narrowed(axis: 0, start: 0, length: 3)
            let together = q.linear(few, bias: bias).scalars
            for i in 0..<3 {
                XCTAssertEqual(q.linear(x.narrowed(axis: 0, start: i, length: 1), bias: bias).scalars, Array(together[(48 * i)..<(48 * (i + 1))]))
            }
        }
    }

    /// Many rows with the weight dequantized in slices (here of 64 rows: 64, 64, 64 and 8): each
    /// slice's columns equal the product over the whole dequantized weight, to float32 accumulation
    /// order (oneDNN may block k differently for another n).
    func testManyRowsDequantizedInSlicesEqualTheWholeProduct() throws {
        guard Kernels.oneDNNAvailable else { return XCTFail("the sliced path is oneDNN's; this machine has no oneDNN") }
        let m = quantizedRowsKernelLimit + 9, n = 200, k = 256
        let (w, x) = randomCase(rows: n, columns: k, m: m, seed: 8)
        let bias = Tensor.randn([n], generator: RandomGenerator(seed: 9))
        let saved = dequantizedSliceBytes
        defer { dequantizedSliceBytes = saved }
        for format in QuantizationFormat.allCases {
            let q = try QuantizedMatrix(quantizing: w, format: format, groupSize: 32)
            let reference = Tensor.linear(x, weight: q.dequantized(to: .bfloat16), bias: bias).scalars
            dequantizedSliceBytes = 64 * 2 * k
            let sliced = q.linear(x, bias: bias).scalars
            dequantizedSliceBytes = saved
            XCTAssertEqual(sliced.count, m * n)
            let scale = reference.map(abs).max()!
            for (a, b) in zip(sliced, reference) { XCTAssertEqual(a, b, accuracy: 1e-5 * scale, "\(format)") }
            XCTAssertNotEqual(sliced.map(\.bitPattern), [UInt32](repeating: 0, count: m * n))
        }
    }

    func testSeveralMatricesOnOneInputEqualEachProductBitForBit() throws {
        let g = RandomGenerator(seed: 11)
        // Wide enough that a chunk can be 16 rows (65,536 / k): row counts whose chunks cross
        // from one matrix into the next (120 rows in 7 chunks: 0, 17, 34, 51, ...).
        let k = 4096
        let shapes = [40, 24, 56]
        for format in QuantizationFormat.allCases {
            let matrices = try shapes.map { try QuantizedMatrix(quantizing: Tensor.randn([$0, k], std: 0.05, generator: g), format: format, groupSize: 32) }
            let biases: [Tensor?] = [Tensor.randn([40], generator: g), nil, Tensor.randn([56], generator: g)]
            for m in [1, 3, quantizedRowsKernelLimit + 1] {
                let x = Tensor.randn([m, 1, k], generator: g)
                let together = QuantizedMatrix.linears(matrices, x, biases: biases)
                for (i, matrix) in matrices.enumerated() {
                    let alone = matrix.linear(x, bias: biases[i])
                    XCTAssertEqual(together[i].shape, [m, 1, shapes[i]])
                    XCTAssertEqual(together[i].scalars.map(\.bitPattern), alone.scalars.map(\.bitPattern), "\(format) m\(m) matrix \(i)")
                }
            }
        }
        // Different formats or widths: each on its own, the same answers.
        let x = Tensor.randn([1, k], generator: g)
        let mixed = try [QuantizedMatrix(quantizing: Tensor.randn([32, k], generator: g), format: .q8, groupSize: 32),
                         QuantizedMatrix(quantizing: Tensor.randn([32, k], generator: g), format: .q4, groupSize: 32)]
        let together = QuantizedMatrix.linears(mixed, x, biases: [nil, nil])
        for (i, matrix) in mixed.enumerated() {
            XCTAssertEqual(together[i].scalars.map(\.bitPattern), matrix.linear(x, bias: nil).scalars.map(\.bitPattern))
        }
    }

    func testBadLayoutsAndValuesAreErrorsNamingTheTensor() throws {
        let w = Tensor.randn([4, 96], generator: RandomGenerator(seed: 1))
        XCTAssertThrowsError(try QuantizedMatrix(quantizing: w, format: .q8, groupSize: 64, tensor: "fc1.weight")) { error in
            XCTAssertEqual("\(error)", "quantized tensor fc1.weight: shape [4, 96]: group size 64 does not divide the row of 96")
        }
        XCTAssertThrowsError(try QuantizedMatrix(quantizing: w, format: .q4, groupSize: 48, tensor: "w")) { error in
            XCTAssertEqual("\(error)", "quantized tensor w: group size 48 is not a positive multiple of 32")
        }
        var values = w.scalars
        values[7] = .nan
        XCTAssertThrowsError(try QuantizedMatrix(quantizing: Tensor(shape: [4, 96], scalars: values), format: .q8, groupSize: 32, tensor: "w")) { error in
            XCTAssertEqual("\(error)", "quantized tensor w: has a NaN or infinite weight")
        }
        values[7] = 1e7
        XCTAssertThrowsError(try QuantizedMatrix(quantizing: Tensor(shape: [4, 96], scalars: values), format: .q8, groupSize: 32, tensor: "w")) { error in
            XCTAssertTrue("\(error)".contains("too large for a float16 scale"), "\(error)")
        }
        let q = try QuantizedMatrix(quantizing: w, format: .q4, groupSize: 32)
        XCTAssertThrowsError(try QuantizedMatrix(format: .q4, rows: 4, columns: 96, groupSize: 32,
                                                 levels: UnsafeRawBufferPointer(rebasing: q.levelBytes.dropLast()),
                                                 scales: q.scaleBytes, minimums: q.minimumBytes, owners: [q], tensor: "w")) { error in
            XCTAssertEqual("\(error)", "quantized tensor w: levels hold 191 bytes, [4, 96] in q4 needs 192")
        }
        XCTAssertThrowsError(try QuantizedMatrix(format: .q4, rows: 4, columns: 96, groupSize: 32, levels: q.levelBytes,
                                                 scales: q.scaleBytes, minimums: nil, owners: [q], tensor: "w")) { error in
            XCTAssertEqual("\(error)", "quantized tensor w: q4 needs minimums, none stored")
        }
    }
}
