import Foundation
import XCTest
import KosmosNN
import KosmosTensor
import KosmosTokenizers
import KosmosVision
@testable import KosmosModels

/// Kosmos-2.5 against transformers 5.24 (scripts/reference/kosmos2_5_reference.py): the image
/// processor's both backends, the tiny model's vision states, image embeddings, logits and cached
/// greedy generation, the untied head, the tokenizer, and the documented `<ocr>` post-processing.
final class Kosmos25Tests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/kosmos2_5")
    var tiny: URL { Self.fixtures.appendingPathComponent("tiny") }

    func json(_ name: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixtures.appendingPathComponent(name))) as? [String: Any])
    }

    func processor(_ backend: Kosmos25ImageProcessorConfig.Backend, maxPatches: Int = 64) -> Kosmos25ImageProcessor {
        var c = Kosmos25ImageProcessorConfig()
        c.maxPatches = maxPatches
        c.backend = backend
        return Kosmos25ImageProcessor(config: c)
    }

    // MARK: the image processor

    func testFlattenedPatchesEqualBothBackendsOnAwkwardImages() throws {
        let expected = try modelFixture("kosmos2_5/processor.safetensors")
        let images = try XCTUnwrap(try json("processor.json")["images"] as? [String: Any])
        XCTAssertGreaterThanOrEqual(images.count, 7)
        for name in images.keys.sorted() {
            let info = try XCTUnwrap(images[name] as? [String: Any])
            let file = Self.fixtures.appendingPathComponent(try XCTUnwrap(info["file"] as? String))
            for backend in [Kosmos25ImageProcessorConfig.Backend.pil, .torchvision] {
                let key = "\(name)/\(backend.rawValue)/"
                let out = try processor(backend).process(contentsOf: file)
                XCTAssertEqual(out.rows, Int(try expected.int64s(key + "rows")[0]), key)
                XCTAssertEqual(out.columns, Int(try expected.int64s(key + "cols")[0]), key)
                XCTAssertEqual(out.width, Int(try expected.int64s(key + "width")[0]), key)
                XCTAssertEqual(out.height, Int(try expected.int64s(key + "height")[0]), key)
                XCTAssertEqual(out.attentionMask, try expected.floats(key + "attention_mask"), key)
                assertAllClose(out.values, try expected.floats(key + "flattened_patches"), rtol: 1e-5, atol: 1e-5, key)
            }
        }
    }

    /// RGBA over white and L → RGB as transformers' convert_to_rgb (PIL) does, byte for byte.
    func testAlphaIsCompositedOnWhiteAsPIL() throws {
        let expected = try modelFixture("kosmos2_5/processor.safetensors")
        let table = try expected.withRawBytes("alpha_composite_white") { Array($0) }
        XCTAssertEqual(table.count, 256 * 256)
        var wrong = 0
        for a in 0..<256 {
            for v in 0..<256 where DecodeOptions.onWhite(UInt8(v), alpha: UInt8(a)) != table[a * 256 + v] { wrong += 1 }
        }
        XCTAssertEqual(wrong, 0)
        for name in ["rgba", "gray_l"] {
            let image = try ImageDecoder.decode(contentsOf: Self.fixtures.appendingPathComponent("images/\(name).png"),
                                                options: processor(.pil).decodeOptions)
            XCTAssertEqual(image.pixels, try expected.withRawBytes("\(name)/rgb_uint8") { Array($0) }, name)
        }
        // Without the option alpha is dropped (the CLIP path's behaviour) and the pixels differ.
        let dropped = try ImageDecoder.decode(contentsOf: Self.fixtures.appendingPathComponent("images/rgba.png"))
        XCTAssertNotEqual(dropped.pixels, try expected.withRawBytes("rgba/rgb_uint8") { Array($0) })
    }

    func testPatchGridEqualsTheProcessorsOnTheShapeTable() throws {
        let table = try XCTUnwrap(try json("processor.json")["shape_table"] as? [[String: Any]])
        XCTAssertGreaterThan(table.count, 40)
        for entry in table {
            let h = try XCTUnwrap(entry["height"] as? Int), w = try XCTUnwrap(entry["width"] as? Int)
            for m in [4096, 64] {
                guard let e = entry["max_patches_\(m)"] as? [String: Any] else { continue }
                let g = processor(.pil, maxPatches: m).grid(height: h, width: w)
                XCTAssertEqual(g.rows, e["rows"] as? Int, "\(h)×\(w) at \(m)")
                XCTAssertEqual(g.columns, e["cols"] as? Int, "\(h)×\(w) at \(m)")
                XCTAssertEqual(g.rows * 16, e["height"] as? Int, "\(h)×\(w) at \(m)")
                XCTAssertEqual(g.columns * 16, e["width"] as? Int, "\(h)×\(w) at \(m)")
            }
        }
    }

    /// The full-size path (4096 patches) through sums and three whole rows, not a 12 MB fixture.
    func testFullSizePatchesMatchTheirSummaries() throws {
        let expected = try modelFixture("kosmos2_5/processor.safetensors")
        let summaries = try XCTUnwrap(try json("processor.json")["max_patches_4096"] as? [String: Any])
        // One backend per image keeps the debug-build test short; the 64-patch test covers both everywhere.
        for (name, backend) in [("tall_rgb", Kosmos25ImageProcessorConfig.Backend.pil), ("big_rgb", .torchvision)] {
            do {
                let s = try XCTUnwrap((summaries[name] as? [String: Any])?[backend.rawValue] as? [String: Any])
                let out = try processor(backend, maxPatches: 4096).process(contentsOf: Self.fixtures.appendingPathComponent("images/\(name).png"))
                XCTAssertEqual(out.rows, s["rows"] as? Int)
                XCTAssertEqual(out.columns, s["cols"] as? Int)
                XCTAssertEqual(Int(out.attentionMask.reduce(0, +)), s["attention_mask_sum"] as? Int)
                let sum = out.values.reduce(0.0) { $0 + Double($1) }
                let squares = out.values.reduce(0.0) { $0 + Double($1) * Double($1) }
                XCTAssertEqual(sum, try XCTUnwrap(s["sum"] as? Double), accuracy: 1e-6 * abs(sum) + 1e-3, "\(name) \(backend)")
                XCTAssertEqual(squares, try XCTUnwrap(s["sum_of_squares"] as? Double), accuracy: 1e-6 * squares, "\(name) \(backend)")
                let indices = try XCTUnwrap(s["row_indices"] as? [Int])
                let rows = indices.flatMap { Array(out.values[($0 * out.depth)..<(($0 + 1) * out.depth)]) }
                assertAllClose(rows, try expected.floats("max_patches_4096/\(name)/\(backend.rawValue)/rows"), rtol: 1e-5, atol: 1e-5, "\(name) \(backend)")
            }
        }
    }

    func testConfigurationIsReadFromProcessorConfig() throws {
        let p = try Kosmos25Model.imageProcessor(directory: tiny)
        XCTAssertEqual(p.config.maxPatches, 64)
        XCTAssertEqual(p.config.backend, .torchvision)
        XCTAssertTrue(p.decodeOptions.alphaOnWhite)
        XCTAssertThrowsError(try Kosmos25ImageProcessorConfig(json: Data(#"{"image_processor_type": "CLIPImageProcessor"}"#.utf8))) {
            XCTAssertTrue("\($0)".contains("CLIPImageProcessor"), "\($0)")
        }
        XCTAssertThrowsError(try Kosmos25ImageProcessorConfig(json: Data(#"{"max_patches": 0}"#.utf8))) {
            XCTAssertTrue("\($0)".contains("max_patches"), "\($0)")
        }
        let pil = try Kosmos25ImageProcessorConfig(json: Data(#"{"image_processor_type": "Kosmos2_5ImageProcessorPil", "max_patches": 1024}"#.utf8))
        XCTAssertEqual(pil.backend, .pil)
        XCTAssertEqual(pil.maxPatches, 1024)
    }

    // MARK: the model

    func flattened(_ image: String) throws -> Tensor {
        let p = try modelFixture("kosmos2_5/processor.safetensors")
        return Tensor(shape: [1, 64, 770], scalars: try p.floats("\(image)/torchvision/flattened_patches"))
    }

    func testTokensVisionStatesEmbeddingsAndLogitsMatchTransformers() throws {
        let expected = try modelFixture("kosmos2_5/model.safetensors")
        let model = try Kosmos25Model.load(directory: tiny)
        let session = try ModelSession(directory: tiny)
        XCTAssertTrue(session.model is Kosmos25Model)
        let ids = try expected.int64s("inputs/input_ids").map { Int($0) }
        let length = ids.count / 4
        let rows: [(image: String, prompt: String)] = [("tall_rgb", "<ocr>"), ("tall_rgb", "<md>"), ("big_rgb", "<ocr>"), ("big_rgb", "<md>")]
        // The processor's ids, from our processor on the PNG (and its patches through the same model).
        for (r, row) in rows.enumerated() {
            let input = try session.input(text: row.prompt, imageFiles: [Self.fixtures.appendingPathComponent("images/\(row.image).png")])
            XCTAssertEqual(input.tokens, Array(ids[(r * length)..<((r + 1) * length)]), "row \(r)")
        }
        try withoutGrad {
            let vision = try model.visionModel(try flattened("tall_rgb"))
            assertAllClose(vision.scalars, try expected.floats("vision_last_hidden_state"), rtol: 1e-5, atol: 1e-5, "vision")
            let embeds = try Tensor.concatenate([try model.imageEmbeddings(try flattened("tall_rgb")),
                                                 try model.imageEmbeddings(try flattened("big_rgb"))], axis: 0)
            assertAllClose(embeds.scalars, try expected.floats("image_embeds"), rtol: 1e-5, atol: 1e-5, "image embeds")
            let full = try expected.floats("logits_full"), last = try expected.floats("logits_last")
            let vocab = model.configuration.text.vocabSize
            for (r, row) in rows.enumerated() {
                let tokens = Array(ids[(r * length)..<((r + 1) * length)])
                let logits = try model.logits(tokens: tokens, flattened: try flattened(row.image)).scalars
                assertAllClose(Array(logits.suffix(vocab)), Array(last[(r * vocab)..<((r + 1) * vocab)]), rtol: 1e-5, atol: 1e-5, "row \(r) last")
                if r == 0 || r == 3 {
                    let k = r == 0 ? 0 : 1
                    assertAllClose(logits, Array(full[(k * length * vocab)..<((k + 1) * length * vocab)]), rtol: 1e-5, atol: 1e-5, "row \(r)")
                }
            }
        }
    }

    func testCachedGreedyGenerationEqualsTransformers() throws {
        let expected = try modelFixture("kosmos2_5/model.safetensors")
        let session = try ModelSession(directory: tiny)
        let generated = try expected.int64s("generated").map { Int($0) }
        let steps = generated.count / 4
        let stepLogits = try expected.floats("step_logits")
        let vocab = session.model.textDecoder.vocabularySize
        for (r, row) in [("tall_rgb", "<ocr>"), ("tall_rgb", "<md>"), ("big_rgb", "<ocr>"), ("big_rgb", "<md>")].enumerated() {
            let input = try session.input(text: row.1, imageFiles: [Self.fixtures.appendingPathComponent("images/\(row.0).png")])
            var options = GenerationOptions()
            options.maxNewTokens = steps
            XCTAssertEqual(try session.model.generate(input, options: options), Array(generated[(r * steps)..<((r + 1) * steps)]), "row \(r)")
            // The first steps' logits through prefill and the cache (the second and third are cached steps).
            try withoutGrad {
                let cache = session.model.textDecoder.makeCache(reservation: input.tokens.count + 3)
                var logits = try session.model.prefill(input, cache: cache)
                for s in 0..<3 {
                    let row = Array(logits.scalars.suffix(vocab))
                    let start = (s * 4 + r) * vocab
                    assertAllClose(row, Array(stepLogits[start..<(start + vocab)]), rtol: 1e-5, atol: 2e-5, "row \(r) step \(s)")
                    logits = try session.model.step(generated[r * steps + s], cache: cache)
                }
            }
        }
    }

    func testUntiedHeadLoadsItsOwnWeights() throws {
        let expected = try modelFixture("kosmos2_5/model.safetensors")
        let model = try Kosmos25Model.load(directory: Self.fixtures.appendingPathComponent("tiny-untied"))
        XCTAssertFalse(model.configuration.tieWordEmbeddings)
        let ids = try expected.int64s("inputs/input_ids").map { Int($0) }
        let tokens = Array(ids.prefix(ids.count / 4))
        let logits = try withoutGrad { try model.logits(tokens: tokens, flattened: try flattened("tall_rgb")) }
        assertAllClose(logits.scalars, try expected.floats("untied/logits"), rtol: 1e-5, atol: 1e-5, "untied logits")
        let tokenizer = try model.loadTokenizer(directory: tiny, explicit: nil)
        let input = try Kosmos25Processor(model: model, tokenizer: tokenizer)
            .input(text: "<ocr>", media: [.image(try flattened("tall_rgb").reshaped([64, 770]))], grounding: false)
        var options = GenerationOptions()
        options.maxNewTokens = 8
        XCTAssertEqual(try model.generate(input, options: options), try expected.int64s("untied/generated").map { Int($0) })
    }

    func testTokenizerEncodesAndDecodesAsTransformers() throws {
        let session = try ModelSession(directory: tiny)
        let tokenizer = try XCTUnwrap(session.tokenizer as? HFTokenizer)
        let cases = try XCTUnwrap(try json("model.json")["tokenizer_cases"] as? [[String: Any]])
        for c in cases {
            let text = try XCTUnwrap(c["text"] as? String)
            let ids = try XCTUnwrap(c["ids"] as? [Int])
            XCTAssertEqual(tokenizer.encode(text), ids, text)
            XCTAssertEqual(tokenizer.decode(ids), c["decode"] as? String, text)
            XCTAssertEqual(tokenizer.decode(ids, skipSpecialTokens: true), c["decode_skip_special"] as? String, text)
        }
        // The processor's output is transformers' decode(skip_special_tokens=True), the EOS dropped.
        for c in cases {
            let ids = try XCTUnwrap(c["ids"] as? [Int])
            XCTAssertEqual(session.processor.output(ids + [2], grounding: false).text, c["decode_skip_special"] as? String, "\(ids)")
        }
    }

    // MARK: post-processing

    func testOCRPostProcessingEqualsTheDocumentedCode() throws {
        let cases = try XCTUnwrap(try json("ocr_postprocess.json")["cases"] as? [[String: Any]])
        XCTAssertGreaterThanOrEqual(cases.count, 20)
        for c in cases {
            let name = c["name"] as? String ?? "?"
            let out = Kosmos25OCR.postProcess(try XCTUnwrap(c["text"] as? String), prompt: try XCTUnwrap(c["prompt"] as? String),
                                              rawWidth: try XCTUnwrap(c["raw_width"] as? Int), rawHeight: try XCTUnwrap(c["raw_height"] as? Int),
                                              width: try XCTUnwrap(c["width"] as? Int), height: try XCTUnwrap(c["height"] as? Int))
            XCTAssertEqual(out, c["output"] as? String, name)
        }
        // The lines themselves (what --json prints) carry the documented output's boxes and texts.
        let multi = try XCTUnwrap(cases.first { $0["name"] as? String == "multi_line" })
        let lines = Kosmos25OCR.lines(try XCTUnwrap(multi["text"] as? String), rawWidth: try XCTUnwrap(multi["raw_width"] as? Int),
                                      rawHeight: try XCTUnwrap(multi["raw_height"] as? Int), width: try XCTUnwrap(multi["width"] as? Int),
                                      height: try XCTUnwrap(multi["height"] as? Int))
        let documented = try XCTUnwrap(multi["output"] as? String).split(separator: "\n").map { $0.split(separator: ",", maxSplits: 8) }
        XCTAssertEqual(lines.count, documented.count)
        for (line, fields) in zip(lines, documented) {
            XCTAssertEqual(line.box, [0, 1, 2, 5].map { Int(fields[$0])! })
            XCTAssertEqual(line.text, fields[8] + "\n")
        }
    }

    func testBadInputsAreNamed() throws {
        let model = try Kosmos25Model.load(directory: tiny)
        XCTAssertThrowsError(try withoutGrad { try model.visionModel(Tensor.zeros([1, 4, 10])) }) {
            XCTAssertTrue("\($0)".contains("770"), "\($0)")
        }
        var bad = try flattened("tall_rgb").scalars
        bad[0] = 500  // a row id past max_num_patches (128)
        XCTAssertThrowsError(try withoutGrad { try model.visionModel(Tensor(shape: [1, 64, 770], scalars: bad)) }) {
            XCTAssertTrue("\($0)".contains("max_num_patches"), "\($0)")
        }
        let processor = try Kosmos25Processor(model: model, tokenizer: try model.loadTokenizer(directory: tiny, explicit: nil))
        XCTAssertThrowsError(try processor.input(text: "<ocr>", media: [], grounding: false)) {
            XCTAssertTrue("\($0)".contains("exactly one image"), "\($0)")
        }
        // Another family's directory, a directory without the processor's configuration, a page past the pixel limit.
        let kosmos2 = Self.fixtures.deletingLastPathComponent().appendingPathComponent("kosmos2_tiny")
        XCTAssertThrowsError(try Kosmos25Model.load(directory: kosmos2)) {
            XCTAssertTrue("\($0)".contains("expected kosmos-2.5"), "\($0)")
        }
        let bare = FileManager.default.temporaryDirectory.appendingPathComponent("k25-bare-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: bare, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: bare) }
        for name in ["config.json", "model.safetensors", "tokenizer.json"] {
            try FileManager.default.copyItem(at: tiny.appendingPathComponent(name), to: bare.appendingPathComponent(name))
        }
        XCTAssertThrowsError(try ModelSession(directory: bare)) {
            XCTAssertTrue("\($0)".contains("preprocessor_config.json") && "\($0)".contains("image processor"), "\($0)")
        }
        let limited = Kosmos25ImageProcessor(decodeOptions: DecodeOptions(maxPixels: 1000))
        XCTAssertThrowsError(try limited.process(contentsOf: Self.fixtures.appendingPathComponent("images/big_rgb.png"))) {
            XCTAssertTrue("\($0)".contains("big_rgb.png"), "\($0)")
        }
        var c = Kosmos25Configuration()
        c.vision.denseActFn = "swish"
        XCTAssertThrowsError(try Kosmos25Model(configuration: c, generator: RandomGenerator(seed: 0))) {
            XCTAssertTrue("\($0)".contains("dense_act_fn"), "\($0)")
        }
    }
}
