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
        cblas_sgemm(CblasRowMajor,
                    transA ? CblasTrans : CblasNoTrans,
                    transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}
