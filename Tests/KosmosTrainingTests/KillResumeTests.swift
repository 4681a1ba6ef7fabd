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

    func train(_ config: URL, resume: Bool, flags: [String]? = nil) throws -> Process {
        let p = Process()
        p.executableURL = KillResumeTests.executable
        p.arguments = ["train", "--config", config.path] + (flags ?? (resume ? ["--resume"] : []))
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

        // Kill once a checkpoint beyond the first exists and the run has logged a randomly chosen
        // step between 10 and 16 (metrics.jsonl gets a line every 2 steps), so the kill lands at
        // varying points (mid-step, mid-checkpoint write) while 8 or more of the 24 steps remain:
        // every wait is for something the run does, none for a length of time.
        let child = try train(killedDir.appendingPathComponent("train.json"), resume: false)
        let store = CheckpointStore(directory: killedDir)
        let metrics = killedDir.appendingPathComponent("metrics.jsonl")
        let logged = 2 * Int.random(in: 5...8)
        func loggedStep() -> Int { ((try? String(contentsOf: metrics, encoding: .utf8)) ?? "").split(separator: "\n").count * 2 }
        let deadline = Date().addingTimeInterval(300)
        while ((store.newest?.step ?? 0) < 8 || loggedStep() < logged) && child.isRunning && Date() < deadline { usleep(1_000) }
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

    /// SIGTERM (a scheduler preempting the job): the run stops at the next step boundary, writes
    /// that step's checkpoint (not only at checkpoint.every) and exits 75; `--resume auto` then
    /// continues to the same bits as a run never stopped — which `--resume auto` also started, in
    /// a folder with no checkpoint.
    func testSigtermWritesACheckpointAndResumeAutoContinues() throws {
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: KillResumeTests.executable.path),
                      "build the kosmos executable first (swift build --build-tests builds it): \(KillResumeTests.executable.path)")
        let steps = 24
        let straightDir = try TrainingTestSupport.temporaryDirectory("term-straight")
        let stoppedDir = try TrainingTestSupport.temporaryDirectory("term-stopped")
        defer { for d in [straightDir, stoppedDir] { try? FileManager.default.removeItem(at: d) } }
        for dir in [straightDir, stoppedDir] {
            try TrainingTestSupport.tinyConfigurationJSON(directory: dir, steps: steps, checkpointEvery: 8, keep: 3)
                .write(to: dir.appendingPathComponent("train.json"), atomically: true, encoding: .utf8)
        }
        // --resume auto with nothing to resume: a fresh run.
        let straight = try train(straightDir.appendingPathComponent("train.json"), resume: false, flags: ["--resume", "auto"])
        straight.waitUntilExit()
        XCTAssertEqual(straight.terminationStatus, 0)

        let child = try train(stoppedDir.appendingPathComponent("train.json"), resume: false)
        let metrics = stoppedDir.appendingPathComponent("metrics.jsonl")
        func loggedStep() -> Int { ((try? String(contentsOf: metrics, encoding: .utf8)) ?? "").split(separator: "\n").count * 2 }
        let deadline = Date().addingTimeInterval(300)
        while loggedStep() < 10 && child.isRunning && Date() < deadline { usleep(1_000) }
        XCTAssertTrue(child.isRunning, "the run finished before it could be stopped")
        kill(child.processIdentifier, SIGTERM)
        child.waitUntilExit()
        XCTAssertEqual(child.terminationReason, .exit)
        XCTAssertEqual(child.terminationStatus, 75)
        let store = CheckpointStore(directory: stoppedDir)
        let stoppedAt = try XCTUnwrap(store.newest?.step)
        XCTAssertGreaterThanOrEqual(stoppedAt, 10)
        XCTAssertLessThan(stoppedAt, steps)
        // The checkpoint is the last step trained: the log ends there too (every 2 steps).
        XCTAssertEqual(loggedStep(), stoppedAt - stoppedAt % 2)

        let resumed = try train(stoppedDir.appendingPathComponent("train.json"), resume: false, flags: ["--resume", "auto"])
        resumed.waitUntilExit()
        XCTAssertEqual(resumed.terminationStatus, 0)
        let final = CheckpointStore.name(step: steps)
        for file in ["model.safetensors", "optimizer.safetensors", "trainer_state.json"] {
            XCTAssertEqual(try TrainingTestSupport.bytes(straightDir.appendingPathComponent("\(final)/\(file)")),
                           try TrainingTestSupport.bytes(stoppedDir.appendingPathComponent("\(final)/\(file)")), file)
        }
        XCTAssertEqual(try TrainingTestSupport.loggedLosses(straightDir.appendingPathComponent("metrics.jsonl")),
                       try TrainingTestSupport.loggedLosses(stoppedDir.appendingPathComponent("metrics.jsonl")))
    }
}
