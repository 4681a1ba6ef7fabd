import CKosmosKernels
import Foundation

extension Tensor {
    /// Matrix product op(a) · op(b) over the last two axes, with NumPy broadcasting of the leading
    /// (batch) axes. `transposeA`/`transposeB` read an operand as transposed without copying it:
    /// the flag goes straight to sgemm (a Linear layer computes x · Wᵀ this way).
    public static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
        let out = matmulKernel(a, b, transposeA, transposeB)
        if needsGrad(a, b) {
            // A product with a bfloat16 operand (mixed-precision training casts the float32 master
            // weight, docs/precision.md) computes its gradients as bfloat16 products too, like
            // PyTorch's autocast: the incoming gradient rounded once, accumulation float32, the
            // gradients float32.
            let reduced = a.dtype == .bfloat16 || b.dtype == .bfloat16
            out.recorded("matmul", [a, b]) { gradient in
                let g = reduced ? gradient.storageConverted(to: .bfloat16) : gradient
                // C = op(A)·op(B). The four flag combinations give each gradient as one more product,
                // again without materialising a transpose.
                var da: Tensor? = nil, db: Tensor? = nil
                if a.requiresGrad {
                    switch (transposeA, transposeB) {
                    case (false, false): da = matmulKernel(g, b, false, true)
                    case (false, true): da = matmulKernel(g, b, false, false)
                    case (true, false): da = matmulKernel(b, g, false, true)
                    case (true, true): da = matmulKernel(b, g, true, true)
                    }
                    da = da!.sumToShape(a.shape)
                }
                if b.requiresGrad {
                    if b.rank == 2 && a.rank > 2 && !transposeA {
                        // b was shared by every batch entry: fold the batch into rows and let one
                        // product do the summation.
                        let k = a.shape[a.rank - 1]
                        let a2 = a.reshaped([-1, k]), g2 = g.reshaped([-1, g.shape[g.rank - 1]])
                        db = transposeB ? matmulKernel(g2, a2, true, false) : matmulKernel(a2, g2, true, false)
                    } else {
                        switch (transposeA, transposeB) {
                        case (false, false): db = matmulKernel(a, g, true, false)
                        case (false, true): db = matmulKernel(g, a, true, false)
                        case (true, false): db = matmulKernel(a, g, false, false)
                        case (true, true): db = matmulKernel(g, a, true, true)
                        }
                        db = db!.sumToShape(b.shape)
                    }
                }
                return [da, db]
            }
        }
        return out
    }

    /// self · other.
    public func matmul(_ other: Tensor) -> Tensor {
        Tensor.matmul(self, other)
    }
}

extension Tensor {
    /// x·Wᵀ + bias (W [out, in], bias [out] or nil), as torch.nn.functional.linear. Without
    /// autograd, a product that oneDNN computes takes the bias in the same pass (no second pass
    /// over the output); with autograd, or on the other backends, it is the product and an add.
    public static func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        if let bias, !needsGrad([x, weight, bias]), let fused = fusedLinear(x, weight, bias) { return fused }
        let y = matmul(x, weight, transposeB: true)
        if let bias { return y + bias }
        return y
    }
}

/// The product and its bias in one oneDNN call where `matmul` would give the product to oneDNN
/// anyway (the same shapes, dtypes and thresholds); nil otherwise.
func fusedLinear(_ x: Tensor, _ w: Tensor, _ bias: Tensor) -> Tensor? {
    guard x.dtype == .float32, x.rank >= 2, w.rank == 2, bias.dtype == .float32, bias.rank == 1, bias.count == w.shape[0],
          x.shape[x.rank - 1] == w.shape[1], Kernels.oneDNNAvailable else { return nil }
    let k = w.shape[1], n = w.shape[0], rows = x.count / Swift.max(k, 1)
    guard rows > 0, k > 0, n > 0 else { return nil }
    let out = Tensor.uninitialized(Array(x.shape.dropLast()) + [n])
    let done: Bool
    switch w.dtype {
    case .float32:
        guard Kernels.float32ProductGoesToOneDNN(m: rows, n: n, k: k) else { return nil }
        done = OneDNN.run(.init(m: rows, n: n, k: k, aType: KK_F32, bType: KK_F32, transA: false, transB: true,
                                lda: k, ldb: k, ldc: n, bias: true),
                          a: x.pointer, b: w.pointer, c: out.pointer, bias: bias.pointer)
    case .bfloat16:
        guard rows > halfPrecisionRowsKernelLimit else { return nil }
        let x16 = x.storageConverted(to: .bfloat16)
        done = OneDNN.run(.init(m: rows, n: n, k: k, aType: KK_BF16, bType: KK_BF16, transA: false, transB: true,
                                lda: k, ldb: k, ldc: n, bias: true),
                          a: x16.storage.raw, b: w.storage.raw, c: out.pointer, bias: bias.pointer)
        withExtendedLifetime(x16) {}
    case .float16:
        return nil
    }
    return withExtendedLifetime((x, w, bias)) { done ? out : nil }
}

/// The product without autograd.
func matmulKernel(_ a: Tensor, _ b: Tensor, _ transposeA: Bool, _ transposeB: Bool) -> Tensor {
    precondition(a.rank >= 2 && b.rank >= 2, "matmul needs rank ≥ 2 operands, got \(a.shape) and \(b.shape)")
    if a.dtype != .float32 || b.dtype != .float32 {
        return halfPrecisionMatmul(a, b, transposeA, transposeB)
    }
    let aRows = a.shape[a.rank - 2], aCols = a.shape[a.rank - 1]
    let bRows = b.shape[b.rank - 2], bCols = b.shape[b.rank - 1]
    let m = transposeA ? aCols : aRows
    let k = transposeA ? aRows : aCols
    let kB = transposeB ? bCols : bRows
    let n = transposeB ? bRows : bCols
    precondition(k == kB, "matmul: inner dimensions differ: \(a.shape)\(transposeA ? "ᵀ" : "") · \(b.shape)\(transposeB ? "ᵀ" : "")")
    let aBatch = Array(a.shape.dropLast(2)), bBatch = Array(b.shape.dropLast(2))
    guard let batch = broadcastShapes(aBatch, bBatch) else {
        preconditionFailure("matmul: batch shapes \(aBatch) and \(bBatch) do not broadcast")
    }
    let out = Tensor.uninitialized(batch + [m, n])
    if out.count == 0 { return out }
    if k == 0 { out.fill(0); return out }
    let lda = aCols, ldb = bCols

    if bBatch.isEmpty && !transposeA {
        // Every batch entry multiplies the same matrix: one tall product.
        let rows = shapeCount(aBatch) * m
        float32Product(transA: false, transB: transposeB, m: rows, n: n, k: k,
                       a: a.pointer, lda: lda, b: b.pointer, ldb: ldb, c: out.pointer, ldc: n)
        return out
    }
    let batchCount = shapeCount(batch)
    let aMatrix = aRows * aCols, bMatrix = bRows * bCols
    // Offsets of each operand's matrix for every output batch index (0 stride where broadcast).
    func offsets(_ own: [Int], _ matrixSize: Int) -> [Int] {
        let rank = batch.count
        let ownStrides = contiguousStrides(own)
        var strides = [Int](repeating: 0, count: rank)
        for i in 0..<own.count where own[i] != 1 { strides[i + rank - own.count] = ownStrides[i] * matrixSize }
        var result = [Int](repeating: 0, count: batchCount)
        for index in 0..<batchCount {
            var rem = index, offset = 0
            for d in stride(from: rank - 1, through: 0, by: -1) {
                offset += (rem % batch[d]) * strides[d]
                rem /= batch[d]
            }
            result[index] = offset
        }
        return result
    }
    let aOffsets = offsets(aBatch, aMatrix), bOffsets = offsets(bBatch, bMatrix)
    let pa = a.pointer, pb = b.pointer, pc = out.pointer
    let flopsPerMatrix = 2 * m * n * k
    if batchCount > 1 && flopsPerMatrix < 4_000_000 && Parallel.threadCount > 1 {
        // Many small products (attention heads): OpenBLAS would run each on one thread anyway, so
        // spread the batch over cores instead. Each product is computed by one sgemm call either
        // way, so the result is the same.
        Parallel.forRanges(batchCount, minimumPerChunk: Swift.max(1, 2_000_000 / Swift.max(flopsPerMatrix, 1))) { range in
            for index in range {
                BLAS.sgemm(transA: transposeA, transB: transposeB, m: m, n: n, k: k, alpha: 1,
                           a: pa + aOffsets[index], lda: lda, b: pb + bOffsets[index], ldb: ldb,
                           beta: 0, c: pc + index * m * n, ldc: n)
            }
        }
    } else {
        for index in 0..<batchCount {
            float32Product(transA: transposeA, transB: transposeB, m: m, n: n, k: k,
                           a: pa + aOffsets[index], lda: lda, b: pb + bOffsets[index], ldb: ldb,
                           c: pc + index * m * n, ldc: n)
        }
    }
    return out
}

/// C = op(A)·op(B) in float32 (C overwritten): oneDNN for products of more than a few rows when
/// it is the float32 backend, BLAS otherwise (and for the few-row shapes BLAS.sgemm specialises).
func float32Product(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                    b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int) {
    if Kernels.float32ProductGoesToOneDNN(m: m, n: n, k: k),
       OneDNN.run(.init(m: m, n: n, k: k, aType: KK_F32, bType: KK_F32, transA: transA, transB: transB, lda: lda, ldb: ldb, ldc: ldc),
                  a: a, b: b, c: c) {
        return
    }
    BLAS.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 1, a: a, lda: lda, b: b, ldb: ldb, beta: 0, c: c, ldc: ldc)
}

/// A product with a bfloat16 or float16 operand, the output float32:
/// - float32 rows times a weight read as transposed (x·Wᵀ, every Linear) with few rows, or a
///   float16 weight with any number: `kk_rows_times_weight_*`, which widens each weight element
///   exactly and accumulates in float32, reading the weight once (decoding is bound by that read);
/// - bfloat16 with float32 or bfloat16 (more rows, any transposition, the gradients of mixed-
///   precision training): oneDNN, float32 operands rounded to bfloat16, accumulation float32;
/// - anything else (float16 with a transposition the rows kernel does not read, bfloat16 without
///   oneDNN): both operands widened to float32 and the float32 product.
func halfPrecisionMatmul(_ a: Tensor, _ b: Tensor, _ transposeA: Bool, _ transposeB: Bool) -> Tensor {
    let k = transposeA ? a.shape[a.rank - 2] : a.shape[a.rank - 1]
    if a.dtype == .float32 && b.dtype != .float32 && b.rank == 2 && transposeB && !transposeA && b.shape[1] == k {
        let n = b.shape[0], rows = a.count / Swift.max(k, 1)
        if rows <= halfPrecisionRowsKernelLimit || b.dtype == .float16 {
            let out = Tensor.uninitialized(Array(a.shape.dropLast()) + [n])
            if out.count == 0 { return out }
            if k == 0 { out.fill(0); return out }
            let pa = a.pointer, pc = out.pointer, w = b.storage.halfPointer
            let bf16 = b.dtype == .bfloat16
            Parallel.forRanges(n, minimumPerChunk: Swift.max(16, 65_536 / Swift.max(k * rows, 1)),
                               claimedChunksPerThread: Parallel.weightReadingChunksPerThread) { columns in
                if bf16 {
                    kk_rows_times_weight_bf16(Int32(rows), columns.lowerBound, columns.upperBound, k, pa, k, w, k, pc, n)
                } else {
                    kk_rows_times_weight_f16(Int32(rows), columns.lowerBound, columns.upperBound, k, pa, k, w, k, pc, n)
                }
            }
            return withExtendedLifetime((a, b)) { out }
        }
    }
    if a.dtype != .float16 && b.dtype != .float16 && b.rank == 2 && (a.rank == 2 || !transposeA), Kernels.oneDNNAvailable,
       let out = bfloat16Product(a, b, transposeA, transposeB) {
        return out
    }
    return matmulKernel(a.storageConverted(to: .float32), b.storageConverted(to: .float32), transposeA, transposeB)
}

/// op(a)·op(b) for a 2-D `b` (a's leading axes folded into rows when it is not transposed) through
/// oneDNN's bfloat16 product, float32 operands rounded to bfloat16; nil when oneDNN cannot make it.
func bfloat16Product(_ a: Tensor, _ b: Tensor, _ transposeA: Bool, _ transposeB: Bool) -> Tensor? {
    let aCols = a.shape[a.rank - 1], aRows = a.count / Swift.max(aCols, 1)
    let bRows = b.shape[0], bCols = b.shape[1]
    let m = transposeA ? aCols : aRows, k = transposeA ? aRows : aCols
    let n = transposeB ? bRows : bCols
    precondition(k == (transposeB ? bCols : bRows),
                 "matmul: inner dimensions differ: \(a.shape)\(transposeA ? "ᵀ" : "") · \(b.shape)\(transposeB ? "ᵀ" : "")")
    let out = Tensor.uninitialized(transposeA ? [m, n] : Array(a.shape.dropLast()) + [n])
    if out.count == 0 { return out }
    if k == 0 { out.fill(0); return out }
    let a16 = a.storageConverted(to: .bfloat16), b16 = b.storageConverted(to: .bfloat16)
    let done = OneDNN.run(.init(m: m, n: n, k: k, aType: KK_BF16, bType: KK_BF16, transA: transposeA, transB: transposeB,
                                lda: aCols, ldb: bCols, ldc: n),
                          a: a16.storage.raw, b: b16.storage.raw, c: out.pointer)
    return withExtendedLifetime((a16, b16)) { done ? out : nil }
}

/// Up to this many rows a bfloat16 product goes through the rows kernel, oneDNN from there (the
/// decoder's fc1 with 4 rows: 2.73 ms through the kernel; with 16 rows 2.45 ms through oneDNN,
/// docs/benchmarks.md).
let halfPrecisionRowsKernelLimit = 4
