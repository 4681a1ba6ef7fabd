import CKosmosKernels
import Foundation
import XCTest
@testable import KosmosTensor

/// The worker pool under `Parallel.forRanges` (CKosmosKernels/pool.c): every chunk runs exactly
/// once, on back-to-back jobs (workers still spinning) and after they have gone to sleep; nested
/// and concurrent jobs are refused by the pool and still complete through `forRanges`.
final class PoolTests: XCTestCase {
    /// Chunk c adds c + 1 to its own slot, so a chunk run twice or never shows in the totals.
    private static let addChunk: kk_pool_task = { context, chunk in
        context!.assumingMemoryBound(to: Int.self)[Int(chunk)] += Int(chunk) + 1
    }

    func testEveryChunkRunsOnceAwakeAndAfterSleeping() {
        let threads = Int(kk_pool_start(Int32(Parallel.threadCount)))
        defer { kk_pool_set_spin(200_000) }
        for (spin, jobs) in [(200_000, 2_000), (0, 200)] {  // workers spinning between jobs; workers going to sleep at once
            kk_pool_set_spin(spin)
            let sleepsBefore = kk_pool_sleeps()
            for chunks in 1...threads {
                var slots = [Int](repeating: 0, count: chunks)
                for _ in 0..<jobs {
                    let status = slots.withUnsafeMutableBufferPointer { kk_pool_run(Int32(chunks), Self.addChunk, $0.baseAddress) }
                    XCTAssertEqual(status, 0)
                }
                XCTAssertEqual(slots, (0..<chunks).map { jobs * ($0 + 1) }, "spin \(spin) chunks \(chunks)")
            }
            if spin == 0 && threads > 1 {
                // A worker goes to sleep after each job unless the next one is posted in the few
                // instructions between its finishing and looking again; most jobs took the path.
                XCTAssertGreaterThanOrEqual(kk_pool_sleeps() - sleepsBefore, jobs / 2, "the sleeping path was taken")
            }
        }
        var slots = [Int](repeating: 0, count: threads + 1)
        let status = slots.withUnsafeMutableBufferPointer { kk_pool_run(Int32(threads + 1), Self.addChunk, $0.baseAddress) }
        XCTAssertEqual(status, -1, "more chunks than threads is refused")
        XCTAssertEqual(slots, [Int](repeating: 0, count: threads + 1), "and nothing ran")
    }

    func testClaimedChunksRunOnceEachAndForRangesKeepsItsBoundaries() {
        let threads = Int(kk_pool_start(Int32(Parallel.threadCount)))
        for chunks in [1, 2, 3, 37] {
            var slots = [Int](repeating: 0, count: chunks)
            for _ in 0..<500 {
                let status = slots.withUnsafeMutableBufferPointer { kk_pool_run_claimed(Int32(threads), chunks, Self.addChunk, $0.baseAddress) }
                XCTAssertEqual(status, 0)
            }
            XCTAssertEqual(slots, (0..<chunks).map { 500 * ($0 + 1) }, "chunks \(chunks)")
        }
        var none = [Int](repeating: 0, count: 1)
        XCTAssertEqual(none.withUnsafeMutableBufferPointer { kk_pool_run_claimed(Int32(threads), 0, Self.addChunk, $0.baseAddress) }, 0)
        XCTAssertEqual(none, [0])
        // The ranges are the same cut whichever thread claims them: count·c/chunks for 4 chunks a thread.
        let count = 1_001
        let lock = NSLock()
        var seen: [Range<Int>] = []
        Parallel.forRanges(count, minimumPerChunk: 10, claimedChunksPerThread: 4) { range in
            lock.lock(); seen.append(range); lock.unlock()
        }
        let chunks = Swift.min(Parallel.threadCount * 4, count / 10)
        XCTAssertEqual(seen.sorted { $0.lowerBound < $1.lowerBound }, (0..<chunks).map { count * $0 / chunks ..< count * ($0 + 1) / chunks })
    }

    func testQuiesceSendsSpinningWorkersToSleep() {
        let threads = Int(kk_pool_start(Int32(Parallel.threadCount)))
        guard threads > 1 else { return XCTFail("the pool needs two threads for this test (Parallel.threadCount \(Parallel.threadCount))") }
        kk_pool_set_spin(60_000_000_000)  // a minute: only quiescing can put the workers to sleep
        defer { kk_pool_set_spin(200_000) }
        var slots = [Int](repeating: 0, count: threads)
        XCTAssertEqual(slots.withUnsafeMutableBufferPointer { kk_pool_run(Int32(threads), Self.addChunk, $0.baseAddress) }, 0)
        let before = kk_pool_sleeps()
        kk_pool_quiesce()
        // Microseconds in practice; the bound only keeps a broken pool from hanging the suite.
        let deadline = Date().addingTimeInterval(30)
        while kk_pool_sleeps() - before < threads - 1 && Date() < deadline { sched_yield() }
        XCTAssertEqual(kk_pool_sleeps() - before, threads - 1, "every worker went to sleep")
        XCTAssertEqual(slots.withUnsafeMutableBufferPointer { kk_pool_run(Int32(threads), Self.addChunk, $0.baseAddress) }, 0)
        XCTAssertEqual(slots, (0..<threads).map { 2 * ($0 + 1) }, "and woke for the next job")
    }

    func testNestedJobsAreRefusedByThePoolAndCompleteThroughForRanges() {
        // Inside a pool job (on the caller's thread or a worker's), the pool refuses a second job.
        let threads = Int(kk_pool_start(Int32(Parallel.threadCount)))
        var statuses = [Int32](repeating: 7, count: threads)
        let status = statuses.withUnsafeMutableBufferPointer { buffer in
            kk_pool_run(Int32(threads), { context, chunk in
                var inner = 0
                let nested = withUnsafeMutablePointer(to: &inner) { kk_pool_run(2, { c, _ in c!.assumingMemoryBound(to: Int.self).pointee += 1 }, $0) }
                context!.assumingMemoryBound(to: Int32.self)[Int(chunk)] = nested
            }, buffer.baseAddress)
        }
        XCTAssertEqual(status, 0)
        XCTAssertEqual(statuses, [Int32](repeating: -1, count: threads))
        // Through forRanges, a nested split still covers every element exactly once.
        let outer = 8, inner = 1_000
        var hits = [Int](repeating: 0, count: outer * inner)
        hits.withUnsafeMutableBufferPointer { buffer in
            let base = buffer.baseAddress!
            Parallel.forRanges(outer, minimumPerChunk: 1) { rows in
                for row in rows {
                    Parallel.forRanges(inner, minimumPerChunk: 1) { columns in
                        for column in columns { base[row * inner + column] += 1 }
                    }
                }
            }
        }
        XCTAssertEqual(hits, [Int](repeating: 1, count: outer * inner))
    }

    func testJobsFromTwoThreadsAtOnceBothComplete() {
        // One thread's jobs take the pool; the other's, refused while it is busy, go to libdispatch.
        let count = 10_000, rounds = 300
        let results = UnsafeMutablePointer<Int>.allocate(capacity: 2 * count)
        defer { results.deallocate() }
        results.initialize(repeating: 0, count: 2 * count)
        let group = DispatchGroup()
        for t in 0..<2 {
            group.enter()
            Thread.detachNewThread {
                for _ in 0..<rounds {
                    Parallel.forRanges(count, minimumPerChunk: 1) { range in
                        for i in range { results[t * count + i] += 1 }
                    }
                }
                group.leave()
            }
        }
        group.wait()
        XCTAssertEqual(Array(UnsafeBufferPointer(start: results, count: 2 * count)), [Int](repeating: rounds, count: 2 * count))
    }
}
