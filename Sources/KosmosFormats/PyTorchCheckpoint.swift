import Foundation

/// A tensor of a PyTorch checkpoint, made contiguous: little-endian bytes in row-major order.
public struct PyTorchTensor: Sendable, Equatable {
    public var dtype: SafeTensorsDType
    public var shape: [Int]
    public var bytes: [UInt8]
}

/// Reads `torch.save` checkpoints (`pytorch_model.bin`, `.pt`: the zip format of PyTorch ≥ 1.6)
/// without Python and without executing anything: `data.pkl` goes through a restricted unpickler
/// that knows only what a state dict is made of — `collections.OrderedDict`, the storages
/// (`torch.FloatStorage` …), `torch._utils._rebuild_tensor_v2` and `_rebuild_parameter`, and
/// primitive values — and refuses every other global, naming it, before anything is built from it.
/// Nested dicts (a checkpoint whose state dict sits under "model" or "state_dict") are flattened
/// with "." between the keys. The pre-1.6 format (a bare pickle stream) is refused with a message.
public enum PyTorchCheckpoint {
    public struct Error: Swift.Error, CustomStringConvertible, Equatable {
        public let file: String
        public let reason: String
        public var description: String { "\(file): \(reason)" }
    }

    /// Every tensor of the checkpoint by its state-dict name.
    public static func read(_ url: URL) throws -> [String: PyTorchTensor] {
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw Error(file: url.path, reason: "cannot read: \(error.localizedDescription)")
        }
        return try read(data, file: url.path)
    }

    public static func read(_ data: Data, file: String) throws -> [String: PyTorchTensor] {
        func fail(_ reason: String) -> Error { Error(file: file, reason: reason) }
        if data.count >= 2, data[data.startIndex] == 0x80 {
            throw fail("a PyTorch checkpoint in the legacy format (before PyTorch 1.6, a bare pickle stream) is not read; re-save it with torch.save in a current PyTorch")
        }
        let zip = try ZipArchive(data: data, file: file)
        guard let pickle = zip.names.first(where: { $0 == "data.pkl" || $0.hasSuffix("/data.pkl") }) else {
            throw fail("not a PyTorch checkpoint: the zip has no data.pkl")
        }
        let prefix = String(pickle.dropLast("data.pkl".count))
        if let order = zip.names.first(where: { $0 == prefix + "byteorder" }), let bytes = try? zip.contents(order),
           String(decoding: bytes, as: UTF8.self) != "little" {
            throw fail("the tensors are stored big-endian; only little-endian checkpoints are read")
        }
        var unpickler = RestrictedUnpickler(bytes: try zip.contents(pickle), file: file)
        let root = try unpickler.run()
        var out: [String: PyTorchTensor] = [:]
        func collect(_ value: PickleValue, _ name: String) throws {
            switch value {
            case .tensor(let t):
                guard out[name] == nil else { throw fail("two tensors named \(name)") }
                out[name] = try t.materialize(zip: zip, prefix: prefix, file: file, name: name)
            case .dict(let d):
                for (k, v) in d.pairs {
                    guard case .string(let key) = k else { throw fail("a dict key that is not a string under \"\(name)\"") }
                    try collect(v, name.isEmpty ? key : name + "." + key)
                }
            default:
                break  // numbers, strings, None: checkpoint metadata, not weights
            }
        }
        guard case .dict = root else { throw fail("data.pkl holds no dict of tensors") }
        try collect(root, "")
        return out
    }
}

// MARK: - Zip (stored entries, zip64)

struct ZipArchive {
    struct Entry { let offset: Int; let size: Int; let method: Int }
    let data: Data
    let file: String
    private(set) var entries: [String: Entry] = [:]
    private(set) var names: [String] = []

    func fail(_ reason: String) -> PyTorchCheckpoint.Error { .init(file: file, reason: reason) }

    func u16(_ at: Int) throws -> Int {
        guard at >= 0, at + 2 <= data.count else { throw fail("truncated zip (offset \(at))") }
        let b = data.startIndex + at
        return Int(data[b]) | Int(data[b + 1]) << 8
    }

    func u32(_ at: Int) throws -> Int { try u16(at) | (try u16(at + 2)) << 16 }

    func u64(_ at: Int) throws -> Int {
        let v = UInt64(try u32(at)) | UInt64(try u32(at + 4)) << 32
        guard v < UInt64(Int.max) else { throw fail("a zip64 field out of range") }
        return Int(v)
    }

    init(data: Data, file: String) throws {
        self.data = data
        self.file = file
        // The end-of-central-directory record: within the last 64 KiB + 22 bytes.
        var eocd = -1
        var at = data.count - 22
        while at >= max(0, data.count - 22 - 65_535) {
            if try u32(at) == 0x0605_4b50 { eocd = at; break }
            at -= 1
        }
        guard eocd >= 0 else { throw fail("not a zip file (no end-of-central-directory record): not a PyTorch checkpoint of the zip format") }
        var count = try u16(eocd + 10), directory = try u32(eocd + 16)
        if eocd >= 20, try u32(eocd - 20) == 0x0706_4b50 {  // zip64 locator → zip64 record
            let record = try u64(eocd - 20 + 8)
            guard try u32(record) == 0x0606_4b50 else { throw fail("a broken zip64 end-of-central-directory record") }
            count = try u64(record + 32)
            directory = try u64(record + 48)
        }
        var p = directory
        for _ in 0..<count {
            guard try u32(p) == 0x0201_4b50 else { throw fail("a broken central directory entry at offset \(p)") }
            let method = try u16(p + 10)
            var size = try u32(p + 24), usize = try u32(p + 20), local = try u32(p + 42)
            let nameLength = try u16(p + 28), extraLength = try u16(p + 30), commentLength = try u16(p + 32)
            guard p + 46 + nameLength <= data.count else { throw fail("truncated zip central directory") }
            let name = String(decoding: data[(data.startIndex + p + 46)..<(data.startIndex + p + 46 + nameLength)], as: UTF8.self)
            var e = p + 46 + nameLength
            let extraEnd = e + extraLength
            while e + 4 <= extraEnd {  // zip64 extra field: the 0xFFFFFFFF sizes and offset, in order
                let id = try u16(e), length = try u16(e + 2)
                if id == 1 {
                    var q = e + 4
                    if size == 0xFFFF_FFFF { size = try u64(q); q += 8 }
                    if usize == 0xFFFF_FFFF { usize = try u64(q); q += 8 }
                    if local == 0xFFFF_FFFF { local = try u64(q) }
                }
                e += 4 + length
            }
            guard try u32(local) == 0x0403_4b50 else { throw fail("a broken local header for \(name)") }
            let start = local + 30 + (try u16(local + 26)) + (try u16(local + 28))
            guard start + usize <= data.count else { throw fail("\(name) runs past the end of the file (truncated?)") }
            entries[name] = Entry(offset: start, size: usize, method: method)
            names.append(name)
            p += 46 + nameLength + extraLength + commentLength
        }
    }

    func contents(_ name: String) throws -> Data {
        guard let e = entries[name] else { throw fail("no \(name) in the archive") }
        guard e.method == 0 else { throw fail("\(name) is compressed (method \(e.method)); torch.save writes entries uncompressed") }
        return data.subdata(in: (data.startIndex + e.offset)..<(data.startIndex + e.offset + e.size))
    }
}

// MARK: - The restricted unpickler

final class PickleList { var items: [PickleValue] = [] }
final class PickleDict { var pairs: [(PickleValue, PickleValue)] = [] }

struct PickleStorage {
    let dtype: SafeTensorsDType
    let key: String
    let count: Int
}

struct PickleTensor {
    let storage: PickleStorage
    let offset: Int
    let shape: [Int]
    let strides: [Int]

    func materialize(zip: ZipArchive, prefix: String, file: String, name: String) throws -> PyTorchTensor {
        func fail(_ reason: String) -> PyTorchCheckpoint.Error { .init(file: file, reason: "\(name): \(reason)") }
        let size = storage.dtype.byteSize
        let raw = try zip.contents(prefix + "data/" + storage.key)
        guard raw.count >= storage.count * size else {
            throw fail("storage \(storage.key) has \(raw.count) bytes for \(storage.count) elements of \(storage.dtype.rawValue)")
        }
        guard shape.count == strides.count, shape.allSatisfy({ $0 >= 0 }), strides.allSatisfy({ $0 >= 0 }), offset >= 0 else {
            throw fail("shape \(shape) and strides \(strides) do not describe a tensor")
        }
        let count = shape.reduce(1, *)
        if count > 0 {
            let last = offset + Swift.zip(shape, strides).map { ($0 - 1) * $1 }.reduce(0, +)
            guard last < storage.count else { throw fail("shape \(shape), strides \(strides) at offset \(offset) read past its storage of \(storage.count)") }
        }
        var bytes = [UInt8](repeating: 0, count: count * size)
        guard count > 0 else { return PyTorchTensor(dtype: storage.dtype, shape: shape, bytes: bytes) }
        // Row-major strides (a saved parameter, the usual case): one copy of the whole run.
        var contiguous = true, expected = 1
        for d in stride(from: shape.count - 1, through: 0, by: -1) where shape[d] != 1 {
            if strides[d] != expected { contiguous = false }
            expected *= shape[d]
        }
        if contiguous {
            raw.withUnsafeBytes { src in
                bytes.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[(offset * size)..<((offset + count) * size)])) }
            }
            return PyTorchTensor(dtype: storage.dtype, shape: shape, bytes: bytes)
        }
        raw.withUnsafeBytes { (src: UnsafeRawBufferPointer) in
            bytes.withUnsafeMutableBytes { dst in
                var index = [Int](repeating: 0, count: shape.count)
                for i in 0..<count {
                    var element = offset
                    for d in 0..<shape.count { element += index[d] * strides[d] }
                    dst.baseAddress!.advanced(by: i * size).copyMemory(from: src.baseAddress!.advanced(by: element * size), byteCount: size)
                    var d = shape.count - 1
                    while d >= 0 {
                        index[d] += 1
                        if index[d] < shape[d] { break }
                        index[d] = 0
                        d -= 1
                    }
                }
            }
        }
        return PyTorchTensor(dtype: storage.dtype, shape: shape, bytes: bytes)
    }
}

indirect enum PickleValue {
    case none, mark
    case bool(Bool), int(Int), float(Double), string(String), bytes([UInt8])
    case tuple([PickleValue])
    case list(PickleList)
    case dict(PickleDict)
    case global(String)
    case storage(PickleStorage)
    case tensor(PickleTensor)
}

struct RestrictedUnpickler {
    let bytes: [UInt8]
    let file: String
    var at = 0
    var stack: [PickleValue] = []
    var memo: [Int: PickleValue] = [:]

    /// The globals a state dict needs; every other one is refused.
    static let storages: [String: SafeTensorsDType] = [
        "FloatStorage": .f32, "DoubleStorage": .f64, "HalfStorage": .f16, "BFloat16Storage": .bf16, "LongStorage": .i64,
        "IntStorage": .i32, "CharStorage": .i8, "ByteStorage": .u8, "BoolStorage": .bool,
    ]
    static let callables: Set<String> = ["collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter"]

    init(bytes: Data, file: String) {
        self.bytes = [UInt8](bytes)
        self.file = file
    }

    func fail(_ reason: String) -> PyTorchCheckpoint.Error { .init(file: file, reason: "data.pkl: \(reason)") }

    mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n >= 0, at + n <= bytes.count else { throw fail("truncated at byte \(at)") }
        defer { at += n }
        return bytes[at..<(at + n)]
    }

    mutating func le(_ n: Int) throws -> Int {
        var v = 0
        for (i, b) in try take(n).enumerated() { v |= Int(b) << (8 * i) }
        return v
    }

    mutating func line() throws -> String {
        guard let end = bytes[at...].firstIndex(of: 0x0A) else { throw fail("truncated at byte \(at)") }
        defer { at = end + 1 }
        return String(decoding: bytes[at..<end], as: UTF8.self)
    }

    mutating func pop() throws -> PickleValue {
        guard let v = stack.popLast() else { throw fail("stack underflow at byte \(at)") }
        return v
    }

    mutating func popMark() throws -> [PickleValue] {
        guard let m = stack.lastIndex(where: { if case .mark = $0 { return true }; return false }) else { throw fail("no mark at byte \(at)") }
        let items = Array(stack[(m + 1)...])
        stack.removeSubrange(m...)
        return items
    }

    func global(_ module: String, _ name: String) throws -> PickleValue {
        let full = module + "." + name
        if module == "torch", Self.storages[name] != nil { return .global(full) }
        guard Self.callables.contains(full) else {
            throw fail("refused the global \(full): a checkpoint's pickle may only name OrderedDict, torch storages and torch's tensor-rebuild functions (nothing in it was run)")
        }
        return .global(full)
    }

    func int(_ v: PickleValue, _ what: String) throws -> Int {
        if case .int(let i) = v { return i }
        throw fail("\(what) is not an integer")
    }

    func ints(_ v: PickleValue, _ what: String) throws -> [Int] {
        guard case .tuple(let items) = v else { throw fail("\(what) is not a tuple") }
        return try items.map { try int($0, what) }
    }

    func reduce(_ callable: PickleValue, _ args: PickleValue) throws -> PickleValue {
        guard case .global(let name) = callable, case .tuple(let a) = args else { throw fail("REDUCE of something that is not an allowed global") }
        switch name {
        case "collections.OrderedDict":
            guard a.isEmpty else { throw fail("OrderedDict called with arguments") }
            return .dict(PickleDict())
        case "torch._utils._rebuild_tensor_v2":
            guard a.count >= 4, case .storage(let s) = a[0] else { throw fail("_rebuild_tensor_v2 without a storage") }
            return .tensor(PickleTensor(storage: s, offset: try int(a[1], "a storage offset"), shape: try ints(a[2], "a size"), strides: try ints(a[3], "a stride")))
        case "torch._utils._rebuild_parameter":
            guard let first = a.first, case .tensor = first else { throw fail("_rebuild_parameter without a tensor") }
            return first
        default:
            throw fail("\(name) cannot be called")
        }
    }

    mutating func run() throws -> PickleValue {
        while true {
            let op = try take(1)[at - 1]
            switch op {
            case 0x80: _ = try take(1)                                   // PROTO
            case 0x95: _ = try take(8)                                   // FRAME
            case 0x2E: return try pop()                                  // STOP
            case 0x28: stack.append(.mark)                               // MARK
            case 0x7D: stack.append(.dict(PickleDict()))                 // EMPTY_DICT
            case 0x5D: stack.append(.list(PickleList()))                 // EMPTY_LIST
            case 0x29: stack.append(.tuple([]))                          // EMPTY_TUPLE
            case 0x4E: stack.append(.none)                               // NONE
            case 0x88: stack.append(.bool(true))                         // NEWTRUE
            case 0x89: stack.append(.bool(false))                        // NEWFALSE
            case 0x4B: stack.append(.int(try le(1)))                     // BININT1
            case 0x4D: stack.append(.int(try le(2)))                     // BININT2
            case 0x4A: stack.append(.int(Int(Int32(truncatingIfNeeded: try le(4)))))  // BININT
            case 0x8A:                                                   // LONG1
                let n = try le(1)
                guard n <= 8 else { throw fail("an integer of \(n) bytes") }
                var v = 0
                let digits = try take(n)
                for (i, b) in digits.enumerated() { v |= Int(b) << (8 * i) }
                if n > 0 && n < 8 && digits.last! & 0x80 != 0 { v -= 1 << (8 * n) }
                stack.append(.int(v))
            case 0x47:                                                   // BINFLOAT (big-endian)
                var v: UInt64 = 0
                for b in try take(8) { v = v << 8 | UInt64(b) }
                stack.append(.float(Double(bitPattern: v)))
            case 0x58: stack.append(.string(String(decoding: try take(try le(4)), as: UTF8.self)))   // BINUNICODE
            case 0x8C: stack.append(.string(String(decoding: try take(try le(1)), as: UTF8.self)))   // SHORT_BINUNICODE
            case 0x8D: stack.append(.string(String(decoding: try take(try le(8)), as: UTF8.self)))   // BINUNICODE8
            case 0x43: stack.append(.bytes(Array(try take(try le(1)))))  // SHORT_BINBYTES
            case 0x42: stack.append(.bytes(Array(try take(try le(4)))))  // BINBYTES
            case 0x74: stack.append(.tuple(try popMark()))               // TUPLE
            case 0x85: stack.append(.tuple([try pop()]))                 // TUPLE1
            case 0x86: let b = try pop(), a = try pop(); stack.append(.tuple([a, b]))              // TUPLE2
            case 0x87: let c = try pop(), b = try pop(), a = try pop(); stack.append(.tuple([a, b, c]))  // TUPLE3
            case 0x71: memo[try le(1)] = stack.last                      // BINPUT
            case 0x72: memo[try le(4)] = stack.last                      // LONG_BINPUT
            case 0x94: memo[memo.count] = stack.last                     // MEMOIZE
            case 0x68, 0x6A:                                             // BINGET, LONG_BINGET
                let k = try le(op == 0x68 ? 1 : 4)
                guard let v = memo[k] else { throw fail("BINGET of an unknown memo \(k)") }
                stack.append(v)
            case 0x63:                                                   // GLOBAL
                let module = try line(), name = try line()
                stack.append(try global(module, name))
            case 0x93:                                                   // STACK_GLOBAL
                let n = try pop(), m = try pop()
                guard case .string(let module) = m, case .string(let name) = n else { throw fail("STACK_GLOBAL of non-strings") }
                stack.append(try global(module, name))
            case 0x52:                                                   // REDUCE
                let args = try pop(), callable = try pop()
                stack.append(try reduce(callable, args))
            case 0x51:                                                   // BINPERSID
                guard case .tuple(let pid) = try pop(), pid.count == 5, case .string("storage") = pid[0],
                      case .global(let type) = pid[1], case .string(let key) = pid[2], case .int(let count) = pid[4],
                      let dtype = Self.storages[String(type.dropFirst("torch.".count))] else {
                    throw fail("a persistent id that is not a torch storage")
                }
                guard !key.contains("/"), !key.contains("..") else { throw fail("a storage key \"\(key)\" that is not a plain name") }
                stack.append(.storage(PickleStorage(dtype: dtype, key: key, count: count)))
            case 0x73:                                                   // SETITEM
                let v = try pop(), k = try pop()
                guard case .dict(let d) = stack.last else { throw fail("SETITEM on something that is not a dict") }
                d.pairs.append((k, v))
            case 0x75:                                                   // SETITEMS
                let items = try popMark()
                guard case .dict(let d) = stack.last, items.count % 2 == 0 else { throw fail("SETITEMS on something that is not a dict") }
                for i in stride(from: 0, to: items.count, by: 2) { d.pairs.append((items[i], items[i + 1])) }
            case 0x61:                                                   // APPEND
                let v = try pop()
                guard case .list(let l) = stack.last else { throw fail("APPEND on something that is not a list") }
                l.items.append(v)
            case 0x65:                                                   // APPENDS
                let items = try popMark()
                guard case .list(let l) = stack.last else { throw fail("APPENDS on something that is not a list") }
                l.items += items
            case 0x62:                                                   // BUILD: only an empty state (OrderedDict's)
                let state = try pop()
                switch state {
                case .none: break
                case .dict(let d) where d.pairs.isEmpty: break
                case .tuple(let t) where t.allSatisfy({ if case .none = $0 { return true }; if case .dict(let d) = $0 { return d.pairs.isEmpty }; return false }): break
                default: throw fail("BUILD with a state (an object's attributes) is not part of a state dict")
                }
            default:
                throw fail(String(format: "opcode 0x%02x at byte %d is not one a state dict uses", op, at - 1))
            }
        }
    }
}

// MARK: - As weights

/// The tensors of one or more `torch.save` checkpoints (a sharded `pytorch_model.bin.index.json`
/// names several) as a readable set of weights: every command loads them as it loads
/// safetensors. They are held in memory (a pickle checkpoint cannot be memory-mapped tensor by
/// tensor); `kosmos convert --to safetensors` writes a copy that loads mapped.
public final class PyTorchCheckpointWeights: SafeTensorsReadable {
    private let tensors: [String: PyTorchTensor]
    private let file: String
    public let names: [String]

    public init(files: [URL]) throws {
        var all: [String: PyTorchTensor] = [:]
        for url in files {
            for (name, tensor) in try PyTorchCheckpoint.read(url) {
                guard all[name] == nil else { throw PyTorchCheckpoint.Error(file: url.path, reason: "\(name) is in two checkpoint files") }
                all[name] = tensor
            }
        }
        tensors = all
        file = files.map(\.path).joined(separator: ", ")
        names = all.keys.sorted()
    }

    private func lookup(_ name: String) throws -> PyTorchTensor {
        guard let t = tensors[name] else { throw SafeTensorsFile.missingTensorError(file: file, name: name, names: names) }
        return t
    }

    public func entry(_ name: String) -> SafeTensorsEntry? {
        tensors[name].flatMap { SafeTensorsEntry(name: name, dtype: $0.dtype, shape: $0.shape) }
    }

    public func copyFloats(_ name: String, into destination: UnsafeMutableBufferPointer<Float>) throws {
        let t = try lookup(name)
        guard t.dtype.isFloatingPoint else {
            throw SafeTensorsError(file: file, tensor: name, reason: "has dtype \(t.dtype.rawValue), which cannot be read as floats (use int64s or withRawBytes)")
        }
        let count = t.bytes.count / t.dtype.byteSize
        guard destination.count == count else {
            throw SafeTensorsError(file: file, tensor: name, reason: "has \(count) elements (shape \(t.shape)) but the destination holds \(destination.count)")
        }
        guard let target = destination.baseAddress, count > 0 else { return }
        t.bytes.withUnsafeBytes { HalfPrecision.convert($0.baseAddress!, dtype: t.dtype, count: count, into: target) }
    }

    public func floats(_ name: String) throws -> [Float] {
        let t = try lookup(name)
        let count = t.dtype.isFloatingPoint ? t.bytes.count / t.dtype.byteSize : 0
        return try [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            try copyFloats(name, into: buffer)
            initialized = count
        }
    }

    public func int64s(_ name: String) throws -> [Int64] {
        let t = try lookup(name)
        guard !t.dtype.isFloatingPoint else {
            throw SafeTensorsError(file: file, tensor: name, reason: "has dtype \(t.dtype.rawValue), which cannot be read as integers (use floats)")
        }
        return try t.bytes.withUnsafeBytes { raw in
            try SafeTensorsFile.widenIntegers(raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, dtype: t.dtype, count: t.bytes.count / t.dtype.byteSize) {
                SafeTensorsError(file: file, tensor: name, reason: $0)
            }
        }
    }

    public func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try lookup(name).bytes.withUnsafeBytes(body)
    }
}
