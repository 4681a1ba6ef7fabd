import Foundation
import KosmosNN
import KosmosTensor

/// Problems with a model directory, naming the file.
public enum ModelDirectoryError: Error, CustomStringConvertible {
    case missingFile(URL, what: String)
    case unreadableConfiguration(URL, reason: String)
    case unknownModelType(String, URL, expected: [String])
    /// A directory without the tokenizer file its family reads (`files`, in the order tried).
    case noTokenizer(URL, files: [String])
    /// config.json's `torch_dtype` names a dtype no floating-point tensor of the weights has.
    case dtypeContradiction(URL, declared: String, stored: [String], example: String)

    public var description: String {
        switch self {
        case let .missingFile(url, what):
            return "\(url.path): not found (\(what)); a model directory holds config.json, the weights (model.safetensors, or shards listed in model.safetensors.index.json) and a tokenizer file: check the path, or convert or download the model again"
        case let .unreadableConfiguration(url, reason):
            return "\(url.path): \(reason)"
        case let .unknownModelType(type, url, expected):
            let list = expected.count > 1 ? expected.dropLast().joined(separator: ", ") + " or " + expected.last! : expected.joined()
            return "\(url.path): model_type '\(type)' is not supported here (expected \(list))"
        case let .noTokenizer(directory, files):
            return "no tokenizer in \(directory.path) (\(files.joined(separator: " or "))); copy the model's tokenizer there or pass --tokenizer FILE"
        case let .dtypeContradiction(url, declared, stored, example):
            return "\(url.path): torch_dtype is '\(declared)' but the weights store \(stored.joined(separator: " and ")) (for example \(example)), none of them \(declared): the config and the checkpoint disagree; correct torch_dtype or convert the weights again"
        }
    }
}

/// Reading and writing the files of a model directory.
public enum ModelDirectory {
    /// The weights of a directory: a sharded checkpoint if it has model.safetensors.index.json,
    /// else model.safetensors.
    public static func weights(in directory: URL) throws -> SafeTensorsReadable {
        let index = directory.appendingPathComponent("model.safetensors.index.json")
        let single = directory.appendingPathComponent("model.safetensors")
        if FileManager.default.fileExists(atPath: index.path) || FileManager.default.fileExists(atPath: single.path) {
            let weights = try ShardedSafeTensors(directory: directory)
            try checkDeclaredDType(directory: directory, weights: weights)
            return weights
        }
        if let files = try pytorchCheckpointFiles(in: directory) {
            let weights = try PyTorchCheckpointWeights(files: files)
            try checkDeclaredDType(directory: directory, weights: weights)
            return weights
        }
        throw ModelDirectoryError.missingFile(single, what: "the model weights: model.safetensors, model.safetensors.index.json, pytorch_model.bin or pytorch_model.bin.index.json")
    }

    /// A PyTorch checkpoint in the directory: pytorch_model.bin.index.json's shards, or
    /// pytorch_model.bin; nil when there is neither.
    static func pytorchCheckpointFiles(in directory: URL) throws -> [URL]? {
        let index = directory.appendingPathComponent("pytorch_model.bin.index.json")
        if let data = FileManager.default.contents(atPath: index.path) {
            guard let map = (try? JSONSerialization.jsonObject(with: data) as? [String: Any])?["weight_map"] as? [String: String] else {
                throw ModelDirectoryError.unreadableConfiguration(index, reason: "expected {\"weight_map\": {tensor: file}}")
            }
            return Set(map.values).sorted().map { directory.appendingPathComponent($0) }
        }
        let single = directory.appendingPathComponent("pytorch_model.bin")
        return FileManager.default.fileExists(atPath: single.path) ? [single] : nil
    }

    /// A config.json `torch_dtype` (as transformers writes it) must be the dtype of some floating-point
    /// tensor of the weights; a checkpoint with none of that dtype is refused with both named.
    /// Directories without config.json or without torch_dtype pass.
    static func checkDeclaredDType(directory: URL, weights: SafeTensorsReadable) throws {
        let url = directory.appendingPathComponent("config.json")
        guard let data = FileManager.default.contents(atPath: url.path),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let declared = object["torch_dtype"] as? String ?? object["dtype"] as? String else { return }
        let names: [String: SafeTensorsDType] = ["float32": .f32, "float": .f32, "bfloat16": .bf16, "float16": .f16, "half": .f16, "float64": .f64]
        guard let expected = names[declared.replacingOccurrences(of: "torch.", with: "")] else {
            throw ModelDirectoryError.unreadableConfiguration(url, reason: "torch_dtype '\(declared)' is not a dtype (float32, bfloat16, float16)")
        }
        var stored: [SafeTensorsDType: String] = [:]
        for name in weights.names {
            guard let dtype = weights.entry(name)?.dtype, dtype.isFloatingPoint else { continue }
            if dtype == expected { return }
            if stored[dtype] == nil { stored[dtype] = name }
        }
        guard let first = stored.sorted(by: { $0.key.rawValue < $1.key.rawValue }).first else { return }
        throw ModelDirectoryError.dtypeContradiction(url, declared: declared, stored: stored.keys.map(\.rawValue).sorted(),
                                                     example: "\(first.value): \(first.key.rawValue)")
    }

    /// The `config.json` of a directory as JSON data, with its model_type.
    public static func configuration(in directory: URL) throws -> (data: Data, modelType: String, url: URL) {
        let url = directory.appendingPathComponent("config.json")
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw ModelDirectoryError.missingFile(url, what: "the model configuration")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ModelDirectoryError.unreadableConfiguration(url, reason: "not a JSON object")
        }
        guard let type = object["model_type"] as? String else {
            throw ModelDirectoryError.unreadableConfiguration(url, reason: "no \"model_type\" string")
        }
        return (data, type, url)
    }

    /// Decodes JSON into a configuration type, turning decoding errors into messages with the field path.
    public static func decode<T: Decodable>(_ type: T.Type, from data: Data, file: URL) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: data)
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw ModelDirectoryError.unreadableConfiguration(file, reason: "field \(path): \(context.debugDescription)")
        } catch let DecodingError.dataCorrupted(context) {
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw ModelDirectoryError.unreadableConfiguration(file, reason: "\(path.isEmpty ? "" : "field \(path): ")\(context.debugDescription)")
        } catch {
            throw ModelDirectoryError.unreadableConfiguration(file, reason: "\(error)")
        }
    }

    /// Writes JSON atomically (temp file, fsync, rename), keys sorted for stable diffs.
    public static func writeJSON<T: Encodable>(_ value: T, to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write([UInt8](try encoder.encode(value)), to: url)
    }

    /// The tokenizer file of a directory, if any (tokenizer.model, then tokenizer.json, then
    /// sentencepiece.bpe.model).
    public static func tokenizerFile(in directory: URL) -> URL? {
        for name in ["tokenizer.model", "tokenizer.json", "sentencepiece.bpe.model", "spiece.model"] {
            let url = directory.appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: url.path) { return url }
        }
        return nil
    }
}

extension CLIPVisionTransformer {
    /// Loads the vision tower of a transformers CLIP directory: model_type "clip" (a CLIPModel; its
    /// vision_config and the `vision_model.*` tensors) or "clip_vision_model" (a CLIPVisionModel,
    /// whose tensors carry `vision_model.` when saved by transformers 4 and no prefix when saved by
    /// transformers 5). Text-tower tensors of a CLIPModel are ignored.
    public static func load(directory: URL) throws -> CLIPVisionTransformer {
        let (data, type, url) = try ModelDirectory.configuration(in: directory)
        let configuration: CLIPVisionConfiguration
        switch type {
        case "clip":
            struct Full: Decodable {
                let visionConfig: CLIPVisionConfiguration?
                enum CodingKeys: String, CodingKey { case visionConfig = "vision_config" }
            }
            configuration = try ModelDirectory.decode(Full.self, from: data, file: url).visionConfig ?? CLIPVisionConfiguration()
        case "clip_vision_model":
            configuration = try ModelDirectory.decode(CLIPVisionConfiguration.self, from: data, file: url)
        default:
            throw ModelDirectoryError.unknownModelType(type, url, expected: ["clip", "clip_vision_model"])
        }
        let tower = try withoutRandomInitialisation { try CLIPVisionTransformer(configuration: configuration, generator: RandomGenerator(seed: 0)) }
        let weights = try ModelDirectory.weights(in: directory)
        let prefixed = weights.entry("vision_model.embeddings.class_embedding") != nil
        // A full CLIPModel also holds text_model.*, visual_projection and logit_scale, so only
        // tensors under the prefix are checked; older checkpoints also store the position_ids buffer.
        try tower.load(from: weights, prefix: prefixed ? "vision_model." : "", strict: true,
                       sourceName: directory.lastPathComponent, ignoring: ["vision_model.embeddings.position_ids", "embeddings.position_ids"])
        tower.eval()
        return tower
    }
}
