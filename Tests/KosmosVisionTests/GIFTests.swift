import Foundation
import KosmosFormats
import KosmosVision
import XCTest

/// GIFs' first frames decode to Pillow's pixels exactly (scripts/reference/gif_reference.py):
/// 256 and 13 colours, grey, interlaced and not, an animation, a transparent index, 7 × 5, and
/// first frames smaller than the screen (with and without a transparent index).
final class GIFTests: XCTestCase {
    func testFirstFramesDecodeAsPillowDoes() throws {
        try assertDecodeAsPillow(folder: "gif", format: .gif, count: 9)
    }

    func testBadGIFsAreNamedAndNeverCrash() throws {
        let data = try Data(contentsOf: Fixtures.url("gif/photo13.gif"))
        XCTAssertThrowsError(try ImageDecoder.decode(data: data.prefix(400), source: "cut.gif")) { error in
            XCTAssertEqual(error as? ImageError, .truncated(source: "cut.gif", format: "GIF"))
        }
        for n in stride(from: 13, to: data.count, by: 29) { _ = try? ImageDecoder.decode(data: data.prefix(n), source: "p.gif") }
        var noisy = data
        for i in stride(from: 900, to: noisy.count - 1, by: 5) { noisy[i] ^= 0x5A }
        _ = try? ImageDecoder.decode(data: noisy, source: "noisy.gif")  // an error or an image, never a crash
    }
}
