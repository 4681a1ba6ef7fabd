import XCTest
@testable import KosmosTensor

/// A finite-difference check for every differentiable op (tolerances explained at `gradCheck`).
final class GradCheckTests: XCTestCase {
    let generator = RandomGenerator(seed: 7)

    func randn(_ shape: [Int], scale: Float = 1) -> Tensor {
        Tensor.randn(shape, std: scale, generator: generator)
    }

    /// Values kept away from 0 by more than ε, for functions with a kink or a pole there.
    func awayFromZero(_ shape: [Int], minimum: Float = 0.1) -> Tensor {
        let t = randn(shape)
        t.withUnsafeMutableBufferPointer { b in
            for i in 0..<b.count { b[i] = b[i] >= 0 ? b[i] + minimum : b[i] - minimum }
        }
        return t
    }

    func positive(_ shape: [Int]) -> Tensor {
        Tensor.uniform(shape, low: 0.5, high: 2, generator: generator)
    }

    func testArithmeticWithBroadcasting() {
        gradCheck("add", [randn([2, 3, 4]), randn([3, 1])]) { $0[0] + $0[1] }
        gradCheck("sub", [randn([4]), randn([2, 3, 4])]) { $0[0] - $0[1] }
        gradCheck("mul", [randn([2, 1, 4]), randn([3, 4])]) { $0[0] * $0[1] }
        gradCheck("div", [randn([2, 3]), positive([2, 1])]) { $0[0] / $0[1] }
        gradCheck("scalar ops", [randn([5, 3])]) { (-($0[0] * 1.5) + 2) / 4 }
        gradCheck("same tensor twice", [randn([6])]) { $0[0] * $0[0] + $0[0] }
    }

    func testUnaryFunctions() {
        gradCheck("exp", [randn([20])]) { $0[0].exp() }
        gradCheck("log", [positive([20])]) { $0[0].log() }
        gradCheck("sqrt", [positive([20])]) { $0[0].sqrt() }
        gradCheck("square", [randn([20])]) { $0[0].square() }
        gradCheck("relu", [awayFromZero([20])]) { $0[0].relu() }
        gradCheck("sigmoid", [randn([20], scale: 3)]) { $0[0].sigmoid() }
        gradCheck("tanh", [randn([20], scale: 2)]) { $0[0].tanh() }
        gradCheck("gelu", [randn([40], scale: 3)]) { $0[0].gelu() }
        gradCheck("quick_gelu", [randn([40], scale: 3)]) { $0[0].quickGelu() }
    }

    func testReductions() {
        gradCheck("sum", [randn([3, 5])]) { $0[0].sum() }
        gradCheck("sum axes", [randn([2, 3, 4])]) { $0[0].sum(axes: [0, 2]) }
        gradCheck("sum keepDims", [randn([2, 3, 4])]) { $0[0].sum(axis: -1, keepDims: true) }
        gradCheck("mean", [randn([3, 5])]) { $0[0].mean() }
        gradCheck("mean axis", [randn([3, 5, 2])]) { $0[0].mean(axis: 1) }
        // Distinct values, so the maximum does not switch under a ±ε nudge.
        let distinct = Tensor(shape: [3, 4], scalars: (0..<12).map { Float(($0 * 7) % 12) * 0.5 })
        gradCheck("max axis", [distinct]) { $0[0].max(axis: 1).values }
    }

    func testShapeOps() {
        gradCheck("reshape", [randn([2, 6])]) { $0[0].reshaped([3, -1]) }
        gradCheck("permute", [randn([2, 3, 4])]) { $0[0].permuted([2, 0, 1]) }
        gradCheck("transpose", [randn([2, 3, 4])]) { $0[0].transposed(0, 2) }
        gradCheck("narrow", [randn([3, 5, 2])]) { $0[0].narrowed(axis: 1, start: 1, length: 3) }
        gradCheck("concatenate", [randn([2, 3]), randn([2, 1]), randn([2, 2])]) {
            Tensor.concatenate($0, axis: 1)
        }
        gradCheck("split", [randn([4, 3])]) { t in
            let parts = t[0].split(axis: 0, sizes: [1, 3])
            return parts[1] * 2 + parts[0]
        }
        gradCheck("expand", [randn([3, 1])]) { $0[0].expanded(to: [2, 3, 4]) }
        gradCheck("unsqueeze/squeeze", [randn([3, 4])]) { $0[0].unsqueezed(1).squeezed(1) * 3 }
        gradCheck("gather rows (repeated ids)", [randn([5, 3])]) { $0[0].gatherRows([4, 0, 4, 2], indexShape: [2, 2]) }
    }

    func testMatmul() {
        gradCheck("matmul", [randn([3, 4]), randn([4, 5])]) { Tensor.matmul($0[0], $0[1]) }
        gradCheck("matmul Bᵀ", [randn([3, 4]), randn([5, 4])]) { Tensor.matmul($0[0], $0[1], transposeB: true) }
        gradCheck("matmul Aᵀ", [randn([4, 3]), randn([4, 5])]) { Tensor.matmul($0[0], $0[1], transposeA: true) }
        gradCheck("matmul AᵀBᵀ", [randn([4, 3]), randn([5, 4])]) {
            Tensor.matmul($0[0], $0[1], transposeA: true, transposeB: true)
        }
        gradCheck("batched matmul", [randn([2, 3, 4]), randn([2, 4, 2])]) { Tensor.matmul($0[0], $0[1]) }
        gradCheck("batched with shared weight", [randn([2, 3, 4]), randn([5, 4])]) {
            Tensor.matmul($0[0], $0[1], transposeB: true)
        }
        gradCheck("broadcast batch", [randn([2, 1, 3, 4]), randn([3, 4, 2])]) { Tensor.matmul($0[0], $0[1]) }
        gradCheck("batched Aᵀ with broadcast", [randn([2, 4, 3]), randn([4, 2])]) {
            Tensor.matmul($0[0], $0[1], transposeA: true)
        }
    }

    func testNormalisationAndSoftmax() {
        gradCheck("softmax", [randn([3, 7], scale: 2)]) { $0[0].softmax() }
        gradCheck("log_softmax", [randn([3, 19], scale: 2)]) { $0[0].logSoftmax() }
        gradCheck("layer_norm affine", [randn([4, 20], scale: 2), randn([20]), randn([20])]) {
            $0[0].layerNorm(weight: $0[1], bias: $0[2], eps: 1e-5)
        }
        gradCheck("layer_norm plain", [randn([3, 9])]) { $0[0].layerNorm(weight: nil, bias: nil) }
    }

    func testLosses() {
        gradCheck("cross_entropy mean with ignore", [randn([5, 7], scale: 2)]) {
            $0[0].crossEntropy(targets: [3, -100, 0, 6, 2])
        }
        gradCheck("cross_entropy sum", [randn([2, 3, 4])]) {
            $0[0].crossEntropy(targets: [1, 0, 3, 2, 2, 0], reduction: .sum)
        }
    }

    func testAttention() {
        let padding = [false, false, false, false, true, false, false, false, false, false]
        gradCheck("masked softmax", [randn([2, 2, 3, 5], scale: 2)]) {
            $0[0].maskedSoftmax(scale: 0.7, causal: true, keyPadding: padding)
        }
        gradCheck("attention causal + padding", [randn([2, 2, 3, 4]), randn([2, 2, 5, 4]), randn([2, 2, 5, 3])]) {
            Tensor.scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2], causal: true, keyPadding: padding)
        }
        gradCheck("attention with additive bias", [randn([1, 2, 4, 4]), randn([1, 2, 4, 4]), randn([1, 2, 4, 4]), randn([4, 4])]) {
            Tensor.scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2], bias: $0[3])
        }
    }

    func testDropout() {
        // The same seed inside f gives the same mask on every evaluation.
        gradCheck("dropout", [randn([50])]) {
            $0[0].dropout(probability: 0.3, generator: RandomGenerator(seed: 5))
        }
    }
}

extension GradCheckTests {
    func testRotatingPairs() {
        let c = Tensor.randn([3, 2], generator: generator), s = Tensor.randn([3, 2], generator: generator)
        gradCheck("rotating pairs", [randn([2, 3, 4])]) { $0[0].rotatingPairs(cos: c, sin: s) }
    }
}

extension GradCheckTests {
    func testPatchify() {
        gradCheck("patchify", [randn([2, 3, 4, 6])]) { $0[0].patchified(patchSize: 2) }
    }
}

extension GradCheckTests {
    func testReplacingRows() {
        gradCheck("replacing rows", [randn([5, 3]), randn([2, 3])]) { $0[0].replacingRows(at: [3, 1], with: $0[1]) }
    }
}

extension GradCheckTests {
    func testClampAndL2Normalize() {
        gradCheck("clamp_min", [awayFromZero([20])]) { $0[0].clampedMin(0) }
        gradCheck("l2 normalize", [randn([3, 7])]) { $0[0].l2Normalized() }
    }
}
