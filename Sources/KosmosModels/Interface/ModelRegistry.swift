import Foundation
import KosmosNN
import KosmosTensor

/// A model family the registry knows: the config.json `model_type` values (and `architectures`
/// entries) that name it, and how to load a directory of it. A new family is a folder under
/// Families/ with its model, its `GenerativeModel` conformance and its `InputProcessor`, plus one
/// line in `ModelRegistry.families`.
public struct ModelFamily: Sendable, CustomStringConvertible, Equatable {
    public let name: String
    public let modelTypes: [String]
    public let architectures: [String]
    let loadModel: @Sendable (URL) throws -> any GenerativeModel
    let loadVisionTower: (@Sendable (URL) throws -> CLIPVisionTransformer)?
    let describeConfiguration: (@Sendable (Data, URL) throws -> [String])?

    /// `load` loads a directory of the family; `visionTower` loads just its image encoder (for
    /// `kosmos forward vision`); `describe` gives `kosmos info` lines about a config.json.
    public init(name: String, modelTypes: [String], architectures: [String] = [],
                load: @escaping @Sendable (URL) throws -> any GenerativeModel,
                visionTower: (@Sendable (URL) throws -> CLIPVisionTransformer)? = nil,
                describe: (@Sendable (Data, URL) throws -> [String])? = nil) {
        self.name = name
        self.modelTypes = modelTypes
        self.architectures = architectures
        loadModel = load
        loadVisionTower = visionTower
        describeConfiguration = describe
    }

    public var description: String { name }

    public static func == (a: ModelFamily, b: ModelFamily) -> Bool { a.name == b.name }

    /// Lines about a config.json of this family (layers, sizes, special tokens), for `kosmos info`.
    public func describe(_ data: Data, file: URL) throws -> [String] {
        try describeConfiguration?(data, file) ?? []
    }
}

/// Which family a model directory holds, decided in one place: config.json's `model_type`, else
/// its `architectures`. Everything that loads a generative model (the CLI, the server, eval,
/// training) asks here.
public enum ModelRegistry {
    /// The families, one line each.
    public static let families: [ModelFamily] = [
        Kosmos1Family.entry,
        Kosmos2Family.entry,
        Kosmos25Family.entry,
    ]

    /// Every model_type the registry loads.
    public static var modelTypes: [String] { families.flatMap(\.modelTypes) }

    /// The family for a config.json's model_type (or one of its architectures).
    public static func family(modelType: String, architectures: [String] = []) -> ModelFamily? {
        families.first { $0.modelTypes.contains(modelType) }
            ?? families.first { family in architectures.contains { family.architectures.contains($0) } }
    }

    /// The family of a model directory; an unknown type is an error that lists the known ones.
    public static func family(of directory: URL) throws -> ModelFamily {
        let (data, type, url) = try ModelDirectory.configuration(in: directory)
        let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
        let architectures = object?["architectures"] as? [String] ?? []
        guard let family = family(modelType: type, architectures: architectures) else {
            throw ModelDirectoryError.unknownModelType(type, url, expected: modelTypes)
        }
        return family
    }

    /// Loads a model directory of any registered family (weights in inference mode), the weights
    /// of its Linear and Embedding layers stored as `dtype` (docs/precision.md): each made in that
    /// dtype and filled from the file directly, so a bfloat16 model never holds a float32 copy.
    public static func load(_ directory: URL, dtype: DType = .float32) throws -> any GenerativeModel {
        let family = try family(of: directory)
        try MemoryCheck.ensure(directory: directory, dtype: dtype)
        return try withWeightDType(dtype) { try family.loadModel(directory) }
    }

    /// Directories that hold an image encoder alone: transformers' CLIP (a CLIPModel's vision
    /// half, or a CLIPVisionModel).
    static let visionTypes = ["clip", "clip_vision_model"]

    /// The image encoder of a directory: a CLIP directory's, or a family's that has one.
    public static func loadVisionTower(_ directory: URL, dtype: DType = .float32) throws -> CLIPVisionTransformer {
        try withWeightDType(dtype) { try loadVisionTowerAsItIs(directory) }
    }

    private static func loadVisionTowerAsItIs(_ directory: URL) throws -> CLIPVisionTransformer {
        let (_, type, url) = try ModelDirectory.configuration(in: directory)
        if visionTypes.contains(type) { return try CLIPVisionTransformer.load(directory: directory) }
        let owners = families.filter { $0.loadVisionTower != nil }
        guard let family = family(modelType: type), let load = family.loadVisionTower else {
            throw ModelDirectoryError.unknownModelType(type, url, expected: visionTypes + owners.flatMap(\.modelTypes))
        }
        return try load(directory)
    }

    /// The audio encoder of a directory and the configuration its inputs are made with: a
    /// transformers Whisper directory (features from its preprocessor_config.json), or a
    /// Kosmos-1 directory with `audio_config`.
    public static func loadAudioEncoder(_ directory: URL) throws -> (encoder: WhisperEncoder, configuration: AudioConfiguration) {
        let (_, type, url) = try ModelDirectory.configuration(in: directory)
        if type == "whisper" {
            return (try WhisperEncoder.load(directory: directory), try AudioConfiguration(whisperDirectory: directory))
        }
        guard Kosmos1Family.entry.modelTypes.contains(type) else {
            throw ModelDirectoryError.unknownModelType(type, url, expected: ["whisper"] + Kosmos1Family.entry.modelTypes)
        }
        let model = try KosmosModel.load(directory: directory)
        guard let tower = model.audioTower else {
            throw ModelError.invalidInput("\(directory.path): the Kosmos-1 model has no audio_config (no audio encoder)")
        }
        return (tower.encoder, tower.configuration)
    }
}
