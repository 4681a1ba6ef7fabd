import Foundation
import KosmosTensor

/// Why a checkpoint does not fit a module: every problem found, named, in one error.
public struct StateDictError: Error, CustomStringConvertible, Equatable {
    public struct Mismatch: Equatable, Sendable {
        public let name: String
        public let expected: [Int]
        public let found: [Int]
    }

    public let source: String
    public var missing: [String] = []
    public var unexpected: [String] = []
    public var mismatched: [Mismatch] = []
    public var unreadable: [String] = []

    public var isEmpty: Bool { missing.isEmpty && unexpected.isEmpty && mismatched.isEmpty && unreadable.isEmpty }

    public var description: String {
        var lines: [String] = []
        for m in mismatched {
            lines.append("\(source): tensor \(m.name) has shape \(m.found), the model expects \(m.expected)")
        }
        if !missing.isEmpty {
            lines.append("\(source): missing \(missing.count) tensor(s): \(Self.list(missing))")
        }
        if !unexpected.isEmpty {
            lines.append("\(source): \(unexpected.count) unexpected tensor(s): \(Self.list(unexpected))")
        }
        lines += unreadable.map { "\(source): \($0)" }
        return lines.joined(separator: "\n")
    }

    private static func list(_ names: [String]) -> String {
        let shown = names.prefix(10).joined(separator: ", ")
        return names.count > 10 ? shown + ", ... (\(names.count - 10) more)" : shown
    }
}

extension Module {
    /// Fills every parameter and buffer from `source`, where the tensor for `a.b.weight` is stored
    /// under `prefix + "a.b.weight"`. Everything is checked before anything is copied, so on error
    /// the module is unchanged. Floats load in each tensor's dtype (F16/BF16 used in place where
    /// they can be); a Linear weight stored quantized (I8/U8 with its `_scale` and `_min`
    /// tensors, docs/model-format.md) makes that Linear quantized, its levels used in place.
    /// - Parameter strict: also reject tensors under `prefix` that the module does not have.
    /// - Parameter ignoring: names that may be present without being expected (non-persistent
    ///   buffers some writers store, such as position_ids).
    public func load(from source: SafeTensorsReadable, prefix: String = "", strict: Bool = true,
                     sourceName: String = "checkpoint", ignoring: Set<String> = []) throws {
        var problems = StateDictError(source: sourceName)
        let quantized = quantizedLoadPlan(from: source, prefix: prefix, problems: &problems)
        let state = stateDict()
        // Tied tensors (one tensor under several names) need only one of their names in the file:
        // PyTorch's safetensors writers keep a single copy of shared tensors.
        var names: [ObjectIdentifier: [String]] = [:]
        var tensors: [ObjectIdentifier: Tensor] = [:]
        var order: [ObjectIdentifier] = []
        for (name, tensor) in state {
            let id = ObjectIdentifier(tensor)
            if names[id] == nil { order.append(id); tensors[id] = tensor }
            names[id, default: []].append(prefix + name)
        }
        var plan: [(key: String, tensor: Tensor)] = []
        for id in order {
            let keys = names[id]!, tensor = tensors[id]!
            if keys.contains(where: quantized.weights.contains) { continue }
            guard let key = keys.first(where: { source.entry($0) != nil }), let entry = source.entry(key) else {
                problems.missing.append(keys[0])
                continue
            }
            if tensor.storage.isReleased {
                problems.unreadable.append("tensor \(key) is the weight of a quantized Linear; float weights load into a float model")
            } else if entry.shape != tensor.shape {
                problems.mismatched.append(.init(name: key, expected: tensor.shape, found: entry.shape))
            } else if ![.f32, .f16, .bf16].contains(entry.dtype) {
                problems.unreadable.append("tensor \(key) has dtype \(entry.dtype.rawValue), expected a float type")
            } else {
                plan.append((key, tensor))
            }
        }
        if strict {
            let expected = Set(names.values.joined()).union(quantized.consumed)
            problems.unexpected = source.names.filter { $0.hasPrefix(prefix) && !expected.contains($0) && !ignoring.contains($0) }
        }
        guard problems.isEmpty else { throw problems }
        for (key, tensor) in plan {
            try copy(key, from: source, into: tensor)
        }
        for (linear, matrix) in quantized.attach { linear.useQuantized(matrix) }
    }

    /// One tensor's values into `tensor` in its own dtype: float32 as always; a 16-bit tensor uses
    /// the file's bytes in place when the file has its dtype and is mapped (no copy at all; copied
    /// as they are otherwise), else takes the values through float32, rounded once.
    private func copy(_ key: String, from source: SafeTensorsReadable, into tensor: Tensor) throws {
        let stored = source.entry(key)?.dtype
        switch tensor.dtype {
        case .float32:
            try tensor.withUnsafeMutableBufferPointer { try source.copyFloats(key, into: $0) }
        case .bfloat16 where stored == .bf16, .float16 where stored == .f16:
            // The file's pages themselves when it is mapped copy-on-write and the data aligned.
            if let mapped = source.mappedBytes(key), let base = mapped.bytes.baseAddress, Int(bitPattern: base) % 2 == 0,
               mapped.bytes.count == tensor.count * 2 {
                tensor.useBytes(mapped.bytes, owner: mapped.owner)
                return
            }
            try source.withRawBytes(key) { bytes in
                tensor.withUnsafeMutableRawBytes { $0.copyMemory(from: bytes) }
            }
        case .bfloat16, .float16:
            let wide = Tensor.uninitialized(tensor.shape, dtype: .float32)
            try wide.withUnsafeMutableBufferPointer { try source.copyFloats(key, into: $0) }
            tensor.copy(from: wide)
        }
    }

    /// Loads a `.safetensors` file, or a directory holding `model.safetensors` or a sharded
    /// checkpoint (`model.safetensors.index.json`).
    public func load(from url: URL, prefix: String = "", strict: Bool = true) throws {
        var isDirectory: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory)
        let source: SafeTensorsReadable = isDirectory.boolValue
            ? try ShardedSafeTensors(directory: url)
            : try SafeTensorsFile(url: url)
        try load(from: source, prefix: prefix, strict: strict, sourceName: url.lastPathComponent)
    }

    /// Writes every parameter and buffer to a safetensors file (atomically), keyed by state-dict
    /// name, as float32 or converted to F16/BF16.
    public func save(to url: URL, dtype: SafeTensorsDType = .f32, prefix: String = "",
                     metadata: [String: String] = [:]) throws {
        if let (name, _) = quantizedLinears.first {
            // Its float weight holds no values; `kosmos quantize` writes quantized directories.
            throw StateDictError(source: url.lastPathComponent, unreadable: ["\(name)weight is quantized; saving float weights of a quantized model would write zeros"])
        }
        let state = stateDict()
        var writer = SafeTensorsWriter(metadata: metadata)
        // The writer reads the buffers during write(to:); keep the tensors alive until then.
        try withExtendedLifetime(state) {
            for (name, tensor) in state {
                try writer.add(name: prefix + name, tensor: tensor, as: dtype)
            }
            try writer.write(to: url)
        }
    }
}
