import Foundation
import KosmosVision
import XCTest

final class SyntheticShapesTests: XCTestCase {
    func testSplitMix64KnownSequence() {
        // First outputs for seed 0 as published with the algorithm (also in Java's SplittableRandom).
        var g = SplitMix64(seed: 0)
        XCTAssertEqual(g.next(), 0xE220_A839_7B1D_CDAF)
        XCTAssertEqual(g.next(), 0x6E78_9E6A_A1B9_65F4)
    }

    func testScenesAreDeterministicAndConsistent() {
        for seed: UInt64 in 0..<20 {
            let a = SyntheticShapes.scene(seed: seed), b = SyntheticShapes.scene(seed: seed)
            XCTAssertEqual(a.image, b.image)
            XCTAssertEqual(a.caption, b.caption)
            XCTAssertEqual(a.items.count, 2)
            XCTAssertNotEqual(a.items[0].shape, a.items[1].shape)
            // One caption per image: shapes are named circle before square before triangle.
            let order = SyntheticShapes.Shape.allCases
            XCTAssertLessThan(order.firstIndex(of: a.items[0].shape)!, order.firstIndex(of: a.items[1].shape)!)
            XCTAssertTrue(a.caption.hasPrefix("a \(a.items[0].color) \(a.items[0].shape.rawValue) "), a.caption)
            XCTAssertTrue(a.caption.hasSuffix(" a \(a.items[1].color) \(a.items[1].shape.rawValue)"), a.caption)
            for item in a.items {
                // The centre pixel carries the item's colour.
                guard let rgb = SyntheticShapes.colors.first(where: { $0.name == item.color })?.rgb else {
                    return XCTFail("unknown colour \(item.color)")
                }
                let o = (item.centerY * a.image.width + item.centerX) * 3
                XCTAssertEqual([a.image.pixels[o], a.image.pixels[o + 1], a.image.pixels[o + 2]], [rgb.0, rgb.1, rgb.2])
            }
            XCTAssertEqual(a.questions.first?.answer, a.items[0].color)
        }
        XCTAssertNotEqual(SyntheticShapes.scene(seed: 1).caption + "\(SyntheticShapes.scene(seed: 1).items)",
                          SyntheticShapes.scene(seed: 2).caption + "\(SyntheticShapes.scene(seed: 2).items)")
    }
}
