import Foundation
import KosmosTensor

/// Refuses, before any weight is allocated, a model that cannot fit in the memory this process may
/// use, with both sizes in the message (instead of the kernel's OOM killer half-way through).
public enum MemoryCheck {
    public struct TooLarge: Error, CustomStringConvertible, Equatable {
        public let directory: String
        public let needed: Int64
        public let available: Int64
        public let limitedBy: String
        public let dtype: String

        public var description: String {
            "\(directory): the model needs about \(gigabytes(needed)) of memory in \(dtype), but only \(gigabytes(available)) is available (\(limitedBy)); "
                + "load it in bfloat16 (--dtype bfloat16), use a quantized copy (kosmos quantize --to q8|q4), or free memory"
        }
    }

    static func gigabytes(_ bytes: Int64) -> String { String(format: "%.2f GB", Double(bytes) / 1e9) }

    /// The bytes this process may still allocate, and what limits them: MemAvailable from
    /// /proc/meminfo, lowered by the cgroup's limit (v2 memory.max − memory.current, v1
    /// memory.limit_in_bytes − memory.usage_in_bytes) and by `KOSMOS_MEMORY_AVAILABLE` (bytes;
    /// for leaving room to other programs). Nil where none of them can be read (macOS).
    public static func available(environment: [String: String] = ProcessInfo.processInfo.environment,
                                 root: String = "") -> (bytes: Int64, limitedBy: String)? {
        var best: (Int64, String)?
        func consider(_ bytes: Int64?, _ what: String) {
            guard let bytes, bytes >= 0 else { return }
            if best == nil || bytes < best!.0 { best = (bytes, what) }
        }
        if let meminfo = try? String(contentsOfFile: root + "/proc/meminfo", encoding: .utf8),
           let line = meminfo.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
           let kilobytes = Int64(line.split(separator: " ").dropFirst().first ?? "") {
            consider(kilobytes * 1024, "MemAvailable")
        }
        func number(_ path: String) -> Int64? {
            (try? String(contentsOfFile: root + path, encoding: .utf8)).flatMap { Int64($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
        if let limit = number("/sys/fs/cgroup/memory.max"), let used = number("/sys/fs/cgroup/memory.current") {
            consider(limit - used, "the cgroup's memory.max")
        } else if let limit = number("/sys/fs/cgroup/memory/memory.limit_in_bytes"), limit < 1 << 60,
                  let used = number("/sys/fs/cgroup/memory/memory.usage_in_bytes") {
            consider(limit - used, "the cgroup's memory limit")
        }
        if let text = environment["KOSMOS_MEMORY_AVAILABLE"], let bytes = Int64(text) {
            consider(bytes, "KOSMOS_MEMORY_AVAILABLE")
        }
        return best
    }

    /// What loading `weights` at `dtype` allocates, about: matrices (rank ≥ 2) at the dtype's
    /// size, vectors in float32, integer payloads (quantized weights) not at all (they are mapped).
    public static func estimate(_ weights: SafeTensorsReadable, dtype: DType) -> Int64 {
        var total: Int64 = 0
        for name in weights.names {
            guard let entry = weights.entry(name) else { continue }
            switch entry.dtype {
            case .f32, .f16, .bf16, .f64:
                let size = entry.shape.count >= 2 ? Int64(dtype.byteCount) : 4
                total += Int64(entry.elementCount) * size
            default:
                continue
            }
        }
        return total
    }

    /// Throws `TooLarge` when the weights of `directory` at `dtype` need more than is available.
    /// A PyTorch `.bin` directory counts twice its files (they are read into memory first).
    public static func ensure(directory: URL, dtype: DType, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        guard let (available, limitedBy) = available(environment: environment) else { return }
        let needed: Int64
        let manager = FileManager.default
        if manager.fileExists(atPath: directory.appendingPathComponent("model.safetensors").path)
            || manager.fileExists(atPath: directory.appendingPathComponent("model.safetensors.index.json").path) {
            needed = estimate(try ModelDirectory.weights(in: directory), dtype: dtype)
        } else if let files = try ModelDirectory.pytorchCheckpointFiles(in: directory) {
            needed = 2 * files.reduce(Int64(0)) { $0 + (((try? manager.attributesOfItem(atPath: $1.path))?[.size] as? NSNumber)?.int64Value ?? 0) }
        } else {
            return
        }
        if needed > available {
            throw TooLarge(directory: directory.path, needed: needed, available: available, limitedBy: limitedBy, dtype: dtype.rawValue)
        }
    }
}
