import Foundation
import KosmosFormats
import KosmosVision
import XCTest

/// Bitmaps decode to Pillow's pixels exactly (scripts/reference/bmp_reference.py): what Pillow
/// writes and the layouts it only reads (4-bit, top-down, bit fields, OS/2 header).
final class BMPTests: XCTestCase {
    func testBitmapsDecodeAsPillowDoes() throws {
        try assertDecodeAsPillow(folder: "bmp", format: .bmp, count: 10)
    }

    func testBadBitmapsAreNamed() throws {
        let data = try Data(contentsOf: Fixtures.url("bmp/rgb24.bmp"))
        XCTAssertThrowsError(try ImageDecoder.decode(data: data.prefix(data.count - 100), source: "cut.bmp")) { error in
            XCTAssertEqual(error as? ImageError, .truncated(source: "cut.bmp", format: "BMP"))
        }
        var rle = data
        rle[30] = 1  // BI_RLE8
        XCTAssertThrowsError(try ImageDecoder.decode(data: rle, source: "rle.bmp")) { error in
            XCTAssertTrue("\(error)".contains("compression 1 (RLE and 16-bit bitmaps are not read)"), "\(error)")
        }
        var header = data
        header[14] = 64
        XCTAssertThrowsError(try ImageDecoder.decode(data: header, source: "h.bmp")) { error in
            XCTAssertTrue("\(error)".contains("a DIB header of 64 bytes"), "\(error)")
        }
        for n in stride(from: 26, to: 200, by: 7) { XCTAssertThrowsError(try ImageDecoder.decode(data: data.prefix(n), source: "p.bmp")) }
    }
}
