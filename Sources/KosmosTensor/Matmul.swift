import Foundation

extension Tensor {
    /// Matrix product op(a) · op(b) over the last two axes, with NumPy broadcasting of the leading
    /// (batch) axes. `transposeA`/`transposeB` read an operand as transposed without copying it:
    /// the flag goes straight to sgemm (a Linear layer computes x · Wᵀ this way).
    public static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
        let out = matmulKernel(a, b, transposeA, transposeB)
        if needsGrad(a, b) {
            out.recorded("matmul", [a, b]) { g in
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

/// The product without autograd.
func matmulKernel(_ a: Tensor, _ b: Tensor, _ transposeA: Bool, _ transposeB: Bool) -> Tensor {
    precondition(a.rank >= 2 && b.rank >= 2, "matmul needs rank ≥ 2 operands, got \(a.shape) and \(b.shape)")
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
        BLAS.sgemm(transA: false, transB: transposeB, m: rows, n: n, k: k, alpha: 1,
                   a: a.pointer, lda: lda, b: b.pointer, ldb: ldb, beta: 0, c: out.pointer, ldc: n)
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
            BLAS.sgemm(transA: transposeA, transB: transposeB, m: m, n: n, k: k, alpha: 1,
                       a: pa + aOffsets[index], lda: lda, b: pb + bOffsets[index], ldb: ldb,
                       beta: 0, c: pc + index * m * n, ldc: n)
        }
    }
    return out
}
