import Foundation
import XCTest
import KosmosNN
import KosmosTensor
@testable import KosmosModels

func modelFixture(_ name: String) throws -> SafeTensorsFile {
    try SafeTensorsFile(url: URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").appendingPathComponent(name))
}

/// A Kosmos-1 configuration fixture (Tests/Fixtures/NAME), as the reference script that wrote it uses it.
func fixtureConfiguration(_ name: String) throws -> KosmosConfiguration {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").appendingPathComponent(name)
    return try JSONDecoder().decode(KosmosConfiguration.self, from: Data(contentsOf: url))
}

/// Compares within atol + rtol·|expected|, naming the worst element.
func assertAllClose(_ actual: [Float], _ expected: [Float], rtol: Float, atol: Float, _ label: String,
                    file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.count, expected.count, "\(label): count", file: file, line: line)
    var worst: (index: Int, excess: Float)? = nil
    for i in 0..<min(actual.count, expected.count) {
        let excess = abs(actual[i] - expected[i]) - (atol + rtol * abs(expected[i]))
        if excess > 0 || actual[i].isNaN != expected[i].isNaN, excess > (worst?.excess ?? 0) || worst == nil {
            worst = (i, excess.isNaN ? .infinity : excess)
        }
    }
    if let worst {
        XCTFail("\(label): element \(worst.index) is \(actual[worst.index]), expected \(expected[worst.index])",
                file: file, line: line)
    }
}

/// Gradient comparison: 1e-4 relative per element (DESIGN.md) plus an absolute floor of 1e-6 of the
/// tensor's largest magnitude. The floor matters only for elements that are sums of large terms
/// cancelling to near zero (a conv weight's gradient sums over every patch of every image), where
/// float32 accumulation leaves an error of order 1e-7 × the terms, not of the result. A fixed 1e-6
/// floor covers gradients that are exactly zero in exact arithmetic (a key bias: softmax ignores a
/// shift shared by all keys), which come out as float rounding noise on both sides.
func assertGradientClose(_ actual: [Float], _ expected: [Float], _ label: String,
                         file: StaticString = #filePath, line: UInt = #line) {
    let scale = expected.map { abs($0) }.max() ?? 0
    assertAllClose(actual, expected, rtol: 1e-4, atol: max(1e-6 * scale, 1e-6), label, file: file, line: line)
}

/// The losses of ten AdamW steps (the references' settings: lr 1e-3, betas 0.9/0.98, eps 1e-6,
/// weight decay 0.01) on `module`'s parameters, `loss` computed afresh at each step.
func adamWLosses(_ module: Module, steps: Int = 10, _ loss: () throws -> Tensor) rethrows -> [Float] {
    let optimizer = AdamW(parameters: module.parameters(), learningRate: 1e-3, beta1: 0.9, beta2: 0.98, eps: 1e-6, weightDecay: 0.01)
    var losses: [Float] = []
    for _ in 0..<steps {
        optimizer.zeroGrad()
        let l = try loss()
        l.backward()
        optimizer.step()
        losses.append(l.item())
    }
    return losses
}

/// MagnetoDecoder against torchscale 0.3's Decoder (scripts/reference/decoder_reference.py):
/// logits and loss to 1e-5 relative, every parameter's gradient to 1e-4 relative (DESIGN.md), and
/// the losses of ten AdamW steps, which both sides run in float32, to 1e-4 relative.
final class DecoderParityTests: XCTestCase {
    /// The attention options beyond torchscale (scripts/reference/attention_variants_reference.py):
    /// key/value heads and QK-norm on the "xpos_subln" decoder.
    static let attentionVariants: [String: (kvHeads: Int?, qkNorm: Bool)] = [
        "mqa": (1, false), "gqa": (2, false), "qknorm": (nil, true), "gqa_qknorm": (2, true),
    ]

    static func configuration(_ variant: String) -> DecoderConfiguration {
        if let options = attentionVariants[variant] {
            var c = configuration("xpos_subln")
            c.decoderKvAttentionHeads = options.kvHeads
            c.qkNorm = options.qkNorm
            return c
        }
        var c = DecoderConfiguration()
        c.decoderEmbedDim = 32
        c.decoderAttentionHeads = 4
        c.decoderFfnEmbedDim = 64
        c.decoderLayers = 2
        c.vocabSize = 50
        c.maxTargetPositions = 16
        c.xposRelPos = variant.hasPrefix("xpos")
        c.subln = variant != "preln_learned"
        c.absolutePositions = variant.hasSuffix("learned") ? .learned : .none
        c.layernormEmbedding = variant == "preln_learned"
        c.noScaleEmbedding = variant != "preln_learned"
        c.shareDecoderInputOutputEmbed = variant == "xpos_tied"
        return c
    }

    func nextTokenLoss(_ logits: Tensor, tokens: [Int], batch: Int, length: Int, pad: Int) -> Tensor {
        var targets: [Int] = []
        for b in 0..<batch {
            for t in 1..<length {
                let id = tokens[b * length + t]
                targets.append(id == pad ? -100 : id)
            }
        }
        let vocab = logits.shape[2]
        return logits.narrowed(axis: 1, start: 0, length: length - 1).reshaped([-1, vocab]).crossEntropy(targets: targets)
    }

    func check(_ variant: String) throws {
        let fixture = try modelFixture("decoder_\(variant).safetensors")
        let decoder = try MagnetoDecoder(configuration: Self.configuration(variant), generator: RandomGenerator(seed: 0))
        try decoder.load(from: fixture, prefix: "model.", sourceName: variant)
        decoder.eval()
        let tokens = try fixture.int64s("tokens").map { Int($0) }
        let padding = try fixture.int64s("key_padding").map { $0 != 0 }
        let logits = try decoder(tokens: tokens, batch: 2, length: 7, keyPadding: padding)
        assertAllClose(logits.scalars, try fixture.floats("logits"), rtol: 1e-5, atol: 1e-5, "\(variant) logits")
        let loss = nextTokenLoss(logits, tokens: tokens, batch: 2, length: 7, pad: 1)
        XCTAssertEqual(loss.item(), try fixture.floats("loss")[0], accuracy: 1e-5 * abs(loss.item()), "\(variant) loss")
        loss.backward()
        var checked = 0
        for (name, parameter) in decoder.namedParameters() {
            guard fixture.entry("grad.\(name)") != nil else {
                XCTFail("\(variant): fixture has no gradient for \(name)")
                continue
            }
            guard let grad = parameter.grad else { XCTFail("\(variant): no gradient for \(name)"); continue }
            assertGradientClose(grad.scalars, try fixture.floats("grad.\(name)"), "\(variant) grad \(name)")
            checked += 1
        }
        XCTAssertGreaterThan(checked, 20)

        // Ten AdamW steps from the same float32 weights.
        let fresh = try MagnetoDecoder(configuration: Self.configuration(variant), generator: RandomGenerator(seed: 0))
        try fresh.load(from: fixture, prefix: "model.", sourceName: variant)
        fresh.eval()
        let losses = try adamWLosses(fresh) {
            nextTokenLoss(try fresh(tokens: tokens, batch: 2, length: 7, keyPadding: padding), tokens: tokens, batch: 2, length: 7, pad: 1)
        }
        assertAllClose(losses, try fixture.floats("adamw_losses"), rtol: 1e-4, atol: 0, "\(variant) AdamW losses")
    }

    func testXPosSubLN() throws { try check("xpos_subln") }
    func testSubLNWithoutXPos() throws { try check("subln") }
    func testXPosWithLearnedPositions() throws { try check("xpos_learned") }
    func testPreLNWithLearnedPositionsAndEmbeddingNorm() throws { try check("preln_learned") }
    func testTiedInputOutputEmbedding() throws { try check("xpos_tied") }
    func testMultiQueryAttention() throws { try check("mqa") }
    func testGroupedQueryAttention() throws { try check("gqa") }
    func testQKNorm() throws { try check("qknorm") }
    func testGroupedQueryAttentionWithQKNorm() throws { try check("gqa_qknorm") }

    /// The variants decode through the KV cache as one full pass (every step to 1e-5), the cache
    /// holding only the key/value heads; their settings survive config.json; a key/value head
    /// count that does not divide the heads is refused.
    func testAttentionVariantsDecodeThroughASmallerCache() throws {
        for (variant, options) in Self.attentionVariants.sorted(by: { $0.key < $1.key }) {
            let c = Self.configuration(variant)
            XCTAssertEqual(try JSONDecoder().decode(DecoderConfiguration.self, from: JSONEncoder().encode(c)), c, variant)
            let decoder = try MagnetoDecoder(configuration: c, generator: RandomGenerator(seed: 0))
            try decoder.load(from: try modelFixture("decoder_\(variant).safetensors"), prefix: "model.", sourceName: variant)
            decoder.eval()
            var tokens = [5, 9, 14, 3]
            let cache = decoder.makeCache()
            _ = try withoutGrad { try decoder(tokens: tokens, batch: 1, length: tokens.count, cache: cache) }
            for next in [7, 21, 40, 11, 2] {
                let step = try withoutGrad { try decoder.next(next, cache: cache) }
                tokens.append(next)
                let full = try withoutGrad { try decoder(tokens: tokens, batch: 1, length: tokens.count) }
                assertAllClose(step.scalars, Array(full.scalars.suffix(50)), rtol: 1e-5, atol: 1e-5, "\(variant) after \(tokens.count) tokens")
            }
            let buffer = try XCTUnwrap(cache.layers[0].buffer as? KVBuffer)
            XCTAssertEqual(buffer.heads, options.kvHeads ?? 4, variant)
        }
        var bad = Self.configuration("xpos_subln")
        bad.decoderKvAttentionHeads = 3
        XCTAssertThrowsError(try MagnetoDecoder(configuration: bad, generator: RandomGenerator(seed: 0))) { error in
            XCTAssertTrue("\(error)".contains("3 key/value heads do not divide the 4 attention heads"), "\(error)")
        }
        bad.decoderKvAttentionHeads = 0
        XCTAssertThrowsError(try MagnetoDecoder(configuration: bad, generator: RandomGenerator(seed: 0)))
    }

    func testMagnetoInitialisationScalesTheRightParameters() throws {
        var c = Self.configuration("xpos_subln")
        c.decoderLayers = 24
        c.decoderEmbedDim = 64
        c.decoderAttentionHeads = 4
        c.decoderFfnEmbedDim = 256
        let decoder = try MagnetoDecoder(configuration: c, generator: RandomGenerator(seed: 1))
        // PyTorch's default Linear init is U(±1/√in): standard deviation 1/√(3·in); Magneto
        // multiplies fc1/fc2/out_proj/v_proj by √(ln 48) ≈ 1.9675 and leaves q/k alone.
        func std(_ t: Tensor) -> Double {
            let v = t.scalars.map(Double.init)
            return (v.map { $0 * $0 }.reduce(0, +) / Double(v.count)).squareRoot()
        }
        let base = 1 / (3.0 * 64).squareRoot()
        let factor = Foundation.log(48.0).squareRoot()
        let layer = decoder.layers[5]
        XCTAssertEqual(std(layer.selfAttn.qProj.weight), base, accuracy: base * 0.05)
        XCTAssertEqual(std(layer.selfAttn.kProj.weight), base, accuracy: base * 0.05)
        XCTAssertEqual(std(layer.selfAttn.vProj.weight), base * factor, accuracy: base * factor * 0.05)
        XCTAssertEqual(std(layer.selfAttn.outProj.weight), base * factor, accuracy: base * factor * 0.05)
        XCTAssertEqual(std(layer.ffn.fc1.weight), base * factor, accuracy: base * factor * 0.05)
        let fc2Base = 1 / (3.0 * 256).squareRoot()
        XCTAssertEqual(std(layer.ffn.fc2.weight), fc2Base * factor, accuracy: fc2Base * factor * 0.05)
        XCTAssertTrue(layer.ffn.fc1.bias!.scalars.allSatisfy { abs($0) <= Float(factor / 8) + 1e-6 })
        XCTAssertEqual(std(decoder.outputProjection.weight), 1 / 8, accuracy: 0.01)
        XCTAssertEqual(layer.selfAttnLayerNorm.weight?.scalars, [Float](repeating: 1, count: 64))
    }

    /// The sinusoidal table equals fairseq's as transformers' Kosmos-2 builds it (padding_idx 1,
    /// positions from 2), and is added to the embeddings.
    func testSinusoidalPositionsMatchFairseqTable() throws {
        var c = Self.configuration("subln")
        c.absolutePositions = .sinusoidal
        let decoder = try MagnetoDecoder(configuration: c, generator: RandomGenerator(seed: 0))
        let table = decoder.sinusoidalPositions(length: 12)
        assertAllClose(table.scalars, try modelFixture("sinusoidal_positions.safetensors").floats("positions"),
                       rtol: 1e-6, atol: 1e-7, "sinusoidal positions")
        decoder.eval()
        let tokens = [3, 4, 5]
        let withPositions = try withoutGrad { try decoder.embed(tokens: tokens, batch: 1, length: 3) }
        let plain = try withoutGrad { try decoder.embedTokens(tokens, shape: [1, 3]) }
        assertAllClose(withPositions.scalars, withoutGrad { plain + table.narrowed(axis: 0, start: 0, length: 3) }.scalars,
                       rtol: 0, atol: 0, "embeddings + positions")
    }

    func testConfigurationDecodesTorchscaleNamesWithDefaults() throws {
        let json = #"{"decoder_layers": 3, "decoder_embed_dim": 64, "decoder_attention_heads": 8, "vocab_size": 100, "xpos_rel_pos": true}"#
        let c = try JSONDecoder().decode(DecoderConfiguration.self, from: Data(json.utf8))
        XCTAssertEqual(c.decoderLayers, 3)
        XCTAssertEqual(c.decoderFfnEmbedDim, 3072)
        XCTAssertTrue(c.subln)
        XCTAssertTrue(c.noScaleEmbedding)
        XCTAssertEqual(c.xposScaleBase, 512)
        XCTAssertNoThrow(try c.validate())
        var bad = c
        bad.decoderAttentionHeads = 7
        XCTAssertThrowsError(try bad.validate()) { error in
            XCTAssertEqual(error as? ModelError, .invalidConfiguration(field: "decoder_attention_heads",
                                                                       reason: "7 does not divide decoder_embed_dim 64"))
        }
    }
}
