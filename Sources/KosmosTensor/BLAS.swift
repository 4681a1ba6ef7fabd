#if canImport(Accelerate)
import Accelerate
#else
import CBLAS
#endif

/// The one door to the platform's BLAS: OpenBLAS on Linux, Accelerate on macOS.
public enum BLAS {
    /// Threads OpenBLAS uses for one product. OpenBLAS reads `OPENBLAS_NUM_THREADS` at start-up;
    /// setting this overrides it for the process. Accelerate manages its own threads (always 1 here).
    public static var threadCount: Int {
        get {
            #if canImport(Accelerate)
            return 1
            #else
            return Int(openblas_get_num_threads())
            #endif
        }
        set {
            #if !canImport(Accelerate)
            openblas_set_num_threads(Int32(Swift.max(1, newValue)))
            #endif
        }
    }

    /// C = alpha · op(A) · op(B) + beta · C, row-major, op = transpose when the flag is set.
    /// A is m×k (k×m when transposed) with leading dimension lda, and so on, as in cblas_sgemm.
    @inline(__always)
    static func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                      alpha: Float, a: UnsafePointer<Float>, lda: Int,
                      b: UnsafePointer<Float>, ldb: Int,
                      beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        if m == 1 {
            // One row (a decoding step): a matrix-vector product. OpenBLAS's sgemm handles this
            // shape far below memory bandwidth; sgemv streams op(B) once.
            // c[1×n] = a[1×k] · op(B)  ⇔  cᵀ = op(B)ᵀ · aᵀ, with a's elements lda apart when transposed.
            let incA = transA ? lda : 1
            // Our outputs start uninitialised; some BLAS builds compute beta·y even for beta = 0,
            // which turns stale NaNs into NaNs. Start from zeros.
            if beta == 0 { c.update(repeating: 0, count: n) }
            if transB {
                // B is n×k: cᵀ = B · aᵀ.
                cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(k), alpha, b, Int32(ldb),
                            a, Int32(incA), beta, c, 1)
            } else {
                // B is k×n: cᵀ = Bᵀ · aᵀ.
                cblas_sgemv(CblasRowMajor, CblasTrans, Int32(k), Int32(n), alpha, b, Int32(ldb),
                            a, Int32(incA), beta, c, 1)
            }
            return
        }
        if m <= skinnyRows && transB && !transA && n * k >= skinnyMinimumWork {
            skinnyProduct(m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            return
        }
        cblas_sgemm(CblasRowMajor,
                    transA ? CblasTrans : CblasNoTrans,
                    transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Up to this many rows (a few sequences decoding together) a product with a weight stored
    /// n×k goes through `skinnyProduct` instead of sgemm, which packs the weight's panels on every
    /// call: at 4 rows that made a decoding step 3× slower than at 1 row. From about 8 rows sgemm
    /// is as fast again (measured on the 12 × 768 decoder: 4 rows 68 ms a step here against 95 with
    /// sgemm; 8 rows 127 against 125).
    static let skinnyRows = 4
    /// Below this many weight elements the threads cost more than they save; sgemm is fine there.
    static let skinnyMinimumWork = 1 << 16

    /// C[m×n] = alpha · A[m×k] · B[n×k]ᵀ + beta · C for small m: each weight row is read from memory
    /// once and dotted with every row of A (which stays in cache). Output columns are split over
    /// threads; every element is one dot product in a fixed order, so results do not depend on the
    /// thread count. (Blocks of the weight through sgemv, one call per row of A, were slower: 79 ms
    /// a step at 2 rows against 44 here.)
    static func skinnyProduct(m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
                              b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        Parallel.forRanges(n, minimumPerChunk: 64) { columns in
            for j in columns {
                let row = b + j * ldb
                for i in 0..<m {
                    let value = alpha * rowDot(a + i * lda, row, k)
                    let out = c + i * ldc + j
                    out.pointee = beta == 0 ? value : value + beta * out.pointee
                }
            }
        }
    }
}
