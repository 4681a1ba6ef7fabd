import Foundation
import KosmosVision
import XCTest

final class DecodeTests: XCTestCase {
    /// Every fixture decodes to exactly what PIL's Image.open(f).convert("RGB") gives.
    func testDecodeMatchesPIL() throws {
        let index = try Fixtures.index()
        XCTAssertGreaterThanOrEqual(index.fixtures.count, 20)
        for f in index.fixtures {
            let image = try ImageDecoder.decode(contentsOf: Fixtures.url("inputs/\(f.file)"))
            let expected = try ImageDecoder.decode(contentsOf: Fixtures.url("expected/\(f.stem).decoded.png"))
            XCTAssertEqual(image.width, f.width, f.file)
            XCTAssertEqual(image.height, f.height, f.file)
            XCTAssertEqual(image.pixels.count, expected.pixels.count, f.file)
            let (equal, maxDiff) = Fixtures.compare(image.pixels, expected.pixels)
            XCTAssertEqual(equal, expected.pixels.count, "\(f.file) (PIL mode \(f.mode)): max difference \(maxDiff)")
        }
    }

    /// EXIF orientation is applied only when asked, and then as ImageOps.exif_transpose does.
    func testEXIFOrientationOption() throws {
        let index = try Fixtures.index()
        let exif = index.fixtures.filter { $0.file.hasPrefix("exif") }
        XCTAssertEqual(exif.count, 7)
        for f in exif {
            let url = Fixtures.url("inputs/\(f.file)")
            let plain = try ImageDecoder.decode(contentsOf: url)
            XCTAssertEqual(plain, try ImageDecoder.decode(contentsOf: Fixtures.url("expected/\(f.stem).decoded.png")), f.file)
            let turned = try ImageDecoder.decode(contentsOf: url, options: DecodeOptions(applyEXIFOrientation: true))
            let expected = try ImageDecoder.decode(contentsOf: Fixtures.url("expected/\(f.stem).transposed.png"))
            XCTAssertEqual(turned, expected, f.file)
        }
    }

    func testJPEGEncodeRoundTrip() throws {
        let scene = SyntheticShapes.scene(seed: 3, width: 64, height: 40).image
        let data = try JPEGEncoder.encode(scene, quality: 95)
        XCTAssertEqual(ImageDecoder.sniff(data), .jpeg)
        let back = try ImageDecoder.decode(data: data, source: "roundtrip")
        XCTAssertEqual(back.width, 64)
        XCTAssertEqual(back.height, 40)
        let meanAbs = zip(back.pixels, scene.pixels).reduce(0) { $0 + abs(Int($1.0) - Int($1.1)) } / scene.pixels.count
        XCTAssertLessThan(meanAbs, 8)
    }
}
