import Foundation
import KosmosTensor
import KosmosTokenizers
import KosmosVision

/// Kosmos-2.5 (transformers' format, model_type "kosmos-2.5"): one page image, the task chosen by
/// the prompt's first text (`<ocr>`: lines with boxes, `<md>`: markdown).
public enum Kosmos25Family {
    public static let entry = ModelFamily(name: "Kosmos-2.5", modelTypes: ["kosmos-2.5"],
                                          architectures: ["Kosmos2_5ForConditionalGeneration"],
                                          load: { try Kosmos25Model.load(directory: $0) })
}

extension Kosmos25Model: GenerativeModel {
    public var family: ModelFamily { Kosmos25Family.entry }
    public var textDecoder: any TextDecoder { textModel }
    public var eosTokenId: Int? { configuration.text.eosTokenId }
    public var contextLength: Int { textModel.configuration.maxTargetPositions }
    public var mediaKinds: [MediaKind] { [.image] }
    /// Kosmos-2.5 has no fixed image size: its images are patch sequences (`Kosmos25ImageProcessor`).
    public var imageSize: Int { 0 }
    public var audioConfiguration: AudioConfiguration? { nil }
    public var videoConfiguration: VideoConfiguration? { nil }

    /// The checkpoint's tokenizer.json (a byte-level BPE).
    public func loadTokenizer(directory: URL, explicit: URL?) throws -> Tokenizer {
        let url = explicit ?? directory.appendingPathComponent("tokenizer.json")
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw ModelDirectoryError.noTokenizer(directory, files: ["tokenizer.json"])
        }
        return try HFTokenizer(data: try Data(contentsOf: url))
    }

    public func processor(tokenizer: Tokenizer) throws -> any InputProcessor {
        try Kosmos25Processor(model: self, tokenizer: tokenizer)
    }

    /// The image item is flattened patches [patches, depth] (Kosmos25ImageProcessor).
    public func decoderInput(_ input: ModelInput) throws -> DecoderInput {
        let images = try input.media.images(for: self)
        guard images.count <= 1 else { throw ModelError.invalidInput("Kosmos-2.5 takes one image per prompt") }
        guard let patches = images.first else { return DecoderInput(tokens: input.tokens) }
        return DecoderInput(tokens: input.tokens, embeddings: try inputEmbeddings(tokens: input.tokens, flattened: patches.unsqueezed(0)))
    }

    /// Images as patch sequences, preprocessed as the directory says.
    public func imageInput(directory: URL?, decodeOptions: DecodeOptions) throws -> ImageInput {
        ImageInput(patches: try directory.map { try Self.imageProcessor(directory: $0, decodeOptions: decodeOptions) }
                   ?? Kosmos25ImageProcessor(decodeOptions: decodeOptions))
    }

    /// The preprocessing a directory asks for: preprocessor_config.json, or the "image_processor"
    /// section of processor_config.json (what transformers 5's save_pretrained writes). A directory
    /// with neither is refused, as transformers' AutoProcessor refuses it.
    public static func imageProcessor(directory: URL, decodeOptions: DecodeOptions = DecodeOptions()) throws -> Kosmos25ImageProcessor {
        for name in ["preprocessor_config.json", "processor_config.json"] {
            let url = directory.appendingPathComponent(name)
            if let data = FileManager.default.contents(atPath: url.path) {
                return Kosmos25ImageProcessor(config: try Kosmos25ImageProcessorConfig(json: data, source: url.path),
                                              decodeOptions: decodeOptions)
            }
        }
        throw ModelDirectoryError.missingFile(directory.appendingPathComponent("preprocessor_config.json"),
                                              what: "the image processor's configuration (preprocessor_config.json, or processor_config.json with an image_processor section); copy it from the checkpoint")
    }
}

/// Kosmos2_5Processor's layout: `<s><image>` + N × `<s>` + `</image>` + the text, tokenized whole.
/// The text's first token chooses the task (`<ocr>` or `<md>`).
public struct Kosmos25Processor: InputProcessor {
    public let model: Kosmos25Model
    public let tokenizer: Tokenizer
    public var supportsGrounding: Bool { false }

    public init(model: Kosmos25Model, tokenizer: Tokenizer) throws {
        for t in ["<s>", "<image>", "</image>"] where tokenizer.id(of: t) == nil {
            throw TokenizerError.invalidModel(reason: "the tokenizer has no \(t) token: not a Kosmos-2.5 tokenizer (use the model's tokenizer.json)")
        }
        self.model = model
        self.tokenizer = tokenizer
    }

    public func mediaLimit(_ kind: MediaKind) -> Int? { kind == .image ? 1 : 0 }

    /// The prompt's text for one image, as the Python processor builds it.
    public func promptText(_ text: String) -> String {
        "<s><image>" + String(repeating: "<s>", count: model.configuration.latentQueryNum) + "</image>" + text
    }

    public func input(text: String, media: [MediaItem], grounding: Bool) throws -> ModelInput {
        _ = try media.images(for: model)
        guard media.count == 1 else { throw ModelError.invalidInput("Kosmos-2.5 takes exactly one image per prompt (got \(media.count))") }
        // The text after the image is the task (`<ocr>`, `<md>`, or kosmos-2.5-chat's question);
        // none at all means `<ocr>`.
        var body = text.replacingOccurrences(of: MediaKind.image.placeholder, with: "")
        if body.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { body = "<ocr>" }
        let tokens = tokenizer.encode(promptText(body))
        let layout = try Kosmos25Layout(tokens: tokens, slots: model.configuration.latentQueryNum)
        return ModelInput(tokens: tokens, media: media, mediaPositions: layout.imagePositions)
    }

    /// The generated text decoded without special tokens (`skip_special_tokens=True`, as the
    /// model's documentation decodes it); `<ocr>`, `<bbox>` and the coordinates are not special.
    public func output(_ ids: [Int], grounding: Bool) -> ModelOutput {
        let kept = ids.filter { $0 != model.eosTokenId }
        let text = (tokenizer as? HFTokenizer)?.decode(kept, skipSpecialTokens: true) ?? tokenizer.decode(kept)
        return ModelOutput(text: text, entities: nil)
    }
}
