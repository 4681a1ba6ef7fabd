import Foundation
import XCTest
@testable import KosmosVision

/// The frame-sampling rule of docs/video.md against numpy (scripts/reference/frame_indices_reference.py).
final class FrameSamplingTests: XCTestCase {
    func testUniformIndicesEqualNumpy() throws {
        struct Case: Decodable { let frames: Int; let n: Int; let indices: [Int] }
        struct File: Decodable { let cases: [Case] }
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/video/frame_indices.json")
        let file = try JSONDecoder().decode(File.self, from: Data(contentsOf: url))
        XCTAssertGreaterThanOrEqual(file.cases.count, 12)
        for c in file.cases {
            XCTAssertEqual(FrameSampling.uniform(c.n).indices(frameCount: c.frames), c.indices, "\(c.frames) frames, N \(c.n)")
        }
        XCTAssertEqual(FrameSampling.uniform(8).indices(frameCount: 0), [])
    }

    func testRateSamplingTakesTheFrameOnScreenAndCaps() {
        // 10 frames at 4 fps (0, 0.25, …, 2.25 s); 2 fps: t = 0, 0.5, 1.0, 1.5, 2.0.
        let ts = (0..<10).map { Double($0) * 0.25 }
        XCTAssertEqual(FrameSampling.rate(fps: 2, cap: 32).indices(frameCount: 10, timestamps: ts), [0, 2, 4, 6, 8])
        // Faster than the video: every frame once.
        XCTAssertEqual(FrameSampling.rate(fps: 10, cap: 32).indices(frameCount: 10, timestamps: ts), Array(0..<10))
        // Irregular timestamps: the last frame whose time is ≤ t (t = 0, 1, 2, 3; the video ends at 3.95 s).
        XCTAssertEqual(FrameSampling.rate(fps: 1, cap: 32).indices(frameCount: 4, timestamps: [0, 0.9, 1.05, 2.5]), [0, 1, 2, 3])
        // Capped: the uniform rule over the picked frames.
        XCTAssertEqual(FrameSampling.rate(fps: 10, cap: 4).indices(frameCount: 10, timestamps: ts), [0, 3, 6, 9])
    }
}
