import Foundation
import KosmosTensor

/// y = x·Wᵀ + b with W of shape [out, in], as torch.nn.Linear. Initialised as PyTorch initialises
/// it (kaiming_uniform with a = √5, which is U(−1/√in, 1/√in), and the same bound for the bias).
public final class Linear: Module {
    public let weight: Tensor
    public let bias: Tensor?
    public let inFeatures: Int
    public let outFeatures: Int
    /// Whether the weight is another module's tensor (a head tied to the token embeddings).
    public let isTied: Bool
    /// The weight in a quantized format, when the layer uses one (`useQuantized`); then `weight`
    /// holds no values and the layer does not train.
    public private(set) var quantized: QuantizedMatrix?

    public init(inFeatures: Int, outFeatures: Int, bias: Bool = true, generator: RandomGenerator) {
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        isTied = false
        let bound = inFeatures > 0 ? 1 / Float(inFeatures).squareRoot() : 0
        weight = Tensor.uniform([outFeatures, inFeatures], low: -bound, high: bound, generator: generator, dtype: WeightPrecision.current)
        self.bias = bias ? Tensor.uniform([outFeatures], low: -bound, high: bound, generator: generator) : nil
        super.init()
        registerParameter("weight", weight)
        if let b = self.bias { registerParameter("bias", b) }
    }

    /// A bias-free Linear whose weight is `weight` itself (tied to an embedding table, as
    /// share_decoder_input_output_embed and tied LM heads do). The tensor is registered under this
    /// module's name too, so the state dict lists both keys; it is updated once per step.
    public init(sharing weight: Tensor) {
        precondition(weight.rank == 2, "a shared Linear weight must be [out, in], got \(weight.shape)")
        self.weight = weight
        bias = nil
        outFeatures = weight.shape[0]
        inFeatures = weight.shape[1]
        isTied = true
        super.init()
        registerParameter("weight", weight)
    }

    /// Computes with `matrix` ([outFeatures, inFeatures]) from now on; the float weight's memory is
    /// given back (it reads as zeros) and it no longer takes gradients.
    public func useQuantized(_ matrix: QuantizedMatrix) {
        precondition(!isTied, "a Linear tied to another module's weight is not quantized")
        precondition(matrix.rows == outFeatures && matrix.columns == inFeatures,
                     "quantized weight [\(matrix.rows), \(matrix.columns)] for a Linear [\(outFeatures), \(inFeatures)]")
        quantized = matrix
        weight.requiresGrad = false
        weight.releaseStorage()
    }

    /// Several Linears applied to the same input (attention's projections): when all are
    /// quantized, their products share one quantization of the input and one job for the threads
    /// (`QuantizedMatrix.linears`); the same numbers as calling each, which is what happens otherwise.
    public static func apply(_ linears: [Linear], to x: Tensor) -> [Tensor] {
        let matrices = linears.compactMap(\.quantized)
        guard matrices.count == linears.count, linears.count > 1 else { return linears.map { $0(x) } }
        return QuantizedMatrix.linears(matrices, x, biases: linears.map(\.bias))
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        if let quantized { return quantized.linear(x, bias: bias) }
        // Transpose flag instead of a copy of W. Mixed precision rounds a float32 weight for the
        // product (differentiably: its float32 gradient reaches the weight).
        let w = weight.dtype == .float32 && ComputePrecision.current == .bfloat16 ? weight.converted(to: .bfloat16) : weight
        return Tensor.linear(x, weight: w, bias: bias)
    }
}

/// A lookup table [count, dim], as torch.nn.Embedding (initialised N(0, 1); the padding row, if
/// any, zero).
public final class Embedding: Module {
    public let weight: Tensor
    public let count: Int
    public let dimension: Int
    /// The row that stays zero and receives no gradient (torch's padding_idx).
    public let paddingIndex: Int?

    /// Whether the table takes the weight dtype (`withWeightDType`, `convertWeights`): true for
    /// token tables, false for position tables, which are added to activations as they are.
    public let followsWeightDType: Bool

    public init(count: Int, dimension: Int, paddingIndex: Int? = nil, followsWeightDType: Bool = true, generator: RandomGenerator) {
        self.count = count
        self.dimension = dimension
        self.paddingIndex = paddingIndex
        self.followsWeightDType = followsWeightDType
        weight = Tensor.randn([count, dimension], generator: generator, dtype: followsWeightDType ? WeightPrecision.current : .float32)
        if let paddingIndex { weight.zeroRow(paddingIndex) }
        super.init()
        registerParameter("weight", weight)
    }

    /// Rows for `ids`, shaped `shape + [dimension]` (default [ids.count, dimension]). Ids come from
    /// data, so an id outside the table is an error, not a crash.
    public func callAsFunction(_ ids: [Int], shape: [Int]? = nil) throws -> Tensor {
        if let bad = ids.first(where: { $0 < 0 || $0 >= count }) {
            throw EmbeddingError.idOutOfRange(id: bad, tableSize: count)
        }
        return weight.gatherRows(ids, indexShape: shape, paddingIndex: paddingIndex)
    }
}

public enum EmbeddingError: Error, CustomStringConvertible, Equatable {
    case idOutOfRange(id: Int, tableSize: Int)

    public var description: String {
        switch self {
        case let .idOutOfRange(id, size):
            return "token id \(id) is outside the embedding table of \(size) rows (tokenizer and model disagree?)"
        }
    }
}

/// The dtype new Linear and Embedding weights are stored in: float32, unless a model is built
/// inside `withWeightDType` (then each weight is converted as soon as it is made, so a bfloat16
/// model never holds all its weights in float32 at once).
public enum WeightPrecision {
    nonisolated(unsafe) public internal(set) static var current: DType = .float32
}

/// Builds modules whose Linear and Embedding weights are stored as `dtype`.
/// In 16 bits the float32 temporaries of the weights are given back as each weight is converted
/// (not kept for reuse), so building or loading peaks at the 16-bit weights plus one temporary.
public func withWeightDType<R>(_ dtype: DType, _ body: () throws -> R) rethrows -> R {
    let saved = WeightPrecision.current
    WeightPrecision.current = dtype
    defer { WeightPrecision.current = saved }
    if dtype == .float32 { return try body() }
    return try TensorMemory.withoutBufferReuse(body)
}

/// The dtype Linear layers compute their products in while training: float32, or bfloat16 inside
/// `withComputeDType(.bfloat16)` (mixed precision: the float32 weight is rounded to bfloat16 for
/// the product, the product's inputs and gradients are bfloat16, its outputs, the gradient that
/// reaches the weight and everything else stay float32). Per thread, like grad mode.
public enum ComputePrecision {
    /// Set inside `withComputeDType(.bfloat16)`.
    static let bfloat16 = ThreadFlag()

    /// float32 unless a `withComputeDType(.bfloat16)` scope is active on this thread.
    public static var current: DType { bfloat16.isSet ? .bfloat16 : .float32 }
}

/// Runs `body` with Linear products computed in `dtype` (float32 or bfloat16; float16 compute is
/// not supported: its range needs loss scaling, which bfloat16 does not).
public func withComputeDType<R>(_ dtype: DType, _ body: () throws -> R) rethrows -> R {
    precondition(dtype != .float16, "float16 compute is not supported (use bfloat16)")
    return try ComputePrecision.bfloat16.with(dtype == .bfloat16, body)
}

extension Module {
    /// Stores the weight of every Linear and token Embedding below (and including) this module as
    /// `dtype`, in place (a tied weight once). Biases, norms, position tables and other
    /// parameters stay float32: they are small, and the ops that read them compute in float32.
    /// For inference: a converted weight takes no gradient. Quantized Linears keep their format.
    public func convertWeights(to dtype: DType) {
        if let linear = self as? Linear, linear.quantized == nil { linear.weight.convert(to: dtype) }
        if let embedding = self as? Embedding, embedding.followsWeightDType { embedding.weight.convert(to: dtype) }
        for child in children { child.module.convertWeights(to: dtype) }
    }

    /// The dtypes of the parameters below this module and how many bytes each holds (tied once).
    public var parameterBytes: [DType: Int] {
        var result: [DType: Int] = [:]
        for (_, t) in namedParameters() { result[t.dtype, default: 0] += t.count * t.dtype.byteCount }
        return result
    }
}

/// Layer normalisation over the last axis, as torch.nn.LayerNorm (weight 1, bias 0).
public final class LayerNorm: Module {
    public let weight: Tensor?
    public let bias: Tensor?
    public let eps: Float

    public init(_ dimension: Int, eps: Float = 1e-5, elementwiseAffine: Bool = true, bias: Bool = true) {
        self.eps = eps
        weight = elementwiseAffine ? Tensor.ones([dimension]) : nil
        self.bias = elementwiseAffine && bias ? Tensor.zeros([dimension]) : nil
        super.init()
        if let weight { registerParameter("weight", weight) }
        if let b = self.bias { registerParameter("bias", b) }
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        x.layerNorm(weight: weight, bias: bias, eps: eps)
    }
}

/// Inverted dropout while training; the identity in evaluation mode.
public final class Dropout: Module {
    public let probability: Float
    public let generator: RandomGenerator

    public init(probability: Float, generator: RandomGenerator) {
        self.probability = probability
        self.generator = generator
        super.init()
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        guard isTraining, probability > 0 else { return x }
        return x.dropout(probability: probability, generator: generator)
    }
}

/// torch.nn.Conv1d (weight [out, in, kernel], bias [out]) over channels-last input: [batch,
/// length, in] → [batch, outLength, out], computed as `conv1dColumns` and one matrix product.
/// Initialised as PyTorch does: weight and bias U(−1/√(in·kernel), 1/√(in·kernel)).
public final class Conv1d: Module {
    public let weight: Tensor
    public let bias: Tensor?
    public let inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int

    public init(inChannels: Int, outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0, bias: Bool = true,
                generator: RandomGenerator) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
        let fanIn = inChannels * kernel
        let bound = fanIn > 0 ? 1 / Float(fanIn).squareRoot() : 0
        weight = Tensor.uniform([outChannels, inChannels, kernel], low: -bound, high: bound, generator: generator)
        self.bias = bias ? Tensor.uniform([outChannels], low: -bound, high: bound, generator: generator) : nil
        super.init()
        registerParameter("weight", weight)
        if let b = self.bias { registerParameter("bias", b) }
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(x.rank == 3 && x.shape[2] == inChannels, "Conv1d(\(inChannels) → \(outChannels)) got \(x.shape)")
        let columns = x.conv1dColumns(kernel: kernel, stride: stride, padding: padding)
        return Tensor.linear(columns, weight: weight.reshaped([outChannels, inChannels * kernel]), bias: bias)
    }
}
