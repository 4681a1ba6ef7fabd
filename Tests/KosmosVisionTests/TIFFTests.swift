import Foundation
import KosmosFormats
import KosmosVision
import XCTest

/// TIFF files decode to Pillow's pixels exactly (scripts/reference/tiff_reference.py): every
/// compression Pillow writes (none, LZW, Deflate, PackBits, JPEG, CCITT group 4), grey, bilevel,
/// palette, RGB, RGBA and LA, strips, tiles, planar and predictor layouts from libtiff's tiffcp,
/// the first of two pages; the alpha files also composited over white as transformers 5 does.
final class TIFFTests: XCTestCase {
    func testTIFFDecodesAsPillowDoes() throws {
        try assertDecodeAsPillow(folder: "tiff", format: .tiff, count: 19)
    }

    func testAlphaOverWhiteAsTransformers5() throws {
        let onWhite = try SafeTensorsFile(url: Fixtures.url("tiff/on_white.safetensors"))
        XCTAssertEqual(onWhite.names.sorted(), ["la_deflate.tif", "rgba_lzw.tif", "rgba_raw.tif", "rgba_tiled.tif"])
        for name in onWhite.names {
            let image = try ImageDecoder.decode(contentsOf: Fixtures.url("tiff/" + name), options: DecodeOptions(alphaOnWhite: true))
            let want = try onWhite.withRawBytes(name) { Array($0) }
            XCTAssertEqual(zip(image.pixels, want).filter { $0 != $1 }.count, 0, name)
            XCTAssertNotEqual(try ImageDecoder.decode(contentsOf: Fixtures.url("tiff/" + name)).pixels, want, name)
        }
    }

    func testBadTIFFIsNamed() throws {
        let data = try Data(contentsOf: Fixtures.url("tiff/rgb_lzw.tif"))
        for (cut, label) in [(data.prefix(12), "header.tif"), (data.prefix(data.count / 2), "half.tif")] {
            XCTAssertThrowsError(try ImageDecoder.decode(data: Data(cut), source: label)) { error in
                XCTAssertTrue("\(error)".contains(label), "\(error)")
            }
        }
        // A 16-bit file is refused by name, not misread.
        var sixteen = Data([0x49, 0x49, 0x2A, 0x00, 8, 0, 0, 0])
        let entries: [(UInt16, UInt16, UInt32, UInt32)] = [(256, 3, 1, 2), (257, 3, 1, 2), (258, 3, 1, 16), (259, 3, 1, 1),
                                                            (262, 3, 1, 1), (273, 4, 1, 8 + 2 + 8 * 12 + 4), (277, 3, 1, 1), (279, 4, 1, 8)]
        sixteen.append(contentsOf: [UInt8(entries.count), 0])
        for (tag, type, count, value) in entries {
            for v in [UInt32(tag) | UInt32(type) << 16, count, value] { withUnsafeBytes(of: v.littleEndian) { sixteen.append(contentsOf: $0) } }
        }
        sixteen.append(contentsOf: [0, 0, 0, 0] + [UInt8](repeating: 7, count: 8))
        XCTAssertThrowsError(try ImageDecoder.decode(data: sixteen, source: "deep.tif")) { error in
            XCTAssertTrue("\(error)".contains("16-bit samples are not supported"), "\(error)")
        }
    }
}
