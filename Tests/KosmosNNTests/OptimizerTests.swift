import Foundation
import XCTest
import KosmosTensor
@testable import KosmosNN

final class OptimizerTests: XCTestCase {
    /// Three AdamW steps equal PyTorch's torch.optim.AdamW (float32 on CPU) from
    /// scripts/reference/ops_reference.py. The arithmetic is the same sequence of float32
    /// operations, so the tolerance is one float32 rounding (relative 2^-23 ≈ 1.2e-7), doubled.
    func testAdamWMatchesPyTorch() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/ops_reference.safetensors")
        let file = try SafeTensorsFile(url: url)
        let p = Tensor(shape: [33], scalars: try file.floats("adamw.p0"), requiresGrad: true)
        let optimizer = AdamW(parameters: [p], learningRate: 1e-2, beta1: 0.9, beta2: 0.98, eps: 1e-6, weightDecay: 0.01)
        for step in 1...3 {
            p.grad = Tensor(shape: [33], scalars: try file.floats("adamw.g\(step)"))
            optimizer.step()
            let expected = try file.floats("adamw.p\(step)")
            for (a, e) in zip(p.scalars, expected) {
                XCTAssertEqual(a, e, accuracy: abs(e) * 2.4e-7 + 1e-9, "step \(step)")
            }
        }
        XCTAssertEqual(optimizer.state(of: p)?.step, 3)
    }

    func testParametersWithoutGradientAreLeftAlone() {
        let a = Tensor.ones([2], requiresGrad: true), b = Tensor.ones([2], requiresGrad: true)
        let optimizer = AdamW(parameters: [a, b], learningRate: 0.1)
        a.grad = Tensor(shape: [2], scalars: [1, -1])
        optimizer.step()
        XCTAssertEqual(b.scalars, [1, 1])
        XCTAssertNil(optimizer.state(of: b))
        XCTAssertLessThan(a.scalars[0], 1)
        XCTAssertGreaterThan(a.scalars[1], 0.9)
    }

    /// A 2-layer MLP learns y = sin(3x₀) + x₁² on 256 points: the mean squared error falls from
    /// about the variance of y (≈0.7) to below 0.01 within 400 full-batch AdamW steps.
    func testTinyMLPLearnsAToyRegression() {
        let generator = RandomGenerator(seed: 123)
        let n = 256
        let inputs = Tensor.uniform([n, 2], low: -1, high: 1, generator: generator)
        let x = inputs.scalars
        let targets = Tensor(shape: [n, 1], scalars: (0..<n).map { Foundation.sin(3 * x[2 * $0]) + x[2 * $0 + 1] * x[2 * $0 + 1] })
        let fc1 = Linear(inFeatures: 2, outFeatures: 64, generator: generator)
        let fc2 = Linear(inFeatures: 64, outFeatures: 1, generator: generator)
        let optimizer = AdamW(parameters: fc1.parameters() + fc2.parameters(), learningRate: 1e-2, weightDecay: 0)
        func loss() -> Tensor { (fc2(fc1(inputs).gelu()) - targets).square().mean() }
        let initial = withoutGrad { loss().item() }
        var final: Float = .infinity
        for _ in 0..<400 {
            optimizer.zeroGrad()
            let l = loss()
            l.backward()
            optimizer.step()
            final = l.item()
        }
        XCTAssertGreaterThan(initial, 0.3)
        XCTAssertLessThan(final, 0.01, "MSE after 400 steps")
    }
}
