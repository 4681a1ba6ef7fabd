import Foundation
import KosmosTensor

/// Throughput of matrix products through `Tensor.matmul` (so what is measured is what the models
/// run: the backend plus our dispatch), the weight stored as float32 or bfloat16. Used by `kosmos bench gemm`; figures are printed, never asserted.
public enum GemmBenchmark {
    public struct Shape: Sendable, CustomStringConvertible {
        public let m: Int, k: Int, n: Int
        public let label: String
        public init(m: Int, k: Int, n: Int, label: String = "") {
            self.m = m; self.k = k; self.n = n; self.label = label
        }
        public var description: String { "\(m)×\(k) · \(k)×\(n)" }
        public var flops: Double { 2 * Double(m) * Double(k) * Double(n) }
    }

    public struct Result: Sendable {
        public let shape: Shape
        public let bestSeconds: Double
        public let medianSeconds: Double
        public var bestGFLOPs: Double { shape.flops / bestSeconds / 1e9 }
        public var medianGFLOPs: Double { shape.flops / medianSeconds / 1e9 }
    }

    /// Square products and the products of a 1.3B Kosmos decoder layer at 128 tokens
    /// (d 2048, ffn 8192) and a ViT-L/14 layer (257 tokens, d 1024, mlp 4096).
    public static let defaultShapes: [Shape] = [
        Shape(m: 256, k: 256, n: 256, label: "square"),
        Shape(m: 512, k: 512, n: 512, label: "square"),
        Shape(m: 1024, k: 1024, n: 1024, label: "square"),
        Shape(m: 2048, k: 2048, n: 2048, label: "square"),
        Shape(m: 128, k: 2048, n: 2048, label: "decoder q/k/v/out proj, 128 tokens"),
        Shape(m: 128, k: 2048, n: 8192, label: "decoder fc1, 128 tokens"),
        Shape(m: 128, k: 8192, n: 2048, label: "decoder fc2, 128 tokens"),
        Shape(m: 257, k: 1024, n: 4096, label: "ViT-L/14 mlp fc1"),
        Shape(m: 1, k: 2048, n: 8192, label: "decode step, fc1"),
        Shape(m: 4, k: 2048, n: 8192, label: "4 sequences decoding, fc1"),
        Shape(m: 16, k: 2048, n: 8192, label: "16 sequences decoding, fc1"),
        Shape(m: 1, k: 2048, n: 32002, label: "decode step, output projection"),
    ]

    /// Times `repeats` products of each shape after one warm-up, transposed B as a Linear layer reads it.
    public static func run(shapes: [Shape] = defaultShapes, repeats: Int = 5, seed: UInt64 = 0, dtype: DType = .float32,
                           progress: (Result) -> Void = { _ in }) -> [Result] {
        let generator = RandomGenerator(seed: seed)
        var results: [Result] = []
        for shape in shapes {
            let a = Tensor.randn([shape.m, shape.k], generator: generator)
            let b = Tensor.randn([shape.n, shape.k], generator: generator).converted(to: dtype)
            _ = withoutGrad { Tensor.matmul(a, b, transposeB: true) }
            var times: [Double] = []
            for _ in 0..<Swift.max(1, repeats) {
                let start = DispatchTime.now().uptimeNanoseconds
                let c = withoutGrad { Tensor.matmul(a, b, transposeB: true) }
                let end = DispatchTime.now().uptimeNanoseconds
                withExtendedLifetime(c) {}
                times.append(Double(end - start) / 1e9)
            }
            times.sort()
            let result = Result(shape: shape, bestSeconds: times[0], medianSeconds: times[times.count / 2])
            progress(result)
            results.append(result)
        }
        return results
    }
}

/// Timings of the Swift kernels on transformer-sized inputs (the shapes DESIGN.md quotes PyTorch
/// figures for). Used by `kosmos bench kernels`; printed, never asserted.
public enum KernelBenchmark {
    public struct Result: Sendable {
        public let name: String
        public let bestMilliseconds: Double
        public let medianMilliseconds: Double
    }

    public static func run(repeats: Int = 10, seed: UInt64 = 0, progress: (Result) -> Void = { _ in }) -> [Result] {
        let generator = RandomGenerator(seed: seed)
        let hidden = Tensor.randn([128, 8192], generator: generator)
        let weight = Tensor.randn([8192], generator: generator), bias = Tensor.randn([8192], generator: generator)
        let logits = Tensor.randn([128, 32002], generator: generator)
        let targets = (0..<128).map { _ in generator.nextInt(below: 32002) }
        let q = Tensor.randn([1, 32, 128, 64], generator: generator)
        let k = Tensor.randn([1, 32, 128, 64], generator: generator)
        let v = Tensor.randn([1, 32, 128, 64], generator: generator)
        let trainable = logits.clone()
        trainable.requiresGrad = true
        // The 1.3B decoder's fc1 weight [8192, 2048] in each storage, times 1 to 128 rows.
        let fc1 = Tensor.randn([8192, 2048], std: 0.02, generator: generator)
        let fc1BF16 = withoutGrad { fc1.converted(to: .bfloat16) }
        let q8 = try! QuantizedMatrix(quantizing: fc1, format: .q8, groupSize: 32)
        let q4 = try! QuantizedMatrix(quantizing: fc1, format: .q4, groupSize: 32)
        let rows = [1, 4, 8, 16, 64, 128].map { Tensor.randn([$0, 2048], generator: generator) }

        let cases: [(String, () -> Void)] = [
            ("layer norm 128×8192", { _ = withoutGrad { hidden.layerNorm(weight: weight, bias: bias) } }),
            ("exp 128×32002", { _ = withoutGrad { logits.exp() } }),
            ("sum 128×32002 (last axis)", { _ = withoutGrad { logits.sum(axis: -1) } }),
            ("softmax 128×32002", { _ = withoutGrad { logits.softmax() } }),
            ("log-softmax 128×32002", { _ = withoutGrad { logits.logSoftmax() } }),
            ("gelu 128×8192", { _ = withoutGrad { hidden.gelu() } }),
            ("add 128×8192 + 8192", { _ = withoutGrad { hidden + bias } }),
            ("cross-entropy fwd+bwd 128×32002", {
                trainable.grad = nil
                trainable.crossEntropy(targets: targets).backward()
            }),
            ("causal attention 32 heads × 128 × 64", {
                _ = withoutGrad { Tensor.scaledDotProductAttention(query: q, key: k, value: v, causal: true) }
            }),
        ] + rows.flatMap { x -> [(String, () -> Void)] in
            let m = x.shape[0]
            return [
                ("fc1 bf16 \(m)×2048 · 8192×2048ᵀ", { _ = withoutGrad { Tensor.linear(x, weight: fc1BF16, bias: nil) } }),
                ("fc1 q8 \(m)×2048 · 8192×2048ᵀ", { _ = q8.linear(x, bias: nil) }),
                ("fc1 q4 \(m)×2048 · 8192×2048ᵀ", { _ = q4.linear(x, bias: nil) }),
                // The many-rows path at any row count (the rows-kernel limit is the crossover).
                ("fc1 q8 dequantized, bf16 product \(m)×", { _ = withoutGrad { Tensor.linear(x, weight: q8.dequantized(to: .bfloat16), bias: nil) } }),
                // The integer path at any row count (activations quantized per block).
                ("fc1 q8 integer kernels \(m)×", { _ = q8.integerLinear(x) }),
                ("fc1 q4 integer kernels \(m)×", { _ = q4.integerLinear(x) }),
            ]
        }
        var results: [Result] = []
        for (name, body) in cases {
            body()
            var times: [Double] = []
            for _ in 0..<Swift.max(1, repeats) {
                let start = DispatchTime.now().uptimeNanoseconds
                body()
                times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            }
            times.sort()
            let result = Result(name: name, bestMilliseconds: times[0], medianMilliseconds: times[times.count / 2])
            progress(result)
            results.append(result)
        }
        return results
    }
}
