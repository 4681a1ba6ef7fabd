import Foundation
import KosmosVision
import XCTest

final class PreprocessTests: XCTestCase {
    /// PIL BICUBIC parity of the resize step (compared over the region the center crop keeps),
    /// and the output sizes transformers computes.
    func testResizeMatchesPIL() throws {
        let index = try Fixtures.index()
        var total = 0, equal = 0, maxDiff = 0, compared = 0
        for name in ["clip", "square"] {
            let pre = CLIPPreprocessor(config: try Fixtures.config(name))
            for f in index.fixtures {
                guard let c = f.configs[name] else { continue }
                let image = try ImageDecoder.decode(contentsOf: Fixtures.url("inputs/\(f.file)"))
                let size = pre.resizedSize(width: image.width, height: image.height)
                XCTAssertEqual(size.height, c.resizedHeight, "\(f.file) \(name)")
                XCTAssertEqual(size.width, c.resizedWidth, "\(f.file) \(name)")
                guard c.hasResizedPNG else { continue }
                let resized = pre.resize(image)
                let expected = try ImageDecoder.decode(contentsOf: Fixtures.url("expected/\(f.stem).\(name).resized.png"))
                var region = [UInt8]()
                region.reserveCapacity(expected.pixels.count)
                for y in c.cropTop..<c.cropTop + expected.height {
                    let s = (y * resized.width + c.cropLeft) * 3
                    region.append(contentsOf: resized.pixels[s..<s + expected.width * 3])
                }
                let r = Fixtures.compare(region, expected.pixels)
                total += expected.pixels.count
                equal += r.equal
                maxDiff = max(maxDiff, r.maxDiff)
                compared += 1
                XCTAssertLessThanOrEqual(r.maxDiff, 1, "\(f.file) \(name)")
            }
        }
        XCTAssertGreaterThanOrEqual(compared, 20)
        let fraction = Double(equal) / Double(max(total, 1))
        print("resize parity: \(compared) images, \(total) values, equal fraction \(fraction), max diff \(maxDiff)")
        XCTAssertGreaterThanOrEqual(fraction, 0.999)
        XCTAssertLessThanOrEqual(maxDiff, 1)
    }

    /// CLIPImageProcessor (PIL backend, transformers 5) pixel_values from the file as Image.open
    /// gives it (transparency composited onto white): every stored sample equal.
    func testPixelValuesMatchTransformers() throws {
        let index = try Fixtures.index()
        let expected = try Fixtures.tensors("expected/pixel_values.safetensors")
        var checked = 0, off = 0
        for name in ["clip", "square", "padcrop"] {
            let pre = CLIPPreprocessor(config: try Fixtures.config(name))
            for f in index.fixtures {
                guard let c = f.configs[name] else { continue }
                let pv = try pre.preprocess(contentsOf: Fixtures.url("inputs/\(f.file)"))
                XCTAssertEqual(pv.shape, c.shape, "\(f.file) \(name)")
                guard let sample = expected["\(f.stem).\(name).sample"] else {
                    XCTFail("missing expectation for \(f.stem).\(name)")
                    continue
                }
                for (j, want) in sample.values.enumerated() {
                    let got = pv.values[j * index.stride]
                    let d = abs(got - want)
                    checked += 1
                    if d != 0 {
                        off += 1
                        XCTAssertEqual(got, want, "\(f.file) \(name) element \(j * index.stride)")
                    }
                }
                if let full = expected["\(f.stem).\(name).full"] {
                    XCTAssertEqual(full.shape, pv.shape)
                    let worst = zip(full.values, pv.values).map { abs($0 - $1) }.max() ?? 0
                    XCTAssertEqual(worst, 0, "\(f.file) \(name) full tensor")
                }
            }
        }
        print("pixel_values parity: \(checked) samples, \(off) differing")
        XCTAssertGreaterThan(checked, 10_000)
        XCTAssertEqual(off, 0)
    }

    func testConfigParsing() throws {
        let clip = try Fixtures.config("clip")
        let defaults = CLIPPreprocessorConfig()
        XCTAssertEqual(clip.size, defaults.size)
        XCTAssertEqual([clip.cropHeight, clip.cropWidth, clip.resample], [defaults.cropHeight, defaults.cropWidth, defaults.resample])
        XCTAssertEqual(clip.imageMean, defaults.imageMean)
        XCTAssertEqual(clip.imageStd, defaults.imageStd)
        XCTAssertEqual(clip.rescaleFactor, defaults.rescaleFactor)
        XCTAssertEqual([clip.doResize, clip.doCenterCrop, clip.doRescale, clip.doNormalize, clip.doConvertRGB],
                       [true, true, true, true, true])
        let square = try Fixtures.config("square")
        XCTAssertEqual(square.size, .fixed(height: 224, width: 224))
        let pad = try Fixtures.config("padcrop")
        XCTAssertEqual(pad.size, .shortestEdge(20))
        XCTAssertEqual(pad.cropHeight, 30)
        XCTAssertEqual(pad.cropWidth, 26)
        let kosmos = try CLIPPreprocessorConfig(json: Data(#"{"size": {"shortest_edge": 224}, "use_square_size": true}"#.utf8))
        XCTAssertEqual(kosmos.size, .fixed(height: 224, width: 224))
        XCTAssertThrowsError(try CLIPPreprocessorConfig(json: Data(#"{"resample": 2}"#.utf8))) { e in
            guard case ImageError.invalidConfiguration = e else { return XCTFail("\(e)") }
        }
        XCTAssertThrowsError(try CLIPPreprocessorConfig(json: Data("[1, 2]".utf8)))
        XCTAssertThrowsError(try CLIPPreprocessorConfig(json: Data(#"{"image_std": [0, 1, 1]}"#.utf8)))
        XCTAssertThrowsError(try CLIPPreprocessorConfig(json: Data(#"{"crop_size": -3}"#.utf8)))
    }
}
