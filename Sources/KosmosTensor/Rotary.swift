import Foundation

extension Tensor {
    /// Rotates interleaved pairs of the last axis, position by position (rotary embeddings and
    /// torchscale's xPos, "rotate_every_two" style): for x of shape [..., L, D] and coefficient
    /// tables c, s of shape [L, D/2],
    ///     out[2i]   = x[2i]·c[l,i] − x[2i+1]·s[l,i]
    ///     out[2i+1] = x[2i+1]·c[l,i] + x[2i]·s[l,i].
    /// xPos folds its per-pair scale into c and s. The tables are constants (no gradient); the
    /// backward pass applies the transposed rotation.
    public func rotatingPairs(cos c: Tensor, sin s: Tensor) -> Tensor {
        precondition(rank >= 2, "rotatingPairs needs [..., L, D], got \(shape)")
        let length = shape[rank - 2], dim = shape[rank - 1]
        precondition(dim % 2 == 0, "rotatingPairs needs an even last axis, got \(dim)")
        precondition(c.shape == [length, dim / 2] && s.shape == [length, dim / 2],
                     "rotation tables must be [\(length), \(dim / 2)], got \(c.shape) and \(s.shape)")
        let out = Tensor.uninitialized(shape)
        Tensor.rotatePairs(pointer, out.pointer, c.pointer, s.pointer, count: count, length: length, dim: dim, transpose: false)
        if Tensor.needsGrad(self) {
            out.recorded("rotate_pairs", [self]) { g in
                let dx = Tensor.uninitialized(g.shape)
                Tensor.rotatePairs(g.pointer, dx.pointer, c.pointer, s.pointer, count: g.count, length: length, dim: dim, transpose: true)
                return [dx]
            }
        }
        return out
    }

    private static func rotatePairs(_ x: UnsafeMutablePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                                    _ c: UnsafeMutablePointer<Float>, _ s: UnsafeMutablePointer<Float>,
                                    count: Int, length: Int, dim: Int, transpose: Bool) {
        let rows = dim == 0 ? 0 : count / dim
        let half = dim / 2
        // The transposed rotation is the rotation by −angle: flip the sign of s.
        let sign: Float = transpose ? -1 : 1
        Parallel.forRanges(rows, minimumPerChunk: Swift.max(1, Parallel.elementGrain / Swift.max(dim, 1))) { range in
            for row in range {
                let l = row % length
                let xr = x + row * dim, or = out + row * dim, cr = c + l * half, sr = s + l * half
                for i in 0..<half {
                    let x0 = xr[2 * i], x1 = xr[2 * i + 1]
                    let ci = cr[i], si = sign * sr[i]
                    or[2 * i] = x0 * ci - x1 * si
                    or[2 * i + 1] = x1 * ci + x0 * si
                }
            }
        }
    }
}
