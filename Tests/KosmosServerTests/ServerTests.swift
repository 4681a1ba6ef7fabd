import Foundation
import KosmosBenchmarks
import XCTest
import KosmosModels
import KosmosTensor
import KosmosTokenizers
import KosmosVision
import Logging
@testable import KosmosServer

/// The server over real HTTP on loopback, with a tiny random Kosmos-1 model written to a temporary
/// directory (config.json, model.safetensors, a SentencePiece tokenizer from the fixtures).
final class ServerTests: XCTestCase {
    static let modelName = "kosmos-test"
    nonisolated(unsafe) static var shared: (port: Int, server: KosmosHTTPServer, task: Task<Void, Error>, directory: URL)?

    static func fixtures() -> URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")
    }

    /// A tiny Kosmos-1 directory: vocabulary = the tokenizer's + <image>, </image>, <audio>,
    /// </audio> (the audio path of kosmos_audio_tiny_config.json).
    static func makeModelDirectory() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kosmos-server-test-\(UUID().uuidString)")
        let tokenizerFile = fixtures().appendingPathComponent("tokenizers/uni_nmt_nfkc.model")
        let tokenizer = try TokenizerLoader.load(tokenizerFile)
        let v = tokenizer.vocabularySize
        // The one tiny configuration (Tests/Fixtures/kosmos_tiny_config.json) with this tokenizer's
        // vocabulary plus <image>, </image>, <audio>, </audio>, and 256 positions.
        let configurationFile = fixtures().appendingPathComponent("kosmos_tiny_config.json")
        var c = try ModelDirectory.decode(KosmosConfiguration.self, from: Data(contentsOf: configurationFile), file: configurationFile)
        let audioFile = fixtures().appendingPathComponent("kosmos_audio_tiny_config.json")
        c.audio = try ModelDirectory.decode(KosmosConfiguration.self, from: Data(contentsOf: audioFile), file: audioFile).audio
        c.audio!.audioTokenId = v + 2
        c.audio!.audioEndTokenId = v + 3
        var video = VideoConfiguration()
        video.numFrames = 3
        video.maxFrames = 3
        video.videoTokenId = v + 4
        video.videoEndTokenId = v + 5
        c.video = video
        c.resampler.numMediaEmbeds = 3
        c.vocabSize = v + 6
        c.decoder.vocabSize = v + 6
        c.decoder.paddingIdx = tokenizer.specialIds.pad ?? 0
        c.decoder.maxTargetPositions = 256
        c.imageTokenId = v
        c.imageEndTokenId = v + 1
        c.padTokenId = tokenizer.specialIds.pad ?? 0
        c.bosTokenId = nil
        c.eosTokenId = tokenizer.specialIds.eos ?? 1
        let model = try KosmosModel(configuration: c, generator: RandomGenerator(seed: 3))
        try model.save(directory: directory)
        try FileManager.default.copyItem(at: tokenizerFile, to: directory.appendingPathComponent("tokenizer.model"))
        return directory
    }

    /// One server for the whole class (loading and binding once), on a free port.
    func server() throws -> (port: Int, server: KosmosHTTPServer) {
        if let shared = Self.shared { return (shared.port, shared.server) }
        let directory = try Self.makeModelDirectory()
        var options = ServerOptions()
        options.port = 0
        options.maxBodyBytes = 1 << 20
        options.maxTokensCeiling = 64
        options.defaultMaxTokens = 16
        options.queueCapacity = 64
        let served = try ServedModel(directory: directory, name: Self.modelName, maxImagePixels: options.maxImagePixels)
        var logger = Logger(label: "kosmos.test")
        logger.logLevel = .warning
        let scheduler = Scheduler(model: served, maxBatch: 16, queueCapacity: options.queueCapacity, logger: logger)
        let server = KosmosHTTPServer(scheduler: scheduler, options: options, logger: logger)
        let ready = DispatchSemaphore(value: 0)
        let port = LockedBox(0)
        let task = Task { try await server.run(handleSignals: false) { p in port.value = p; ready.signal() } }
        guard ready.wait(timeout: .now() + 60) == .success else { throw TestFailure(message: "the server did not start in 60 s") }
        Self.shared = (port.value, server, task, directory)
        return (port.value, server)
    }

    override class func tearDown() {
        if let shared {
            shared.task.cancel()
            try? FileManager.default.removeItem(at: shared.directory)
        }
        shared = nil
    }

    func post(_ path: String, _ object: [String: Any], port: Int, headers: [String: String] = [:]) throws -> LoopbackClient.Reply {
        try LoopbackClient.send(port: port, path: path, body: try JSONSerialization.data(withJSONObject: object), headers: headers)
    }

    func object(_ reply: LoopbackClient.Reply) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: reply.body) as? [String: Any], reply.text)
    }

    /// What `kosmos generate --json` prints for the prompt: the same tokens, generate(), decode.
    func reference(_ prompt: String, images: [Tensor] = [], audio: [Tensor] = [], videos: [Tensor] = [], maxTokens: Int,
                   server: KosmosHTTPServer) throws -> (text: String, ids: [Int]) {
        let served = server.scheduler.model
        guard let model = served.model as? KosmosModel else { throw TestFailure(message: "the test model is not Kosmos-1") }
        let tokens = try model.promptTokens(prompt, imageCount: images.count, audioCount: audio.count, videoFrames: videos.map { $0.shape[0] },
                                            encode: served.tokenizer.encode)
        var options = GenerationOptions()
        options.maxNewTokens = maxTokens
        let ids = try model.generate(KosmosSequence(tokens: tokens, images: images, audio: audio, videos: videos), options: options)
        return (served.tokenizer.decode(ids.filter { $0 != model.configuration.eosTokenId }), ids)
    }

    func assertChatCompletionSchema(_ o: [String: Any], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(o["object"] as? String, "chat.completion", file: file, line: line)
        XCTAssertTrue((o["id"] as? String)?.hasPrefix("chatcmpl-") ?? false, file: file, line: line)
        XCTAssertNotNil(o["created"] as? Int, file: file, line: line)
        XCTAssertEqual(o["model"] as? String, Self.modelName, file: file, line: line)
        let choice = (o["choices"] as? [[String: Any]])?.first
        XCTAssertEqual(choice?["index"] as? Int, 0, file: file, line: line)
        XCTAssertTrue(["stop", "length"].contains(choice?["finish_reason"] as? String ?? ""), file: file, line: line)
        let message = choice?["message"] as? [String: Any]
        XCTAssertEqual(message?["role"] as? String, "assistant", file: file, line: line)
        XCTAssertNotNil(message?["content"] as? String, file: file, line: line)
        let usage = o["usage"] as? [String: Any]
        let p = usage?["prompt_tokens"] as? Int ?? -1, c = usage?["completion_tokens"] as? Int ?? -1
        XCTAssertGreaterThan(p, 0, file: file, line: line)
        XCTAssertGreaterThan(c, 0, file: file, line: line)
        XCTAssertEqual(usage?["total_tokens"] as? Int, p + c, file: file, line: line)
    }

    func testChatCompletionMatchesGenerateAndParsesAsOpenAI() throws {
        let (port, server) = try self.server()
        let prompt = "The weather today is"
        let reply = try post("/v1/chat/completions", ["model": Self.modelName, "max_tokens": 12,
                                                      "messages": [["role": "user", "content": prompt]]], port: port)
        XCTAssertEqual(reply.status, 200, reply.text)
        XCTAssertEqual(reply.headers["content-type"], "application/json")
        let o = try object(reply)
        assertChatCompletionSchema(o)
        let expected = try reference(prompt, maxTokens: 12, server: server)
        let message = ((o["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])
        XCTAssertEqual(message?["content"] as? String, expected.text)
        XCTAssertEqual((o["usage"] as? [String: Any])?["completion_tokens"] as? Int, expected.ids.count)
        // Text parts are the same prompt.
        let parts = try post("/v1/chat/completions", ["model": Self.modelName, "max_tokens": 12,
                                                      "messages": [["role": "user", "content": [["type": "text", "text": "The weather "],
                                                                                                 ["type": "text", "text": "today is"]]]]], port: port)
        XCTAssertEqual((((try object(parts))["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String, expected.text)
    }

    func testImageAsDataURL() throws {
        let (port, server) = try self.server()
        let image = RGBImage(width: 20, height: 18, pixels: (0..<(20 * 18 * 3)).map { UInt8(($0 * 37) % 256) })
        let jpeg = try JPEGEncoder.encode(image)
        let url = "data:image/jpeg;base64," + jpeg.base64EncodedString()
        let reply = try post("/v1/chat/completions", ["model": Self.modelName, "max_tokens": 8,
                                                      "messages": [["role": "user", "content": [["type": "image_url", "image_url": ["url": url]],
                                                                                                 ["type": "text", "text": "A photo of"]]]]], port: port)
        XCTAssertEqual(reply.status, 200, reply.text)
        let o = try object(reply)
        assertChatCompletionSchema(o)
        let pixels = try server.scheduler.model.image(data: jpeg, source: "test")
        let expected = try reference("<image>A photo of", images: [pixels], maxTokens: 8, server: server)
        XCTAssertEqual((((o["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String), expected.text)
    }

    /// OpenAI's `input_audio` part: base64 bytes of a WAV or MP3 (FLAC, Ogg, M4A too), decoded
    /// as `kosmos generate --audio` decodes files; bad parts are 400s naming the part.
    func testInputAudioPart() throws {
        let (port, server) = try self.server()
        let mp3 = try Data(contentsOf: Self.fixtures().appendingPathComponent("audio/tone.mp3"))
        let reply = try post("/v1/chat/completions", ["model": Self.modelName, "max_tokens": 8,
                                                      "messages": [["role": "user", "content": [
                                                          ["type": "input_audio", "input_audio": ["data": mp3.base64EncodedString(), "format": "mp3"]],
                                                          ["type": "text", "text": "A sound of"]]]]], port: port)
        XCTAssertEqual(reply.status, 200, reply.text)
        let o = try object(reply)
        assertChatCompletionSchema(o)
        let features = try server.scheduler.model.audio(data: mp3, source: "test")
        let expected = try reference("<audio>A sound of", audio: [features], maxTokens: 8, server: server)
        XCTAssertEqual((((o["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String), expected.text)
        let corrupt = try Data(contentsOf: Self.fixtures().appendingPathComponent("audio/corrupt.flac"))
        let bad: [([String: Any], String)] = [
            (["data": mp3.base64EncodedString(), "format": "midi"], "format 'midi' is not one of"),
            (["data": "###", "format": "wav"], "not valid base64"),
            (["data": corrupt.base64EncodedString(), "format": "flac"], "messages[0].content[0]: corrupt"),
            (["data": Data("not audio at all".utf8).base64EncodedString(), "format": "wav"], "not an audio file"),
        ]
        for (part, message) in bad {
            let r = try post("/v1/chat/completions", ["model": Self.modelName, "max_tokens": 4,
                                                      "messages": [["role": "user", "content": [["type": "input_audio", "input_audio": part]]]]], port: port)
            XCTAssertEqual(r.status, 400, r.text)
            XCTAssertTrue(r.text.contains(message), "\(r.text) should say \(message)")
        }
        let missing = try post("/v1/chat/completions", ["model": Self.modelName, "messages": [["role": "user", "content": [["type": "input_audio"]]]]], port: port)
        XCTAssertEqual(missing.status, 400)
        XCTAssertTrue(missing.text.contains("without an input_audio object"), missing.text)
    }

    /// vLLM's `video_url` part: a base64 data: URL of a video, decoded as `kosmos generate --video`
    /// decodes files; bad parts are 400s naming the part.
    func testVideoURLPart() throws {
        let (port, server) = try self.server()
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("kosmos-server-video-\(UUID().uuidString).avi")
        defer { try? FileManager.default.removeItem(at: file) }
        try VideoDecoder.encode(SyntheticMotion.clip(seed: 4, frames: 6, size: 24).frames, fps: 8, format: .aviMJPEG, to: file)
        let bytes = try Data(contentsOf: file)
        let reply = try post("/v1/chat/completions", ["model": Self.modelName, "max_tokens": 8,
                                                      "messages": [["role": "user", "content": [
                                                          ["type": "video_url", "video_url": ["url": "data:video/x-msvideo;base64," + bytes.base64EncodedString()]],
                                                          ["type": "text", "text": "A video of"]]]]], port: port)
        XCTAssertEqual(reply.status, 200, reply.text)
        let o = try object(reply)
        assertChatCompletionSchema(o)
        let frames = try server.scheduler.model.video(data: bytes, source: "test")
        XCTAssertEqual(frames.shape[0], 3)
        let expected = try reference("<video>A video of", videos: [frames], maxTokens: 8, server: server)
        XCTAssertEqual((((o["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String), expected.text)
        for (url, message) in [("data:video/mp4;base64," + Data("nope".utf8).base64EncodedString(), "not a video file"),
                               ("https://example.com/v.mp4", "only data: URLs and local files"),
                               ("/tmp/some.mp4", "local files are refused")] {
            let r = try post("/v1/chat/completions", ["model": Self.modelName, "max_tokens": 4,
                                                      "messages": [["role": "user", "content": [["type": "video_url", "video_url": ["url": url]]]]]], port: port)
            XCTAssertEqual(r.status, 400, r.text)
            XCTAssertTrue(r.text.contains(message) && r.text.contains("messages[0].content[0]"), "\(r.text) should say \(message)")
        }
    }

    func testStreamingChunksFollowTheSchemaAndAddUpToTheCompletion() throws {
        let (port, server) = try self.server()
        let prompt = "Once upon a time"
        let reply = try post("/v1/chat/completions", ["model": Self.modelName, "max_tokens": 10, "stream": true,
                                                      "stream_options": ["include_usage": true],
                                                      "messages": [["role": "user", "content": prompt]]], port: port)
        XCTAssertEqual(reply.status, 200, reply.text)
        XCTAssertEqual(reply.headers["content-type"], "text/event-stream")
        let (chunks, done) = LoopbackClient.events(reply.body)
        XCTAssertTrue(done, "ends with data: [DONE]: \(reply.text.prefix(600))")
        var text = ""
        var finish: String?
        var usage: [String: Any]?
        for chunk in chunks {
            XCTAssertEqual(chunk["object"] as? String, "chat.completion.chunk")
            XCTAssertEqual(chunk["model"] as? String, Self.modelName)
            XCTAssertTrue((chunk["id"] as? String)?.hasPrefix("chatcmpl-") ?? false)
            if let u = chunk["usage"] as? [String: Any] { usage = u }
            guard let choice = (chunk["choices"] as? [[String: Any]])?.first else { continue }
            let delta = try XCTUnwrap(choice["delta"] as? [String: Any])
            text += delta["content"] as? String ?? ""
            if let f = choice["finish_reason"] as? String { finish = f }
        }
        XCTAssertEqual(text, try reference(prompt, maxTokens: 10, server: server).text)
        XCTAssertNotNil(finish)
        XCTAssertEqual(usage?["completion_tokens"] as? Int, try reference(prompt, maxTokens: 10, server: server).ids.count)
    }

    func testCompletionsModelsAndHealth() throws {
        let (port, server) = try self.server()
        let reply = try post("/v1/completions", ["model": Self.modelName, "prompt": "Hello there", "max_tokens": 6], port: port)
        XCTAssertEqual(reply.status, 200, reply.text)
        let o = try object(reply)
        XCTAssertEqual(o["object"] as? String, "text_completion")
        let choice = try XCTUnwrap((o["choices"] as? [[String: Any]])?.first)
        XCTAssertEqual(choice["text"] as? String, try reference("Hello there", maxTokens: 6, server: server).text)
        let streamed = try post("/v1/completions", ["model": Self.modelName, "prompt": "Hello there", "max_tokens": 6, "stream": true], port: port)
        let (chunks, done) = LoopbackClient.events(streamed.body)
        XCTAssertTrue(done)
        XCTAssertEqual(chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first?["text"] as? String }.joined(), choice["text"] as? String)
        let models = try object(try LoopbackClient.send(port: port, method: "GET", path: "/v1/models"))
        XCTAssertEqual(models["object"] as? String, "list")
        XCTAssertEqual(((models["data"] as? [[String: Any]])?.first)?["id"] as? String, Self.modelName)
        let health = try LoopbackClient.send(port: port, method: "GET", path: "/health")
        XCTAssertEqual(health.status, 200)
        // Stop strings cut the text and end with finish_reason "stop".
        let full = try reference("Hello there", maxTokens: 6, server: server).text
        if full.count >= 4 {
            let stop = String(full.dropFirst(2).prefix(2))
            let cut = try object(try post("/v1/completions", ["model": Self.modelName, "prompt": "Hello there", "max_tokens": 6, "stop": stop], port: port))
            let c = try XCTUnwrap((cut["choices"] as? [[String: Any]])?.first)
            XCTAssertEqual(c["text"] as? String, String(full[..<full.range(of: stop)!.lowerBound]))
            XCTAssertEqual(c["finish_reason"] as? String, "stop")
        }
    }

    /// 32 requests at once give what each gives alone (greedy; batched decoding is exact to 1e-5).
    func testConcurrentRequestsMatchOneAtATime() throws {
        let (port, _) = try self.server()
        let prompts = (0..<32).map { "Request number \($0) is about" + String(repeating: " and more", count: $0 % 5) }
        func body(_ i: Int) throws -> Data {
            try JSONSerialization.data(withJSONObject: ["model": Self.modelName, "max_tokens": 8 + i % 5,
                                                        "messages": [["role": "user", "content": prompts[i]]]])
        }
        @Sendable func content(_ reply: LoopbackClient.Reply?) -> String? {
            guard let reply, reply.status == 200,
                  let o = try? JSONSerialization.jsonObject(with: reply.body) as? [String: Any] else { return nil }
            return ((o["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String
        }
        let alone = try prompts.indices.map { content(try LoopbackClient.send(port: port, path: "/v1/chat/completions", body: try body($0))) }
        XCTAssertTrue(alone.allSatisfy { $0 != nil })
        let results = LockedBox([String?](repeating: nil, count: prompts.count))
        let group = DispatchGroup()
        let bodies = try prompts.indices.map(body)
        // All 32 wait in the queue before any is admitted, so they are batched however fast the
        // model is and however the threads are scheduled.
        let scheduler = try server().server.scheduler
        let submitted = scheduler.stats.submitted
        scheduler.hold(.admission)
        defer { scheduler.release() }
        for i in prompts.indices {
            group.enter()
            Thread {
                let reply = try? LoopbackClient.send(port: port, path: "/v1/chat/completions", body: bodies[i])
                results.withLock { $0[i] = content(reply) }
                group.leave()
            }.start()
        }
        try waitUntil("the 32 requests are queued") { scheduler.stats.submitted == submitted + prompts.count }
        scheduler.release()
        XCTAssertEqual(group.wait(timeout: .now() + 300), .success)
        XCTAssertEqual(results.value, alone)
        XCTAssertEqual(scheduler.stats.largestBatch, scheduler.maxBatch, "requests were batched")
    }

    func testMalformedInputsGet4xxAndTheServerKeepsServing() throws {
        let (port, _) = try self.server()
        let chat = "/v1/chat/completions"
        func status(_ body: Data, path: String = "/v1/chat/completions") throws -> (Int, [String: Any]?) {
            let reply = try LoopbackClient.send(port: port, path: path, body: body)
            return (reply.status, try? JSONSerialization.jsonObject(with: reply.body) as? [String: Any])
        }
        func json(_ o: [String: Any]) throws -> Data { try JSONSerialization.data(withJSONObject: o) }
        let ok: [String: Any] = ["model": Self.modelName, "max_tokens": 2, "messages": [["role": "user", "content": "hi"]]]
        func with(_ key: String, _ value: Any) -> [String: Any] { var o = ok; o[key] = value; return o }
        let image: (String) -> [String: Any] = { url in
            with("messages", [["role": "user", "content": [["type": "image_url", "image_url": ["url": url]]]]])
        }
        let cases: [(String, Data, Int)] = [
            ("truncated JSON", Data(#"{"model": "kosmos-test", "messages": [{"role": "us"#.utf8), 400),
            ("not JSON", Data("hello".utf8), 400),
            ("empty body", Data(), 400),
            ("JSON array", Data("[1, 2]".utf8), 400),
            ("messages a string", try json(with("messages", "hi")), 400),
            ("max_tokens a string", try json(with("max_tokens", "ten")), 400),
            ("negative max_tokens", try json(with("max_tokens", -5)), 400),
            ("max_tokens above the ceiling", try json(with("max_tokens", 100_000)), 400),
            ("temperature a list", try json(with("temperature", [1]))
             , 400),
            ("n = 2", try json(with("n", 2)), 400),
            ("unknown role", try json(with("messages", [["role": "robot", "content": "x"]])), 400),
            ("no messages", try json(with("messages", [Any]())), 400),
            ("unknown model", try json(with("model", "gpt-4")), 404),
            ("no model", try json(ok.filter { $0.key != "model" }), 400),
            ("bad base64", try json(image("data:image/png;base64,@@@not base64@@@")), 400),
            ("not an image", try json(image("data:image/png;base64," + Data("definitely not a png".utf8).base64EncodedString())), 400),
            ("remote image", try json(image("http://example.com/cat.png")), 400),
            ("local file", try json(image("/etc/passwd")), 400),
            ("unknown part type", try json(with("messages", [["role": "user", "content": [["type": "audio", "audio": "x"]]]])), 400),
            ("huge body", Data(count: 2 << 20), 413),
        ]
        for (name, body, expected) in cases {
            let (code, object) = try status(body)
            XCTAssertEqual(code, expected, name)
            let error = object?["error"] as? [String: Any]
            XCTAssertNotNil(error?["message"] as? String, "\(name): an OpenAI error object")
            XCTAssertNotNil(error?["type"] as? String, name)
        }
        XCTAssertEqual(try status(Data("{".utf8), path: "/v1/completions").0, 400)
        XCTAssertEqual(try status(try json(["model": Self.modelName, "prompt": 5]), path: "/v1/completions").0, 400)
        XCTAssertEqual(try LoopbackClient.send(port: port, method: "GET", path: "/v1/nothing").status, 404)
        // Garbage on the socket: the connection is answered or closed, the server lives on.
        _ = try? LoopbackClient.exchange(port: port, bytes: Data("NOT HTTP AT ALL\r\n\r\n".utf8), timeout: 5)
        // Still serving.
        let (code, object) = try status(try json(ok))
        XCTAssertEqual(code, 200, "\(String(describing: object))")
        _ = chat
    }

    /// A client that leaves cancels its generation at once, whether it streams or not and whether
    /// its request is decoding or still queued. The scheduler is held (no decoding step, or no
    /// admission) while the clients leave, so no request can finish first, however fast the model.
    func testDisconnectCancelsTheGeneration() throws {
        let (port, server) = try self.server()
        let scheduler = server.scheduler
        let before = scheduler.stats
        func open(stream: Bool) throws -> LoopbackClient.Connection {
            let body = try JSONSerialization.data(withJSONObject: ["model": Self.modelName, "max_tokens": 64, "stream": stream, "ignore_eos": true,
                                                                   "messages": [["role": "user", "content": "Tell a long story"]]])
            let head = "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n"
            let connection = try LoopbackClient.Connection(port: port, timeout: 60)
            try connection.send(Data(head.utf8) + body)
            return connection
        }
        scheduler.hold(.steps)
        defer { scheduler.release() }

        // Streaming, its response begun: the generation is cancelled without waiting for a write to fail.
        let streaming = try open(stream: true)
        try waitUntil("the streaming request is admitted") { scheduler.stats.admitted == before.admitted + 1 }
        XCTAssertEqual(try streaming.read(limit: 12), Data("HTTP/1.1 200".utf8))
        streaming.close()
        try waitUntil("the streaming client's departure is noticed") { scheduler.stats.cancelRequests == before.cancelRequests + 1 }

        // Non-streaming, mid-generation.
        let decoding = try open(stream: false)
        try waitUntil("the request is admitted") { scheduler.stats.admitted == before.admitted + 2 }
        decoding.close()
        try waitUntil("the client's departure is noticed while decoding") { scheduler.stats.cancelRequests == before.cancelRequests + 2 }

        // Non-streaming, still in the queue.
        scheduler.hold(.admission)
        let queued = try open(stream: false)
        try waitUntil("the request is queued") { scheduler.stats.submitted == before.submitted + 3 }
        queued.close()
        try waitUntil("the client's departure is noticed in the queue") { scheduler.stats.cancelRequests == before.cancelRequests + 3 }
        XCTAssertEqual(scheduler.stats.admitted, before.admitted + 2, "held: nothing admitted")

        scheduler.release()
        try waitUntil("the scheduler drops the three") { scheduler.stats.cancelled == before.cancelled + 3 }
        XCTAssertEqual(scheduler.stats.completed, before.completed, "no request ran to its end")
        XCTAssertEqual(scheduler.stats.admitted, before.admitted + 2, "a cancelled queued request is not prefilled")
        XCTAssertEqual(try LoopbackClient.send(port: port, method: "GET", path: "/health").status, 200)
        // The server still answers whole requests, streamed or not.
        let reply = try post("/v1/chat/completions", ["model": Self.modelName, "max_tokens": 3, "messages": [["role": "user", "content": "hi"]]], port: port)
        XCTAssertEqual(reply.status, 200, reply.text)
        let stream = try post("/v1/chat/completions", ["model": Self.modelName, "max_tokens": 3, "stream": true, "messages": [["role": "user", "content": "hi"]]],
                              port: port)
        XCTAssertTrue(LoopbackClient.events(stream.body).done, stream.text)
    }

    /// A long prompt is prefilled in chunks between the decoding steps of a request already
    /// running, which keeps getting tokens; both answers equal generating each prompt alone. The
    /// loop's order is fixed by holding it while the two arrive, so this does not depend on speed.
    func testALongPromptIsPrefilledBetweenTheOthersSteps() async throws {
        let directory = try Self.makeModelDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let served = try ServedModel(directory: directory, name: "chunks", maxImagePixels: 1 << 20)
        let scheduler = Scheduler(model: served, maxBatch: 4, queueCapacity: 4, prefillChunk: 8)
        scheduler.start()
        defer { scheduler.stop() }
        var running = GenerationOptions()
        running.maxNewTokens = 30
        running.stopAtEOS = false
        let shortPrompt = ModelInput(tokens: [5, 6, 7])
        scheduler.hold(.steps)
        let (_, first) = try scheduler.submit(prompt: shortPrompt, options: running, timeout: 120)
        try waitUntil("the short request is admitted") { scheduler.stats.admitted == 1 }
        scheduler.hold(.admission)
        var long = GenerationOptions()
        long.maxNewTokens = 4
        long.stopAtEOS = false
        let longPrompt = ModelInput(tokens: (0..<60).map { 10 + ($0 * 7) % 50 })
        let (_, second) = try scheduler.submit(prompt: longPrompt, options: long, timeout: 120)
        try waitUntil("the long request is queued") { scheduler.stats.submitted == 2 }
        scheduler.release()
        func completion(_ events: AsyncStream<GenerationEvent>) async throws -> Completion {
            for await event in events {
                if case .finished(let done) = event { return done }
                if case .failed(let error) = event { throw error }
            }
            throw TestFailure(message: "the stream ended without a completion")
        }
        let a = try await completion(first), b = try await completion(second)
        let stats = scheduler.stats
        // The short prompt in one chunk, the long one in ⌈60/8⌉ = 8, with a step after each of
        // the first 7 (the 8th makes it join the batch).
        XCTAssertEqual(stats.prefillChunks, 1 + 8)
        XCTAssertEqual(stats.stepsWhilePrefilling, 7)
        XCTAssertEqual(a.tokenIds, try served.model.generate(shortPrompt, options: running))
        XCTAssertEqual(b.tokenIds, try served.model.generate(longPrompt, options: long))
    }

    /// Runs a server of the test's own (port 0) until the returned task is cancelled; its port.
    /// A server with default options for `served` on a free port (the caller cancels the task).
    func start(_ served: ServedModel) async throws -> (port: Int, task: Task<Void, Error>) {
        var options = ServerOptions()
        options.port = 0
        return try await start(KosmosHTTPServer(scheduler: Scheduler(model: served), options: options, logger: Logger(label: "t")))
    }

    /// The first choice's message content of a chat-completion reply.
    func chatContent(_ reply: LoopbackClient.Reply) throws -> String? {
        (((try object(reply))["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String

    }

    func start(_ server: KosmosHTTPServer) async throws -> (port: Int, task: Task<Void, Error>) {
        try await runOnFreePort(server)
    }

    /// A Kosmos-2 directory whose only tokenizer is sentencepiece.bpe.model serves over HTTP, with
    /// the tokenizer read in Kosmos-2's layout as the CLI reads it: the chat answer equals
    /// generate() on the same prompt, and grounding is accepted.
    func testKosmos2WithOnlySentencePieceServes() async throws {
        let fixtures = Self.fixtures()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kosmos-server-k2-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        for name in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(at: fixtures.appendingPathComponent("kosmos2_untied/\(name)"), to: directory.appendingPathComponent(name))
        }
        try FileManager.default.copyItem(at: fixtures.appendingPathComponent("tokenizers/bpe_nmt_nfkc.model"),
                                         to: directory.appendingPathComponent("sentencepiece.bpe.model"))
        let served = try ServedModel(directory: directory, name: "k2", maxImagePixels: 1 << 20)
        XCTAssertTrue(served.supportsGrounding)
        let (port, task) = try await start(served)
        defer { task.cancel() }
        let reply = try post("/v1/chat/completions", ["model": "k2", "max_tokens": 6, "grounding": true,
                                                      "messages": [["role": "user", "content": "An image of"]]], port: port)
        XCTAssertEqual(reply.status, 200, reply.text)
        let content = try chatContent(reply)
        let model = try XCTUnwrap(served.model as? Kosmos2Model)
        var generation = GenerationOptions()
        generation.maxNewTokens = 6
        let prompt = try served.prompt(text: "An image of", images: [], grounding: true)
        XCTAssertEqual(prompt.tokens, served.tokenizer.encode("<s><grounding> An image of"))
        let ids = try model.generate(prompt, options: generation)
        XCTAssertEqual(content, served.processor.output(ids, grounding: true).text)
    }

    /// Kosmos-2.5 serves: the image as a data URL becomes its patch sequence, the text after it
    /// (`<md>`) is the task, and the answer equals generating from the same prompt directly.
    func testKosmos25ServesPagesWithTheTaskFromTheText() async throws {
        let directory = Self.fixtures().appendingPathComponent("kosmos2_5/tiny")
        let served = try ServedModel(directory: directory, name: "k25", maxImagePixels: 1 << 20)
        XCTAssertFalse(served.supportsGrounding)
        let (port, task) = try await start(served)
        defer { task.cancel() }
        let png = try Data(contentsOf: Self.fixtures().appendingPathComponent("kosmos2_5/images/tall_rgb.png"))
        let url = "data:image/png;base64," + png.base64EncodedString()
        let reply = try post("/v1/chat/completions", ["model": "k25", "max_tokens": 6,
                                                      "messages": [["role": "user", "content": [["type": "image_url", "image_url": ["url": url]],
                                                                                                 ["type": "text", "text": "<md>"]]]]], port: port)
        XCTAssertEqual(reply.status, 200, reply.text)
        let content = try chatContent(reply)
        let patches = try served.image(data: png, source: "tall_rgb.png")
        XCTAssertEqual(patches.shape, [64, 770])
        let prompt = try served.prompt(text: "<image><md>", images: [patches])
        XCTAssertEqual(prompt.tokens.suffix(2), [1507, 1511])  // </image>, <md>
        var generation = GenerationOptions()
        generation.maxNewTokens = 6
        XCTAssertEqual(content, served.processor.output(try served.model.generate(prompt, options: generation), grounding: false).text)
        let noImage = try post("/v1/chat/completions", ["model": "k25", "max_tokens": 2, "messages": [["role": "user", "content": "<ocr>"]]], port: port)
        XCTAssertEqual(noImage.status, 400, noImage.text)
        XCTAssertTrue(noImage.text.contains("exactly one image"), noImage.text)
    }

    /// A full queue answers 429 (a scheduler with no room), and bearer auth guards /v1.
    func testQueueFullAndAuth() async throws {
        let (_, server) = try self.server()
        let tight = Scheduler(model: server.scheduler.model, maxBatch: 1, queueCapacity: 0)
        XCTAssertThrowsError(try tight.submit(prompt: ServedModel.Prompt(tokens: [5]), options: GenerationOptions(), timeout: 10)) { error in
            XCTAssertEqual((error as? APIError)?.status, 429)
        }
        var options = ServerOptions()
        options.port = 0
        options.apiKey = "secret"
        let (port, task) = try await start(KosmosHTTPServer(scheduler: Scheduler(model: server.scheduler.model), options: options,
                                                            logger: Logger(label: "t")))
        defer { task.cancel() }
        let body = try JSONSerialization.data(withJSONObject: ["model": Self.modelName, "max_tokens": 2, "messages": [["role": "user", "content": "hi"]]])
        XCTAssertEqual(try LoopbackClient.send(port: port, path: "/v1/chat/completions", body: body).status, 401)
        XCTAssertEqual(try LoopbackClient.send(port: port, path: "/v1/chat/completions", body: body, headers: ["Authorization": "Bearer wrong"]).status, 401)
        XCTAssertEqual(try LoopbackClient.send(port: port, path: "/v1/chat/completions", body: body, headers: ["Authorization": "Bearer secret"]).status, 200)
        XCTAssertEqual(try LoopbackClient.send(port: port, method: "GET", path: "/health").status, 200)
    }
}

/// A failure that ends a test (thrown, so the test fails rather than skips).
struct TestFailure: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// A value shared between threads under a lock.
final class LockedBox<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value
    init(_ value: Value) { stored = value }
    var value: Value {
        get { lock.lock(); defer { lock.unlock() }; return stored }
        set { lock.lock(); stored = newValue; lock.unlock() }
    }
    func withLock(_ body: (inout Value) -> Void) { lock.lock(); body(&stored); lock.unlock() }
}

/// Runs `server` on a free loopback port until the returned task is cancelled; its port.
func runOnFreePort(_ server: KosmosHTTPServer) async throws -> (port: Int, task: Task<Void, Error>) {
    let (ports, continuation) = AsyncStream<Int>.makeStream()
    let task = Task { try await server.run(handleSignals: false) { continuation.yield($0) } }
    var iterator = ports.makeAsyncIterator()
    guard let port = await iterator.next() else {
        task.cancel()
        throw TestFailure(message: "the server did not start")
    }
    return (port, task)
}

/// Waits for a condition the server reaches by itself; the deadline only bounds a failure.
func waitUntil(_ what: String, seconds: Double = 60, _ condition: () -> Bool) throws {
    let deadline = Date().addingTimeInterval(seconds)
    while !condition() {
        guard Date() < deadline else { throw TestFailure(message: "waited \(seconds) s for: \(what)") }
        Thread.sleep(forTimeInterval: 0.005)
    }
}
