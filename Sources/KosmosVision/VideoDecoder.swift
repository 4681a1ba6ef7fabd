import CVideoCodecsSupport
import Foundation

/// Everything that can go wrong reading a video; each case names the file (or the request part).
public enum VideoError: Error, Equatable, CustomStringConvertible, LocalizedError {
    case fileNotFound(source: String)
    case unreadable(source: String, reason: String)
    case emptyFile(source: String)
    case unknownFormat(source: String, detail: String)
    case noVideoStream(source: String)
    case unsupportedCodec(source: String, detail: String)
    case corrupt(source: String, detail: String)
    case noFrames(source: String)
    case tooManyPixels(source: String, detail: String)
    case tooManyFrames(source: String, detail: String)
    case codecsUnavailable(source: String)
    case failed(source: String, detail: String)

    public var description: String {
        switch self {
        case .fileNotFound(let s): return "\(s): no such file"
        case .unreadable(let s, let r): return "\(s): cannot read file (\(r))"
        case .emptyFile(let s): return "\(s): file is empty (0 bytes)"
        case .unknownFormat(let s, let d): return "\(s): not a video file this build reads (\(d)); MP4, WebM, MKV, AVI and animated GIF are supported"
        case .noVideoStream(let s): return "\(s): the file has no video stream"
        case .unsupportedCodec(let s, let d): return "\(s): unsupported video codec (\(d))"
        case .corrupt(let s, let d): return "\(s): corrupt or truncated video data: \(d)"
        case .noFrames(let s): return "\(s): the video has no frames"
        case .tooManyPixels(let s, let d): return "\(s): \(d)"
        case .tooManyFrames(let s, let d): return "\(s): \(d)"
        case .codecsUnavailable(let s): return "\(s): this build has no FFmpeg (libavformat, libswscale), so videos cannot be read; install FFmpeg's dev libraries and rebuild"
        case .failed(let s, let d): return "\(s): \(d)"
        }
    }

    public var errorDescription: String? { description }
}

/// What a video holds (from its container and one pass over its packets).
public struct VideoInfo: Sendable {
    public var width: Int, height: Int
    /// Frames in display order.
    public var frameCount: Int
    public var duration: Double
    public var fps: Double
    public var codec: String, container: String
}

/// Opens videos through FFmpeg (CVideoCodecsSupport) with limits on pixels per frame and frames.
public struct VideoDecoder: Sendable {
    public var maxPixels: Int
    public var maxFrames: Int

    public init(maxPixels: Int = 50_000_000, maxFrames: Int = 10_000_000) {
        self.maxPixels = maxPixels
        self.maxFrames = maxFrames
    }

    public func open(contentsOf url: URL) throws -> VideoFile {
        let source = url.path
        guard FileManager.default.fileExists(atPath: source) else { throw VideoError.fileNotFound(source: source) }
        let size = (try? FileManager.default.attributesOfItem(atPath: source)[.size] as? NSNumber)?.intValue ?? 0
        guard size > 0 else { throw VideoError.emptyFile(source: source) }
        var info = kvid_info(), handle: OpaquePointer? = nil
        let status = kvid_open_file(source, Int64(maxPixels), Int64(maxFrames), &info, &handle)
        try Self.check(status, &info, source: source)
        return VideoFile(handle: handle!, info: info, source: source, bytes: nil)
    }

    /// Bytes of a video (a request's data: URL, a tar member); `source` names them in errors.
    public func open(data: Data, source: String) throws -> VideoFile {
        guard !data.isEmpty else { throw VideoError.emptyFile(source: source) }
        let bytes = [UInt8](data)
        var info = kvid_info(), handle: OpaquePointer? = nil
        let status = bytes.withUnsafeBufferPointer { kvid_open_memory($0.baseAddress, $0.count, Int64(maxPixels), Int64(maxFrames), &info, &handle) }
        try Self.check(status, &info, source: source)
        return VideoFile(handle: handle!, info: info, source: source, bytes: bytes)
    }

    public enum Format: String, Sendable {
        case aviMJPEG = "avi-mjpeg"
        case mp4H264 = "mp4-h264"
        case gif
    }

    /// Writes frames (all the same size) to a real container through FFmpeg.
    public static func encode(_ frames: [RGBImage], fps: Int, format: Format, to url: URL) throws {
        guard let first = frames.first, frames.allSatisfy({ $0.width == first.width && $0.height == first.height }) else {
            throw VideoError.failed(source: url.path, detail: "encoding needs at least one frame, all of one size")
        }
        let rgb = frames.flatMap(\.pixels)
        var info = kvid_info()
        let status = rgb.withUnsafeBufferPointer {
            kvid_encode_file(url.path, format.rawValue, $0.baseAddress, Int32(frames.count), Int32(first.width), Int32(first.height),
                             Int32(fps), &info)
        }
        try check(status, &info, source: url.path)
    }

    static func text<T>(_ tuple: inout T) -> String {
        withUnsafeBytes(of: &tuple) { raw in String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self) }
    }

    static func check(_ status: Int32, _ info: inout kvid_info, source: String) throws {
        let message = text(&info.message)
        switch Int(status) {
        case Int(KVID_OK): return
        case Int(KVID_NOT_AVAILABLE): throw VideoError.codecsUnavailable(source: source)
        case Int(KVID_OPEN_FAILED): throw VideoError.unknownFormat(source: source, detail: message.isEmpty ? "unrecognised data" : message)
        case Int(KVID_NO_VIDEO): throw VideoError.noVideoStream(source: source)
        case Int(KVID_UNSUPPORTED_CODEC): throw VideoError.unsupportedCodec(source: source, detail: message)
        case Int(KVID_TOO_MANY_PIXELS): throw VideoError.tooManyPixels(source: source, detail: message)
        case Int(KVID_TOO_MANY_FRAMES): throw VideoError.tooManyFrames(source: source, detail: message)
        case Int(KVID_EMPTY): throw VideoError.noFrames(source: source)
        case Int(KVID_CORRUPT): throw VideoError.corrupt(source: source, detail: message)
        default: throw VideoError.failed(source: source, detail: message.isEmpty ? "status \(status)" : message)
        }
    }
}

/// An opened video: its info, and frames decoded on request. Not for concurrent use.
public final class VideoFile {
    let handle: OpaquePointer
    public let info: VideoInfo
    public let source: String
    /// Memory the decoder reads from (open(data:)), kept alive with it.
    let bytes: [UInt8]?
    /// Pictures the decoder produced and seeks it made in the last `frames` call (seeking decodes
    /// a few groups of pictures, not the whole file).
    public private(set) var lastDecodedPictures = 0, lastSeeks = 0

    init(handle: OpaquePointer, info raw: kvid_info, source: String, bytes: [UInt8]?) {
        self.handle = handle
        var copy = raw
        info = VideoInfo(width: Int(raw.width), height: Int(raw.height), frameCount: Int(raw.frame_count), duration: raw.duration_seconds,
                         fps: raw.fps, codec: VideoDecoder.text(&copy.codec), container: VideoDecoder.text(&copy.container))
        self.source = source
        self.bytes = bytes
    }

    deinit { kvid_close(handle) }

    /// The frames at `indices` (ascending, distinct, each < frameCount) with their times.
    public func frames(at indices: [Int]) throws -> [(index: Int, image: RGBImage, time: Double)] {
        guard !indices.isEmpty else { return [] }
        let w = info.width, h = info.height
        var rgb = [UInt8](repeating: 0, count: indices.count * w * h * 3)
        var times = [Double](repeating: 0, count: indices.count)
        var raw = kvid_info()
        let status = rgb.withUnsafeMutableBufferPointer { out in
            times.withUnsafeMutableBufferPointer { t in
                indices.map(Int64.init).withUnsafeBufferPointer { i in
                    kvid_decode_frames(handle, i.baseAddress, Int32(indices.count), out.baseAddress, t.baseAddress, &raw)
                }
            }
        }
        try VideoDecoder.check(status, &raw, source: source)
        lastDecodedPictures = Int(raw.decoded_frames)
        lastSeeks = Int(raw.seeks)
        let frameBytes = w * h * 3
        return indices.enumerated().map { k, index in
            (index, RGBImage(width: w, height: h, pixels: Array(rgb[(k * frameBytes)..<((k + 1) * frameBytes)])), times[k])
        }
    }

    /// Every frame's time in seconds, in display order.
    public func frameTimes() throws -> [Double] {
        var times = [Double](repeating: 0, count: info.frameCount)
        var raw = kvid_info()
        let status = times.withUnsafeMutableBufferPointer { kvid_frame_times(handle, $0.baseAddress, Int64($0.count)) }
        try VideoDecoder.check(status, &raw, source: source)
        return times
    }

    /// The frames a sampling rule picks (a rate reads the frames' own times).
    public func frames(_ sampling: FrameSampling) throws -> [(index: Int, image: RGBImage, time: Double)] {
        var times: [Double] = []
        if case .rate = sampling { times = try frameTimes() }
        let indices = sampling.indices(frameCount: info.frameCount, timestamps: times)
        guard !indices.isEmpty else { throw VideoError.noFrames(source: source) }
        return try frames(at: indices)
    }
}
