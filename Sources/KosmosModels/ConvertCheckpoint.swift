import Foundation
import KosmosTensor

/// `kosmos convert`: a model directory whose weights are a PyTorch checkpoint (pytorch_model.bin,
/// or its sharded index) copied as one model.safetensors, every tensor in its own dtype and bytes;
/// the config, tokenizer and every other file copied as they are.
public enum CheckpointConverter {
    public struct Summary {
        public var tensors = 0
        public var bytes = 0
    }

    /// `progress(done, total)` after each tensor is written.
    public static func convertToSafetensors(_ source: URL, to destination: URL, progress: @escaping (Int, Int) -> Void = { _, _ in }) throws -> Summary {
        let fm = FileManager.default
        if fm.fileExists(atPath: destination.path), !((try? fm.contentsOfDirectory(atPath: destination.path))?.isEmpty ?? false) {
            throw ModelError.invalidInput("\(destination.path) exists and is not empty; give a new directory")
        }
        guard let files = try ModelDirectory.pytorchCheckpointFiles(in: source) else {
            let what = fm.fileExists(atPath: source.appendingPathComponent("model.safetensors").path) ? " (it already holds model.safetensors)" : ""
            throw ModelError.invalidInput("\(source.path) has no pytorch_model.bin or pytorch_model.bin.index.json to convert\(what)")
        }
        let weights = try PyTorchCheckpointWeights(files: files)
        var writer = SafeTensorsWriter(metadata: ["format": "pt"])
        var summary = Summary()
        var done = 0
        for name in weights.names {
            guard let entry = weights.entry(name) else { continue }
            let total = weights.names.count
            if entry.dtype == .bool {  // the writer checks BOOL bytes, so they are handed over whole
                try writer.add(name: name, dtype: .bool, shape: entry.shape, bytes: try weights.withRawBytes(name) { Array($0) })
            } else {
                try writer.add(name: name, dtype: entry.dtype, shape: entry.shape) { write in
                    try weights.withRawBytes(name, write)
                    done += 1
                    progress(done, total)
                }
            }
            summary.tensors += 1
            summary.bytes += entry.byteCount
        }
        try fm.createDirectory(at: destination, withIntermediateDirectories: true)
        let checkpoint = Set(files.map(\.lastPathComponent) + ["pytorch_model.bin.index.json"])
        for file in try fm.contentsOfDirectory(atPath: source.path) where !checkpoint.contains(file) && !file.hasPrefix(".") {
            try fm.copyItem(at: source.appendingPathComponent(file), to: destination.appendingPathComponent(file))
        }
        try writer.write(to: destination.appendingPathComponent("model.safetensors"))
        return summary
    }
}
