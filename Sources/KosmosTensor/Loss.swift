import Foundation

/// How per-element losses combine.
public enum LossReduction: Sendable {
    /// Mean over the elements that count (targets not equal to the ignore index).
    case mean
    case sum
}

extension Tensor {
    /// Cross-entropy of logits [..., classes] against integer targets (one per row), as
    /// torch.nn.functional.cross_entropy: targets equal to `ignoreIndex` contribute nothing and are
    /// not counted in the mean (so a batch where every target is ignored gives NaN, as in PyTorch).
    /// Fused log-softmax and loss; the backward pass is softmax − one-hot.
    public func crossEntropy(targets: [Int], ignoreIndex: Int = -100, reduction: LossReduction = .mean) -> Tensor {
        let classes = shape.last ?? 1
        let rows = classes == 0 ? 0 : count / classes
        precondition(targets.count == rows, "crossEntropy: \(targets.count) targets for \(rows) rows of logits \(shape)")
        for t in targets where t != ignoreIndex {
            precondition(t >= 0 && t < classes, "crossEntropy: target \(t) outside 0..<\(classes)")
        }
        if rows == 0 {
            // Nothing to average: PyTorch's mean over no elements is NaN, its sum 0.
            let out = Tensor(reduction == .mean ? .nan : 0)
            if Tensor.needsGrad(self) {
                let s = shape
                out.recorded("cross_entropy", [self]) { _ in [Tensor.zeros(s)] }
            }
            return out
        }
        var rowLoss = [Float](repeating: 0, count: rows)
        var logSumExps = [Float](repeating: 0, count: rows)
        let x = pointer
        rowLoss.withUnsafeMutableBufferPointer { lossBuffer in
            logSumExps.withUnsafeMutableBufferPointer { lseBuffer in
                let lp = lossBuffer.baseAddress!, sp = lseBuffer.baseAddress!
                Parallel.forRanges(rows, minimumPerChunk: Swift.max(1, Parallel.elementGrain / Swift.max(classes, 1))) { range in
                    for r in range where targets[r] != ignoreIndex {
                        let lse = logSumExpRow(x + r * classes, classes)
                        sp[r] = lse
                        lp[r] = lse - x[r * classes + targets[r]]
                    }
                }
            }
        }
        var total: Float = 0
        var counted = 0
        for r in 0..<rows where targets[r] != ignoreIndex {
            total += rowLoss[r]
            counted += 1
        }
        let divisor: Float = reduction == .mean ? Float(counted) : 1
        let out = Tensor(total / divisor)
        if Tensor.needsGrad(self) {
            let logits = self
            out.recorded("cross_entropy", [self]) { g in
                let dx = Tensor.zeros(logits.shape)
                let scale = g.item() / divisor
                let xp = logits.pointer, dp = dx.pointer
                Parallel.forRanges(rows, minimumPerChunk: Swift.max(1, Parallel.elementGrain / Swift.max(classes, 1))) { range in
                    for r in range where targets[r] != ignoreIndex {
                        let lse = logSumExps[r]
                        let xr = xp + r * classes, dr = dp + r * classes
                        let lv = Vec(repeating: lse), sv = Vec(repeating: scale)
                        var i = 0
                        while i + vecWidth <= classes { storeVec(fastExp(loadVec(xr + i) - lv) * sv, dr + i); i += vecWidth }
                        while i < classes { dr[i] = fastExp(xr[i] - lse) * scale; i += 1 }
                        dr[targets[r]] -= scale
                    }
                }
                return [dx]
            }
        }
        return out
    }
}
