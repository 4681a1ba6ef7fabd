import Foundation

/// softmax of one row of n values, written to `out` (may equal `x`); returns nothing.
/// Max subtraction keeps exp in range; a row that is entirely -inf gives zeros instead of NaN.
@inline(__always) func softmaxRow(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ n: Int) {
    let maxValue = rowMax(x, n)
    if maxValue == -.infinity {
        out.update(repeating: 0, count: n)
        return
    }
    let mv = Vec(repeating: maxValue)
    var acc = Vec(repeating: 0)
    var i = 0
    while i + vecWidth <= n {
        let e = fastExp(loadVec(x + i) - mv)
        storeVec(e, out + i)
        acc += e
        i += vecWidth
    }
    var total = acc.sum()
    while i < n {
        let e = fastExp(x[i] - maxValue)
        out[i] = e
        total += e
        i += 1
    }
    let inv = 1 / total, iv = Vec(repeating: inv)
    i = 0
    while i + vecWidth <= n { storeVec(loadVec(out + i) * iv, out + i); i += vecWidth }
    while i < n { out[i] *= inv; i += 1 }
}

/// log(Σ exp(x)) of one row, computed stably.
@inline(__always) func logSumExpRow(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
    let maxValue = rowMax(x, n)
    if maxValue == -.infinity || maxValue == .infinity { return maxValue }
    let mv = Vec(repeating: maxValue)
    var acc = Vec(repeating: 0)
    var i = 0
    while i + vecWidth <= n { acc += fastExp(loadVec(x + i) - mv); i += vecWidth }
    var total = acc.sum()
    while i < n { total += fastExp(x[i] - maxValue); i += 1 }
    return maxValue + Foundation.log(total)
}

/// dx = y ⊙ (dy − Σ dy·y), row by row (softmax backward).
func softmaxBackwardRows(_ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                         rows: Int, n: Int, scale: Float = 1) {
    Parallel.forRanges(rows, minimumPerChunk: Swift.max(1, Parallel.elementGrain / Swift.max(n, 1))) { range in
        for r in range {
            let yr = y + r * n, gr = dy + r * n, out = dx + r * n
            let dot = rowDot(yr, gr, n)
            let dv = Vec(repeating: dot), sv = Vec(repeating: scale)
            var i = 0
            while i + vecWidth <= n { storeVec(loadVec(yr + i) * (loadVec(gr + i) - dv) * sv, out + i); i += vecWidth }
            while i < n { out[i] = yr[i] * (gr[i] - dot) * scale; i += 1 }
        }
    }
}

extension Tensor {
    /// Softmax over the last axis.
    public func softmax() -> Tensor {
        let n = shape.last ?? 1
        let rows = n == 0 ? 0 : count / n
        let out = Tensor.uninitialized(shape)
        let x = pointer, o = out.pointer
        Parallel.forRanges(rows, minimumPerChunk: Swift.max(1, Parallel.elementGrain / Swift.max(n, 1))) { range in
            for r in range { softmaxRow(x + r * n, o + r * n, n) }
        }
        if Tensor.needsGrad(self) {
            let y = out.detached()
            out.recorded("softmax", [self]) { g in
                let dx = Tensor.uninitialized(y.shape)
                softmaxBackwardRows(y.pointer, g.pointer, dx.pointer, rows: rows, n: n)
                return [dx]
            }
        }
        return out
    }

    /// log(softmax(x)) over the last axis, computed as x − logsumexp(x).
    public func logSoftmax() -> Tensor {
        let n = shape.last ?? 1
        let rows = n == 0 ? 0 : count / n
        let out = Tensor.uninitialized(shape)
        let x = pointer, o = out.pointer
        Parallel.forRanges(rows, minimumPerChunk: Swift.max(1, Parallel.elementGrain / Swift.max(n, 1))) { range in
            for r in range {
                let lse = logSumExpRow(x + r * n, n)
                let lv = Vec(repeating: lse)
                let xr = x + r * n, orow = o + r * n
                var i = 0
                while i + vecWidth <= n { storeVec(loadVec(xr + i) - lv, orow + i); i += vecWidth }
                while i < n { orow[i] = xr[i] - lse; i += 1 }
            }
        }
        if Tensor.needsGrad(self) {
            let y = out.detached()
            out.recorded("log_softmax", [self]) { g in
                // dx = dy − softmax(x) · Σ dy
                let dx = Tensor.uninitialized(y.shape)
                let yp = y.pointer, gp = g.pointer, dp = dx.pointer
                Parallel.forRanges(rows, minimumPerChunk: Swift.max(1, Parallel.elementGrain / Swift.max(n, 1))) { range in
                    for r in range {
                        let total = rowSum(gp + r * n, n)
                        let tv = Vec(repeating: total)
                        let yr = yp + r * n, gr = gp + r * n, dr = dp + r * n
                        var i = 0
                        while i + vecWidth <= n { storeVec(loadVec(gr + i) - fastExp(loadVec(yr + i)) * tv, dr + i); i += vecWidth }
                        while i < n { dr[i] = gr[i] - fastExp(yr[i]) * total; i += 1 }
                    }
                }
                return [dx]
            }
        }
        return out
    }
}
