import Foundation

/// Sums `x` viewed as [outer, n, inner] over its middle axis into [outer, inner].
func sumMiddleAxis(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, outer: Int, n: Int, inner: Int) {
    if inner == 1 {
        Parallel.forRanges(outer, minimumPerChunk: Swift.max(1, Parallel.elementGrain / Swift.max(n, 1))) { range in
            for o in range { out[o] = rowSum(x + o * n, n) }
        }
        return
    }
    // Accumulate whole rows of length `inner`; split over outer, or over column blocks when
    // there is a single outer slice (e.g. a bias gradient summed over all positions).
    let columnBlock = 256
    let columnBlocks = (inner + columnBlock - 1) / columnBlock
    let tasks = outer * columnBlocks
    Parallel.forRanges(tasks, minimumPerChunk: Swift.max(1, Parallel.elementGrain / Swift.max(n * Swift.min(inner, columnBlock), 1))) { range in
        for task in range {
            let o = task / columnBlocks
            let c0 = (task % columnBlocks) * columnBlock
            let width = Swift.min(columnBlock, inner - c0)
            let dst = out + o * inner + c0
            dst.initialize(repeating: 0, count: width)
            for j in 0..<n {
                let src = x + (o * n + j) * inner + c0
                var i = 0
                while i + vecWidth <= width { storeVec(loadVec(dst + i) + loadVec(src + i), dst + i); i += vecWidth }
                while i < width { dst[i] += src[i]; i += 1 }
            }
        }
    }
}

extension Tensor {
    /// Sum of all elements (a rank-0 tensor). Partial sums over fixed 4096-element blocks are added
    /// in order, so the result does not depend on the thread count.
    public func sum() -> Tensor {
        let block = 4096
        let blocks = Swift.max(1, (count + block - 1) / block)
        var partials = [Float](repeating: 0, count: blocks)
        let x = pointer, n = count
        partials.withUnsafeMutableBufferPointer { partial in
            let p = partial.baseAddress!
            Parallel.forRanges(blocks, minimumPerChunk: 8) { range in
                for b in range {
                    let start = b * block
                    p[b] = rowSum(x + start, Swift.min(block, n - start))
                }
            }
        }
        var total: Float = 0
        for v in partials { total += v }
        let out = Tensor(total)
        if Tensor.needsGrad(self) {
            let s = shape
            out.recorded("sum", [self]) { g in [Tensor.full(s, g.item())] }
        }
        return out
    }

    /// Sum over the given axes (negative axes count from the end).
    public func sum(axes: [Int], keepDims: Bool = false) -> Tensor {
        let normalized = Set(axes.map { normalizeAxis($0, rank: rank) }).sorted()
        var result = self.detached()
        // Reduce the highest axis first so lower axis numbers stay valid.
        for axis in normalized.reversed() {
            let outer = shapeCount(Array(result.shape[..<axis]))
            let n = result.shape[axis]
            let inner = shapeCount(Array(result.shape[(axis + 1)...]))
            var newShape = result.shape
            newShape[axis] = 1
            let reduced = Tensor.uninitialized(newShape)
            sumMiddleAxis(result.pointer, reduced.pointer, outer: outer, n: n, inner: inner)
            result = reduced
        }
        var finalShape = shape
        for axis in normalized { finalShape[axis] = 1 }
        if !keepDims { finalShape = shape.enumerated().filter { !normalized.contains($0.offset) }.map(\.element) }
        let out = Tensor(shape: finalShape, storage: result.storage)
        if Tensor.needsGrad(self) {
            var keptShape = shape
            for axis in normalized { keptShape[axis] = 1 }
            let s = shape
            out.recorded("sum_axes", [self]) { g in
                [g.reshaped(keptShape).expanded(to: s)]
            }
        }
        return out
    }

    public func sum(axis: Int, keepDims: Bool = false) -> Tensor {
        sum(axes: [axis], keepDims: keepDims)
    }

    /// Mean of all elements.
    public func mean() -> Tensor {
        sum().scaled(by: 1 / Float(Swift.max(count, 1)))
    }

    /// Mean over the given axes.
    public func mean(axes: [Int], keepDims: Bool = false) -> Tensor {
        let n = axes.map { shape[normalizeAxis($0, rank: rank)] }.reduce(1, *)
        return sum(axes: axes, keepDims: keepDims).scaled(by: 1 / Float(Swift.max(n, 1)))
    }

    public func mean(axis: Int, keepDims: Bool = false) -> Tensor {
        mean(axes: [axis], keepDims: keepDims)
    }

    /// Maximum along `axis` and the index of the first maximum. The gradient flows to that index.
    public func max(axis: Int, keepDims: Bool = false) -> (values: Tensor, indices: [Int]) {
        let axis = normalizeAxis(axis, rank: rank)
        let outer = shapeCount(Array(shape[..<axis]))
        let n = shape[axis]
        let inner = shapeCount(Array(shape[(axis + 1)...]))
        precondition(n > 0, "max over an empty axis")
        var outShape = shape
        outShape[axis] = 1
        let values = Tensor.uninitialized(outShape)
        var indices = [Int](repeating: 0, count: outer * inner)
        let x = pointer, v = values.pointer
        for o in 0..<outer {
            for i in 0..<inner {
                var best = x[o * n * inner + i]
                var bestIndex = 0
                for j in 1..<n {
                    let value = x[(o * n + j) * inner + i]
                    // NaN wins, as in torch.max.
                    if value > best || (value.isNaN && !best.isNaN) { best = value; bestIndex = j }
                }
                v[o * inner + i] = best
                indices[o * inner + i] = bestIndex
            }
        }
        if !keepDims { outShape.remove(at: axis) }
        let out = Tensor(shape: outShape, storage: values.storage)
        if Tensor.needsGrad(self) {
            let s = shape
            let saved = indices
            out.recorded("max", [self]) { g in
                let dx = Tensor.zeros(s)
                for o in 0..<outer {
                    for i in 0..<inner {
                        dx.pointer[(o * n + saved[o * inner + i]) * inner + i] = g.pointer[o * inner + i]
                    }
                }
                return [dx]
            }
        }
        return (out, indices)
    }

    /// Maximum of all elements.
    public func max() -> Tensor {
        reshaped([count]).max(axis: 0).values
    }

    /// Index of the largest value along the last axis for each row (ties: first).
    public func argmaxLastAxis() -> [Int] {
        let n = shape.last ?? 1
        precondition(n > 0, "argmax over an empty axis")
        let rows = count / n
        var result = [Int](repeating: 0, count: rows)
        for r in 0..<rows {
            let p = pointer + r * n
            var best = p[0], index = 0
            for j in 1..<n where p[j] > best { best = p[j]; index = j }
            result[r] = index
        }
        return result
    }
}
