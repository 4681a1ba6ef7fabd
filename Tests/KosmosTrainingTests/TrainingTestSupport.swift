import Foundation
import XCTest
@testable import KosmosTraining

enum TrainingTestSupport {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = repository.appendingPathComponent("Tests/Fixtures")
    static let demoTokenizer = repository.appendingPathComponent("data/demo/shapes.model")

    /// A fresh empty folder under the temporary directory.
    static func temporaryDirectory(_ name: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("kosmos-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// A tiny Kosmos on the demo tokenizer (65 pieces + <image>, </image>), with dropout so that
    /// exact resumption also depends on the dropout generator's saved state, trained on two mixed
    /// synthetic sources (captions and questions) with 16-pixel images.
    static func tinyConfigurationJSON(directory: URL, steps: Int, checkpointEvery: Int, keep: Int = 10) -> String {
        """
        {
          "model": {"config": \(tinyModelJSON())},
          "tokenizer": "\(demoTokenizer.path)",
          "data": {"sources": [
              {"path": "synthetic:500", "synthetic_seed": 7, "caption_prefix": "An image of"},
              {"path": "synthetic:500", "synthetic_seed": 9000, "synthetic_mode": "questions", "weight": 0.5}
            ], "sequence_length": 48, "batch_size": 3, "workers": 2},
          "optimizer": {"lr": 3e-3, "weight_decay": 0.05, "max_grad_norm": 0.5},
          "schedule": {"kind": "cosine", "warmup_steps": 3},
          "train": {"steps": \(steps), "grad_accumulation": 2, "seed": 11, "vision_freeze": "all-but-last-layer"},
          "checkpoint": {"directory": "\(directory.path)", "every": \(checkpointEvery), "keep": \(keep)},
          "log": {"every": 2}
        }
        """
    }

    /// The one tiny model configuration (Tests/Fixtures/kosmos_tiny_config.json) on the demo
    /// tokenizer's vocabulary (65 pieces + <image>, </image>; pad 3), 128 positions, dropout 0.1.
    static func tinyModelJSON() -> String {
        let url = fixtures.appendingPathComponent("kosmos_tiny_config.json")
        guard let data = FileManager.default.contents(atPath: url.path),
              var model = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              var decoder = model["decoder"] as? [String: Any] else {
            preconditionFailure("\(url.path) is missing or not a JSON object")
        }
        for (key, value) in ["vocab_size": 67, "image_token_id": 65, "image_end_token_id": 66, "bos_token_id": 1,
                             "eos_token_id": 2, "pad_token_id": 3] as [String: Any] { model[key] = value }
        for (key, value) in ["vocab_size": 67, "padding_idx": 3, "max_target_positions": 128,
                             "dropout": 0.1, "attention_dropout": 0.1] as [String: Any] { decoder[key] = value }
        model["decoder"] = decoder
        let json = try? JSONSerialization.data(withJSONObject: model, options: [.sortedKeys])
        return String(decoding: json ?? Data(), as: UTF8.self)
    }

    static func tinyConfiguration(directory: URL, steps: Int, checkpointEvery: Int, keep: Int = 10) throws -> TrainingConfiguration {
        let file = directory.appendingPathComponent("train.json")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try tinyConfigurationJSON(directory: directory, steps: steps, checkpointEvery: checkpointEvery, keep: keep)
            .write(to: file, atomically: true, encoding: .utf8)
        return try TrainingConfiguration.load(file: file)
    }

    /// The losses of metrics.jsonl by step.
    static func loggedLosses(_ url: URL) throws -> [Int: Double] {
        let text = try String(contentsOf: url, encoding: .utf8)
        var out: [Int: Double] = [:]
        for line in text.split(separator: "\n") {
            let record = try JSONDecoder().decode(MetricsRecord.self, from: Data(line.utf8))
            XCTAssertNil(out[record.step], "step \(record.step) logged twice")
            out[record.step] = record.loss
        }
        return out
    }

    static func bytes(_ url: URL) throws -> Data { try Data(contentsOf: url) }
}
