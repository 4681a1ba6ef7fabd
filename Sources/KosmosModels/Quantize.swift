import Foundation
import KosmosNN
import KosmosTensor

/// Writes quantized model directories (`kosmos quantize`, docs/model-format.md): the Linear
/// weights of the decoder, the resampler and the vision tower in q8 or q4; token embeddings and the
/// output head in bfloat16; everything else as stored. Any family's directory: the family's model
/// names which tensors are Linear weights.
public enum ModelQuantizer {
    /// The config.json key that marks a quantized directory.
    public static let configKey = "quantization_config"

    /// What one run did.
    public struct Summary: Sendable {
        public var quantized = 0
        public var convertedToBFloat16 = 0
        public var copied = 0
        public var inputBytes = 0
        public var outputBytes = 0
    }

    /// The `quantization_config` of a directory's config.json, nil when it has none.
    public static func quantizationConfig(of directory: URL) throws -> [String: Any]? {
        let (data, _, _) = try ModelDirectory.configuration(in: directory)
        let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
        return object?[configKey] as? [String: Any]
    }

    /// Quantizes `source` into `destination` (a new or empty directory). `progress` gets
    /// (tensors done, tensors in all, bytes read so far, bytes in all) after each tensor.
    public static func quantize(_ source: URL, to destination: URL, format: QuantizationFormat, groupSize: Int? = nil,
                                progress: @escaping (Int, Int, Int, Int) -> Void = { _, _, _, _ in }) throws -> Summary {
        let group = groupSize ?? format.defaultGroupSize
        try QuantizedMatrix.checkLayout(rows: 1, columns: group, groupSize: group, tensor: "--group-size")
        let (configData, _, configURL) = try ModelDirectory.configuration(in: source)
        guard var config = (try? JSONSerialization.jsonObject(with: configData)) as? [String: Any] else {
            throw ModelDirectoryError.unreadableConfiguration(configURL, reason: "not a JSON object")
        }
        if let existing = config[configKey] as? [String: Any] {
            let described = [existing["format"], existing["group_size"]].compactMap { $0.map { "\($0)" } }.joined(separator: ", group ")
            throw ModelError.invalidInput("\(source.path) is already quantized (\(described)); quantize the float checkpoint it came from")
        }
        if destination.standardizedFileURL == source.standardizedFileURL {
            throw ModelError.invalidInput("--out must be another directory than --model")
        }
        let existing = (try? FileManager.default.contentsOfDirectory(atPath: destination.path)) ?? []
        if !existing.isEmpty {
            throw ModelError.invalidInput("\(destination.path) exists and is not empty; choose a new directory")
        }

        // Which stored tensors are Linear weights to quantize, and which are token tables or heads
        // (16-bit), from the family's own model. Loaded in bfloat16 and let go before the work.
        let (quantizable, sixteenBit): (Set<String>, Set<String>) = try { () throws -> (Set<String>, Set<String>) in
            let model = try ModelRegistry.load(source, dtype: .bfloat16)
            guard let module = model as? Module else {
                throw ModelError.invalidInput("\(model.family.name) models are not modules; cannot quantize")
            }
            let linears = module.quantizableLinears(groupSize: group)
            let chosen = Set(linears.map { $0.prefix + "weight" })
            // Output heads (also under a file name of their own, as Kosmos-2's lm_head) and token tables.
            var tables: Set<String> = []
            for (prefix, linear) in module.namedLinears() where !linear.isTied && Module.isOutputHead(prefix) {
                tables.insert(prefix + "weight")
            }
            for (name, tensor) in module.namedParameters() where tensor.rank == 2 && name.hasSuffix("embed_tokens.weight") {
                tables.insert(name)
            }
            return (chosen, tables)
        }()
        if quantizable.isEmpty {
            throw ModelError.invalidInput("\(source.path): no Linear weight has rows that groups of \(group) divide; nothing to quantize")
        }

        // Streamed: every tensor is made (quantized, converted or copied) only when the writer
        // reaches it, and the source's pages are let go after it, so memory holds about one
        // tensor rather than the whole model twice.
        let weights = try ModelDirectory.weights(in: source)
        let names = weights.names.sorted()
        let totalBytes = names.reduce(0) { $0 + (weights.entry($1)?.byteCount ?? 0) }
        var writer = SafeTensorsWriter(metadata: ["format": "pt", "quantization": format.rawValue, "group_size": String(group)])
        var summary = Summary()
        summary.inputBytes = totalBytes
        var readBytes = 0
        var written = 0
        let outputCount = names.count
        // The levels' producer quantizes; the scales and minimums (sorted right after the levels,
        // `name_min` then `name_scale`) reuse that matrix.
        let latest = LatestQuantized(format: format, groupSize: group, weights: weights)
        func done(_ name: String) {
            weights.releaseResidentPages(name)
            readBytes += weights.entry(name)?.byteCount ?? 0
            written += 1
            progress(written, outputCount, readBytes, totalBytes)
        }
        for name in names {
            guard let entry = weights.entry(name) else { continue }
            if quantizable.contains(name), entry.dtype.isFloatingPoint, entry.shape.count == 2 {
                let (rows, columns) = (entry.shape[0], entry.shape[1])
                try QuantizedMatrix.checkLayout(rows: rows, columns: columns, groupSize: group, tensor: name)
                try writer.add(name: name, dtype: format.payloadDType, shape: format.payloadShape(rows: rows, columns: columns)) { write in
                    try write(try latest.matrix(name).levelBytes)
                    done(name)
                }
                let scaleShape = [rows, columns / group]
                try writer.add(name: QuantizedTensorNames.scale(of: name), dtype: .f16, shape: scaleShape) { write in
                    try write(try latest.matrix(name).scaleBytes)
                }
                if format.hasMinimums {
                    try writer.add(name: QuantizedTensorNames.minimum(of: name), dtype: .f16, shape: scaleShape) { write in
                        try write(try latest.matrix(name).minimumBytes!)
                    }
                }
                summary.quantized += 1
                summary.outputBytes += rows * columns * format.bits / 8 + rows * (columns / group) * 2 * (format.hasMinimums ? 2 : 1)
            } else if sixteenBit.contains(name) || name.hasSuffix("lm_head.weight"), entry.dtype == .f32 {
                try writer.add(name: name, dtype: .bf16, shape: entry.shape) { write in
                    try weights.withRawBytes(name) { try Self.writeBFloat16(fromFloat32: $0, write) }
                    done(name)
                }
                summary.convertedToBFloat16 += 1
                summary.outputBytes += entry.elementCount * 2
            } else {
                try writer.add(name: name, dtype: entry.dtype, shape: entry.shape) { write in
                    try weights.withRawBytes(name, write)
                    done(name)
                }
                summary.copied += 1
                summary.outputBytes += entry.byteCount
            }
        }

        try FileManager.default.createDirectory(at: destination, withIntermediateDirectories: true)
        // Tokenizer, preprocessor and every other file as they are; the weights and config anew.
        let skipped: (String) -> Bool = { $0 == "config.json" || $0.hasSuffix(".safetensors") || $0 == "model.safetensors.index.json" }
        for file in try FileManager.default.contentsOfDirectory(atPath: source.path) where !skipped(file) && !file.hasPrefix(".") {
            try FileManager.default.copyItem(at: source.appendingPathComponent(file), to: destination.appendingPathComponent(file))
        }
        try writer.write(to: destination.appendingPathComponent("model.safetensors"))
        config[configKey] = [
            "quant_method": "kosmos",
            "format": format.rawValue,
            "bits": format.bits,
            "group_size": group,
            "scale_dtype": "float16",
            "minimums": format.hasMinimums,
            "quantized_linears": summary.quantized,
        ] as [String: Any]
        let json = try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
        try json.write(to: destination.appendingPathComponent("config.json"), options: .atomic)
        return summary
    }

    /// Little-endian F32 bytes written as BF16 (round to nearest even) in 1 MiB pieces.
    static func writeBFloat16(fromFloat32 bytes: UnsafeRawBufferPointer, _ write: (UnsafeRawBufferPointer) throws -> Void) throws {
        let chunk = 1 << 19
        var staging = [UInt16](repeating: 0, count: chunk)
        let count = bytes.count / 4
        var start = 0
        while start < count {
            let end = Swift.min(count, start + chunk)
            for i in start..<end {
                let bits = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))
                staging[i - start] = HalfPrecision.bf16Bits(from: Float(bitPattern: bits)).littleEndian
            }
            try staging.withUnsafeBytes { try write(UnsafeRawBufferPointer(rebasing: $0[0..<(end - start) * 2])) }
            start = end
        }
    }
}

/// The one quantized matrix a streaming quantizer holds: made for a weight's levels, reused for its
/// scales and minimums, replaced by the next weight's.
private final class LatestQuantized {
    let format: QuantizationFormat
    let groupSize: Int
    let weights: SafeTensorsReadable
    private var name: String?
    private var matrix: QuantizedMatrix?

    init(format: QuantizationFormat, groupSize: Int, weights: SafeTensorsReadable) {
        self.format = format
        self.groupSize = groupSize
        self.weights = weights
    }

    func matrix(_ weight: String) throws -> QuantizedMatrix {
        if name == weight, let matrix { return matrix }
        matrix = nil  // the previous one goes before the next is made
        let made = try QuantizedMatrix(quantizing: try weights.tensor(weight), format: format, groupSize: groupSize, tensor: weight)
        (name, matrix) = (weight, made)
        return made
    }
}
