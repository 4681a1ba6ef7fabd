import Foundation
import KosmosAudio
import KosmosTensor
import KosmosTokenizers
import KosmosVision

/// A model directory loaded for use: the model (any registered family), its tokenizer and input
/// processor, and its image preprocessing. What `generate`, `chat`, `caption` and eval work with.
public final class ModelSession {
    public let model: any GenerativeModel
    public let processor: any InputProcessor
    public let images: ImageInput
    /// How audio files become features, when the model takes audio.
    public let audio: AudioInput?
    /// How video files become frames, when the model takes video.
    public let videos: VideoInput?
    public var tokenizer: Tokenizer { processor.tokenizer }

    /// The dtype the weights of the Linear and Embedding layers are stored in.
    public let dtype: DType

    /// Loads `directory` through the registry; `tokenizer` overrides the directory's tokenizer file;
    /// `dtype` is the weights' storage (docs/precision.md).
    /// `videoFPS`: sample videos at this rate (capped at max_frames) instead of num_frames uniformly.
    /// `imageBackend`: compute images as that transformers backend does instead of what the
    /// directory's preprocessor config says (docs/images.md).
    public init(directory: URL, tokenizer explicit: URL? = nil, dtype: DType = .float32,
                decodeOptions: DecodeOptions = DecodeOptions(), videoFPS: Double? = nil, imageBackend: ImageBackend? = nil) throws {
        self.dtype = dtype
        model = try ModelRegistry.load(directory, dtype: dtype)
        processor = try model.processor(tokenizer: try model.loadTokenizer(directory: directory, explicit: explicit))
        images = try model.imageInput(directory: directory, decodeOptions: decodeOptions).with(backend: imageBackend)
        audio = try model.audioConfiguration.map(AudioInput.init)
        let images = self.images
        videos = model.videoConfiguration.map { VideoInput(configuration: $0, images: images, fps: videoFPS, maxPixels: decodeOptions.maxPixels) }
    }

    /// A warning when the tokenizer's vocabulary cannot be the model's (the model may add its
    /// media tokens after the tokenizer's pieces, so only a larger tokenizer, or a much smaller
    /// one, is suspicious); nil when they fit.
    public var vocabularyWarning: String? { Self.vocabularyWarning(tokenizer: tokenizer, model: model) }

    public static func vocabularyWarning(tokenizer: Tokenizer, model: some GenerativeModel) -> String? {
        let tokens = tokenizer.vocabularySize, vocabulary = model.textDecoder.vocabularySize
        guard tokens > vocabulary || tokens + 8 < vocabulary else { return nil }
        return "the tokenizer has \(tokens) tokens, the model \(vocabulary); ids the tokenizer does not know decode to nothing"
    }

    /// The model input for a prompt (placeholders `<image>` and `<audio>` mark the media) and
    /// image and audio files (each kind in the order of its placeholders).
    public func input(text: String, imageFiles: [URL], audioFiles: [URL] = [], videoFiles: [URL] = [],
                      grounding: Bool = false) throws -> ModelInput {
        var media = try imageFiles.map { MediaItem.image(try images.load($0)) }
        if !videoFiles.isEmpty {
            guard let videos else {
                throw ModelError.invalidInput("\(model.family.name) takes no video (the model directory has no video_config)")
            }
            media += try videoFiles.map { MediaItem.video(try videos.load($0).pixels) }
        }
        if !audioFiles.isEmpty {
            guard let audio else {
                throw ModelError.invalidInput("\(model.family.name) takes no audio (the model directory has no audio_config)")
            }
            media += try audioFiles.map { MediaItem.audio(try audio.load($0)) }
        }
        return try processor.input(text: text, media: media, grounding: grounding)
    }

}
