import Foundation
import KosmosModels
import KosmosTensor
import Logging

/// What a generation request hears from the scheduler, in order: text deltas, then one
/// `finished` (or one `failed`).
public enum GenerationEvent: Sendable {
    case text(String)
    case finished(Completion)
    case failed(APIError)
}

/// The end of a generation.
public struct Completion: Sendable {
    /// OpenAI's finish_reason: "stop" (EOS or a stop string) or "length".
    public let finishReason: String
    public let text: String
    public let entities: [GroundedEntity]?
    public let promptTokens: Int
    public let completionTokens: Int
    public let tokenIds: [Int]
}

/// One request in the scheduler: its prompt and options, where its events go, and whether it was
/// cancelled (client gone, stream closed). `cancel()` may be called from any thread.
public final class GenerationJob: @unchecked Sendable {
    let prompt: ServedModel.Prompt
    let options: GenerationOptions
    let grounding: Bool
    let deadline: UInt64
    let continuation: AsyncStream<GenerationEvent>.Continuation
    private let lock = NSLock()
    private var cancelled = false
    private var ended = false
    /// Hears the first `cancel()` of a job that had not ended (the scheduler counts it).
    var onCancel: (@Sendable () -> Void)?
    // Scheduler thread only:
    var member: DecodingBatch.Member?
    var streamer: TextStreamer

    init(prompt: ServedModel.Prompt, options: GenerationOptions, stops: [String], grounding: Bool, timeout: Double,
         continuation: AsyncStream<GenerationEvent>.Continuation, decode: @escaping ([Int]) -> String) {
        self.prompt = prompt
        self.options = options
        self.grounding = grounding
        streamer = TextStreamer(stops: stops, decode: decode)
        deadline = DispatchTime.now().uptimeNanoseconds + UInt64(max(0, timeout) * 1e9)
        self.continuation = continuation
    }

    /// Asks the scheduler to drop the job; it leaves the queue or the batch before the next step.
    /// Does nothing once the job has ended (finished, failed or already cancelled).
    public func cancel() {
        lock.lock()
        let first = !cancelled && !ended
        cancelled = true
        lock.unlock()
        if first { onCancel?() }
    }

    /// Marks the job ended; its events are all sent. Called on the scheduler thread: it also lets
    /// go of the batch member, which points back at the job (`userInfo`) — a cycle that otherwise
    /// kept every finished request's prompt, media and KV cache alive (found by the soak).
    func end() {
        lock.lock()
        ended = true
        lock.unlock()
        member?.userInfo = nil
        member = nil
        continuation.finish()
    }

    public var isCancelled: Bool {
        lock.lock()
        defer { lock.unlock() }
        return cancelled
    }

    var isExpired: Bool { DispatchTime.now().uptimeNanoseconds > deadline }
}

/// Counters a test or `bench serve` can read.
public struct SchedulerStatistics: Sendable {
    /// Requests accepted into the queue.
    public var submitted = 0
    /// Requests prefilled into the batch.
    public var admitted = 0
    public var completed = 0
    /// Requests the scheduler dropped because they were cancelled (client gone).
    public var cancelled = 0
    /// Cancellations asked for (`GenerationJob.cancel()` on a live job); each becomes a
    /// `cancelled` when the scheduler next looks at the job (or a `completed`, when the job was
    /// finishing as it was cancelled).
    public var cancelRequests = 0
    public var failed = 0
    public var steps = 0
    /// Sum over steps of the sequences in the step (mean batch = batchedTokens / steps).
    public var batchedTokens = 0
    public var largestBatch = 0
    /// Prompt chunks prefilled (`prefillChunk` positions each, the last of a prompt fewer).
    public var prefillChunks = 0
    /// Decoding steps taken while a prompt was part-way through its prefill: the other requests
    /// kept getting tokens.
    public var stepsWhilePrefilling = 0
}

/// The continuous-batching loop. One thread owns the model: it admits queued requests between
/// steps, prefills them a chunk at a time (at most `prefillChunk` prompt positions per loop, the
/// prefilling requests taking turns), advances every running request by one token in one batched
/// decoder step (`DecodingBatch`), streams each request's new text, and lets finished, cancelled or
/// timed-out requests leave. A long prompt thus delays the others' next token by one chunk's time,
/// not its whole prefill. The waiting queue is bounded: `submit` refuses with 429 when it is full.
public final class Scheduler: @unchecked Sendable {
    public let model: ServedModel
    public let maxBatch: Int
    public let queueCapacity: Int
    /// Prompt positions prefilled per loop (over all prefilling requests), between decoding steps.
    public let prefillChunk: Int
    let logger: Logger
    private let condition = NSCondition()
    private var waiting: [GenerationJob] = []
    private var stopping = false
    /// Set by `beginDraining()`: new requests are refused, accepted ones go on.
    private var draining = false
    private var thread: Thread?
    private var statistics = SchedulerStatistics()
    private var held: HoldPoint?
    private let batch: DecodingBatch
    /// Admitted requests whose prompts are being prefilled (scheduler thread only), in turn order.
    private var prefilling: [(job: GenerationJob, member: DecodingBatch.Member, prefill: PromptPrefill)] = []
    /// Admitted requests not yet decoding (prefilling), read under the lock for the batch's room.
    private var prefillingCount = 0

    /// Where `hold(_:)` stops the loop.
    public enum HoldPoint: Sendable {
        /// Nothing is admitted or decoded: requests wait in the queue.
        case admission
        /// Requests are admitted (prefilled whole, first token) but no decoding step runs.
        case steps
    }

    public init(model: ServedModel, maxBatch: Int = 16, queueCapacity: Int = 64, prefillChunk: Int = PromptPrefill.defaultChunkSize,
                logger: Logger = Logger(label: "kosmos.scheduler")) {
        self.model = model
        self.maxBatch = max(1, maxBatch)
        self.queueCapacity = max(0, queueCapacity)
        self.prefillChunk = max(1, prefillChunk)
        self.logger = logger
        batch = DecodingBatch(decoder: model.decoder, eos: model.eos)
    }

    public func start() {
        condition.lock()
        defer { condition.unlock() }
        guard thread == nil else { return }
        let thread = Thread { [self] in loop() }
        thread.name = "kosmos-scheduler"
        thread.stackSize = 8 << 20
        self.thread = thread
        thread.start()
    }

    /// The first step of a graceful shutdown: from now on `submit` refuses with 503; the requests
    /// already accepted (queued, prefilling, decoding) go on. Returns how many those are.
    @discardableResult
    public func beginDraining() -> Int {
        condition.lock()
        defer { condition.unlock() }
        draining = true
        return openRequests
    }

    /// Whether `beginDraining()` has run (new requests are refused).
    public var isDraining: Bool {
        condition.lock()
        defer { condition.unlock() }
        return draining
    }

    /// Requests accepted and not yet ended (completed, failed, timed out or cancelled).
    public var inFlight: Int {
        condition.lock()
        defer { condition.unlock() }
        return openRequests
    }

    private var openRequests: Int {
        statistics.submitted - statistics.completed - statistics.failed - statistics.cancelled
    }

    /// Stops the loop; waiting and running requests fail with 503.
    public func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
    }

    /// Holds the loop at a point until `release()`: for tests that must act while a request is
    /// known to be queued or mid-generation, whatever the model's speed.
    public func hold(_ point: HoldPoint) {
        condition.lock()
        held = point
        condition.unlock()
    }

    public func release() {
        condition.lock()
        held = nil
        condition.broadcast()
        condition.unlock()
    }

    public var stats: SchedulerStatistics {
        condition.lock()
        defer { condition.unlock() }
        return statistics
    }

    /// When the most recent decoding steps ended (DispatchTime nanoseconds, oldest first, the last
    /// 4,096 at most): the gaps between them are each running request's inter-token times.
    public var recentStepTimes: [UInt64] {
        condition.lock()
        defer { condition.unlock() }
        return stepTimes
    }
    private var stepTimes: [UInt64] = []

    /// Queues a request. Throws 429 when the queue is full, 503 when stopping.
    public func submit(prompt: ServedModel.Prompt, options: GenerationOptions, stops: [String] = [], grounding: Bool = false,
                       timeout: Double) throws -> (GenerationJob, AsyncStream<GenerationEvent>) {
        let (stream, continuation) = AsyncStream<GenerationEvent>.makeStream(bufferingPolicy: .unbounded)
        let model = self.model
        let job = GenerationJob(prompt: prompt, options: options, stops: stops, grounding: grounding, timeout: timeout,
                                continuation: continuation) { ids in model.text(of: ids, grounding: grounding).text }
        // A consumer that stops listening (its task cancelled) cancels the generation.
        continuation.onTermination = { [weak job] termination in
            if case .cancelled = termination { job?.cancel() }
        }
        job.onCancel = { [weak self] in self?.count(\.cancelRequests) }
        condition.lock()
        defer { condition.unlock() }
        guard !stopping && !draining else { throw APIError(status: 503, message: "the server is shutting down", type: "server_error") }
        guard waiting.count < queueCapacity else {
            throw APIError(status: 429, message: "the request queue is full (\(queueCapacity) waiting); retry later",
                           type: "rate_limit_error", code: "queue_full")
        }
        waiting.append(job)
        statistics.submitted += 1
        condition.signal()
        return (job, stream)
    }

    private func loop() {
        while true {
            condition.lock()
            // Wait while there is nothing to admit, prefill or decode (`hold` makes each count as nothing).
            while !stopping && (waiting.isEmpty || held == .admission || batch.running.count + prefillingCount >= maxBatch)
                && (prefillingCount == 0 || held == .admission) && (batch.running.isEmpty || held != nil) { condition.wait() }
            if stopping {
                let pending = waiting
                waiting = []
                condition.unlock()
                let shutdown = APIError(status: 503, message: "the server is shutting down", type: "server_error")
                for job in pending { fail(job, shutdown) }
                for entry in prefilling { fail(entry.job, shutdown) }
                prefilling = []
                for member in batch.running {
                    batch.finish(member)
                    if let job = member.userInfo as? GenerationJob { fail(job, shutdown) }
                }
                return
            }
            let room = held == .admission ? 0 : maxBatch - batch.running.count - prefillingCount
            let admitted = Array(waiting.prefix(max(0, room)))
            waiting.removeFirst(admitted.count)
            let hold = held
            condition.unlock()
            for job in admitted { admit(job) }
            if hold != .admission {
                // Held before the steps, every admitted prompt is prefilled whole; otherwise
                // `prefillChunk` positions' worth, the prompts taking turns.
                var budget = prefillChunk
                while !prefilling.isEmpty && (budget > 0 || hold == .steps) {
                    budget -= advancePrefill(limit: hold == .steps ? prefillChunk : budget)
                }
            }
            if hold == nil { step() }
        }
    }

    /// Starts a job's prefill (its prompt checked against the model's positions, its media encoded);
    /// the chunks run in `advancePrefill()`.
    private func admit(_ job: GenerationJob) {
        if job.isCancelled { return cancelled(job) }
        if job.isExpired { return fail(job, Self.timeout) }
        do {
            let member = try batch.makeMember(prompt: job.prompt.tokens, options: job.options)
            member.userInfo = job
            if member.isFinished {
                job.member = member
                count(\.admitted)
                return deliver(job)
            }
            let prefill = try model.startPrefill(job.prompt, cache: member.cache, chunkSize: prefillChunk)
            prefilling.append((job, member, prefill))
            setPrefillingCount()
        } catch let error as APIError {
            fail(job, error)
        } catch {
            fail(job, APIError(status: 400, message: "\(error)"))
        }
    }

    /// Runs one chunk (at most `limit` positions) of the first prefilling job, which then goes to
    /// the back of the turn (or, finished, joins the batch with its first token). Returns the
    /// positions prefilled.
    private func advancePrefill(limit: Int) -> Int {
        guard !prefilling.isEmpty else { return 0 }
        let entry = prefilling.removeFirst()
        defer { setPrefillingCount() }
        let job = entry.job
        if job.isCancelled { cancelled(job); return 0 }
        if job.isExpired { fail(job, Self.timeout); return 0 }
        let start = entry.prefill.position
        do {
            let logits = try entry.prefill.advance(limit: limit)
            count(\.prefillChunks)
            if let logits {
                try batch.join(entry.member, logits: logits)
                job.member = entry.member
                count(\.admitted)
                deliver(job)
            } else {
                prefilling.append(entry)
            }
        } catch let error as APIError {
            fail(job, error)
        } catch {
            fail(job, APIError(status: 400, message: "\(error)"))
        }
        return Swift.max(1, entry.prefill.position - start)
    }

    private func setPrefillingCount() {
        condition.lock()
        prefillingCount = prefilling.count
        condition.unlock()
    }

    private func step() {
        guard !batch.running.isEmpty else { return }
        let size = batch.running.count
        do {
            let members = try batch.step()
            condition.lock()
            statistics.steps += 1
            statistics.batchedTokens += size
            statistics.largestBatch = max(statistics.largestBatch, size)
            if prefillingCount > 0 { statistics.stepsWhilePrefilling += 1 }
            if stepTimes.count >= 8_192 { stepTimes.removeFirst(4_096) }
            stepTimes.append(DispatchTime.now().uptimeNanoseconds)
            condition.unlock()
            for member in members {
                if let job = member.userInfo as? GenerationJob { deliver(job) }
            }
        } catch {
            logger.error("decoding step failed: \(error)")
            for member in batch.running {
                batch.finish(member)
                if let job = member.userInfo as? GenerationJob { fail(job, APIError(status: 500, message: "\(error)", type: "server_error")) }
            }
        }
    }

    static let timeout = APIError(status: 504, message: "the request timed out", type: "timeout_error", code: "timeout")

    /// Sends a job's new text after its latest token, applies stop strings, and finishes it when
    /// its member finished, the client went away, or its time ran out.
    private func deliver(_ job: GenerationJob) {
        guard let member = job.member else { return }
        if job.isCancelled {
            batch.finish(member)
            return cancelled(job)
        }
        let delta = job.streamer.set(member.generated, final: member.isFinished)
        let stopped = job.streamer.stopped
        if stopped && !member.isFinished { batch.finish(member) }
        if !member.isFinished && job.isExpired {
            batch.finish(member)
            return fail(job, Self.timeout)
        }
        if !delta.isEmpty { job.continuation.yield(.text(delta)) }
        guard member.isFinished else { return }
        let reason = stopped || member.finishReason == .endOfSequence ? "stop" : "length"
        let entities = job.grounding ? model.text(of: member.generated, grounding: true).entities : nil
        // Counted before the client can hear the end, so a client that has its answer sees the count.
        count(\.completed)
        job.continuation.yield(.finished(Completion(finishReason: reason, text: job.streamer.text, entities: entities,
                                                    promptTokens: job.prompt.tokens.count,
                                                    completionTokens: member.generated.count, tokenIds: member.generated)))
        job.end()
    }

    private func fail(_ job: GenerationJob, _ error: APIError) {
        count(\.failed)
        job.continuation.yield(.failed(error))
        job.end()
    }

    private func cancelled(_ job: GenerationJob) {
        count(\.cancelled)
        job.end()
    }

    private func count(_ field: WritableKeyPath<SchedulerStatistics, Int>) {
        condition.lock()
        statistics[keyPath: field] += 1
        condition.unlock()
    }
}
