import ArgumentParser
import Foundation
import KosmosBenchmarks
import KosmosModels
import KosmosServer
import KosmosVision
import Logging

/// `kosmos serve`: the OpenAI-compatible HTTP server (docs/server.md).
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a Kosmos-1, Kosmos-2 or Kosmos-2.5 model over HTTP with the OpenAI chat-completions API.",
        discussion: "POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health. Binds to 127.0.0.1 unless --host says otherwise. See docs/server.md."
    )

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "The model id clients name (default: the directory's name).")
    var name: String?

    @Option(help: "Address to bind.")
    var host = "127.0.0.1"

    @Option(help: "Port (0: any free port).")
    var port = 8080

    @Option(name: .customLong("api-key"), help: "Require `Authorization: Bearer KEY` on /v1 routes.")
    var apiKey: String?

    @Flag(name: .customLong("allow-local-files"), help: "Accept image_url values that are local file paths.")
    var allowLocalFiles = false

    @Flag(name: .customLong("allow-remote-images"), help: "Fetch http(s) image URLs.")
    var allowRemoteImages = false

    @Option(name: .customLong("max-body-bytes"), help: "Largest request body.")
    var maxBodyBytes = 20 * 1024 * 1024

    @Option(name: .customLong("max-image-pixels"), help: "Largest image (width × height).")
    var maxImagePixels = 16_000_000

    @Option(name: .customLong("max-prompt-tokens"), help: "Longest prompt in tokens.")
    var maxPromptTokens = 4096

    @Option(name: .customLong("max-tokens-ceiling"), help: "Largest max_tokens a request may ask for.")
    var maxTokensCeiling = 2048

    @Option(name: .customLong("default-max-tokens"), help: "max_tokens when a request does not say.")
    var defaultMaxTokens = 256

    @Option(name: .customLong("max-batch"), help: "Sequences decoded together per step.")
    var maxBatch = 16

    @Option(name: .customLong("queue-size"), help: "Requests waiting for the batch before 429.")
    var queueSize = 64

    @Option(name: .customLong("prefill-chunk"), help: "Prompt positions prefilled between two decoding steps: a long prompt is prefilled in chunks of this many, interleaved with the other requests' tokens.")
    var prefillChunk = PromptPrefill.defaultChunkSize

    @Option(help: "Seconds a request may take.")
    var timeout: Double = 300

    @Option(name: .customLong("shutdown-grace"), help: "On SIGTERM or SIGINT: seconds the requests already accepted may take to finish (new ones get 503 at once); the rest are then ended and the server exits 0.")
    var shutdownGrace: Double = 10

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535") }
        for (name, value) in [("--max-body-bytes", maxBodyBytes), ("--max-image-pixels", maxImagePixels), ("--max-prompt-tokens", maxPromptTokens),
                              ("--max-tokens-ceiling", maxTokensCeiling), ("--default-max-tokens", defaultMaxTokens), ("--max-batch", maxBatch),
                              ("--prefill-chunk", prefillChunk)]
        where value < 1 {
            throw ValidationError("\(name) must be at least 1")
        }
        guard queueSize >= 0 else { throw ValidationError("--queue-size must not be negative") }
        guard shutdownGrace >= 0 else { throw ValidationError("--shutdown-grace must not be negative") }
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
        guard defaultMaxTokens <= maxTokensCeiling else { throw ValidationError("--default-max-tokens exceeds --max-tokens-ceiling") }
    }

    var serverOptions: ServerOptions {
        var o = ServerOptions()
        o.host = host
        o.port = port
        o.apiKey = apiKey
        o.allowLocalFiles = allowLocalFiles
        o.allowRemoteImages = allowRemoteImages
        o.maxBodyBytes = maxBodyBytes
        o.maxImagePixels = maxImagePixels
        o.maxPromptTokens = maxPromptTokens
        o.maxTokensCeiling = maxTokensCeiling
        o.defaultMaxTokens = defaultMaxTokens
        o.maxBatch = maxBatch
        o.prefillChunk = prefillChunk
        o.queueCapacity = queueSize
        o.requestTimeout = timeout
        o.shutdownGrace = shutdownGrace
        return o
    }

    func run() async throws {
        let options = serverOptions
        var logger = Logger(label: "kosmos.serve")
        logger.logLevel = .info
        let served = try ServedModel(directory: modelOptions.directory, tokenizer: modelOptions.tokenizerFile,
                                     name: name, maxImagePixels: options.maxImagePixels,
                                     dtype: try modelOptions.dtype(), imageBackend: try modelOptions.backend())
        let scheduler = Scheduler(model: served, maxBatch: options.maxBatch, queueCapacity: options.queueCapacity,
                                  prefillChunk: options.prefillChunk, logger: logger)
        // A test hook (docs/server.md, Tests): hold the loop from the start, so that a test in
        // another process knows a request is still in flight whatever the machine's speed.
        switch ProcessInfo.processInfo.environment["KOSMOS_SERVE_TEST_HOLD"] {
        case "steps": scheduler.hold(.steps)
        case "admission": scheduler.hold(.admission)
        default: break
        }
        let server = KosmosHTTPServer(scheduler: scheduler, options: options, logger: logger)
        let host = options.host, name = served.name
        try await server.run(handleSignals: true) { port in
            print("serving \(name) on http://\(host):\(port)/v1")
            fflush(nil)
        }
    }
}

/// `kosmos bench serve`: requests/s and latency through the HTTP server over loopback.
struct ServeBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Requests/s and p50/p99 latency of `kosmos serve` at several client concurrencies (loopback, bounded).",
        discussion: "Starts the server in-process on 127.0.0.1 (a free port), then for each concurrency sends --requests chat completions (greedy, ignore_eos, --max-tokens each), and once more at the highest concurrency with --max-batch 1 (one request at a time) for the batching speed-up."
    )

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "Client concurrencies, comma-separated.")
    var clients = "1,4,16"

    @Option(help: "Requests per concurrency level.")
    var requests = 32

    @Option(name: .customLong("max-tokens"), help: "New tokens per request.")
    var maxTokens = 32

    @Option(help: "Stop issuing requests at a level after this many seconds.")
    var duration: Double = 120

    @Option(name: .customLong("long-prompt"), help: "Instead: a prompt of this many tokens arrives while the --clients (the first level) stream; the other clients' inter-token gaps while it is prefilled, in chunks of --prefill-chunk and in one piece.")
    var longPrompt: Int?

    @Option(name: .customLong("prefill-chunk"), help: "Prompt positions per loop for --long-prompt.")
    var prefillChunk = PromptPrefill.defaultChunkSize

    @Option(help: "Instead: a soak of this many seconds with the first --clients level: chat, streamed and image requests (every answer checked against the same request made alone first) mixed with clients that disconnect mid-stream, read slowly, or send oversized or malformed bodies; errors by kind, latencies, inter-token gaps and RSS over time.")
    var soak: Double?

    func validate() throws {
        if let longPrompt, longPrompt < 1 { throw ValidationError("--long-prompt takes at least 1 token") }
        if let soak, !(soak > 0 && soak <= 86_400) { throw ValidationError("--soak takes 1 second to a day") }
        guard prefillChunk >= 1 else { throw ValidationError("--prefill-chunk \(prefillChunk): at least 1 position") }
        let levels = clients.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !levels.isEmpty, levels.allSatisfy({ ($0 ?? 0) >= 1 && ($0 ?? 0) <= 64 }) else {
            throw ValidationError("--clients takes concurrencies from 1 to 64, comma-separated")
        }
        guard requests >= 1 && requests <= 10_000 else { throw ValidationError("--requests must be 1...10000") }
        guard maxTokens >= 1 && maxTokens <= 1024 else { throw ValidationError("--max-tokens must be 1...1024") }
        guard duration > 0 && duration <= 3600 else { throw ValidationError("--duration must be in (0, 3600]") }
    }

    func run() async throws {
        let levels = clients.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        var logger = Logger(label: "kosmos.bench")
        logger.logLevel = .warning
        var options = ServerOptions()
        options.port = 0
        options.maxBatch = max(16, levels.max() ?? 16)
        options.queueCapacity = 1024
        let served = try ServedModel(directory: modelOptions.directory, tokenizer: modelOptions.tokenizerFile,
                                     maxImagePixels: options.maxImagePixels,
                                     dtype: try modelOptions.dtype(), imageBackend: try modelOptions.backend())
        if let soak {
            try await runSoak(served: served, options: options, logger: logger, clients: levels.first ?? 1, seconds: soak)
            return
        }
        if let longPrompt {
            let streaming = levels.first ?? 1
            guard longPrompt + 1 <= served.contextLength else {
                throw ValidationError("--long-prompt \(longPrompt) does not fit the model's \(served.contextLength) positions")
            }
            print("model \(served.name): decoder \(served.decoder.summary); \(streaming) requests decoding, one \(longPrompt)-token prompt arrives")
            fflush(nil)
            for chunk in [prefillChunk, longPrompt] {
                let r = try await ServeBenchmark.longPromptInterference(model: served, clients: streaming, longPrompt: longPrompt,
                                                                        chunk: chunk, logger: logger)
                print(String(format: "prefill chunk %6d: long prompt's first token after %.2f s; the others' inter-token gaps meanwhile p50 %.1f ms, p99 %.1f ms, longest %.1f ms (%d gaps; before it arrived: p99 %.1f ms)",
                             chunk, r.prefillSeconds, 1000 * r.p50, 1000 * r.p99, 1000 * r.longest, r.gaps.count, 1000 * r.baselineP99))
                fflush(nil)
            }
            return
        }
        print("model \(served.name): decoder \(served.decoder.summary); \(requests) requests per level, \(maxTokens) new tokens each")
        var batched: [Int: ServeBenchmark.Result] = [:]
        for batch in [options.maxBatch, 1] {
            options.maxBatch = batch
            let result = try await ServeBenchmark.measure(model: served, options: options, logger: logger,
                                                          levels: batch == 1 ? [levels.max() ?? 1] : levels,
                                                          requests: requests, maxTokens: maxTokens, duration: duration)
            for r in result {
                print(String(format: "max batch %2d, %2d clients: %6.2f req/s, %7.1f tokens/s, p50 %.3f s, p99 %.3f s (%d ok, %d failed, mean batch %.1f)",
                             batch, r.clients, r.requestsPerSecond, r.tokensPerSecond, r.p50, r.p99, r.completed, r.failed, r.meanBatch))
                fflush(nil)
                if batch != 1 { batched[r.clients] = r } else if let b = batched[r.clients] {
                    print(String(format: "batching speed-up at %d clients: %.2f× the req/s of one request at a time", r.clients,
                                 b.requestsPerSecond / max(r.requestsPerSecond, 1e-9)))
                }
            }
        }
    }
}

extension ServeBench {
    func runSoak(served: ServedModel, options: ServerOptions, logger: Logger, clients: Int, seconds: Double) async throws {
        var options = options
        options.maxBatch = max(16, clients)
        options.maxBodyBytes = 1 << 20
        let image = try PNGEncoder.encode(SyntheticShapes.scene(seed: 1, width: 64, height: 64).image)
        print("soak: \(served.name), \(clients) clients, \(Int(seconds)) s, \(maxTokens) new tokens per request")
        fflush(nil)
        let report = try await ServeSoak.run(model: served, options: options, logger: logger, clients: clients, seconds: seconds,
                                             maxTokens: maxTokens, image: image) { line in print(line); fflush(nil) }
        let total = report.served.values.reduce(0, +)
        let kinds: [String] = ServeSoak.Kind.allCases.map { kind in "\(kind.rawValue) \(report.served[kind] ?? 0)" }
        print("served \(total) requests in \(String(format: "%.0f", report.seconds)) s: \(kinds.joined(separator: ", "))")
        let errors = report.errors.values.reduce(0, +)
        let listed: [String] = report.errors.sorted { $0.value > $1.value }.map { entry in "\(entry.key) ×\(entry.value)" }
        print("unexpected outcomes: \(errors)\(errors == 0 ? "" : ": " + listed.joined(separator: "; "))")
        print("wrong answers (greedy answers unequal to the same request alone): \(report.wrongAnswers)")
        print(String(format: "latency p50 %.3f s, p99 %.3f s; inter-token gap p50 %.1f ms, p99 %.1f ms",
                     ServeBenchmark.percentile(report.latencies, 0.5), ServeBenchmark.percentile(report.latencies, 0.99),
                     1000 * ServeBenchmark.percentile(report.gaps, 0.5), 1000 * ServeBenchmark.percentile(report.gaps, 0.99)))
        let afterWarmup = report.rss.filter { $0.0 >= report.warmup }.map(\.1)
        print(String(format: "RSS: %.1f MB at the start, %.1f MB after the %.0f s warm-up, %.1f MB at the end (largest %.1f MB): %+.2f%% after warm-up",
                     Double(report.rss.first?.1 ?? 0) / 1e6, Double(afterWarmup.first ?? 0) / 1e6, report.warmup,
                     Double(report.rss.last?.1 ?? 0) / 1e6, Double(report.rss.map(\.1).max() ?? 0) / 1e6, report.rssGrowth))
        if errors > 0 || report.wrongAnswers > 0 { throw ExitCode(1) }
    }
}
