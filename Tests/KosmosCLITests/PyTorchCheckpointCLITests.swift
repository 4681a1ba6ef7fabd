import Foundation
import XCTest
import KosmosTensor

/// A model directory with pytorch_model.bin (torch.save of the harness model's weights,
/// scripts/reference/pickle_fixtures.py): loaded by commands as its safetensors twin is, converted
/// bit for bit, and a malicious checkpoint refused by the command without running anything.
extension CLITests {
    func pytorchModelDirectory(_ name: String, checkpoint: String) throws -> URL {
        let dir = Self.root.appendingPathComponent(name)
        try? FileManager.default.removeItem(at: dir)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for file in ["config.json", "tokenizer.model"] {
            try FileManager.default.copyItem(at: Self.harness.appendingPathComponent("model/" + file), to: dir.appendingPathComponent(file))
        }
        try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent("pytorch/" + checkpoint), to: dir.appendingPathComponent("pytorch_model.bin"))
        return dir
    }

    func testPyTorchCheckpointDirectoriesLoadAndConvert() throws {
        let dir = try pytorchModelDirectory("torch-model", checkpoint: "harness_model.bin")
        let task = ["eval", "task", "--task", "copa", "--data", Self.harness.appendingPathComponent("copa_val.jsonl").path, "--model"]
        let fromBin = try succeed(task + [dir.path])
        let fromSafetensors = try succeed(task + [Self.harness.appendingPathComponent("model").path])
        XCTAssertEqual(fromBin.stdout, fromSafetensors.stdout)
        let out = Self.root.appendingPathComponent("torch-model-converted")
        try? FileManager.default.removeItem(at: out)
        let run = try succeed(["convert", "--model", dir.path, "--out", out.path])
        XCTAssertTrue(run.stdout.contains("tensors"), run.stdout)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out.path).sorted(), ["config.json", "model.safetensors", "tokenizer.model"])
        let converted = try SafeTensorsFile(url: out.appendingPathComponent("model.safetensors"))
        let original = try SafeTensorsFile(url: Self.harness.appendingPathComponent("model/model.safetensors"))
        XCTAssertEqual(converted.names, original.names)
        for name in original.names {
            XCTAssertEqual(converted.entry(name), original.entry(name))
            try original.withRawBytes(name) { a in try converted.withRawBytes(name) { b in XCTAssertEqual(Array(a), Array(b), name) } }
        }
        let again = try kosmos(["convert", "--model", dir.path, "--out", out.path])
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.stderr.contains("exists and is not empty"), again.stderr)
        let nothing = try kosmos(["convert", "--model", out.path, "--out", out.path + "-2"])
        XCTAssertTrue(nothing.stderr.contains("has no pytorch_model.bin or pytorch_model.bin.index.json to convert (it already holds model.safetensors)"), nothing.stderr)
    }

    func testMaliciousCheckpointIsRefusedByEveryLoad() throws {
        let marker = "/tmp/kosmos-unpickler-pwned"
        try? FileManager.default.removeItem(atPath: marker)
        let dir = try pytorchModelDirectory("torch-evil", checkpoint: "evil_system.bin")
        let run = try kosmos(["generate", "--model", dir.path, "--prompt", "hello", "--max-tokens", "2"])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("refused the global posix.system"), run.stderr)
        let convert = try kosmos(["convert", "--model", dir.path, "--out", Self.root.appendingPathComponent("torch-evil-out").path])
        XCTAssertTrue(convert.stderr.contains("refused the global posix.system"), convert.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker))
    }
}
