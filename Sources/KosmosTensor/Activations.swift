import Foundation

// Element-wise functions and their derivatives. Forward kernels are unary; backward kernels are
// binary over (saved input or output, incoming gradient).

private let invSqrt2: Float = 0.70710678118654752
private let invSqrt2Pi: Float = 0.39894228040143268
private let quickGeluFactor: Float = 1.702

enum ExpKernel: UnaryKernel {
    @inline(__always) static func vector(_ x: Vec) -> Vec { fastExp(x) }
    @inline(__always) static func scalar(_ x: Float) -> Float { fastExp(x) }
}
enum LogKernel: UnaryKernel {
    @inline(__always) static func vector(_ x: Vec) -> Vec {
        var r = x
        for i in 0..<vecWidth { r[i] = Foundation.log(x[i]) }
        return r
    }
    @inline(__always) static func scalar(_ x: Float) -> Float { Foundation.log(x) }
}
enum SqrtKernel: UnaryKernel {
    @inline(__always) static func vector(_ x: Vec) -> Vec { x.squareRoot() }
    @inline(__always) static func scalar(_ x: Float) -> Float { x.squareRoot() }
}
enum SquareKernel: UnaryKernel {
    @inline(__always) static func vector(_ x: Vec) -> Vec { x * x }
    @inline(__always) static func scalar(_ x: Float) -> Float { x * x }
}
enum SigmoidKernel: UnaryKernel {
    @inline(__always) static func vector(_ x: Vec) -> Vec { fastSigmoid(x) }
    @inline(__always) static func scalar(_ x: Float) -> Float { fastSigmoid(x) }
}
enum TanhKernel: UnaryKernel {
    @inline(__always) static func vector(_ x: Vec) -> Vec { fastTanh(x) }
    @inline(__always) static func scalar(_ x: Float) -> Float { fastTanh(x) }
}
enum ReluKernel: UnaryKernel {
    // Compare and select (pointwiseMax is a slow lane-by-lane loop); NaN stays NaN as in torch.relu.
    @inline(__always) static func vector(_ x: Vec) -> Vec { x.replacing(with: 0, where: x .< 0) }
    @inline(__always) static func scalar(_ x: Float) -> Float { x < 0 ? 0 : x }
}
/// GELU with the exact erf, as torch.nn.functional.gelu(approximate="none"): x·½(1 + erf(x/√2)).
enum GeluKernel: UnaryKernel {
    @inline(__always) static func vector(_ x: Vec) -> Vec {
        x * 0.5 * (1 + fastErf(x * invSqrt2))
    }
    @inline(__always) static func scalar(_ x: Float) -> Float {
        x * 0.5 * (1 + fastErf(x * invSqrt2))
    }
}
/// CLIP's quick_gelu: x·sigmoid(1.702x).
enum QuickGeluKernel: UnaryKernel {
    @inline(__always) static func vector(_ x: Vec) -> Vec { x * fastSigmoid(x * quickGeluFactor) }
    @inline(__always) static func scalar(_ x: Float) -> Float { x * fastSigmoid(x * quickGeluFactor) }
}

/// d/dx gelu = Φ(x) + x·φ(x); a = x, b = incoming gradient.
enum GeluBackwardKernel: BinaryKernel {
    @inline(__always) static func vector(_ x: Vec, _ g: Vec) -> Vec {
        let cdf = 0.5 * (1 + fastErf(x * invSqrt2))
        let pdf = fastExp(-0.5 * x * x) * invSqrt2Pi
        return g * (cdf + x * pdf)
    }
    @inline(__always) static func scalar(_ x: Float, _ g: Float) -> Float {
        let cdf = 0.5 * (1 + fastErf(x * invSqrt2))
        let pdf = fastExp(-0.5 * x * x) * invSqrt2Pi
        return g * (cdf + x * pdf)
    }
}
/// d/dx x·σ(kx) = σ(kx) + kx·σ(kx)(1 − σ(kx)); a = x, b = incoming gradient.
enum QuickGeluBackwardKernel: BinaryKernel {
    @inline(__always) static func vector(_ x: Vec, _ g: Vec) -> Vec {
        let s = fastSigmoid(x * quickGeluFactor)
        return g * (s + quickGeluFactor * x * s * (1 - s))
    }
    @inline(__always) static func scalar(_ x: Float, _ g: Float) -> Float {
        let s = fastSigmoid(x * quickGeluFactor)
        return g * (s + quickGeluFactor * x * s * (1 - s))
    }
}
/// a = sigmoid output y, b = gradient: g·y(1 − y).
enum SigmoidBackwardKernel: BinaryKernel {
    @inline(__always) static func vector(_ y: Vec, _ g: Vec) -> Vec { g * y * (1 - y) }
    @inline(__always) static func scalar(_ y: Float, _ g: Float) -> Float { g * y * (1 - y) }
}
/// a = tanh output y, b = gradient: g·(1 − y²).
enum TanhBackwardKernel: BinaryKernel {
    @inline(__always) static func vector(_ y: Vec, _ g: Vec) -> Vec { g * (1 - y * y) }
    @inline(__always) static func scalar(_ y: Float, _ g: Float) -> Float { g * (1 - y * y) }
}
/// a = x, b = gradient: g where x > 0.
enum ReluBackwardKernel: BinaryKernel {
    @inline(__always) static func vector(_ x: Vec, _ g: Vec) -> Vec {
        Vec(repeating: 0).replacing(with: g, where: x .> 0)
    }
    @inline(__always) static func scalar(_ x: Float, _ g: Float) -> Float { x > 0 ? g : 0 }
}

extension Tensor {
    private func unary<K: UnaryKernel>(_ kernel: K.Type, _ name: String,
                                       backward: @escaping (_ x: Tensor, _ y: Tensor, _ g: Tensor) -> Tensor) -> Tensor {
        let out = unaryResult(kernel, self)
        if Tensor.needsGrad(self) {
            let x = self
            let y = out.detached()
            out.recorded(name, [x]) { g in [backward(x, y, g)] }
        }
        return out
    }

    public func exp() -> Tensor { unary(ExpKernel.self, "exp") { _, y, g in g * y } }
    public func log() -> Tensor { unary(LogKernel.self, "log") { x, _, g in g / x } }
    public func sqrt() -> Tensor { unary(SqrtKernel.self, "sqrt") { _, y, g in g / (y * 2) } }
    public func square() -> Tensor { unary(SquareKernel.self, "square") { x, _, g in g * x * 2 } }
    public func relu() -> Tensor {
        unary(ReluKernel.self, "relu") { x, _, g in binaryResult(ReluBackwardKernel.self, x, g) }
    }
    public func sigmoid() -> Tensor {
        unary(SigmoidKernel.self, "sigmoid") { _, y, g in binaryResult(SigmoidBackwardKernel.self, y, g) }
    }
    public func tanh() -> Tensor {
        unary(TanhKernel.self, "tanh") { _, y, g in binaryResult(TanhBackwardKernel.self, y, g) }
    }
    /// GELU with the exact error function (PyTorch's default, torchscale's and flamingo's).
    public func gelu() -> Tensor {
        unary(GeluKernel.self, "gelu") { x, _, g in binaryResult(GeluBackwardKernel.self, x, g) }
    }
    /// GELU's tanh approximation, ½x(1 + tanh(√(2/π)(x + 0.044715x³))) (transformers' gelu_new,
    /// T5 and Pix2Struct's MLPs), composed of recorded ops.
    public func geluTanh() -> Tensor {
        let inner = (self + self.square() * self * 0.044715) * Float((2.0 / Double.pi).squareRoot())
        return (self * 0.5) * (inner.tanh() + 1)
    }
    /// x·sigmoid(1.702x), the activation of OpenAI's CLIP.
    public func quickGelu() -> Tensor {
        unary(QuickGeluKernel.self, "quick_gelu") { x, _, g in binaryResult(QuickGeluBackwardKernel.self, x, g) }
    }
}

extension Tensor {
    /// max(x, minimum) element-wise; the gradient passes where x > minimum (torch.clamp_min).
    public func clampedMin(_ minimum: Float) -> Tensor {
        let out = Tensor.uninitialized(shape)
        let x = pointer, o = out.pointer
        for i in 0..<count { o[i] = x[i] > minimum ? x[i] : minimum }
        if Tensor.needsGrad(self) {
            let input = self
            out.recorded("clamp_min", [self]) { g in
                let dx = Tensor.uninitialized(g.shape)
                for i in 0..<g.count { dx.pointer[i] = input.pointer[i] > minimum ? g.pointer[i] : 0 }
                return [dx]
            }
        }
        return out
    }

    /// x / max(‖x‖₂, eps) along the last axis (torch.nn.functional.normalize).
    public func l2Normalized(eps: Float = 1e-12) -> Tensor {
        self / square().sum(axis: -1, keepDims: true).sqrt().clampedMin(eps)
    }
}
