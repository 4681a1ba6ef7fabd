import Foundation
import XCTest
@testable import KosmosTraining

/// `kosmos train` in a child process, killed with SIGKILL mid-run and resumed, against a run that
/// was never interrupted: bit-identical weights and identical logged losses.
final class KillResumeTests: XCTestCase {
    /// The `kosmos` executable built next to the test bundle.
    static var executable: URL {
        let productsDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let candidates = [productsDirectory, Bundle(for: KillResumeTests.self).bundleURL.deletingLastPathComponent()]
        for dir in candidates {
            let url = dir.appendingPathComponent("kosmos")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        return candidates[0].appendingPathComponent("kosmos")
    }

    func train(_ config: URL, resume: Bool) throws -> Process {
        let p = Process()
        p.executableURL = KillResumeTests.executable
        p.arguments = ["train", "--config", config.path] + (resume ? ["--resume"] : [])
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }

    func testSigkillMidRunThenResumeEqualsStraightRun() throws {
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: KillResumeTests.executable.path),
                      "build the kosmos executable first (swift build --build-tests builds it): \(KillResumeTests.executable.path)")
        let steps = 24
        let straightDir = try TrainingTestSupport.temporaryDirectory("kill-straight")
        let killedDir = try TrainingTestSupport.temporaryDirectory("kill-resumed")
        defer { for d in [straightDir, killedDir] { try? FileManager.default.removeItem(at: d) } }
        for dir in [straightDir, killedDir] {
            try TrainingTestSupport.tinyConfigurationJSON(directory: dir, steps: steps, checkpointEvery: 4, keep: 2)
                .write(to: dir.appendingPathComponent("train.json"), atomically: true, encoding: .utf8)
        }

        let straight = try train(straightDir.appendingPathComponent("train.json"), resume: false)
        straight.waitUntilExit()
        XCTAssertEqual(straight.terminationStatus, 0)

        // Kill as soon as a checkpoint beyond the first exists, plus a random delay of up to two
        // steps, so the kill lands at varying points (mid-step, mid-checkpoint write). The delay is
        // measured in this run's own steps (the time from checkpoint 4 to checkpoint 8), so 14 of
        // the 16 steps left remain whatever the machine's speed.
        let child = try train(killedDir.appendingPathComponent("train.json"), resume: false)
        let store = CheckpointStore(directory: killedDir)
        let deadline = Date().addingTimeInterval(300)
        while (store.newest?.step ?? 0) < 4 && child.isRunning && Date() < deadline { usleep(1_000) }
        let fourth = Date()
        while (store.newest?.step ?? 0) < 8 && child.isRunning && Date() < deadline { usleep(1_000) }
        let step = Date().timeIntervalSince(fourth) / 4
        usleep(UInt32(Double.random(in: 0...(2 * step)) * 1e6))
        XCTAssertTrue(child.isRunning, "the run finished before it could be killed")
        kill(child.processIdentifier, SIGKILL)
        child.waitUntilExit()
        XCTAssertEqual(child.terminationReason, .uncaughtSignal)
        let killedAt = store.newest?.step ?? 0
        XCTAssertGreaterThanOrEqual(killedAt, 8)
        XCTAssertLessThan(killedAt, steps)

        let resumed = try train(killedDir.appendingPathComponent("train.json"), resume: true)
        resumed.waitUntilExit()
        XCTAssertEqual(resumed.terminationStatus, 0)

        let final = CheckpointStore.name(step: steps)
        for file in ["model.safetensors", "optimizer.safetensors", "trainer_state.json"] {
            XCTAssertEqual(try TrainingTestSupport.bytes(straightDir.appendingPathComponent("\(final)/\(file)")),
                           try TrainingTestSupport.bytes(killedDir.appendingPathComponent("\(final)/\(file)")), file)
        }
        let a = try TrainingTestSupport.loggedLosses(straightDir.appendingPathComponent("metrics.jsonl"))
        let b = try TrainingTestSupport.loggedLosses(killedDir.appendingPathComponent("metrics.jsonl"))
        XCTAssertEqual(a.count, steps / 2)
        XCTAssertEqual(a, b)
        XCTAssertEqual(store.complete().count, 2, "keep 2")
    }
}
