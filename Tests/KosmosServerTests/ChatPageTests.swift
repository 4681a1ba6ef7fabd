import Foundation
import KosmosBenchmarks
import KosmosModels
import Logging
import XCTest
@testable import KosmosServer

/// The chat page in a real browser (headless Chromium over the DevTools protocol): it loads from
/// `GET /`, attaches an image through its file input, sends a message, shows the answer as it
/// streams — equal to the same request made without the page —, draws the Kosmos-2 grounding
/// boxes, shows the timings, and its Stop button cancels a generation on the server.
final class ChatPageTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")
    static let image = fixtures.appendingPathComponent("images/inputs/rgb8_224x224.png")

    /// The scripted Kosmos-2 test model (its greedy answer after "… of" is a grounding).
    func kosmos2() throws -> (ServedModel, URL) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kosmos-chat-page-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for name in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent("kosmos2_scripted/\(name)"), to: directory.appendingPathComponent(name))
        }
        try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent("tokenizers/hf_kosmos2_bpe.tokenizer.json"),
                                         to: directory.appendingPathComponent("tokenizer.json"))
        return (try ServedModel(directory: directory, name: "kosmos-2-test", maxImagePixels: 1 << 22), directory)
    }

    func start(_ served: ServedModel) async throws -> (port: Int, server: KosmosHTTPServer, task: Task<Void, Error>) {
        var options = ServerOptions()
        options.port = 0
        var logger = Logger(label: "kosmos.chat-page-test")
        logger.logLevel = .warning
        let server = KosmosHTTPServer(scheduler: Scheduler(model: served, logger: logger), options: options, logger: logger)
        let (port, task) = try await runOnFreePort(server)
        return (port, server, task)
    }

    struct Shown: Decodable {
        let state: String
        let deltas: Int
        let text: String
        let boxes: Int
        let labels: [String]
        let timing: String
    }

    static let lastAnswer = """
        (() => { const m = [...document.querySelectorAll('.msg.assistant')].pop(); if (!m) return null;
          return { state: m.dataset.state, deltas: +m.dataset.deltas, text: m.querySelector('.text').textContent,
                   boxes: m.querySelectorAll('.box').length, labels: [...m.querySelectorAll('.box span')].map(s => s.textContent),
                   timing: m.querySelector('.timing').textContent }; })()
        """

    func shown(_ browser: ChromiumDriver) throws -> Shown {
        let value = try XCTUnwrap(try browser.evaluate(Self.lastAnswer))
        return try JSONDecoder().decode(Shown.self, from: JSONSerialization.data(withJSONObject: value))
    }

    func testChatPageStreamsAnAnswerWithGroundingBoxes() async throws {
        let (served, directory) = try kosmos2()
        defer { try? FileManager.default.removeItem(at: directory) }
        let (port, server, task) = try await start(served)
        defer { task.cancel() }

        let page = try LoopbackClient.send(port: port, method: "GET", path: "/", body: Data())
        XCTAssertEqual(page.status, 200)
        XCTAssertTrue(page.text.contains("<title>Kosmos chat</title>"))
        XCTAssertFalse(page.text.contains("http://") || page.text.contains("https://"), "the page fetches nothing from elsewhere")

        let browser = try ChromiumDriver(height: 1040)
        try browser.openPage("http://127.0.0.1:\(port)/")
        try browser.waitFor("window.kosmosChat && window.kosmosChat.ready")
        XCTAssertEqual(try browser.evaluate("document.getElementById('model').textContent") as? String, "kosmos-2-test")
        XCTAssertEqual(try browser.evaluate("document.getElementById('groundingLabel').hidden") as? Bool, false)

        try browser.setFiles("#file", [Self.image.path])
        try browser.waitFor("window.kosmosChat.pendingImages === 1")
        _ = try browser.evaluate("document.getElementById('maxTokens').value = '24'; document.getElementById('prompt').value = 'An image of'; true")
        _ = try browser.evaluate("document.getElementById('send').click(); true")
        try browser.waitFor("(() => { const m = [...document.querySelectorAll('.msg.assistant')].pop(); return m && m.dataset.state !== 'streaming'; })()")
        let answer = try shown(browser)

        // The same request without the page, not streamed.
        let url = "data:image/png;base64," + (try Data(contentsOf: Self.image)).base64EncodedString()
        let body: [String: Any] = ["model": "kosmos-2-test", "max_tokens": 24, "temperature": 0, "grounding": true,
                                   "messages": [["role": "user", "content": [["type": "image_url", "image_url": ["url": url]],
                                                                             ["type": "text", "text": "An image of"]]]]]
        let reply = try LoopbackClient.send(port: port, path: "/v1/chat/completions", body: try JSONSerialization.data(withJSONObject: body))
        XCTAssertEqual(reply.status, 200, reply.text)
        let message = try XCTUnwrap(((try JSONSerialization.jsonObject(with: reply.body) as? [String: Any])?["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])
        let entities = message["entities"] as? [[String: Any]] ?? []

        XCTAssertEqual(answer.state, "done")
        XCTAssertEqual(answer.text, message["content"] as? String)
        XCTAssertFalse(answer.text.isEmpty)
        XCTAssertGreaterThanOrEqual(answer.deltas, 1)
        XCTAssertFalse(entities.isEmpty, "the scripted model should ground a phrase")
        XCTAssertEqual(answer.boxes, entities.reduce(0) { $0 + (($1["boxes"] as? [Any])?.count ?? 0) })
        XCTAssertEqual(answer.labels.first, entities.first?["phrase"] as? String)
        XCTAssertTrue(answer.timing.contains("first token") && answer.timing.contains("new tokens"), answer.timing)
        XCTAssertEqual(server.scheduler.stats.completed, 2)

        if let path = ProcessInfo.processInfo.environment["KOSMOS_CHAT_SCREENSHOT"] {
            try browser.screenshot().write(to: URL(fileURLWithPath: path))
        }
    }

    /// A longer answer (the tiny random Kosmos-1 of the server tests) arrives in many streamed
    /// pieces, equal to the same request unstreamed; the image comes in by drag and drop.
    func testDroppedImageAndStreamedAnswer() async throws {
        let directory = try ServerTests.makeModelDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let served = try ServedModel(directory: directory, name: "kosmos-1-test", maxImagePixels: 1 << 22)
        let (port, server, task) = try await start(served)
        defer { task.cancel() }
        let browser = try ChromiumDriver()
        try browser.openPage("http://127.0.0.1:\(port)/")
        try browser.waitFor("window.kosmosChat && window.kosmosChat.ready")
        XCTAssertEqual(try browser.evaluate("document.getElementById('groundingLabel').hidden") as? Bool, true)

        let png = try Data(contentsOf: Self.image)
        _ = try browser.evaluate("""
            (() => { const bytes = Uint8Array.from(atob('\(png.base64EncodedString())'), c => c.charCodeAt(0));
              const dt = new DataTransfer(); dt.items.add(new File([bytes], 'dropped.png', { type: 'image/png' }));
              document.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true })); return true; })()
            """)
        try browser.waitFor("window.kosmosChat.pendingImages === 1")
        _ = try browser.evaluate("document.getElementById('maxTokens').value = '20'; document.getElementById('prompt').value = 'An image of'; true")
        // Typing Enter sends, as the placeholder says.
        _ = try browser.evaluate("document.getElementById('prompt').dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true })); true")
        try browser.waitFor("(() => { const m = [...document.querySelectorAll('.msg.assistant')].pop(); return m && m.dataset.state !== 'streaming'; })()")
        let answer = try shown(browser)

        let url = "data:image/png;base64," + png.base64EncodedString()
        let body: [String: Any] = ["model": "kosmos-1-test", "max_tokens": 20, "temperature": 0,
                                   "messages": [["role": "user", "content": [["type": "image_url", "image_url": ["url": url]],
                                                                             ["type": "text", "text": "An image of"]]]]]
        let reply = try LoopbackClient.send(port: port, path: "/v1/chat/completions", body: try JSONSerialization.data(withJSONObject: body))
        let message = try XCTUnwrap(((try JSONSerialization.jsonObject(with: reply.body) as? [String: Any])?["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])
        XCTAssertEqual(answer.state, "done")
        XCTAssertEqual(answer.text, message["content"] as? String)
        XCTAssertGreaterThan(answer.deltas, 3, "the answer arrived in \(answer.deltas) piece(s), not streamed: \(answer.text)")
        XCTAssertEqual(answer.boxes, 0)
        XCTAssertEqual(server.scheduler.stats.completed, 2)
    }

    func testStopCancelsTheGenerationOnTheServer() async throws {
        let (served, directory) = try kosmos2()
        defer { try? FileManager.default.removeItem(at: directory) }
        let (port, server, task) = try await start(served)
        defer { task.cancel() }
        let browser = try ChromiumDriver()
        try browser.openPage("http://127.0.0.1:\(port)/")
        try browser.waitFor("window.kosmosChat && window.kosmosChat.ready")

        // No decoding step runs until release: the request is known to be mid-generation when Stop is pressed.
        server.scheduler.hold(.steps)
        _ = try browser.evaluate("document.getElementById('prompt').value = 'An image of'; document.getElementById('send').click(); true")
        try waitUntil("the request is admitted") { server.scheduler.stats.admitted == 1 }
        XCTAssertEqual(try browser.evaluate("document.getElementById('stop').disabled") as? Bool, false)
        _ = try browser.evaluate("document.getElementById('stop').click(); true")
        try browser.waitFor("(() => { const m = [...document.querySelectorAll('.msg.assistant')].pop(); return m && m.dataset.state === 'stopped'; })()")
        try waitUntil("the server cancels it") { server.scheduler.stats.cancelRequests == 1 }
        server.scheduler.release()
        try waitUntil("the scheduler drops it") { server.scheduler.stats.cancelled == 1 }
        XCTAssertEqual(server.scheduler.stats.completed, 0)
        XCTAssertEqual(try browser.evaluate("document.getElementById('send').disabled") as? Bool, false)
    }
}
