import Foundation
import KosmosModels
import KosmosTensor
import KosmosTokenizers
import KosmosVision

/// A Kosmos-1 or Kosmos-2 model with its tokenizer and image preprocessing, as the server serves it.
/// Prompt preparation (tokenizing, image decoding) is safe from any thread; `prefill` and the
/// decoder belong to the scheduler's thread only.
public final class ServedModel: @unchecked Sendable {
    enum Kind {
        case kosmos1(KosmosModel)
        case kosmos2(Kosmos2Model, imageToken: Int, unknownToken: Int)
    }

    /// The id clients name in `model`.
    public let name: String
    let kind: Kind
    public let tokenizer: Tokenizer
    let imageInput: ImageInput

    /// A prompt ready for the scheduler: its token ids and images.
    public struct Prompt {
        public var tokens: [Int]
        /// Kosmos-1: one [3, size, size] tensor per `<image>`; Kosmos-2: at most one, the slots at `imagePositions`.
        public var images: [Tensor]
        public var imagePositions: [Int] = []
    }

    /// Loads a model directory (config.json model_type kosmos-1 or kosmos-2, weights, tokenizer).
    public convenience init(directory: URL, tokenizer explicit: URL? = nil, name: String? = nil, maxImagePixels: Int) throws {
        let (_, type, _) = try ModelDirectory.configuration(in: directory)
        guard let url = explicit ?? ModelDirectory.tokenizerFile(in: directory) else {
            throw APIError(status: 500, message: "no tokenizer in \(directory.path); pass --tokenizer", type: "server_error")
        }
        let tokenizer = try TokenizerLoader.load(url)
        let options = DecodeOptions(maxPixels: maxImagePixels)
        let modelName = name ?? directory.standardizedFileURL.lastPathComponent
        if type == "kosmos-2" {
            let model = try Kosmos2Model.load(directory: directory)
            let input = try ImageInput(modelDirectory: directory, imageSize: model.configuration.vision.imageSize, decodeOptions: options)
            try self.init(kosmos2: model, tokenizer: tokenizer, imageInput: input, name: modelName)
        } else {
            let model = try KosmosModel.load(directory: directory)
            model.eval()
            let input = try ImageInput(modelDirectory: directory, imageSize: model.configuration.vision.imageSize, decodeOptions: options)
            self.init(kosmos1: model, tokenizer: tokenizer, imageInput: input, name: modelName)
        }
    }

    public init(kosmos1 model: KosmosModel, tokenizer: Tokenizer, imageInput: ImageInput, name: String) {
        kind = .kosmos1(model)
        self.tokenizer = tokenizer
        self.imageInput = imageInput
        self.name = name
    }

    public init(kosmos2 model: Kosmos2Model, tokenizer: Tokenizer, imageInput: ImageInput, name: String) throws {
        guard let image = tokenizer.id(of: "<image>"), let unknown = tokenizer.specialIds.unk else {
            throw APIError(status: 500, message: "the tokenizer has no <image> or <unk> token: not a Kosmos-2 tokenizer", type: "server_error")
        }
        kind = .kosmos2(model, imageToken: image, unknownToken: unknown)
        self.tokenizer = tokenizer
        self.imageInput = imageInput
        self.name = name
    }

    public var isKosmos2: Bool { if case .kosmos2 = kind { return true } else { return false } }

    public var decoder: MagnetoDecoder {
        switch kind {
        case .kosmos1(let model): return model.decoder
        case .kosmos2(let model, _, _): return model.textModel
        }
    }

    public var eos: Int? {
        switch kind {
        case .kosmos1(let model): return model.configuration.eosTokenId
        case .kosmos2(let model, _, _): return model.configuration.text.eosTokenId
        }
    }

    /// The model's context in positions (prompt + new tokens).
    public var contextLength: Int { decoder.configuration.maxTargetPositions }

    /// Decodes and preprocesses one image (JPEG or PNG bytes) to [3, size, size].
    public func image(data: Data, source: String) throws -> Tensor {
        let pixels = try imageInput.preprocessor.preprocess(data: data, source: source)
        let size = imageInput.imageSize
        guard pixels.shape == [3, size, size] else {
            throw APIError.invalid("\(source): preprocessing gives \(pixels.shape), the model expects [3, \(size), \(size)]")
        }
        return Tensor(pixels)
    }

    /// The prompt for `text` whose `<image>` markers say where each image goes (Kosmos-1, as
    /// `kosmos generate` builds it); Kosmos-2 takes at most one image and builds its processor's
    /// layout (`grounding` prefixes `<grounding>`).
    public func prompt(text: String, images: [Tensor], grounding: Bool = false) throws -> Prompt {
        switch kind {
        case .kosmos1(let model):
            do {
                let tokens = try model.promptTokens(text, imageCount: images.count, encode: tokenizer.encode)
                return Prompt(tokens: tokens, images: images)
            } catch let error as ModelError {
                throw APIError.invalid("\(error)", param: "messages")
            }
        case .kosmos2(let model, let imageToken, let unknownToken):
            guard images.count <= 1 else { throw APIError.invalid("Kosmos-2 takes at most one image per request", param: "messages") }
            let body = (grounding ? "<grounding> " : "") + text.replacingOccurrences(of: "<image>", with: "")
            guard let image = images.first else {
                return Prompt(tokens: tokenizer.encode("<s>" + body), images: [])
            }
            var tokens = tokenizer.encode(model.promptText(body))
            let positions = try model.imageSlots(in: &tokens, imageTokenId: imageToken, unknownTokenId: unknownToken)
            return Prompt(tokens: tokens, images: [image], imagePositions: positions)
        }
    }

    /// Runs the prompt (its images encoded) into a fresh cache: logits [1, length, vocab].
    /// Scheduler thread only.
    func prefill(_ prompt: Prompt, cache: DecoderCache) throws -> Tensor {
        switch kind {
        case .kosmos1(let model):
            let batch = try model.makeBatch([KosmosSequence(tokens: prompt.tokens, images: prompt.images)])
            return try model.logits(batch, cache: cache)
        case .kosmos2(let model, _, _):
            return try model.logits(tokens: prompt.tokens, imagePositions: prompt.imagePositions,
                                    pixels: prompt.images.first?.unsqueezed(0), cache: cache)
        }
    }

    /// The text of generated ids (EOS dropped); Kosmos-2's grounding markup is turned into
    /// entities when `grounding`, and removed otherwise.
    func text(of ids: [Int], grounding: Bool) -> (text: String, entities: [GroundedEntity]?) {
        let raw = tokenizer.decode(ids.filter { $0 != eos })
        guard isKosmos2 else { return (raw, nil) }
        let processed = Grounding.postProcess(raw)
        return (processed.text, grounding ? processed.entities : nil)
    }
}
