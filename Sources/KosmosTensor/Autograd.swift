import Foundation

/// One recorded operation: the tensors it read and how to turn the gradient of its output into
/// gradients of those inputs. Backward closures run in no-grad mode, so they record nothing.
final class GradFunction {
    let name: String
    let inputs: [Tensor]
    let backward: (Tensor) -> [Tensor?]

    init(name: String, inputs: [Tensor], backward: @escaping (Tensor) -> [Tensor?]) {
        self.name = name
        self.inputs = inputs
        self.backward = backward
    }
}

/// A per-thread boolean, false on every thread until set, with a scoped setter. Grad mode, the
/// skipped random initialisation and KosmosNN's compute dtype are each one.
public final class ThreadFlag: @unchecked Sendable {
    private var key = pthread_key_t()

    public init() { pthread_key_create(&key, nil) }

    /// This thread's value.
    public var isSet: Bool { pthread_getspecific(key) != nil }

    /// Runs `body` with this thread's value `value`, then restores the previous one.
    public func with<R>(_ value: Bool, _ body: () throws -> R) rethrows -> R {
        let previous = pthread_getspecific(key)
        pthread_setspecific(key, value ? UnsafeRawPointer(bitPattern: 1) : nil)
        defer { pthread_setspecific(key, previous) }
        return try body()
    }
}

/// Whether operations record a graph. On by default; `withoutGrad` turns it off for the current
/// thread (like `torch.no_grad()`, it is per thread so a server's inference threads never touch a
/// training thread's setting).
public enum GradMode {
    /// Set inside `withoutGrad`.
    private static let disabled = ThreadFlag()

    /// Recording is on unless a `withoutGrad` scope is active on this thread.
    public static var isEnabled: Bool { !disabled.isSet }

    /// Runs `body` with recording off: no graph is built and no saved tensors are kept.
    public static func withoutGrad<R>(_ body: () throws -> R) rethrows -> R { try disabled.with(true, body) }

    /// Runs `body` with recording on, even inside a `withoutGrad` scope.
    public static func withGrad<R>(_ body: () throws -> R) rethrows -> R { try disabled.with(false, body) }
}

/// Shorthand for `GradMode.withoutGrad`.
public func withoutGrad<R>(_ body: () throws -> R) rethrows -> R {
    try GradMode.withoutGrad(body)
}

extension Tensor {
    /// True when an op reading these inputs must record itself.
    @inline(__always) static func needsGrad(_ a: Tensor) -> Bool {
        a.requiresGrad && GradMode.isEnabled
    }

    @inline(__always) static func needsGrad(_ a: Tensor, _ b: Tensor) -> Bool {
        (a.requiresGrad || b.requiresGrad) && GradMode.isEnabled
    }

    static func needsGrad(_ inputs: [Tensor]) -> Bool {
        GradMode.isEnabled && inputs.contains { $0.requiresGrad }
    }

    /// Attaches a recorded operation to this freshly computed result and returns it.
    @discardableResult
    func recorded(_ name: String, _ inputs: [Tensor], backward: @escaping (Tensor) -> [Tensor?]) -> Tensor {
        gradFn = GradFunction(name: name, inputs: inputs, backward: backward)
        requiresGrad = true
        return self
    }

    /// Reverse-mode differentiation from this tensor. Without `gradient` the tensor must hold one
    /// element (a loss); its gradient is then 1. Gradients of leaves that require grad are added
    /// to their `grad`. The graph is released as it is consumed (PyTorch's default,
    /// retain_graph=False): call `backward` once per forward pass.
    public func backward(_ gradient: Tensor? = nil) {
        precondition(requiresGrad, "backward() on a tensor that does not require grad")
        let seed: Tensor
        if let gradient {
            precondition(gradient.shape == shape, "backward gradient \(gradient.shape) for tensor \(shape)")
            seed = gradient
        } else {
            precondition(count == 1, "backward() without a gradient needs a one-element tensor, shape is \(shape)")
            seed = Tensor.ones(shape)
        }

        // Post-order DFS gives every tensor after all tensors it was computed from.
        var order: [Tensor] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(Tensor, Int)] = [(self, 0)]
        visited.insert(ObjectIdentifier(self))
        while let (tensor, next) = stack.popLast() {
            let inputs = tensor.gradFn?.inputs ?? []
            if next < inputs.count {
                stack.append((tensor, next + 1))
                let input = inputs[next]
                if input.requiresGrad && visited.insert(ObjectIdentifier(input)).inserted {
                    stack.append((input, 0))
                }
            } else {
                order.append(tensor)
            }
        }

        var pending: [ObjectIdentifier: Tensor] = [ObjectIdentifier(self): seed]
        GradMode.withoutGrad {
            for tensor in order.reversed() {
                guard let grad = pending.removeValue(forKey: ObjectIdentifier(tensor)) else { continue }
                if let function = tensor.gradFn {
                    let inputGrads = function.backward(grad)
                    for (input, inputGrad) in zip(function.inputs, inputGrads) {
                        guard input.requiresGrad, let inputGrad else { continue }
                        precondition(inputGrad.shape == input.shape,
                                     "\(function.name) backward gave \(inputGrad.shape) for input \(input.shape)")
                        let id = ObjectIdentifier(input)
                        if let existing = pending[id] {
                            pending[id] = existing + inputGrad
                        } else {
                            pending[id] = inputGrad
                        }
                    }
                    tensor.gradFn = nil
                    tensor.requiresGrad = false
                } else {
                    tensor.accumulateGrad(grad)
                }
            }
        }
    }

    /// Adds `incoming` to `grad`, owning a private copy so later in-place accumulation can never
    /// write into a buffer some other tensor shares.
    func accumulateGrad(_ incoming: Tensor) {
        if let grad {
            grad.addInPlace(incoming)
        } else {
            let own = incoming.clone()
            grad = own
        }
    }

    /// Clears the accumulated gradient.
    public func zeroGrad() {
        grad = nil
    }
}

extension Tensor {
    /// Activation checkpointing: `body(input)` runs without recording, so none of its intermediate
    /// tensors outlive it; only `input` is kept. The backward pass runs `body` once more on a copy
    /// of `input`, recording, and differentiates that run: the gradients of `input` and of every
    /// parameter `body` reads are those of the plain call (the parameters' arrive in their `grad`
    /// during the outer backward). `replaying`: generators `body` draws from (dropout), restored
    /// to their state at the first run for the second, then put back, so both runs draw the same
    /// numbers and the stream continues as after one run. Memory per checkpointed block: its
    /// input, instead of every activation inside it; time: one more forward of the block.
    public static func checkpoint(_ input: Tensor, replaying generators: [RandomGenerator] = [], _ body: @escaping (Tensor) -> Tensor) -> Tensor {
        guard GradMode.isEnabled else { return body(input) }
        let before = generators.map(\.state)
        let out = GradMode.withoutGrad { body(input) }
        let saved = input.detached()
        return out.recorded("checkpoint", [input]) { gradient in
            let after = generators.map(\.state)
            for (generator, state) in zip(generators, before) { try! generator.restore(state: state) }
            let x = saved.detached()
            x.requiresGrad = input.requiresGrad
            let y = GradMode.withGrad { body(x) }
            for (generator, state) in zip(generators, after) { try! generator.restore(state: state) }
            if y.requiresGrad { y.backward(gradient) }
            return [x.grad]
        }
    }
}
