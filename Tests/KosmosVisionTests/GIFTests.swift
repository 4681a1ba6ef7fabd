import Foundation
import KosmosFormats
import KosmosVision
import XCTest

/// GIFs' first frames decode to Pillow's pixels exactly (scripts/reference/gif_reference.py):
/// 256 and 13 colours, grey, interlaced and not, an animation, a transparent index, 7 × 5.
final class GIFTests: XCTestCase {
    func testFirstFramesDecodeAsPillowDoes() throws {
        let expected = try SafeTensorsFile(url: Fixtures.url("gif/expected.safetensors"))
        XCTAssertEqual(expected.names.count, 7)
        for file in expected.names {
            let url = Fixtures.url("gif/" + file)
            XCTAssertEqual(ImageDecoder.sniff(try Data(contentsOf: url)), .gif, file)
            let image = try ImageDecoder.decode(contentsOf: url)
            XCTAssertEqual([image.height, image.width, 3], expected.entry(file)?.shape, file)
            let want = try expected.withRawBytes(file) { Array($0) }
            XCTAssertEqual(zip(image.pixels, want).filter { $0 != $1 }.count, 0, "\(file): samples differ from Pillow's")
        }
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
