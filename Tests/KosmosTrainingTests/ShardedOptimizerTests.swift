import Foundation
import XCTest
@testable import KosmosTraining

/// The ZeRO-1 code path (flat layout, reduce-scatter, sharded AdamW, all-gather, gathered
/// checkpoints) with one process: one shard holding everything must give the plain AdamW run's
/// bytes exactly, and its checkpoints must resume either way. The 2-process comparisons are in
/// DistributedTrainingTests (scripts/test-mpi.sh).
final class ShardedOptimizerTests: XCTestCase {
    func testZeroStageOneWithOneProcessEqualsAdamWBitForBit() throws {
        let plainDir = try TrainingTestSupport.temporaryDirectory("zero-plain")
        let shardedDir = try TrainingTestSupport.temporaryDirectory("zero-sharded")
        defer { for d in [plainDir, shardedDir] { try? FileManager.default.removeItem(at: d) } }
        try Trainer(configuration: try TrainingTestSupport.tinyConfiguration(directory: plainDir, steps: 6, checkpointEvery: 3), resume: false).run()
        var c = try TrainingTestSupport.tinyConfiguration(directory: shardedDir, steps: 6, checkpointEvery: 3)
        c.distributed.zeroStage = 1
        let sharded = try Trainer(configuration: c, resume: false)
        XCTAssertNotNil(sharded.stepper.sharded)
        try sharded.run(stopAfter: 4)
        // Resume the sharded run from step 3 (its checkpoint is in AdamW's format).
        try Trainer(configuration: c, resume: true).run()
        for file in ["model.safetensors", "optimizer.safetensors", "trainer_state.json"] {
            XCTAssertEqual(try TrainingTestSupport.bytes(plainDir.appendingPathComponent("step-00000006/\(file)")),
                           try TrainingTestSupport.bytes(shardedDir.appendingPathComponent("step-00000006/\(file)")), file)
        }
        XCTAssertEqual(try TrainingTestSupport.loggedLosses(plainDir.appendingPathComponent("metrics.jsonl")),
                       try TrainingTestSupport.loggedLosses(shardedDir.appendingPathComponent("metrics.jsonl")))
    }

    /// An unsharded checkpoint resumes with ZeRO-1 and continues identically.
    func testUnshardedCheckpointResumesSharded() throws {
        let plainDir = try TrainingTestSupport.temporaryDirectory("zero-switch-plain")
        let switchDir = try TrainingTestSupport.temporaryDirectory("zero-switch")
        defer { for d in [plainDir, switchDir] { try? FileManager.default.removeItem(at: d) } }
        try Trainer(configuration: try TrainingTestSupport.tinyConfiguration(directory: plainDir, steps: 4, checkpointEvery: 2), resume: false).run()
        var c = try TrainingTestSupport.tinyConfiguration(directory: switchDir, steps: 4, checkpointEvery: 2)
        try Trainer(configuration: c, resume: false).run(stopAfter: 2)
        c.distributed.zeroStage = 1
        try Trainer(configuration: c, resume: true).run()
        XCTAssertEqual(try TrainingTestSupport.bytes(plainDir.appendingPathComponent("step-00000004/model.safetensors")),
                       try TrainingTestSupport.bytes(switchDir.appendingPathComponent("step-00000004/model.safetensors")))
    }

    /// A checkpoint of one process refuses to resume in a job of another size, saying why.
    func testResumeWithAnotherWorldSizeIsRefused() throws {
        let dir = try TrainingTestSupport.temporaryDirectory("world-size")
        defer { try? FileManager.default.removeItem(at: dir) }
        let c = try TrainingTestSupport.tinyConfiguration(directory: dir, steps: 4, checkpointEvery: 1)
        try Trainer(configuration: c, resume: false).run(stopAfter: 1)
        // Pretend the checkpoint came from 2 processes.
        let stateURL = dir.appendingPathComponent("step-00000001/trainer_state.json")
        var state = try JSONDecoder().decode(TrainerState.self, from: Data(contentsOf: stateURL))
        state.worldSize = 2
        try JSONEncoder().encode(state).write(to: stateURL)
        XCTAssertThrowsError(try Trainer(configuration: c, resume: true)) { e in
            XCTAssertTrue("\(e)".contains("written by a run of 2 processes and this run has 1"), "\(e)")
        }
    }

    func testSingleProcessCommunicatorCollectivesAreIdentities() throws {
        let c = SingleProcessCommunicator()
        var a: [Float] = [1, 2, 3]
        try a.withUnsafeMutableBufferPointer { try c.allReduce($0, .mean) }
        XCTAssertEqual(a, [1, 2, 3])
        var out = [Float](repeating: 0, count: 3)
        try a.withUnsafeBufferPointer { i in try out.withUnsafeMutableBufferPointer { try c.reduceScatter(i, into: $0, .sum) } }
        XCTAssertEqual(out, a)
        XCTAssertEqual(try c.allGather(bytes: [7, 8]), [[7, 8]])
        XCTAssertEqual(try c.sum([2.5]), [2.5])
    }
}
