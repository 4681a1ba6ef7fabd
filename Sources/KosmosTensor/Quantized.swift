import CKosmosKernels
import Foundation

/// A quantized weight format (docs/model-format.md gives both byte for byte).
/// - `q8`: int8 levels, one float16 scale per group of columns: w = q·d.
/// - `q4`: 4-bit levels 0–15 packed two to a byte, a float16 scale and minimum per group:
///   w = n·d + m.
public enum QuantizationFormat: String, CaseIterable, Sendable, CustomStringConvertible {
    case q8, q4

    public var description: String { rawValue }
    public var bits: Int { self == .q8 ? 8 : 4 }
    /// Columns per scale unless a model says otherwise (docs/precision.md has the measurement).
    public var defaultGroupSize: Int { 32 }
    /// The safetensors dtype of the levels: I8 for q8, U8 (two levels a byte) for q4.
    public var payloadDType: SafeTensorsDType { self == .q8 ? .i8 : .u8 }
    /// Whether the format stores a minimum per group.
    public var hasMinimums: Bool { self == .q4 }

    /// Shape of the levels tensor of a [rows, columns] weight as stored.
    public func payloadShape(rows: Int, columns: Int) -> [Int] { [rows, self == .q8 ? columns : columns / 2] }
}

/// Why a weight cannot be quantized or a stored quantized weight cannot be read; names the tensor.
public struct QuantizationError: Error, CustomStringConvertible, Equatable {
    public let tensor: String
    public let reason: String

    public init(tensor: String, reason: String) {
        self.tensor = tensor
        self.reason = reason
    }

    public var description: String { "quantized tensor \(tensor): \(reason)" }
}

/// A [rows, columns] weight in a quantized format: the levels, the scales (and minimums) as
/// stored, in memory this object owns or in a mapped checkpoint it keeps alive. Read-only: it
/// computes x·Wᵀ without ever holding the float weights.
public final class QuantizedMatrix {
    public let format: QuantizationFormat
    public let rows: Int
    public let columns: Int
    public let groupSize: Int
    let levels: UnsafeRawPointer
    let scales: UnsafePointer<UInt16>
    let minimums: UnsafePointer<UInt16>?
    /// Mappings (or anything else) the pointers live in.
    private let owners: [AnyObject]
    /// Memory allocated here, freed with this object.
    private var allocated: [(memory: UnsafeMutableRawPointer, bytes: Int)] = []

    /// Bytes of the levels, of the scales (and of the minimums, the same count).
    public var levelByteCount: Int { rows * columns * format.bits / 8 }
    public var scaleCount: Int { rows * (columns / groupSize) }
    /// Everything this weight reads per use: levels, scales and minimums.
    public var byteCount: Int { levelByteCount + scaleCount * 2 * (format.hasMinimums ? 2 : 1) }

    /// The shape checks every constructor makes: a group a positive multiple of 32 that divides
    /// the row (the packing works in 32-column blocks).
    public static func checkLayout(rows: Int, columns: Int, groupSize: Int, tensor: String) throws {
        guard groupSize >= 32, groupSize % 32 == 0 else {
            throw QuantizationError(tensor: tensor, reason: "group size \(groupSize) is not a positive multiple of 32")
        }
        guard rows > 0, columns > 0, columns % groupSize == 0 else {
            throw QuantizationError(tensor: tensor, reason: "shape [\(rows), \(columns)]: group size \(groupSize) does not divide the row of \(columns)")
        }
    }

    /// Quantizes `weight` ([rows, columns], any dtype) as the format defines (kk_q8_quantize,
    /// kk_q4_quantize); `tensor` names it in errors.
    public init(quantizing weight: Tensor, format: QuantizationFormat, groupSize: Int, tensor: String = "weight") throws {
        guard weight.rank == 2 else {
            throw QuantizationError(tensor: tensor, reason: "only matrices are quantized, got shape \(weight.shape)")
        }
        let rows = weight.shape[0], columns = weight.shape[1]
        try Self.checkLayout(rows: rows, columns: columns, groupSize: groupSize, tensor: tensor)
        self.format = format
        self.rows = rows
        self.columns = columns
        self.groupSize = groupSize
        owners = []
        let groups = columns / groupSize
        let levelBytes = rows * columns * format.bits / 8
        let levelMemory = LargeBuffers.allocate(levelBytes)
        let scaleMemory = LargeBuffers.allocate(rows * groups * 2)
        let minimumMemory = format.hasMinimums ? LargeBuffers.allocate(rows * groups * 2) : nil
        levels = UnsafeRawPointer(levelMemory)
        scales = UnsafePointer(scaleMemory.bindMemory(to: UInt16.self, capacity: rows * groups))
        minimums = minimumMemory.map { UnsafePointer($0.bindMemory(to: UInt16.self, capacity: rows * groups)) }
        allocated = [(levelMemory, levelBytes), (scaleMemory, rows * groups * 2)] + (minimumMemory.map { [($0, rows * groups * 2)] } ?? [])
        let wide = weight.dtype == .float32 ? weight : weight.storageConverted(to: .float32)
        let source = wide.pointer
        let status = StatusCollector()
        Parallel.forRanges(rows, minimumPerChunk: Swift.max(1, 65_536 / columns)) { range in
            let r0 = range.lowerBound, n = range.count
            let code: Int32
            switch format {
            case .q8:
                code = kk_q8_quantize(n, columns, source + r0 * columns, groupSize,
                                      levelMemory.assumingMemoryBound(to: Int8.self) + r0 * columns,
                                      scaleMemory.assumingMemoryBound(to: UInt16.self) + r0 * groups)
            case .q4:
                code = kk_q4_quantize(n, columns, source + r0 * columns, groupSize,
                                      levelMemory.assumingMemoryBound(to: UInt8.self) + r0 * columns / 2,
                                      scaleMemory.assumingMemoryBound(to: UInt16.self) + r0 * groups,
                                      minimumMemory!.assumingMemoryBound(to: UInt16.self) + r0 * groups)
            }
            status.record(code)
        }
        withExtendedLifetime(wide) {}
        switch status.worst {
        case 0: break
        case KK_Q_NOT_FINITE: throw QuantizationError(tensor: tensor, reason: "has a NaN or infinite weight")
        case KK_Q_SCALE_OVERFLOW: throw QuantizationError(tensor: tensor, reason: "has weights too large for a float16 scale (|w| > 65504·\(format == .q8 ? 127 : 15))")
        default: throw QuantizationError(tensor: tensor, reason: "bad layout (group \(groupSize), shape \(weight.shape))")
        }
    }

    /// A stored weight: `levels`, `scales` and `minimums` as a checkpoint holds them (sizes
    /// checked, errors naming `tensor`), used in place and kept valid by `owners`. Scales that are
    /// not 2-byte aligned are copied.
    public init(format: QuantizationFormat, rows: Int, columns: Int, groupSize: Int,
                levels: UnsafeRawBufferPointer, scales: UnsafeRawBufferPointer, minimums: UnsafeRawBufferPointer?,
                owners: [AnyObject], tensor: String) throws {
        try Self.checkLayout(rows: rows, columns: columns, groupSize: groupSize, tensor: tensor)
        let groups = columns / groupSize
        let levelBytes = rows * columns * format.bits / 8
        guard levels.count == levelBytes, let levelBase = levels.baseAddress else {
            throw QuantizationError(tensor: tensor, reason: "levels hold \(levels.count) bytes, [\(rows), \(columns)] in \(format) needs \(levelBytes)")
        }
        guard scales.count == rows * groups * 2 else {
            throw QuantizationError(tensor: tensor, reason: "scales hold \(scales.count / 2) values, [\(rows), \(columns)] with groups of \(groupSize) needs \(rows * groups)")
        }
        if format.hasMinimums {
            guard let minimums else { throw QuantizationError(tensor: tensor, reason: "\(format) needs minimums, none stored") }
            guard minimums.count == rows * groups * 2 else {
                throw QuantizationError(tensor: tensor, reason: "minimums hold \(minimums.count / 2) values, [\(rows), \(columns)] with groups of \(groupSize) needs \(rows * groups)")
            }
        } else if minimums != nil {
            throw QuantizationError(tensor: tensor, reason: "\(format) has no minimums, but some are stored")
        }
        self.format = format
        self.rows = rows
        self.columns = columns
        self.groupSize = groupSize
        self.owners = owners
        self.levels = levelBase
        var allocated: [(memory: UnsafeMutableRawPointer, bytes: Int)] = []
        func halves(_ bytes: UnsafeRawBufferPointer) -> UnsafePointer<UInt16> {
            if let base = bytes.baseAddress, Int(bitPattern: base) % 2 == 0 {
                return base.assumingMemoryBound(to: UInt16.self)
            }
            let copy = LargeBuffers.allocate(bytes.count)
            copy.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
            allocated.append((copy, bytes.count))
            return UnsafePointer(copy.assumingMemoryBound(to: UInt16.self))
        }
        self.scales = halves(scales)
        self.minimums = minimums.map(halves)
        self.allocated = allocated
    }

    deinit {
        for (memory, bytes) in allocated { LargeBuffers.release(memory, bytes) }
    }

    /// The stored bytes, as a checkpoint holds them (levels, scales, minimums).
    public var levelBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: levels, count: levelByteCount) }
    public var scaleBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: scales, count: scaleCount * 2) }
    public var minimumBytes: UnsafeRawBufferPointer? { minimums.map { UnsafeRawBufferPointer(start: $0, count: scaleCount * 2) } }

    /// Rows j0 ..< j1 dequantized into `destination` (float32 or bfloat16; float16 is not offered).
    func dequantize(rows range: Range<Int>, into destination: UnsafeMutableRawPointer, dtype: DType) {
        let j0 = range.lowerBound, j1 = range.upperBound
        switch (format, dtype) {
        case (.q8, .float32):
            kk_q8_dequantize(j0, j1, columns, levels.assumingMemoryBound(to: Int8.self), scales, groupSize,
                             destination.assumingMemoryBound(to: Float.self))
        case (.q4, .float32):
            kk_q4_dequantize(j0, j1, columns, levels.assumingMemoryBound(to: UInt8.self), scales, minimums, groupSize,
                             destination.assumingMemoryBound(to: Float.self))
        case (.q8, _):
            kk_q8_dequantize_bf16(j0, j1, columns, levels.assumingMemoryBound(to: Int8.self), scales, groupSize,
                                  destination.assumingMemoryBound(to: UInt16.self))
        case (.q4, _):
            kk_q4_dequantize_bf16(j0, j1, columns, levels.assumingMemoryBound(to: UInt8.self), scales, minimums, groupSize,
                                  destination.assumingMemoryBound(to: UInt16.self))
        }
    }

    /// The weight as a [rows, columns] tensor of float32 (each value exactly as defined) or
    /// bfloat16 (those values rounded to nearest even).
    public func dequantized(to dtype: DType = .float32) -> Tensor {
        precondition(dtype != .float16, "quantized weights dequantize to float32 or bfloat16")
        let out = Tensor.uninitialized([rows, columns], dtype: dtype)
        let base = out.storage.raw, rowBytes = columns * dtype.byteCount
        Parallel.forRanges(rows, minimumPerChunk: Swift.max(1, 65_536 / columns)) { range in
            dequantize(rows: range, into: base + range.lowerBound * rowBytes, dtype: dtype)
        }
        return out
    }

    /// x·Wᵀ (+ bias), float32 out: few rows through the quantized kernels (the weight read once,
    /// decoding), more rows as one bfloat16 product of oneDNN's over the weight dequantized to
    /// bfloat16 (float32 through BLAS without oneDNN). No autograd: quantized weights do not train.
    public func linear(_ x: Tensor, bias: Tensor?) -> Tensor {
        precondition(!(GradMode.isEnabled && x.requiresGrad),
                     "a quantized Linear takes no gradient (train from the float weights)")
        precondition(x.shape.last == columns, "quantized linear: input \(x.shape) · weight [\(rows), \(columns)]ᵀ")
        if let bias { precondition(bias.count == rows && bias.dtype == .float32, "quantized linear: bias of \(bias.count) for \(rows) outputs") }
        let input = x.dtype == .float32 ? x : x.storageConverted(to: .float32)
        let m = input.count / columns, n = rows, k = columns
        let out = Tensor.uninitialized(Array(x.shape.dropLast()) + [n])
        if m == 0 { return out }
        let pa = input.pointer, pc = out.pointer
        if m <= quantizedRowsKernelLimit {
            integerProduct(m: m, input: pa, output: pc)
            withExtendedLifetime(input) {}
            return bias.map { out + $0 } ?? out
        }
        if Kernels.oneDNNAvailable {
            // The weight dequantized a slice of rows at a time into one buffer that stays in cache
            // (a whole bfloat16 copy went to memory and back), each slice's columns of the output
            // one oneDNN product.
            let slice = Swift.min(n, Swift.max(64, dequantizedSliceBytes / (2 * k) / 64 * 64))
            let w16 = Tensor.uninitialized([slice, k], dtype: .bfloat16)
            let x16 = input.storageConverted(to: .bfloat16)
            let pw = w16.storage.raw, rowBytes = 2 * k
            var done = true
            var j0 = 0
            while j0 < n && done {
                let j1 = Swift.min(n, j0 + slice)
                Parallel.forRanges(j1 - j0, minimumPerChunk: Swift.max(1, 65_536 / k)) { range in
                    dequantize(rows: j0 + range.lowerBound ..< j0 + range.upperBound, into: pw + range.lowerBound * rowBytes, dtype: .bfloat16)
                }
                done = OneDNN.run(.init(m: m, n: j1 - j0, k: k, aType: KK_BF16, bType: KK_BF16, transA: false, transB: true,
                                        lda: k, ldb: k, ldc: n, bias: bias != nil),
                                  a: x16.storage.raw, b: pw, c: pc + j0, bias: bias.map { UnsafePointer($0.pointer + j0) })
                j0 = j1
            }
            if done { return withExtendedLifetime((input, x16, w16, bias)) { out } }
        }
        let w = dequantized(to: .float32)
        float32Product(transA: false, transB: true, m: m, n: n, k: k, a: pa, lda: k, b: w.pointer, ldb: k, c: pc, ldc: n)
        withExtendedLifetime((input, w)) {}
        return bias.map { out + $0 } ?? out
    }

    /// x·Wᵀ through the integer kernels at any row count (the activations quantized per block as
    /// decoding does; q8 from 4 rows on in 4 × 4 tiles): `linear` takes it up to
    /// `quantizedRowsKernelLimit` rows; public so that benchmarks can set it against the
    /// dequantizing path at every size.
    public func integerLinear(_ x: Tensor) -> Tensor {
        precondition(x.shape.last == columns, "quantized linear: input \(x.shape) · weight [\(rows), \(columns)]ᵀ")
        let input = x.dtype == .float32 ? x : x.storageConverted(to: .float32)
        let out = Tensor.uninitialized(Array(x.shape.dropLast()) + [rows])
        let m = input.count / columns
        if m > 0 { integerProduct(m: m, input: input.pointer, output: out.pointer) }
        return withExtendedLifetime(input) { out }
    }

    private func integerProduct(m: Int, input pa: UnsafePointer<Float>, output pc: UnsafeMutablePointer<Float>) {
        let prepared = prepareActivations(m: m, input: pa)
        defer { kk_q_activations_free(prepared) }
        Parallel.forRanges(rows, minimumPerChunk: rowsPerChunk(m: m),
                           claimedChunksPerThread: Parallel.weightReadingChunksPerThread) { range in
            product(prepared, rows: range, output: pc)
        }
    }

    /// The activations of `m` rows quantized once for this format, shared by the threads.
    private func prepareActivations(m: Int, input pa: UnsafePointer<Float>) -> OpaquePointer {
        guard let prepared = kk_q_activations_make(format == .q4 ? 4 : 8, Int32(m), columns, pa, columns, groupSize) else {
            fatalError("quantized linear: no memory for \(m) rows of activations")
        }
        return prepared
    }

    /// The smallest range of weight rows worth another thread.
    private func rowsPerChunk(m: Int) -> Int { Swift.max(16, 65_536 / Swift.max(columns * m, 1)) }

    /// Weight rows `range` against prepared activations, into output columns `range` (ldc = rows).
    private func product(_ prepared: OpaquePointer, rows range: Range<Int>, output pc: UnsafeMutablePointer<Float>) {
        switch format {
        case .q8:
            kk_q8_rows_times_prepared(range.lowerBound, range.upperBound, prepared, levels.assumingMemoryBound(to: Int8.self),
                                      scales, pc, rows)
        case .q4:
            kk_q4_rows_times_prepared(range.lowerBound, range.upperBound, prepared, levels.assumingMemoryBound(to: UInt8.self),
                                      scales, minimums, pc, rows)
        }
        withExtendedLifetime(self) {}
    }

    /// x·Wᵢᵀ (+ biasᵢ) for several matrices that read the same input (attention's q, k and v): up
    /// to `quantizedRowsKernelLimit` rows, the activations are quantized once and the rows of all
    /// the matrices are one job for the threads (decoding: one quantization and one wait instead
    /// of three). The same numbers as `linear` on each; more rows, or matrices that differ in
    /// format, group size or width, are `linear` on each.
    public static func linears(_ matrices: [QuantizedMatrix], _ x: Tensor, biases: [Tensor?]) -> [Tensor] {
        precondition(matrices.count == biases.count, "one bias (or nil) per matrix")
        let separately = { zip(matrices, biases).map { $0.linear(x, bias: $1) } }
        guard let first = matrices.first, matrices.count > 1,
              matrices.allSatisfy({ $0.format == first.format && $0.groupSize == first.groupSize && $0.columns == first.columns })
        else { return separately() }
        let k = first.columns
        let m = x.count / Swift.max(k, 1)
        guard x.shape.last == k, m > 0, m <= quantizedRowsKernelLimit, !(GradMode.isEnabled && x.requiresGrad) else { return separately() }
        for (matrix, bias) in zip(matrices, biases) {
            if let bias { precondition(bias.count == matrix.rows && bias.dtype == .float32, "quantized linear: bias of \(bias.count) for \(matrix.rows) outputs") }
        }
        let input = x.dtype == .float32 ? x : x.storageConverted(to: .float32)
        let outputs = matrices.map { Tensor.uninitialized(Array(x.shape.dropLast()) + [$0.rows]) }
        let pointers = outputs.map(\.pointer)
        var ends: [Int] = []
        for matrix in matrices { ends.append((ends.last ?? 0) + matrix.rows) }
        let prepared = first.prepareActivations(m: m, input: input.pointer)
        defer { kk_q_activations_free(prepared) }
        Parallel.forRanges(ends.last!, minimumPerChunk: first.rowsPerChunk(m: m),
                           claimedChunksPerThread: Parallel.weightReadingChunksPerThread) { range in
            // A chunk may cross from one matrix's rows into the next's.
            var start = range.lowerBound
            for (i, end) in ends.enumerated() where start < range.upperBound && start < end {
                let base = end - matrices[i].rows, stop = Swift.min(end, range.upperBound)
                matrices[i].product(prepared, rows: (start - base) ..< (stop - base), output: pointers[i])
                start = stop
            }
        }
        return withExtendedLifetime(input) { zip(outputs, biases).map { out, bias in bias.map { out + $0 } ?? out } }
    }
}

/// A quantized product of many rows dequantizes its weight this many bytes (bfloat16) at a time
/// (8 MiB: 1.3B prefill 0.68–0.69 s against 0.71 for a whole copy; 2 MiB slices were slower,
/// 0.79–0.82 s). A variable for the tests, which make it small to cut a weight into several slices.
nonisolated(unsafe) var dequantizedSliceBytes = 8 << 20

/// Up to this many rows a quantized product goes through the rows kernels (the weight read once
/// from its quantized bytes), from there through a dequantized bfloat16 copy and oneDNN
/// (docs/benchmarks.md has the crossover).
public let quantizedRowsKernelLimit = 16

/// The worst status code of parallel chunks.
private final class StatusCollector: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var worst: Int32 = 0

    func record(_ code: Int32) {
        guard code != 0 else { return }
        lock.lock()
        if worst == 0 || code > worst { worst = code }
        lock.unlock()
    }
}
