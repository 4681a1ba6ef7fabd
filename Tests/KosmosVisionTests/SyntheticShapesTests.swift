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

    func testCaptionsUseTheArticleTheColourNeeds() {
        let captions = (0 ..< 200 as Range<UInt64>).map { SyntheticShapes.scene(seed: $0).caption }
        XCTAssertTrue(captions.contains { $0.hasPrefix("an orange ") }, "no scene starts with an orange shape")
        XCTAssertTrue(captions.contains { $0.dropFirst(3).contains(" an orange ") }, "no scene has an orange second shape")
        XCTAssertFalse(captions.contains { $0.contains("a orange") })
        XCTAssertFalse(captions.contains { $0.contains("an red") || $0.contains("an blue") })
        let clips = (0 ..< 200 as Range<UInt64>).map { SyntheticMotion.caption(seed: $0) }
        XCTAssertTrue(clips.contains { $0.hasPrefix("an orange ") })
        XCTAssertFalse(clips.contains { $0.hasPrefix("a orange") })
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
            // The article agrees with the colour: "an orange square", "a red circle".
            let article0 = a.items[0].color == "orange" ? "an" : "a", article1 = a.items[1].color == "orange" ? "an" : "a"
            XCTAssertTrue(a.caption.hasPrefix("\(article0) \(a.items[0].color) \(a.items[0].shape.rawValue) "), a.caption)
            XCTAssertTrue(a.caption.hasSuffix(" \(article1) \(a.items[1].color) \(a.items[1].shape.rawValue)"), a.caption)
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
