import XCTest
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
@testable import KosmosPlot

/// The heat map is well-formed SVG with one coloured cell and one label per value.
final class HeatMapTests: XCTestCase {
    private final class Cells: NSObject, XMLParserDelegate {
        var fills: [String] = []
        var texts: [String] = []
        private var open: String?
        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                    attributes: [String: String] = [:]) {
            if name == "rect", attributes["class"] == "cell" { fills.append(attributes["fill"] ?? "") }
            if name == "text" { open = "" }
        }
        func parser(_ parser: XMLParser, foundCharacters string: String) { open? += string }
        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            if name == "text", let t = open { texts.append(t); open = nil }
        }
    }

    func testCellsLabelsAndColours() {
        let svg = HeatMap.svg(title: "Passkey <&> test", rowTitle: "tokens", columnTitle: "depth", rows: ["1024", "4096"],
                              columns: ["0%", "50%", "100%"], values: [[1, 0.5, 0], [nil, 0.25, 1]])
        let cells = Cells()
        let parser = XMLParser(data: Data(svg.utf8))
        parser.delegate = cells
        XCTAssertTrue(parser.parse(), "\(parser.parserError.map { "\($0)" } ?? "")")
        XCTAssertEqual(cells.fills.count, 6)
        XCTAssertEqual(cells.fills[3], "#cccccc", "no value is grey")
        XCTAssertEqual(cells.fills[0], cells.fills[5], "equal values, equal colours")
        XCTAssertNotEqual(cells.fills[0], cells.fills[2])
        for label in ["100%", "50%", "0%", "–", "25%", "1024", "4096", "Passkey <&> test"] {
            XCTAssertTrue(cells.texts.contains(label), "missing \(label) in \(cells.texts)")
        }
        XCTAssertEqual(HeatMap.color(0), "#e63c46")
        XCTAssertEqual(HeatMap.color(1), "#28aa46")
    }
}
