import Foundation
import KosmosTensor
import KosmosVision

extension Tensor {
    /// Preprocessed pixel values [channels, height, width] as a tensor.
    public convenience init(_ pixels: PixelValues) {
        self.init(shape: pixels.shape, scalars: pixels.values)
    }
}

/// Turns image files into the pixel values a vision tower of `imageSize` expects: the directory's
/// preprocessor_config.json when it has one (transformers' CLIPImageProcessor fields), else the
/// "image_processor" section of a processor_config.json (as newer transformers save processors),
/// else OpenAI CLIP's preprocessing at that size.
public struct ImageInput {
    public let preprocessor: CLIPPreprocessor
    public let imageSize: Int
    /// Set when the family's images are patch sequences (Kosmos-2.5) rather than CLIP pixels:
    /// `load` then gives flattened patches [max_patches, depth] and `preprocessor` is unused.
    public let patches: Kosmos25ImageProcessor?

    public init(modelDirectory: URL?, imageSize: Int, decodeOptions: DecodeOptions = DecodeOptions()) throws {
        var config = CLIPPreprocessorConfig()
        let file = modelDirectory?.appendingPathComponent("preprocessor_config.json")
        let processorFile = modelDirectory?.appendingPathComponent("processor_config.json")
        if let file, FileManager.default.fileExists(atPath: file.path) {
            config = try CLIPPreprocessorConfig(contentsOf: file)
        } else if let processorFile, let data = FileManager.default.contents(atPath: processorFile.path),
                  let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let section = object["image_processor"] as? [String: Any] {
            config = try CLIPPreprocessorConfig(json: try JSONSerialization.data(withJSONObject: section),
                                                source: processorFile.path + " (image_processor)")
        } else {
            config.size = .shortestEdge(imageSize)
            config.cropHeight = imageSize
            config.cropWidth = imageSize
        }
        preprocessor = CLIPPreprocessor(config: config, decodeOptions: decodeOptions)
        self.imageSize = imageSize
        patches = nil
    }

    /// Images as Kosmos-2.5's patch sequences.
    public init(patches: Kosmos25ImageProcessor) {
        preprocessor = CLIPPreprocessor(decodeOptions: patches.decodeOptions)
        imageSize = 0
        self.patches = patches
    }

    private init(preprocessor: CLIPPreprocessor, imageSize: Int, patches: Kosmos25ImageProcessor?) {
        self.preprocessor = preprocessor
        self.imageSize = imageSize
        self.patches = patches
    }

    /// The same input computed as `backend` computes it (nil: as the model directory says).
    public func with(backend: ImageBackend?) -> ImageInput {
        guard let backend else { return self }
        var preprocessor = self.preprocessor
        preprocessor.config.backend = backend
        var patches = self.patches
        patches?.config.backend = backend
        return ImageInput(preprocessor: preprocessor, imageSize: imageSize, patches: patches)
    }

    /// Decodes and preprocesses one image file: pixels [3, imageSize, imageSize], or flattened
    /// patches for a patch-sequence family.
    public func load(_ url: URL) throws -> Tensor {
        if let patches { return Tensor(try patches.process(contentsOf: url)) }
        return try checked(try preprocessor.preprocess(contentsOf: url), url.path)
    }

    /// The same for an image's encoded bytes (JPEG or PNG).
    public func load(data: Data, source: String) throws -> Tensor {
        if let patches { return Tensor(try patches.process(data: data, source: source)) }
        return try checked(try preprocessor.preprocess(data: data, source: source), source)
    }

    private func checked(_ pixels: PixelValues, _ source: String) throws -> Tensor {
        guard pixels.shape == [3, imageSize, imageSize] else {
            throw ModelError.invalidInput("\(source): preprocessing gives \(pixels.shape), the vision tower expects [3, \(imageSize), \(imageSize)] (check preprocessor_config.json)")
        }
        return Tensor(pixels)
    }
}

extension Tensor {
    /// Flattened patches [max_patches, depth] as a tensor.
    public convenience init(_ patches: FlattenedPatches) {
        self.init(shape: [patches.maxPatches, patches.depth], scalars: patches.values)
    }
}

extension KosmosModel {
    /// Token ids for a prompt whose `<image>` and `<audio>` markers say where each image and each
    /// audio clip goes, in order: text segments are encoded one by one with `encode` (so each
    /// starts as a fresh piece of text, as a SentencePiece tokenizer adds its dummy prefix per
    /// segment), each marker becomes its open id, the kind's slots and its close id, and BOS is
    /// prepended when the configuration has one.
    /// `videoFrames[i]` is the frame count of the i-th video (`<video>`: T × num_image_tokens slots).
    public func promptTokens(_ prompt: String, imageCount: Int, audioCount: Int = 0, videoFrames: [Int] = [],
                             encode: (String) -> [Int]) throws -> [Int] {
        let c = configuration
        var tokens: [Int] = c.bosTokenId.map { [$0] } ?? []
        var images = 0, clips = 0, videos = 0
        var rest = Substring(prompt)
        while true {
            let image = rest.range(of: MediaKind.image.placeholder)
            let audio = c.audio == nil ? nil : rest.range(of: MediaKind.audio.placeholder)
            let video = c.video == nil ? nil : rest.range(of: MediaKind.video.placeholder)
            guard let next = [image, audio, video].compactMap({ $0 }).min(by: { $0.lowerBound < $1.lowerBound }) else { break }
            let segment = rest[rest.startIndex..<next.lowerBound]
            if !segment.isEmpty { tokens += encode(String(segment)) }
            if next == image {
                images += 1
                tokens += [c.imageTokenId] + [Int](repeating: c.slotTokenId, count: c.numImageTokens) + [c.imageEndTokenId]
            } else if next == audio, let a = c.audio {
                clips += 1
                tokens += [a.audioTokenId] + [Int](repeating: c.slotTokenId, count: a.numAudioTokens) + [a.audioEndTokenId]
            } else if let v = c.video {
                let frames = videos < videoFrames.count ? videoFrames[videos] : v.numFrames
                videos += 1
                tokens += [v.videoTokenId] + [Int](repeating: c.slotTokenId, count: frames * c.numImageTokens) + [v.videoEndTokenId]
            }
            rest = rest[next.upperBound...]
        }
        if !rest.isEmpty { tokens += encode(String(rest)) }
        guard images == imageCount else {
            throw ModelError.invalidInput("the prompt has \(images) <image> marker(s) but \(imageCount) image(s) were given")
        }
        guard clips == audioCount else {
            throw ModelError.invalidInput(c.audio == nil && audioCount > 0
                ? "this model has no audio encoder (no audio_config), so it takes no audio"
                : "the prompt has \(clips) <audio> marker(s) but \(audioCount) audio clip(s) were given")
        }
        guard videos == videoFrames.count else {
            throw ModelError.invalidInput(c.video == nil && !videoFrames.isEmpty
                ? "this model has no video_config, so it takes no video"
                : "the prompt has \(videos) <video> marker(s) but \(videoFrames.count) video(s) were given")
        }
        return tokens
    }
}
