import Foundation
import KosmosFormats
import KosmosVision
import XCTest

/// The torchvision backend equals transformers 5's default CLIPImageProcessor (torchvision 0.29,
/// torch 2.15 on CPU; scripts/reference/torchvision_reference.py): the uint8 resize and every
/// pixel value, on the image fixtures in every configuration and on the transparent files.
final class TorchvisionBackendTests: XCTestCase {
    func config(_ name: String) throws -> CLIPPreprocessorConfig {
        var config = try Fixtures.config(name)
        config.backend = .torchvision
        return config
    }

    func testResizeEqualsTorchUint8Bicubic() throws {
        let resized = try SafeTensorsFile(url: Fixtures.url("torchvision/resized.safetensors"))
        let preprocessor = CLIPPreprocessor(config: try config("clip"))
        var compared = 0
        for name in resized.names.sorted() {
            let file = String(name.dropLast(".clip".count))
            let image = try ImageDecoder.decode(contentsOf: Fixtures.url("inputs/" + file), options: preprocessor.fileDecodeOptions)
            let out = preprocessor.resize(image)
            let entry = try XCTUnwrap(resized.entry(name))
            XCTAssertEqual(entry.shape, [3, out.height, out.width], file)
            let want = try resized.withRawBytes(name) { Array($0) }
            let n = out.width * out.height
            var differing = 0
            for c in 0..<3 {
                for i in 0..<n where out.pixels[3 * i + c] != want[c * n + i] { differing += 1 }
            }
            XCTAssertEqual(differing, 0, "\(file): \(differing) of \(3 * n) samples differ from torch's")
            // And it is not Pillow's (the point of a second backend).
            XCTAssertNotEqual(PillowResample.resizeBicubic(image, width: out.width, height: out.height).pixels, out.pixels, file)
            compared += 1
        }
        XCTAssertEqual(compared, 4)
    }

    func testPixelValuesEqualTransformers5DefaultProcessor() throws {
        let expected = try Fixtures.tensors("torchvision/pixel_values.safetensors")
        let index = try Fixtures.index()
        var checked = 0, differing = 0, wholeTensors = 0
        for name in ["clip", "square", "padcrop"] {
            let preprocessor = CLIPPreprocessor(config: try config(name))
            for fixture in index.fixtures {
                let key = "inputs/\(fixture.file).\(name)"
                guard let sample = expected[key + ".sample"] else { continue }
                let got = try preprocessor.preprocess(contentsOf: Fixtures.url("inputs/" + fixture.file))
                for (j, want) in sample.values.enumerated() where got.values[j * 97] != want { differing += 1 }
                checked += sample.values.count
                if let full = expected[key + ".full"] {
                    XCTAssertEqual(full.shape, got.shape, key)
                    XCTAssertEqual(zip(full.values, got.values).filter { $0 != $1 }.count, 0, key)
                    wholeTensors += 1
                }
            }
        }
        var transparency = try CLIPPreprocessorConfig(contentsOf: Fixtures.url("transparency/config.json"))
        transparency.backend = .torchvision
        for file in TransparencyTests.files {
            let full = try XCTUnwrap(expected["transparency/\(file).transparency.full"], file)
            let got = try CLIPPreprocessor(config: transparency).preprocess(contentsOf: Fixtures.url("transparency/" + file))
            XCTAssertEqual(zip(full.values, got.values).filter { $0 != $1 }.count, 0, file)
            wholeTensors += 1
        }
        print("torchvision backend parity: \(checked) sampled values, \(differing) differing; \(wholeTensors) whole tensors")
        XCTAssertEqual(differing, 0)
        XCTAssertGreaterThan(checked, 10_000)
        XCTAssertEqual(wholeTensors, 26 + 11)
    }

    func testBackendFromConfigAndName() throws {
        let json = Data(#"{"size": {"shortest_edge": 224}, "backend": "torchvision"}"#.utf8)
        XCTAssertEqual(try CLIPPreprocessorConfig(json: json).backend, .torchvision)
        XCTAssertEqual(try CLIPPreprocessorConfig(json: Data("{}".utf8)).backend, .pil)
        XCTAssertThrowsError(try CLIPPreprocessorConfig(json: Data(#"{"backend": "opencv"}"#.utf8))) { error in
            XCTAssertTrue("\(error)".contains("backend must be"), "\(error)")
        }
        XCTAssertEqual(try ImageBackend(name: "TorchVision"), .torchvision)
        XCTAssertThrowsError(try ImageBackend(name: "cv2"))
    }
}
