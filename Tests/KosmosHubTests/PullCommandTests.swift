import Foundation
import KosmosHub
import XCTest

/// The built `kosmos` executable against the FakeHub: `kosmos pull`, then `--model ORG/NAME`
/// read from the cache (or pulled with `--pull`), giving what the same local directory gives.
final class PullCommandTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")
    static var executable: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("kosmos")
    }

    let commit = "89abcdef0123456789abcdef0123456789abcdef"
    var hub: FakeHub!
    var home: URL!
    var modelFolder: URL!

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.executable.path) else {
            XCTFail("\(Self.executable.path) not built; run `swift build --build-tests` first")
            throw CocoaError(.fileNoSuchFile)
        }
        hub = try FakeHub()
        home = FileManager.default.temporaryDirectory.appendingPathComponent("hubcli-\(UUID().uuidString)")
        // The Kosmos-2 test model: its config and weights with the BPE tokenizer as tokenizer.json.
        modelFolder = home.appendingPathComponent("local-model")
        try FileManager.default.createDirectory(at: modelFolder, withIntermediateDirectories: true)
        var files: [String: Data] = [:]
        for (name, source) in [("config.json", "kosmos2_scripted/config.json"), ("model.safetensors", "kosmos2_scripted/model.safetensors"),
                               ("tokenizer.json", "tokenizers/hf_kosmos2_bpe.tokenizer.json")] {
            files[name] = try Data(contentsOf: Self.fixtures.appendingPathComponent(source))
            try files[name]!.write(to: modelFolder.appendingPathComponent(name))
        }
        files["README.md"] = Data("# a test model\n".utf8)
        hub.add("test-org/kosmos-2-tiny", .init(commit: commit, files: files, lfs: ["model.safetensors", "tokenizer.json"]))
    }

    override func tearDown() {
        hub.stop()
        try? FileManager.default.removeItem(at: home)
    }

    struct Run {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    func kosmos(_ arguments: [String], offline: Bool = false) throws -> Run {
        let process = Process()
        process.executableURL = Self.executable
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        for name in ["HF_TOKEN", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"] { environment[name] = nil }
        environment["HF_HOME"] = home.appendingPathComponent("hf").path
        environment["HF_ENDPOINT"] = hub.endpoint.absoluteString
        environment["KOSMOS_DTYPE"] = "float32"
        if offline { environment["HF_HUB_OFFLINE"] = "1" }
        process.environment = environment
        let out = home.appendingPathComponent("out-\(UUID().uuidString)"), err = home.appendingPathComponent("err-\(UUID().uuidString)")
        FileManager.default.createFile(atPath: out.path, contents: nil)
        FileManager.default.createFile(atPath: err.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        try process.run()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, stdout: try String(contentsOf: out, encoding: .utf8),
                   stderr: try String(contentsOf: err, encoding: .utf8))
    }

    func testPullThenModelByName() throws {
        let pulled = try kosmos(["pull", "test-org/kosmos-2-tiny", "--include", "*.json", "--include", "*.safetensors"])
        XCTAssertEqual(pulled.status, 0, pulled.stderr)
        let snapshot = home.appendingPathComponent("hf/hub/models--test-org--kosmos-2-tiny/snapshots/\(commit)")
        XCTAssertEqual(pulled.stdout.trimmingCharacters(in: .newlines), snapshot.path)
        XCTAssertTrue(pulled.stderr.contains("3 files at commit \(commit)"), pulled.stderr)
        XCTAssertTrue(pulled.stderr.contains("downloaded model.safetensors"), pulled.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: snapshot.path).sorted(), ["config.json", "model.safetensors", "tokenizer.json"])

        let byName = try kosmos(["ground", "--model", "test-org/kosmos-2-tiny", Self.fixtures.appendingPathComponent("images/inputs/rgb8_224x224.png").path])
        let byPath = try kosmos(["ground", "--model", modelFolder.path, Self.fixtures.appendingPathComponent("images/inputs/rgb8_224x224.png").path])
        XCTAssertEqual(byName.status, 0, byName.stderr)
        XCTAssertEqual(byName.stdout, byPath.stdout)
        XCTAssertFalse(byName.stdout.isEmpty)
        // Offline, from the cache: no request reaches the Hub.
        let before = hub.requests.count
        let offline = try kosmos(["info", "--model", "test-org/kosmos-2-tiny"], offline: true)
        XCTAssertEqual(offline.status, 0, offline.stderr)
        XCTAssertTrue(offline.stdout.contains("model_type: kosmos-2"), offline.stdout)
        XCTAssertEqual(hub.requests.count, before)
    }

    func testModelByNameNeedsAPullOrTheFlag() throws {
        let missing = try kosmos(["info", "--model", "test-org/kosmos-2-tiny"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("kosmos pull test-org/kosmos-2-tiny"), missing.stderr)
        XCTAssertTrue(hub.requests.isEmpty)

        let flagged = try kosmos(["info", "--model", "test-org/kosmos-2-tiny", "--pull"])
        XCTAssertEqual(flagged.status, 0, flagged.stderr)
        XCTAssertTrue(flagged.stdout.contains("model_type: kosmos-2"), flagged.stdout)
        XCTAssertTrue(flagged.stderr.contains("4 files at commit"), flagged.stderr)
    }

    func testPullErrorsAreClear() throws {
        let unknown = try kosmos(["pull", "test-org/nothing-here"])
        XCTAssertNotEqual(unknown.status, 0)
        XCTAssertTrue(unknown.stderr.contains("'test-org/nothing-here' was not found on the Hub"), unknown.stderr)
        let revision = try kosmos(["pull", "test-org/kosmos-2-tiny@no-such-branch"])
        XCTAssertTrue(revision.stderr.contains("has no revision 'no-such-branch'"), revision.stderr)
        let malformed = try kosmos(["pull", "not a repository"])
        XCTAssertNotEqual(malformed.status, 0)
        XCTAssertTrue(malformed.stderr.contains("not a Hub repository name"), malformed.stderr)
        let offline = try kosmos(["pull", "test-org/kosmos-2-tiny"], offline: true)
        XCTAssertNotEqual(offline.status, 0)
        XCTAssertTrue(offline.stderr.contains("HF_HUB_OFFLINE"), offline.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: home.appendingPathComponent("hf/hub/models--test-org--kosmos-2-tiny/snapshots").path))
    }
}
