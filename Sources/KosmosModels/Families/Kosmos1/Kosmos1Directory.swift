import Foundation
import KosmosNN
import KosmosTensor

extension KosmosModel {
    /// Loads a Kosmos-1 directory (config.json with model_type "kosmos-1", weights by name), the
    /// Linear and Embedding weights stored as `dtype` (else as `WeightPrecision.current`).
    public static func load(directory: URL, dtype: DType? = nil) throws -> KosmosModel {
        if let dtype { return try withWeightDType(dtype) { try load(directory: directory) } }
        let (data, type, url) = try ModelDirectory.configuration(in: directory)
        guard Kosmos1Family.entry.modelTypes.contains(type) else {
            throw ModelDirectoryError.unknownModelType(type, url, expected: Kosmos1Family.entry.modelTypes)
        }
        let configuration = try ModelDirectory.decode(KosmosConfiguration.self, from: data, file: url)
        // Every tensor comes from the file (the load is strict): no random initialisation first.
        let model = try withoutRandomInitialisation { try KosmosModel(configuration: configuration, generator: RandomGenerator(seed: 0)) }
        try model.load(from: try ModelDirectory.weights(in: directory), sourceName: directory.lastPathComponent)
        model.eval()
        return model
    }

    /// Writes config.json and model.safetensors into `directory` (created if needed).
    public func save(directory: URL, dtype: SafeTensorsDType = .f32) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try ModelDirectory.writeJSON(configuration, to: directory.appendingPathComponent("config.json"))
        try save(to: directory.appendingPathComponent("model.safetensors"), dtype: dtype,
                 metadata: ["format": "pt", "model_type": configuration.modelType])
    }
}
