import Foundation

/// The buffer behind one or more tensors: float32, contiguous, 64-byte aligned so SIMD loads never
/// straddle cache lines at the start of a row.
public final class TensorStorage {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int

    init(count: Int) {
        self.count = count
        var raw: UnsafeMutableRawPointer?
        // Allocate at least one element so empty tensors still own a valid pointer.
        let bytes = Swift.max(count, 1) * MemoryLayout<Float>.stride
        if posix_memalign(&raw, 64, bytes) != 0 || raw == nil {
            // Out of memory is not recoverable for a tensor engine; say how much was asked for.
            fatalError("KosmosTensor: could not allocate \(bytes) bytes")
        }
        pointer = raw!.bindMemory(to: Float.self, capacity: Swift.max(count, 1))
    }

    deinit { free(pointer) }
}

/// A float32 tensor: a shape, a contiguous row-major buffer and, while autograd records, the
/// function that produced it. Like `torch.Tensor` it is a reference: ops return new tensors and
/// only the explicit in-place APIs (`copy(from:)`, `fill(_:)`, `withUnsafeMutableBufferPointer`)
/// change a buffer.
public final class Tensor: CustomStringConvertible {
    public let shape: [Int]
    public let count: Int
    public let storage: TensorStorage

    /// Set on leaves (parameters) to make autograd accumulate their gradient in `grad`.
    /// Results of ops have it set when some input required grad and grad mode was on.
    public var requiresGrad: Bool
    /// Accumulated gradient of a leaf after `backward()`.
    public var grad: Tensor?
    /// The recorded operation that produced this tensor (nil for leaves and in no-grad mode).
    var gradFn: GradFunction?

    init(shape: [Int], storage: TensorStorage) {
        self.shape = shape
        self.count = shapeCount(shape)
        self.storage = storage
        self.requiresGrad = false
        assert(storage.count >= count)
    }

    /// A tensor with uninitialised contents, for kernels that write every element.
    static func uninitialized(_ shape: [Int]) -> Tensor {
        Tensor(shape: shape, storage: TensorStorage(count: shapeCount(shape)))
    }

    /// A tensor from row-major values. `scalars.count` must equal the product of `shape`.
    public convenience init(shape: [Int], scalars: [Float], requiresGrad: Bool = false) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in shape \(shape)")
        precondition(scalars.count == shapeCount(shape),
                     "shape \(shape) needs \(shapeCount(shape)) values, got \(scalars.count)")
        self.init(shape: shape, storage: TensorStorage(count: scalars.count))
        scalars.withUnsafeBufferPointer { source in
            if let base = source.baseAddress { pointer.update(from: base, count: count) }
        }
        self.requiresGrad = requiresGrad
    }

    /// A rank-0 tensor.
    public convenience init(_ value: Float) {
        self.init(shape: [], scalars: [value])
    }

    public static func zeros(_ shape: [Int], requiresGrad: Bool = false) -> Tensor {
        full(shape, 0, requiresGrad: requiresGrad)
    }

    public static func ones(_ shape: [Int], requiresGrad: Bool = false) -> Tensor {
        full(shape, 1, requiresGrad: requiresGrad)
    }

    public static func full(_ shape: [Int], _ value: Float, requiresGrad: Bool = false) -> Tensor {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in shape \(shape)")
        let t = uninitialized(shape)
        t.pointer.initialize(repeating: value, count: t.count)
        t.requiresGrad = requiresGrad
        return t
    }

    /// 0, 1, ..., n-1 as floats.
    public static func arange(_ n: Int) -> Tensor {
        let t = uninitialized([n])
        for i in 0..<n { t.pointer[i] = Float(i) }
        return t
    }

    // MARK: Access

    @inline(__always) var pointer: UnsafeMutablePointer<Float> { storage.pointer }

    public var rank: Int { shape.count }

    /// The values in row-major order.
    public var scalars: [Float] {
        Array(UnsafeBufferPointer(start: pointer, count: count))
    }

    /// The single value of a one-element tensor.
    public func item() -> Float {
        precondition(count == 1, "item() needs a one-element tensor, shape is \(shape)")
        return pointer[0]
    }

    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try withExtendedLifetime(storage) {
            try body(UnsafeBufferPointer(start: storage.pointer, count: count))
        }
    }

    /// Explicit in-place access, for optimizers, caches and loaders. Never use it on a tensor that
    /// autograd has saved for a backward pass that is still to run.
    public func withUnsafeMutableBufferPointer<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        try withExtendedLifetime(storage) {
            try body(UnsafeMutableBufferPointer(start: storage.pointer, count: count))
        }
    }

    /// In place: overwrite the values with those of `source` (same element count).
    public func copy(from source: Tensor) {
        precondition(source.count == count, "copy(from:) of \(source.shape) into \(shape)")
        pointer.update(from: source.pointer, count: count)
    }

    /// In place: set every element to `value`.
    public func fill(_ value: Float) {
        pointer.update(repeating: value, count: count)
    }

    /// A tensor sharing this one's values, cut off from autograd.
    public func detached() -> Tensor {
        Tensor(shape: shape, storage: storage)
    }

    /// A deep copy of the values, cut off from autograd.
    public func clone() -> Tensor {
        let t = Tensor.uninitialized(shape)
        t.pointer.update(from: pointer, count: count)
        return t
    }

    public var isLeaf: Bool { gradFn == nil }

    public var description: String {
        let shown = scalars.prefix(8).map { String(format: "%.6g", $0) }.joined(separator: ", ")
        let more = count > 8 ? ", ..." : ""
        return "Tensor(shape: \(shape), [\(shown)\(more)]\(requiresGrad ? ", requiresGrad" : ""))"
    }
}

/// Product of the dimensions (1 for a scalar).
@inline(__always) func shapeCount(_ shape: [Int]) -> Int {
    var n = 1
    for d in shape { n *= d }
    return n
}

/// Row-major strides of a contiguous tensor.
func contiguousStrides(_ shape: [Int]) -> [Int] {
    var strides = [Int](repeating: 1, count: shape.count)
    var s = 1
    for i in stride(from: shape.count - 1, through: 0, by: -1) {
        strides[i] = s
        s *= shape[i]
    }
    return strides
}

/// NumPy broadcasting of two shapes, or nil when they are incompatible.
public func broadcastShapes(_ a: [Int], _ b: [Int]) -> [Int]? {
    let rank = Swift.max(a.count, b.count)
    var out = [Int](repeating: 1, count: rank)
    for i in 0..<rank {
        let da = i < rank - a.count ? 1 : a[i - (rank - a.count)]
        let db = i < rank - b.count ? 1 : b[i - (rank - b.count)]
        if da == db || db == 1 { out[i] = da } else if da == 1 { out[i] = db } else { return nil }
    }
    return out
}

/// Normalises a possibly negative axis against `rank`.
@inline(__always) func normalizeAxis(_ axis: Int, rank: Int) -> Int {
    let a = axis < 0 ? axis + rank : axis
    precondition(a >= 0 && a < Swift.max(rank, 1), "axis \(axis) out of range for rank \(rank)")
    return a
}
