import Foundation
import KosmosModels
import KosmosTensor
import KosmosTokenizers
import KosmosVision

/// A model of any registered family with its tokenizer, input processor and image preprocessing,
/// as the server serves it. Prompt preparation (tokenizing, image decoding) is safe from any
/// thread; `prefill` and the decoder belong to the scheduler's thread only.
public final class ServedModel: @unchecked Sendable {
    /// The id clients name in `model`.
    public let name: String
    public let model: any GenerativeModel
    public let processor: any InputProcessor
    let imageInput: ImageInput
    let audioInput: AudioInput?
    let videoInput: VideoInput?

    /// A prompt ready for the scheduler: its token ids and media.
    public typealias Prompt = ModelInput

    /// Loads a model directory of any family the registry knows (config.json, weights, and the
    /// family's tokenizer: for Kosmos-2, tokenizer.json or sentencepiece.bpe.model, as the CLI), the
    /// weights stored as `dtype`.
    public convenience init(directory: URL, tokenizer explicit: URL? = nil, name: String? = nil, maxImagePixels: Int,
                            dtype: DType = .float32, imageBackend: ImageBackend? = nil) throws {
        let model = try ModelRegistry.load(directory, dtype: dtype)
        let tokenizer = try model.loadTokenizer(directory: directory, explicit: explicit)
        let input = try model.imageInput(directory: directory, decodeOptions: DecodeOptions(maxPixels: maxImagePixels)).with(backend: imageBackend)
        try self.init(model: model, tokenizer: tokenizer, imageInput: input, name: name ?? directory.standardizedFileURL.lastPathComponent)
    }

    public init(model: any GenerativeModel, tokenizer: Tokenizer, imageInput: ImageInput, name: String) throws {
        self.model = model
        do {
            processor = try model.processor(tokenizer: tokenizer)
        } catch {
            throw APIError(status: 500, message: "\(error)", type: "server_error")
        }
        self.imageInput = imageInput
        do {
            audioInput = try model.audioConfiguration.map(AudioInput.init)
        } catch {
            throw APIError(status: 500, message: "\(error)", type: "server_error")
        }
        videoInput = model.videoConfiguration.map { VideoInput(configuration: $0, images: imageInput, maxPixels: imageInput.preprocessor.decodeOptions.maxPixels) }
        self.name = name
    }

    public var tokenizer: Tokenizer { processor.tokenizer }
    public var supportsGrounding: Bool { processor.supportsGrounding }
    public var decoder: any TextDecoder { model.textDecoder }
    public var eos: Int? { model.eosTokenId }
    /// The model's context in positions (prompt + new tokens).
    public var contextLength: Int { model.contextLength }

    /// Decodes and preprocesses one image (JPEG or PNG bytes): [3, size, size], or a patch
    /// sequence for Kosmos-2.5.
    public func image(data: Data, source: String) throws -> Tensor {
        do {
            return try imageInput.load(data: data, source: source)
        } catch let error as ModelError {
            throw APIError.invalid("\(error)")
        }
    }

    /// Decodes an audio clip (any supported format's bytes) to its log-mel features.
    public func audio(data: Data, source: String) throws -> Tensor {
        guard let audioInput else {
            throw APIError.invalid("\(source): \(model.family.name) takes no audio (the model has no audio_config)", param: "messages")
        }
        return try audioInput.load(data: [UInt8](data), source: source)
    }

    /// Decodes a video (any supported container's bytes) to its sampled frames [T, 3, size, size].
    public func video(data: Data, source: String) throws -> Tensor {
        guard let videoInput else {
            throw APIError.invalid("\(source): \(model.family.name) takes no video (the model has no video_config)", param: "messages")
        }
        return try videoInput.load(data: data, source: source).pixels
    }

    /// The prompt for `text` whose `<image>` and `<audio>` markers say where each image and clip
    /// goes, built by the family's processor as `kosmos generate` builds it (`grounding` for a
    /// grounding family).
    public func prompt(text: String, images: [Tensor], audio: [Tensor] = [], videos: [Tensor] = [], grounding: Bool = false) throws -> Prompt {
        if let limit = processor.mediaLimit(.image), images.count > limit {
            throw APIError.invalid("\(model.family.name) takes at most \(limit) image\(limit == 1 ? "" : "s") per request", param: "messages")
        }
        do {
            return try processor.input(text: text, media: images.map(MediaItem.image) + audio.map(MediaItem.audio) + videos.map(MediaItem.video),
                                       grounding: grounding)
        } catch let error as ModelError {
            throw APIError.invalid("\(error)", param: "messages")
        }
    }

    /// A prefill of the prompt (its images encoded now) into a fresh cache, to be advanced a chunk
    /// of `chunkSize` positions at a time. Scheduler thread only.
    func startPrefill(_ prompt: Prompt, cache: DecoderCache, chunkSize: Int) throws -> PromptPrefill {
        try model.startPrefill(prompt, cache: cache, chunkSize: chunkSize)
    }

    /// The text of generated ids (EOS dropped); a grounding family's markup is turned into
    /// entities when `grounding`, and removed otherwise.
    func text(of ids: [Int], grounding: Bool) -> (text: String, entities: [GroundedEntity]?) {
        let output = processor.output(ids, grounding: grounding)
        return (output.text, output.entities)
    }
}
