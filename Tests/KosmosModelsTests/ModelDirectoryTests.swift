import Foundation
import XCTest
import KosmosNN
import KosmosTensor
@testable import KosmosModels

final class ModelDirectoryTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("kosmos-models-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    func fixtureDirectory(_ name: String) -> URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures").appendingPathComponent(name)
    }

    /// Both directory layouts transformers writes load, and give transformers' last_hidden_state.
    func testLoadsTransformersCLIPDirectories() throws {
        let expected = try modelFixture("clip_directories_expected.safetensors")
        let pixels = try expected.tensor("pixel_values")
        for (name, key) in [("clip_vision_model", "vision_model_last_hidden_state"), ("clip_model", "clip_model_last_hidden_state")] {
            let tower = try CLIPVisionTransformer.load(directory: fixtureDirectory(name))
            let out = try withoutGrad { try tower(pixels).lastHiddenState }
            assertAllClose(out.scalars, try expected.floats(key), rtol: 1e-5, atol: 1e-5, name)
        }
    }

    /// A CLIPVisionModel saved by transformers 4 prefixes its tensors with `vision_model.`.
    func testLoadsPrefixedCLIPVisionModel() throws {
        let source = fixtureDirectory("clip_vision_model")
        let weights = try SafeTensorsFile(url: source.appendingPathComponent("model.safetensors"))
        var writer = SafeTensorsWriter()
        var kept: [Tensor] = []
        for name in weights.names {
            let t = try weights.tensor(name)
            kept.append(t)
            try writer.add(name: "vision_model." + name, tensor: t)
        }
        // Old checkpoints also store the (non-persistent today) position_ids buffer.
        try writer.add(name: "vision_model.embeddings.position_ids", shape: [1, 17], int64s: (0..<17).map(Int64.init))
        try withExtendedLifetime(kept) { try writer.write(to: directory.appendingPathComponent("model.safetensors")) }
        try FileManager.default.copyItem(at: source.appendingPathComponent("config.json"), to: directory.appendingPathComponent("config.json"))
        let expected = try modelFixture("clip_directories_expected.safetensors")
        let tower = try CLIPVisionTransformer.load(directory: directory)
        let out = try withoutGrad { try tower(try expected.tensor("pixel_values")).lastHiddenState }
        assertAllClose(out.scalars, try expected.floats("vision_model_last_hidden_state"), rtol: 1e-5, atol: 1e-5, "prefixed")
    }

    func testKosmosDirectoryRoundTrip() throws {
        let configuration = KosmosParityTests.tinyConfiguration()
        let model = try KosmosModel(configuration: configuration, generator: RandomGenerator(seed: 3))
        try model.save(directory: directory)
        let loaded = try KosmosModel.load(directory: directory)
        XCTAssertEqual(loaded.configuration, configuration)
        let batch = try model.makeBatch([KosmosSequence(tokens: [1, 38, 0, 0, 0, 0, 39, 5, 6], images: [Tensor.randn([3, 16, 16], generator: RandomGenerator(seed: 4))])])
        let a = try withoutGrad { try model.logits(batch) }, b = try withoutGrad { try loaded.logits(batch) }
        XCTAssertEqual(a.scalars, b.scalars)
    }

    func testPresetsAreValidAndRoundTripThroughJSON() throws {
        for name in KosmosConfiguration.presetNames {
            let c = try XCTUnwrap(KosmosConfiguration.preset(named: name))
            XCTAssertNoThrow(try c.validate(), name)
            let data = try JSONEncoder().encode(c)
            XCTAssertEqual(try JSONDecoder().decode(KosmosConfiguration.self, from: data), c, name)
        }
        XCTAssertNil(KosmosConfiguration.preset(named: "kosmos-3"))
        XCTAssertNil(KosmosConfiguration.preset(named: "kosmos-1")?.bosTokenId)
    }

    func testDirectoryErrorsNameTheProblem() throws {
        XCTAssertThrowsError(try KosmosModel.load(directory: directory)) { error in
            XCTAssertTrue("\(error)".contains("config.json: not found"), "\(error)")
        }
        try Data(#"{"model_type": "llama"}"#.utf8).write(to: directory.appendingPathComponent("config.json"))
        XCTAssertThrowsError(try KosmosModel.load(directory: directory)) { error in
            XCTAssertTrue("\(error)".contains("model_type 'llama' is not supported"), "\(error)")
        }
        try Data(#"{"model_type": "kosmos-1", "decoder": {"decoder_layers": "two"}}"#.utf8).write(to: directory.appendingPathComponent("config.json"))
        XCTAssertThrowsError(try KosmosModel.load(directory: directory)) { error in
            XCTAssertTrue("\(error)".contains("decoder.decoder_layers"), "\(error)")
        }
        var c = KosmosParityTests.tinyConfiguration()
        try ModelDirectory.writeJSON(c, to: directory.appendingPathComponent("config.json"))
        XCTAssertThrowsError(try KosmosModel.load(directory: directory)) { error in
            XCTAssertTrue("\(error)".contains("model.safetensors"), "\(error)")
        }
        // Weights of a differently shaped model: the mismatch is named.
        c.decoder.decoderFfnEmbedDim = 96
        let other = try KosmosModel(configuration: c, generator: RandomGenerator(seed: 0))
        try other.save(to: directory.appendingPathComponent("model.safetensors"))
        XCTAssertThrowsError(try KosmosModel.load(directory: directory)) { error in
            XCTAssertTrue("\(error)".contains("decoder.layers.0.ffn.fc1.weight has shape [96, 32], the model expects [64, 32]"), "\(error)")
        }
    }

    /// What `kosmos encode-image` does, end to end: a JPEG through the directory's
    /// preprocessor_config.json and the tower, against CLIPImageProcessor + CLIPVisionModel.
    func testEncodeImageMatchesTransformers() throws {
        let expected = try modelFixture("clip_encode_image_expected.safetensors")
        let model = fixtureDirectory("clip_vision_model")
        let tower = try CLIPVisionTransformer.load(directory: model)
        let input = try ImageInput(modelDirectory: model, imageSize: tower.configuration.imageSize)
        let pixels = try input.load(fixtureDirectory("images/inputs/rgb_640x480.jpg")).unsqueezed(0)
        assertAllClose(pixels.scalars, try expected.floats("pixel_values"), rtol: 0, atol: 1e-6, "pixel_values")
        let last = try withoutGrad { try tower(pixels).lastHiddenState }
        assertAllClose(last.scalars, try expected.floats("last_hidden_state"), rtol: 1e-5, atol: 1e-5, "last_hidden_state")
    }

    /// Newer transformers save the image processor inside processor_config.json.
    func testImageInputReadsTheImageProcessorSectionOfProcessorConfig() throws {
        let source = fixtureDirectory("clip_vision_model")
        let section = try JSONSerialization.jsonObject(with: Data(contentsOf: source.appendingPathComponent("preprocessor_config.json")))
        try JSONSerialization.data(withJSONObject: ["image_processor": section, "processor_class": "CLIPProcessor"])
            .write(to: directory.appendingPathComponent("processor_config.json"))
        let input = try ImageInput(modelDirectory: directory, imageSize: 16)
        let pixels = try input.load(fixtureDirectory("images/inputs/rgb_640x480.jpg"))
        let expected = try modelFixture("clip_encode_image_expected.safetensors")
        assertAllClose(pixels.scalars, try expected.floats("pixel_values"), rtol: 0, atol: 1e-6, "pixel_values via processor_config.json")
    }

    func testPromptTokensPlaceImagesAndCheckTheCount() throws {
        let model = try KosmosModel(configuration: KosmosParityTests.tinyConfiguration(), generator: RandomGenerator(seed: 0))
        let encode: (String) -> [Int] = { text in text.split(separator: " ").map { Int($0.count) + 2 } }
        XCTAssertEqual(try model.promptTokens("ab <image> abc", imageCount: 1, encode: encode),
                       [1, 4, 38, 0, 0, 0, 0, 39, 5])
        XCTAssertThrowsError(try model.promptTokens("<image><image>", imageCount: 1, encode: encode)) { error in
            XCTAssertTrue("\(error)".contains("2 <image> marker(s) but 1 image(s)"), "\(error)")
        }
    }
}
