import Foundation
import KosmosTensor

/// AdamW (Loshchilov & Hutter), step for step the arithmetic of PyTorch's `torch.optim.AdamW`
/// (single-tensor path, the CPU default): decoupled decay p ← p·(1 − lr·wd), then
/// m ← m + (1−β₁)(g − m), v ← β₂v + (1−β₂)g², p ← p − lr/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε).
/// Scalars are computed in Double and rounded once, as PyTorch passes Python floats to its kernels.
public final class AdamW {
    /// Parameters that share hyper-parameters (e.g. biases and norms without weight decay).
    public struct Group {
        public var parameters: [Tensor]
        public var weightDecay: Float
        public init(parameters: [Tensor], weightDecay: Float) {
            self.parameters = parameters
            self.weightDecay = weightDecay
        }
    }

    public private(set) var groups: [Group]
    /// Current learning rate; schedules set it before each `step()`.
    public var learningRate: Float
    public let beta1: Float
    public let beta2: Float
    public let eps: Float

    /// Per-parameter state, created lazily on a parameter's first update (PyTorch's convention, so a
    /// parameter without gradient for a while starts its bias correction when it first gets one).
    private var firstMoment: [ObjectIdentifier: Tensor] = [:]
    private var secondMoment: [ObjectIdentifier: Tensor] = [:]
    private var steps: [ObjectIdentifier: Int] = [:]

    public init(groups: [Group], learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8) {
        self.groups = groups
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
    }

    /// One group with PyTorch's defaults (weight decay 0.01).
    public convenience init(parameters: [Tensor], learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999,
                            eps: Float = 1e-8, weightDecay: Float = 0.01) {
        self.init(groups: [Group(parameters: parameters, weightDecay: weightDecay)],
                  learningRate: learningRate, beta1: beta1, beta2: beta2, eps: eps)
    }

    /// Updates every parameter that has a gradient.
    public func step() {
        for group in groups {
            for parameter in group.parameters {
                guard let grad = parameter.grad else { continue }
                update(parameter, grad: grad, weightDecay: group.weightDecay)
            }
        }
    }

    /// Clears the gradients of all parameters in all groups.
    public func zeroGrad() {
        for group in groups { for p in group.parameters { p.zeroGrad() } }
    }

    private func update(_ parameter: Tensor, grad: Tensor, weightDecay: Float) {
        precondition(grad.count == parameter.count, "gradient \(grad.shape) for parameter \(parameter.shape)")
        let id = ObjectIdentifier(parameter)
        let m = firstMoment[id] ?? Tensor.zeros(parameter.shape)
        let v = secondMoment[id] ?? Tensor.zeros(parameter.shape)
        firstMoment[id] = m
        secondMoment[id] = v
        let step = (steps[id] ?? 0) + 1
        steps[id] = step

        let scalars = stepScalars(step: step, weightDecay: weightDecay)
        parameter.withUnsafeMutableBufferPointer { p in
            m.withUnsafeMutableBufferPointer { mb in
                v.withUnsafeMutableBufferPointer { vb in
                    grad.withUnsafeBufferPointer { gb in
                        AdamW.update(parameter: p.baseAddress!, firstMoment: mb.baseAddress!, secondMoment: vb.baseAddress!,
                                     gradient: gb.baseAddress!, count: parameter.count, scalars)
                    }
                }
            }
        }
    }

    /// The per-step constants of the update of a parameter at its `step`-th update (1-based).
    public struct StepScalars {
        public var decay: Float
        public var beta1: Float, beta2: Float
        public var oneMinusBeta1: Float, oneMinusBeta2: Float
        public var biasCorrection2Sqrt: Float
        public var negativeStepSize: Float
        public var eps: Float
    }

    /// Scalars at the current learning rate, computed in Double and rounded once (as PyTorch).
    public func stepScalars(step: Int, weightDecay: Float) -> StepScalars {
        let lr = Double(learningRate)
        let biasCorrection1 = 1 - pow(Double(beta1), Double(step))
        return StepScalars(decay: Float(1 - lr * Double(weightDecay)), beta1: beta1, beta2: beta2,
                           oneMinusBeta1: Float(1 - Double(beta1)), oneMinusBeta2: Float(1 - Double(beta2)),
                           biasCorrection2Sqrt: Float((1 - pow(Double(beta2), Double(step))).squareRoot()),
                           negativeStepSize: Float(-(lr / biasCorrection1)), eps: eps)
    }

    /// The element-wise AdamW update of `count` contiguous elements. A parameter may be updated in
    /// pieces (ZeRO shards in KosmosTraining) with the same result as in one call, since every
    /// element's arithmetic depends only on its own values and the step's scalars.
    @inline(__always)
    public static func update(parameter p: UnsafeMutablePointer<Float>, firstMoment mb: UnsafeMutablePointer<Float>,
                              secondMoment vb: UnsafeMutablePointer<Float>, gradient gb: UnsafePointer<Float>,
                              count: Int, _ s: StepScalars) {
        let decay = s.decay, b2 = s.beta2, oneMinusB1 = s.oneMinusBeta1, oneMinusB2 = s.oneMinusBeta2
        let biasCorrection2Sqrt = s.biasCorrection2Sqrt, negStepSize = s.negativeStepSize, epsilon = s.eps
        // Every element is independent, so splitting across cores changes no result.
        Parallel.forRanges(count, minimumPerChunk: Parallel.elementGrain) { range in
            for i in range {
                let g = gb[i]
                p[i] *= decay
                mb[i] += oneMinusB1 * (g - mb[i])
                vb[i] = vb[i] * b2 + oneMinusB2 * g * g
                let denom = vb[i].squareRoot() / biasCorrection2Sqrt + epsilon
                p[i] += negStepSize * mb[i] / denom
            }
        }
    }

    /// The optimizer state of one parameter: (step, first moment, second moment), or nil before
    /// its first update. For checkpoints.
    public func state(of parameter: Tensor) -> (step: Int, firstMoment: Tensor, secondMoment: Tensor)? {
        let id = ObjectIdentifier(parameter)
        guard let step = steps[id], let m = firstMoment[id], let v = secondMoment[id] else { return nil }
        return (step, m, v)
    }

    /// Restores the state of one parameter (shapes must match the parameter).
    public func setState(of parameter: Tensor, step: Int, firstMoment m: Tensor, secondMoment v: Tensor) {
        precondition(m.shape == parameter.shape && v.shape == parameter.shape, "optimizer state shape mismatch")
        let id = ObjectIdentifier(parameter)
        steps[id] = step
        firstMoment[id] = m
        secondMoment[id] = v
    }
}
