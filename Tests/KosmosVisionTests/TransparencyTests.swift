import Foundation
import KosmosFormats
import KosmosVision
import XCTest

/// Transparent images as transformers 5 preprocesses them (scripts/reference/transparency_reference.py):
/// `convert_to_rgb` composites alpha, palette and colour-key transparency and a GIF's transparent
/// index onto white, in every format we read; the CLIP pipeline's pixel values follow exactly.
final class TransparencyTests: XCTestCase {
    static let files = ["bmp_rgba.bmp", "gif_transparent.gif", "l_key.png", "la.png", "palette_opaque.gif", "palette_trns.png",
                        "rgb_key.png", "rgb_opaque.png", "rgba.png", "webp_alpha.webp", "webp_alpha_lossy.webp"]

    func testCompositedOntoWhiteAsTransformers5() throws {
        let composited = try SafeTensorsFile(url: Fixtures.url("transparency/composited.safetensors"))
        XCTAssertEqual(composited.names.sorted(), Self.files)
        var changed = 0
        for file in Self.files {
            let url = Fixtures.url("transparency/" + file)
            let image = try ImageDecoder.decode(contentsOf: url, options: DecodeOptions(alphaOnWhite: true))
            let entry = try XCTUnwrap(composited.entry(file))
            XCTAssertEqual([image.height, image.width, 3], entry.shape, file)
            let want = try composited.withRawBytes(file) { Array($0) }
            XCTAssertEqual(zip(image.pixels, want).filter { $0 != $1 }.count, 0, "\(file): samples differ from transformers 5's convert_to_rgb")
            // The transparent files really change: dropping the alpha gives other pixels.
            if try ImageDecoder.decode(contentsOf: url).pixels != want { changed += 1 }
        }
        XCTAssertEqual(changed, 8, "every transparent fixture but the opaque controls and the BMP (Pillow reads it as RGB) differs from alpha dropped")
    }

    func testPixelValuesEqualCLIPImageProcessorOfTransformers5() throws {
        let expected = try Fixtures.tensors("transparency/pixel_values.safetensors")
        let preprocessor = CLIPPreprocessor(config: try CLIPPreprocessorConfig(contentsOf: Fixtures.url("transparency/config.json")))
        var values = 0
        for file in Self.files {
            let want = try XCTUnwrap(expected[file], file)
            let got = try preprocessor.preprocess(contentsOf: Fixtures.url("transparency/" + file))
            XCTAssertEqual(got.shape, want.shape, file)
            XCTAssertEqual(zip(got.values, want.values).filter { $0 != $1 }.count, 0, "\(file): pixel values differ")
            let data = try Data(contentsOf: Fixtures.url("transparency/" + file))
            XCTAssertEqual(try preprocessor.preprocess(data: data, source: file).values, got.values, file)
            values += got.values.count
        }
        XCTAssertEqual(values, 11 * 3 * 20 * 20)
    }
}
