import Foundation
import KosmosBenchmarks
import KosmosModels
import Logging
import XCTest
@testable import KosmosServer

/// Graceful shutdown: requests accepted before it finish within the grace period, new ones get 503,
/// and what is still running after the grace is ended with an error; SIGTERM to a `kosmos serve`
/// child process does this and the process exits 0.
final class ShutdownTests: XCTestCase {
    static var executable: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("kosmos")
    }

    func streamingBody(maxTokens: Int) throws -> Data {
        try JSONSerialization.data(withJSONObject: ["model": ServerTests.modelName, "prompt": "An image of", "max_tokens": maxTokens,
                                                    "stream": true, "ignore_eos": true])
    }

    /// Sends a streaming completion and reads until its first SSE event has come: the request is
    /// accepted (and its stream begun) when this returns.
    func openStream(port: Int, maxTokens: Int) throws -> LoopbackClient.Connection {
        let connection = try LoopbackClient.Connection(port: port, timeout: 120)
        let body = try streamingBody(maxTokens: maxTokens)
        try connection.send(Data("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body)
        var head = Data()
        while !(String(decoding: head, as: UTF8.self).contains("data: ")) {
            let byte = try connection.read(limit: 1)
            guard !byte.isEmpty else { throw TestFailure(message: "the server closed before the stream began: \(String(decoding: head, as: UTF8.self))") }
            head += byte
        }
        return connection
    }

    func testAcceptedRequestsFinishWithinTheGraceAndNewOnesAreRefused() async throws {
        let directory = try ServerTests.makeModelDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let served = try ServedModel(directory: directory, name: ServerTests.modelName, maxImagePixels: 1 << 20)
        var options = ServerOptions()
        options.port = 0
        options.shutdownGrace = 120
        var logger = Logger(label: "kosmos.shutdown-test")
        logger.logLevel = .warning
        let server = KosmosHTTPServer(scheduler: Scheduler(model: served, logger: logger), options: options, logger: logger)
        let (port, running) = try await runOnFreePort(server)

        // Held: the request is accepted and prefilled but cannot finish until released.
        server.scheduler.hold(.steps)
        let connection = try openStream(port: port, maxTokens: 12)
        let shutdown = Task { await server.shutdown() }
        try waitUntil("the server to begin draining after shutdown()") { server.scheduler.isDraining }
        let refused = try LoopbackClient.send(port: port, path: "/v1/completions", body: try streamingBody(maxTokens: 2))
        XCTAssertEqual(refused.status, 503)
        XCTAssertTrue(refused.text.contains("shutting down"), refused.text)
        XCTAssertEqual(server.scheduler.inFlight, 1)
        server.scheduler.release()
        let rest = String(decoding: try connection.read(), as: UTF8.self)
        XCTAssertTrue(rest.contains("\"finish_reason\":\"length\""), rest)
        XCTAssertTrue(rest.contains("data: [DONE]"), rest)
        XCTAssertFalse(rest.contains("shutting down"), rest)
        _ = await shutdown.value
        try await running.value
        XCTAssertEqual(server.scheduler.stats.completed, 1)
    }

    /// `kosmos serve` as a child: SIGTERM while a request is held mid-generation ends it after the
    /// grace with an error event, refuses new connections, and the process exits 0.
    func testSigtermToServeEndsHeldRequestsAndExitsZero() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.executable.path) else {
            throw TestFailure(message: "\(Self.executable.path) not built; run `swift build --build-tests` first")
        }
        let directory = try ServerTests.makeModelDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let process = Process()
        process.executableURL = Self.executable
        process.arguments = ["serve", "--model", directory.path, "--name", ServerTests.modelName, "--port", "0", "--shutdown-grace", "0.5",
                             "--dtype", "float32"]
        var environment = ProcessInfo.processInfo.environment
        environment["KOSMOS_SERVE_TEST_HOLD"] = "steps"
        process.environment = environment
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        // "serving NAME on http://127.0.0.1:PORT/v1"
        var printed = Data()
        var port: Int?
        while port == nil {
            let chunk = out.fileHandleForReading.availableData
            guard !chunk.isEmpty else { throw TestFailure(message: "kosmos serve exited before listening: \(String(decoding: printed, as: UTF8.self))") }
            printed += chunk
            let text = String(decoding: printed, as: UTF8.self)
            if let range = text.range(of: "http://127.0.0.1:"), let end = text[range.upperBound...].firstIndex(of: "/") {
                port = Int(text[range.upperBound..<end])
            }
        }
        let connection = try openStream(port: port!, maxTokens: 64)
        kill(process.processIdentifier, SIGTERM)
        let rest = String(decoding: try connection.read(), as: UTF8.self)
        XCTAssertTrue(rest.contains("shutting down"), rest)
        XCTAssertTrue(rest.contains("data: [DONE]") || rest.contains("\"error\""), rest)
        let deadline = Date().addingTimeInterval(60)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        XCTAssertFalse(process.isRunning, "kosmos serve still runs 60 s after SIGTERM")
        XCTAssertEqual(process.terminationReason, .exit)
        XCTAssertEqual(process.terminationStatus, 0)
        XCTAssertThrowsError(try LoopbackClient.Connection(port: port!, timeout: 5), "the port still accepts connections")
    }

    /// A finished request lets go of its prompt, media and cache: the job and its batch member
    /// pointed at each other, which kept every request alive (found by the soak: RSS grew by about
    /// 170 kB per request).
    func testFinishedRequestsAreReleased() async throws {
        let directory = try ServerTests.makeModelDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let served = try ServedModel(directory: directory, name: "release", maxImagePixels: 1 << 20)
        let scheduler = Scheduler(model: served)
        scheduler.start()
        defer { scheduler.stop() }
        var options = GenerationOptions()
        options.maxNewTokens = 5
        options.stopAtEOS = false
        weak var released: GenerationJob?
        do {
            let (job, events) = try scheduler.submit(prompt: ModelInput(tokens: [5, 6, 7]), options: options, timeout: 120)
            released = job
            var finished = false
            for await event in events { if case .finished = event { finished = true } }
            XCTAssertTrue(finished)
        }
        // The scheduler thread may still be returning from the job's last event.
        try waitUntil("the finished request's job to be freed", seconds: 30) { released == nil }
    }
}
