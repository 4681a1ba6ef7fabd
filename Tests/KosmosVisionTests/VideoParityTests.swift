import Foundation
import XCTest
import KosmosFormats
@testable import KosmosVision

/// Decoded frames against PyAV's `frame.to_ndarray(format="rgb24")` at the indices of the
/// sampling rule (scripts/reference/video_reference.py; the clips from
/// scripts/reference/video_codec_fixtures.sh).
final class VideoParityTests: XCTestCase {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/video")

    func testFramesEqualPyAV() throws {
        let expected = try SafeTensorsFile(url: Self.folder.appendingPathComponent("frames_expected.safetensors"))
        for name in ["clip.avi", "clip.gif", "clip.mp4", "clip.webm", "clip.mkv"] {
            let video = try VideoDecoder().open(contentsOf: Self.folder.appendingPathComponent(name))
            XCTAssertEqual(video.info.frameCount, Int(try expected.int64s("\(name).frame_count")[0]), name)
            let indices = FrameSampling.uniform(4).indices(frameCount: video.info.frameCount)
            XCTAssertEqual(indices.map(Int64.init), try expected.int64s("\(name).indices"), name)
            let frames = try video.frames(at: indices)
            let ours = frames.flatMap(\.image.pixels)
            let theirs = try expected.withRawBytes("\(name).frames") { Array($0.bindMemory(to: UInt8.self)) }
            XCTAssertEqual(ours.count, theirs.count, name)
            let differences = zip(ours, theirs).map { abs(Int($0) - Int($1)) }
            let worst = differences.max() ?? 0, differing = differences.filter { $0 > 0 }.count
            print("\(name): \(video.info.codec), largest difference from PyAV \(worst), \(differing) of \(ours.count) bytes differ")
            XCTAssertEqual(worst, 0, name)
        }
    }

    /// An AVI whose video FourCC no decoder knows ("MJPG" → "ZZZZ"): a named unsupported-codec error.
    func testUnknownCodecIsUnsupported() throws {
        var bytes = [UInt8](try Data(contentsOf: Self.folder.appendingPathComponent("clip.avi")))
        let mjpg = Array("MJPG".utf8)
        var replaced = 0
        for i in 0..<(bytes.count - 3) where Array(bytes[i..<(i + 4)]) == mjpg {
            bytes.replaceSubrange(i..<(i + 4), with: Array("ZZZZ".utf8))
            replaced += 1
        }
        XCTAssertEqual(replaced, 2)
        XCTAssertThrowsError(try VideoDecoder().open(data: Data(bytes), source: "zzzz.avi").frames(.uniform(4))) {
            XCTAssertTrue("\($0)".contains("zzzz.avi: unsupported video codec"), "\($0)")
        }
    }

    func testDamagedFixturesAreNamedErrorsOrWhatTheyHold() throws {
        XCTAssertThrowsError(try VideoDecoder().open(contentsOf: Self.folder.appendingPathComponent("empty.mp4"))) {
            XCTAssertTrue("\($0)".contains("empty.mp4") && "\($0)".contains("empty"), "\($0)")
        }
        for name in ["truncated.mp4", "corrupt.avi"] {
            do {
                let video = try VideoDecoder().open(contentsOf: Self.folder.appendingPathComponent(name))
                let frames = try video.frames(.uniform(4))
                XCTAssertFalse(frames.isEmpty, name)
            } catch {
                XCTAssertTrue("\(error)".contains(name), "\(error) should name \(name)")
            }
        }
    }
}
