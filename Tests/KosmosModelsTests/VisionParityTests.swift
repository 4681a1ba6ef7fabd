import Foundation
import XCTest
import KosmosNN
import KosmosTensor
@testable import KosmosModels

/// CLIPVisionTransformer against transformers' CLIPVisionModel and PerceiverResampler against
/// flamingo-pytorch (scripts/reference/vision_reference.py, float64): outputs to 1e-5 relative,
/// gradients of every parameter and of the input to 1e-4 relative (DESIGN.md).
final class VisionParityTests: XCTestCase {
    func checkGradients(_ module: Module, input: Tensor, fixture: SafeTensorsFile, label: String) throws {
        var checked = 0
        for (name, parameter) in module.namedParameters() {
            guard let grad = parameter.grad else { XCTFail("\(label): no gradient for \(name)"); continue }
            assertGradientClose(grad.scalars, try fixture.floats("grad.\(name)"), "\(label) grad \(name)")
            checked += 1
        }
        XCTAssertEqual(checked, module.namedParameters().count)
        assertGradientClose(input.grad?.scalars ?? [], try fixture.floats("grad.input"), "\(label) input grad")
    }

    func checkCLIP(_ activation: String) throws {
        let fixture = try modelFixture("clip_\(activation).safetensors")
        var c = CLIPVisionConfiguration()
        c.hiddenSize = 32; c.intermediateSize = 64; c.numHiddenLayers = 2; c.numAttentionHeads = 4
        c.imageSize = 16; c.patchSize = 4; c.hiddenAct = activation
        let tower = try CLIPVisionTransformer(configuration: c, generator: RandomGenerator(seed: 0))
        try tower.load(from: fixture, prefix: "model.", sourceName: "clip_\(activation)")
        let pixels = try fixture.tensor("pixel_values")
        pixels.requiresGrad = true
        let (last, pooled) = try tower(pixels)
        XCTAssertEqual(last.shape, [2, 17, 32])
        assertAllClose(last.scalars, try fixture.floats("last_hidden_state"), rtol: 1e-5, atol: 1e-5, "\(activation) last_hidden_state")
        assertAllClose(pooled.scalars, try fixture.floats("pooled"), rtol: 1e-5, atol: 1e-5, "\(activation) pooled")
        ((last * (try fixture.tensor("w1"))).sum() + (pooled * (try fixture.tensor("w2"))).sum()).backward()
        try checkGradients(tower, input: pixels, fixture: fixture, label: activation)
    }

    func testCLIPQuickGelu() throws { try checkCLIP("quick_gelu") }
    func testCLIPGelu() throws { try checkCLIP("gelu") }

    func testPerceiverResampler() throws {
        let fixture = try modelFixture("perceiver.safetensors")
        var c = PerceiverConfiguration()
        c.dim = 32; c.depth = 2; c.dimHead = 8; c.heads = 4; c.numLatents = 6; c.numMediaEmbeds = 3; c.ffMult = 2
        let resampler = try PerceiverResampler(configuration: c, generator: RandomGenerator(seed: 0))
        try resampler.load(from: fixture, prefix: "model.", sourceName: "perceiver")
        let media = try fixture.tensor("media")
        media.requiresGrad = true
        let out = try resampler(media)
        XCTAssertEqual(out.shape, [2, 2, 6, 32])
        assertAllClose(out.scalars, try fixture.floats("output"), rtol: 1e-5, atol: 1e-5, "perceiver output")
        (out * (try fixture.tensor("w"))).sum().backward()
        try checkGradients(resampler, input: media, fixture: fixture, label: "perceiver")
        let single = try withoutGrad { try resampler(try fixture.tensor("single_media")) }
        XCTAssertEqual(single.shape, [2, 1, 6, 32])
        assertAllClose(single.scalars, try fixture.floats("single_output"), rtol: 1e-5, atol: 1e-5, "perceiver single frame")
    }

    func testWrongInputsAreErrors() throws {
        var c = CLIPVisionConfiguration()
        c.hiddenSize = 32; c.intermediateSize = 64; c.numHiddenLayers = 1; c.numAttentionHeads = 4
        c.imageSize = 16; c.patchSize = 4
        let tower = try CLIPVisionTransformer(configuration: c, generator: RandomGenerator(seed: 0))
        XCTAssertThrowsError(try tower(Tensor.zeros([1, 3, 32, 32]))) { error in
            XCTAssertTrue("\(error)".contains("[batch, 3, 16, 16]"), "\(error)")
        }
        c.patchSize = 5
        XCTAssertThrowsError(try CLIPVisionTransformer(configuration: c, generator: RandomGenerator(seed: 0)))
        var p = PerceiverConfiguration()
        p.dim = 8; p.numMediaEmbeds = 1; p.dimHead = 4; p.heads = 2; p.numLatents = 2; p.depth = 1
        let resampler = try PerceiverResampler(configuration: p, generator: RandomGenerator(seed: 0))
        XCTAssertThrowsError(try resampler(Tensor.zeros([1, 2, 3, 8])))
    }
}
