import Foundation
import KosmosTensor

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
