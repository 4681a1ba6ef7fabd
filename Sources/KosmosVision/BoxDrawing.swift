import Foundation

/// A box in pixels of an image: columns x1..<x2, rows y1..<y2 (clamped to the image when drawn).
public struct PixelBox: Equatable, Sendable {
    public var x1: Int, y1: Int, x2: Int, y2: Int
    public init(x1: Int, y1: Int, x2: Int, y2: Int) { self.x1 = x1; self.y1 = y1; self.x2 = x2; self.y2 = y2 }
}

/// One grounded phrase: its label and its boxes, drawn in one colour.
public struct LabeledBoxes: Equatable, Sendable {
    public var label: String
    public var boxes: [PixelBox]
    public init(label: String, boxes: [PixelBox]) { self.label = label; self.boxes = boxes }
}

/// Draws grounding results onto an image: each entity's boxes as outlines in its own colour, and
/// its label (the 5×7 `BitmapFont`) on a filled tab in that colour at the top-left of its first
/// box — above the box when there is room, else just inside it.
public enum BoxDrawing {
    public struct Colour: Equatable, Sendable {
        public var r: UInt8, g: UInt8, b: UInt8
        public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) { self.r = r; self.g = g; self.b = b }
        /// Black or white, whichever reads better on this colour (Rec. 601 luma).
        public var textColour: Colour {
            0.299 * Double(r) + 0.587 * Double(g) + 0.114 * Double(b) > 140 ? Colour(0, 0, 0) : Colour(255, 255, 255)
        }
    }

    /// Entity i is drawn in `palette[i % palette.count]`.
    public static let palette: [Colour] = [
        Colour(255, 0, 0), Colour(0, 200, 0), Colour(0, 90, 255), Colour(255, 160, 0), Colour(180, 0, 220),
        Colour(0, 210, 210), Colour(255, 0, 160), Colour(140, 200, 0), Colour(120, 70, 20), Colour(0, 0, 130),
    ]

    public struct Style: Equatable, Sendable {
        /// Outline thickness in pixels, drawn inside the box.
        public var lineWidth: Int
        /// Font scale (1: 5×7 glyphs).
        public var textScale: Int
        /// Space between the tab's edge and the text, in pixels.
        public var padding: Int
        public init(lineWidth: Int, textScale: Int, padding: Int) {
            self.lineWidth = lineWidth; self.textScale = textScale; self.padding = padding
        }
        /// 2 px outlines and 1× text on small images; 3 px and 2× text from 400 px on the short side.
        public init(for image: RGBImage) {
            let short = min(image.width, image.height)
            self.init(lineWidth: short >= 200 ? 3 : 2, textScale: short >= 400 ? 2 : 1, padding: short >= 400 ? 2 : 1)
        }
    }

    /// Where the label tab of an entity goes and the characters that fit in it.
    public struct LabelPlacement: Equatable, Sendable {
        public var x: Int, y: Int, width: Int, height: Int
        public var characters: [UInt8]
    }

    /// The label tab for `label` anchored at `box` in an image of `width`×`height`.
    public static func labelPlacement(_ label: String, at box: PixelBox, imageWidth: Int, imageHeight: Int, style: Style) -> LabelPlacement? {
        var characters = BitmapFont.printable(label)
        let pad = style.padding, scale = style.textScale
        let height = BitmapFont.glyphHeight * scale + 2 * pad
        guard !characters.isEmpty, height <= imageHeight else { return nil }
        while !characters.isEmpty && BitmapFont.width(characters: characters.count, scale: scale) + 2 * pad > imageWidth {
            characters.removeLast()
        }
        guard !characters.isEmpty else { return nil }
        let width = BitmapFont.width(characters: characters.count, scale: scale) + 2 * pad
        let left = max(0, min(box.x1, imageWidth - width))
        let top = box.y1 - height >= 0 ? box.y1 - height : max(0, min(box.y1, imageHeight - height))
        return LabelPlacement(x: left, y: top, width: width, height: height, characters: characters)
    }

    /// A copy of `image` with every entity's boxes and label drawn (labels after all outlines, so
    /// an outline never covers a label).
    public static func draw(_ entities: [LabeledBoxes], on image: RGBImage, style: Style? = nil) -> RGBImage {
        let style = style ?? Style(for: image)
        var canvas = image
        for (i, entity) in entities.enumerated() {
            for box in entity.boxes { outline(box, in: &canvas, colour: palette[i % palette.count], width: style.lineWidth) }
        }
        for (i, entity) in entities.enumerated() {
            guard let first = entity.boxes.first,
                  let tab = labelPlacement(entity.label, at: first, imageWidth: canvas.width, imageHeight: canvas.height, style: style)
            else { continue }
            let colour = palette[i % palette.count]
            fill(PixelBox(x1: tab.x, y1: tab.y, x2: tab.x + tab.width, y2: tab.y + tab.height), in: &canvas, colour: colour)
            text(tab.characters, x: tab.x + style.padding, y: tab.y + style.padding, scale: style.textScale,
                 in: &canvas, colour: colour.textColour)
        }
        return canvas
    }

    /// The box's outline, `width` pixels thick, inside the box.
    public static func outline(_ box: PixelBox, in image: inout RGBImage, colour: Colour, width: Int) {
        let x1 = max(0, box.x1), y1 = max(0, box.y1), x2 = min(image.width, box.x2), y2 = min(image.height, box.y2)
        guard x1 < x2, y1 < y2, width > 0 else { return }
        fill(PixelBox(x1: x1, y1: y1, x2: x2, y2: min(y2, y1 + width)), in: &image, colour: colour)
        fill(PixelBox(x1: x1, y1: max(y1, y2 - width), x2: x2, y2: y2), in: &image, colour: colour)
        fill(PixelBox(x1: x1, y1: y1, x2: min(x2, x1 + width), y2: y2), in: &image, colour: colour)
        fill(PixelBox(x1: max(x1, x2 - width), y1: y1, x2: x2, y2: y2), in: &image, colour: colour)
    }

    /// Fills the box (clamped to the image).
    public static func fill(_ box: PixelBox, in image: inout RGBImage, colour: Colour) {
        let x1 = max(0, box.x1), y1 = max(0, box.y1), x2 = min(image.width, box.x2), y2 = min(image.height, box.y2)
        guard x1 < x2, y1 < y2 else { return }
        let w = image.width
        image.pixels.withUnsafeMutableBufferPointer { p in
            for y in y1..<y2 {
                for x in x1..<x2 {
                    let o = (y * w + x) * 3
                    p[o] = colour.r; p[o + 1] = colour.g; p[o + 2] = colour.b
                }
            }
        }
    }

    /// Draws ASCII codes with the bitmap font, top-left at (x, y), each font pixel a scale×scale square.
    public static func text(_ characters: [UInt8], x: Int, y: Int, scale: Int, in image: inout RGBImage, colour: Colour) {
        for (k, code) in characters.enumerated() {
            let left = x + k * BitmapFont.advance * scale
            for row in 0..<BitmapFont.glyphHeight {
                for column in 0..<BitmapFont.glyphWidth where BitmapFont.isInk(code, column: column, row: row) {
                    fill(PixelBox(x1: left + column * scale, y1: y + row * scale,
                                  x2: left + (column + 1) * scale, y2: y + (row + 1) * scale), in: &image, colour: colour)
                }
            }
        }
    }
}
