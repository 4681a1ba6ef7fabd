import Foundation
import KosmosTensor

/// y = x·Wᵀ + b with W of shape [out, in], as torch.nn.Linear. Initialised as PyTorch initialises
/// it (kaiming_uniform with a = √5, which is U(−1/√in, 1/√in), and the same bound for the bias).
public final class Linear: Module {
    public let weight: Tensor
    public let bias: Tensor?
    public let inFeatures: Int
    public let outFeatures: Int

    public init(inFeatures: Int, outFeatures: Int, bias: Bool = true, generator: RandomGenerator) {
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        let bound = inFeatures > 0 ? 1 / Float(inFeatures).squareRoot() : 0
        weight = Tensor.uniform([outFeatures, inFeatures], low: -bound, high: bound, generator: generator)
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
        super.init()
        registerParameter("weight", weight)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        // Transpose flag instead of a copy of W.
        let y = Tensor.matmul(x, weight, transposeB: true)
        if let bias { return y + bias }
        return y
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

    public init(count: Int, dimension: Int, paddingIndex: Int? = nil, generator: RandomGenerator) {
        self.count = count
        self.dimension = dimension
        self.paddingIndex = paddingIndex
        weight = Tensor.randn([count, dimension], generator: generator)
        if let paddingIndex, paddingIndex >= 0, paddingIndex < count {
            weight.withUnsafeMutableBufferPointer { buffer in
                for j in 0..<dimension { buffer[paddingIndex * dimension + j] = 0 }
            }
        }
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
