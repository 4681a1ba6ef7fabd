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
        public var p50: Double { percentile(0.5) }
        public var p99: Double { percentile(0.99) }
        func percentile(_ q: Double) -> Double {
            let sorted = latencies.sorted()
            guard !sorted.isEmpty else { return 0 }
            return sorted[min(sorted.count - 1, Int((q * Double(sorted.count)).rounded(.up)) - 1 < 0 ? 0 : Int((q * Double(sorted.count)).rounded(.up)) - 1)]
        }
    }

    /// Starts a server for `model` on a free loopback port and measures each concurrency level.
    public static func measure(model: ServedModel, options: ServerOptions, logger: Logger, levels: [Int], requests: Int,
                               maxTokens: Int, duration: Double) async throws -> [Result] {
        var options = options
        options.host = "127.0.0.1"
        options.port = 0
        let scheduler = Scheduler(model: model, maxBatch: options.maxBatch, queueCapacity: options.queueCapacity, logger: logger)
        let server = KosmosHTTPServer(scheduler: scheduler, options: options, logger: logger)
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let serving = Task { try await server.run(handleSignals: false) { portContinuation.yield($0) } }
        defer { serving.cancel() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { return [] }
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
