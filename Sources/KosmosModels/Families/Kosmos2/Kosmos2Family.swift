import Foundation
import KosmosTensor
import KosmosTokenizers

/// Kosmos-2 (transformers' format, model_type "kosmos-2"): at most one image, placed as
/// Kosmos2Processor places it, and grounded output (`<phrase>`/`<object>` markup → boxes).
public enum Kosmos2Family {
    public static let entry = ModelFamily(name: "Kosmos-2", modelTypes: ["kosmos-2"],
                                          architectures: ["Kosmos2ForConditionalGeneration"],
                                          load: { try Kosmos2Model.load(directory: $0) })
}

extension Kosmos2Model: GenerativeModel {
    public var family: ModelFamily { Kosmos2Family.entry }
    public var textDecoder: any TextDecoder { textModel }
    public var eosTokenId: Int? { configuration.text.eosTokenId }
    public var contextLength: Int { textModel.configuration.maxTargetPositions }
    public var mediaKinds: [MediaKind] { [.image] }
    public var imageSize: Int { configuration.vision.imageSize }
    public var audioConfiguration: AudioConfiguration? { nil }
    public var videoConfiguration: VideoConfiguration? { nil }

    /// tokenizer.json, else sentencepiece.bpe.model read in Kosmos-2's layout.
    public func loadTokenizer(directory: URL, explicit: URL?) throws -> Tokenizer {
        guard let url = explicit ?? TokenizerLoader.kosmos2TokenizerFile(in: directory) else {
            throw ModelDirectoryError.noTokenizer(directory, files: TokenizerLoader.kosmos2FileNames)
        }
        return try TokenizerLoader.loadKosmos2(url)
    }

    public func processor(tokenizer: Tokenizer) throws -> any InputProcessor {
        try Kosmos2Processor(model: self, tokenizer: tokenizer)
    }

    public func decoderInput(_ input: ModelInput) throws -> DecoderInput {
        let images = try input.media.images(for: self)
        guard images.count <= 1 else { throw ModelError.invalidInput("Kosmos-2 takes at most one image per prompt") }
        return DecoderInput(tokens: input.tokens,
                            embeddings: try inputEmbeddings(tokens: input.tokens, imagePositions: input.mediaPositions,
                                                            pixels: images.first?.unsqueezed(0)))
    }
}

extension ModelInput {
    /// A Kosmos-2 prompt as model input (pixels [1, 3, size, size] become one image item).
    public init(_ prompt: Kosmos2Prompt) {
        let media = prompt.pixels.map { [MediaItem.image($0.reshaped(Array($0.shape.dropFirst())))] } ?? []
        self.init(tokens: prompt.tokens, media: media, mediaPositions: prompt.imagePositions)
    }
}

/// Kosmos2Processor's layout: `<s><image>` + 64 image slots + `</image>` + the text (placeholders
/// removed; `grounding` prefixes `<grounding>`), tokenized whole; text only: `<s>` + the text.
public struct Kosmos2Processor: InputProcessor {
    public let model: Kosmos2Model
    public let tokenizer: Tokenizer
    let imageToken: Int
    let unknownToken: Int
    public var supportsGrounding: Bool { true }

    public init(model: Kosmos2Model, tokenizer: Tokenizer) throws {
        guard let image = tokenizer.id(of: "<image>"), let unknown = tokenizer.specialIds.unk else {
            throw TokenizerError.invalidModel(reason: "the tokenizer has no <image> or <unk> token: not a Kosmos-2 tokenizer (use the model's tokenizer.json or sentencepiece.bpe.model)")
        }
        self.model = model
        self.tokenizer = tokenizer
        imageToken = image
        unknownToken = unknown
    }

    public func mediaLimit(_ kind: MediaKind) -> Int? { kind == .image ? 1 : 0 }

    public func input(text: String, media: [MediaItem], grounding: Bool) throws -> ModelInput {
        _ = try media.images(for: model)
        guard media.count <= 1 else { throw ModelError.invalidInput("Kosmos-2 takes at most one image per prompt") }
        let body = (grounding ? "<grounding> " : "") + text.replacingOccurrences(of: MediaKind.image.placeholder, with: "")
        guard !media.isEmpty else { return ModelInput(tokens: tokenizer.encode("<s>" + body)) }
        var tokens = tokenizer.encode(model.promptText(body))
        let positions = try model.imageSlots(in: &tokens, imageTokenId: imageToken, unknownTokenId: unknownToken)
        return ModelInput(tokens: tokens, media: media, mediaPositions: positions)
    }

    /// The markup is turned into entities when `grounding`, and removed otherwise.
    public func output(_ ids: [Int], grounding: Bool) -> ModelOutput {
        let processed = Grounding.postProcess(tokenizer.decode(ids.filter { $0 != model.eosTokenId }))
        return ModelOutput(text: processed.text, entities: grounding ? processed.entities : nil)
    }
}
