import CKosmosKernels
import Foundation

extension Tensor {
    /// The same values under a new shape (no copy). One dimension may be -1 (inferred).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var target = newShape
        if let inferred = target.firstIndex(of: -1) {
            let known = target.enumerated().filter { $0.offset != inferred }.map(\.element).reduce(1, *)
            precondition(known > 0 && count % known == 0, "cannot reshape \(shape) to \(newShape)")
            target[inferred] = count / known
        }
        precondition(target.allSatisfy { $0 >= 0 } && shapeCount(target) == count,
                     "cannot reshape \(shape) (\(count) elements) to \(newShape)")
        let out = Tensor(shape: target, storage: storage)
        if Tensor.needsGrad(self) {
            let s = shape
            out.recorded("reshape", [self]) { g in [g.reshaped(s)] }
        }
        return out
    }

    /// Inserts a dimension of size 1 at `axis`.
    public func unsqueezed(_ axis: Int) -> Tensor {
        let a = axis < 0 ? axis + rank + 1 : axis
        var s = shape
        s.insert(1, at: a)
        return reshaped(s)
    }

    /// Removes a dimension of size 1 at `axis`.
    public func squeezed(_ axis: Int) -> Tensor {
        let a = normalizeAxis(axis, rank: rank)
        precondition(shape[a] == 1, "squeeze of axis \(axis) with size \(shape[a])")
        var s = shape
        s.remove(at: a)
        return reshaped(s)
    }

    /// Reorders the axes (a copy): result.shape[i] = shape[order[i]].
    public func permuted(_ order: [Int]) -> Tensor {
        precondition(order.count == rank && Set(order) == Set(0..<rank), "bad permutation \(order) for rank \(rank)")
        if order == Array(0..<rank) { return reshaped(shape) }
        let outShape = order.map { shape[$0] }
        let out = Tensor.uninitialized(outShape)
        let inStrides = contiguousStrides(shape)
        let strides = order.map { inStrides[$0] }   // input stride for each output axis
        let inner = outShape.last ?? 1
        let innerStride = strides.last ?? 1
        let outerShape = Array(outShape.dropLast()), outerStrides = Array(strides.dropLast())
        let rows = inner == 0 ? 0 : out.count / inner
        let src = pointer, dst = out.pointer
        Parallel.forRanges(rows, minimumPerChunk: Swift.max(1, Parallel.elementGrain / Swift.max(inner, 1))) { range in
            for row in range {
                var rem = row, offset = 0
                for d in stride(from: outerShape.count - 1, through: 0, by: -1) {
                    offset += (rem % outerShape[d]) * outerStrides[d]
                    rem /= outerShape[d]
                }
                let o = dst + row * inner
                if innerStride == 1 {
                    o.update(from: src + offset, count: inner)
                } else {
                    for i in 0..<inner { o[i] = src[offset + i * innerStride] }
                }
            }
        }
        if Tensor.needsGrad(self) {
            var inverse = [Int](repeating: 0, count: order.count)
            for (i, o) in order.enumerated() { inverse[o] = i }
            out.recorded("permute", [self]) { g in [g.permuted(inverse)] }
        }
        return out
    }

    /// Swaps two axes (a copy).
    public func transposed(_ a: Int, _ b: Int) -> Tensor {
        var order = Array(0..<rank)
        order.swapAt(normalizeAxis(a, rank: rank), normalizeAxis(b, rank: rank))
        return permuted(order)
    }

    /// Copies `length` entries of `axis` starting at `start`.
    public func narrowed(axis: Int, start: Int, length: Int) -> Tensor {
        let axis = normalizeAxis(axis, rank: rank)
        precondition(start >= 0 && length >= 0 && start + length <= shape[axis],
                     "narrow \(start)..<\(start + length) out of range for axis \(axis) of \(shape)")
        let outer = shapeCount(Array(shape[..<axis]))
        let inner = shapeCount(Array(shape[(axis + 1)...]))
        var outShape = shape
        outShape[axis] = length
        let out = Tensor.uninitialized(outShape)
        let n = shape[axis]
        for o in 0..<outer {
            (out.pointer + o * length * inner).update(from: pointer + (o * n + start) * inner, count: length * inner)
        }
        if Tensor.needsGrad(self) {
            let s = shape
            out.recorded("narrow", [self]) { g in
                let dx = Tensor.zeros(s)
                for o in 0..<outer {
                    (dx.pointer + (o * n + start) * inner).update(from: g.pointer + o * length * inner, count: length * inner)
                }
                return [dx]
            }
        }
        return out
    }

    /// Splits `axis` into pieces of the given sizes.
    public func split(axis: Int, sizes: [Int]) -> [Tensor] {
        let a = normalizeAxis(axis, rank: rank)
        precondition(sizes.reduce(0, +) == shape[a], "split sizes \(sizes) do not add up to \(shape[a])")
        var start = 0
        return sizes.map { size in
            defer { start += size }
            return narrowed(axis: a, start: start, length: size)
        }
    }

    /// Joins tensors along `axis`; all other dimensions must agree.
    public static func concatenate(_ tensors: [Tensor], axis: Int) -> Tensor {
        precondition(!tensors.isEmpty, "concatenate of no tensors")
        let first = tensors[0]
        let axis = normalizeAxis(axis, rank: first.rank)
        for t in tensors {
            precondition(t.rank == first.rank && (0..<first.rank).allSatisfy { $0 == axis || t.shape[$0] == first.shape[$0] },
                         "concatenate: shape \(t.shape) does not match \(first.shape) outside axis \(axis)")
        }
        let outer = shapeCount(Array(first.shape[..<axis]))
        let inner = shapeCount(Array(first.shape[(axis + 1)...]))
        let sizes = tensors.map { $0.shape[axis] }
        let total = sizes.reduce(0, +)
        var outShape = first.shape
        outShape[axis] = total
        let out = Tensor.uninitialized(outShape)
        var offset = 0
        for (t, size) in zip(tensors, sizes) {
            for o in 0..<outer {
                (out.pointer + (o * total + offset) * inner).update(from: t.pointer + o * size * inner, count: size * inner)
            }
            offset += size
        }
        if needsGrad(tensors) {
            out.recorded("concatenate", tensors) { g in
                var start = 0
                return zip(tensors, sizes).map { t, size in
                    defer { start += size }
                    return t.requiresGrad ? g.narrowed(axis: axis, start: start, length: size) : nil
                }
            }
        }
        return out
    }

    /// A copy broadcast to `target` (NumPy rules).
    public func expanded(to target: [Int]) -> Tensor {
        guard let shape = broadcastShapes(self.shape, target), shape == target else {
            preconditionFailure("cannot expand \(self.shape) to \(target)")
        }
        let out = broadcastBinary(AddKernel.self, self, Tensor(0), outShape: target)
        if Tensor.needsGrad(self) {
            let s = self.shape
            out.recorded("expand", [self]) { g in [g.sumToShape(s)] }
        }
        return out
    }

    /// Embedding lookup: rows of this [rows, dim] table picked by `indices`; the result has shape
    /// `indexShape + [dim]`. Indices must be in range (callers validate data-derived ids and throw).
    /// Rows looked up through `paddingIndex` get no gradient, as torch's embedding with padding_idx.
    public func gatherRows(_ indices: [Int], indexShape: [Int]? = nil, paddingIndex: Int? = nil) -> Tensor {
        precondition(rank == 2, "gatherRows needs a [rows, dim] table, got \(shape)")
        let rows = shape[0], dim = shape[1]
        let outShape = (indexShape ?? [indices.count]) + [dim]
        precondition(shapeCount(outShape) == indices.count * dim, "index shape does not match \(indices.count) indices")
        let out = Tensor.uninitialized(outShape)
        for (i, index) in indices.enumerated() {
            precondition(index >= 0 && index < rows, "index \(index) out of range for \(rows) rows")
            switch dtype {
            case .float32: (out.pointer + i * dim).update(from: pointer + index * dim, count: dim)
            case .bfloat16: kk_f32_from_bf16(storage.halfPointer + index * dim, out.pointer + i * dim, dim)
            case .float16: kk_f32_from_f16(storage.halfPointer + index * dim, out.pointer + i * dim, dim)
            }
        }
        if Tensor.needsGrad(self) {
            let s = shape
            out.recorded("gather_rows", [self]) { g in
                // Scatter-add: repeated indices accumulate, as in torch's embedding backward.
                let dx = Tensor.zeros(s)
                for (i, index) in indices.enumerated() where index != paddingIndex {
                    let dst = dx.pointer + index * dim, src = g.pointer + i * dim
                    var j = 0
                    while j + vecWidth <= dim { storeVec(loadVec(dst + j) + loadVec(src + j), dst + j); j += vecWidth }
                    while j < dim { dst[j] += src[j]; j += 1 }
                }
                return [dx]
            }
        }
        return out
    }
}

extension Tensor {
    /// Cuts images [batch, channels, height, width] into non-overlapping patch × patch squares:
    /// [batch, (height/patch)·(width/patch), channels·patch·patch], patches in row-major grid order,
    /// each flattened as (channel, y, x) — the layout of a Conv2d weight [out, channels, patch, patch]
    /// reshaped to [out, channels·patch²], so a stride-patch convolution becomes one matrix product.
    public func patchified(patchSize p: Int) -> Tensor {
        precondition(rank == 4, "patchified expects [batch, channels, height, width], got \(shape)")
        let batch = shape[0], channels = shape[1], height = shape[2], width = shape[3]
        precondition(p > 0 && height % p == 0 && width % p == 0, "image \(height)×\(width) is not a multiple of patch \(p)")
        let gridH = height / p, gridW = width / p, patchLength = channels * p * p
        let out = Tensor.uninitialized([batch, gridH * gridW, patchLength])
        Tensor.movePatches(from: pointer, to: out.pointer, batch: batch, channels: channels, height: height, width: width,
                           patch: p, toPatches: true)
        if Tensor.needsGrad(self) {
            let s = shape
            out.recorded("patchify", [self]) { g in
                let dx = Tensor.uninitialized(s)
                Tensor.movePatches(from: g.pointer, to: dx.pointer, batch: batch, channels: channels, height: height,
                                   width: width, patch: p, toPatches: false)
                return [dx]
            }
        }
        return out
    }

    /// Copies rows of `patch` pixels between image layout and patch layout (either direction; the
    /// map is a permutation, so the backward pass is the same walk the other way).
    private static func movePatches(from source: UnsafeMutablePointer<Float>, to destination: UnsafeMutablePointer<Float>,
                                    batch: Int, channels: Int, height: Int, width: Int, patch p: Int, toPatches: Bool) {
        let gridH = height / p, gridW = width / p, patchLength = channels * p * p
        Parallel.forRanges(batch * gridH, minimumPerChunk: 4) { range in
            for task in range {
                let b = task / gridH, gy = task % gridH
                for gx in 0..<gridW {
                    let patchBase = (b * gridH * gridW + gy * gridW + gx) * patchLength
                    for c in 0..<channels {
                        for y in 0..<p {
                            let imageRow = ((b * channels + c) * height + gy * p + y) * width + gx * p
                            let patchRow = patchBase + (c * p + y) * p
                            if toPatches {
                                (destination + patchRow).update(from: source + imageRow, count: p)
                            } else {
                                (destination + imageRow).update(from: source + patchRow, count: p)
                            }
                        }
                    }
                }
            }
        }
    }
}

extension Tensor {
    /// Rows of a [rows, dim] tensor with the rows at `positions` replaced by the rows of
    /// `replacement` [positions.count, dim], in order (image embeddings placed into a sequence of
    /// token embeddings). Gradients flow to the kept rows of self and to all of `replacement`.
    public func replacingRows(at positions: [Int], with replacement: Tensor) -> Tensor {
        precondition(rank == 2 && replacement.rank == 2 && replacement.shape[1] == shape[1],
                     "replacingRows needs [rows, dim] tensors of equal dim, got \(shape) and \(replacement.shape)")
        precondition(replacement.shape[0] == positions.count, "\(positions.count) positions for \(replacement.shape[0]) rows")
        let dim = shape[1], rows = shape[0]
        precondition(positions.allSatisfy { $0 >= 0 && $0 < rows }, "replacingRows: position out of range for \(rows) rows")
        let out = clone()
        for (i, p) in positions.enumerated() {
            (out.pointer + p * dim).update(from: replacement.pointer + i * dim, count: dim)
        }
        if Tensor.needsGrad(self, replacement) {
            let base = self
            out.recorded("replace_rows", [self, replacement]) { g in
                var dSelf: Tensor? = nil
                if base.requiresGrad {
                    let d = g.clone()
                    for p in positions { (d.pointer + p * dim).update(repeating: 0, count: dim) }
                    dSelf = d
                }
                return [dSelf, replacement.requiresGrad ? g.gatherRows(positions) : nil]
            }
        }
        return out
    }
}

extension Tensor {
    /// The columns of a 1-D convolution over channels-last input [batch, length, channels]:
    /// [batch, outLength, channels·kernel] with column (c·kernel + k) of output step t holding
    /// x[t·stride + k − padding, c] (zero outside the input), outLength = (length + 2·padding −
    /// kernel)/stride + 1. A Conv1d weight [out, channels, kernel] viewed as [out, channels·kernel]
    /// then gives the convolution as one matrix product, already in [batch, time, out] order.
    public func conv1dColumns(kernel: Int, stride: Int = 1, padding: Int = 0) -> Tensor {
        precondition(rank == 3, "conv1dColumns expects [batch, length, channels], got \(shape)")
        precondition(kernel > 0 && stride > 0 && padding >= 0, "kernel \(kernel), stride \(stride), padding \(padding)")
        let batch = shape[0], length = shape[1], channels = shape[2]
        precondition(length + 2 * padding >= kernel, "a length-\(length) input is shorter than the kernel \(kernel)")
        let outLength = (length + 2 * padding - kernel) / stride + 1
        let width = channels * kernel
        let out = Tensor.uninitialized([batch, outLength, width])
        let src = pointer, dst = out.pointer
        Parallel.forRanges(batch * outLength, minimumPerChunk: Swift.max(1, Parallel.elementGrain / Swift.max(width, 1))) { range in
            for row in range {
                let b = row / outLength, t = row % outLength
                let o = dst + row * width
                for k in 0..<kernel {
                    let position = t * stride + k - padding
                    if position < 0 || position >= length {
                        for c in 0..<channels { o[c * kernel + k] = 0 }
                    } else {
                        let x = src + (b * length + position) * channels
                        for c in 0..<channels { o[c * kernel + k] = x[c] }
                    }
                }
            }
        }
        if Tensor.needsGrad(self) {
            let s = shape
            out.recorded("conv1dColumns", [self]) { g in
                let dx = Tensor.zeros(s)
                let gp = g.pointer, dp = dx.pointer
                // Each batch item on its own: columns of one item overlap only within it.
                Parallel.forRanges(batch, minimumPerChunk: 1) { range in
                    for b in range {
                        for t in 0..<outLength {
                            let column = gp + (b * outLength + t) * width
                            for k in 0..<kernel {
                                let position = t * stride + k - padding
                                guard position >= 0 && position < length else { continue }
                                let x = dp + (b * length + position) * channels
                                for c in 0..<channels { x[c] += column[c * kernel + k] }
                            }
                        }
                    }
                }
                return [dx]
            }
        }
        return out
    }
}
