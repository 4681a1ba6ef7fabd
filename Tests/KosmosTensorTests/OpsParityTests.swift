import XCTest
@testable import KosmosTensor

/// Forward values and gradients against PyTorch (scripts/reference/ops_reference.py, evaluated in
/// float64). Tolerances are DESIGN.md's: forward 1e-5 relative, gradients 1e-4 relative, with a
/// small absolute floor for values near zero.
final class OpsParityTests: XCTestCase {
    var fixture: Fixture!

    override func setUpWithError() throws {
        fixture = try Fixture("ops_reference.safetensors")
    }

    /// Runs `f` on the case's inputs, compares the output and every input's gradient.
    func check(_ name: String, inputs: [String], forwardTolerance: Float = 1e-5, gradientTolerance: Float = 1e-4,
               file: StaticString = #filePath, line: UInt = #line, _ f: ([Tensor]) -> Tensor) throws {
        let xs = try inputs.map { try fixture.tensor("\(name).\($0)", requiresGrad: true) }
        let y = f(xs)
        assertClose(y, try fixture.tensor("\(name).y"), rtol: forwardTolerance, atol: 1e-6, "\(name) forward", file: file, line: line)
        y.backward(try fixture.tensor("\(name).gy"))
        for (x, input) in zip(xs, inputs) {
            guard let grad = x.grad else { XCTFail("\(name): no gradient for \(input)", file: file, line: line); continue }
            assertClose(grad, try fixture.tensor("\(name).g\(input)"), rtol: gradientTolerance, atol: 1e-5,
                        "\(name) gradient of \(input)", file: file, line: line)
        }
    }

    func testActivations() throws {
        try check("gelu", inputs: ["x"]) { $0[0].gelu() }
        try check("quick_gelu", inputs: ["x"]) { $0[0].quickGelu() }
        try check("sigmoid", inputs: ["x"]) { $0[0].sigmoid() }
        try check("tanh", inputs: ["x"]) { $0[0].tanh() }
        try check("exp", inputs: ["x"]) { $0[0].exp() }
        try check("log", inputs: ["x"]) { $0[0].log() }
        try check("sqrt", inputs: ["x"]) { $0[0].sqrt() }
        try check("relu", inputs: ["x"]) { $0[0].relu() }
    }

    func testRowOps() throws {
        try check("softmax", inputs: ["x"]) { $0[0].softmax() }
        try check("log_softmax", inputs: ["x"]) { $0[0].logSoftmax() }
        try check("layer_norm", inputs: ["x", "w", "b"]) { $0[0].layerNorm(weight: $0[1], bias: $0[2], eps: 1e-5) }
        try check("layer_norm_plain", inputs: ["x"]) { $0[0].layerNorm(weight: nil, bias: nil, eps: 1e-5) }
    }

    func testCrossEntropy() throws {
        let targets = try fixture.ints("cross_entropy.targets")
        try check("cross_entropy", inputs: ["x"]) { $0[0].crossEntropy(targets: targets) }
        try check("cross_entropy_sum", inputs: ["x"]) { $0[0].crossEntropy(targets: targets, reduction: .sum) }
    }

    func testBroadcastArithmetic() throws {
        try check("broadcast_add", inputs: ["a", "b"]) { $0[0] + $0[1] }
        try check("broadcast_mul", inputs: ["a", "b"]) { $0[0] * $0[1] }
        try check("broadcast_div", inputs: ["a", "b"]) { $0[0] / $0[1] }
        try check("broadcast_sub", inputs: ["a", "b"]) { $0[0] - $0[1] }
    }

    func testMatmul() throws {
        try check("matmul_batched", inputs: ["a", "b"]) { Tensor.matmul($0[0], $0[1]) }
        try check("matmul_weight", inputs: ["a", "b"]) { Tensor.matmul($0[0], $0[1], transposeB: true) }
        try check("matmul_ta", inputs: ["a", "b"]) { Tensor.matmul($0[0], $0[1], transposeA: true) }
        try check("matmul_tatb", inputs: ["a", "b"]) { Tensor.matmul($0[0], $0[1], transposeA: true, transposeB: true) }
    }

    func testAttention() throws {
        let padding = try fixture.ints("attention.key_padding").map { $0 != 0 }
        try check("attention", inputs: ["q", "k", "v"]) {
            Tensor.scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2], causal: true, keyPadding: padding)
        }
        try check("attention_causal_square", inputs: ["q", "k", "v"]) {
            Tensor.scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2], causal: true)
        }
    }

    func testReductionsAndShapes() throws {
        try check("sum_axes", inputs: ["x"]) { $0[0].sum(axes: [0, 2], keepDims: true) }
        try check("mean_axis", inputs: ["x"]) { $0[0].mean(axis: 1) }
        try check("permute", inputs: ["x"]) { $0[0].permuted([2, 0, 3, 1]) }
        try check("concat_narrow", inputs: ["a", "b"]) {
            Tensor.concatenate([$0[0], $0[1]], axis: 1).narrowed(axis: 1, start: 1, length: 4)
        }
    }
}
