import Foundation
import XCTest
import KosmosNN
import KosmosTensor
@testable import KosmosModels

/// Models with bfloat16 weights: loading straight into 16-bit storage, and logits judged against
/// the float64 reference beside PyTorch's own bfloat16 error (scripts/reference/precision_reference.py).
final class PrecisionModelTests: XCTestCase {
    func testKosmos1LoadsAndRunsInBFloat16() throws {
        let fixture = try modelFixture("kosmos_tiny.safetensors")
        let model = try withWeightDType(.bfloat16) {
            try KosmosModel(configuration: KosmosParityTests.tinyConfiguration(), generator: RandomGenerator(seed: 0))
        }
        try model.load(from: fixture, prefix: "model.", sourceName: "kosmos_tiny")
        model.eval()
        let batch = try KosmosParityTests.loadBatch(model, fixture)
        XCTAssertEqual(model.decoder.embedTokens.weight.dtype, DType.bfloat16)
        XCTAssertEqual(model.decoder.layers.items[0].ffn.fc1.weight.dtype, DType.bfloat16)
        XCTAssertEqual(model.decoder.layers.items[0].ffn.fc1.bias?.dtype, DType.float32, "biases stay float32")
        XCTAssertEqual(model.visionModel.embeddings.positionEmbedding.weight.dtype, DType.float32, "position tables stay float32")
        let logits = try withoutGrad { try model.logits(batch) }.scalars
        try assertNoFurtherOffThanPyTorch(logits, reference: "logits64", prefix: "", "Kosmos-1 bfloat16 logits against float64")
    }

    /// Mixed-precision training (`withComputeDType(.bfloat16)`, what `train.dtype: bfloat16` runs):
    /// the float32 weights stay float32 and get float32 gradients, and those gradients' error
    /// against the float64 ones is at most 1.5× that of PyTorch's autocast-bf16 gradients (the
    /// worst parameter's ‖Δ‖/‖g‖ and all parameters' together, precision_reference.py).
    func testMixedPrecisionGradientsAreNoFurtherOffThanPyTorchAutocast() throws {
        let fixture = try modelFixture("kosmos_tiny.safetensors")
        let model = try KosmosModel(configuration: KosmosParityTests.tinyConfiguration(), generator: RandomGenerator(seed: 0))
        try model.load(from: fixture, prefix: "model.", sourceName: "kosmos_tiny")
        model.eval()
        let batch = try KosmosParityTests.loadBatch(model, fixture)
        let loss = try withComputeDType(.bfloat16) { try model.logits(batch) }.reshaped([-1, 40]).crossEntropy(targets: batch.labels)
        loss.backward()
        var worst = 0.0, delta2 = 0.0, norm2 = 0.0
        for (name, parameter) in model.namedParameters() {
            XCTAssertEqual(parameter.dtype, .float32, name)
            guard fixture.entry("grad.\(name)") != nil else { continue }
            let grad = try XCTUnwrap(parameter.grad, name)
            XCTAssertEqual(grad.dtype, .float32, name)
            let exact = try fixture.floats("grad.\(name)")
            let diff = zip(grad.scalars, exact).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
            let size = exact.reduce(0.0) { $0 + Double($1) * Double($1) }
            if size.squareRoot() > 1e-8 { worst = max(worst, (diff / size).squareRoot()) }
            delta2 += diff
            norm2 += size
        }
        let reference = try modelFixture("precision_reference.safetensors")
        let torchWorst = Double(try reference.floats("train.torch_bf16_grad_max_rel_error")[0])
        let torchAll = Double(try reference.floats("train.torch_bf16_grad_rel_error")[0])
        let all = (delta2 / norm2).squareRoot()
        print(String(format: "mixed-precision gradients: ours worst %.4g all %.4g, PyTorch autocast worst %.4g all %.4g",
                     worst, all, torchWorst, torchAll))
        XCTAssertGreaterThan(all, 1e-4, "float32 products are ~1e-6 off: these must have run in bfloat16")
        XCTAssertLessThanOrEqual(worst, 1.5 * torchWorst)
        XCTAssertLessThanOrEqual(all, 1.5 * torchAll)
    }

    /// Our logits' max and RMS error against the reference tensor of precision_reference.safetensors
    /// are at most 1.5× PyTorch's bfloat16 errors stored beside it (`prefix` + torch_bf16_*_error).
    func assertNoFurtherOffThanPyTorch(_ logits: [Float], reference name: String, prefix: String, _ label: String,
                                       file: StaticString = #filePath, line: UInt = #line) throws {
        let reference = try modelFixture("precision_reference.safetensors")
        let exact = try reference.floats(name)
        XCTAssertEqual(logits.count, exact.count, label, file: file, line: line)
        let errors = zip(logits, exact).map { Double(abs($0 - $1)) }
        let maxError = errors.max() ?? .infinity
        let rmsError = (errors.reduce(0) { $0 + $1 * $1 } / Double(errors.count)).squareRoot()
        let torchMax = Double(try reference.floats(prefix + "torch_bf16_max_error")[0])
        let torchRMS = Double(try reference.floats(prefix + "torch_bf16_rms_error")[0])
        print(String(format: "%@: ours max %.4g rms %.4g, PyTorch bf16 max %.4g rms %.4g",
                     label as NSString, maxError, rmsError, torchMax, torchRMS))
        XCTAssertLessThanOrEqual(maxError, 1.5 * torchMax, label, file: file, line: line)
        XCTAssertLessThanOrEqual(rmsError, 1.5 * torchRMS, label, file: file, line: line)
    }

    /// Kosmos-2 with bfloat16 weights (loaded through the registry) against transformers' float32
    /// logits, beside transformers' own bfloat16 error on the same batch.
    func testKosmos2InBFloat16IsNoFurtherOffThanPyTorchs() throws {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/kosmos2_tiny")
        let loaded = try ModelRegistry.load(directory, dtype: .bfloat16)
        let model = try XCTUnwrap(loaded as? Kosmos2Model)
        XCTAssertEqual(model.textModel.embedTokens.weight.dtype, DType.bfloat16)
        XCTAssertEqual(model.imageToTextProjection.dense.weight.dtype, DType.bfloat16)
        let expected = try modelFixture("kosmos2_expected.safetensors")
        let tokens = try expected.int64s("input_ids").map { Int($0) }
        let positions = try expected.int64s("image_positions").map { Int($0) }
        let logits = try withoutGrad {
            try model.logits(tokens: tokens, imagePositions: positions, pixels: try expected.tensor("pixel_values"))
        }.scalars
        try assertNoFurtherOffThanPyTorch(logits, reference: "kosmos2.logits32", prefix: "kosmos2.",
                                          "Kosmos-2 bfloat16 logits against float32")
    }

    /// A float32 model converted in place equals one built in bfloat16 and loaded (same rounding),
    /// and a bfloat16 file loads into bfloat16 weights bit for bit.
    func testConvertingAndLoadingGiveTheSameWeights() throws {
        let fixture = try modelFixture("kosmos_tiny.safetensors")
        let built = try withWeightDType(.bfloat16) {
            try KosmosModel(configuration: KosmosParityTests.tinyConfiguration(), generator: RandomGenerator(seed: 0))
        }
        try built.load(from: fixture, prefix: "model.", sourceName: "kosmos_tiny")
        let converted = try KosmosModel(configuration: KosmosParityTests.tinyConfiguration(), generator: RandomGenerator(seed: 0))
        try converted.load(from: fixture, prefix: "model.", sourceName: "kosmos_tiny")
        converted.convertWeights(to: .bfloat16)
        let a = built.namedParameters(), b = converted.namedParameters()
        XCTAssertEqual(a.map(\.name), b.map(\.name))
        for (x, y) in zip(a, b) {
            XCTAssertEqual(x.tensor.dtype, y.tensor.dtype, x.name)
            XCTAssertEqual(x.tensor.scalars, y.tensor.scalars, x.name)
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kosmos-bf16-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try converted.save(directory: directory, dtype: .bf16)
        // Saved as BF16 throughout: the weights come back bit for bit, the float32 parameters
        // (norms, biases) as their bfloat16 roundings.
        let reloaded = try KosmosModel.load(directory: directory, dtype: .bfloat16)
        for (x, y) in zip(reloaded.namedParameters(), b) {
            XCTAssertEqual(x.tensor.dtype, y.tensor.dtype, x.name)
            XCTAssertEqual(x.tensor.scalars, y.tensor.converted(to: .bfloat16).scalars, x.name)
        }
        XCTAssertEqual(reloaded.parameterBytes[.bfloat16], converted.parameterBytes[.bfloat16])
        // The 16-bit weights use the file's mapped pages in place; a write to one copies its page
        // privately and never reaches the file.
        let fc1 = reloaded.decoder.layers.items[0].ffn.fc1.weight
        XCTAssertTrue(fc1.storage.isBorrowed)
        XCTAssertFalse(try XCTUnwrap(reloaded.decoder.layers.items[0].ffn.fc1.bias).storage.isBorrowed, "float32 parameters are copied")
        let before = try Data(contentsOf: directory.appendingPathComponent("model.safetensors"))
        fc1.fill(0.5)
        XCTAssertTrue(fc1.scalars.allSatisfy { $0 == 0.5 })
        XCTAssertEqual(try Data(contentsOf: directory.appendingPathComponent("model.safetensors")), before)
        XCTAssertEqual(try KosmosModel.load(directory: directory, dtype: .bfloat16).decoder.layers.items[0].ffn.fc1.weight.scalars,
                       b.first { $0.name == "decoder.layers.0.ffn.fc1.weight" }!.tensor.converted(to: .bfloat16).scalars)
    }

    /// config.json's torch_dtype must be a dtype the weights hold: a contradiction names both.
    func testADeclaredDTypeTheWeightsDoNotHaveIsRefused() throws {
        let fixture = try modelFixture("kosmos_tiny.safetensors")
        let model = try KosmosModel(configuration: KosmosParityTests.tinyConfiguration(), generator: RandomGenerator(seed: 0))
        try model.load(from: fixture, prefix: "model.", sourceName: "kosmos_tiny")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kosmos-dtype-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try model.save(directory: directory)
        let config = directory.appendingPathComponent("config.json")
        var object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: config)) as? [String: Any])
        object["torch_dtype"] = "bfloat16"
        try JSONSerialization.data(withJSONObject: object).write(to: config)
        XCTAssertThrowsError(try KosmosModel.load(directory: directory)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("torch_dtype is 'bfloat16'") && text.contains("F32") && text.contains("config.json"), text)
        }
        object["torch_dtype"] = "float32"
        try JSONSerialization.data(withJSONObject: object).write(to: config)
        XCTAssertNoThrow(try KosmosModel.load(directory: directory))
        object["torch_dtype"] = "float7"
        try JSONSerialization.data(withJSONObject: object).write(to: config)
        XCTAssertThrowsError(try KosmosModel.load(directory: directory)) { error in
            XCTAssertTrue("\(error)".contains("torch_dtype 'float7' is not a dtype"), "\(error)")
        }
    }
}
