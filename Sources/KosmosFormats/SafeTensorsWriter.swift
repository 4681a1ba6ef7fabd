import Foundation

/// Collects tensors and writes them as one safetensors file.
///
/// Float tensors are referenced, not copied, until `write(to:)` (a model's weights must not be
/// duplicated in memory to be saved); produced tensors are made only then, one at a time. The file is written through `AtomicFile`, streamed in chunks,
/// with tensors ordered by name and the header padded with spaces to a multiple of 8 bytes so the
/// data section starts 8-byte aligned.
public struct SafeTensorsWriter {
    public var metadata: [String: String]

    private var tensors: [String: Pending] = [:]

    /// Errors raised before there is a file name use this in place of one.
    private static let unsavedFile = "SafeTensorsWriter"
    /// Elements converted per chunk when writing (256 Ki elements = at most 1 MiB of staging).
    private static let chunkElements = 1 << 18

    private enum Payload {
        case bytes([UInt8])
        case floats(UnsafeBufferPointer<Float>)
        case int64s([Int64])
        case produced((_ write: (UnsafeRawBufferPointer) throws -> Void) throws -> Void)
    }

    private struct Pending {
        let dtype: SafeTensorsDType
        let shape: [Int]
        let byteCount: Int
        let payload: Payload
        /// What owns a `.floats` buffer, kept alive until the writer is gone.
        var owner: AnyObject? = nil
    }

    public init(metadata: [String: String] = [:]) {
        self.metadata = metadata
    }

    /// Names added so far, sorted (the order they will have in the file).
    public var names: [String] { tensors.keys.sorted() }

    /// Raw little-endian bytes of any dtype (length must equal shape product × byteSize, else
    /// throw). Duplicate names throw.
    public mutating func add(name: String, dtype: SafeTensorsDType, shape: [Int], bytes: [UInt8]) throws {
        let count = try checkNew(name: name, dtype: dtype, shape: shape)
        guard bytes.count == count * dtype.byteSize else {
            throw SafeTensorsError(file: Self.unsavedFile, tensor: name,
                reason: "shape \(shape) with dtype \(dtype.rawValue) needs \(count * dtype.byteSize) bytes, got \(bytes.count)")
        }
        if dtype == .bool, let bad = bytes.firstIndex(where: { $0 > 1 }) {
            // Readers (ours and PyTorch) take BOOL bytes to be 0 or 1.
            throw SafeTensorsError(file: Self.unsavedFile, tensor: name,
                reason: "BOOL byte \(bad) is \(bytes[bad]); only 0 and 1 are valid")
        }
        tensors[name] = Pending(dtype: dtype, shape: shape, byteCount: bytes.count, payload: .bytes(bytes))
    }

    /// Floats stored as F32, F16 or BF16 (converted when written, rounding to nearest even). The
    /// buffer is read during `write(to:)`, not copied here: the caller keeps it unchanged until
    /// then, and alive — or passes its `owner` (an object whose lifetime is the buffer's), which
    /// the writer then keeps.
    public mutating func add(name: String, shape: [Int], floats: UnsafeBufferPointer<Float>,
                             as dtype: SafeTensorsDType = .f32, owner: AnyObject? = nil) throws {
        guard dtype.isFloatingPoint else {
            throw SafeTensorsError(file: Self.unsavedFile, tensor: name,
                reason: "floats can be stored as F32, F16 or BF16, not \(dtype.rawValue)")
        }
        let count = try checkNew(name: name, dtype: dtype, shape: shape)
        guard floats.count == count else {
            throw SafeTensorsError(file: Self.unsavedFile, tensor: name,
                reason: "shape \(shape) has \(count) elements but \(floats.count) floats were given")
        }
        tensors[name] = Pending(dtype: dtype, shape: shape, byteCount: count * dtype.byteSize, payload: .floats(floats), owner: owner)
    }

    /// A tensor whose bytes are made only when the file is written: `producer` is called once,
    /// in file order, and must hand exactly shape product × byteSize little-endian bytes to the
    /// `write` it is given (in as many pieces as it likes; a different total throws). A converter
    /// streams a checkpoint this way with one tensor in memory at a time.
    public mutating func add(name: String, dtype: SafeTensorsDType, shape: [Int],
                             producer: @escaping (_ write: (UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws {
        let count = try checkNew(name: name, dtype: dtype, shape: shape)
        guard dtype != .bool else {
            // add(bytes:) checks BOOL bytes; a producer's cannot be checked before they are written.
            throw SafeTensorsError(file: Self.unsavedFile, tensor: name, reason: "BOOL tensors are added as bytes, not produced")
        }
        tensors[name] = Pending(dtype: dtype, shape: shape, byteCount: count * dtype.byteSize, payload: .produced(producer))
    }

    /// Int64 values stored as I64.
    public mutating func add(name: String, shape: [Int], int64s: [Int64]) throws {
        let count = try checkNew(name: name, dtype: .i64, shape: shape)
        guard int64s.count == count else {
            throw SafeTensorsError(file: Self.unsavedFile, tensor: name,
                reason: "shape \(shape) has \(count) elements but \(int64s.count) values were given")
        }
        tensors[name] = Pending(dtype: .i64, shape: shape, byteCount: count * 8, payload: .int64s(int64s))
    }

    /// Validates a new tensor's name and shape; returns its element count.
    private func checkNew(name: String, dtype: SafeTensorsDType, shape: [Int]) throws -> Int {
        func failure(_ reason: String) -> SafeTensorsError {
            SafeTensorsError(file: Self.unsavedFile, tensor: name, reason: reason)
        }
        guard name != "__metadata__" else {
            throw failure("the name __metadata__ is reserved by the format")
        }
        guard tensors[name] == nil else {
            throw failure("a tensor with this name was already added")
        }
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw failure("shape \(shape) has a negative dimension")
        }
        guard let entry = SafeTensorsEntry(name: name, dtype: dtype, shape: shape) else {
            throw failure("shape \(shape) overflows a 64-bit byte count")
        }
        return entry.elementCount
    }

    /// Writes atomically (see `AtomicFile`): temp file in the same directory, data streamed in
    /// chunks, fsync, rename over the destination, fsync of the directory. I/O failures throw
    /// `AtomicFileError`; an invalid writer state throws `SafeTensorsError`.
    public func write(to url: URL) throws {
        let ordered = tensors.sorted { $0.key < $1.key }
        var header = "{"
        var first = true
        if !metadata.isEmpty {
            header += "\"__metadata__\":{"
            header += metadata.sorted { $0.key < $1.key }
                .map { "\(Self.jsonString($0.key)):\(Self.jsonString($0.value))" }
                .joined(separator: ",")
            header += "}"
            first = false
        }
        var offset = 0
        for (name, tensor) in ordered {
            // The sum of byte counts cannot overflow in practice (each was checked, and they all
            // live in memory), but a wrong file must never be written, so check anyway.
            let (end, overflow) = offset.addingReportingOverflow(tensor.byteCount)
            guard !overflow else {
                throw SafeTensorsError(file: url.path, tensor: name, reason: "total data size overflows")
            }
            if !first { header += "," }
            first = false
            header += "\(Self.jsonString(name)):{\"dtype\":\"\(tensor.dtype.rawValue)\","
                + "\"shape\":[\(tensor.shape.map(String.init).joined(separator: ","))],"
                + "\"data_offsets\":[\(offset),\(end)]}"
            offset = end
        }
        header += "}"
        var headerBytes = Array(header.utf8)
        // Space padding to a multiple of 8 keeps the data section aligned for readers that map it.
        headerBytes.append(contentsOf: [UInt8](repeating: 0x20, count: (8 - headerBytes.count % 8) % 8))
        guard headerBytes.count <= SafeTensorsFile.maximumHeaderLength else {
            throw SafeTensorsError(file: url.path, reason: "header would be \(headerBytes.count) bytes, over the "
                + "\(SafeTensorsFile.maximumHeaderLength)-byte limit readers accept")
        }

        try AtomicFile.write(to: url) { file in
            var length = UInt64(headerBytes.count).littleEndian
            try withUnsafeBytes(of: &length) { try file.write($0) }
            try file.write(headerBytes)
            for (name, tensor) in ordered {
                try Self.writePayload(tensor, to: file, name: name, url: url)
            }
        }
    }

    private static func writePayload(_ tensor: Pending, to file: AtomicFileWriter, name: String, url: URL) throws {
        switch tensor.payload {
        case .produced(let producer):
            var written = 0
            try producer { bytes in
                guard written + bytes.count <= tensor.byteCount else {
                    throw SafeTensorsError(file: url.path, tensor: name,
                        reason: "the producer wrote more than the \(tensor.byteCount) bytes its shape needs")
                }
                try file.write(bytes)
                written += bytes.count
            }
            guard written == tensor.byteCount else {
                throw SafeTensorsError(file: url.path, tensor: name,
                    reason: "the producer wrote \(written) of the \(tensor.byteCount) bytes its shape needs")
            }
        case .bytes(let bytes):
            try file.write(bytes)
        case .int64s(let values):
            #if _endian(little)
            try values.withUnsafeBytes { try file.write($0) }
            #else
            try streamConverted(count: values.count, elementSize: 8, to: file) { staging, range in
                for (slot, index) in range.enumerated() {
                    staging.storeBytes(of: values[index].littleEndian, toByteOffset: slot * 8, as: Int64.self)
                }
            }
            #endif
        case .floats(let floats):
            switch tensor.dtype {
            case .f32:
                #if _endian(little)
                // Already the file's byte order: hand the caller's buffer to the writer directly.
                try file.write(UnsafeRawBufferPointer(floats))
                #else
                try streamConverted(count: floats.count, elementSize: 4, to: file) { staging, range in
                    for (slot, index) in range.enumerated() {
                        staging.storeBytes(of: floats[index].bitPattern.littleEndian, toByteOffset: slot * 4, as: UInt32.self)
                    }
                }
                #endif
            case .f16:
                try streamConverted(count: floats.count, elementSize: 2, to: file) { staging, range in
                    for (slot, index) in range.enumerated() {
                        staging.storeBytes(of: HalfPrecision.f16Bits(from: floats[index]).littleEndian,
                                           toByteOffset: slot * 2, as: UInt16.self)
                    }
                }
            case .bf16:
                try streamConverted(count: floats.count, elementSize: 2, to: file) { staging, range in
                    for (slot, index) in range.enumerated() {
                        staging.storeBytes(of: HalfPrecision.bf16Bits(from: floats[index]).littleEndian,
                                           toByteOffset: slot * 2, as: UInt16.self)
                    }
                }
            case .f64:
                try streamConverted(count: floats.count, elementSize: 8, to: file) { staging, range in
                    for (slot, index) in range.enumerated() {
                        staging.storeBytes(of: Double(floats[index]).bitPattern.littleEndian, toByteOffset: slot * 8, as: UInt64.self)
                    }
                }
            case .i64, .i32, .u8, .i8, .bool:
                break  // rejected in add
            }
        }
    }

    /// Converts and writes `count` elements in chunks through one small staging buffer, so a large
    /// tensor is never materialised twice.
    private static func streamConverted(
        count: Int, elementSize: Int, to file: AtomicFileWriter,
        _ fill: (UnsafeMutableRawPointer, Range<Int>) -> Void
    ) throws {
        let staging = UnsafeMutableRawPointer.allocate(byteCount: chunkElements * elementSize, alignment: 16)
        defer { staging.deallocate() }
        var start = 0
        while start < count {
            let end = min(count, start + chunkElements)
            fill(staging, start..<end)
            try file.write(UnsafeRawBufferPointer(start: staging, count: (end - start) * elementSize))
            start = end
        }
    }

    /// A JSON string literal: quotes, backslashes and control characters escaped, everything else
    /// (including non-ASCII) written as UTF-8.
    static func jsonString(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
        }
        return result + "\""
    }
}
