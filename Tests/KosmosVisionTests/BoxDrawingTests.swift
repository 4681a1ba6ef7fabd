import Foundation
import XCTest
@testable import KosmosVision

final class BoxDrawingTests: XCTestCase {
    private func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kosmos-draw-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    private func pixel(_ image: RGBImage, _ x: Int, _ y: Int) -> BoxDrawing.Colour {
        let o = (y * image.width + x) * 3
        return BoxDrawing.Colour(image.pixels[o], image.pixels[o + 1], image.pixels[o + 2])
    }

    func testPNGRoundTripIsLossless() throws {
        for name in ["inputs/rgb8_224x224.png", "inputs/gray_301x199.jpg", "inputs/rgb8_3x500.png"] {
            let image = try ImageDecoder.decode(contentsOf: Fixtures.url(name))
            let data = try PNGEncoder.encode(image)
            XCTAssertEqual(ImageDecoder.sniff(data), .png, name)
            XCTAssertEqual(try ImageDecoder.decode(data: data, source: name), image, name)
        }
        XCTAssertThrowsError(try PNGEncoder.encode(RGBImage(width: 2, height: 2, pixels: [1, 2, 3])))
    }

    /// Known boxes on a flat grey image, written as PNG and read back: the outline is exactly
    /// `lineWidth` pixels inside each box in the entity's colour, the rest untouched, and each label
    /// tab holds exactly the ink pixels of its text.
    func testBoxesAndLabelsAreDrawnWhereExpected() throws {
        let grey = BoxDrawing.Colour(128, 128, 128)
        let image = RGBImage(width: 160, height: 120, pixels: [UInt8](repeating: 128, count: 160 * 120 * 3))
        let entities = [
            LabeledBoxes(label: "a cat", boxes: [PixelBox(x1: 20, y1: 40, x2: 100, y2: 110)]),
            LabeledBoxes(label: "Dog!", boxes: [PixelBox(x1: 110, y1: 12, x2: 150, y2: 50), PixelBox(x1: 120, y1: 60, x2: 158, y2: 100)]),
            LabeledBoxes(label: "top", boxes: [PixelBox(x1: 2, y1: 2, x2: 60, y2: 30)]),
        ]
        let style = BoxDrawing.Style(lineWidth: 3, textScale: 1, padding: 1)
        let out = try temporaryDirectory().appendingPathComponent("drawn.png")
        try ImageWriter.write(BoxDrawing.draw(entities, on: image, style: style), to: out)
        let drawn = try ImageDecoder.decode(contentsOf: out)
        XCTAssertEqual(drawn.width, 160)
        XCTAssertEqual(drawn.height, 120)
        let red = BoxDrawing.palette[0], green = BoxDrawing.palette[1], blue = BoxDrawing.palette[2]

        // First box (red): outline columns 20...22 and 97...99, rows 40...42 and 107...109.
        for (x, y) in [(20, 60), (22, 60), (97, 80), (99, 80), (60, 40), (60, 42), (60, 107), (60, 109), (20, 109), (99, 40)] {
            XCTAssertEqual(pixel(drawn, x, y), red, "(\(x), \(y)) is on the red outline")
        }
        for (x, y) in [(23, 60), (96, 80), (60, 43), (60, 106), (19, 60), (100, 80), (60, 110), (50, 75)] {
            XCTAssertEqual(pixel(drawn, x, y), grey, "(\(x), \(y)) is off the outline")
        }
        // Both boxes of the second entity are green.
        for (x, y) in [(110, 30), (149, 30), (130, 12), (130, 49), (120, 80), (157, 80), (140, 60), (140, 99)] {
            XCTAssertEqual(pixel(drawn, x, y), green, "(\(x), \(y)) is on a green outline")
        }
        XCTAssertEqual(pixel(drawn, 140, 80), grey)

        // Labels: red tab above the first box, green above its first box (room for 9 rows), blue
        // inside the third box (no room above).
        for (entity, colour, expectedTop) in [(0, red, 31), (1, green, 3), (2, blue, 2)] {
            let tab = try XCTUnwrap(BoxDrawing.labelPlacement(entities[entity].label, at: entities[entity].boxes[0],
                                                               imageWidth: 160, imageHeight: 120, style: style))
            XCTAssertEqual(tab.y, expectedTop, entities[entity].label)
            XCTAssertEqual(tab.height, 9)
            XCTAssertEqual(tab.width, BitmapFont.width(characters: entities[entity].label.count, scale: 1) + 2)
            var ink = 0, background = 0, other = 0
            for y in tab.y..<(tab.y + tab.height) {
                for x in tab.x..<(tab.x + tab.width) {
                    let p = pixel(drawn, x, y)
                    if p == colour.textColour { ink += 1 } else if p == colour { background += 1 } else { other += 1 }
                }
            }
            var expectedInk = 0
            for code in BitmapFont.printable(entities[entity].label) {
                for row in 0..<7 { for column in 0..<5 where BitmapFont.isInk(code, column: column, row: row) { expectedInk += 1 } }
            }
            XCTAssertGreaterThan(expectedInk, 20)
            XCTAssertEqual(ink, expectedInk, "label pixels of \(entities[entity].label)")
            XCTAssertEqual(other, 0)
            XCTAssertEqual(ink + background, tab.width * tab.height)
            // The first glyph's top-left ink pixel is where the font puts it.
            let code = BitmapFont.printable(entities[entity].label)[0]
            for row in 0..<7 {
                for column in 0..<5 {
                    let expected = BitmapFont.isInk(code, column: column, row: row) ? colour.textColour : colour
                    XCTAssertEqual(pixel(drawn, tab.x + 1 + column, tab.y + 1 + row), expected)
                }
            }
        }
        // Pixels away from every box and label keep the image.
        XCTAssertEqual(pixel(drawn, 105, 115), grey)
        XCTAssertEqual(pixel(drawn, 80, 35), grey)
    }

    func testJPEGIsWrittenForJPGNames() throws {
        let dir = try temporaryDirectory()
        let image = RGBImage(width: 32, height: 16, pixels: [UInt8](repeating: 200, count: 32 * 16 * 3))
        let drawn = BoxDrawing.draw([LabeledBoxes(label: "x", boxes: [PixelBox(x1: 2, y1: 2, x2: 30, y2: 14)])], on: image)
        for name in ["out.jpg", "out.JPEG"] {
            let url = dir.appendingPathComponent(name)
            try ImageWriter.write(drawn, to: url)
            XCTAssertEqual(ImageDecoder.sniff(try Data(contentsOf: url)), .jpeg)
            XCTAssertEqual(try ImageDecoder.decode(contentsOf: url).width, 32)
        }
    }

    func testBadOutputPathsSayWhatToDo() throws {
        let dir = try temporaryDirectory()
        let image = RGBImage(width: 4, height: 4, pixels: [UInt8](repeating: 0, count: 48))
        let cases: [(URL, String)] = [
            (dir.appendingPathComponent("missing/sub/out.png"), "does not exist; create it or choose another path"),
            (dir.appendingPathComponent("out.gif"), "name the output .png or .jpg"),
            (dir.appendingPathComponent("out"), "name the output .png or .jpg"),
        ]
        for (url, message) in cases {
            XCTAssertThrowsError(try ImageWriter.write(image, to: url)) { error in
                XCTAssertTrue("\(error)".contains(message), "\(error)")
                XCTAssertTrue("\(error)".contains(url.path), "\(error)")
            }
        }
        // A directory where the file should go.
        let occupied = dir.appendingPathComponent("taken.png")
        try FileManager.default.createDirectory(at: occupied, withIntermediateDirectories: true)
        XCTAssertThrowsError(try ImageWriter.write(image, to: occupied)) { error in
            XCTAssertTrue(error is ImageWriteError, "\(error)")
        }
    }

    func testFontCoversPrintableASCII() {
        for code in UInt8(0x21)...UInt8(0x7E) {
            XCTAssertTrue(BitmapFont.rows(of: code).contains { $0 != 0 }, "glyph \(UnicodeScalar(code))")
            XCTAssertTrue(BitmapFont.rows(of: code).allSatisfy { $0 < 32 })
        }
        XCTAssertTrue(BitmapFont.rows(of: 0x20).allSatisfy { $0 == 0 })
        // Distinct glyphs for distinct characters (a typo in the table would likely duplicate one).
        let glyphs = Set((UInt8(0x20)...UInt8(0x7E)).map { Array(BitmapFont.rows(of: $0)) })
        XCTAssertEqual(glyphs.count, 95)
        XCTAssertEqual(BitmapFont.printable("café 東"), Array("cafe ?".utf8))
        XCTAssertEqual(BitmapFont.width(characters: 3, scale: 2), 34)
    }
}
