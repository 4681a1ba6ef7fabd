import Foundation

/// Synthetic clips for the video demo: one shape moving left, right, up or down across the frame,
/// in half the clips changing colour at a random frame midway, captioned "a red circle moves left"
/// or "a red circle moves left and turns blue". Any single frame shows the shape and a colour but
/// not the direction (the start position is random, so a position says nothing of where it goes),
/// so the caption needs several frames. Deterministic per seed.
public enum SyntheticMotion {
    public enum Direction: String, CaseIterable, Sendable { case left, right, up, down }

    public struct Clip: Sendable {
        public var frames: [RGBImage]
        public var shape: SyntheticShapes.Shape
        public var color: String
        public var direction: Direction
        /// The colour it turns to, and from which frame on (nil: it keeps its colour).
        public var turnsTo: String?
        public var turnFrame: Int?
        public var caption: String {
            "\(SyntheticShapes.withArticle(color)) \(shape.rawValue) moves \(direction.rawValue)" + (turnsTo.map { " and turns \($0)" } ?? "")
        }
    }

    /// What clip `seed` shows, drawn from the seed before any pixel: the shape, colours,
    /// direction and path (the caption needs nothing more).
    struct Plan {
        var shape: SyntheticShapes.Shape
        var first: Int, second: Int?
        var direction: Direction
        var radius: Int, travel: Int, along: Int, across: Int
        var turn: Int?

        var caption: String {
            let colors = SyntheticShapes.colors
            return "\(SyntheticShapes.withArticle(colors[first].name)) \(shape.rawValue) moves \(direction.rawValue)" + (second.map { " and turns \(colors[$0].name)" } ?? "")
        }
    }

    static func plan(seed: UInt64, frames: Int, size: Int) -> Plan {
        var rng = SplitMix64(seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ 7)
        let shape = SyntheticShapes.Shape.allCases[rng.below(SyntheticShapes.Shape.allCases.count)]
        let colors = SyntheticShapes.colors
        let first = rng.below(colors.count)
        var second: Int? = nil
        if rng.below(2) == 1 {
            var c = rng.below(colors.count - 1)
            if c >= first { c += 1 }
            second = c
        }
        let direction = Direction.allCases[rng.below(Direction.allCases.count)]
        let radius = max(2, size / 8 + rng.below(max(1, size / 16)) - size / 32)
        // The path: a travel of about half the frame along the direction, from a random start that
        // keeps the shape inside; the other coordinate random too.
        let travel = size / 2 - rng.below(max(1, size / 8))
        let span = size - 2 * radius - 1 - travel
        let along = radius + rng.below(max(1, span))
        let across = radius + rng.below(max(1, size - 2 * radius - 1))
        let turn = second.map { _ in frames / 3 + rng.below(max(1, frames / 3)) }
        return Plan(shape: shape, first: first, second: second, direction: direction, radius: radius, travel: travel,
                    along: along, across: across, turn: turn)
    }

    public static func clip(seed: UInt64, frames: Int = 8, size: Int = 32) -> Clip {
        let p = plan(seed: seed, frames: frames, size: size)
        let colors = SyntheticShapes.colors
        var images: [RGBImage] = []
        for f in 0..<frames {
            let progress = frames > 1 ? (p.travel * f) / (frames - 1) : 0
            var x = p.across, y = p.across
            switch p.direction {
            case .right: x = p.along + progress
            case .left: x = p.along + p.travel - progress
            case .down: y = p.along + progress
            case .up: y = p.along + p.travel - progress
            }
            var pixels = SyntheticShapes.background(width: size, height: size)
            let colour = (p.turn.map { f >= $0 } ?? false) ? colors[p.second!] : colors[p.first]
            SyntheticShapes.draw(SyntheticShapes.Item(shape: p.shape, color: colour.name, centerX: x, centerY: y, radius: p.radius),
                                 colour.rgb, into: &pixels, width: size, height: size)
            images.append(RGBImage(width: size, height: size, pixels: pixels))
        }
        return Clip(frames: images, shape: p.shape, color: colors[p.first].name, direction: p.direction,
                    turnsTo: p.second.map { colors[$0].name }, turnFrame: p.turn)
    }

    /// The caption of clip `seed`, without drawing its frames (the data set asks it per sample;
    /// the frames are drawn once, when the loader prepares the sample).
    public static func caption(seed: UInt64, frames: Int = 8, size: Int = 32) -> String {
        plan(seed: seed, frames: frames, size: size).caption
    }
}
