import Foundation

// The bridge between safetensors files and tensors (float32 compute; F16/BF16 converted).

extension SafeTensorsReadable {
    /// The named tensor as a float32 tensor (F32, F16 or BF16 in the file).
    public func tensor(_ name: String) throws -> Tensor {
        guard let entry = entry(name) else {
            throw SafeTensorsError(file: "\(Self.self)", tensor: name, reason: "no tensor of that name")
        }
        let t = Tensor.uninitialized(entry.shape)
        try t.withUnsafeMutableBufferPointer { try copyFloats(name, into: $0) }
        return t
    }
}

extension SafeTensorsWriter {
    /// Adds a tensor's values, stored as F32, F16 or BF16. As with the buffer form, the tensor is
    /// read when `write(to:)` runs: keep it unchanged until then (the writer keeps it alive: a
    /// temporary such as `Tensor(shape:scalars:)` made in the call was freed before the write, a
    /// use-after-free AddressSanitizer found in `encode-video`).
    /// A 16-bit tensor's values are copied here, converted to `dtype` (exact when it is the tensor's own).
    public mutating func add(name: String, tensor: Tensor, as dtype: SafeTensorsDType = .f32) throws {
        if tensor.dtype != .float32, let stored = DType(safeTensors: dtype) {
            // Little-endian bytes of the stored dtype (a copy: the tensor's own storage may change).
            let bytes = tensor.storageConverted(to: stored).withUnsafeMutableRawBytes { [UInt8]($0) }
            try add(name: name, dtype: dtype, shape: tensor.shape, bytes: bytes)
            return
        }
        try tensor.withUnsafeBufferPointer { try add(name: name, shape: tensor.shape, floats: $0, as: dtype, owner: tensor) }
    }
}

extension DType {
    /// The safetensors dtype that stores this one.
    public var safeTensorsDType: SafeTensorsDType {
        switch self {
        case .float32: return .f32
        case .bfloat16: return .bf16
        case .float16: return .f16
        }
    }

    /// The dtype of a floating-point safetensors dtype (nil for F64 and the integer types).
    public init?(safeTensors dtype: SafeTensorsDType) {
        switch dtype {
        case .f32: self = .float32
        case .bf16: self = .bfloat16
        case .f16: self = .float16
        default: return nil
        }
    }
}
