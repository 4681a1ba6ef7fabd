import Foundation
import XCTest
import KosmosNN
import KosmosTensor
@testable import KosmosModels

/// Kosmos-2 with its own LM head (tie_word_embeddings false), saved by transformers
/// (scripts/reference/kosmos2_untied_reference.py), against Kosmos2ForConditionalGeneration.
final class Kosmos2UntiedTests: XCTestCase {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/kosmos2_untied")

    private func temporaryCopy(config edit: (inout [String: Any]) -> Void, weights: ((SafeTensorsFile) throws -> SafeTensorsWriter)? = nil) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kosmos2-untied-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixture.appendingPathComponent("config.json"))) as! [String: Any]
        edit(&config)
        try JSONSerialization.data(withJSONObject: config).write(to: dir.appendingPathComponent("config.json"))
        let source = Self.fixture.appendingPathComponent("model.safetensors")
        if let weights {
            let file = try SafeTensorsFile(url: source)
            try withExtendedLifetime(file) { try weights(file).write(to: dir.appendingPathComponent("model.safetensors")) }
        } else {
            try FileManager.default.copyItem(at: source, to: dir.appendingPathComponent("model.safetensors"))
        }
        return dir
    }

    /// Every tensor of `file` but one, as stored.
    static func copy(_ file: SafeTensorsFile, without excluded: String) throws -> SafeTensorsWriter {
        var writer = SafeTensorsWriter()
        for name in file.names where name != excluded {
            let entry = file.entry(name)!
            try writer.add(name: name, dtype: entry.dtype, shape: entry.shape, bytes: try file.withRawBytes(name) { Array($0) })
        }
        return writer
    }

    private func assertMatchesTransformers(_ model: Kosmos2Model, file: StaticString = #filePath, line: UInt = #line) throws {
        let expected = try modelFixture("kosmos2_untied_expected.safetensors")
        let tokens = try expected.int64s("input_ids").map { Int($0) }
        let positions = try expected.int64s("image_positions").map { Int($0) }
        let pixels = try expected.tensor("pixel_values")
        let logits = try withoutGrad { try model.logits(tokens: tokens, imagePositions: positions, pixels: pixels) }
        // The brief's tolerance for the untied head (float32; values are O(1) with the 0.5-std head).
        assertAllClose(logits.scalars, try expected.floats("logits"), rtol: 1e-4, atol: 1e-4, "logits", file: file, line: line)
        var options = GenerationOptions()
        options.maxNewTokens = 6
        options.stopAtEOS = false
        let generated = try model.generate(tokens: tokens, imagePositions: positions, pixels: pixels, options: options)
        XCTAssertEqual(generated, try expected.int64s("greedy").map { Int($0) }, file: file, line: line)
    }

    func testUntiedHeadLoadsAndMatchesTransformers() throws {
        let model = try Kosmos2Model.load(directory: Self.fixture)
        XCTAssertFalse(model.configuration.tieWordEmbeddings)
        XCTAssertFalse(model.textModel.outputProjection.weight === model.textModel.embedTokens.weight)
        let head = try SafeTensorsFile(url: Self.fixture.appendingPathComponent("model.safetensors")).floats("text_model.lm_head.weight")
        XCTAssertEqual(model.textModel.outputProjection.weight.scalars, head)
        try assertMatchesTransformers(model)
    }

    /// The head stored as a top-level `lm_head.weight` is found too.
    func testTopLevelHeadNameIsRead() throws {
        let dir = try temporaryCopy(config: { _ in }, weights: { file in
            var writer = try Self.copy(file, without: "text_model.lm_head.weight")
            let head = "text_model.lm_head.weight"
            try writer.add(name: "lm_head.weight", dtype: .f32, shape: file.entry(head)!.shape, bytes: try file.withRawBytes(head) { Array($0) })
            return writer
        })
        try assertMatchesTransformers(try Kosmos2Model.load(directory: dir))
    }

    /// A configuration that says "tied" while the file holds a different head: transformers'
    /// from_pretrained keeps them apart (and warns), so do we.
    func testDifferingHeadInATiedConfigurationIsKeptSeparate() throws {
        let dir = try temporaryCopy(config: { config in
            config["tie_word_embeddings"] = true
            var text = config["text_config"] as! [String: Any]
            text["tie_word_embeddings"] = true
            config["text_config"] = text
        })
        let model = try Kosmos2Model.load(directory: dir)
        XCTAssertFalse(model.configuration.tieWordEmbeddings)
        try assertMatchesTransformers(model)
    }

    /// A head equal to the embeddings, or none, in a tied configuration: tied, as before.
    func testEqualOrAbsentHeadStaysTied() throws {
        for variant in ["equal", "absent"] {
            let dir = try temporaryCopy(config: { config in
                config["tie_word_embeddings"] = true
            }, weights: { file in
                var writer = try Self.copy(file, without: "text_model.lm_head.weight")
                if variant == "equal" {
                    let embed = "text_model.model.embed_tokens.weight"
                    try writer.add(name: "text_model.lm_head.weight", dtype: .f32, shape: file.entry(embed)!.shape,
                                   bytes: try file.withRawBytes(embed) { Array($0) })
                }
                return writer
            })
            let model = try Kosmos2Model.load(directory: dir)
            XCTAssertTrue(model.configuration.tieWordEmbeddings, variant)
            XCTAssertTrue(model.textModel.outputProjection.weight === model.textModel.embedTokens.weight, variant)
        }
    }

    func testUntiedConfigurationWithoutAHeadIsAnError() throws {
        let dir = try temporaryCopy(config: { _ in }, weights: { try Self.copy($0, without: "text_model.lm_head.weight") })
        XCTAssertThrowsError(try Kosmos2Model.load(directory: dir)) { error in
            XCTAssertTrue("\(error)".contains("tie_word_embeddings"), "\(error)")
            XCTAssertTrue("\(error)".contains("text_model.lm_head.weight"), "\(error)")
        }
    }
}
