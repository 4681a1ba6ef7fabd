import Foundation
import XCTest
@testable import KosmosTraining

final class ResumeTests: XCTestCase {
    /// Straight N steps vs k steps, a new Trainer (as a new process would build it) resumed from the
    /// checkpoint, then N: identical weight bytes, optimizer state and logged losses.
    func testResumeInProcessIsBitIdentical() throws {
        let losses = try assertResumeIsBitIdentical(dtype: "float32")
        // Mixed precision resumes exactly too, and is a different run (its products are bfloat16).
        let mixed = try assertResumeIsBitIdentical(dtype: "bfloat16")
        XCTAssertEqual(losses.keys.sorted(), mixed.keys.sorted())
        XCTAssertNotEqual(losses, mixed)
        for (step, loss) in losses { XCTAssertEqual(mixed[step]!, loss, accuracy: 0.05 * loss, "step \(step)") }
    }

    /// The straight and resumed runs of the tiny configuration with `train.dtype`; returns the logged losses.
    func assertResumeIsBitIdentical(dtype: String, file: StaticString = #filePath, line: UInt = #line) throws -> [Int: Double] {
        let straightDir = try TrainingTestSupport.temporaryDirectory("straight")
        let resumedDir = try TrainingTestSupport.temporaryDirectory("resumed")
        defer { for d in [straightDir, resumedDir] { try? FileManager.default.removeItem(at: d) } }

        var straightConfiguration = try TrainingTestSupport.tinyConfiguration(directory: straightDir, steps: 8, checkpointEvery: 3)
        straightConfiguration.train.dtype = dtype
        try Trainer(configuration: straightConfiguration, resume: false).run()

        var c = try TrainingTestSupport.tinyConfiguration(directory: resumedDir, steps: 8, checkpointEvery: 3)
        c.train.dtype = dtype
        let first = try Trainer(configuration: c, resume: false)
        try first.run(stopAfter: 5)   // checkpoint at 3; steps 4 and 5 are lost as if killed
        XCTAssertEqual(first.step, 5, file: file, line: line)
        let second = try Trainer(configuration: c, resume: true)
        XCTAssertEqual(second.step, 3, file: file, line: line)
        XCTAssertEqual(second.resumedFrom?.lastPathComponent, "step-00000003", file: file, line: line)
        try second.run()

        for name in ["model.safetensors", "optimizer.safetensors", "trainer_state.json"] {
            XCTAssertEqual(try TrainingTestSupport.bytes(straightDir.appendingPathComponent("step-00000008/\(name)")),
                           try TrainingTestSupport.bytes(resumedDir.appendingPathComponent("step-00000008/\(name)")),
                           "\(dtype) \(name)", file: file, line: line)
        }
        let straight = try TrainingTestSupport.loggedLosses(straightDir.appendingPathComponent("metrics.jsonl"))
        let resumed = try TrainingTestSupport.loggedLosses(resumedDir.appendingPathComponent("metrics.jsonl"))
        XCTAssertEqual(straight.keys.sorted(), [2, 4, 6, 8], file: file, line: line)
        XCTAssertEqual(straight, resumed, dtype, file: file, line: line)
        // The model folder of a checkpoint is a model directory the other commands load.
        XCTAssertNoThrow(try KosmosModelLoadCheck.load(straightDir.appendingPathComponent("latest")), file: file, line: line)
        return straight
    }

    /// `train.checkpoint_activations` recomputes each decoder layer in the backward pass: the run's
    /// losses equal the plain run's (to float32 summation order: the gradients accumulate in
    /// another order) and the weights after it are as close.
    func testCheckpointedActivationsTrainAsThePlainRun() throws {
        let plainDir = try TrainingTestSupport.temporaryDirectory("plain")
        let checkpointedDir = try TrainingTestSupport.temporaryDirectory("recomputed")
        defer { for d in [plainDir, checkpointedDir] { try? FileManager.default.removeItem(at: d) } }
        try Trainer(configuration: try TrainingTestSupport.tinyConfiguration(directory: plainDir, steps: 6, checkpointEvery: 0), resume: false).run()
        var c = try TrainingTestSupport.tinyConfiguration(directory: checkpointedDir, steps: 6, checkpointEvery: 0)
        c.train.checkpointActivations = true
        let trainer = try Trainer(configuration: c, resume: false)
        XCTAssertTrue(trainer.model.decoder.checkpointActivations)
        try trainer.run()
        let plain = try TrainingTestSupport.loggedLosses(plainDir.appendingPathComponent("metrics.jsonl"))
        let recomputed = try TrainingTestSupport.loggedLosses(checkpointedDir.appendingPathComponent("metrics.jsonl"))
        XCTAssertEqual(plain.keys.sorted(), recomputed.keys.sorted())
        for (step, loss) in plain { XCTAssertEqual(recomputed[step]!, loss, accuracy: 1e-5 * loss, "step \(step)") }
    }

    func testResumeRefusesChangedSettingsAndMissingCheckpoints() throws {
        let dir = try TrainingTestSupport.temporaryDirectory("refuse")
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = try TrainingTestSupport.tinyConfiguration(directory: dir, steps: 4, checkpointEvery: 2)
        XCTAssertThrowsError(try Trainer(configuration: c, resume: true)) { e in
            XCTAssertTrue("\(e)".contains("no complete checkpoint"), "\(e)")
        }
        try Trainer(configuration: c, resume: false).run(stopAfter: 2)
        XCTAssertThrowsError(try Trainer(configuration: c, resume: false)) { e in
            XCTAssertTrue("\(e)".contains("already holds a run (newest checkpoint: step 2); pass --resume"), "\(e)")
        }
        c.optimizer.lr = 1e-2
        XCTAssertThrowsError(try Trainer(configuration: c, resume: true)) { e in
            XCTAssertTrue("\(e)".contains("different optimizer settings"), "\(e)")
        }
    }

    /// A write that fails midway (as when the disk fills) leaves no partial checkpoint, keeps the
    /// previous one loadable, and says so.
    func testFailedCheckpointWriteKeepsThePreviousOne() throws {
        let dir = try TrainingTestSupport.temporaryDirectory("enospc")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = CheckpointStore(directory: dir)
        _ = try store.write(step: 1, keep: 3) { d in try Data("one".utf8).write(to: d.appendingPathComponent("x")) }
        struct DiskFull: Error, CustomStringConvertible { var description: String { "No space left on device" } }
        XCTAssertThrowsError(try store.write(step: 2, keep: 3) { d in
            try Data("two".utf8).write(to: d.appendingPathComponent("x"))
            throw DiskFull()
        }) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("No space left on device"), text)
            XCTAssertTrue(text.contains("step-00000001 is intact"), text)
        }
        XCTAssertEqual(store.complete().map(\.step), [1])
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        XCTAssertEqual(names, ["latest", "step-00000001"])
        XCTAssertEqual(try String(contentsOf: dir.appendingPathComponent("latest/x"), encoding: .utf8), "one")
    }

    func testUnmarkedFoldersAreNeverLoadedAndOldOnesArePruned() throws {
        let dir = try TrainingTestSupport.temporaryDirectory("prune")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = CheckpointStore(directory: dir)
        for s in 1...4 { _ = try store.write(step: s, keep: 2) { _ in } }
        XCTAssertEqual(store.complete().map(\.step), [3, 4])
        // A folder without its marker (a crash between rename and marker cannot happen, but a
        // hand-copied or half-deleted one can) and a partial folder are ignored.
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("step-00000009"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: dir.appendingPathComponent(".step-00000010.partial-1"), withIntermediateDirectories: true)
        XCTAssertEqual(store.newest?.step, 4)
        store.removePartials()
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent(".step-00000010.partial-1").path))
    }
}

import KosmosModels
enum KosmosModelLoadCheck {
    static func load(_ url: URL) throws { _ = try KosmosModel.load(directory: url) }
}

final class DataMixTests: XCTestCase {
    /// Every data format of docs/data.md in one run: text JSONL, gzipped text, COCO captions (with a
    /// corrupt image that is skipped), WebDataset shards and interleaved documents.
    func testTrainsOnAMixOfEveryFormat() throws {
        let dir = try TrainingTestSupport.temporaryDirectory("mix")
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = TrainingTestSupport.fixtures.appendingPathComponent("data")
        var c = try TrainingTestSupport.tinyConfiguration(directory: dir, steps: 4, checkpointEvery: 0)
        c.data.sources = ["text.jsonl", "text.jsonl.gz", "images/captions.json", "shards", "interleaved.jsonl"].map {
            TrainingConfiguration.Source(path: data.appendingPathComponent($0).path)
        }
        c.data.sequenceLength = 64
        let trainer = try Trainer(configuration: c, resume: false)
        var reports: [StepReport] = []
        try trainer.run { reports.append($0) }
        XCTAssertEqual(reports.count, 4)
        XCTAssertTrue(reports.allSatisfy { $0.result.loss.isFinite && $0.result.loss > 0 })
        XCTAssertGreaterThan(reports.reduce(0) { $0 + $1.result.images }, 0, "image sources contributed images")
        XCTAssertEqual(trainer.store.newest?.step, 4, "the end of the run is always checkpointed")
        let state: TrainerState = try JSONDecoder().decode(TrainerState.self, from: Data(contentsOf: dir.appendingPathComponent("latest/trainer_state.json")))
        XCTAssertEqual(state.data.positions.count, 5)
        XCTAssertGreaterThan(state.data.tokensTaken.filter { $0 > 0 }.count, 2, "several sources were mixed")
    }
}
