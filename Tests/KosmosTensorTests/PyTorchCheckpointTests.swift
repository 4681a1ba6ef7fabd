import Foundation
import XCTest
@testable import KosmosFormats

/// `torch.save` checkpoints read by the restricted unpickler (scripts/reference/pickle_fixtures.py):
/// every tensor equals safetensors' copy of it bit for bit, and pickles that would run code are
/// refused naming the global, with nothing run.
final class PyTorchCheckpointTests: XCTestCase {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/pytorch")

    func testStateDictEqualsTheSafetensorsCopy() throws {
        let tensors = try PyTorchCheckpoint.read(Self.directory.appendingPathComponent("state_dict.bin"))
        let expected = try SafeTensorsFile(url: Self.directory.appendingPathComponent("expected.safetensors"))
        XCTAssertEqual(tensors.keys.sorted(), expected.names)
        XCTAssertEqual(tensors.count, 15)
        for name in expected.names {
            let entry = try XCTUnwrap(expected.entry(name))
            let mine = try XCTUnwrap(tensors[name])
            XCTAssertEqual(mine.dtype, entry.dtype, name)
            XCTAssertEqual(mine.shape, entry.shape, name)
            try expected.withRawBytes(name) { XCTAssertEqual(mine.bytes, Array($0), name) }
        }
    }

    func testCodeInAPickleIsRefusedAndNotRun() throws {
        let marker = "/tmp/kosmos-unpickler-pwned"
        try? FileManager.default.removeItem(atPath: marker)
        // The names as the pickle writes them (protocol 2 maps builtins to __builtin__, subprocess to commands).
        for (file, global) in [("evil_system.bin", "posix.system"), ("evil_eval.bin", "__builtin__.eval"),
                               ("evil_exec.bin", "__builtin__.exec"), ("evil_global.bin", "commands.Popen")] {
            let url = Self.directory.appendingPathComponent(file)
            XCTAssertThrowsError(try PyTorchCheckpoint.read(url), file) { error in
                XCTAssertEqual("\(error)", "\(url.path): data.pkl: refused the global \(global): a checkpoint's pickle may only name OrderedDict, torch storages and torch's tensor-rebuild functions (nothing in it was run)")
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker))
    }

    func testOtherFilesAreRefusedClearly() throws {
        let legacy = Self.directory.appendingPathComponent("legacy.bin")
        XCTAssertThrowsError(try PyTorchCheckpoint.read(legacy)) { XCTAssertTrue("\($0)".contains("legacy format (before PyTorch 1.6"), "\($0)") }
        // A storage record shorter than its tensor (torch.load refuses it too).
        let short = Self.directory.appendingPathComponent("short_storage.bin")
        XCTAssertThrowsError(try PyTorchCheckpoint.read(short)) {
            XCTAssertTrue("\($0)".contains("w: storage 0 has 12 bytes for 8 elements of F32"), "\($0)")
        }
        let notZip = Self.directory.appendingPathComponent("expected.safetensors")
        XCTAssertThrowsError(try PyTorchCheckpoint.read(notZip)) { XCTAssertTrue("\($0)".contains("not a zip file"), "\($0)") }
        // A truncated checkpoint: the central directory is gone.
        let data = try Data(contentsOf: Self.directory.appendingPathComponent("state_dict.bin"))
        XCTAssertThrowsError(try PyTorchCheckpoint.read(data.prefix(data.count / 2), file: "cut.bin")) { XCTAssertTrue("\($0)".hasPrefix("cut.bin: "), "\($0)") }
        // Every prefix fails cleanly, none crashes.
        for n in stride(from: 0, to: data.count, by: 97) { XCTAssertThrowsError(try PyTorchCheckpoint.read(data.prefix(n), file: "cut.bin")) }
    }
}
