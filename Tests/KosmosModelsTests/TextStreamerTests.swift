import Foundation
import XCTest
@testable import KosmosModels

/// The one streaming routine: deltas add up to the text, unfinished UTF-8 and a possible start of a
/// stop string are held back, a stop string cuts the text and stops.
final class TextStreamerTests: XCTestCase {
    /// Each id is one byte of UTF-8; decoding is lossy like a tokenizer's (U+FFFD for a cut sequence).
    func streamer(stops: [String] = []) -> TextStreamer {
        TextStreamer(stops: stops) { ids in String(decoding: ids.map(UInt8.init), as: UTF8.self) }
    }

    func feed(_ s: inout TextStreamer, _ text: String) -> [String] {
        Array(text.utf8).map { s.add(Int($0)) }
    }

    func testUnfinishedUTF8IsHeldBack() {
        var s = streamer()
        let deltas = feed(&s, "a€b")  // € is 3 bytes
        XCTAssertEqual(deltas, ["a", "", "", "€", "b"])
        XCTAssertFalse(deltas.joined().contains("\u{FFFD}"))
        XCTAssertEqual(s.finish().rest, "")
        XCTAssertEqual(s.emitted, "a€b")
    }

    func testAPossibleStopIsHeldBackAndAStopCuts() {
        var s = streamer(stops: ["END"])
        XCTAssertEqual(feed(&s, "hi E"), ["h", "i", " ", ""])
        XCTAssertEqual(feed(&s, "x"), ["Ex"], "not a stop after all: released")
        XCTAssertEqual(feed(&s, "EN"), ["", ""])
        XCTAssertFalse(s.stopped)
        XCTAssertEqual(s.add(Int(UInt8(ascii: "D"))), "")
        XCTAssertTrue(s.stopped)
        XCTAssertEqual(s.text, "hi Ex")
        XCTAssertEqual(s.emitted, "hi Ex")
    }

    func testHeldBackTextComesOutAtTheEnd() {
        var s = streamer(stops: ["END"])
        XCTAssertEqual(feed(&s, "ok EN"), ["o", "k", " ", "", ""])
        let (rest, extends) = s.finish()
        XCTAssertEqual(rest, "EN")
        XCTAssertTrue(extends)
        XCTAssertEqual(s.emitted, "ok EN")
    }

    func testADecodeThatRewritesEarlierTextIsReported() {
        var calls = 0
        var s = TextStreamer { ids in
            calls += 1
            return ids.count < 3 ? String(repeating: "a", count: ids.count) : "b" + String(repeating: "a", count: ids.count - 1)
        }
        XCTAssertEqual([s.add(0), s.add(0), s.add(0)], ["a", "a", ""])
        let (rest, extends) = s.finish()
        XCTAssertEqual(rest, "")
        XCTAssertFalse(extends)
        XCTAssertEqual(s.text, "baa")
        XCTAssertEqual(calls, 3)
    }
}
