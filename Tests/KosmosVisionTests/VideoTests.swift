import Foundation
import XCTest
@testable import KosmosVision

/// Video through the FFmpeg layer: synthetic clips encoded to real containers and read back,
/// the sampling rule on a real file, and bad input (named errors, never a crash).
final class VideoTests: XCTestCase {
    func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("kosmos-video-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    static func meanAbsoluteDifference(_ a: RGBImage, _ b: RGBImage) -> Double {
        zip(a.pixels, b.pixels).reduce(0.0) { $0 + abs(Double($1.0) - Double($1.1)) } / Double(a.pixels.count)
    }

    func testEncodedClipsReadBackFrameForFrame() throws {
        let folder = try temporaryFolder()
        let clip = SyntheticMotion.clip(seed: 3, frames: 12, size: 32)
        for format in [VideoDecoder.Format.aviMJPEG, .mp4H264, .gif] {
            let url = folder.appendingPathComponent("clip.\(format == .aviMJPEG ? "avi" : format == .gif ? "gif" : "mp4")")
            try VideoDecoder.encode(clip.frames, fps: 8, format: format, to: url)
            let video = try VideoDecoder().open(contentsOf: url)
            XCTAssertEqual(video.info.frameCount, 12, "\(format)")
            XCTAssertEqual(video.info.width, 32)
            XCTAssertEqual(video.info.height, 32)
            let all = try video.frames(at: Array(0..<12))
            let times = try video.frameTimes()
            XCTAssertEqual(times.count, 12)
            // GIF stores delays in hundredths of a second: 1/8 s becomes 0.13 and 0.12 in turn.
            for k in 1..<12 { XCTAssertEqual(times[k] - times[k - 1], 1.0 / 8, accuracy: format == .gif ? 0.006 : 1e-6, "\(format)") }
            for (i, frame) in all.enumerated() {
                // Lossy codecs: each decoded frame is close to the frame it encoded, and closer to it
                // than to any other frame of the clip (the order survives).
                let own = Self.meanAbsoluteDifference(frame.image, clip.frames[i])
                XCTAssertLessThan(own, 12, "\(format) frame \(i)")
                for j in 0..<12 where j != i && Self.meanAbsoluteDifference(clip.frames[j], clip.frames[i]) > 2 * own + 1 {
                    XCTAssertLessThan(own, Self.meanAbsoluteDifference(frame.image, clip.frames[j]), "\(format) frame \(i) vs \(j)")
                }
            }
            // A subset equals the same frames decoded with all the others (seeking is exact).
            let some = try VideoDecoder().open(contentsOf: url).frames(at: [0, 4, 7, 11])
            for (k, i) in [0, 4, 7, 11].enumerated() {
                XCTAssertEqual(some[k].image.pixels, all[i].image.pixels, "\(format) frame \(i)")
                XCTAssertEqual(some[k].index, i)
            }
            XCTAssertEqual(try video.frames(.uniform(4)).map(\.index), [0, 4, 7, 11])
            // 2 per second: t = 0, 0.5, 1.0 (and 1.5 within the GIF's 1.51 s): the frame on screen at each.
            XCTAssertEqual(try video.frames(.rate(fps: 2, cap: 8)).map(\.index), format == .gif ? [0, 4, 8, 11] : [0, 4, 8], "\(format)")
            // From memory: the same frames.
            let memory = try VideoDecoder().open(data: try Data(contentsOf: url), source: "memory").frames(at: [5])
            XCTAssertEqual(memory[0].image.pixels, all[5].image.pixels, "\(format)")
        }
    }

    /// Eight frames of a long video decode a few groups of pictures around them, not the file.
    func testSamplingALongVideoSeeks() throws {
        let folder = try temporaryFolder()
        let url = folder.appendingPathComponent("long.mp4")
        var frames: [RGBImage] = []
        for i in 0..<400 { frames.append(SyntheticMotion.clip(seed: UInt64(i / 8), frames: 8, size: 16).frames[i % 8]) }
        try VideoDecoder.encode(frames, fps: 8, format: .mp4H264, to: url)   // a keyframe at least every 8 frames
        let video = try VideoDecoder().open(contentsOf: url)
        XCTAssertEqual(video.info.frameCount, 400)
        let sampled = try video.frames(.uniform(8))
        XCTAssertEqual(sampled.map(\.index), [0, 57, 114, 171, 228, 285, 342, 399])
        XCTAssertLessThanOrEqual(video.lastDecodedPictures, 8 * 9)
        XCTAssertGreaterThan(video.lastSeeks, 0)
        // The frames equal those of a decode from the start.
        let all = try VideoDecoder().open(contentsOf: url).frames(at: Array(0..<400))
        for f in sampled { XCTAssertEqual(f.image.pixels, all[f.index].image.pixels, "frame \(f.index)") }
    }

    func testBadVideosAreNamedErrors() throws {
        let folder = try temporaryFolder()
        let good = folder.appendingPathComponent("good.avi")
        try VideoDecoder.encode(SyntheticMotion.clip(seed: 1).frames, fps: 8, format: .aviMJPEG, to: good)
        let bytes = try Data(contentsOf: good)
        let audio = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/audio/tone.m4a")
        let cases: [(URL, Data?, String)] = [
            (folder.appendingPathComponent("missing.mp4"), nil, "no such file"),
            (folder.appendingPathComponent("empty.mp4"), Data(), "file is empty"),
            (folder.appendingPathComponent("text.mp4"), Data("not a video at all\n".utf8), "not a video file"),
            (folder.appendingPathComponent("cut.avi"), bytes.prefix(40), "cut.avi"),
            (audio, nil, "no video stream"),
        ]
        for (url, contents, message) in cases {
            if let contents { try contents.write(to: url) }
            XCTAssertThrowsError(try VideoDecoder().open(contentsOf: url).frames(.uniform(4))) { error in
                XCTAssertTrue("\(error)".contains(message) && "\(error)".contains(url.lastPathComponent), "\(error) should name \(url.lastPathComponent) and say \(message)")
            }
        }
        XCTAssertThrowsError(try VideoDecoder(maxPixels: 500).open(contentsOf: good)) { XCTAssertTrue("\($0)".contains("good.avi"), "\($0)") }
        XCTAssertThrowsError(try VideoDecoder(maxFrames: 3).open(contentsOf: good)) { XCTAssertTrue("\($0)".contains("good.avi"), "\($0)") }
        let video = try VideoDecoder().open(contentsOf: good)
        XCTAssertThrowsError(try video.frames(at: [3, 2])) { XCTAssertTrue("\($0)".contains("good.avi"), "\($0)") }
        XCTAssertThrowsError(try video.frames(at: [8])) { XCTAssertTrue("\($0)".contains("good.avi"), "\($0)") }
    }

    /// Random damage to real files through the demuxer and decoder, as data sets and the server
    /// read them: an error or frames, never a crash.
    func testSeededFuzzOfTheDemuxerPath() throws {
        let folder = try temporaryFolder()
        var originals: [Data] = []
        for (i, format) in [VideoDecoder.Format.aviMJPEG, .mp4H264, .gif].enumerated() {
            let url = folder.appendingPathComponent("seed\(i)")
            try VideoDecoder.encode(SyntheticMotion.clip(seed: UInt64(i)).frames, fps: 8, format: format, to: url)
            originals.append(try Data(contentsOf: url))
        }
        var rng = SplitMix64(seed: 17)
        var read = 0, refused = 0
        for round in 0..<240 {
            var bytes = [UInt8](originals[round % originals.count])
            for _ in 0..<(1 + rng.below(6)) {
                switch rng.below(4) {
                case 0, 1: bytes[rng.below(bytes.count)] = UInt8(rng.below(256))
                case 2: bytes = Array(bytes.prefix(rng.below(bytes.count + 1)))
                default: bytes.insert(contentsOf: (0..<rng.below(16)).map { _ in UInt8(rng.below(256)) }, at: rng.below(bytes.count + 1))
                }
                if bytes.isEmpty { break }
            }
            do {
                _ = try VideoDecoder(maxPixels: 1 << 20, maxFrames: 1000).open(data: Data(bytes), source: "fuzz").frames(.uniform(4))
                read += 1
            } catch {
                refused += 1
            }
        }
        XCTAssertEqual(read + refused, 240)
        XCTAssertGreaterThan(read, 10)
        XCTAssertGreaterThan(refused, 10)
    }
}
