import Foundation
import KosmosNN
import KosmosTensor

/// A checkpoint seen through different names: `aliases` maps a name the module asks for to the
/// name stored in the file (the file's name is then hidden, so a strict load does not report it as
/// unexpected). Everything else passes through.
final class RenamedSafeTensors: SafeTensorsReadable {
    let source: SafeTensorsReadable
    let aliases: [String: String]
    let stored: [String: String]

    init(_ source: SafeTensorsReadable, aliases: [String: String]) {
        self.source = source
        self.aliases = aliases
        stored = Dictionary(uniqueKeysWithValues: aliases.map { ($0.value, $0.key) })
    }

    private func fileName(_ name: String) -> String { aliases[name] ?? name }

    var names: [String] { source.names.map { stored[$0] ?? $0 }.sorted() }
    func entry(_ name: String) -> SafeTensorsEntry? {
        if aliases[name] == nil && stored[name] != nil { return nil }
        return source.entry(fileName(name))
    }
    func copyFloats(_ name: String, into destination: UnsafeMutableBufferPointer<Float>) throws {
        try source.copyFloats(fileName(name), into: destination)
    }
    func floats(_ name: String) throws -> [Float] { try source.floats(fileName(name)) }
    func int64s(_ name: String) throws -> [Int64] { try source.int64s(fileName(name)) }
    func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try source.withRawBytes(fileName(name), body)
    }
    func mappedBytes(_ name: String) -> (bytes: UnsafeMutableRawBufferPointer, owner: AnyObject)? {
        source.mappedBytes(fileName(name))
    }
}

/// How a Kosmos-2 checkpoint's LM head is read, following transformers 5's `tie_weights` during
/// `from_pretrained` (modeling_utils.py): the head is tied to `text_model.model.embed_tokens` when
/// the configuration ties it, unless the file holds both tensors with different values (then they
/// are loaded separately); with `tie_word_embeddings` false the head is its own tensor, stored as
/// `text_model.lm_head.weight` (or `lm_head.weight`).
struct Kosmos2HeadPlan {
    static let embeddingName = "text_model.model.embed_tokens.weight"
    static let projectionName = "text_model.model.output_projection.weight"
    static let headNames = ["text_model.lm_head.weight", "lm_head.weight"]

    /// Whether the head is tied to the token embeddings.
    let tied: Bool
    /// The file's name for the head, when it has one.
    let headName: String?

    init(tieWordEmbeddings: Bool, weights: SafeTensorsReadable, sourceName: String) throws {
        headName = Self.headNames.first { weights.entry($0) != nil }
        if tieWordEmbeddings {
            if let headName, weights.entry(Self.embeddingName) != nil {
                tied = try Self.sameBytes(weights, headName, Self.embeddingName)
            } else {
                tied = true
            }
        } else {
            guard headName != nil else {
                throw ModelError.invalidConfiguration(
                    field: "tie_word_embeddings",
                    reason: "false, but \(sourceName) has no text_model.lm_head.weight (the untied LM head); set it true in config.json if the head is the token embeddings")
            }
            tied = false
        }
    }

    /// The checkpoint as the model reads it: the untied head under the decoder's output_projection.
    func source(_ weights: SafeTensorsReadable) -> SafeTensorsReadable {
        guard !tied, let headName else { return weights }
        return RenamedSafeTensors(weights, aliases: [Self.projectionName: headName])
    }

    /// File names that may be present without the model asking for them.
    var ignored: Set<String> { tied ? Set(Self.headNames) : [] }

    private static func sameBytes(_ weights: SafeTensorsReadable, _ a: String, _ b: String) throws -> Bool {
        guard let ea = weights.entry(a), let eb = weights.entry(b), ea.shape == eb.shape, ea.dtype == eb.dtype else { return false }
        return try weights.withRawBytes(a) { x in
            try weights.withRawBytes(b) { y in
                x.count == y.count && (x.count == 0 || memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0)
            }
        }
    }
}

/// Loads a transformers directory in Kosmos-2's layout (Kosmos-2, Kosmos-2.5): config.json of one of
/// `family`'s model types, the weights, the LM head tied or untied as `Kosmos2HeadPlan` decides (the
/// configuration's `tied` flag set to that), and every tensor strictly from the file, with no random
/// initialisation first. `computed` names file tensors the model computes instead (position tables).
func loadTransformersDirectory<C: Decodable, M: Module>(_ directory: URL, family: ModelFamily, configuration _: C.Type,
                                                         tied: WritableKeyPath<C, Bool>, computed: Set<String>,
                                                         build: (C) throws -> M) throws -> M {
    let (data, type, url) = try ModelDirectory.configuration(in: directory)
    guard family.modelTypes.contains(type) else {
        throw ModelDirectoryError.unknownModelType(type, url, expected: family.modelTypes)
    }
    var configuration = try ModelDirectory.decode(C.self, from: data, file: url)
    let weights = try ModelDirectory.weights(in: directory)
    let head = try Kosmos2HeadPlan(tieWordEmbeddings: configuration[keyPath: tied], weights: weights, sourceName: directory.lastPathComponent)
    configuration[keyPath: tied] = head.tied
    let model = try withoutRandomInitialisation { try build(configuration) }
    try model.load(from: head.source(weights), sourceName: directory.lastPathComponent, ignoring: head.ignored.union(computed))
    model.eval()
    return model
}
