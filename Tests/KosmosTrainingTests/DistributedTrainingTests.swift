import Foundation
import KosmosTensor
import XCTest
@testable import KosmosTraining

/// `kosmos train` under `mpirun` with 2 processes (docs/distributed.md). These tests run only when
/// KOSMOS_MPIRUN holds the launcher command (scripts/test-mpi.sh sets it to
/// `mpirun --allow-run-as-root --oversubscribe -np 2`) and the `kosmos` next to the test bundle
/// was built with `--traits MPI`; otherwise they are skipped.
final class DistributedTrainingTests: XCTestCase {
    var launcher: [String] = []

    override func setUpWithError() throws {
        guard let value = ProcessInfo.processInfo.environment["KOSMOS_MPIRUN"], !value.isEmpty else {
            throw XCTSkip("KOSMOS_MPIRUN is not set (run scripts/test-mpi.sh)")
        }
        launcher = value.split(separator: " ").map(String.init)
    }

    /// The tiny model of TrainingTestSupport without dropout (so that the runs compared draw no
    /// random numbers after initialisation), on one caption source whose samples (18 to 21 tokens)
    /// do not fit twice in a 32-token sequence, so every packed sequence holds exactly one sample:
    /// then the sequences of a step are the same set whether one process reads them all or two
    /// read alternate ones (rank r takes positions r, r+2, ... of the seeded order).
    static func configuration(directory: URL, batchSize: Int, steps: Int, zeroStage: Int = 0, checkpointEvery: Int = 0,
                              timeout: Double = 120) -> String {
        """
        {
          "model": {"config": {
            "model_type": "kosmos-1", "vocab_size": 67, "image_token_id": 65, "image_end_token_id": 66,
            "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 3, "num_image_tokens": 4,
            "decoder": {"vocab_size": 67, "padding_idx": 3, "decoder_embed_dim": 32, "decoder_ffn_embed_dim": 64,
                        "decoder_attention_heads": 4, "decoder_layers": 2, "max_target_positions": 128,
                        "xpos_rel_pos": true, "subln": true, "dropout": 0, "attention_dropout": 0},
            "vision": {"hidden_size": 24, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
                       "image_size": 16, "patch_size": 8},
            "resampler": {"dim": 24, "depth": 1, "dim_head": 6, "heads": 4, "num_latents": 4, "num_media_embeds": 1}
          }},
          "tokenizer": "\(TrainingTestSupport.demoTokenizer.path)",
          "data": {"sources": [{"path": "synthetic:500", "synthetic_seed": 7, "caption_prefix": "An image of"}],
                   "sequence_length": 32, "batch_size": \(batchSize), "workers": 1},
          "optimizer": {"lr": 3e-3, "weight_decay": 0.05, "max_grad_norm": 0.5},
          "schedule": {"kind": "cosine", "warmup_steps": 2},
          "train": {"steps": \(steps), "grad_accumulation": 2, "seed": 11, "vision_freeze": "none"},
          "checkpoint": {"directory": "\(directory.path)", "every": \(checkpointEvery), "keep": 3},
          "log": {"every": 1},
          "distributed": {"zero_stage": \(zeroStage), "timeout_seconds": \(timeout)}
        }
        """
    }

    struct Job {
        let process: Process
        let log: URL
        var output: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }
    }

    /// Starts `kosmos train` (under the launcher when `distributed`), output to a log file.
    func train(_ directory: URL, json: String, distributed: Bool, resume: Bool = false, marker: String = "",
               resumeFlags: [String] = ["--resume"]) throws -> Job {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let config = directory.appendingPathComponent("train.json")
        try json.write(to: config, atomically: true, encoding: .utf8)
        let log = directory.appendingPathComponent(resume ? "output-resumed.log" : "output.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        let p = Process()
        var arguments = [KillResumeTests.executable.path, "train", "--config", config.path] + (resume ? resumeFlags : [])
        if distributed { arguments = launcher + arguments }
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        // One compute thread per process, as the ranks share the machine's cores.
        environment["KOSMOS_NUM_THREADS"] = "1"
        environment["OPENBLAS_NUM_THREADS"] = "1"
        environment["KOSMOS_TEST_JOB"] = marker
        p.environment = environment
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        return Job(process: p, log: log)
    }

    func finish(_ job: Job, within seconds: Double = 600) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while job.process.isRunning && Date() < deadline { usleep(20_000) }
        if job.process.isRunning { job.process.terminate(); return false }
        return true
    }

    func metrics(_ directory: URL) throws -> [MetricsRecord] {
        let text = try String(contentsOf: directory.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        return try text.split(separator: "\n").map { try JSONDecoder().decode(MetricsRecord.self, from: Data($0.utf8)) }
    }

    /// The largest absolute difference between two model files' tensors (same names required).
    func largestDifference(_ a: URL, _ b: URL) throws -> (Float, String) {
        let fa = try SafeTensorsFile(url: a), fb = try SafeTensorsFile(url: b)
        XCTAssertEqual(fa.names, fb.names)
        var worst: (Float, String) = (0, "")
        for name in fa.names {
            let x = try fa.floats(name), y = try fb.floats(name)
            XCTAssertEqual(x.count, y.count, name)
            for (u, v) in zip(x, y) {
                let d = u.isNaN || v.isNaN ? Float.infinity : abs(u - v)
                if d > worst.0 { worst = (d, name) }
            }
        }
        return worst
    }

    func requireExecutable() {
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: KillResumeTests.executable.path),
                      "build kosmos with --traits MPI first: \(KillResumeTests.executable.path)")
    }

    /// 2 ranks × batch b (× 2 micro-batches each) against 1 process × batch 2b: the same global
    /// batch, so the same losses and weights after 5 steps up to float32 summation order.
    ///
    /// Tolerances: the two runs add the same per-token terms in a different order (each rank sums
    /// its own micro-batches, then the all-reduce adds the ranks; BLAS also blocks a 6-row batch
    /// differently from a 3-row one), so gradients agree to a few float32 ulps (~1e-7 relative).
    /// Losses are means of the same terms: 1e-5 relative is ~100× that. Weights move by at most
    /// lr = 3e-3 per AdamW step, whose update m/(√v+ε) changes by ~1e-6 relative for such a
    /// gradient perturbation, so after 5 steps they agree to ~1e-7; 2e-5 absolute leaves room
    /// for elements whose tiny gradients make m/√v sensitive, and is still ~100× below a step.
    func testTwoRanksOfBatchBEqualOneProcessOfBatchTwoB() throws {
        requireExecutable()
        let one = try TrainingTestSupport.temporaryDirectory("dp-one")
        let two = try TrainingTestSupport.temporaryDirectory("dp-two")
        defer { for d in [one, two] { try? FileManager.default.removeItem(at: d) } }
        let single = try train(one, json: Self.configuration(directory: one, batchSize: 6, steps: 5), distributed: false)
        XCTAssertTrue(finish(single))
        XCTAssertEqual(single.process.terminationStatus, 0, single.output)
        let pair = try train(two, json: Self.configuration(directory: two, batchSize: 3, steps: 5), distributed: true)
        XCTAssertTrue(finish(pair))
        XCTAssertEqual(pair.process.terminationStatus, 0, pair.output)
        XCTAssertTrue(pair.output.contains("distributed: 2 process(es)"), pair.output)

        let a = try metrics(one), b = try metrics(two)
        XCTAssertEqual(a.map(\.step), [1, 2, 3, 4, 5])
        XCTAssertEqual(b.map(\.step), [1, 2, 3, 4, 5], "only rank 0 logs")
        for (x, y) in zip(a, b) {
            // Equal token counts per step: the two runs packed the same sequences.
            XCTAssertEqual(x.tokens, y.tokens, "step \(x.step)")
            XCTAssertEqual(x.images, y.images, "step \(x.step)")
            XCTAssertEqual(x.loss, y.loss, accuracy: 1e-5 * abs(x.loss), "step \(x.step)")
            XCTAssertEqual(x.gradNorm, y.gradNorm, accuracy: 1e-4 * abs(x.gradNorm), "step \(x.step)")
        }
        let (worst, name) = try largestDifference(one.appendingPathComponent("step-00000005/model.safetensors"),
                                                  two.appendingPathComponent("step-00000005/model.safetensors"))
        print("1 × 2b vs 2 × b after 5 steps: largest weight difference \(worst) (\(name)); losses \(a.map(\.loss)) vs \(b.map(\.loss))")
        XCTAssertLessThan(worst, 2e-5, name)
        // Only rank 0 wrote: one checkpoint folder, no partial folders of another process.
        let names = try FileManager.default.contentsOfDirectory(atPath: two.path).filter { $0.hasPrefix("step-") || $0.hasPrefix(".step") }
        XCTAssertEqual(names, ["step-00000005"])

        // The 2-process checkpoint refuses to resume in one process, saying why.
        let alone = try train(two, json: Self.configuration(directory: two, batchSize: 3, steps: 5), distributed: false, resume: true)
        XCTAssertTrue(finish(alone))
        XCTAssertNotEqual(alone.process.terminationStatus, 0)
        XCTAssertTrue(alone.output.contains("written by a run of 2 processes and this run has 1"), alone.output)
    }

    /// ZeRO stage 1 across 2 ranks against replicated AdamW across 2 ranks: the same numbers. The
    /// gradient each element sees is the same two-term sum; only the global norm's float64 partial
    /// sums are grouped differently (by shard instead of by parameter), which can move the clip
    /// coefficient by one float32 ulp at most, hence 1e-6 instead of exact equality. Then the
    /// sharded run resumes from its checkpoint and ends where the straight one did.
    func testZeroStageOneEqualsReplicatedOptimizerAcrossTwoRanks() throws {
        requireExecutable()
        let plain = try TrainingTestSupport.temporaryDirectory("zero0")
        let sharded = try TrainingTestSupport.temporaryDirectory("zero1")
        defer { for d in [plain, sharded] { try? FileManager.default.removeItem(at: d) } }
        let a = try train(plain, json: Self.configuration(directory: plain, batchSize: 3, steps: 5, checkpointEvery: 3), distributed: true)
        XCTAssertTrue(finish(a))
        XCTAssertEqual(a.process.terminationStatus, 0, a.output)
        let json = Self.configuration(directory: sharded, batchSize: 3, steps: 5, zeroStage: 1, checkpointEvery: 3)
        let b = try train(sharded, json: json, distributed: true)
        XCTAssertTrue(finish(b))
        XCTAssertEqual(b.process.terminationStatus, 0, b.output)
        XCTAssertTrue(b.output.contains("ZeRO stage 1"), b.output)

        for (x, y) in zip(try metrics(plain), try metrics(sharded)) {
            XCTAssertEqual(x.loss, y.loss, accuracy: 1e-6 * abs(x.loss), "step \(x.step)")
        }
        let final = "step-00000005/"
        let (worst, name) = try largestDifference(plain.appendingPathComponent(final + "model.safetensors"),
                                                  sharded.appendingPathComponent(final + "model.safetensors"))
        let (worstState, stateName) = try largestDifference(plain.appendingPathComponent(final + "optimizer.safetensors"),
                                                            sharded.appendingPathComponent(final + "optimizer.safetensors"))
        print("ZeRO-1 vs replicated AdamW on 2 ranks: largest weight difference \(worst) (\(name)), optimizer state \(worstState) (\(stateName))")
        XCTAssertLessThan(worst, 1e-6, name)
        XCTAssertLessThan(worstState, 1e-6, stateName)

        // Resume the sharded run from step 3: the same bytes as its straight run.
        let straightBytes = try Data(contentsOf: sharded.appendingPathComponent(final + "model.safetensors"))
        try FileManager.default.removeItem(at: sharded.appendingPathComponent("step-00000005"))
        let resumed = try train(sharded, json: json, distributed: true, resume: true)
        XCTAssertTrue(finish(resumed))
        XCTAssertEqual(resumed.process.terminationStatus, 0, resumed.output)
        XCTAssertTrue(resumed.output.contains("at step 3"), resumed.output)
        XCTAssertEqual(try Data(contentsOf: sharded.appendingPathComponent(final + "model.safetensors")), straightBytes)
    }

    /// Processes (pid) whose environment has KOSMOS_TEST_JOB=marker and the given MPI rank.
    func rankProcess(marker: String, rank: Int) -> pid_t? {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return nil }
        for entry in entries {
            guard let pid = pid_t(entry), let data = FileManager.default.contents(atPath: "/proc/\(entry)/environ") else { continue }
            let variables = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            if variables.contains("KOSMOS_TEST_JOB=\(marker)") && variables.contains("OMPI_COMM_WORLD_RANK=\(rank)") { return pid }
        }
        return nil
    }

    /// SIGKILL rank 1 mid-run: the job ends, with a non-zero status and a message, within a
    /// bounded time (no hang); `--resume` then continues from the last complete checkpoint and ends
    /// with the same weights as a run never interrupted.
    func testKilledRankEndsTheJobWithAnErrorAndResumeContinues() throws {
        requireExecutable()
        let straight = try TrainingTestSupport.temporaryDirectory("kill-straight")
        let killed = try TrainingTestSupport.temporaryDirectory("kill-rank")
        defer { for d in [straight, killed] { try? FileManager.default.removeItem(at: d) } }
        let steps = 24
        let s = try train(straight, json: Self.configuration(directory: straight, batchSize: 3, steps: steps, checkpointEvery: 2), distributed: true)
        XCTAssertTrue(finish(s))
        XCTAssertEqual(s.process.terminationStatus, 0, s.output)

        let marker = UUID().uuidString
        let json = Self.configuration(directory: killed, batchSize: 3, steps: steps, checkpointEvery: 2)
        let job = try train(killed, json: json, distributed: true, marker: marker)
        let store = CheckpointStore(directory: killed)
        let deadline = Date().addingTimeInterval(300)
        while (store.newest?.step ?? 0) < 4 && job.process.isRunning && Date() < deadline { usleep(5_000) }
        guard let victim = rankProcess(marker: marker, rank: 1) else {
            job.process.terminate()
            return XCTFail("rank 1 not found (is the launcher Open MPI?)\n\(job.output)")
        }
        XCTAssertTrue(job.process.isRunning, "the run ended before rank 1 could be killed; make it longer")
        kill(victim, SIGKILL)
        let killedAt = Date()
        XCTAssertTrue(finish(job, within: 60), "the job still runs 60 s after rank 1 was killed:\n\(job.output)")
        print("job ended \(String(format: "%.1f", Date().timeIntervalSince(killedAt))) s after rank 1 was killed; status \(job.process.terminationStatus)")
        XCTAssertNotEqual(job.process.terminationStatus, 0, job.output)
        XCTAssertTrue(job.output.lowercased().contains("signal 9") || job.output.contains("kosmos rank 0"), job.output)
        let last = store.newest?.step ?? 0
        XCTAssertGreaterThanOrEqual(last, 4)
        XCTAssertLessThan(last, steps)

        let resumed = try train(killed, json: json, distributed: true, resume: true)
        XCTAssertTrue(finish(resumed))
        XCTAssertEqual(resumed.process.terminationStatus, 0, resumed.output)
        XCTAssertTrue(resumed.output.contains("at step \(last)"), resumed.output)
        let final = CheckpointStore.name(step: steps)
        for file in ["model.safetensors", "optimizer.safetensors", "trainer_state.json"] {
            XCTAssertEqual(try Data(contentsOf: straight.appendingPathComponent("\(final)/\(file)")),
                           try Data(contentsOf: killed.appendingPathComponent("\(final)/\(file)")), file)
        }
        XCTAssertEqual(try metrics(straight).map(\.loss), try metrics(killed).map(\.loss))
    }

    /// SIGTERM to rank 1 alone (a node being drained): both ranks agree on the step to stop at, the
    /// checkpoint of that step is written, the job exits 75, and `--resume auto` continues to the
    /// weights of a run never stopped.
    func testSigtermToOneRankStopsEveryRankAtTheSameStep() throws {
        requireExecutable()
        let straight = try TrainingTestSupport.temporaryDirectory("term-straight")
        let stopped = try TrainingTestSupport.temporaryDirectory("term-rank")
        defer { for d in [straight, stopped] { try? FileManager.default.removeItem(at: d) } }
        let steps = 24
        let json = { (dir: URL) in Self.configuration(directory: dir, batchSize: 3, steps: steps, checkpointEvery: 8) }
        let s = try train(straight, json: json(straight), distributed: true)
        XCTAssertTrue(finish(s))
        XCTAssertEqual(s.process.terminationStatus, 0, s.output)

        let marker = UUID().uuidString
        let job = try train(stopped, json: json(stopped), distributed: true, marker: marker)
        let metricsFile = stopped.appendingPathComponent("metrics.jsonl")
        func logged() -> Int { ((try? String(contentsOf: metricsFile, encoding: .utf8)) ?? "").split(separator: "\n").count }
        let deadline = Date().addingTimeInterval(300)
        while logged() < 3 && job.process.isRunning && Date() < deadline { usleep(5_000) }
        guard let victim = rankProcess(marker: marker, rank: 1) else {
            job.process.terminate()
            return XCTFail("rank 1 not found (is the launcher Open MPI?)\n\(job.output)")
        }
        XCTAssertTrue(job.process.isRunning, "the run ended before rank 1 could be signalled; make it longer")
        kill(victim, SIGTERM)
        XCTAssertTrue(finish(job, within: 120), "the job still runs 120 s after SIGTERM:\n\(job.output)")
        XCTAssertEqual(job.process.terminationStatus, 75, job.output)
        let store = CheckpointStore(directory: stopped)
        let at = try XCTUnwrap(store.newest?.step)
        XCTAssertLessThan(at, steps)
        XCTAssertTrue(job.output.contains("stopped at step \(at) of \(steps) by SIGTERM"), job.output)

        let resumed = try train(stopped, json: json(stopped), distributed: true, resume: true, resumeFlags: ["--resume", "auto"])
        XCTAssertTrue(finish(resumed))
        XCTAssertEqual(resumed.process.terminationStatus, 0, resumed.output)
        XCTAssertTrue(resumed.output.contains("at step \(at)"), resumed.output)
        let final = CheckpointStore.name(step: steps)
        for file in ["model.safetensors", "optimizer.safetensors", "trainer_state.json"] {
            XCTAssertEqual(try Data(contentsOf: straight.appendingPathComponent("\(final)/\(file)")),
                           try Data(contentsOf: stopped.appendingPathComponent("\(final)/\(file)")), file)
        }
        XCTAssertEqual(try metrics(straight).map(\.loss), try metrics(stopped).map(\.loss))
    }

    /// A rank that stops responding (SIGSTOP, as a hung node) trips the others' watchdog after
    /// distributed.timeout_seconds: the job ends with the watchdog's message instead of hanging.
    func testHungRankTripsTheWatchdog() throws {
        requireExecutable()
        let dir = try TrainingTestSupport.temporaryDirectory("hang")
        defer { try? FileManager.default.removeItem(at: dir) }
        let marker = UUID().uuidString
        let job = try train(dir, json: Self.configuration(directory: dir, batchSize: 3, steps: 400, checkpointEvery: 2, timeout: 4),
                            distributed: true, marker: marker)
        let store = CheckpointStore(directory: dir)
        let deadline = Date().addingTimeInterval(300)
        while (store.newest?.step ?? 0) < 2 && job.process.isRunning && Date() < deadline { usleep(5_000) }
        guard let victim = rankProcess(marker: marker, rank: 1) else {
            job.process.terminate()
            return XCTFail("rank 1 not found\n\(job.output)")
        }
        kill(victim, SIGSTOP)
        let stoppedAt = Date()
        XCTAssertTrue(finish(job, within: 60), "the job still runs 60 s after rank 1 stopped:\n\(job.output)")
        kill(victim, SIGKILL)
        print("job ended \(String(format: "%.1f", Date().timeIntervalSince(stoppedAt))) s after rank 1 stopped")
        XCTAssertNotEqual(job.process.terminationStatus, 0)
        XCTAssertTrue(job.output.contains("has waited"), job.output)
    }
}
