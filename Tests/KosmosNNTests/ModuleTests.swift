import Foundation
import XCTest
import KosmosTensor
@testable import KosmosNN

/// A two-level module tree with the naming of a transformer block.
final class Block: Module {
    let norm: LayerNorm
    let fc1: Linear
    let fc2: Linear
    let dropout: Dropout

    init(dimension: Int, hidden: Int, generator: RandomGenerator) {
        norm = LayerNorm(dimension)
        fc1 = Linear(inFeatures: dimension, outFeatures: hidden, generator: generator)
        fc2 = Linear(inFeatures: hidden, outFeatures: dimension, bias: false, generator: generator)
        dropout = Dropout(probability: 0.5, generator: generator)
        super.init()
        registerModule("norm", norm)
        registerModule("fc1", fc1)
        registerModule("fc2", fc2)
        registerModule("dropout", dropout)
        registerBuffer("scale", Tensor.ones([dimension]))
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        x + dropout(fc2(fc1(norm(x)).gelu()))
    }
}

final class Stack: Module {
    let embed: Embedding
    let layers: ModuleList<Block>

    init(generator: RandomGenerator) {
        embed = Embedding(count: 10, dimension: 4, paddingIndex: 1, generator: generator)
        layers = ModuleList([Block(dimension: 4, hidden: 8, generator: generator),
                             Block(dimension: 4, hidden: 8, generator: generator)])
        super.init()
        registerModule("embed_tokens", embed)
        registerModule("layers", layers)
    }
}

final class ModuleTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("kosmos-nn-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    func testParameterNamesAreStateDictKeys() {
        let model = Stack(generator: RandomGenerator(seed: 1))
        XCTAssertEqual(model.namedParameters().map(\.name), [
            "embed_tokens.weight",
            "layers.0.norm.weight", "layers.0.norm.bias", "layers.0.fc1.weight", "layers.0.fc1.bias", "layers.0.fc2.weight",
            "layers.1.norm.weight", "layers.1.norm.bias", "layers.1.fc1.weight", "layers.1.fc1.bias", "layers.1.fc2.weight",
        ])
        XCTAssertEqual(model.namedBuffers().map(\.name), ["layers.0.scale", "layers.1.scale"])
        XCTAssertEqual(model.stateDict().count, 13)
        XCTAssertEqual(model.parameterCount, 40 + 2 * (4 + 4 + 32 + 8 + 32))
        XCTAssertTrue(model.parameters().allSatisfy(\.requiresGrad))
        XCTAssertFalse(model.namedBuffers()[0].tensor.requiresGrad)
        // Padding row of the embedding starts at zero.
        XCTAssertEqual(Array(model.embed.weight.scalars[4..<8]), [0, 0, 0, 0])
    }

    func testDefaultLinearInitialisationBound() {
        let linear = Linear(inFeatures: 64, outFeatures: 300, generator: RandomGenerator(seed: 3))
        let bound: Float = 1 / 8
        XCTAssertTrue(linear.weight.scalars.allSatisfy { abs($0) <= bound })
        XCTAssertTrue(linear.bias!.scalars.allSatisfy { abs($0) <= bound })
        // Uniform on [-b, b] has standard deviation b/√3.
        let w = linear.weight.scalars.map(Double.init)
        let std = (w.map { $0 * $0 }.reduce(0, +) / Double(w.count)).squareRoot()
        XCTAssertEqual(std, Double(bound) / 3.0.squareRoot(), accuracy: 0.005)
    }

    func testEvalTurnsDropoutOff() {
        let block = Block(dimension: 4, hidden: 8, generator: RandomGenerator(seed: 4))
        let x = Tensor.randn([3, 4], generator: RandomGenerator(seed: 5))
        block.eval()
        XCTAssertFalse(block.dropout.isTraining)
        XCTAssertEqual(block(x).scalars, block(x).scalars)
        block.train()
        XCTAssertTrue(block.fc1.isTraining)
    }

    func testEmbeddingRejectsOutOfRangeIds() {
        let embedding = Embedding(count: 5, dimension: 2, generator: RandomGenerator(seed: 6))
        XCTAssertThrowsError(try embedding([1, 5])) { error in
            XCTAssertEqual(error as? EmbeddingError, .idOutOfRange(id: 5, tableSize: 5))
        }
        XCTAssertEqual(try embedding([4, 0], shape: [1, 2]).shape, [1, 2, 2])
    }

    func testSaveLoadRoundTripByName() throws {
        let source = Stack(generator: RandomGenerator(seed: 10))
        let url = directory.appendingPathComponent("model.safetensors")
        try source.save(to: url)
        let target = Stack(generator: RandomGenerator(seed: 11))
        XCTAssertNotEqual(target.embed.weight.scalars, source.embed.weight.scalars)
        try target.load(from: url)
        for ((name, a), (_, b)) in zip(source.stateDict(), target.stateDict()) {
            XCTAssertEqual(a.scalars, b.scalars, name)
        }
        // BF16 storage loads back within bf16 rounding (relative 2^-8).
        let bf16URL = directory.appendingPathComponent("bf16.safetensors")
        try source.save(to: bf16URL, dtype: .bf16)
        let fromBF16 = Stack(generator: RandomGenerator(seed: 12))
        try fromBF16.load(from: bf16URL)
        for ((name, a), (_, b)) in zip(source.stateDict(), fromBF16.stateDict()) {
            for (x, y) in zip(a.scalars, b.scalars) { XCTAssertEqual(y, x, accuracy: abs(x) / 256 + 1e-30, name) }
        }
    }

    func testLoadNamesEveryMissingUnexpectedAndMisshapenTensor() throws {
        var writer = SafeTensorsWriter()
        let model = Stack(generator: RandomGenerator(seed: 20))
        var kept: [Tensor] = []
        for (name, tensor) in model.stateDict() where name != "layers.1.fc2.weight" {
            let stored = name == "layers.0.fc1.weight" ? Tensor.zeros([4, 8]) : tensor
            kept.append(stored)
            try writer.add(name: name, tensor: stored)
        }
        let extra = Tensor.zeros([2])
        try writer.add(name: "layers.0.rotary.inv_freq", tensor: extra)
        let url = directory.appendingPathComponent("bad.safetensors")
        try withExtendedLifetime((kept, extra)) { try writer.write(to: url) }

        let target = Stack(generator: RandomGenerator(seed: 21))
        let before = target.stateDict().map { $0.tensor.scalars }
        XCTAssertThrowsError(try target.load(from: url)) { error in
            guard let problems = error as? StateDictError else { return XCTFail("unexpected \(error)") }
            XCTAssertEqual(problems.missing, ["layers.1.fc2.weight"])
            XCTAssertEqual(problems.unexpected, ["layers.0.rotary.inv_freq"])
            XCTAssertEqual(problems.mismatched, [.init(name: "layers.0.fc1.weight", expected: [8, 4], found: [4, 8])])
            let text = problems.description
            XCTAssertTrue(text.contains("bad.safetensors: tensor layers.0.fc1.weight has shape [4, 8], the model expects [8, 4]"), text)
            XCTAssertTrue(text.contains("layers.1.fc2.weight"), text)
        }
        // Nothing was copied.
        XCTAssertEqual(target.stateDict().map { $0.tensor.scalars }, before)
    }

    func testLoadWithPrefixIgnoresOtherTensors() throws {
        let block = Block(dimension: 4, hidden: 8, generator: RandomGenerator(seed: 30))
        let url = directory.appendingPathComponent("prefixed.safetensors")
        try block.save(to: url, prefix: "vision_model.encoder.layers.0.")
        let copy = Block(dimension: 4, hidden: 8, generator: RandomGenerator(seed: 31))
        try copy.load(from: url, prefix: "vision_model.encoder.layers.0.")
        XCTAssertEqual(copy.fc1.weight.scalars, block.fc1.weight.scalars)
        XCTAssertThrowsError(try copy.load(from: url, prefix: "text_model."))
    }
}
