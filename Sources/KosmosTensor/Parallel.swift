import CKosmosKernels
import Foundation

/// Splits kernel work across cores. Work is cut into chunks whose boundaries depend only on the
/// problem size and `threadCount`; every element (or row) is computed by exactly one worker with
/// the same arithmetic as a serial loop, so results do not depend on the number of threads.
public enum Parallel {
    /// Worker count for Swift kernels: `KOSMOS_NUM_THREADS` if set, else the active cores.
    /// BLAS threads are separate and follow `OPENBLAS_NUM_THREADS` (see `BLAS.threadCount`).
    nonisolated(unsafe) public static var threadCount: Int = {
        if let value = ProcessInfo.processInfo.environment["KOSMOS_NUM_THREADS"], let n = Int(value), n > 0 {
            return n
        }
        return Swift.max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    /// Calls `body` on disjoint ranges covering 0..<count, in parallel when there is enough work.
    /// `minimumPerChunk` is the smallest range worth handing to another thread.
    ///
    /// With `claimedChunksPerThread` k > 1, the range is cut into up to k chunks per thread that
    /// the threads claim as they go (`kk_pool_run_claimed`): the same chunks whichever thread runs
    /// them, but a thread slowed by other work on its core does fewer. For memory-bound products
    /// on a shared machine, where an even split waits for the slower thread.
    @inline(__always)
    public static func forRanges(_ count: Int, minimumPerChunk: Int, claimedChunksPerThread: Int = 1,
                                 _ body: (Range<Int>) -> Void) {
        let perThread = Swift.max(claimedChunksPerThread, 1)
        let chunks = Swift.min(threadCount * perThread, count / Swift.max(minimumPerChunk, 1))
        if chunks <= 1 {
            if count > 0 { body(0..<count) }
            return
        }
        withoutActuallyEscaping(body) { body in
            var job = PoolJob(count: count, chunks: chunks, body: body)
            let task: kk_pool_task = { context, chunk in
                let job = context!.assumingMemoryBound(to: PoolJob.self).pointee
                job.body(job.range(Int(chunk)))
            }
            let pooled = usePool && withUnsafeMutablePointer(to: &job) { job in
                (perThread == 1 ? kk_pool_run(Int32(chunks), task, job)
                                : kk_pool_run_claimed(Int32(threadCount), chunks, task, job)) == 0
            }
            if !pooled {  // nested in a pool job, or another thread's job is running
                DispatchQueue.concurrentPerform(iterations: chunks) { chunk in body(job.range(chunk)) }
            }
        }
    }

    /// One job for the worker pool: chunk c covers count·c/chunks ..< count·(c+1)/chunks.
    private struct PoolJob {
        let count: Int, chunks: Int
        let body: (Range<Int>) -> Void
        func range(_ chunk: Int) -> Range<Int> { count * chunk / chunks ..< count * (chunk + 1) / chunks }
    }

    /// Persistent spinning workers (CKosmosKernels' pool) rather than libdispatch for every job:
    /// decoding's ~150 short products per token spent ~7% of a step waking threads. Started once
    /// with `threadCount` threads; `KOSMOS_POOL=0` keeps libdispatch for everything.
    private static let usePool: Bool = {
        if ProcessInfo.processInfo.environment["KOSMOS_POOL"] == "0" { return false }
        return kk_pool_start(Int32(threadCount)) >= threadCount
    }()

    /// Chunks per thread, claimed as the threads go, for the products that stream a weight from
    /// memory once (decoding's few-rows kernels, 16-bit and quantized): an even split waited for
    /// whichever core other work had slowed. `KOSMOS_WEIGHT_CHUNKS` overrides it (1: the even
    /// split) to measure one against the other in the same build.
    public static let weightReadingChunksPerThread: Int = {
        if let value = ProcessInfo.processInfo.environment["KOSMOS_WEIGHT_CHUNKS"], let n = Int(value), n > 0 { return n }
        return 4
    }()

    /// Elements per chunk for cheap element-wise work: below this, waking a thread costs more than it saves.
    public static let elementGrain = 32_768
}

// MARK: SIMD helpers shared by the kernels

typealias Vec = SIMD16<Float>
let vecWidth = 16

@inline(__always) func loadVec(_ p: UnsafePointer<Float>) -> Vec {
    UnsafeRawPointer(p).loadUnaligned(as: Vec.self)
}

@inline(__always) func loadVec(_ p: UnsafeMutablePointer<Float>) -> Vec {
    UnsafeRawPointer(p).loadUnaligned(as: Vec.self)
}

@inline(__always) func storeVec(_ v: Vec, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vec.self)
}

/// Sum of `n` contiguous floats with 16 lane accumulators (then a fixed-order lane reduction), so
/// the result is the same wherever the row sits in memory and whichever thread runs it.
@inline(__always) func rowSum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = Vec(repeating: 0)
    var i = 0
    while i + vecWidth <= n {
        acc += loadVec(p + i)
        i += vecWidth
    }
    var total = acc.sum()
    while i < n {
        total += p[i]
        i += 1
    }
    return total
}

/// Largest of `n` contiguous floats (NaNs are skipped; a row of NaNs gives -inf). A compare and
/// select, not `pointwiseMax`: the standard library's generic version runs lane by lane and was
/// 17× slower here (38 ms against 2.3 ms over 128×32002).
@inline(__always) func rowMax(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = Vec(repeating: -.infinity)
    var i = 0
    while i + vecWidth <= n {
        let v = loadVec(p + i)
        acc = acc.replacing(with: v, where: v .> acc)
        i += vecWidth
    }
    var best = acc.max()
    while i < n {
        if p[i] > best { best = p[i] }
        i += 1
    }
    return best
}

@inline(__always) func rowDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = Vec(repeating: 0)
    var i = 0
    while i + vecWidth <= n {
        acc += loadVec(a + i) * loadVec(b + i)
        i += vecWidth
    }
    var total = acc.sum()
    while i < n {
        total += a[i] * b[i]
        i += 1
    }
    return total
}
