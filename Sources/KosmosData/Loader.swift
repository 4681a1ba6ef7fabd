import Foundation

/// Decodes and preprocesses ahead of the consumer on background threads.
///
/// One producer thread reads records in the iterator's order and numbers them; `workers` threads
/// prepare them concurrently; `next()` hands them out strictly by number, so the order never
/// depends on thread timing. At most `capacity` samples are read but not yet consumed (a semaphore
/// bounds the buffer, so memory stays flat however slow the consumer is). `stop()` (or deinit)
/// wakes every waiter and waits for the producer to exit, so stopping early never hangs.
final class PrefetchState: @unchecked Sendable {
    private let iterator: DatasetIterator
    private let preparer: SamplePreparer
    // One condition guards everything. Counters rather than DispatchSemaphores bound the buffer and
    // the workers: libdispatch traps when a semaphore is freed below its initial value, which an
    // early stop would otherwise cause.
    private let lock = NSCondition()
    private var results: [Int: Result<PreparedSample, SkipReason>] = [:]
    private var nextToConsume = 0
    private var submitted = 0
    private var inFlight = 0
    private var producerDone = false
    private var stopped = false
    private var iteratorSkips = SkipCounts()
    private var prepareSkips = SkipCounts()
    private let capacity: Int
    private let workers: Int
    private let workQueue = DispatchQueue(label: "kosmos.data.prepare", attributes: .concurrent)
    private let producerExited = DispatchGroup()

    init(iterator: DatasetIterator, preparer: SamplePreparer, capacity: Int, workers: Int) {
        self.iterator = iterator; self.preparer = preparer
        self.capacity = capacity; self.workers = workers
        producerExited.enter()
        let thread = Thread { [self] in produce() }
        thread.name = "kosmos.data.producer"
        thread.start()
    }

    var skips: SkipCounts {
        lock.lock(); defer { lock.unlock() }
        var s = iteratorSkips; s.merge(prepareSkips); return s
    }

    private func produce() {
        defer { producerExited.leave() }
        while true {
            lock.lock()
            // Wait for room in the buffer and a free worker.
            while !stopped && (submitted - nextToConsume >= capacity || inFlight >= workers) { lock.wait() }
            if stopped { lock.unlock(); break }
            lock.unlock()
            let sample = iterator.next()
            let position = iterator.position
            let skipsNow = iterator.skips
            lock.lock()
            iteratorSkips = skipsNow
            guard let sample else { lock.unlock(); break }
            let seq = submitted
            submitted += 1
            inFlight += 1
            lock.unlock()
            let preparer = self.preparer
            workQueue.async { [self] in
                let r: Result<PreparedSample, SkipReason>
                do { r = .success(try preparer.prepare(sample, positionAfter: position)) } catch let reason as SkipReason {
                    r = .failure(reason)
                } catch { r = .failure(.unreadableImage) }
                lock.lock(); results[seq] = r; inFlight -= 1; lock.broadcast(); lock.unlock()
            }
        }
        lock.lock(); producerDone = true; lock.broadcast(); lock.unlock()
    }

    func next() -> PreparedSample? {
        lock.lock(); defer { lock.unlock() }
        while true {
            if stopped { return nil }
            if let r = results.removeValue(forKey: nextToConsume) {
                nextToConsume += 1
                lock.broadcast()  // room in the buffer for the producer
                switch r {
                case .success(let s): return s
                case .failure(let reason): prepareSkips.add(reason); continue
                }
            }
            if producerDone && nextToConsume >= submitted { return nil }
            lock.wait()
        }
    }

    /// Stops reading ahead and waits (up to `timeout` seconds) for the producer thread to exit.
    /// Returns whether it did. Workers already running finish their one sample and drop it.
    @discardableResult
    func stop(timeout: Double = 10) -> Bool {
        lock.lock(); stopped = true; lock.broadcast(); lock.unlock()
        return producerExited.wait(timeout: .now() + timeout) == .success
    }
}

/// The public face of `PrefetchState`. The producer thread holds only the state, so dropping the
/// loader without calling `stop()` still stops the thread (from deinit).
public final class PrefetchingLoader: PreparedSampleSource {
    private let state: PrefetchState
    public init(iterator: DatasetIterator, preparer: SamplePreparer, capacity: Int = 16, workers: Int = 2) throws {
        guard capacity >= 1, workers >= 1 else { throw DataError.invalidArgument("capacity and workers must be at least 1") }
        state = PrefetchState(iterator: iterator, preparer: preparer, capacity: capacity, workers: workers)
    }
    deinit { state.stop(timeout: 0) }
    public var skips: SkipCounts { state.skips }
    public func next() -> PreparedSample? { state.next() }
    /// Stops reading ahead and waits (up to `timeout` seconds) for the producer thread to exit.
    @discardableResult public func stop(timeout: Double = 10) -> Bool { state.stop(timeout: timeout) }
}
