import Foundation
import KosmosVision
import XCTest

final class BadInputTests: XCTestCase {
    private func error(_ relative: String, options: DecodeOptions = DecodeOptions()) -> ImageError? {
        do {
            _ = try ImageDecoder.decode(contentsOf: Fixtures.url(relative), options: options)
            return nil
        } catch let e as ImageError {
            XCTAssertTrue(e.description.contains(relative.split(separator: "/").last.map(String.init) ?? relative), e.description)
            return e
        } catch {
            XCTFail("untyped error \(error)")
            return nil
        }
    }

    func testEachBadFileThrowsItsError() {
        func check(_ name: String, _ matches: (ImageError) -> Bool) {
            guard let e = error("bad/\(name)") else { return XCTFail("\(name) decoded") }
            XCTAssertTrue(matches(e), "\(name): \(e)")
        }
        check("truncated.jpg") { if case .truncated(_, "JPEG") = $0 { return true }; return false }
        check("truncated_header.jpg") { if case .truncated(_, "JPEG") = $0 { return true }; return false }
        check("truncated.png") { if case .truncated(_, "PNG") = $0 { return true }; return false }
        check("garbage.jpg") { if case .unknownFormat = $0 { return true }; return false }
        check("empty.png") { if case .emptyFile = $0 { return true }; return false }
        check("notimage.txt") { if case .unknownFormat = $0 { return true }; return false }
        check("huge.png") {
            if case .tooManyPixels(_, 100_000, 100_000, 50_000_000) = $0 { return true }; return false
        }
        check("missing.jpg") { if case .fileNotFound = $0 { return true }; return false }
    }

    func testPixelLimitIsConfigurable() {
        guard let e = error("inputs/rgb_640x480.jpg", options: DecodeOptions(maxPixels: 640 * 480 - 1)) else {
            return XCTFail("limit not applied")
        }
        XCTAssertEqual(e, .tooManyPixels(source: Fixtures.url("inputs/rgb_640x480.jpg").path, width: 640, height: 480,
                                         limit: 640 * 480 - 1))
        XCTAssertNil(error("inputs/rgb_640x480.jpg", options: DecodeOptions(maxPixels: 640 * 480)))
    }

    /// A thin strip is fine to decode but its shortest-edge resize would be huge: refused, not allocated.
    func testResizeOutputIsLimited() throws {
        let strip = RGBImage(width: 1, height: 300_000, pixels: [UInt8](repeating: 9, count: 900_000))
        XCTAssertThrowsError(try CLIPPreprocessor().preprocess(strip, source: "strip")) { e in
            guard case ImageError.tooManyPixels("strip resized", 224, 67_200_000, 50_000_000) = e else {
                return XCTFail("\(e)")
            }
        }
        XCTAssertEqual(PillowResample.resizeBicubic(strip, width: 0, height: 5).pixels.count, 0)
    }

    /// Seeded truncations and byte flips: every mutant either decodes to a well-formed image or
    /// throws an ImageError; nothing crashes or exits.
    func testFuzzTruncationsAndByteFlips() throws {
        var rng = SplitMix64(seed: 0x5EED)
        var decoded = 0, failed = 0
        for file in ["inputs/rgb_101x77_444.jpg", "inputs/rgb_1000x333_progressive.jpg", "inputs/rgba_97x61.png",
                     "inputs/palette_63x41.png", "inputs/rgb8_100x150_interlaced.png"] {
            let original = [UInt8](try Data(contentsOf: Fixtures.url(file)))
            for round in 0..<60 {
                var bytes = original
                if round % 3 == 0 {
                    bytes = Array(bytes.prefix(rng.below(bytes.count)))
                } else {
                    for _ in 0..<(1 + rng.below(8)) {
                        bytes[rng.below(bytes.count)] = UInt8(truncatingIfNeeded: rng.next())
                    }
                    if round % 3 == 2 { bytes = Array(bytes.prefix(bytes.count - rng.below(bytes.count / 4 + 1))) }
                }
                do {
                    let image = try ImageDecoder.decode(data: Data(bytes), source: "\(file)#\(round)")
                    XCTAssertEqual(image.pixels.count, image.width * image.height * 3)
                    decoded += 1
                } catch is ImageError {
                    failed += 1
                }
            }
        }
        print("fuzz: \(decoded) mutants decoded, \(failed) refused with ImageError")
        XCTAssertEqual(decoded + failed, 300)
        XCTAssertGreaterThan(failed, 0)
    }
}
