import Foundation
import KosmosNN
import KosmosTensor

/// The learning rate of each optimizer step. `s` is the 0-based index of the step being taken,
/// `T` the total steps, `W` the warmup steps:
/// - warmup (s < W): peak · (s + 1) / W — the first step already moves, the W-th reaches the peak;
/// - linear: peak · (T − s) / (T − W), so the last step uses peak / (T − W), never 0;
/// - cosine: peak · ½ (1 + cos(π (s − W) / (T − W)));
/// - constant: peak.
public struct LearningRateSchedule: Equatable, Sendable {
    public enum Kind: String, Sendable { case linear, cosine, constant }
    public let kind: Kind
    public let peak: Double
    public let warmupSteps: Int
    public let totalSteps: Int

    public init(kind: Kind, peak: Double, warmupSteps: Int, totalSteps: Int) {
        self.kind = kind; self.peak = peak; self.warmupSteps = warmupSteps; self.totalSteps = totalSteps
    }

    public func learningRate(step s: Int) -> Double {
        if s < warmupSteps { return peak * Double(s + 1) / Double(warmupSteps) }
        let span = Double(max(1, totalSteps - warmupSteps))
        let done = Double(s - warmupSteps)
        switch kind {
        case .constant: return peak
        case .linear: return peak * max(0, span - done) / span
        case .cosine: return peak * 0.5 * (1 + cos(Double.pi * min(done, span) / span))
        }
    }
}

/// Which trainable parameters get weight decay. Matrices (ndim ≥ 2: linear and embedding weights,
/// the patch convolution, position tables, the resampler's latents) are decayed; vectors (biases,
/// layer-norm gains and shifts, CLIP's class embedding) are not, because shrinking a bias or a
/// norm gain towards zero does not regularise the function the way shrinking a weight does, and
/// only distorts the normalised activations.
public enum ParameterGroups {
    public static func split(_ named: [(name: String, tensor: Tensor)]) -> (decayed: [(String, Tensor)], notDecayed: [(String, Tensor)]) {
        var decayed: [(String, Tensor)] = [], plain: [(String, Tensor)] = []
        for (name, t) in named where t.requiresGrad {
            if t.shape.count >= 2 { decayed.append((name, t)) } else { plain.append((name, t)) }
        }
        return (decayed, plain)
    }
}

public enum GradientClipping {
    /// The global L2 norm of the gradients (computed in Double), then, when it exceeds `maxNorm`,
    /// every gradient scaled by maxNorm / (norm + 1e-6) — `torch.nn.utils.clip_grad_norm_`.
    /// Returns the norm before clipping. `maxNorm` 0 only measures.
    @discardableResult
    public static func clip(_ parameters: [Tensor], maxNorm: Double) -> Double {
        var sumSquares = 0.0
        for p in parameters {
            guard let g = p.grad else { continue }
            g.withUnsafeBufferPointer { b in
                var s: Double = 0
                for x in b { s += Double(x) * Double(x) }
                sumSquares += s
            }
        }
        let norm = sumSquares.squareRoot()
        if maxNorm > 0 {
            let coefficient = maxNorm / (norm + 1e-6)
            if coefficient < 1 {
                let c = Float(coefficient)
                for p in parameters {
                    guard let g = p.grad else { continue }
                    g.withUnsafeMutableBufferPointer { b in for i in b.indices { b[i] *= c } }
                }
            }
        }
        return norm
    }
}
