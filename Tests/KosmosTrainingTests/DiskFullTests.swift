import Foundation
import XCTest
@testable import KosmosTraining

/// A checkpoint that does not fit leaves the previous one whole: the write fails naming both, no
/// partial folder stays behind, `latest` still points at the previous checkpoint, and it loads.
/// Always with the failure a full disk gives (ENOSPC) injected into the write, and also on a real
/// 1 MiB tmpfs when the test may mount one (root with CAP_SYS_ADMIN, as here and in CI's container
/// when it allows it).
final class DiskFullTests: XCTestCase {
    /// Mounts a tmpfs of `bytes` at `directory`; false when this process may not.
    func mountTmpfs(_ directory: URL, bytes: Int) -> Bool {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/bin/mount") else { return false }
        let mount = Process()
        mount.executableURL = URL(fileURLWithPath: "/bin/mount")
        mount.arguments = ["-t", "tmpfs", "-o", "size=\(bytes)", "tmpfs", directory.path]
        mount.standardError = FileHandle.nullDevice
        guard (try? mount.run()) != nil else { return false }
        mount.waitUntilExit()
        return mount.terminationStatus == 0
    }

    func unmount(_ directory: URL) {
        let umount = Process()
        umount.executableURL = URL(fileURLWithPath: "/bin/umount")
        umount.arguments = [directory.path]
        try? umount.run()
        umount.waitUntilExit()
    }

    func testACheckpointThatDoesNotFitLeavesThePreviousOneIntact() throws {
        let root = try TrainingTestSupport.temporaryDirectory("disk-full")
        defer { try? FileManager.default.removeItem(at: root) }
        // Always the injected failure; also a real full file system where one can be mounted.
        try check(CheckpointStore(directory: root.appendingPathComponent("injected")), realDisk: false)
        let small = root.appendingPathComponent("tmpfs")
        try FileManager.default.createDirectory(at: small, withIntermediateDirectories: true)
        let mounted = mountTmpfs(small, bytes: 1 << 20)
        defer { if mounted { unmount(small) } }
        print(mounted ? "checkpoint writes also on a 1 MiB tmpfs" : "no tmpfs here (not root, or no CAP_SYS_ADMIN): the injected failure only")
        if mounted { try check(CheckpointStore(directory: small.appendingPathComponent("run")), realDisk: true) }
    }

    func check(_ store: CheckpointStore, realDisk: Bool, file: StaticString = #filePath, line: UInt = #line) throws {
        let small = [UInt8](repeating: 7, count: 200_000)
        _ = try store.write(step: 4, keep: 3) { dir in
            try Data(small).write(to: dir.appendingPathComponent("model.safetensors"))
        }
        XCTAssertEqual(store.newest?.step, 4, file: file, line: line)

        XCTAssertThrowsError(try store.write(step: 8, keep: 3) { dir in
            if realDisk {
                // 2 MB into 1 MiB: the file system runs out part way.
                try AtomicFileTestWrite.write(count: 2_000_000, to: dir.appendingPathComponent("model.safetensors"))
            } else {
                try Data(small).write(to: dir.appendingPathComponent("model.safetensors"))
                throw NSError(domain: NSPOSIXErrorDomain, code: Int(ENOSPC), userInfo: [NSLocalizedDescriptionKey: "No space left on device"])
            }
        }, file: file, line: line) { error in
            guard case TrainingError.checkpointWrite(let step, _, let reason, let previous) = error else { return XCTFail("\(error)", file: file, line: line) }
            XCTAssertEqual(step, 8, file: file, line: line)
            XCTAssertTrue(reason.lowercased().contains("space"), reason, file: file, line: line)
            XCTAssertEqual(previous, store.directory.appendingPathComponent(CheckpointStore.name(step: 4)).path, file: file, line: line)
            XCTAssertTrue("\(error)".contains(CheckpointStore.name(step: 4)), "\(error)", file: file, line: line)
        }
        XCTAssertEqual(store.newest?.step, 4, file: file, line: line)
        XCTAssertEqual(store.complete().map(\.step), [4], file: file, line: line)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: store.directory.path).filter { $0.contains("partial") }
        XCTAssertEqual(leftovers, [], file: file, line: line)
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: store.directory.appendingPathComponent("latest").path),
                       CheckpointStore.name(step: 4), file: file, line: line)
        XCTAssertEqual(try [UInt8](Data(contentsOf: store.directory.appendingPathComponent("\(CheckpointStore.name(step: 4))/model.safetensors"))),
                       small, file: file, line: line)
        // With the space back (nothing left behind took it), the next write succeeds.
        _ = try store.write(step: 8, keep: 3) { dir in
            try Data(small).write(to: dir.appendingPathComponent("model.safetensors"))
        }
        XCTAssertEqual(store.complete().map(\.step), [4, 8], file: file, line: line)
    }
}

/// A file written in pieces, as the checkpoint writer's safetensors writer does.
enum AtomicFileTestWrite {
    static func write(count: Int, to url: URL) throws {
        _ = FileManager.default.createFile(atPath: url.path, contents: nil)
        let handle = try FileHandle(forWritingTo: url)
        defer { try? handle.close() }
        let piece = Data(repeating: 3, count: 65536)
        var written = 0
        while written < count {
            try handle.write(contentsOf: piece)
            written += piece.count
        }
        try handle.synchronize()
    }
}
