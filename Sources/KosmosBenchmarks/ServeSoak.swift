import Foundation
import KosmosModels
import KosmosServer
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// `kosmos bench serve --soak SECONDS --clients N`: the server under a long mixed load on loopback,
/// with clients that misbehave, checking every greedy answer against the same request made alone
/// before the soak, and the process's RSS over time. Figures are printed, never asserted.
public enum ServeSoak {
    /// What a client does in one turn.
    public enum Kind: String, CaseIterable, Sendable {
        case chat, stream, image, disconnect, slowReader = "slow reader", oversized, malformed
    }

    public struct Report: Sendable {
        public var served: [Kind: Int] = [:]
        /// Unexpected outcomes by kind: a wrong status, a failed connection, a wrong answer.
        public var errors: [String: Int] = [:]
        public var wrongAnswers = 0
        public var latencies: [Double] = []
        public var gaps: [Double] = []
        /// (seconds since the start, RSS bytes), sampled every second.
        public var rss: [(Double, Int)] = []
        public var seconds = 0.0
        public var warmup = 0.0

        /// RSS growth from the first sample after the warm-up to the last, in percent.
        public var rssGrowth: Double {
            guard let first = rss.first(where: { $0.0 >= warmup }), let last = rss.last, first.1 > 0 else { return 0 }
            return 100 * (Double(last.1) - Double(first.1)) / Double(first.1)
        }
    }

    /// This process's resident set size (Linux: /proc/self/statm; 0 elsewhere).
    public static func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
              let pages = Int(text.split(separator: " ").dropFirst().first ?? "") else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// The prompts the soak asks, each answered once alone first (the reference every later greedy
    /// answer to it must equal).
    static let prompts = ["A small red house by the sea.", "Two cats on a wall.", "The weather today is", "An image of", "Once upon a time"]

    public static func run(model served: ServedModel, options: ServerOptions, logger: Logger, clients: Int, seconds: Double,
                           maxTokens: Int, image: Data, progress: @escaping @Sendable (String) -> Void) async throws -> Report {
        guard let (port, server, serving) = await ServeBenchmark.startServer(model: served, options: options, logger: logger) else {
            throw SoakFailure("the server did not start")
        }
        do {
            let report = try await soak(port: port, served: served, options: options, clients: clients, seconds: seconds,
                                        maxTokens: maxTokens, image: image, progress: progress)
            await server.shutdown()
            try? await serving.value
            return report
        } catch {
            serving.cancel()
            throw error
        }
    }

    static func soak(port: Int, served: ServedModel, options: ServerOptions, clients: Int, seconds: Double, maxTokens: Int,
                     image: Data, progress: @escaping @Sendable (String) -> Void) async throws -> Report {
        let imageURL = "data:image/png;base64," + image.base64EncodedString()

        func body(_ prompt: String, image: Bool, stream: Bool) throws -> Data {
            var content: Any = prompt
            if image { content = [["type": "image_url", "image_url": ["url": imageURL]], ["type": "text", "text": prompt]] }
            return try JSONSerialization.data(withJSONObject: ["model": served.name, "max_tokens": maxTokens, "temperature": 0,
                                                                "stream": stream, "messages": [["role": "user", "content": content]]])
        }
        // References: each prompt alone, with and without the image.
        var references: [String: String] = [:]
        for prompt in prompts {
            for withImage in [false, true] {
                let reply = try LoopbackClient.send(port: port, path: "/v1/chat/completions", body: try body(prompt, image: withImage, stream: false))
                guard reply.status == 200, let text = content(reply.body) else { throw SoakFailure("the reference request failed: \(reply.text)") }
                references["\(withImage) \(prompt)"] = text
            }
        }
        progress("references: \(references.count) answers; \(clients) clients for \(Int(seconds)) s")

        let state = SoakState()
        let start = DispatchTime.now().uptimeNanoseconds
        let deadline = start + UInt64(seconds * 1e9)
        func elapsed() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        let sampler = Thread {
            var lastReport = 0.0
            while DispatchTime.now().uptimeNanoseconds < deadline {
                state.sample(elapsed(), residentBytes())
                if elapsed() - lastReport >= 30 {
                    lastReport = elapsed()
                    progress(state.summary(at: lastReport))
                }
                usleep(1_000_000)
            }
        }
        sampler.start()
        let group = DispatchGroup()
        for client in 0..<clients {
            group.enter()
            let thread = Thread {
                defer { group.leave() }
                var random = SystemRandomNumberGenerator()
                var turn = 0
                while DispatchTime.now().uptimeNanoseconds < deadline {
                    turn += 1
                    // Mostly well-formed requests; one in four misbehaves.
                    let roll = Int.random(in: 0..<16, using: &random)
                    let kind: Kind = [.chat, .chat, .chat, .stream, .stream, .stream, .stream, .image, .image, .image, .image, .image,
                                      .disconnect, .slowReader, .oversized, .malformed][roll]
                    let prompt = prompts[(client + turn) % prompts.count]
                    let began = DispatchTime.now().uptimeNanoseconds
                    let outcome = soakTurn(kind, port: port, prompt: prompt, references: references, body: body,
                                           maxBody: options.maxBodyBytes)
                    state.record(kind, outcome, seconds: Double(DispatchTime.now().uptimeNanoseconds - began) / 1e9)
                }
            }
            thread.start()
        }
        group.wait()
        var report = state.report
        report.seconds = elapsed()
        report.warmup = min(60, seconds / 5)
        report.rss.append((report.seconds, residentBytes()))
        return report
    }

    struct Outcome {
        var error: String?
        var wrong = false
        var gaps: [Double] = []
    }

    static func content(_ body: Data) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
              let choice = (object["choices"] as? [[String: Any]])?.first,
              let message = choice["message"] as? [String: Any] else { return nil }
        return message["content"] as? String
    }

    /// One request of a kind and what came of it.
    static func soakTurn(_ kind: Kind, port: Int, prompt: String, references: [String: String],
                         body: (String, Bool, Bool) throws -> Data, maxBody: Int) -> Outcome {
        do {
            switch kind {
            case .chat, .image:
                let withImage = kind == .image
                let reply = try LoopbackClient.send(port: port, path: "/v1/chat/completions", body: try body(prompt, withImage, false), timeout: 300)
                if reply.status == 429 { return Outcome(error: "429 queue full") }
                guard reply.status == 200 else { return Outcome(error: "\(kind.rawValue): HTTP \(reply.status)") }
                return Outcome(wrong: content(reply.body) != references["\(withImage) \(prompt)"])
            case .stream, .slowReader:
                let connection = try LoopbackClient.Connection(port: port, timeout: 300)
                let payload = try body(prompt, false, true)
                try connection.send(Data("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(payload.count)\r\n\r\n".utf8) + payload)
                var received = Data()
                var gaps: [Double] = []
                var last = DispatchTime.now().uptimeNanoseconds
                while true {
                    let chunk = try connection.read(limit: kind == .slowReader ? 64 : 4096)
                    if chunk.isEmpty { break }
                    let now = DispatchTime.now().uptimeNanoseconds
                    if String(decoding: chunk, as: UTF8.self).contains("data: ") { gaps.append(Double(now - last) / 1e9); last = now }
                    received += chunk
                    if kind == .slowReader { usleep(20_000) }
                }
                connection.close()
                let reply = try LoopbackClient.parse(received)
                if reply.status == 429 { return Outcome(error: "429 queue full") }
                guard reply.status == 200 else { return Outcome(error: "\(kind.rawValue): HTTP \(reply.status)") }
                let text = LoopbackClient.events(reply.body).objects.compactMap { event -> String? in
                    ((event["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any])?["content"] as? String
                }.joined()
                return Outcome(wrong: text != references["false \(prompt)"], gaps: Array(gaps.dropFirst()))
            case .disconnect:
                let connection = try LoopbackClient.Connection(port: port, timeout: 300)
                let payload = try body(prompt, true, true)
                try connection.send(Data("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(payload.count)\r\n\r\n".utf8) + payload)
                _ = try connection.read(limit: 200)
                connection.close()
                return Outcome()
            case .oversized:
                let reply = try LoopbackClient.send(port: port, path: "/v1/chat/completions", body: Data(repeating: 0x20, count: maxBody + 1), timeout: 300)
                return reply.status == 413 ? Outcome() : Outcome(error: "oversized body: HTTP \(reply.status), not 413")
            case .malformed:
                let reply = try LoopbackClient.send(port: port, path: "/v1/chat/completions", body: Data("{\"model\": \"x\", \"messages\": [".utf8), timeout: 300)
                return reply.status == 400 ? Outcome() : Outcome(error: "malformed body: HTTP \(reply.status), not 400")
            }
        } catch {
            return Outcome(error: "\(kind.rawValue): \(error)")
        }
    }
}

struct SoakFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The soak's counters, shared by the client threads.
final class SoakState: @unchecked Sendable {
    private let lock = NSLock()
    private var data = ServeSoak.Report()

    func record(_ kind: ServeSoak.Kind, _ outcome: ServeSoak.Outcome, seconds: Double) {
        lock.withLock {
            data.served[kind, default: 0] += 1
            if let error = outcome.error { data.errors[String(error.prefix(120)), default: 0] += 1 }
            if outcome.wrong { data.wrongAnswers += 1 }
            if outcome.error == nil, kind != .disconnect, kind != .oversized, kind != .malformed { data.latencies.append(seconds) }
            data.gaps += outcome.gaps
        }
    }

    func sample(_ at: Double, _ bytes: Int) { lock.withLock { data.rss.append((at, bytes)) } }

    var report: ServeSoak.Report { lock.withLock { data } }

    func summary(at seconds: Double) -> String {
        lock.withLock {
            let total = data.served.values.reduce(0, +)
            let errors = data.errors.values.reduce(0, +)
            let rss = Double(data.rss.last?.1 ?? 0) / 1e6
            return String(format: "%4.0f s: %d requests, %d errors, %d wrong answers, RSS %.1f MB", seconds, total, errors, data.wrongAnswers, rss)
        }
    }
}
