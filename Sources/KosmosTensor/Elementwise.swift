import Foundation

// MARK: Kernel descriptions
//
// Each element-wise operation is a type with a vector and a scalar form; the generic loops below
// are specialised per type, so the operation inlines into a tight SIMD loop with no call per element.

protocol UnaryKernel {
    static func vector(_ x: Vec) -> Vec
    static func scalar(_ x: Float) -> Float
}

protocol BinaryKernel {
    static func vector(_ a: Vec, _ b: Vec) -> Vec
    static func scalar(_ a: Float, _ b: Float) -> Float
}

enum AddKernel: BinaryKernel {
    @inline(__always) static func vector(_ a: Vec, _ b: Vec) -> Vec { a + b }
    @inline(__always) static func scalar(_ a: Float, _ b: Float) -> Float { a + b }
}
enum SubKernel: BinaryKernel {
    @inline(__always) static func vector(_ a: Vec, _ b: Vec) -> Vec { a - b }
    @inline(__always) static func scalar(_ a: Float, _ b: Float) -> Float { a - b }
}
enum MulKernel: BinaryKernel {
    @inline(__always) static func vector(_ a: Vec, _ b: Vec) -> Vec { a * b }
    @inline(__always) static func scalar(_ a: Float, _ b: Float) -> Float { a * b }
}
enum DivKernel: BinaryKernel {
    @inline(__always) static func vector(_ a: Vec, _ b: Vec) -> Vec { a / b }
    @inline(__always) static func scalar(_ a: Float, _ b: Float) -> Float { a / b }
}

/// out[i] = K(x[i]) over n contiguous elements, split across threads.
func applyUnary<K: UnaryKernel>(_: K.Type, _ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ n: Int) {
    Parallel.forRanges(n, minimumPerChunk: Parallel.elementGrain) { range in
        var i = range.lowerBound
        let end = range.upperBound
        while i + vecWidth <= end {
            storeVec(K.vector(loadVec(x + i)), out + i)
            i += vecWidth
        }
        while i < end {
            out[i] = K.scalar(x[i])
            i += 1
        }
    }
}

/// out[i] = K(a[i], b[i]) over n contiguous elements.
func applyBinary<K: BinaryKernel>(_: K.Type, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                                  _ out: UnsafeMutablePointer<Float>, _ n: Int) {
    Parallel.forRanges(n, minimumPerChunk: Parallel.elementGrain) { range in
        var i = range.lowerBound
        let end = range.upperBound
        while i + vecWidth <= end {
            storeVec(K.vector(loadVec(a + i), loadVec(b + i)), out + i)
            i += vecWidth
        }
        while i < end {
            out[i] = K.scalar(a[i], b[i])
            i += 1
        }
    }
}

/// The broadcast loop: the output's dimensions are coalesced where both inputs are laid out
/// compatibly, then the innermost dimension runs as a SIMD loop (vector-vector, or vector-scalar
/// where one input is broadcast along it) and the outer dimensions are walked with a counter.
func broadcastBinary<K: BinaryKernel>(_: K.Type, _ a: Tensor, _ b: Tensor, outShape: [Int]) -> Tensor {
    let out = Tensor.uninitialized(outShape)
    if out.count == 0 { return out }
    let pa = a.pointer, pb = b.pointer, po = out.pointer
    if a.shape == b.shape {
        applyBinary(K.self, pa, pb, po, out.count)
        return out
    }
    // Strides of each input in output index space, 0 along broadcast dimensions.
    let rank = outShape.count
    func broadcastStrides(_ shape: [Int]) -> [Int] {
        let own = contiguousStrides(shape)
        var strides = [Int](repeating: 0, count: rank)
        let offset = rank - shape.count
        for i in 0..<shape.count where shape[i] != 1 { strides[i + offset] = own[i] }
        return strides
    }
    var dims: [Int] = []
    var sa: [Int] = []
    var sb: [Int] = []
    let fullA = broadcastStrides(a.shape), fullB = broadcastStrides(b.shape)
    for i in 0..<rank where outShape[i] != 1 {
        if let last = dims.last, sa.last! == fullA[i] * outShape[i], sb.last! == fullB[i] * outShape[i] {
            // Dimension i continues the previous one in both inputs: merge them.
            dims[dims.count - 1] = last * outShape[i]
            sa[sa.count - 1] = fullA[i]
            sb[sb.count - 1] = fullB[i]
        } else {
            dims.append(outShape[i])
            sa.append(fullA[i])
            sb.append(fullB[i])
        }
    }
    if dims.isEmpty { dims = [1]; sa = [0]; sb = [0] }
    let inner = dims.last!
    let innerA = sa.last!, innerB = sb.last!
    let outerDims = Array(dims.dropLast()), outerA = Array(sa.dropLast()), outerB = Array(sb.dropLast())
    let rows = out.count / inner
    Parallel.forRanges(rows, minimumPerChunk: Swift.max(1, Parallel.elementGrain / inner)) { range in
        // Offsets of the first row of this range.
        var index = [Int](repeating: 0, count: outerDims.count)
        var remainder = range.lowerBound
        for d in stride(from: outerDims.count - 1, through: 0, by: -1) {
            index[d] = remainder % outerDims[d]
            remainder /= outerDims[d]
        }
        var offA = 0, offB = 0
        for d in 0..<outerDims.count {
            offA += index[d] * outerA[d]
            offB += index[d] * outerB[d]
        }
        for row in range {
            let rowA = pa + offA, rowB = pb + offB, rowOut = po + row * inner
            var i = 0
            if innerA == 1 && innerB == 1 {
                while i + vecWidth <= inner {
                    storeVec(K.vector(loadVec(rowA + i), loadVec(rowB + i)), rowOut + i)
                    i += vecWidth
                }
                while i < inner { rowOut[i] = K.scalar(rowA[i], rowB[i]); i += 1 }
            } else if innerA == 1 {
                let bv = rowB[0], bVec = Vec(repeating: bv)
                while i + vecWidth <= inner {
                    storeVec(K.vector(loadVec(rowA + i), bVec), rowOut + i)
                    i += vecWidth
                }
                while i < inner { rowOut[i] = K.scalar(rowA[i], bv); i += 1 }
            } else if innerB == 1 {
                let av = rowA[0], aVec = Vec(repeating: av)
                while i + vecWidth <= inner {
                    storeVec(K.vector(aVec, loadVec(rowB + i)), rowOut + i)
                    i += vecWidth
                }
                while i < inner { rowOut[i] = K.scalar(av, rowB[i]); i += 1 }
            } else {
                while i < inner { rowOut[i] = K.scalar(rowA[i * innerA], rowB[i * innerB]); i += 1 }
            }
            // Advance the outer counter by one row.
            var d = outerDims.count - 1
            while d >= 0 {
                index[d] += 1
                offA += outerA[d]
                offB += outerB[d]
                if index[d] < outerDims[d] { break }
                offA -= outerA[d] * outerDims[d]
                offB -= outerB[d] * outerDims[d]
                index[d] = 0
                d -= 1
            }
        }
    }
    return out
}

func unaryResult<K: UnaryKernel>(_: K.Type, _ x: Tensor) -> Tensor {
    let out = Tensor.uninitialized(x.shape)
    applyUnary(K.self, x.pointer, out.pointer, x.count)
    return out
}

func binaryResult<K: BinaryKernel>(_: K.Type, _ a: Tensor, _ b: Tensor) -> Tensor {
    return broadcastBinary(K.self, a, b, outShape: binaryShape(a, b))
}

func binaryShape(_ a: Tensor, _ b: Tensor) -> [Int] {
    guard let shape = broadcastShapes(a.shape, b.shape) else {
        preconditionFailure("shapes \(a.shape) and \(b.shape) cannot be broadcast together")
    }
    return shape
}

// MARK: Arithmetic with autograd

extension Tensor {
    /// Sums a broadcast gradient back down to `target` (the inverse of broadcasting).
    func sumToShape(_ target: [Int]) -> Tensor {
        if shape == target { return self }
        let extra = rank - target.count
        var axes: [Int] = Array(0..<extra)
        for i in 0..<target.count where target[i] == 1 && shape[i + extra] != 1 { axes.append(i + extra) }
        let reduced = axes.isEmpty ? self : sum(axes: axes, keepDims: true)
        return reduced.reshaped(target)
    }

    public static func + (a: Tensor, b: Tensor) -> Tensor {
        let out = binaryResult(AddKernel.self, a, b)
        if needsGrad(a, b) {
            let sa = a.shape, sb = b.shape
            out.recorded("add", [a, b]) { g in [g.sumToShape(sa), g.sumToShape(sb)] }
        }
        return out
    }

    public static func - (a: Tensor, b: Tensor) -> Tensor {
        let out = binaryResult(SubKernel.self, a, b)
        if needsGrad(a, b) {
            let sa = a.shape, sb = b.shape
            out.recorded("sub", [a, b]) { g in [g.sumToShape(sa), (-g).sumToShape(sb)] }
        }
        return out
    }

    public static func * (a: Tensor, b: Tensor) -> Tensor {
        let out = binaryResult(MulKernel.self, a, b)
        if needsGrad(a, b) {
            let sa = a.shape, sb = b.shape
            out.recorded("mul", [a, b]) { g in
                [a.requiresGrad ? (g * b).sumToShape(sa) : nil,
                 b.requiresGrad ? (g * a).sumToShape(sb) : nil]
            }
        }
        return out
    }

    public static func / (a: Tensor, b: Tensor) -> Tensor {
        let out = binaryResult(DivKernel.self, a, b)
        if needsGrad(a, b) {
            let sa = a.shape, sb = b.shape
            out.recorded("div", [a, b]) { g in
                [a.requiresGrad ? (g / b).sumToShape(sa) : nil,
                 b.requiresGrad ? (-(g * a) / (b * b)).sumToShape(sb) : nil]
            }
        }
        return out
    }

    public static prefix func - (x: Tensor) -> Tensor {
        x.scaled(by: -1)
    }

    public static func + (a: Tensor, b: Float) -> Tensor { a.shifted(by: b) }
    public static func - (a: Tensor, b: Float) -> Tensor { a.shifted(by: -b) }
    public static func * (a: Tensor, b: Float) -> Tensor { a.scaled(by: b) }
    public static func / (a: Tensor, b: Float) -> Tensor { a.scaled(by: 1 / b) }
    public static func * (a: Float, b: Tensor) -> Tensor { b.scaled(by: a) }
    public static func + (a: Float, b: Tensor) -> Tensor { b.shifted(by: a) }

    /// x · factor.
    public func scaled(by factor: Float) -> Tensor {
        let out = Tensor.uninitialized(shape)
        let f = factor, fv = Vec(repeating: factor)
        let x = pointer, o = out.pointer
        Parallel.forRanges(count, minimumPerChunk: Parallel.elementGrain) { range in
            var i = range.lowerBound
            while i + vecWidth <= range.upperBound { storeVec(loadVec(x + i) * fv, o + i); i += vecWidth }
            while i < range.upperBound { o[i] = x[i] * f; i += 1 }
        }
        if Tensor.needsGrad(self) {
            out.recorded("scale", [self]) { g in [g.scaled(by: f)] }
        }
        return out
    }

    /// x + value.
    public func shifted(by value: Float) -> Tensor {
        let out = Tensor.uninitialized(shape)
        let s = value, sv = Vec(repeating: value)
        let x = pointer, o = out.pointer
        Parallel.forRanges(count, minimumPerChunk: Parallel.elementGrain) { range in
            var i = range.lowerBound
            while i + vecWidth <= range.upperBound { storeVec(loadVec(x + i) + sv, o + i); i += vecWidth }
            while i < range.upperBound { o[i] = x[i] + s; i += 1 }
        }
        if Tensor.needsGrad(self) {
            out.recorded("shift", [self]) { g in [g] }
        }
        return out
    }

    /// In place: self += other (same shape, or other broadcastable to self). Used for gradient
    /// accumulation and optimizers; never recorded.
    public func addInPlace(_ other: Tensor, scale: Float = 1) {
        if other.shape == shape {
            let o = other.pointer, p = pointer, sv = Vec(repeating: scale), s = scale
            Parallel.forRanges(count, minimumPerChunk: Parallel.elementGrain) { range in
                var i = range.lowerBound
                while i + vecWidth <= range.upperBound { storeVec(loadVec(p + i) + loadVec(o + i) * sv, p + i); i += vecWidth }
                while i < range.upperBound { p[i] += o[i] * s; i += 1 }
            }
        } else {
            let sum = withoutGrad { self + other * scale }
            precondition(sum.shape == shape, "addInPlace: \(other.shape) does not broadcast to \(shape)")
            copy(from: sum)
        }
    }
}
