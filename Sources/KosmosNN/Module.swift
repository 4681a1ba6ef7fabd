import KosmosTensor

/// A piece of a network with named parameters, buffers and sub-modules, like `torch.nn.Module`.
///
/// Subclasses create their tensors and children, call `super.init()`, then register them under the
/// names the reference implementation uses, so `namedParameters()` yields exactly the keys of the
/// PyTorch `state_dict` (e.g. `encoder.layers.0.mlp.fc1.weight`) and checkpoints load by name.
open class Module {
    public private(set) var ownParameters: [(name: String, tensor: Tensor)] = []
    public private(set) var ownBuffers: [(name: String, tensor: Tensor)] = []
    public private(set) var children: [(name: String, module: Module)] = []
    /// Training mode (dropout active). `eval()` turns it off for the whole tree.
    public private(set) var isTraining = true

    public init() {}

    /// Registers a trainable tensor (it starts requiring grad).
    @discardableResult
    public func registerParameter(_ name: String, _ tensor: Tensor) -> Tensor {
        precondition(!name.contains(".") && !name.isEmpty, "parameter name '\(name)' must be a non-empty single path component")
        precondition(!ownNames.contains(name), "'\(name)' registered twice")
        tensor.requiresGrad = true
        ownParameters.append((name, tensor))
        return tensor
    }

    /// Registers a non-trainable tensor that is still part of the state dict (e.g. xPos's scale).
    @discardableResult
    public func registerBuffer(_ name: String, _ tensor: Tensor) -> Tensor {
        precondition(!name.contains(".") && !name.isEmpty, "buffer name '\(name)' must be a non-empty single path component")
        precondition(!ownNames.contains(name), "'\(name)' registered twice")
        ownBuffers.append((name, tensor))
        return tensor
    }

    /// Registers a child module under `name`.
    @discardableResult
    public func registerModule<M: Module>(_ name: String, _ module: M) -> M {
        precondition(!name.contains(".") && !name.isEmpty, "module name '\(name)' must be a non-empty single path component")
        precondition(!ownNames.contains(name), "'\(name)' registered twice")
        children.append((name, module))
        return module
    }

    private var ownNames: Set<String> {
        Set(ownParameters.map(\.name) + ownBuffers.map(\.name) + children.map(\.name))
    }

    /// Every parameter with its dotted path, in registration order (own first, then children). A
    /// tensor registered under several names (tied weights) appears once, under its first name,
    /// as in PyTorch's named_parameters().
    public func namedParameters(prefix: String = "") -> [(name: String, tensor: Tensor)] {
        var seen = Set<ObjectIdentifier>()
        return allParameters(prefix: prefix).filter { seen.insert(ObjectIdentifier($0.tensor)).inserted }
    }

    private func allParameters(prefix: String) -> [(name: String, tensor: Tensor)] {
        var result = ownParameters.map { (prefix + $0.name, $0.tensor) }
        for child in children {
            result += child.module.allParameters(prefix: prefix + child.name + ".")
        }
        return result
    }

    /// Every buffer with its dotted path.
    public func namedBuffers(prefix: String = "") -> [(name: String, tensor: Tensor)] {
        var result = ownBuffers.map { (prefix + $0.name, $0.tensor) }
        for child in children {
            result += child.module.namedBuffers(prefix: prefix + child.name + ".")
        }
        return result
    }

    /// Parameters and buffers: everything a checkpoint holds, keyed as PyTorch's state_dict (a tied
    /// tensor under each of its names).
    public func stateDict(prefix: String = "") -> [(name: String, tensor: Tensor)] {
        var result = ownParameters.map { (prefix + $0.name, $0.tensor) } + ownBuffers.map { (prefix + $0.name, $0.tensor) }
        for child in children {
            result += child.module.stateDict(prefix: prefix + child.name + ".")
        }
        return result
    }

    public func parameters() -> [Tensor] {
        namedParameters().map(\.tensor)
    }

    /// Number of scalar parameters.
    public var parameterCount: Int {
        parameters().reduce(0) { $0 + $1.count }
    }

    /// Sets training mode on this module and all descendants.
    public func train(_ on: Bool = true) {
        isTraining = on
        for child in children { child.module.train(on) }
    }

    /// Evaluation mode (dropout off) for the whole tree.
    public func eval() { train(false) }

    /// Drops every parameter's accumulated gradient.
    public func zeroGrad() {
        for p in parameters() { p.zeroGrad() }
    }

    /// Freezes or unfreezes every parameter of this subtree.
    public func setRequiresGrad(_ on: Bool) {
        for p in parameters() { p.requiresGrad = on }
    }
}

/// An ordered list of modules named "0", "1", ... as torch.nn.ModuleList.
public final class ModuleList<Element: Module>: Module {
    public private(set) var items: [Element] = []

    public init(_ items: [Element] = []) {
        super.init()
        for item in items { append(item) }
    }

    public func append(_ item: Element) {
        registerModule(String(items.count), item)
        items.append(item)
    }

    public var count: Int { items.count }
    public subscript(index: Int) -> Element { items[index] }
}
