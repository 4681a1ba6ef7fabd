import Foundation

extension Tensor {
    /// Layer normalisation over the last axis: (x − mean) / sqrt(var + eps) · weight + bias, with
    /// the biased variance, as torch.nn.functional.layer_norm. Fused forward and backward; the
    /// per-row mean and 1/σ are kept for the backward pass.
    public func layerNorm(weight: Tensor?, bias: Tensor?, eps: Float = 1e-5) -> Tensor {
        let n = shape.last ?? 1
        if let weight { precondition(weight.count == n, "layerNorm weight \(weight.shape) for last axis \(n)") }
        if let bias { precondition(bias.count == n, "layerNorm bias \(bias.shape) for last axis \(n)") }
        let rows = n == 0 ? 0 : count / n
        let out = Tensor.uninitialized(shape)
        let recording = Tensor.needsGrad([self] + [weight, bias].compactMap { $0 })
        let means = Tensor.uninitialized([rows]), rstds = Tensor.uninitialized([rows])
        let x = pointer, o = out.pointer, w = weight?.pointer, b = bias?.pointer
        let mp = means.pointer, rp = rstds.pointer
        Parallel.forRanges(rows, minimumPerChunk: Swift.max(1, Parallel.elementGrain / Swift.max(n, 1))) { range in
            for r in range {
                let xr = x + r * n, orow = o + r * n
                // Two passes (mean, then squared deviations) for accuracy on rows with a large mean.
                let mean = rowSum(xr, n) / Float(n)
                let mv = Vec(repeating: mean)
                var acc = Vec(repeating: 0)
                var i = 0
                while i + vecWidth <= n { let d = loadVec(xr + i) - mv; acc += d * d; i += vecWidth }
                var sq = acc.sum()
                while i < n { let d = xr[i] - mean; sq += d * d; i += 1 }
                let rstd = 1 / (sq / Float(n) + eps).squareRoot()
                mp[r] = mean
                rp[r] = rstd
                let rv = Vec(repeating: rstd)
                i = 0
                while i + vecWidth <= n {
                    var v = (loadVec(xr + i) - mv) * rv
                    if let w { v = v * loadVec(w + i) }
                    if let b { v = v + loadVec(b + i) }
                    storeVec(v, orow + i)
                    i += vecWidth
                }
                while i < n {
                    var v = (xr[i] - mean) * rstd
                    if let w { v = v * w[i] }
                    if let b { v = v + b[i] }
                    orow[i] = v
                    i += 1
                }
            }
        }
        if recording {
            let input = self
            out.recorded("layer_norm", [self] + [weight, bias].compactMap { $0 }) { g in
                let dx = Tensor.uninitialized(input.shape)
                // dy·x̂ per element, summed over rows afterwards into the weight gradient.
                let dyXhat = weight?.requiresGrad == true ? Tensor.uninitialized(input.shape) : nil
                // The saved statistics live in `means`/`rstds`, captured here so they outlive the forward pass.
                let x = input.pointer, gp = g.pointer, dp = dx.pointer, dyx = dyXhat?.pointer
                let mp = means.pointer, rp = rstds.pointer
                Parallel.forRanges(rows, minimumPerChunk: Swift.max(1, Parallel.elementGrain / Swift.max(n, 1))) { range in
                    for r in range {
                        let xr = x + r * n, gr = gp + r * n, dr = dp + r * n
                        let mean = mp[r], rstd = rp[r]
                        let mv = Vec(repeating: mean), rv = Vec(repeating: rstd)
                        // First pass: Σ dx̂ and Σ dx̂·x̂ where dx̂ = dy·w.
                        var sumA = Vec(repeating: 0), sumB = Vec(repeating: 0)
                        var i = 0
                        while i + vecWidth <= n {
                            let xhat = (loadVec(xr + i) - mv) * rv
                            var dxhat = loadVec(gr + i)
                            if let dyx { storeVec(dxhat * xhat, dyx + r * n + i) }
                            if let w { dxhat = dxhat * loadVec(w + i) }
                            sumA += dxhat
                            sumB += dxhat * xhat
                            i += vecWidth
                        }
                        var sa = sumA.sum(), sb = sumB.sum()
                        while i < n {
                            let xhat = (xr[i] - mean) * rstd
                            var dxhat = gr[i]
                            if let dyx { dyx[r * n + i] = dxhat * xhat }
                            if let w { dxhat *= w[i] }
                            sa += dxhat
                            sb += dxhat * xhat
                            i += 1
                        }
                        let meanA = sa / Float(n), meanB = sb / Float(n)
                        let av = Vec(repeating: meanA), bv = Vec(repeating: meanB)
                        i = 0
                        while i + vecWidth <= n {
                            let xhat = (loadVec(xr + i) - mv) * rv
                            var dxhat = loadVec(gr + i)
                            if let w { dxhat = dxhat * loadVec(w + i) }
                            storeVec(rv * (dxhat - av - xhat * bv), dr + i)
                            i += vecWidth
                        }
                        while i < n {
                            let xhat = (xr[i] - mean) * rstd
                            var dxhat = gr[i]
                            if let w { dxhat *= w[i] }
                            dr[i] = rstd * (dxhat - meanA - xhat * meanB)
                            i += 1
                        }
                    }
                }
                var grads: [Tensor?] = [input.requiresGrad ? dx : nil]
                if let weight {
                    grads.append(dyXhat.map { t -> Tensor in
                        let dw = Tensor.uninitialized(weight.shape)
                        sumMiddleAxis(t.pointer, dw.pointer, outer: 1, n: rows, inner: n)
                        return dw
                    })
                }
                if let bias {
                    if bias.requiresGrad {
                        let db = Tensor.uninitialized(bias.shape)
                        sumMiddleAxis(g.pointer, db.pointer, outer: 1, n: rows, inner: n)
                        grads.append(db)
                    } else {
                        grads.append(nil)
                    }
                }
                return grads
            }
        }
        return out
    }
}
