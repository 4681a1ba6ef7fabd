import Foundation
import KosmosTensor
import KosmosVision

/// A Kosmos-1 directory's `video_config` (docs/video.md): how many frames a video becomes and its
/// markers. Frames go through the vision tower and the image resampler, whose `num_media_embeds`
/// time embeddings (`media_pos_emb`) bound the frames of one video.
public struct VideoConfiguration: Codable, Equatable, Sendable {
    /// Frames sampled uniformly over a video (indices round(linspace(0, frames − 1, N))).
    public var numFrames = 8
    /// The most frames one video may have (sampling by rate is capped here); at most the
    /// resampler's num_media_embeds.
    public var maxFrames = 8
    public var videoTokenId = 32004
    public var videoEndTokenId = 32005

    public init() {}

    enum CodingKeys: String, CodingKey {
        case numFrames = "num_frames"
        case maxFrames = "max_frames"
        case videoTokenId = "video_token_id"
        case videoEndTokenId = "video_end_token_id"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = VideoConfiguration()
        numFrames = try c.decode(.numFrames, default: d.numFrames)
        maxFrames = try c.decode(.maxFrames, default: max(d.maxFrames, numFrames))
        videoTokenId = try c.decode(.videoTokenId, default: d.videoTokenId)
        videoEndTokenId = try c.decode(.videoEndTokenId, default: d.videoEndTokenId)
    }

    public func validate(resampler: PerceiverConfiguration) throws {
        func fail(_ field: String, _ why: String) -> ModelError { .invalidConfiguration(field: "video_config." + field, reason: why) }
        guard numFrames >= 1 else { throw fail("num_frames", "must be at least 1") }
        guard maxFrames >= numFrames else { throw fail("max_frames", "\(maxFrames) is below num_frames \(numFrames)") }
        guard maxFrames <= resampler.numMediaEmbeds else {
            throw fail("max_frames", "\(maxFrames) exceeds the resampler's num_media_embeds \(resampler.numMediaEmbeds) (its time embeddings)")
        }
        guard videoTokenId != videoEndTokenId else { throw fail("video_end_token_id", "equals video_token_id \(videoTokenId)") }
    }
}

/// Turns video files into the frames a model reads: the frames chosen by the sampling rule
/// (`num_frames` uniformly, or a rate with `max_frames` as the cap), decoded, each through the
/// model's CLIP preprocessing → [T, 3, size, size].
public struct VideoInput: @unchecked Sendable {
    public let configuration: VideoConfiguration
    public let images: ImageInput
    public let decoder: VideoDecoder
    public let sampling: FrameSampling

    /// `fps`: one frame per 1/fps seconds (at most max_frames) instead of num_frames uniformly.
    public init(configuration: VideoConfiguration, images: ImageInput, fps: Double? = nil, maxPixels: Int = DecodeOptions().maxPixels) {
        self.configuration = configuration
        self.images = images
        decoder = VideoDecoder(maxPixels: maxPixels)
        sampling = fps.map { .rate(fps: $0, cap: configuration.maxFrames) } ?? .uniform(configuration.numFrames)
    }

    /// A video's sampled frames: pixels [T, 3, size, size], their indices and times (seconds).
    public struct Frames {
        public var pixels: Tensor
        public var indices: [Int]
        public var times: [Double]
        public var info: VideoInfo
    }

    public func load(_ url: URL) throws -> Frames { try frames(of: try decoder.open(contentsOf: url), source: url.path) }

    public func load(data: Data, source: String) throws -> Frames { try frames(of: try decoder.open(data: data, source: source), source: source) }

    func frames(of video: VideoFile, source: String) throws -> Frames {
        let decoded = try video.frames(sampling)
        let size = images.imageSize
        let pixels = try decoded.map { frame -> Tensor in
            let p = try images.preprocessor.preprocess(frame.image, source: source)
            guard p.shape == [3, size, size] else {
                throw ModelError.invalidInput("\(source): preprocessing gives \(p.shape), the vision tower expects [3, \(size), \(size)]")
            }
            return Tensor(p).unsqueezed(0)
        }
        return Frames(pixels: Tensor.concatenate(pixels, axis: 0), indices: decoded.map(\.index), times: decoded.map(\.time), info: video.info)
    }
}
