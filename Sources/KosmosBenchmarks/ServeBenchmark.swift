import Foundation
import KosmosModels
import KosmosServer
import Logging

/// Drives `KosmosHTTPServer` over loopback with blocking clients on their own threads, bounded in
/// request count and time; the figures are printed by `kosmos bench serve`, never asserted.
public enum ServeBenchmark {
    public struct Result: Sendable {
        public let clients: Int
        public let completed: Int
        public let failed: Int
        public let seconds: Double
        public let latencies: [Double]
        public let tokens: Int
        public let meanBatch: Double
        public var requestsPerSecond: Double { Double(completed) / seconds }
        public var tokensPerSecond: Double { Double(tokens) / seconds }
        public var p50: Double { ServeBenchmark.percentile(latencies, 0.5) }
        public var p99: Double { ServeBenchmark.percentile(latencies, 0.99) }
    }

    /// The q-quantile of `values` (nearest rank: the ⌈q·n⌉-th smallest); 0 for none.
    public static func percentile(_ values: [Double], _ q: Double) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return 0 }
        return sorted[Swift.max(0, Swift.min(sorted.count - 1, Int((q * Double(sorted.count)).rounded(.up)) - 1))]
    }

    /// A server for `model` on a free loopback port (with `options`' batch and queue), running
    /// until the returned task ends; nil when it did not start.
    static func startServer(model: ServedModel, options: ServerOptions, logger: Logger)
        async -> (port: Int, server: KosmosHTTPServer, task: Task<Void, Error>)? {
        var options = options
        options.host = "127.0.0.1"
        options.port = 0
        let scheduler = Scheduler(model: model, maxBatch: options.maxBatch, queueCapacity: options.queueCapacity, logger: logger)
        let server = KosmosHTTPServer(scheduler: scheduler, options: options, logger: logger)
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let serving = Task { try await server.run(handleSignals: false) { portContinuation.yield($0) } }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else {
            serving.cancel()
            return nil
        }
        return (port, server, serving)
    }

    /// Starts a server for `model` on a free loopback port and measures each concurrency level.
    public static func measure(model: ServedModel, options: ServerOptions, logger: Logger, levels: [Int], requests: Int,
                               maxTokens: Int, duration: Double) async throws -> [Result] {
        guard let (port, server, serving) = await startServer(model: model, options: options, logger: logger) else { return [] }
        defer { serving.cancel() }
        let scheduler = server.scheduler
        var results: [Result] = []
        for clients in levels {
            let before = scheduler.stats
            let result = run(port: port, model: model.name, clients: clients, requests: requests, maxTokens: maxTokens, duration: duration)
            let after = scheduler.stats
            let steps = after.steps - before.steps
            results.append(Result(clients: clients, completed: result.completed, failed: result.failed, seconds: result.seconds,
                                  latencies: result.latencies, tokens: result.tokens,
                                  meanBatch: steps > 0 ? Double(after.batchedTokens - before.batchedTokens) / Double(steps) : 0))
        }
        return results
    }

    static func run(port: Int, model: String, clients: Int, requests: Int, maxTokens: Int, duration: Double)
        -> (completed: Int, failed: Int, seconds: Double, latencies: [Double], tokens: Int) {
        let lock = NSLock()
        var next = 0, completed = 0, failed = 0, tokens = 0
        var latencies: [Double] = []
        let start = DispatchTime.now().uptimeNanoseconds
        let deadline = start + UInt64(duration * 1e9)
        let group = DispatchGroup()
        for _ in 0..<clients {
            group.enter()
            let thread = Thread {
                defer { group.leave() }
                while true {
                    lock.lock()
                    let index = next
                    next += 1
                    lock.unlock()
                    guard index < requests, DispatchTime.now().uptimeNanoseconds < deadline else { return }
                    let body: [String: Any] = [
                        "model": model, "max_tokens": maxTokens, "temperature": 0, "ignore_eos": true,
                        "messages": [["role": "user", "content": "Request \(index): describe a small red house by the sea."]],
                    ]
                    let began = DispatchTime.now().uptimeNanoseconds
                    let reply = try? LoopbackClient.send(port: port, path: "/v1/chat/completions",
                                                         body: try? JSONSerialization.data(withJSONObject: body), timeout: 300)
                    let seconds = Double(DispatchTime.now().uptimeNanoseconds - began) / 1e9
                    var used = 0
                    if let reply, reply.status == 200,
                       let object = try? JSONSerialization.jsonObject(with: reply.body) as? [String: Any],
                       let usage = object["usage"] as? [String: Any] {
                        used = usage["completion_tokens"] as? Int ?? 0
                    }
                    lock.lock()
                    if used > 0 { completed += 1; tokens += used; latencies.append(seconds) } else { failed += 1 }
                    lock.unlock()
                }
            }
            thread.start()
        }
        group.wait()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return (completed, failed, seconds, latencies, tokens)
    }
}

extension ServeBenchmark {
    /// What the other requests see while one long prompt is prefilled: the gaps between the
    /// scheduler's decoding steps (each running request gets one token per step) from the moment
    /// the long request is submitted until its first token, and in as long a stretch before it.
    public struct Interference: Sendable {
        public let chunk: Int
        public let prefillSeconds: Double
        public let gaps: [Double]
        public let baselineGaps: [Double]
        public var p50: Double { ServeBenchmark.percentile(gaps, 0.5) }
        public var p99: Double { ServeBenchmark.percentile(gaps, 0.99) }
        public var longest: Double { gaps.max() ?? 0 }
        public var baselineP99: Double { ServeBenchmark.percentile(baselineGaps, 0.99) }
    }

    /// `clients` short requests decode (greedy, no EOS stop) on the scheduler directly (in-process:
    /// the gaps are the scheduler's, not a client's socket); after 16 steps a request with a
    /// `longPrompt`-token prompt arrives, which the scheduler prefills `chunk` positions per loop.
    /// The short requests are cancelled when the long one has its first token.
    public static func longPromptInterference(model: ServedModel, clients: Int, longPrompt: Int, chunk: Int,
                                              logger: Logger) async throws -> Interference {
        let scheduler = Scheduler(model: model, maxBatch: clients + 1, queueCapacity: clients + 1, prefillChunk: chunk, logger: logger)
        scheduler.start()
        defer { scheduler.stop() }
        var options = GenerationOptions()
        options.maxNewTokens = Swift.max(1, model.contextLength - 64)
        options.stopAtEOS = false
        var jobs: [GenerationJob] = [], streams: [AsyncStream<GenerationEvent>] = []
        for i in 0..<clients {
            let prompt = try model.prompt(text: "Request \(i): describe a small red house by the sea.", images: [])
            let (job, stream) = try scheduler.submit(prompt: prompt, options: options, timeout: 3600)
            jobs.append(job)
            streams.append(stream)
        }
        while scheduler.stats.steps < 16 { try await Task.sleep(nanoseconds: 1_000_000) }
        // Filler text's ids repeated to the length (no media markers among them).
        let sentence = model.tokenizer.encode(" The grass is green, the sky is blue and the house by the sea is red.")
        guard !sentence.isEmpty else { throw ModelError.invalidInput("the tokenizer gives no ids for the filler text") }
        let long = ModelInput(tokens: (0..<longPrompt).map { sentence[$0 % sentence.count] })
        var single = GenerationOptions()
        single.maxNewTokens = 1
        single.stopAtEOS = false
        let submitted = DispatchTime.now().uptimeNanoseconds
        let (_, longStream) = try scheduler.submit(prompt: long, options: single, timeout: 3600)
        for await event in longStream {
            if case .failed(let error) = event { throw error }
            if case .finished = event { break }
        }
        let done = DispatchTime.now().uptimeNanoseconds
        // One more step after the long request joined, so the gap it waited through is counted.
        let stepsAtDone = scheduler.stats.steps
        while scheduler.stats.steps < stepsAtDone + 2 { try await Task.sleep(nanoseconds: 1_000_000) }
        let times = scheduler.recentStepTimes
        for job in jobs { job.cancel() }
        _ = streams
        let stretch = done - submitted
        var gaps: [Double] = [], baseline: [Double] = []
        for (a, b) in zip(times, times.dropFirst()) {
            let gap = Double(b - a) / 1e9
            if b > submitted && a < done { gaps.append(gap) } else if b <= submitted && a + stretch >= submitted { baseline.append(gap) }
        }
        return Interference(chunk: chunk, prefillSeconds: Double(stretch) / 1e9, gaps: gaps, baselineGaps: baseline)
    }
}
