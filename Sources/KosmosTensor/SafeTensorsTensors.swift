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
    /// read when `write(to:)` runs: keep it alive and unchanged until then.
    /// A 16-bit tensor's values are copied here, converted to `dtype` (exact when it is the tensor's own).
    public mutating func add(name: String, tensor: Tensor, as dtype: SafeTensorsDType = .f32) throws {
        if tensor.dtype != .float32, let stored: DType = [.f32: .float32, .bf16: .bfloat16, .f16: .float16][dtype] {
            // Little-endian bytes of the stored dtype (a copy: the tensor's own storage may change).
            let bytes = tensor.storageConverted(to: stored).withUnsafeMutableRawBytes { [UInt8]($0) }
            try add(name: name, dtype: dtype, shape: tensor.shape, bytes: bytes)
            return
        }
        try tensor.withUnsafeBufferPointer { try add(name: name, shape: tensor.shape, floats: $0, as: dtype) }
    }
}
