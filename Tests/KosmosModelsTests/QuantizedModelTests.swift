import Foundation
import XCTest
import KosmosFormats
import KosmosNN
import KosmosTensor
@testable import KosmosModels

/// `ModelQuantizer` directories: what is quantized, that they load through the registry as the
/// in-memory quantization computes, and the errors for bad quantized checkpoints.
final class QuantizedModelTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    private func temporary(_ name: String) -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kosmos-quantized-\(name)-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    /// A kosmos-tiny directory (float32, random weights) and its model.
    private func tinyDirectory() throws -> (URL, KosmosModel) {
        var c = KosmosConfiguration.preset(named: "kosmos-tiny")!
        c.decoder.decoderLayers = 1
        let model = try KosmosModel(configuration: c, generator: RandomGenerator(seed: 5))
        model.eval()
        let dir = temporary("f32")
        try model.save(directory: dir)
        return (dir, model)
    }

    /// The logits of every position (text only) of a Kosmos-1 or Kosmos-2 model.
    private func logits(_ model: any GenerativeModel, _ tokens: [Int]) throws -> [Float] {
        try withoutGrad {
            if let kosmos2 = model as? Kosmos2Model { return try kosmos2.logits(tokens: tokens, imagePositions: [], pixels: nil).scalars }
            let kosmos = try XCTUnwrap(model as? KosmosModel)
            return try kosmos.logits(try kosmos.makeBatch([KosmosSequence(tokens: tokens)])).scalars
        }
    }

    private func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        var num = 0.0, den = 0.0
        for (x, y) in zip(a, b) { num += Double(x - y) * Double(x - y); den += Double(y) * Double(y) }
        return (num / den).squareRoot()
    }

    func testQuantizedDirectoriesLoadAsTheInMemoryQuantization() throws {
        let (dir, model) = try tinyDirectory()
        let tokens = [5, 17, 300, 9, 4000, 12, 77, 31999]
        let reference = try logits(model, tokens)
        for (format, bound) in [(QuantizationFormat.q8, 0.02), (.q4, 0.2)] {
            let out = temporary("\(format)")
            var reports: [(Int, Int, Int, Int)] = []
            let summary = try ModelQuantizer.quantize(dir, to: out, format: format) { reports.append(($0, $1, $2, $3)) }
            // Progress once per source tensor, ending with every byte read.
            let sourceWeights = try ModelDirectory.weights(in: dir)
            XCTAssertEqual(reports.map(\.0), Array(1...sourceWeights.names.count))
            XCTAssertEqual(reports.last?.2, reports.last?.3)
            XCTAssertEqual(reports.last?.3, sourceWeights.names.reduce(0) { $0 + (sourceWeights.entry($1)?.byteCount ?? 0) })
            // The summary's output bytes are the file's data section exactly.
            let file = try Data(contentsOf: out.appendingPathComponent("model.safetensors"))
            let headerLength = file.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
            XCTAssertEqual(summary.outputBytes, file.count - 8 - headerLength)
            // Every Linear of the decoder, resampler and vision tower (all rows divide by 32 in
            // kosmos-tiny) except the untied output head.
            let expected = model.quantizableLinears(groupSize: 32).count
            XCTAssertEqual(summary.quantized, expected)
            XCTAssertGreaterThan(expected, 20)
            XCTAssertEqual(try ModelQuantizer.quantizationConfig(of: out)?["format"] as? String, format.rawValue)
            let weights = try SafeTensorsFile(url: out.appendingPathComponent("model.safetensors"))
            XCTAssertEqual(weights.entry("decoder.layers.0.ffn.fc1.weight")?.dtype, format.payloadDType)
            XCTAssertEqual(weights.entry("decoder.layers.0.ffn.fc1.weight_scale")?.dtype, .f16)
            XCTAssertEqual(weights.entry("decoder.output_projection.weight")?.dtype, .bf16)
            XCTAssertEqual(weights.entry("decoder.embed_tokens.weight")?.dtype, .bf16)

            let loaded = try ModelRegistry.load(out, dtype: .float32)
            let module = try XCTUnwrap(loaded as? Module)
            XCTAssertEqual(module.quantizedLinears.count, expected)
            // The same numbers as quantizing the float model in memory, its head and table rounded
            // to bfloat16 (and loaded back as float32, as `loaded` holds them).
            let inMemory = try KosmosModel.load(directory: dir)
            try inMemory.quantizeLinears(format)
            for table in [inMemory.decoder.outputProjection.weight, inMemory.decoder.embedTokens.weight] {
                table.convert(to: .bfloat16)
                table.convert(to: .float32)
            }
            let (a, b) = (try logits(loaded, tokens), try logits(inMemory, tokens))
            XCTAssertEqual(a.count, b.count)
            XCTAssertEqual(zip(a, b).map { abs($0 - $1) }.max(), 0, "\(format)")
            // And close to the float model.
            XCTAssertLessThan(relativeError(try logits(loaded, tokens), reference), bound, "\(format)")
            // Already quantized: refused.
            XCTAssertThrowsError(try ModelQuantizer.quantize(out, to: temporary("again"), format: .q4)) { error in
                XCTAssertTrue("\(error)".contains("is already quantized (\(format), group 32)"), "\(error)")
            }
        }
        XCTAssertThrowsError(try ModelQuantizer.quantize(dir, to: dir, format: .q8)) { error in
            XCTAssertTrue("\(error)".contains("another directory"), "\(error)")
        }
    }

    func testKosmos2UntiedHeadStaysAndOnlyDivisibleRowsAreQuantized() throws {
        let source = Self.fixtures.appendingPathComponent("kosmos2_untied")
        let out = temporary("k2")
        let summary = try ModelQuantizer.quantize(source, to: out, format: .q8)
        // embed_dim 16: only the Linears that read 32 or 64 columns (fc2 of each layer, the vision
        // MLP's fc2) divide into groups of 32.
        XCTAssertGreaterThan(summary.quantized, 0)
        let weights = try SafeTensorsFile(url: out.appendingPathComponent("model.safetensors"))
        XCTAssertEqual(weights.entry("text_model.lm_head.weight")?.dtype, .bf16)
        XCTAssertEqual(weights.entry("text_model.model.layers.0.ffn.fc2.weight")?.dtype, .i8)
        XCTAssertEqual(weights.entry("text_model.model.layers.0.ffn.fc1.weight")?.dtype, .f32)
        let loaded = try ModelRegistry.load(out, dtype: .float32)
        let original = try ModelRegistry.load(source, dtype: .float32)
        let tokens = [0, 5, 9, 100, 31]
        XCTAssertLessThan(relativeError(try logits(loaded, tokens), try logits(original, tokens)), 0.05)
        XCTAssertEqual((loaded as? Module)?.quantizedLinears.count, summary.quantized)
    }

    /// A copy of the quantized directory `base` with its tensors changed by `edit` (by name).
    private func corrupted(_ base: URL, _ edit: (inout [String: (SafeTensorsDType, [Int], [UInt8])]) -> Void) throws -> URL {
        let out = temporary("bad")
        try FileManager.default.copyItem(at: base, to: out)
        let file = out.appendingPathComponent("model.safetensors")
        let weights = try SafeTensorsFile(url: base.appendingPathComponent("model.safetensors"))
        var tensors: [String: (SafeTensorsDType, [Int], [UInt8])] = [:]
        for name in weights.names {
            let entry = weights.entry(name)!
            tensors[name] = (entry.dtype, entry.shape, try weights.withRawBytes(name) { [UInt8]($0) })
        }
        edit(&tensors)
        var writer = SafeTensorsWriter()
        for (name, t) in tensors { try writer.add(name: name, dtype: t.0, shape: t.1, bytes: t.2) }
        try writer.write(to: file)
        return out
    }

    func testBadQuantizedTensorsAreErrorsNamingThem() throws {
        let name = "decoder.layers.0.ffn.fc2.weight"
        let (dir, _) = try tinyDirectory()
        let base = temporary("q4")
        _ = try ModelQuantizer.quantize(dir, to: base, format: .q4)
        func expectLoadError(_ contains: String, _ edit: (inout [String: (SafeTensorsDType, [Int], [UInt8])]) -> Void) throws {
            let dir = try corrupted(base, edit)
            XCTAssertThrowsError(try ModelRegistry.load(dir)) { error in
                XCTAssertTrue("\(error)".contains(contains), "\(error)")
            }
        }
        try expectLoadError("quantized tensor \(name): its scales \(name)_scale are missing") { $0[name + "_scale"] = nil }
        try expectLoadError("quantized tensor \(name): its minimums \(name)_min are missing") { $0[name + "_min"] = nil }
        try expectLoadError("quantized tensor \(name): q4 levels of shape [128, 255]") { t in
            let (dtype, shape, bytes) = t[name]!
            t[name] = (dtype, [shape[0], shape[1] - 1], Array(bytes.prefix(shape[0] * (shape[1] - 1))))
        }
        // fc2 reads 512 columns; 5 groups do not divide them.
        try expectLoadError("scales \(name)_scale of shape [128, 5] do not divide [128, 512] into groups") { t in
            t[name + "_scale"] = (.f16, [128, 5], [UInt8](repeating: 0, count: 128 * 5 * 2))
        }
        try expectLoadError("scales \(name)_scale are BF16, expected F16") { t in
            let (_, shape, bytes) = t[name + "_scale"]!
            t[name + "_scale"] = (.bf16, shape, bytes)
        }
        try expectLoadError("unexpected tensor(s): decoder.layers.0.ffn.fc1.weight_extra") { t in
            t["decoder.layers.0.ffn.fc1.weight_extra"] = (.f16, [1], [0, 0])
        }
    }

    func testQuantizedModelsRefuseToSaveOrLoadFloatWeights() throws {
        let (dir, model) = try tinyDirectory()
        try model.quantizeLinears(.q8)
        XCTAssertThrowsError(try model.load(from: try ModelDirectory.weights(in: dir))) { error in
            XCTAssertTrue("\(error)".contains("is the weight of a quantized Linear"), "\(error)")
        }
        XCTAssertThrowsError(try model.save(directory: temporary("save"))) { error in
            XCTAssertTrue("\(error)".contains("is quantized; saving float weights of a quantized model would write zeros"), "\(error)")
        }
    }
}
