import Foundation
import XCTest
import KosmosModels
import KosmosTensor
@testable import KosmosTraining

final class ConfigurationTests: XCTestCase {
    func load(_ json: String, _ overrides: [String] = []) throws -> TrainingConfiguration {
        let dir = try TrainingTestSupport.temporaryDirectory("config")
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("c.json")
        try json.write(to: file, atomically: true, encoding: .utf8)
        return try TrainingConfiguration.load(file: file, overrides: overrides)
    }

    let minimal = #"{"tokenizer": "/t.model", "data": {"sources": [{"path": "synthetic:10"}]}}"#

    func assertRejected(_ json: String, _ overrides: [String] = [], field: String, _ reason: String? = nil,
                        file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try load(json, overrides), file: file, line: line) { error in
            guard let e = error as? ConfigurationError else { return XCTFail("\(error)", file: file, line: line) }
            XCTAssertEqual(e.field, field, "\(e)", file: file, line: line)
            if let reason { XCTAssertTrue(e.reason.contains(reason), "\(e)", file: file, line: line) }
        }
    }

    func testDefaultsArePaperSettings() throws {
        let c = try load(minimal)
        XCTAssertEqual(c.optimizer.lr, 2e-4)
        XCTAssertEqual(c.optimizer.beta1, 0.9)
        XCTAssertEqual(c.optimizer.beta2, 0.98)
        XCTAssertEqual(c.optimizer.eps, 1e-6)
        XCTAssertEqual(c.optimizer.weightDecay, 0.01)
        XCTAssertEqual(c.schedule.warmupSteps, 375)
        XCTAssertEqual(c.schedule.kind, "linear")
        XCTAssertEqual(c.freezePolicy, .allButLastLayer)
        XCTAssertEqual(c.model.preset, "kosmos-tiny")
        XCTAssertEqual(c.computeDType, .float32)
    }

    func testOverridesParseJSONValuesAndCreateSections() throws {
        let c = try load(minimal, ["optimizer.lr=1e-4", "train.steps=2000", "data.shuffle=false", "schedule.kind=cosine",
                                   "checkpoint.directory=/tmp/x", "train.vision_freeze=\"none\""])
        XCTAssertEqual(c.optimizer.lr, 1e-4)
        XCTAssertEqual(c.train.steps, 2000)
        XCTAssertFalse(c.data.shuffle)
        XCTAssertEqual(c.schedule.kind, "cosine")
        XCTAssertEqual(c.checkpoint.directory, "/tmp/x")
        XCTAssertEqual(c.freezePolicy, VisionFreezePolicy.none)
        XCTAssertEqual(try load(minimal, ["train.dtype=bf16"]).computeDType, .bfloat16)
        XCTAssertFalse(try load(minimal, []).train.checkpointActivations)
        XCTAssertTrue(try load(minimal, ["train.checkpoint_activations=true"]).train.checkpointActivations)
    }

    func testPathsResolveAgainstTheFile() throws {
        let dir = try TrainingTestSupport.temporaryDirectory("paths")
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("c.json")
        try #"{"tokenizer": "tok/t.model", "data": {"sources": [{"path": "d.jsonl"}, {"path": "synthetic:5"}]}, "checkpoint": {"directory": "run"}}"#
            .write(to: file, atomically: true, encoding: .utf8)
        let c = try TrainingConfiguration.load(file: file)
        XCTAssertEqual(c.tokenizer, dir.appendingPathComponent("tok/t.model").standardizedFileURL.path)
        XCTAssertEqual(c.data.sources[0].path, dir.appendingPathComponent("d.jsonl").standardizedFileURL.path)
        XCTAssertEqual(c.data.sources[1].path, "synthetic:5")
        XCTAssertEqual(c.checkpoint.directory, dir.appendingPathComponent("run").standardizedFileURL.path)
    }

    func testUnknownKeysAreRejectedWithTheirPath() {
        assertRejected(#"{"tokenizer": "/t", "data": {"sources": [{"path": "a"}]}, "optimiser": {}}"#, field: "optimiser", "unknown key")
        assertRejected(minimal, ["optimizer.learning_rate=1"], field: "optimizer.learning_rate", "unknown key")
        assertRejected(#"{"tokenizer": "/t", "data": {"sources": [{"path": "a", "wieght": 2}]}}"#, field: "data.sources[0].wieght")
        // Inside the inline model configuration too, at any depth.
        assertRejected(#"{"model": {"config": {"decoder": {"decoder_layer": 3}}}, "tokenizer": "/t", "data": {"sources": [{"path": "a"}]}}"#,
                       field: "model.config.decoder.decoder_layer", "unknown key")
        assertRejected(#"{"model": {"config": {"num_image_token": 3}}, "tokenizer": "/t", "data": {"sources": [{"path": "a"}]}}"#,
                       field: "model.config.num_image_token", "unknown key")
    }

    func testWrongTypesAreRejectedWithTheirPath() {
        assertRejected(minimal, ["optimizer.lr=fast"], field: "optimizer.lr", "number")
        assertRejected(minimal, ["train.steps=1.5"], field: "train.steps")
        assertRejected(minimal, ["data.shuffle=3"], field: "data.shuffle")
        assertRejected(#"{"tokenizer": "/t", "data": {"sources": "a.jsonl"}}"#, field: "data.sources", "array")
        assertRejected(minimal, ["optimizer=3"], field: "optimizer", "object")
    }

    func testImpossibleValuesAreRejected() {
        assertRejected(minimal, ["optimizer.lr=0"], field: "optimizer.lr")
        assertRejected(minimal, ["optimizer.lr=-1e-4"], field: "optimizer.lr")
        assertRejected(minimal, ["optimizer.beta2=1"], field: "optimizer.beta2")
        assertRejected(minimal, ["train.steps=0"], field: "train.steps")
        assertRejected(minimal, ["train.steps=100"], field: "schedule.warmup_steps", "no decay")
        assertRejected(minimal, ["train.grad_accumulation=0"], field: "train.grad_accumulation")
        assertRejected(minimal, ["train.vision_freeze=some"], field: "train.vision_freeze")
        assertRejected(minimal, ["train.dtype=float8"], field: "train.dtype", "'float8' is not a dtype: use float32 or bfloat16")
        assertRejected(minimal, ["train.dtype=float16"], field: "train.dtype", "float16 training is not supported")
        assertRejected(minimal, ["schedule.kind=step"], field: "schedule.kind")
        assertRejected(minimal, ["data.batch_size=0"], field: "data.batch_size")
        assertRejected(minimal, ["checkpoint.keep=0"], field: "checkpoint.keep")
        assertRejected(minimal, ["model.preset=kosmos-9"], field: "model.preset", "unknown preset")
        assertRejected(#"{"model": {"preset": "kosmos-tiny"}, "tokenizer": "/t", "data": {"sources": [{"path": "a"}]}}"#,
                       ["model.from=/m"], field: "model", "exactly one")
        assertRejected(#"{"data": {"sources": [{"path": "a"}]}}"#, field: "tokenizer")
        assertRejected(#"{"tokenizer": "/t"}"#, field: "data.sources")
        assertRejected(minimal, ["optimizer.lr"], field: "optimizer.lr", "KEY=VALUE")
    }

    func testMalformedFileIsReported() {
        XCTAssertThrowsError(try load("{\"tokenizer\": ")) { error in
            XCTAssertTrue("\(error)".contains("not valid JSON"), "\(error)")
        }
    }

    func testSchedules() {
        let linear = LearningRateSchedule(kind: .linear, peak: 1e-3, warmupSteps: 5, totalSteps: 20)
        XCTAssertEqual(linear.learningRate(step: 0), 2e-4, accuracy: 1e-15)
        XCTAssertEqual(linear.learningRate(step: 4), 1e-3, accuracy: 1e-15)
        XCTAssertEqual(linear.learningRate(step: 5), 1e-3, accuracy: 1e-15)
        XCTAssertEqual(linear.learningRate(step: 12), 1e-3 * 8 / 15, accuracy: 1e-15)
        XCTAssertEqual(linear.learningRate(step: 19), 1e-3 / 15, accuracy: 1e-15)
        let cosine = LearningRateSchedule(kind: .cosine, peak: 2, warmupSteps: 0, totalSteps: 10)
        XCTAssertEqual(cosine.learningRate(step: 0), 2, accuracy: 1e-12)
        XCTAssertEqual(cosine.learningRate(step: 5), 1, accuracy: 1e-12)
        XCTAssertGreaterThan(cosine.learningRate(step: 9), 0)
        let constant = LearningRateSchedule(kind: .constant, peak: 3, warmupSteps: 2, totalSteps: 10)
        XCTAssertEqual(constant.learningRate(step: 0), 1.5)
        XCTAssertEqual(constant.learningRate(step: 9), 3)
    }
}
