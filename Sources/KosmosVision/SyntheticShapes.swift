import Foundation

/// splitmix64 (Steele, Lea & Flood): a tiny, fully specified generator, so scenes are the same for
/// a seed on every platform and in every language.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in 0..<n (n > 0) without the bias of a plain modulo (Lemire's multiply-shift).
    public mutating func below(_ n: Int) -> Int {
        Int(next().multipliedFullWidth(by: UInt64(n)).high)
    }
}

/// Images of coloured geometric shapes with captions and question/answer pairs, deterministic per
/// seed: for tests, demos and smoke-training the vision-language path.
public enum SyntheticShapes {
    public enum Shape: String, CaseIterable, Sendable { case circle, square, triangle }

    public static let colors: [(name: String, rgb: (UInt8, UInt8, UInt8))] = [
        ("red", (220, 30, 30)), ("green", (30, 170, 60)), ("blue", (30, 60, 220)),
        ("yellow", (240, 210, 20)), ("purple", (140, 40, 170)), ("orange", (250, 140, 20)),
    ]

    /// "a red", "an orange": the article that goes before a colour name.
    public static func withArticle(_ color: String) -> String {
        ("aeiou".contains(color.first ?? "x") ? "an " : "a ") + color
    }

    public struct Item: Equatable, Sendable {
        public var shape: Shape
        public var color: String
        /// Centre and half-size in pixels.
        public var centerX: Int, centerY: Int, radius: Int
    }

    public struct Scene: Sendable {
        public var image: RGBImage
        public var items: [Item]
        public var caption: String
        public var questions: [(question: String, answer: String)]
    }

    /// Two shapes of different kinds, one above / below / left of / right of the other.
    ///
    /// The caption names the shapes in the fixed order circle, square, triangle ("a red square
    /// below a blue triangle", never "a blue triangle above a red square"), so every image has
    /// exactly one correct caption and exact-match accuracy is a fair measure.
    public static func scene(seed: UInt64, width: Int = 224, height: Int = 224) -> Scene {
        var rng = SplitMix64(seed: seed)
        let shapes = Shape.allCases
        var s1 = shapes[rng.below(3)]
        var s2 = shapes[rng.below(3)]
        if s2 == s1 { s2 = shapes[(shapes.firstIndex(of: s1).map { $0 + 1 } ?? 0) % 3] }
        if shapes.firstIndex(of: s2)! < shapes.firstIndex(of: s1)! { swap(&s1, &s2) }
        let c1 = rng.below(colors.count)
        var c2 = rng.below(colors.count)
        if c2 == c1 { c2 = (c1 + 1) % colors.count }
        let vertical = rng.below(2) == 0
        let firstBefore = rng.below(2) == 0  // first shape above (or left of) the second
        let r = max(2, min(width, height) / 8)
        func jitter(_ span: Int) -> Int { span > 0 ? rng.below(span) - span / 2 : 0 }
        let a = firstBefore ? 1 : 3, b = firstBefore ? 3 : 1
        let item1 = Item(shape: s1, color: colors[c1].name,
                         centerX: vertical ? width / 2 + jitter(width / 3) : width * a / 4,
                         centerY: vertical ? height * a / 4 : height / 2 + jitter(height / 3), radius: r)
        let item2 = Item(shape: s2, color: colors[c2].name,
                         centerX: vertical ? width / 2 + jitter(width / 3) : width * b / 4,
                         centerY: vertical ? height * b / 4 : height / 2 + jitter(height / 3), radius: r)
        var pixels = background(width: width, height: height)
        for (item, ci) in [(item1, c1), (item2, c2)] { draw(item, colors[ci].rgb, into: &pixels, width: width, height: height) }
        let relation = vertical ? (firstBefore ? "above" : "below") : (firstBefore ? "to the left of" : "to the right of")
        let caption = "\(withArticle(item1.color)) \(item1.shape.rawValue) \(relation) \(withArticle(item2.color)) \(item2.shape.rawValue)"
        let questions: [(String, String)] = [
            ("what color is the \(item1.shape.rawValue)?", item1.color),
            ("what color is the \(item2.shape.rawValue)?", item2.color),
            ("what shape is \(relation) the \(item2.color) \(item2.shape.rawValue)?", item1.shape.rawValue),
            ("how many shapes are there?", "two"),
        ]
        return Scene(image: RGBImage(width: width, height: height, pixels: pixels), items: [item1, item2],
                     caption: caption, questions: questions)
    }

    /// A near-white background whose red falls off downwards and green rightwards (by up to 128
    /// levels), so every patch of an image shows where it is. A vision tower trained from scratch
    /// then binds "circle" to "top" within a patch, as it binds "circle" to "red"; on a plain white
    /// background the demo's tower learned colours and shapes perfectly within 1,500 steps but
    /// answered "above" vs "below" by chance.
    static func background(width: Int, height: Int) -> [UInt8] {
        var pixels = [UInt8](repeating: 255, count: width * height * 3)
        for y in 0..<height {
            let red = UInt8(255 - (128 * y) / max(1, height - 1))
            for x in 0..<width {
                let o = (y * width + x) * 3
                pixels[o] = red
                pixels[o + 1] = UInt8(255 - (128 * x) / max(1, width - 1))
            }
        }
        return pixels
    }

    static func contains(_ item: Item, _ x: Int, _ y: Int) -> Bool {
        let dx = x - item.centerX, dy = y - item.centerY, r = item.radius
        switch item.shape {
        case .circle: return dx * dx + dy * dy <= r * r
        case .square: return abs(dx) <= r && abs(dy) <= r
        case .triangle:
            // Apex at the top, base at the bottom: half-width grows linearly from 0 to r.
            guard dy >= -r, dy <= r else { return false }
            return 2 * abs(dx) <= dy + r
        }
    }

    static func draw(_ item: Item, _ rgb: (UInt8, UInt8, UInt8), into pixels: inout [UInt8], width: Int, height: Int) {
        let r = item.radius
        for y in max(0, item.centerY - r)...min(height - 1, item.centerY + r) {
            for x in max(0, item.centerX - r)...min(width - 1, item.centerX + r) where contains(item, x, y) {
                let o = (y * width + x) * 3
                pixels[o] = rgb.0
                pixels[o + 1] = rgb.1
                pixels[o + 2] = rgb.2
            }
        }
    }
}
