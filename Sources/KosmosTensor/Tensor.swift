import CKosmosKernels
import Foundation

/// The element type of a tensor's storage. Compute is float32 (norms, softmax, activations, the
/// loss, every accumulation); bfloat16 and float16 are storage for weights, widened exactly where
/// an op reads them (matrix products, row gathers). Room is left for the quantized formats.
public enum DType: String, CaseIterable, Sendable, CustomStringConvertible {
    case float32, bfloat16, float16

    public var byteCount: Int { self == .float32 ? 4 : 2 }
    public var description: String { rawValue }

    /// The accepted spellings: float32/f32/fp32, bfloat16/bf16, float16/f16/fp16/half.
    public init?(name: String) {
        switch name.lowercased() {
        case "float32", "f32", "fp32", "float": self = .float32
        case "bfloat16", "bf16": self = .bfloat16
        case "float16", "f16", "fp16", "half": self = .float16
        default: return nil
        }
    }
}

/// The buffer behind one or more tensors: contiguous, 64-byte aligned so SIMD loads never straddle
/// cache lines at the start of a row, of one `DType`.
public final class TensorStorage {
    public let raw: UnsafeMutableRawPointer
    public let count: Int
    public let dtype: DType

    /// Keeps memory this storage does not own alive (a file mapping); nil for owned memory.
    private let owner: AnyObject?

    init(count: Int, dtype: DType = .float32) {
        self.count = count
        self.dtype = dtype
        owner = nil
        // Allocate at least one element so empty tensors still own a valid pointer.
        raw = LargeBuffers.allocate(Swift.max(count, 1) * dtype.byteCount)
        TensorStorage.bind(raw, count: count, dtype: dtype)
    }

    private static func bind(_ raw: UnsafeMutableRawPointer, count: Int, dtype: DType) {
        switch dtype {
        case .float32: raw.bindMemory(to: Float.self, capacity: Swift.max(count, 1))
        case .bfloat16, .float16: raw.bindMemory(to: UInt16.self, capacity: Swift.max(count, 1))
        }
    }

    /// The elements as float32. Only float32 storage has them: a 16-bit tensor reaching an op that
    /// does not read its dtype is a programmer error, reported with what to do.
    @inline(__always) public var pointer: UnsafeMutablePointer<Float> {
        precondition(dtype == .float32, "this operation reads float32, the tensor is \(dtype): convert it with converted(to: .float32)")
        return raw.assumingMemoryBound(to: Float.self)
    }

    /// The elements of bfloat16 or float16 storage as their bit patterns.
    @inline(__always) public var halfPointer: UnsafeMutablePointer<UInt16> {
        precondition(dtype != .float32, "halfPointer of float32 storage")
        return raw.assumingMemoryBound(to: UInt16.self)
    }

    /// Storage over `count` elements of `dtype` at `memory`, which `owner` keeps valid.
    init(borrowing memory: UnsafeMutableRawPointer, count: Int, dtype: DType, owner: AnyObject) {
        self.count = count
        self.dtype = dtype
        self.owner = owner
        raw = memory
        TensorStorage.bind(raw, count: count, dtype: dtype)
    }

    /// Whether the elements live in memory another object owns (a checkpoint's mapping).
    public var isBorrowed: Bool { owner != nil }
    /// Whether the elements are the read-only zeros of `Tensor.releaseStorage`.
    public var isReleased: Bool { owner is ZeroPages }

    deinit {
        if owner == nil { LargeBuffers.release(raw, Swift.max(count, 1) * dtype.byteCount) }
    }
}

/// Tensor memory. Small buffers come from malloc (64-byte aligned). Buffers of a megabyte or more
/// are mapped from the system and, when freed, kept for the next request of the same size:
/// activations and gradients of the same shapes recur every layer and every step, and a fresh
/// mapping costs a page fault and a zeroed page per 4 KiB (a quarter of a training step's time
/// with a 128 MB cache). The cache keeps the most recently freed buffers up to `cacheLimit`
/// bytes and unmaps the oldest beyond it, so sizes that stop recurring (a model's float32
/// initialisation temporaries) are given back. The limit is `KOSMOS_BUFFER_CACHE_MB` (MiB) when
/// set, else 1/16 of physical memory, at most 1 GiB.
enum LargeBuffers {
    static let threshold = 1 << 20
    nonisolated(unsafe) static var cacheLimit: Int = {
        if let text = ProcessInfo.processInfo.environment["KOSMOS_BUFFER_CACHE_MB"], let mb = Int(text), mb >= 0 {
            return mb << 20
        }
        return Swift.min(1 << 30, Int(ProcessInfo.processInfo.physicalMemory / 16))
    }()
    private static let lock = NSLock()
    /// Free buffers, oldest first.
    nonisolated(unsafe) private static var free: [(size: Int, memory: UnsafeMutableRawPointer)] = []
    nonisolated(unsafe) private static var cached = 0
    private static let page = Int(sysconf(Int32(_SC_PAGESIZE)))

    static func allocate(_ bytes: Int) -> UnsafeMutableRawPointer {
        if bytes < threshold {
            var memory: UnsafeMutableRawPointer?
            if posix_memalign(&memory, 64, Swift.max(bytes, 4)) != 0 || memory == nil {
                // Out of memory is not recoverable for a tensor engine; say how much was asked for.
                fatalError("KosmosTensor: could not allocate \(bytes) bytes")
            }
            return memory!
        }
        let size = rounded(bytes)
        lock.lock()
        // The newest free buffer of this size (the cache holds at most a few hundred).
        if let index = free.lastIndex(where: { $0.size == size }) {
            let reused = free.remove(at: index).memory
            cached -= size
            lock.unlock()
            return reused
        }
        lock.unlock()
        guard let mapped = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), mapped != MAP_FAILED else {
            fatalError("KosmosTensor: could not map \(bytes) bytes")
        }
        return mapped
    }

    static func release(_ memory: UnsafeMutableRawPointer, _ bytes: Int) {
        if bytes < threshold {
            Foundation.free(memory)
            return
        }
        let size = rounded(bytes)
        var evicted: [(size: Int, memory: UnsafeMutableRawPointer)] = []
        lock.lock()
        if reuseSuspended > 0 {
            lock.unlock()
            munmap(memory, size)
            return
        }
        free.append((size, memory))
        cached += size
        var drop = 0
        while cached > cacheLimit && drop < free.count {
            cached -= free[drop].size
            drop += 1
        }
        if drop > 0 {
            evicted = Array(free[..<drop])
            free.removeFirst(drop)
        }
        lock.unlock()
        for buffer in evicted { munmap(buffer.memory, buffer.size) }
    }

    /// Bytes held by freed buffers waiting for reuse.
    static var cachedBytes: Int {
        lock.lock()
        defer { lock.unlock() }
        return cached
    }

    /// Scopes in which freed buffers are unmapped at once (`TensorMemory.withoutBufferReuse`).
    nonisolated(unsafe) private static var reuseSuspended = 0

    static func suspendReuse(_ delta: Int) {
        lock.lock()
        reuseSuspended += delta
        lock.unlock()
    }

    /// Unmaps every cached buffer.
    static func releaseCached() {
        lock.lock()
        let all = free
        free.removeAll()
        cached = 0
        lock.unlock()
        for buffer in all { munmap(buffer.memory, buffer.size) }
    }

    private static func rounded(_ bytes: Int) -> Int { (bytes + page - 1) / page * page }
}

/// Tensor memory as a program sees it: the cache of freed large buffers (see `LargeBuffers`).
public enum TensorMemory {
    /// Bytes of freed buffers kept for reuse.
    public static var cachedBytes: Int { LargeBuffers.cachedBytes }

    /// Gives every cached buffer back to the system.
    public static func releaseCachedBuffers() { LargeBuffers.releaseCached() }

    /// Runs `body` with the cache emptied and freed large buffers given back at once instead of
    /// cached, then empties it again: for building a model whose weights are converted as they are
    /// made (each float32 temporary, or what earlier work left cached, would otherwise stay
    /// resident beside the 16-bit weights).
    public static func withoutBufferReuse<R>(_ body: () throws -> R) rethrows -> R {
        LargeBuffers.releaseCached()
        LargeBuffers.suspendReuse(1)
        defer {
            LargeBuffers.suspendReuse(-1)
            LargeBuffers.releaseCached()
        }
        return try body()
    }
}

/// A tensor: a shape, a contiguous row-major buffer of one `DType` (float32 unless converted) and,
/// while autograd records, the function that produced it. Like `torch.Tensor` it is a reference: ops return new tensors and
/// only the explicit in-place APIs (`copy(from:)`, `fill(_:)`, `withUnsafeMutableBufferPointer`)
/// change a buffer.
public final class Tensor: CustomStringConvertible {
    public let shape: [Int]
    public let count: Int
    /// Replaced only by `convert(to:)` (weights changing precision in place, ties kept).
    public private(set) var storage: TensorStorage

    /// Set on leaves (parameters) to make autograd accumulate their gradient in `grad`.
    /// Results of ops have it set when some input required grad and grad mode was on.
    public var requiresGrad: Bool
    /// Accumulated gradient of a leaf after `backward()`.
    public var grad: Tensor?
    /// The recorded operation that produced this tensor (nil for leaves and in no-grad mode).
    var gradFn: GradFunction?

    init(shape: [Int], storage: TensorStorage) {
        self.shape = shape
        self.count = shapeCount(shape)
        self.storage = storage
        self.requiresGrad = false
        assert(storage.count >= count)
    }

    /// A tensor with uninitialised contents, for kernels that write every element.
    static func uninitialized(_ shape: [Int]) -> Tensor {
        Tensor(shape: shape, storage: TensorStorage(count: shapeCount(shape)))
    }

    /// A tensor from row-major values. `scalars.count` must equal the product of `shape`.
    public convenience init(shape: [Int], scalars: [Float], requiresGrad: Bool = false) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in shape \(shape)")
        precondition(scalars.count == shapeCount(shape),
                     "shape \(shape) needs \(shapeCount(shape)) values, got \(scalars.count)")
        self.init(shape: shape, storage: TensorStorage(count: scalars.count))
        scalars.withUnsafeBufferPointer { source in
            if let base = source.baseAddress { pointer.update(from: base, count: count) }
        }
        self.requiresGrad = requiresGrad
    }

    /// A rank-0 tensor.
    public convenience init(_ value: Float) {
        self.init(shape: [], scalars: [value])
    }

    public static func zeros(_ shape: [Int], requiresGrad: Bool = false) -> Tensor {
        full(shape, 0, requiresGrad: requiresGrad)
    }

    public static func ones(_ shape: [Int], requiresGrad: Bool = false) -> Tensor {
        full(shape, 1, requiresGrad: requiresGrad)
    }

    public static func full(_ shape: [Int], _ value: Float, requiresGrad: Bool = false) -> Tensor {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in shape \(shape)")
        let t = uninitialized(shape)
        t.pointer.initialize(repeating: value, count: t.count)
        t.requiresGrad = requiresGrad
        return t
    }

    /// 0, 1, ..., n-1 as floats.
    public static func arange(_ n: Int) -> Tensor {
        let t = uninitialized([n])
        for i in 0..<n { t.pointer[i] = Float(i) }
        return t
    }

    // MARK: Access

    @inline(__always) var pointer: UnsafeMutablePointer<Float> { storage.pointer }

    public var rank: Int { shape.count }
    public var dtype: DType { storage.dtype }

    /// The values in row-major order (widened to float32 when stored in 16 bits).
    public var scalars: [Float] {
        if dtype == .float32 { return Array(UnsafeBufferPointer(start: pointer, count: count)) }
        return storageConverted(to: .float32).scalars
    }

    /// The single value of a one-element tensor.
    public func item() -> Float {
        precondition(count == 1, "item() needs a one-element tensor, shape is \(shape)")
        return scalars[0]
    }

    /// The values stored as `dtype` (rounded to nearest even when narrowing); the same tensor when
    /// it already has that dtype. Differentiable: gradients are float32 whatever the dtypes, so
    /// the gradient passes back unchanged (a float32 master weight cast to bfloat16 for a
    /// mixed-precision step gets its float32 gradient).
    public func converted(to dtype: DType) -> Tensor {
        let out = storageConverted(to: dtype)
        if out !== self && Tensor.needsGrad(self) {
            out.recorded("convert", [self]) { g in [g] }
        }
        return out
    }

    /// `converted(to:)` without recording: for kernels that convert operands internally.
    func storageConverted(to dtype: DType) -> Tensor {
        if dtype == self.dtype { return self }
        let storage = TensorStorage(count: count, dtype: dtype)
        convertElements(from: self.storage, to: storage, count: count)
        return withExtendedLifetime(self) { Tensor(shape: shape, storage: storage) }
    }

    /// In place: the storage becomes `dtype`, so every module holding this tensor (a weight tied
    /// between an embedding and the output projection) sees the new precision. For weights of a
    /// model that runs without gradients; a tensor autograd has saved must not change.
    public func convert(to dtype: DType) {
        if dtype == self.dtype { return }
        precondition(gradFn == nil && grad == nil, "convert(to:) of a tensor autograd is using")
        let storage = TensorStorage(count: count, dtype: dtype)
        convertElements(from: self.storage, to: storage, count: count)
        self.storage = storage
    }

    /// In place: the elements become zeros in a read-only mapping that takes no memory (a weight
    /// whose values now live elsewhere, such as a quantized Linear's). Writing to it faults.
    public func releaseStorage() {
        precondition(gradFn == nil && grad == nil, "releaseStorage of a tensor autograd is using")
        let mapping = ZeroPages(bytes: Swift.max(count, 1) * dtype.byteCount)
        storage = TensorStorage(borrowing: mapping.base, count: count, dtype: dtype, owner: mapping)
    }

    /// In place: the elements become `bytes` (this tensor's dtype, little-endian, at least
    /// 2-byte aligned), used where they are and kept valid by `owner`, a checkpoint's
    /// copy-on-write mapping: a 16-bit weight then needs no memory of its own, and every module
    /// holding the tensor sees it. For weights of a model that runs without gradients.
    public func useBytes(_ bytes: UnsafeMutableRawBufferPointer, owner: AnyObject) {
        precondition(bytes.count == count * dtype.byteCount, "useBytes: \(bytes.count) bytes for \(count) \(dtype) elements")
        precondition(gradFn == nil && grad == nil, "useBytes of a tensor autograd is using")
        guard let base = bytes.baseAddress, count > 0 else { return }
        precondition(Int(bitPattern: base) % dtype.byteCount == 0, "useBytes: misaligned \(dtype) data")
        storage = TensorStorage(borrowing: base, count: count, dtype: dtype, owner: owner)
    }

    /// A tensor of uninitialised 16-bit (or float32) storage, for loaders that fill it.
    public static func uninitialized(_ shape: [Int], dtype: DType) -> Tensor {
        Tensor(shape: shape, storage: TensorStorage(count: shapeCount(shape), dtype: dtype))
    }

    /// The storage's bytes (little-endian, as a safetensors file holds them), for loaders and writers.
    public func withUnsafeMutableRawBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try withExtendedLifetime(storage) {
            try body(UnsafeMutableRawBufferPointer(start: storage.raw, count: count * dtype.byteCount))
        }
    }

    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try withExtendedLifetime(storage) {
            try body(UnsafeBufferPointer(start: storage.pointer, count: count))
        }
    }

    /// Explicit in-place access, for optimizers, caches and loaders. Never use it on a tensor that
    /// autograd has saved for a backward pass that is still to run.
    public func withUnsafeMutableBufferPointer<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        try withExtendedLifetime(storage) {
            try body(UnsafeMutableBufferPointer(start: storage.pointer, count: count))
        }
    }

    /// In place: overwrite the values with those of `source` (same element count), converting
    /// between dtypes.
    public func copy(from source: Tensor) {
        precondition(source.count == count, "copy(from:) of \(source.shape) into \(shape)")
        withExtendedLifetime(source) { convertElements(from: source.storage, to: storage, count: count) }
    }

    /// In place: multiply every element by `factor` (16-bit storage widened, scaled in float32 and
    /// rounded back a block at a time, without a float32 copy of the tensor).
    public func scaleInPlace(by factor: Float) {
        updateInFloat32Blocks(reading: true) { block in
            for i in block.indices { block[i] *= factor }
        }
    }

    /// Runs `update` over the elements in order as float32, in blocks of 16,384 (of even length, so
    /// normal pairs never straddle one) for 16-bit storage, rounding each block back; float32
    /// storage is one block, in place. `reading`: the blocks start with the elements' values
    /// (else their contents are unspecified, for `update`s that write every element).
    func updateInFloat32Blocks(reading: Bool, _ update: (UnsafeMutableBufferPointer<Float>) -> Void) {
        if dtype == .float32 {
            withUnsafeMutableBufferPointer(update)
            return
        }
        let size = 16_384
        let wide = UnsafeMutableBufferPointer<Float>.allocate(capacity: size)
        defer { wide.deallocate() }
        let half = storage.halfPointer, bf16 = dtype == .bfloat16
        var start = 0
        while start < count {
            let n = Swift.min(size, count - start)
            if reading { bf16 ? kk_f32_from_bf16(half + start, wide.baseAddress!, n) : kk_f32_from_f16(half + start, wide.baseAddress!, n) }
            update(UnsafeMutableBufferPointer(rebasing: wide[0..<n]))
            bf16 ? kk_bf16_from_f32(wide.baseAddress!, half + start, n) : kk_f16_from_f32(wide.baseAddress!, half + start, n)
            start += n
        }
    }

    /// In place: row `index` of a [rows, columns] tensor becomes zero (any dtype: zero is all bits
    /// clear); nothing when the index is outside.
    public func zeroRow(_ index: Int) {
        precondition(rank == 2, "zeroRow of a \(shape) tensor")
        guard index >= 0 && index < shape[0] else { return }
        let width = shape[1] * dtype.byteCount
        (storage.raw + index * width).initializeMemory(as: UInt8.self, repeating: 0, count: width)
    }

    /// In place: set every element to `value`.
    public func fill(_ value: Float) {
        if dtype != .float32 {
            copy(from: Tensor.full(shape, value))
            return
        }
        pointer.update(repeating: value, count: count)
    }

    /// A tensor sharing this one's values, cut off from autograd.
    public func detached() -> Tensor {
        Tensor(shape: shape, storage: storage)
    }

    /// A deep copy of the values (same dtype), cut off from autograd.
    public func clone() -> Tensor {
        let t = Tensor.uninitialized(shape, dtype: dtype)
        withExtendedLifetime(self) { t.storage.raw.copyMemory(from: storage.raw, byteCount: count * dtype.byteCount) }
        return t
    }

    public var isLeaf: Bool { gradFn == nil }

    public var description: String {
        let shown = scalars.prefix(8).map { String(format: "%.6g", $0) }.joined(separator: ", ")
        let more = count > 8 ? ", ..." : ""
        let type = dtype == .float32 ? "" : ", \(dtype)"
        return "Tensor(shape: \(shape)\(type), [\(shown)\(more)]\(requiresGrad ? ", requiresGrad" : ""))"
    }
}

/// Copies `count` elements between storages of any dtypes (exact when widening, nearest even when
/// narrowing).
func convertElements(from source: TensorStorage, to destination: TensorStorage, count: Int) {
    if count == 0 { return }
    switch (source.dtype, destination.dtype) {
    case let (a, b) where a == b:
        destination.raw.copyMemory(from: source.raw, byteCount: count * a.byteCount)
    case (.float32, .bfloat16): kk_bf16_from_f32(source.pointer, destination.halfPointer, count)
    case (.float32, .float16): kk_f16_from_f32(source.pointer, destination.halfPointer, count)
    case (.bfloat16, .float32): kk_f32_from_bf16(source.halfPointer, destination.pointer, count)
    case (.float16, .float32): kk_f32_from_f16(source.halfPointer, destination.pointer, count)
    default:
        // Between the two 16-bit formats: through float32.
        let wide = TensorStorage(count: count)
        convertElements(from: source, to: wide, count: count)
        convertElements(from: wide, to: destination, count: count)
    }
}

/// Product of the dimensions (1 for a scalar).
@inline(__always) func shapeCount(_ shape: [Int]) -> Int {
    var n = 1
    for d in shape { n *= d }
    return n
}

/// Row-major strides of a contiguous tensor.
func contiguousStrides(_ shape: [Int]) -> [Int] {
    var strides = [Int](repeating: 1, count: shape.count)
    var s = 1
    for i in stride(from: shape.count - 1, through: 0, by: -1) {
        strides[i] = s
        s *= shape[i]
    }
    return strides
}

/// NumPy broadcasting of two shapes, or nil when they are incompatible.
public func broadcastShapes(_ a: [Int], _ b: [Int]) -> [Int]? {
    let rank = Swift.max(a.count, b.count)
    var out = [Int](repeating: 1, count: rank)
    for i in 0..<rank {
        let da = i < rank - a.count ? 1 : a[i - (rank - a.count)]
        let db = i < rank - b.count ? 1 : b[i - (rank - b.count)]
        if da == db || db == 1 { out[i] = da } else if da == 1 { out[i] = db } else { return nil }
    }
    return out
}

/// Normalises a possibly negative axis against `rank`.
@inline(__always) func normalizeAxis(_ axis: Int, rank: Int) -> Int {
    let a = axis < 0 ? axis + rank : axis
    precondition(a >= 0 && a < Swift.max(rank, 1), "axis \(axis) out of range for rank \(rank)")
    return a
}

/// A read-only anonymous mapping: reads give zeros, no page is ever resident for it.
final class ZeroPages {
    let base: UnsafeMutableRawPointer
    private let size: Int

    init(bytes: Int) {
        size = bytes
        guard let mapped = mmap(nil, bytes, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), mapped != MAP_FAILED else {
            fatalError("KosmosTensor: could not map \(bytes) bytes")
        }
        base = mapped
    }

    deinit { munmap(base, size) }
}
