import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Reading safetensors files (https://github.com/huggingface/safetensors, "Format" section):
//
//     [8 bytes: little-endian u64 N] [N bytes: UTF-8 JSON header] [data section]
//
// The header maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]} with offsets
// relative to the data section, plus an optional "__metadata__" string map. Every file is treated
// as hostile: a checkpoint downloaded from the internet can be truncated, an LFS pointer, an HTML
// error page or deliberately malformed, and none of that may crash the process or make it allocate
// memory it does not need. So every number in the header is checked before it is used.

// MARK: - Data types

/// The element types Kosmos reads and writes. Compute is float32, so F16/BF16/F64 are converted on load.
public enum SafeTensorsDType: String, Sendable, CaseIterable {
    case f32 = "F32"
    case f64 = "F64"
    case f16 = "F16"
    case bf16 = "BF16"
    case i64 = "I64"
    case i32 = "I32"
    case u8 = "U8"
    case i8 = "I8"
    case bool = "BOOL"

    /// Bytes per element in the file.
    public var byteSize: Int {
        switch self {
        case .f32, .i32: return 4
        case .f16, .bf16: return 2
        case .i64, .f64: return 8
        case .u8, .i8, .bool: return 1
        }
    }

    /// Whether `copyFloats`/`floats` can read this dtype.
    public var isFloatingPoint: Bool {
        switch self {
        case .f32, .f16, .bf16, .f64: return true
        case .i64, .i32, .u8, .i8, .bool: return false
        }
    }

    /// Dtypes the safetensors format defines that Kosmos does not read. Used only to tell the user
    /// "valid but unsupported" apart from "not a dtype at all", which point at different fixes.
    static let otherFormatDTypes: Set<String> = [
        "I16", "U16", "U32", "U64", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3",
        "F6_E3M2", "F4", "C64",
    ]
}

// MARK: - Errors

/// Any problem with a safetensors file or with a request against one. `file` is the path as given,
/// `tensor` the tensor concerned when there is one.
public struct SafeTensorsError: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let tensor: String?
    public let reason: String

    public init(file: String, tensor: String? = nil, reason: String) {
        self.file = file
        self.tensor = tensor
        self.reason = reason
    }

    public var description: String {
        if let tensor = tensor {
            return "\(file): tensor \(tensor): \(reason)"
        }
        return "\(file): \(reason)"
    }
}

extension SafeTensorsError: LocalizedError {
    // Foundation prints `localizedDescription` in many places (CLI error output included); without
    // this it would say "The operation could not be completed".
    public var errorDescription: String? { description }
}

// MARK: - Entries and the reading protocol

/// Name, dtype and shape of one stored tensor.
public struct SafeTensorsEntry: Sendable, Equatable {
    public let name: String
    public let dtype: SafeTensorsDType
    public let shape: [Int]
    // Stored rather than recomputed: the product was overflow-checked once when the entry was made,
    // so reading it can never trap.
    private let count: Int

    /// Number of elements (product of `shape`; 1 for a scalar).
    public var elementCount: Int { count }

    /// Byte length of the data (`elementCount * dtype.byteSize`).
    public var byteCount: Int { count * dtype.byteSize }

    /// Returns nil when a dimension is negative or the element or byte count overflows `Int`.
    init?(name: String, dtype: SafeTensorsDType, shape: [Int]) {
        guard let count = SafeTensorsEntry.checkedElementCount(shape),
              !count.multipliedReportingOverflow(by: dtype.byteSize).overflow
        else { return nil }
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.count = count
    }

    /// Product of `shape`, or nil if a dimension is negative or the product overflows.
    static func checkedElementCount(_ shape: [Int]) -> Int? {
        var product = 1
        for dimension in shape {
            guard dimension >= 0 else { return nil }
            let (next, overflow) = product.multipliedReportingOverflow(by: dimension)
            guard !overflow else { return nil }
            product = next
        }
        return product
    }
}

/// Anything tensors can be read from by name: a single file, or a sharded checkpoint.
public protocol SafeTensorsReadable: AnyObject {
    /// All tensor names, sorted.
    var names: [String] { get }
    func entry(_ name: String) -> SafeTensorsEntry?
    /// Converts F32/F16/BF16 data of `name` to Float into `destination` (count must equal
    /// elementCount, else throw). Integer/bool dtypes throw an error naming the tensor and dtype.
    func copyFloats(_ name: String, into destination: UnsafeMutableBufferPointer<Float>) throws
    func floats(_ name: String) throws -> [Float]
    /// I64, I32, U8, BOOL widened to Int64 (F* throws).
    func int64s(_ name: String) throws -> [Int64]
    /// The tensor's bytes exactly as stored (little-endian), valid only inside `body`.
    func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R
    /// The tensor's bytes in a copy-on-write mapping of the file, valid while `owner` lives (writes
    /// go to private pages, never to the file); nil when the file is not mapped so.
    func mappedBytes(_ name: String) -> (bytes: UnsafeMutableRawBufferPointer, owner: AnyObject)?
    /// A hint that `name` will not be read again soon: its mapped pages leave this process's
    /// resident set (contents kept: clean pages are read from the file again if touched, written
    /// ones are paged out, not lost). A converter reading a checkpoint once calls it after each
    /// tensor so its RSS stays near one tensor. No effect where the file is not mapped or the
    /// system has no such advice.
    func releaseResidentPages(_ name: String)
}

extension SafeTensorsReadable {
    public func mappedBytes(_ name: String) -> (bytes: UnsafeMutableRawBufferPointer, owner: AnyObject)? { nil }
    public func releaseResidentPages(_ name: String) {}
}

// MARK: - Reader

/// A memory-mapped, fully validated safetensors file. Immutable after `init`, so it may be read
/// from several threads at once.
public final class SafeTensorsFile: SafeTensorsReadable, @unchecked Sendable {
    /// Larger headers are rejected before anything is parsed; the reference implementation uses the
    /// same limit, and the biggest real headers are a few MB.
    public static let maximumHeaderLength = 100_000_000

    public let url: URL
    /// The header's `__metadata__` map (empty when absent).
    public let metadata: [String: String]
    public let names: [String]
    /// Total file size in bytes.
    public let fileSize: Int

    private let storage: SafeTensorsStorage
    private let tensors: [String: StoredTensor]
    private let displayName: String

    /// An entry plus where its bytes start, relative to the start of the file.
    private struct StoredTensor {
        let entry: SafeTensorsEntry
        let fileOffset: Int
    }

    public init(url: URL) throws {
        self.url = url
        let path = url.path
        displayName = path
        storage = try SafeTensorsStorage(path: path)
        fileSize = storage.count
        let header = try SafeTensorsHeaderParser.validate(file: storage.bytes, path: path)
        metadata = header.metadata
        var tensors = [String: StoredTensor](minimumCapacity: header.tensors.count)
        for tensor in header.tensors {
            tensors[tensor.entry.name] = StoredTensor(
                entry: tensor.entry, fileOffset: header.dataStart + tensor.begin)
        }
        self.tensors = tensors
        names = tensors.keys.sorted()
    }

    public func entry(_ name: String) -> SafeTensorsEntry? {
        tensors[name]?.entry
    }

    public func copyFloats(_ name: String, into destination: UnsafeMutableBufferPointer<Float>) throws {
        let stored = try lookup(name)
        let entry = stored.entry
        guard entry.dtype.isFloatingPoint else {
            throw error(name, "has dtype \(entry.dtype.rawValue), which cannot be read as floats "
                + "(use int64s or withRawBytes)")
        }
        guard destination.count == entry.elementCount else {
            throw error(name, "has \(entry.elementCount) elements (shape \(entry.shape)) but the "
                + "destination holds \(destination.count)")
        }
        guard let target = destination.baseAddress, entry.elementCount > 0 else { return }
        HalfPrecision.convert(storage.base + stored.fileOffset, dtype: entry.dtype, count: entry.elementCount, into: target)
    }

    public func floats(_ name: String) throws -> [Float] {
        let entry = try lookup(name).entry
        guard entry.dtype.isFloatingPoint else {
            throw error(name, "has dtype \(entry.dtype.rawValue), which cannot be read as floats "
                + "(use int64s or withRawBytes)")
        }
        // The count was checked against the file size when the file was opened, so this allocation
        // is at most twice the tensor's bytes on disk (F16/BF16 widen to four bytes).
        return try [Float](unsafeUninitializedCapacity: entry.elementCount) { buffer, initialized in
            try copyFloats(name, into: buffer)
            initialized = entry.elementCount
        }
    }

    public func int64s(_ name: String) throws -> [Int64] {
        let stored = try lookup(name)
        let entry = stored.entry
        guard !entry.dtype.isFloatingPoint else {
            throw error(name, "has dtype \(entry.dtype.rawValue), which cannot be read as integers "
                + "(use floats)")
        }
        return try Self.widenIntegers(storage.base + stored.fileOffset, dtype: entry.dtype, count: entry.elementCount) {
            error(name, $0)
        }
    }

    /// I64, I32, U8, I8 and BOOL elements at `source` widened to Int64 (BOOL bytes must be 0 or 1).
    static func widenIntegers(_ source: UnsafeRawPointer, dtype: SafeTensorsDType, count: Int,
                              error: (String) -> Swift.Error) throws -> [Int64] {
        var result = [Int64]()
        result.reserveCapacity(count)
        switch dtype {
        case .i64:
            for index in 0..<count {
                result.append(Int64(littleEndian: source.loadUnaligned(fromByteOffset: index * 8, as: Int64.self)))
            }
        case .i32:
            for index in 0..<count {
                result.append(Int64(Int32(littleEndian: source.loadUnaligned(fromByteOffset: index * 4, as: Int32.self))))
            }
        case .u8:
            for index in 0..<count {
                result.append(Int64(source.load(fromByteOffset: index, as: UInt8.self)))
            }
        case .i8:
            for index in 0..<count {
                result.append(Int64(source.load(fromByteOffset: index, as: Int8.self)))
            }
        case .bool:
            for index in 0..<count {
                let byte = source.load(fromByteOffset: index, as: UInt8.self)
                // PyTorch writes bools as 0/1; anything else means the bytes are not what the
                // header claims, and silently mapping it to true would hide that.
                guard byte <= 1 else {
                    throw error("BOOL element \(index) has byte value \(byte); only 0 and 1 are valid")
                }
                result.append(Int64(byte))
            }
        case .f32, .f16, .bf16, .f64:
            break  // rejected by the callers
        }
        return result
    }

    public func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let stored = try lookup(name)
        return try body(UnsafeRawBufferPointer(start: storage.base + stored.fileOffset, count: stored.entry.byteCount))
    }

    public func mappedBytes(_ name: String) -> (bytes: UnsafeMutableRawBufferPointer, owner: AnyObject)? {
        guard storage.isWritableMapping, let stored = tensors[name] else { return nil }
        return (UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(mutating: storage.base + stored.fileOffset),
                                              count: stored.entry.byteCount), storage)
    }

    public func releaseResidentPages(_ name: String) {
        guard let stored = tensors[name] else { return }
        storage.releaseResidentPages(offset: stored.fileOffset, count: stored.entry.byteCount)
    }

    private func lookup(_ name: String) throws -> StoredTensor {
        if let stored = tensors[name] { return stored }
        throw SafeTensorsFile.missingTensorError(file: displayName, name: name, names: names)
    }

    private func error(_ tensor: String, _ reason: String) -> SafeTensorsError {
        SafeTensorsError(file: displayName, tensor: tensor, reason: reason)
    }

    /// The error for an unknown name, with a hint when the name differs from a stored one only by a
    /// leading module prefix ("model." and the like), the usual cause of such a mismatch.
    static func missingTensorError(file: String, name: String, names: [String]) -> SafeTensorsError {
        var reason = "no such tensor (the file has \(names.count) tensor\(names.count == 1 ? "" : "s"))"
        let candidates = names.filter { $0.hasSuffix("." + name) || name.hasSuffix("." + $0) }
        if candidates.count == 1 {
            reason += "; did you mean \(candidates[0])?"
        }
        return SafeTensorsError(file: file, tensor: name, reason: reason)
    }
}

// MARK: - File storage

/// The file's bytes: memory-mapped when possible, otherwise read into memory. Owning the mapping in
/// its own object means it is released exactly once, also when `SafeTensorsFile.init` throws after
/// mapping.
final class SafeTensorsStorage {
    let base: UnsafeRawPointer
    let count: Int
    private let isMapped: Bool
    /// Mapped PROT_READ | PROT_WRITE, MAP_PRIVATE: tensors may use the bytes in place.
    let isWritableMapping: Bool

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    init(path: String) throws {
        func failure(_ reason: String) -> SafeTensorsError {
            SafeTensorsError(file: path, reason: reason)
        }
        // O_NONBLOCK only matters for a FIFO passed by mistake: without it, open would wait forever
        // for a writer. Regular files ignore it.
        let descriptor = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard descriptor >= 0 else {
            throw failure("cannot open: \(SafeTensorsStorage.errnoText())")
        }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            throw failure("cannot stat: \(SafeTensorsStorage.errnoText())")
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            throw failure((status.st_mode & S_IFMT) == S_IFDIR
                ? "is a directory, not a safetensors file (use ShardedSafeTensors for a checkpoint directory)"
                : "is not a regular file")
        }
        let size = Int(status.st_size)
        guard size >= 8 else {
            // Read what there is so a tiny text file (an HTML stub, an empty download) gets its hint.
            var prefix = [UInt8](repeating: 0, count: 8)
            let got = prefix.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            prefix.removeLast(8 - max(0, got))
            var reason = "file is \(size) bytes, shorter than the 8-byte header length"
            if size == 0 {
                reason += " (empty file: an interrupted download?)"
            } else if let hint = prefix.withUnsafeBytes({ SafeTensorsHeaderParser.contentHint($0) }) {
                reason += "; it \(hint)"
            }
            throw failure(reason)
        }
        count = size
        // MAP_PRIVATE + PROT_READ: the kernel pages weights in on demand and shares them with the
        // page cache, so opening a multi-GB checkpoint costs no copy. (If another process truncates
        // the file while it is mapped, touching the lost pages raises SIGBUS; that cannot be
        // prevented from user space, only avoided by not rewriting weights in place — which our
        // writer never does, it renames a new file over the old one.)
        // Writable copy-on-write where the system allows it (a strict overcommit policy may not):
        // a model's 16-bit weights then use the file's pages in place, and a write (a weight
        // changed after loading) copies the page privately instead of faulting.
        var mapped = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, descriptor, 0)
        var writable = true
        if mapped == nil || mapped == MAP_FAILED {
            mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0)
            writable = false
        }
        if let mapped = mapped, mapped != MAP_FAILED {
            base = UnsafeRawPointer(mapped)
            isMapped = true
            isWritableMapping = writable
            return
        }
        // Some file systems (and some sandboxes) refuse mmap; reading is slower but equivalent.
        // malloc rather than `allocate`, because a failed allocation must be an error, not a trap.
        guard let buffer = malloc(size) else {
            throw failure("cannot map the file (\(SafeTensorsStorage.errnoText())) nor allocate \(size) bytes to read it")
        }
        var done = 0
        while done < size {
            let got = pread(descriptor, buffer + done, min(size - done, 1 << 30), off_t(done))
            if got < 0 && errno == EINTR { continue }
            guard got > 0 else {
                let reason = got == 0
                    ? "file shrank from \(size) to \(done) bytes while being read"
                    : "read failed: \(SafeTensorsStorage.errnoText())"
                free(buffer)
                throw failure(reason)
            }
            done += got
        }
        base = UnsafeRawPointer(buffer)
        isMapped = false
        isWritableMapping = false
    }

    /// madvise(MADV_PAGEOUT) over the whole pages inside [offset, offset + count) (Linux 5.4 and
    /// later; elsewhere, and for a file read into memory, nothing). Pages that a neighbouring
    /// tensor shares are left alone.
    func releaseResidentPages(offset: Int, count: Int) {
        #if os(Linux)
        guard isMapped else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (Int(bitPattern: base) + offset + page - 1) / page * page
        let end = (Int(bitPattern: base) + offset + count) / page * page
        guard end > start, let address = UnsafeMutableRawPointer(bitPattern: start) else { return }
        _ = madvise(address, end - start, 21)  // MADV_PAGEOUT; an older kernel answers EINVAL
        #endif
    }

    deinit {
        if isMapped {
            munmap(UnsafeMutableRawPointer(mutating: base), count)
        } else {
            free(UnsafeMutableRawPointer(mutating: base))
        }
    }

    static func errnoText() -> String {
        String(cString: strerror(errno))
    }
}

// MARK: - Header validation

/// Validates a whole file image (length prefix, header, data layout) and returns the tensors.
enum SafeTensorsHeaderParser {
    struct Tensor {
        let entry: SafeTensorsEntry
        let begin: Int
        let end: Int
    }

    struct Header {
        let metadata: [String: String]
        let tensors: [Tensor]
        /// Byte offset of the data section in the file (8 + N).
        let dataStart: Int
    }

    static func validate(file bytes: UnsafeRawBufferPointer, path: String) throws -> Header {
        func failure(_ reason: String, tensor: String? = nil) -> SafeTensorsError {
            SafeTensorsError(file: path, tensor: tensor, reason: reason)
        }
        let size = bytes.count
        guard size >= 8 else {
            throw failure("file is \(size) bytes, shorter than the 8-byte header length")
        }
        var declared: UInt64 = 0
        for index in 0..<8 {
            declared |= UInt64(bytes[index]) << (8 * UInt64(index))
        }
        // Checked as UInt64 before any conversion to Int, so 2^63 and up cannot trap.
        guard declared <= UInt64(SafeTensorsFile.maximumHeaderLength) else {
            if let hint = contentHint(bytes) {
                throw failure("not a safetensors file: it \(hint)")
            }
            throw failure("header length \(declared) exceeds the limit of "
                + "\(SafeTensorsFile.maximumHeaderLength) bytes: the file is corrupt or not a safetensors file")
        }
        let headerLength = Int(declared)
        guard headerLength <= size - 8 else {
            if let hint = contentHint(bytes) {
                throw failure("not a safetensors file: it \(hint)")
            }
            throw failure("header length \(headerLength) runs past the end of the file, which has only "
                + "\(size - 8) bytes after the length field: the file is truncated (incomplete download?) "
                + "or not a safetensors file")
        }
        guard headerLength >= 2 else {
            throw failure("header length \(headerLength) is too small to hold a JSON object")
        }
        let header = UnsafeRawBufferPointer(rebasing: bytes[8..<(8 + headerLength)])
        if let bad = firstInvalidUTF8(header) {
            throw failure("header is not valid UTF-8 (bad byte 0x\(String(header[bad], radix: 16)) at "
                + "header offset \(bad)); the file is corrupt")
        }
        let parsed = try parseHeaderJSON(header, path: path)

        // Layout: data spans must tile the data section exactly. Sorting by (begin, end) puts an
        // empty tensor before a non-empty one starting at the same offset, so both are accepted.
        let dataStart = 8 + headerLength
        let dataLength = size - dataStart
        let ordered = parsed.tensors.sorted {
            ($0.begin, $0.end, $0.entry.name) < ($1.begin, $1.end, $1.entry.name)
        }
        var expected = 0
        var previous: String?
        for tensor in ordered {
            if tensor.begin > expected {
                let after = previous.map { "after tensor \($0)" } ?? "at the start of the data section"
                throw failure("data_offsets [\(tensor.begin), \(tensor.end)] leave a gap: bytes "
                    + "\(expected)..<\(tensor.begin) \(after) belong to no tensor", tensor: tensor.entry.name)
            }
            if tensor.begin < expected {
                throw failure("data_offsets [\(tensor.begin), \(tensor.end)] overlap tensor "
                    + "\(previous ?? "?"), which ends at \(expected)", tensor: tensor.entry.name)
            }
            expected = tensor.end
            previous = tensor.entry.name
        }
        if expected > dataLength {
            throw failure("the header describes \(expected) bytes of tensor data but the file has only "
                + "\(dataLength): the file is truncated (incomplete download?)")
        }
        if expected < dataLength {
            let extra = dataLength - expected
            throw failure("\(extra) trailing byte\(extra == 1 ? "" : "s") after the last tensor's data "
                + "(the header describes \(expected) bytes of data, the file has \(dataLength))")
        }
        return Header(metadata: parsed.metadata, tensors: parsed.tensors, dataStart: dataStart)
    }

    /// A description of what a non-safetensors file looks like, for the common wrong files: a Git LFS
    /// pointer (repository cloned without `git lfs`), an HTML/XML error page saved by a download tool,
    /// a JSON file (index or config passed by mistake), or a PyTorch pickle/zip checkpoint.
    static func contentHint(_ bytes: UnsafeRawBufferPointer) -> String? {
        let prefix = Array(bytes.prefix(64))
        func starts(with text: String) -> Bool { prefix.starts(with: Array(text.utf8)) }
        if starts(with: "version https://git-lfs") {
            return "looks like a Git LFS pointer, not the weights; run git lfs pull (or download the real file)"
        }
        let trimmed = prefix.drop { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D || $0 == 0xEF || $0 == 0xBB || $0 == 0xBF }
        if trimmed.first == UInt8(ascii: "<") {
            return "looks like an HTML or XML page (an error or login page saved in place of the weights?); "
                + "download the file again"
        }
        if trimmed.first == UInt8(ascii: "{") {
            return "looks like a JSON file (an index or config?); open sharded checkpoints with ShardedSafeTensors"
        }
        if starts(with: "PK\u{03}\u{04}") {
            return "looks like a zip archive (a PyTorch .bin/.pt checkpoint?)"
        }
        if prefix.count >= 2 && prefix[0] == 0x80 && (2...5).contains(prefix[1]) {
            return "looks like a Python pickle (a PyTorch .bin/.pt checkpoint?)"
        }
        if prefix.count >= 2 && prefix[0] == 0x1F && prefix[1] == 0x8B {
            return "looks like a gzip archive; decompress it first"
        }
        return nil
    }

    /// Offset of the first byte that breaks UTF-8 (RFC 3629: no overlong forms, no surrogates,
    /// nothing above U+10FFFF), or nil when the bytes are valid.
    static func firstInvalidUTF8(_ bytes: UnsafeRawBufferPointer) -> Int? {
        let count = bytes.count
        var index = 0
        while index < count {
            let lead = bytes[index]
            if lead < 0x80 {
                index += 1
                continue
            }
            var following = 0
            var low: UInt8 = 0x80
            var high: UInt8 = 0xBF
            switch lead {
            case 0xC2...0xDF: following = 1
            case 0xE0: following = 2; low = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: following = 2
            case 0xED: following = 2; high = 0x9F
            case 0xF0: following = 3; low = 0x90
            case 0xF1...0xF3: following = 3
            case 0xF4: following = 3; high = 0x8F
            default: return index
            }
            guard count - index - 1 >= following else { return index }
            let second = bytes[index + 1]
            guard second >= low && second <= high else { return index }
            var position = 2
            while position <= following {
                guard bytes[index + position] & 0xC0 == 0x80 else { return index }
                position += 1
            }
            index += following + 1
        }
        return nil
    }

    private struct ParsedJSON {
        var metadata: [String: String] = [:]
        var tensors: [Tensor] = []
    }

    /// Parses the header against the schema directly (no generic JSON tree), so the memory used is a
    /// small multiple of the header size and every schema error can name its tensor.
    private static func parseHeaderJSON(_ header: UnsafeRawBufferPointer, path: String) throws -> ParsedJSON {
        let scanner = SafeTensorsJSONScanner(header)
        var result = ParsedJSON()
        var seen = Set<String>()
        var sawMetadata = false
        var current: String?
        func failure(_ reason: String) -> SafeTensorsError {
            SafeTensorsError(file: path, tensor: current, reason: reason)
        }
        do {
            scanner.skipWhitespace()
            let kind = try scanner.peekKind()
            guard kind == .object else {
                throw failure("header JSON must be an object, found \(kind.description)")
            }
            try scanner.readObject { key in
                if key == "__metadata__" {
                    guard !sawMetadata else { throw failure("__metadata__ appears twice in the header") }
                    sawMetadata = true
                    result.metadata = try readMetadata(scanner, failure: failure)
                    return
                }
                current = key
                // Swift compares strings by canonical equivalence, so names differing only in
                // Unicode normalization count as duplicates too: lookups could not tell them apart.
                guard seen.insert(key).inserted else {
                    throw failure("duplicate tensor name in the header")
                }
                result.tensors.append(try readTensor(scanner, name: key, failure: failure))
                current = nil
            }
            scanner.skipWhitespace()
            guard scanner.isAtEnd else {
                throw SafeTensorsJSONScanner.SyntaxError(
                    offset: scanner.offset, message: "unexpected content after the header's JSON object")
            }
        } catch let syntax as SafeTensorsJSONScanner.SyntaxError {
            throw failure("header is not valid JSON: \(syntax.message) at header offset \(syntax.offset) "
                + "(near \(scanner.excerpt(around: syntax.offset))); the file is corrupt")
        }
        return result
    }

    private static func readMetadata(
        _ scanner: SafeTensorsJSONScanner, failure: (String) -> SafeTensorsError
    ) throws -> [String: String] {
        let kind = try scanner.peekKind()
        guard kind == .object else {
            throw failure("__metadata__ must be an object of strings, found \(kind.description)")
        }
        var metadata = [String: String]()
        try scanner.readObject { key in
            let valueKind = try scanner.peekKind()
            guard valueKind == .string else {
                throw failure("__metadata__ value for key \"\(key)\" must be a string, found \(valueKind.description)")
            }
            let value = try scanner.readString()
            guard metadata.updateValue(value, forKey: key) == nil else {
                throw failure("__metadata__ has the key \"\(key)\" twice")
            }
        }
        return metadata
    }

    private static func readTensor(
        _ scanner: SafeTensorsJSONScanner, name: String, failure: (String) -> SafeTensorsError
    ) throws -> Tensor {
        let kind = try scanner.peekKind()
        guard kind == .object else {
            throw failure("header entry must be an object with dtype, shape and data_offsets, found \(kind.description)")
        }
        var dtypeText: String?
        var shape: [Int]?
        var offsets: [Int]?
        try scanner.readObject { key in
            switch key {
            case "dtype":
                guard dtypeText == nil else { throw failure("dtype appears twice") }
                let valueKind = try scanner.peekKind()
                guard valueKind == .string else { throw failure("dtype must be a string, found \(valueKind.description)") }
                dtypeText = try scanner.readString()
            case "shape":
                guard shape == nil else { throw failure("shape appears twice") }
                shape = try readIntegers(scanner, field: "shape", failure: failure)
            case "data_offsets":
                guard offsets == nil else { throw failure("data_offsets appears twice") }
                offsets = try readIntegers(scanner, field: "data_offsets", failure: failure)
            default:
                throw failure("unexpected key \"\(key)\" in header entry (expected dtype, shape, data_offsets)")
            }
        }
        guard let dtypeName = dtypeText else { throw failure("header entry has no dtype") }
        guard let shape = shape else { throw failure("header entry has no shape") }
        guard let offsets = offsets else { throw failure("header entry has no data_offsets") }
        guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
            let supported = SafeTensorsDType.allCases.map(\.rawValue).joined(separator: ", ")
            if SafeTensorsDType.otherFormatDTypes.contains(dtypeName) {
                throw failure("dtype \(dtypeName) is not supported (supported: \(supported)); convert the "
                    + "checkpoint to one of those")
            }
            throw failure("unknown dtype \"\(dtypeName)\" (supported: \(supported))")
        }
        guard offsets.count == 2 else {
            throw failure("data_offsets must have exactly 2 integers [begin, end], found \(offsets.count)")
        }
        let begin = offsets[0]
        let end = offsets[1]
        guard begin <= end else {
            throw failure("data_offsets [\(begin), \(end)] end before they begin")
        }
        guard let entry = SafeTensorsEntry(name: name, dtype: dtype, shape: shape) else {
            throw failure("shape \(shape) overflows: its element count times \(dtype.byteSize) bytes "
                + "does not fit in a 64-bit integer")
        }
        guard entry.byteCount == end - begin else {
            throw failure("shape \(shape) with dtype \(dtype.rawValue) needs \(entry.byteCount) bytes but "
                + "data_offsets [\(begin), \(end)] span \(end - begin)")
        }
        return Tensor(entry: entry, begin: begin, end: end)
    }

    /// Reads an array of non-negative integers (shape dimensions or offsets).
    private static func readIntegers(
        _ scanner: SafeTensorsJSONScanner, field: String, failure: (String) -> SafeTensorsError
    ) throws -> [Int] {
        let kind = try scanner.peekKind()
        guard kind == .array else {
            throw failure("\(field) must be an array of non-negative integers, found \(kind.description)")
        }
        var values = [Int]()
        try scanner.readArray {
            let elementKind = try scanner.peekKind()
            guard elementKind == .number else {
                throw failure("\(field) must contain only non-negative integers, found \(elementKind.description)")
            }
            let lexeme = try scanner.readNumber()
            switch SafeTensorsJSONScanner.nonNegativeInteger(lexeme) {
            case .value(let value):
                values.append(value)
            case .negative:
                throw failure("\(field) contains the negative number \(lexeme)")
            case .notInteger:
                throw failure("\(field) contains \(lexeme), which is not an integer")
            case .tooLarge:
                throw failure("\(field) contains \(lexeme), which is too large")
            }
        }
        return values
    }
}

// MARK: - JSON scanning

/// A strict RFC 8259 JSON scanner over bytes that are already known to be valid UTF-8. It reads
/// objects member by member, so callers see every key, duplicates included (JSONSerialization
/// silently keeps one of two equal keys, which would let a file hide a tensor).
final class SafeTensorsJSONScanner {
    struct SyntaxError: Error {
        let offset: Int
        let message: String
    }

    enum Kind: Equatable {
        case object, array, string, number, bool, null

        var description: String {
            switch self {
            case .object: return "an object"
            case .array: return "an array"
            case .string: return "a string"
            case .number: return "a number"
            case .bool: return "a boolean"
            case .null: return "null"
            }
        }
    }

    enum IntegerValue: Equatable {
        case value(Int), negative, notInteger, tooLarge
    }

    /// Nesting deeper than this is rejected: recursion on `[[[[...` would otherwise overflow the stack.
    static let maximumDepth = 64

    private let bytes: UnsafeRawBufferPointer
    private(set) var offset = 0
    private var depth = 0

    init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    var isAtEnd: Bool { offset >= bytes.count }

    func skipWhitespace() {
        while offset < bytes.count {
            switch bytes[offset] {
            case 0x20, 0x09, 0x0A, 0x0D: offset += 1
            default: return
            }
        }
    }

    private func error(_ message: String) -> SyntaxError {
        SyntaxError(offset: offset, message: message)
    }

    /// The kind of the value starting at the current offset (after whitespace).
    func peekKind() throws -> Kind {
        skipWhitespace()
        guard offset < bytes.count else { throw error("unexpected end of JSON") }
        switch bytes[offset] {
        case UInt8(ascii: "{"): return .object
        case UInt8(ascii: "["): return .array
        case UInt8(ascii: "\""): return .string
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number
        case UInt8(ascii: "t"), UInt8(ascii: "f"): return .bool
        case UInt8(ascii: "n"): return .null
        default: throw error("unexpected character \(describe(bytes[offset]))")
        }
    }

    private func describe(_ byte: UInt8) -> String {
        (0x21...0x7E).contains(byte) ? "'\(Character(Unicode.Scalar(byte)))'" : "byte 0x\(String(byte, radix: 16))"
    }

    private func consume(_ byte: UInt8) -> Bool {
        skipWhitespace()
        if offset < bytes.count && bytes[offset] == byte {
            offset += 1
            return true
        }
        return false
    }

    private func enter() throws {
        depth += 1
        guard depth <= SafeTensorsJSONScanner.maximumDepth else {
            throw error("nesting deeper than \(SafeTensorsJSONScanner.maximumDepth) levels")
        }
    }

    /// Reads an object; `member` is called with each key and must read exactly one value.
    func readObject(_ member: (String) throws -> Void) throws {
        guard consume(UInt8(ascii: "{")) else { throw error("expected '{'") }
        try enter()
        defer { depth -= 1 }
        if consume(UInt8(ascii: "}")) { return }
        while true {
            skipWhitespace()
            guard offset < bytes.count, bytes[offset] == UInt8(ascii: "\"") else {
                throw error("expected a string key")
            }
            let key = try readString()
            guard consume(UInt8(ascii: ":")) else { throw error("expected ':' after key") }
            try member(key)
            if consume(UInt8(ascii: ",")) { continue }
            if consume(UInt8(ascii: "}")) { return }
            throw error("expected ',' or '}'")
        }
    }

    /// Reads an array; `element` is called once per element and must read exactly one value.
    func readArray(_ element: () throws -> Void) throws {
        guard consume(UInt8(ascii: "[")) else { throw error("expected '['") }
        try enter()
        defer { depth -= 1 }
        if consume(UInt8(ascii: "]")) { return }
        while true {
            try element()
            if consume(UInt8(ascii: ",")) { continue }
            if consume(UInt8(ascii: "]")) { return }
            throw error("expected ',' or ']'")
        }
    }

    func readString() throws -> String {
        guard consume(UInt8(ascii: "\"")) else { throw error("expected a string") }
        let start = offset
        // Fast path: no escapes, so the bytes are the string (already validated as UTF-8).
        while offset < bytes.count {
            let byte = bytes[offset]
            if byte == UInt8(ascii: "\"") {
                let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<offset]), as: UTF8.self)
                offset += 1
                return text
            }
            if byte == UInt8(ascii: "\\") { break }
            guard byte >= 0x20 else { throw error("unescaped control character in string") }
            offset += 1
        }
        var scalars = [UInt8](UnsafeRawBufferPointer(rebasing: bytes[start..<offset]))
        while true {
            guard offset < bytes.count else { throw error("unterminated string") }
            let byte = bytes[offset]
            offset += 1
            switch byte {
            case UInt8(ascii: "\""):
                return String(decoding: scalars, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard offset < bytes.count else { throw error("unterminated string") }
                let escape = bytes[offset]
                offset += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): scalars.append(escape)
                case UInt8(ascii: "b"): scalars.append(0x08)
                case UInt8(ascii: "f"): scalars.append(0x0C)
                case UInt8(ascii: "n"): scalars.append(0x0A)
                case UInt8(ascii: "r"): scalars.append(0x0D)
                case UInt8(ascii: "t"): scalars.append(0x09)
                case UInt8(ascii: "u"):
                    var code = try readHex4()
                    if (0xD800...0xDBFF).contains(code) {
                        // A high surrogate must be followed by an escaped low surrogate.
                        guard offset + 1 < bytes.count, bytes[offset] == UInt8(ascii: "\\"),
                              bytes[offset + 1] == UInt8(ascii: "u")
                        else { throw error("unpaired surrogate in \\u escape") }
                        offset += 2
                        let low = try readHex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw error("unpaired surrogate in \\u escape") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(code) {
                        throw error("unpaired surrogate in \\u escape")
                    }
                    guard let scalar = Unicode.Scalar(code) else { throw error("invalid \\u escape") }
                    scalars.append(contentsOf: Array(String(Character(scalar)).utf8))
                default:
                    offset -= 1
                    throw error("invalid escape \\\(describe(escape))")
                }
            default:
                guard byte >= 0x20 else {
                    offset -= 1
                    throw error("unescaped control character in string")
                }
                scalars.append(byte)
            }
        }
    }

    private func readHex4() throws -> UInt32 {
        guard bytes.count - offset >= 4 else { throw error("truncated \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[offset]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw error("invalid hex digit in \\u escape")
            }
            value = value << 4 | UInt32(digit)
            offset += 1
        }
        return value
    }

    /// Reads a number per the JSON grammar and returns its text.
    func readNumber() throws -> String {
        skipWhitespace()
        let start = offset
        func digit(_ index: Int) -> Bool {
            index < bytes.count && (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index])
        }
        if offset < bytes.count && bytes[offset] == UInt8(ascii: "-") { offset += 1 }
        guard digit(offset) else { throw error("invalid number") }
        if bytes[offset] == UInt8(ascii: "0") {
            offset += 1
            if digit(offset) { throw error("leading zero in number") }
        } else {
            while digit(offset) { offset += 1 }
        }
        if offset < bytes.count && bytes[offset] == UInt8(ascii: ".") {
            offset += 1
            guard digit(offset) else { throw error("invalid number: no digits after '.'") }
            while digit(offset) { offset += 1 }
        }
        if offset < bytes.count && (bytes[offset] == UInt8(ascii: "e") || bytes[offset] == UInt8(ascii: "E")) {
            offset += 1
            if offset < bytes.count && (bytes[offset] == UInt8(ascii: "+") || bytes[offset] == UInt8(ascii: "-")) {
                offset += 1
            }
            guard digit(offset) else { throw error("invalid number: no digits in exponent") }
            while digit(offset) { offset += 1 }
        }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<offset]), as: UTF8.self)
    }

    private func readLiteral(_ text: String) throws {
        let expected = Array(text.utf8)
        guard bytes.count - offset >= expected.count,
              bytes[offset..<(offset + expected.count)].elementsEqual(expected)
        else { throw error("invalid literal") }
        offset += expected.count
    }

    /// A generic JSON value for small documents (index files). Objects keep members in order,
    /// duplicates included, so the caller decides what a repeated key means.
    indirect enum Value {
        case object([(key: String, value: Value)])
        case array([Value])
        case string(String)
        case number(String)
        case bool(Bool)
        case null
    }

    func readValue() throws -> Value {
        switch try peekKind() {
        case .object:
            var members = [(key: String, value: Value)]()
            try readObject { key in members.append((key, try readValue())) }
            return .object(members)
        case .array:
            var elements = [Value]()
            try readArray { elements.append(try readValue()) }
            return .array(elements)
        case .string:
            return .string(try readString())
        case .number:
            return .number(try readNumber())
        case .bool:
            if bytes[offset] == UInt8(ascii: "t") {
                try readLiteral("true")
                return .bool(true)
            }
            try readLiteral("false")
            return .bool(false)
        case .null:
            try readLiteral("null")
            return .null
        }
    }

    /// Parses a whole document: one value, then only whitespace.
    static func parseDocument(_ bytes: UnsafeRawBufferPointer) throws -> Value {
        if let bad = SafeTensorsHeaderParser.firstInvalidUTF8(bytes) {
            throw SyntaxError(offset: bad, message: "invalid UTF-8")
        }
        let scanner = SafeTensorsJSONScanner(bytes)
        let value = try scanner.readValue()
        scanner.skipWhitespace()
        guard scanner.isAtEnd else { throw scanner.error("unexpected content after the JSON value") }
        return value
    }

    /// Interprets a number's text as a non-negative Int. Only plain integers count: "1.0" or "1e3"
    /// are rejected, as the reference implementation's integer fields reject them.
    static func nonNegativeInteger(_ lexeme: String) -> IntegerValue {
        var text = Substring(lexeme)
        var negative = false
        if text.first == "-" {
            negative = true
            text = text.dropFirst()
        }
        guard !text.isEmpty, text.allSatisfy({ $0.isASCII && $0.isNumber }) else { return .notInteger }
        if negative { return text.allSatisfy { $0 == "0" } ? .value(0) : .negative }
        var value = 0
        for character in text.utf8 {
            let (times, overflowA) = value.multipliedReportingOverflow(by: 10)
            let (plus, overflowB) = times.addingReportingOverflow(Int(character - UInt8(ascii: "0")))
            guard !overflowA && !overflowB else { return .tooLarge }
            value = plus
        }
        return .value(value)
    }

    /// A short printable excerpt of the input around `position`, for error messages.
    func excerpt(around position: Int) -> String {
        let lower = max(0, min(position, bytes.count) - 20)
        let upper = min(bytes.count, position + 20)
        var text = ""
        for byte in bytes[lower..<upper] {
            text.append((0x20...0x7E).contains(byte) ? Character(Unicode.Scalar(byte)) : "?")
        }
        return "\"\(text)\""
    }
}

// MARK: - Half precision conversions

/// Bit-exact conversions between Float and the 16-bit formats (IEEE binary16 "F16" and bfloat16
/// "BF16"). Done with integer bit manipulation rather than Swift's `Float16`, which is missing on
/// some platforms (macOS on x86_64).
public enum HalfPrecision {
    /// Exact widening of an IEEE half to Float (every half is representable as a Float).
    @inlinable
    public static func float(fromF16 bits: UInt16) -> Float {
        let sign = UInt32(bits & 0x8000) << 16
        let exponent = UInt32(bits >> 10) & 0x1F
        let mantissa = UInt32(bits & 0x3FF)
        if exponent == 0x1F {
            // Inf or NaN; the payload moves to the top of the float mantissa, keeping quiet NaNs quiet.
            return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        }
        if exponent == 0 {
            // Zero or subnormal: mantissa × 2^-24, exact in float32 (where these values are normal).
            let magnitude = Float(mantissa) * 0x1p-24
            return sign == 0 ? magnitude : -magnitude
        }
        // Rebias the exponent from 15 to 127.
        return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
    }

    /// Float to IEEE half, rounding to nearest even like PyTorch's `c10::Half`: too large values
    /// become ±inf, tiny ones round into the subnormals or to ±0, NaN becomes the quiet NaN 0x7E00.
    @inlinable
    public static func f16Bits(from value: Float) -> UInt16 {
        let bits = value.bitPattern
        let sign = UInt16(truncatingIfNeeded: (bits >> 16) & 0x8000)
        let magnitude = bits & 0x7FFF_FFFF
        if magnitude > 0x7F80_0000 {
            return sign | 0x7E00
        }
        // 65520 is halfway between 65504 (the largest half) and 65536; the tie goes to the even
        // neighbour, which is 65536 = overflow, so everything from 65520 up is infinity.
        if magnitude >= 0x477F_F000 {
            return sign | 0x7C00
        }
        if magnitude >= 0x3880_0000 {
            // Normal half: rebias exponent 127 → 15, keep 10 mantissa bits, round the dropped 13.
            // A carry out of the mantissa correctly bumps the exponent.
            var result = ((magnitude >> 23) - 112) << 10 | ((magnitude & 0x7F_FFFF) >> 13)
            let dropped = magnitude & 0x1FFF
            if dropped > 0x1000 || (dropped == 0x1000 && result & 1 == 1) {
                result += 1
            }
            return sign | UInt16(truncatingIfNeeded: result)
        }
        let exponent = magnitude >> 23
        // Below 2^-25 (half the smallest subnormal) everything rounds to zero; exactly 2^-25 also
        // does (tie to even 0) and is handled by the general path below.
        if exponent < 102 {
            return sign
        }
        // Subnormal half: the result is value × 2^24 rounded to an integer. With the implicit bit
        // restored, value × 2^24 = mantissa × 2^(exponent - 126).
        let mantissa = (magnitude & 0x7F_FFFF) | 0x80_0000
        let shift = 126 - exponent  // 14...24
        var result = mantissa >> shift
        let dropped = mantissa & ((1 << shift) - 1)
        let halfway = UInt32(1) << (shift - 1)
        if dropped > halfway || (dropped == halfway && result & 1 == 1) {
            result += 1
        }
        return sign | UInt16(truncatingIfNeeded: result)
    }

    /// Exact widening of a bfloat16 to Float (bfloat16 is the top half of a float32).
    @inlinable
    public static func float(fromBF16 bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    /// Float to bfloat16, rounding to nearest even exactly as PyTorch's `c10::BFloat16` does
    /// (`round_to_nearest_even`): overflow carries into the exponent and yields ±inf, NaN becomes
    /// 0x7FC0.
    @inlinable
    public static func bf16Bits(from value: Float) -> UInt16 {
        if value.isNaN {
            return 0x7FC0
        }
        let bits = value.bitPattern
        let roundingBias = ((bits >> 16) & 1) &+ 0x7FFF
        return UInt16(truncatingIfNeeded: (bits &+ roundingBias) >> 16)
    }

    /// Widens `count` little-endian elements of `dtype` (F32, F16 or BF16) at `source`, which need
    /// not be aligned, into `destination`. Integer dtypes are a programmer error and leave
    /// `destination` untouched; callers check the dtype first.
    public static func convert(
        _ source: UnsafeRawPointer, dtype: SafeTensorsDType, count: Int,
        into destination: UnsafeMutablePointer<Float>
    ) {
        switch dtype {
        case .f32:
            #if _endian(little)
            // Stored bytes are already host floats; memcpy also copes with unaligned offsets.
            memcpy(destination, source, count * 4)
            #else
            for index in 0..<count {
                destination[index] = Float(bitPattern: UInt32(littleEndian: source.loadUnaligned(fromByteOffset: index * 4, as: UInt32.self)))
            }
            #endif
        case .f16:
            for index in 0..<count {
                destination[index] = float(fromF16: UInt16(littleEndian: source.loadUnaligned(fromByteOffset: index * 2, as: UInt16.self)))
            }
        case .bf16:
            for index in 0..<count {
                destination[index] = float(fromBF16: UInt16(littleEndian: source.loadUnaligned(fromByteOffset: index * 2, as: UInt16.self)))
            }
        case .f64:
            // Rounded to nearest, as torch's .float() does.
            for index in 0..<count {
                destination[index] = Float(Double(bitPattern: UInt64(littleEndian: source.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self))))
            }
        case .i64, .i32, .u8, .i8, .bool:
            return
        }
    }
}
