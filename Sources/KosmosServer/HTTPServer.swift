import Foundation
import KosmosAudio
import KosmosVision
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Hummingbird
import KosmosModels
import KosmosTensor
import Logging
import NIOCore
import ServiceLifecycle

/// What `kosmos serve` can be told; the defaults are the documented limits (docs/server.md).
public struct ServerOptions: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    /// Largest request body accepted (413 beyond).
    public var maxBodyBytes = 20 * 1024 * 1024
    /// Largest decoded image, width × height.
    public var maxImagePixels = 16_000_000
    /// Longest prompt in tokens (also bounded by the model's context).
    public var maxPromptTokens = 4096
    /// Ceiling on max_tokens; a larger request is refused.
    public var maxTokensCeiling = 2048
    /// max_tokens when the request does not say.
    public var defaultMaxTokens = 256
    /// Requests waiting for a place in the batch before 429.
    public var queueCapacity = 64
    /// Sequences decoded together in one step.
    public var maxBatch = 16
    /// Prompt positions prefilled between two decoding steps (a long prompt in chunks of this many).
    public var prefillChunk = PromptPrefill.defaultChunkSize
    /// Seconds a request may take from arrival to its last token.
    public var requestTimeout: Double = 300
    /// When set, every /v1 request needs `Authorization: Bearer <key>`.
    public var apiKey: String?
    public var allowLocalFiles = false
    public var allowRemoteImages = false
    /// On SIGTERM/SIGINT (or `shutdown()`): seconds the requests already accepted may take to
    /// finish before they are ended with a 503 error; new requests get 503 at once.
    public var shutdownGrace: Double = 10

    public init() {}
}

/// The request context: Hummingbird's core storage.
public struct ServerContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }
}

/// The OpenAI-compatible HTTP front of a `Scheduler`: routes, validation, auth, logging.
public final class KosmosHTTPServer: Sendable {
    public let scheduler: Scheduler
    public let options: ServerOptions
    let logger: Logger
    let created = Int(Date().timeIntervalSince1970)
    /// Set by `run`: what `shutdown()` triggers.
    let shutdownTrigger = ShutdownTrigger()
    var model: ServedModel { scheduler.model }

    public init(scheduler: Scheduler, options: ServerOptions, logger: Logger) {
        self.scheduler = scheduler
        self.options = options
        self.logger = logger
    }

    /// The Hummingbird application; `onServerRunning` hears the bound channel (its port).
    public func application(onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }) -> some ApplicationProtocol {
        let router = Router(context: ServerContext.self)
        router.add(middleware: RequestLog(logger: logger, apiKey: options.apiKey))
        router.get("/") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
                     body: .init(byteBuffer: ByteBuffer(string: ChatPage.html)))
        }
        router.get("/health") { _, _ in
            try self.json(["status": "ok"])
        }
        router.get("/v1/models") { _, _ in
            try self.json(ModelList(data: [.init(id: self.model.name, created: self.created,
                                                 kosmos: .init(grounding: self.model.supportsGrounding, contextLength: self.model.contextLength))]))
        }
        router.post("/v1/chat/completions") { request, context in
            await self.respond(request, context: context, chat: true)
        }
        router.post("/v1/completions") { request, context in
            await self.respond(request, context: context, chat: false)
        }
        return Application(router: router,
                           configuration: .init(address: .hostname(options.host, port: options.port), serverName: "kosmos"),
                           onServerRunning: onServerRunning, logger: logger)
    }

    func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(value)
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    func errorResponse(_ error: APIError) -> Response {
        (try? json(error, status: HTTPResponse.Status(code: error.status))) ?? Response(status: .internalServerError)
    }

    /// A completion request from body to response; every failure becomes an OpenAI error object.
    ///
    /// A client that goes away cancels its generation wherever the request is: queued, decoding or
    /// streaming. The connection's inbound side is watched (`consumeWithInboundCloseHandler`) from
    /// the first byte of the body until the answer is written, so its end (the client closed or
    /// reset the connection) cancels the job at once, not when a write fails. A streamed answer is
    /// written after the handler returns, so the watch runs in a task of its own that the stream's
    /// writer waits for before it ends (the watch and the server must not read the connection at
    /// the same time). As with Hummingbird's own handler: a client that half-closes its sending
    /// side while it waits is taken as gone, and the connection closes after each completion.
    func respond(_ request: Request, context: ServerContext, chat: Bool) async -> Response {
        let cancellation = CancellationBox()
        let (responses, respond) = AsyncStream<Response>.makeStream()
        let (streamEnd, endStream) = AsyncStream<Void>.makeStream()
        let (watchEnd, endWatch) = AsyncStream<Void>.makeStream()
        Task {
            do {
                let response: Response? = try await request.body.consumeWithInboundCloseHandler { body in
                    let buffer: ByteBuffer
                    do {
                        buffer = try await body.collect(upTo: self.options.maxBodyBytes)
                    } catch is NIOTooManyBytesError {
                        throw APIError(status: 413, message: "the request body is larger than \(self.options.maxBodyBytes) bytes")
                    }
                    let parsed = try await self.parse(Data(buffer.readableBytesView), chat: chat)
                    let (job, events) = try self.scheduler.submit(prompt: parsed.prompt, options: parsed.options, stops: parsed.stops,
                                                                  grounding: parsed.grounding, timeout: self.options.requestTimeout)
                    cancellation.set(job)
                    guard parsed.stream else {
                        return try await self.completeResponse(events: events, parsed: parsed, chat: chat)
                    }
                    respond.yield(self.streamResponse(job: job, events: events, parsed: parsed, chat: chat) {
                        endStream.finish()
                        for await _ in watchEnd {}
                    })
                    for await _ in streamEnd {}
                    return nil
                } onInboundClosed: {
                    cancellation.cancel()
                    endStream.finish()
                }
                if let response { respond.yield(response) }
            } catch let error as APIError {
                respond.yield(self.errorResponse(error))
            } catch {
                respond.yield(self.errorResponse(APIError(status: 400, message: "\(error)")))
            }
            endWatch.finish()
            respond.finish()
        }
        for await response in responses { return response }
        return errorResponse(APIError(status: 500, message: "no response was made", type: "server_error"))
    }

    struct Parsed {
        var prompt: ServedModel.Prompt
        var options: GenerationOptions
        var stops: [String]
        var stream: Bool
        var includeUsage: Bool
        var grounding: Bool
        var id: String
    }

    /// Validates a request body and builds the prompt (images decoded) and generation options.
    func parse(_ data: Data, chat: Bool) async throws -> Parsed {
        let decoder = JSONDecoder()
        let fields: SamplingFields
        do {
            fields = try decoder.decode(SamplingFields.self, from: data)
        } catch {
            throw APIError.invalid("invalid request: \(describe(error))")
        }
        guard let requested = fields.model else { throw APIError.invalid("missing field 'model'", param: "model") }
        guard requested == model.name else {
            throw APIError(status: 404, message: "the model '\(requested)' does not exist; this server has '\(model.name)'",
                           param: "model", code: "model_not_found")
        }
        if let n = fields.n, n != 1 { throw APIError.invalid("only n = 1 is supported", param: "n") }
        var options = GenerationOptions()
        let maxTokens = fields.maxCompletionTokens ?? fields.maxTokens ?? options.maxNewTokens
        if fields.maxCompletionTokens == nil && fields.maxTokens == nil { options.maxNewTokens = self.options.defaultMaxTokens } else {
            guard maxTokens >= 1 else { throw APIError.invalid("max_tokens must be at least 1", param: "max_tokens") }
            guard maxTokens <= self.options.maxTokensCeiling else {
                throw APIError.invalid("max_tokens \(maxTokens) is above this server's ceiling of \(self.options.maxTokensCeiling)", param: "max_tokens")
            }
            options.maxNewTokens = maxTokens
        }
        if let t = fields.temperature {
            guard t.isFinite, t >= 0, t <= 2 else { throw APIError.invalid("temperature must be between 0 and 2", param: "temperature") }
            options.temperature = Float(t)
        }
        if let p = fields.topP {
            guard p.isFinite, p > 0, p <= 1 else { throw APIError.invalid("top_p must be in (0, 1]", param: "top_p") }
            options.topP = p < 1 ? Float(p) : nil
        }
        if let seed = fields.seed { options.seed = UInt64(bitPattern: seed) }
        if fields.ignoreEOS == true { options.stopAtEOS = false }
        let stops = fields.stop?.values ?? []
        guard stops.count <= 4 else { throw APIError.invalid("at most 4 stop sequences", param: "stop") }
        let grounding = fields.grounding ?? false
        if grounding && !model.supportsGrounding { throw APIError.invalid("grounding needs a Kosmos-2 model", param: "grounding") }

        var text = ""
        var images: [Tensor] = [], clips: [Tensor] = [], videos: [Tensor] = []
        if chat {
            let request: ChatCompletionRequest
            do { request = try decoder.decode(ChatCompletionRequest.self, from: data) } catch {
                throw APIError.invalid("invalid request: \(describe(error))", param: "messages")
            }
            guard !request.messages.isEmpty else { throw APIError.invalid("messages must not be empty", param: "messages") }
            var turns: [String] = []
            for (i, message) in request.messages.enumerated() {
                guard ["system", "user", "assistant", "developer"].contains(message.role) else {
                    throw APIError.invalid("messages[\(i)].role '\(message.role)' is not system, developer, user or assistant", param: "messages")
                }
                switch message.content {
                case .none:
                    turns.append("")
                case .text(let s)?:
                    turns.append(s)
                case .parts(let parts)?:
                    var turn = ""
                    for (j, part) in parts.enumerated() {
                        switch part.type {
                        case "text":
                            turn += part.text ?? ""
                        case "image_url":
                            guard let url = part.imageURL?.url else {
                                throw APIError.invalid("messages[\(i)].content[\(j)]: image_url part without a url", param: "messages")
                            }
                            images.append(try await loadImage(url, where: "messages[\(i)].content[\(j)]"))
                            turn += "<image>"
                        case "video_url":
                            guard let url = part.videoURL?.url else {
                                throw APIError.invalid("messages[\(i)].content[\(j)]: video_url part without a url", param: "messages")
                            }
                            videos.append(try await loadVideo(url, where: "messages[\(i)].content[\(j)]"))
                            turn += "<video>"
                        case "input_audio":
                            clips.append(try loadAudio(part.inputAudio, where: "messages[\(i)].content[\(j)]"))
                            turn += "<audio>"
                        default:
                            throw APIError.invalid("messages[\(i)].content[\(j)]: unsupported part type '\(part.type)'", param: "messages")
                        }
                    }
                    turns.append(turn)
                }
            }
            // The conversation as one text, turns joined by newlines, as `kosmos chat` keeps it.
            text = turns.joined(separator: "\n")
        } else {
            do { text = try decoder.decode(CompletionRequest.self, from: data).prompt } catch {
                throw APIError.invalid("invalid request: \(describe(error))", param: "prompt")
            }
        }
        let prompt = try model.prompt(text: text, images: images, audio: clips, videos: videos, grounding: grounding)
        let limit = min(self.options.maxPromptTokens, model.contextLength - 1)
        guard prompt.tokens.count <= limit else {
            throw APIError.invalid("the prompt has \(prompt.tokens.count) tokens; this server takes at most \(limit)",
                                   param: chat ? "messages" : "prompt", code: "context_length_exceeded")
        }
        guard !prompt.tokens.isEmpty else { throw APIError.invalid("the prompt is empty", param: chat ? "messages" : "prompt") }
        // The context bounds the new tokens too (the batch ends a sequence whose context is full).
        options.maxNewTokens = min(options.maxNewTokens, model.contextLength - prompt.tokens.count)
        return Parsed(prompt: prompt, options: options, stops: stops, stream: fields.stream ?? false,
                      includeUsage: fields.streamOptions?.includeUsage ?? false, grounding: grounding,
                      id: (chat ? "chatcmpl-" : "cmpl-") + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased())
    }

    /// The formats an `input_audio` part may name: OpenAI's two, and the others FFmpeg reads here.
    static let audioFormats = ["wav", "mp3", "flac", "ogg", "opus", "m4a", "aac"]

    /// An audio clip from an `input_audio` part's base64 data.
    func loadAudio(_ part: ContentPart.InputAudio?, where place: String) throws -> Tensor {
        guard let part else { throw APIError.invalid("\(place): input_audio part without an input_audio object {data, format}", param: "messages") }
        if let format = part.format, !Self.audioFormats.contains(format.lowercased()) {
            throw APIError.invalid("\(place): input_audio format '\(format)' is not one of \(Self.audioFormats.joined(separator: ", "))", param: "messages")
        }
        guard let bytes = Data(base64Encoded: part.data, options: .ignoreUnknownCharacters), !bytes.isEmpty else {
            throw APIError.invalid("\(place): input_audio data is not valid base64", param: "messages")
        }
        do {
            return try model.audio(data: bytes, source: place)
        } catch let error as APIError {
            throw error
        } catch let error as AudioError {
            throw APIError.invalid(error.description, param: "messages")   // it names the part already
        } catch {
            throw APIError.invalid("\(place): \(error)", param: "messages")
        }
    }

    /// An image from a data: URL (base64 PNG or JPEG), a local file (--allow-local-files) or
    /// http(s) (--allow-remote-images).
    func loadImage(_ url: String, where place: String) async throws -> Tensor {
        let bytes = try await loadBytes(url, where: place, example: "data:image/png;base64,...", remote: true)
        do {
            return try model.image(data: bytes, source: place)
        } catch let error as APIError {
            throw error
        } catch {
            throw APIError.invalid("\(place): \(error)", param: "messages")
        }
    }

    /// A video's frames from a data: URL (base64 MP4, WebM, ...) or a local file (--allow-local-files).
    func loadVideo(_ url: String, where place: String) async throws -> Tensor {
        let bytes = try await loadBytes(url, where: place, example: "data:video/mp4;base64,...", remote: false)
        do {
            return try model.video(data: bytes, source: place)
        } catch let error as APIError {
            throw error
        } catch let error as VideoError {
            throw APIError.invalid(error.description, param: "messages")   // it names the part already
        } catch {
            throw APIError.invalid("\(place): \(error)", param: "messages")
        }
    }

    /// The bytes a content part's URL names: a base64 data: URL, a local file (--allow-local-files),
    /// or (`remote`, with --allow-remote-images) http(s).
    func loadBytes(_ url: String, where place: String, example: String, remote: Bool) async throws -> Data {
        let bytes: Data
        if url.hasPrefix("data:") {
            guard let comma = url.firstIndex(of: ","), url[..<comma].hasSuffix(";base64") else {
                throw APIError.invalid("\(place): a data: URL must be base64 (\(example))", param: "messages")
            }
            guard let decoded = Data(base64Encoded: String(url[url.index(after: comma)...]), options: .ignoreUnknownCharacters),
                  !decoded.isEmpty else {
                throw APIError.invalid("\(place): the data: URL is not valid base64", param: "messages")
            }
            bytes = decoded
        } else if url.hasPrefix("http://") || url.hasPrefix("https://") {
            guard remote else { throw APIError.invalid("\(place): only data: URLs and local files (--allow-local-files) are read for this part", param: "messages") }
            guard options.allowRemoteImages, let remote = URL(string: url) else {
                throw APIError.invalid("\(place): remote images are refused (start the server with --allow-remote-images)", param: "messages")
            }
            bytes = try await fetch(remote, place: place)
        } else {
            guard options.allowLocalFiles else {
                throw APIError.invalid("\(place): local files are refused (start the server with --allow-local-files); send a data: URL", param: "messages")
            }
            let path = url.hasPrefix("file://") ? String(url.dropFirst(7)) : url
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
                  (attributes[.size] as? NSNumber)?.intValue ?? Int.max <= options.maxBodyBytes,
                  let data = FileManager.default.contents(atPath: path) else {
                throw APIError.invalid("\(place): cannot read \(path)", param: "messages")
            }
            bytes = data
        }
        return bytes
    }

    func fetch(_ url: URL, place: String) async throws -> Data {
        var request = URLRequest(url: url)
        request.timeoutInterval = 30
        let data: Data, response: URLResponse
        do {
            (data, response) = try await URLSession.shared.data(for: request)
        } catch {
            throw APIError.invalid("\(place): fetching \(url) failed: \(error.localizedDescription)", param: "messages")
        }
        guard (response as? HTTPURLResponse)?.statusCode == 200, data.count <= options.maxBodyBytes else {
            throw APIError.invalid("\(place): fetching \(url) did not give an image", param: "messages")
        }
        return data
    }

    /// Waits for the whole generation and answers with one JSON object.
    func completeResponse(events: AsyncStream<GenerationEvent>, parsed: Parsed, chat: Bool) async throws -> Response {
        for await event in events {
            switch event {
            case .text:
                continue
            case .failed(let error):
                throw error
            case .finished(let done):
                let usage = Usage(promptTokens: done.promptTokens, completionTokens: done.completionTokens)
                if chat {
                    return try json(ChatCompletion(id: parsed.id, created: Int(Date().timeIntervalSince1970), model: model.name,
                                                   choices: [ChatChoice(index: 0, message: AssistantMessage(content: done.text, entities: done.entities),
                                                                        finishReason: done.finishReason)],
                                                   usage: usage))
                }
                return try json(TextCompletion(id: parsed.id, created: Int(Date().timeIntervalSince1970), model: model.name,
                                               choices: [CompletionChoice(index: 0, text: done.text, finishReason: done.finishReason)],
                                               usage: usage))
            }
        }
        // The stream ended without a result: the request was cancelled (its client left).
        throw APIError(status: 499, message: "the request was cancelled", code: "cancelled")
    }

    /// Server-sent events: `data: {chunk}` per text delta, a last chunk with finish_reason (and a
    /// usage chunk when stream_options.include_usage), then `data: [DONE]`. A write that fails
    /// (the client went away) cancels the generation, as the inbound watch of `respond` does;
    /// `ended` runs when the writer is done, written or failed.
    func streamResponse(job: GenerationJob, events: AsyncStream<GenerationEvent>, parsed: Parsed, chat: Bool,
                        ended: @escaping @Sendable () async -> Void) -> Response {
        let name = model.name, created = Int(Date().timeIntervalSince1970), logger = self.logger
        let object = chat ? "chat.completion.chunk" : "text_completion"
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        @Sendable func event(_ value: some Encodable) throws -> ByteBuffer {
            var data = Data("data: ".utf8)
            data += try encoder.encode(value)
            data += Data("\n\n".utf8)
            return ByteBuffer(bytes: data)
        }
        @Sendable func chunk(text: String?, role: Bool = false, entities: [GroundedEntity]? = nil, finish: String? = nil) throws -> ByteBuffer {
            if chat {
                let delta = ChatDelta(role: role ? "assistant" : nil, content: text, entities: entities)
                return try event(StreamChunk(id: parsed.id, object: object, created: created, model: name,
                                             choices: [ChunkChoice(index: 0, payload: delta, payloadKey: "delta", finishReason: finish)], usage: nil))
            }
            return try event(StreamChunk(id: parsed.id, object: object, created: created, model: name,
                                         choices: [ChunkChoice(index: 0, payload: text ?? "", payloadKey: "text", finishReason: finish)], usage: nil))
        }
        let includeUsage = parsed.includeUsage
        let body = ResponseBody { writer in
            do {
                if chat { try await writer.write(try chunk(text: "", role: true)) }
                for await item in events {
                    switch item {
                    case .text(let delta):
                        try await writer.write(try chunk(text: delta))
                    case .failed(let error):
                        try await writer.write(try event(error))
                    case .finished(let done):
                        try await writer.write(try chunk(text: chat ? nil : "", entities: done.entities, finish: done.finishReason))
                        if includeUsage {
                            let usage = Usage(promptTokens: done.promptTokens, completionTokens: done.completionTokens)
                            try await writer.write(try event(StreamChunk<ChatDelta>(id: parsed.id, object: object, created: created,
                                                                                    model: name, choices: [], usage: usage)))
                        }
                        logger.info("stream finished", metadata: ["tokens": "\(done.completionTokens)", "prompt_tokens": "\(done.promptTokens)"])
                    }
                }
                try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                try await writer.finish(nil)
            } catch {
                job.cancel()
                await ended()
                throw error
            }
            await ended()
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }
}

/// Holds the job of a request once it exists, so a client that leaves earlier or later cancels it.
final class CancellationBox: @unchecked Sendable {
    private let lock = NSLock()
    private var job: GenerationJob?
    private var cancelled = false

    func set(_ job: GenerationJob) {
        lock.lock()
        self.job = job
        let cancel = cancelled
        lock.unlock()
        if cancel { job.cancel() }
    }

    func cancel() {
        lock.lock()
        cancelled = true
        let job = self.job
        lock.unlock()
        job?.cancel()
    }
}

/// Logs each request (method, path, status, latency) and checks the bearer token of /v1 routes.
struct RequestLog: RouterMiddleware {
    typealias Context = ServerContext
    let logger: Logger
    let apiKey: String?

    func handle(_ request: Request, context: ServerContext, next: (Request, ServerContext) async throws -> Response) async throws -> Response {
        let start = DispatchTime.now().uptimeNanoseconds
        var response: Response
        if let apiKey, request.uri.path.hasPrefix("/v1"), request.headers[.authorization] != "Bearer \(apiKey)" {
            let error = APIError(status: 401, message: "missing or wrong API key (Authorization: Bearer ...)", type: "authentication_error",
                                 code: "invalid_api_key")
            let data = (try? JSONEncoder().encode(error)) ?? Data()
            response = Response(status: .unauthorized, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
        } else {
            do {
                response = try await next(request, context)
            } catch let error as HTTPResponseError {
                // Hummingbird's own errors (no such route: 404; wrong method: 405) as OpenAI error objects.
                let api = APIError(status: Int(error.status.code), message: "\(request.method) \(request.uri.path): \(error.status.reasonPhrase)",
                                   type: error.status.code == 404 ? "not_found_error" : "invalid_request_error")
                let data = (try? JSONEncoder().encode(api)) ?? Data()
                response = Response(status: error.status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
            }
        }
        let milliseconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        logger.info("\(request.method) \(request.uri.path) \(response.status.code)",
                    metadata: ["latency_ms": "\(String(format: "%.1f", milliseconds))"])
        return response
    }
}

extension KosmosHTTPServer {
    /// Starts the scheduler and serves until the task is cancelled (or, with `handleSignals`,
    /// SIGINT/SIGTERM); `onListening` hears the bound port (useful with port 0).
    public func run(handleSignals: Bool, onListening: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        scheduler.start()
        defer { scheduler.stop() }
        let app = application { channel in
            if let port = channel.localAddress?.port { onListening(port) }
        }
        // Shut down in reverse order: first the drain (new requests refused, accepted ones given
        // the grace period, the rest ended), then the application (no new connections, the open
        // ones finish — quickly, as their requests have ended).
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: app), .init(service: SchedulerDrain(scheduler: scheduler, grace: options.shutdownGrace, logger: logger))],
            gracefulShutdownSignals: handleSignals ? [.sigterm, .sigint] : [],
            logger: logger))
        shutdownTrigger.set(group)
        try await group.run()
        logger.info("shut down: \(scheduler.stats.completed) requests completed, \(scheduler.stats.failed) ended unfinished")
    }

    /// What SIGTERM does, for an embedding application or a test: stop accepting, let accepted
    /// requests finish within `shutdownGrace`, end the rest, return from `run`.
    public func shutdown() async {
        await shutdownTrigger.trigger()
    }
}

/// The service group of a running server, once `run` has made it.
final class ShutdownTrigger: @unchecked Sendable {
    private let lock = NSLock()
    private var group: ServiceGroup?

    func set(_ group: ServiceGroup) { lock.withLock { self.group = group } }

    func trigger() async {
        guard let group = lock.withLock({ self.group }) else { return }
        await group.triggerGracefulShutdown()
    }
}

/// The scheduler's side of a graceful shutdown: runs until shutdown is asked for, then refuses
/// new requests, waits up to `grace` seconds for the accepted ones to finish, and ends the rest.
struct SchedulerDrain: Service {
    let scheduler: Scheduler
    let grace: Double
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        let open = scheduler.beginDraining()
        logger.info("shutting down: \(open) request(s) in flight, \(grace) s to finish")
        let deadline = Date().addingTimeInterval(grace)
        while scheduler.inFlight > 0 && Date() < deadline {
            try? await Task.sleep(nanoseconds: 10_000_000)
        }
        let left = scheduler.inFlight
        if left > 0 { logger.warning("ending \(left) request(s) unfinished after the \(grace) s grace") }
        scheduler.stop()
    }
}
