import Foundation
import KosmosFormats
import KosmosVision
import XCTest

/// WebP files written by Pillow decode to Pillow's pixels exactly (scripts/reference/webp_reference.py):
/// lossy and lossless, with alpha dropped or composited over white, an odd size.
final class WebPTests: XCTestCase {
    func testWebPDecodesAsPillowDoes() throws {
        let expected = try SafeTensorsFile(url: Fixtures.url("webp/expected.safetensors"))
        var checked = 0
        for file in ["lossy.webp", "lossless.webp", "lossy_alpha.webp", "lossless_alpha.webp", "odd_7x5.webp"] {
            let url = Fixtures.url("webp/" + file)
            XCTAssertEqual(ImageDecoder.sniff(try Data(contentsOf: url)), .webp)
            for (key, options) in [("rgb", DecodeOptions()), ("on_white", DecodeOptions(alphaOnWhite: true))] {
                guard let entry = expected.entry("\(file).\(key)") else { continue }
                let image = try ImageDecoder.decode(contentsOf: url, options: options)
                XCTAssertEqual([image.height, image.width, 3], entry.shape, file)
                let want = try expected.withRawBytes("\(file).\(key)") { Array($0) }
                let differing = zip(image.pixels, want).filter { $0 != $1 }.count
                XCTAssertEqual(differing, 0, "\(file) \(key): \(differing) samples differ from Pillow's")
                checked += 1
            }
        }
        XCTAssertEqual(checked, 7)
    }

    func testBadWebPIsNamed() throws {
        let data = try Data(contentsOf: Fixtures.url("webp/lossy.webp"))
        XCTAssertThrowsError(try ImageDecoder.decode(data: data.prefix(40), source: "cut.webp")) { error in
            XCTAssertTrue("\(error)".contains("cut.webp"), "\(error)")
        }
        var broken = data
        broken.replaceSubrange(30..<200, with: [UInt8](repeating: 0x55, count: 170))
        XCTAssertThrowsError(try ImageDecoder.decode(data: broken, source: "bad.webp")) { error in
            XCTAssertTrue("\(error)".contains("bad.webp"), "\(error)")
        }
    }
}
