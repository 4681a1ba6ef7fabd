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
        cblas_sgemm(CblasRowMajor,
                    transA ? CblasTrans : CblasNoTrans,
                    transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}
