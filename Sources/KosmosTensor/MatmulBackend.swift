import CKosmosKernels
import Foundation

/// Which library computes float32 matrix products.
public enum MatmulBackend: String, CaseIterable, Sendable {
    /// oneDNN (x86-64 Linux with libdnnl): AVX-512 kernels where the CPU has them.
    case onednn
    /// OpenBLAS on Linux, Accelerate on macOS.
    case blas
}

/// The seam between tensor ops and the libraries and hand-written kernels that do the arithmetic:
/// what the CPU can do, which backend takes which product, and one thread budget for all of them.
public enum Kernels {
    /// The instruction-set level the hand-written kernels use ("avx512_bf16", "avx512", "avx2", "scalar").
    public static var isa: String { String(cString: kk_isa_name(kk_active_isa())) }
    /// Whether this CPU has native bfloat16 arithmetic (AVX512-BF16); without it bfloat16 models
    /// still run, oneDNN or our kernels widening to float32.
    public static var hasNativeBFloat16: Bool { kk_cpu_isa() >= KK_ISA_AVX512_BF16 }
    public static var oneDNNAvailable: Bool { kk_dnnl_available() != 0 }

    /// Holds the hand-written kernels at or below an ISA level (0 scalar ... 3 avx512_bf16), for
    /// tests that compare each path with the scalar one.
    public static func limitISA(_ level: Int) { kk_set_isa_limit(Int32(level)) }

    /// The sum of `count` floats read at the CPU's streaming speed (benchmarks measure the memory
    /// read bandwidth with it).
    public static func readSum(_ p: UnsafePointer<Float>, _ count: Int) -> Float { kk_read_sum(p, count) }

    /// The backend of float32 products with more than a few rows: `KOSMOS_MATMUL=onednn|blas` if
    /// set, else oneDNN where it is available.
    nonisolated(unsafe) public static var float32Backend: MatmulBackend = {
        if let name = ProcessInfo.processInfo.environment["KOSMOS_MATMUL"], let backend = MatmulBackend(rawValue: name) {
            return backend == .onednn && !oneDNNAvailable ? .blas : backend
        }
        return oneDNNAvailable ? .onednn : .blas
    }()

    /// One thread budget: our pool, OpenBLAS's and oneDNN's OpenMP runtime all use `n` threads, and
    /// only one of them works at a time (products run on the calling thread's turn), so the cores
    /// are never oversubscribed.
    public static func setThreadCount(_ n: Int) {
        let n = Swift.max(1, n)
        budgetSet = true
        Parallel.threadCount = n
        BLAS.threadCount = n
        _ = kk_set_dnnl_threads(Int32(n))
    }

    /// Gives oneDNN our pool's thread count (`KOSMOS_NUM_THREADS`, else the active cores) before its
    /// first product, unless `setThreadCount` has set every backend already. OpenBLAS keeps
    /// `OPENBLAS_NUM_THREADS` until a budget is set.
    static let applyDefaultThreads: Void = {
        if !budgetSet { _ = kk_set_dnnl_threads(Int32(Parallel.threadCount)) }
    }()
    nonisolated(unsafe) private static var budgetSet = false

    /// Products below this many multiply-adds stay on BLAS: a oneDNN call costs a few microseconds.
    static let oneDNNMinimumWork = 1 << 18

    /// Whether a float32 m×k·k×n product goes to oneDNN (more than a few rows, enough work, oneDNN
    /// the float32 backend); the rest go to BLAS.
    static func float32ProductGoesToOneDNN(m: Int, n: Int, k: Int) -> Bool {
        float32Backend == .onednn && m > BLAS.skinnyRows && m * n * k >= oneDNNMinimumWork
    }
}

/// oneDNN matmul primitives, made once per shape and dtype and kept (a model uses a few dozen).
/// One lock: primitives share one stream, and oneDNN's OpenMP threads do the parallel work.
enum OneDNN {
    struct Key: Hashable {
        let m: Int, n: Int, k: Int, aType: Int32, bType: Int32, transA: Bool, transB: Bool, lda: Int, ldb: Int, ldc: Int
        /// A float32 bias of n values added to every row of the product.
        var bias = false
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var primitives: [Key: OpaquePointer?] = [:]
    static let capacity = 1024

    /// C = op(A)·op(B) through oneDNN; false when oneDNN cannot make this product (the caller
    /// takes another path).
    static func run(_ key: Key, a: UnsafeRawPointer, b: UnsafeRawPointer, c: UnsafeMutablePointer<Float>,
                    bias: UnsafePointer<Float>? = nil) -> Bool {
        precondition(key.bias == (bias != nil), "OneDNN.run: the key's bias and the bias argument disagree")
        _ = Kernels.applyDefaultThreads
        lock.lock()
        defer { lock.unlock() }
        let primitive: OpaquePointer?
        if let cached = primitives[key] {
            primitive = cached
        } else {
            if primitives.count >= capacity {
                for case let p? in primitives.values { kk_matmul_destroy(p) }
                primitives.removeAll()
            }
            var status: Int32 = 0
            primitive = kk_matmul_create(key.m, key.n, key.k, key.aType, key.bType, key.transA ? 1 : 0, key.transB ? 1 : 0,
                                         key.bias ? 1 : 0, key.lda, key.ldb, key.ldc, &status)
            primitives[key] = primitive
        }
        guard let primitive else { return false }
        let status = kk_matmul_run(primitive, a, b, c, bias)
        precondition(status == 0, "oneDNN matmul \(key.m)×\(key.k)·\(key.k)×\(key.n) failed with status \(status)")
        return true
    }

    /// The implementation oneDNN picks for a product (for `kosmos bench`), or nil without oneDNN.
    static func implementation(_ key: Key) -> String? {
        var status: Int32 = 0
        guard let p = kk_matmul_create(key.m, key.n, key.k, key.aType, key.bType, key.transA ? 1 : 0, key.transB ? 1 : 0,
                                       key.bias ? 1 : 0, key.lda, key.ldb, key.ldc, &status) else { return nil }
        defer { kk_matmul_destroy(p) }
        return String(cString: kk_matmul_implementation(p))
    }
}

extension Kernels {
    /// The oneDNN implementation of an m×k · (n×k)ᵀ product in `dtype` (bench output), nil without oneDNN.
    public static func oneDNNImplementation(m: Int, n: Int, k: Int, dtype: DType) -> String? {
        let t: Int32 = dtype == .float32 ? KK_F32 : KK_BF16
        return OneDNN.implementation(.init(m: m, n: n, k: k, aType: t, bType: t, transA: false, transB: true, lda: k, ldb: k, ldc: n))
    }
}
