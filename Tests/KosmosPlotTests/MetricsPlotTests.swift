import XCTest
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
@testable import KosmosPlot

/// What the tests read back from a rendered SVG with XMLParser.
private final class SVGScan: NSObject, XMLParserDelegate {
    var polylinePoints: [String: Int] = [:]
    var evalCircles = 0
    var texts: [(id: String?, cls: String?, text: String)] = []
    var rootName: String?
    private var groupStack: [String?] = []
    private var openText: (id: String?, cls: String?, text: String)?

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String] = [:]) {
        if rootName == nil { rootName = name }
        switch name {
        case "g": groupStack.append(attributes["id"])
        case "polyline":
            let points = (attributes["points"] ?? "").split(separator: " ")
            polylinePoints[attributes["id"] ?? "?"] = points.count
        case "circle" where groupStack.last == "eval-loss": evalCircles += 1
        case "text": openText = (attributes["id"], attributes["class"], "")
        default: break
        }
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) {
        openText?.text += string
    }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        if name == "g" { groupStack.removeLast() }
        if name == "text", let t = openText { texts.append(t); openText = nil }
    }

    func labels(_ cls: String) -> [String] { texts.filter { $0.cls == cls }.map(\.text) }
    func text(id: String) -> String? { texts.first { $0.id == id }?.text }
}

private func scan(_ svg: String, file: StaticString = #filePath, line: UInt = #line) -> SVGScan {
    let parser = XMLParser(data: Data(svg.utf8))
    let scan = SVGScan()
    parser.delegate = scan
    XCTAssertTrue(parser.parse(), "not well-formed XML: \(String(describing: parser.parserError))", file: file, line: line)
    XCTAssertEqual(scan.rootName, "svg", file: file, line: line)
    return scan
}

private func jsonl(_ lines: [String]) -> Data { Data(lines.joined(separator: "\n").utf8) }

/// Labels are evenly spaced by 1, 2 or 5 × 10^k and each is a whole multiple of that spacing.
private func assertNice(_ labels: [String], file: StaticString = #filePath, line: UInt = #line) {
    let values = labels.compactMap(Double.init)
    XCTAssertEqual(values.count, labels.count, "unparseable labels \(labels)", file: file, line: line)
    XCTAssertGreaterThanOrEqual(values.count, 2, "too few ticks: \(labels)", file: file, line: line)
    guard values.count >= 2 else { return }
    let difference = values[1] - values[0]
    XCTAssertGreaterThan(difference, 0, file: file, line: line)
    guard difference > 0 else { return }
    let exponent = floor(log10(difference) + 1e-9)
    let mantissa = difference / pow(10, exponent)
    XCTAssertTrue([1.0, 2, 5].contains { abs(mantissa - $0) < 1e-6 }, "step \(difference) of \(labels) is not 1/2/5 × 10^k", file: file, line: line)
    let step = mantissa.rounded() * pow(10, exponent)
    for (a, b) in zip(values, values.dropFirst()) {
        XCTAssertEqual(b - a, step, accuracy: step * 1e-4, "uneven ticks \(labels)", file: file, line: line)
    }
    for v in values {
        XCTAssertEqual(v / step, (v / step).rounded(), accuracy: 1e-6 * max(1, abs(v / step)), "\(v) is not a multiple of \(step)", file: file, line: line)
    }
}

final class MetricsPlotTests: XCTestCase {
    /// 50 training lines (one NaN loss, one "inf" string), eval every 10 steps, a blank line, CRLF.
    func sampleRun() -> Data {
        var lines: [String] = []
        for step in 1...50 {
            let loss = step == 20 ? "NaN" : step == 33 ? "\"inf\"" : String(6.0 * exp(-Double(step) / 15) + 2)
            let lr = 1e-3 * min(1, Double(step) / 10) * (step > 10 ? Double(60 - step) / 50 : 1)
            var line = "{\"step\": \(step), \"loss\": \(loss), \"lr\": \(lr), \"grad_norm\": 0.9, \"tokens_per_s\": 1234.5"
            if step % 10 == 0 { line += ", \"eval_loss\": \(2.5 + 5.0 / Double(step))" }
            lines.append(line + (step == 7 ? "}\r" : "}"))
            if step == 25 { lines.append("   ") }
        }
        return jsonl(lines + [""])
    }

    func testSampleRunIsWellFormedWithEveryPoint() throws {
        let svg = try MetricsPlot.svg(jsonl: sampleRun(), title: "run <1> & \"friends\"")
        let s = scan(svg)
        XCTAssertEqual(s.polylinePoints["loss-raw"], 48)  // 50 lines less 2 non-finite losses
        XCTAssertEqual(s.polylinePoints["loss-smoothed"], 48)
        XCTAssertEqual(s.polylinePoints["lr"], 50)
        XCTAssertEqual(s.evalCircles, 5)
        XCTAssertEqual(s.text(id: "title"), "run <1> & \"friends\"")
        XCTAssertEqual(s.text(id: "note"), "skipped non-finite:2 loss")
        XCTAssertTrue(s.texts.contains { $0.cls == "axis-title" && $0.text == "step" })
        XCTAssertTrue(s.texts.contains { $0.cls == "axis-title" && $0.text == "loss" })
        XCTAssertTrue(s.texts.contains { $0.cls == "axis-title" && $0.text == "learning rate" })
        XCTAssertTrue(s.texts.contains { $0.text == "eval loss" }, "legend entry for eval loss")
        assertNice(s.labels("tick-x"))
        assertNice(s.labels("tick-loss"))
        assertNice(s.labels("tick-lr"))
        // The learning rate peaks at 1e-3: scientific labels.
        XCTAssertTrue(s.labels("tick-lr").dropFirst().allSatisfy { $0.contains("e-") }, "\(s.labels("tick-lr"))")
        XCTAssertTrue(s.labels("tick-loss").allSatisfy { !$0.contains("e") }, "\(s.labels("tick-loss"))")
    }

    func testDefaultTitleAndNoNoteWhenAllFinite() throws {
        let s = scan(try MetricsPlot.svg(jsonl: jsonl(["{\"step\":1,\"loss\":3,\"lr\":0.1}", "{\"step\":2,\"loss\":2.5,\"lr\":0.05}"])))
        XCTAssertEqual(s.text(id: "title"), "Training metrics")
        XCTAssertNil(s.text(id: "note"))
        XCTAssertNil(s.polylinePoints.first { $0.key == "eval-loss" })
        XCTAssertEqual(s.evalCircles, 0)
        XCTAssertFalse(s.texts.contains { $0.text == "eval loss" })
    }

    func testPointsAreDrawnInStepOrder() throws {
        let svg = try MetricsPlot.svg(jsonl: jsonl(["{\"step\":30,\"loss\":1,\"lr\":1}", "{\"step\":10,\"loss\":3,\"lr\":1}", "{\"step\":20,\"loss\":2,\"lr\":1}"]),
                                      smoothing: 0)
        let points = try XCTUnwrap(svg.range(of: "id=\"loss-raw\"").map { svg[$0.upperBound...] })
        let list = points[points.range(of: "points=\"")!.upperBound...].prefix { $0 != "\"" }
        let xs = list.split(separator: " ").map { Double($0.split(separator: ",")[0])! }
        let ys = list.split(separator: " ").map { Double($0.split(separator: ",")[1])! }
        XCTAssertEqual(xs, xs.sorted())
        XCTAssertEqual(ys, ys.sorted(), "loss falls with step, so y (down the page) grows")
    }

    func testTensorBoardSmoothing() {
        let s = MetricsPlot.smoothed([1, 2, 3], weight: 0.5)
        XCTAssertEqual(s[0], 1, accuracy: 1e-12)             // debiased: the first value itself
        XCTAssertEqual(s[1], 1.25 / 0.75, accuracy: 1e-12)   // (0.5·0.5 + 0.5·2) / (1 - 0.25)
        XCTAssertEqual(s[2], 2.125 / 0.875, accuracy: 1e-12)
        XCTAssertEqual(MetricsPlot.smoothed([4, 1, 7], weight: 0), [4, 1, 7])
        XCTAssertEqual(MetricsPlot.smoothed(Array(repeating: 2.5, count: 100), weight: 0.99).last!, 2.5, accuracy: 1e-9)
    }

    func testTicksAreNiceAcrossRanges() {
        let ranges: [(Double, Double)] = [(0, 1e-3), (0, 3e-4), (2.31, 10.2), (0.001, 0.0042), (1, 97), (0, 123_456),
                                          (-3, 3), (1e-7, 5e-6), (2.5, 2.5), (0, 6e-5), (1e5, 9e7), (3.14159, 3.14162)]
        for (lo, hi) in ranges {
            let axis = MetricsPlot.axis(lo, hi, target: 5, extend: true)
            XCTAssertLessThanOrEqual(axis.lo, lo); XCTAssertGreaterThanOrEqual(axis.hi, hi)
            XCTAssertTrue((3...12).contains(axis.ticks.count), "\(lo)...\(hi): \(axis.ticks)")
            let sci = MetricsPlot.needsScientific(axis)
            let labels = axis.ticks.map { MetricsPlot.label($0, step: axis.step, scientific: sci) }
            assertNice(labels)
            XCTAssertEqual(Set(labels).count, labels.count, "duplicate labels \(labels)")
        }
    }

    func testLabelFormatting() {
        XCTAssertEqual(MetricsPlot.label(2.5e-4, step: 5e-5, scientific: true), "2.5e-4")
        XCTAssertEqual(MetricsPlot.label(5 * 2e-4, step: 2e-4, scientific: true), "1e-3")
        XCTAssertEqual(MetricsPlot.label(3 * 1e-4, step: 1e-4, scientific: true), "3e-4")
        XCTAssertEqual(MetricsPlot.label(0, step: 1e-4, scientific: true), "0")
        XCTAssertEqual(MetricsPlot.label(3 * 0.1, step: 0.1, scientific: false), "0.3")
        XCTAssertEqual(MetricsPlot.label(1.5, step: 0.5, scientific: false), "1.5")
        XCTAssertEqual(MetricsPlot.label(400, step: 200, scientific: false), "400")
        XCTAssertEqual(MetricsPlot.label(2e6, step: 1e6, scientific: true), "2e6")
    }

    func testSinglePointAndPartialLines() throws {
        let one = scan(try MetricsPlot.svg(jsonl: jsonl(["{\"step\": 5, \"loss\": 2.0, \"lr\": 1e-4}"])))
        XCTAssertEqual(one.polylinePoints["loss-raw"], 1)
        XCTAssertEqual(one.polylinePoints["lr"], 1)
        assertNice(one.labels("tick-loss")); assertNice(one.labels("tick-lr"))
        // Eval-only and lr-less lines are fine; lr only draws an empty loss panel.
        let mixed = scan(try MetricsPlot.svg(jsonl: jsonl(["{\"step\":1,\"loss\":3}", "{\"step\":2,\"eval_loss\":2.9}", "{\"step\":3,\"loss\":2,\"lr\":null}"])))
        XCTAssertEqual(mixed.polylinePoints["loss-raw"], 2)
        XCTAssertNil(mixed.polylinePoints["lr"])
        XCTAssertEqual(mixed.evalCircles, 1)
        let lrOnly = scan(try MetricsPlot.svg(jsonl: jsonl(["{\"step\":1,\"lr\":1e-5}", "{\"step\":2,\"lr\":2e-5}"])))
        XCTAssertNil(lrOnly.polylinePoints["loss-raw"])
        XCTAssertTrue(lrOnly.texts.contains { $0.text == "no finite loss values" })
    }

    func testNonFiniteSpellings() throws {
        let lines = ["{\"step\":1,\"loss\":NaN,\"lr\":1e-3}", "{\"step\":2,\"loss\":Infinity,\"lr\":1e-3}",
                     "{\"step\":3,\"loss\":-Infinity,\"lr\":1e-3}", "{\"step\":4,\"loss\":\"nan\",\"lr\":\"inf\"}",
                     "{\"step\":5,\"loss\":1.5,\"lr\":1e-3,\"note\":\"NaN inside a string\"}", "{\"step\":6,\"loss\":1.4,\"lr\":1e-3}"]
        let s = scan(try MetricsPlot.svg(jsonl: jsonl(lines)))
        XCTAssertEqual(s.polylinePoints["loss-raw"], 2)
        XCTAssertEqual(s.polylinePoints["lr"], 5)
        XCTAssertEqual(s.text(id: "note"), "skipped non-finite:4 loss, 1 lr")
    }

    func testErrors() {
        func error(_ lines: [String], smoothing: Double = 0.9) -> MetricsPlotError? {
            do { _ = try MetricsPlot.svg(jsonl: jsonl(lines), smoothing: smoothing); return nil } catch let e as MetricsPlotError {
                return e
            } catch { XCTFail("unexpected \(error)"); return nil }
        }
        let good = "{\"step\":1,\"loss\":2,\"lr\":1e-3}"
        XCTAssertEqual(error([good, "", "{\"step\": 2, \"loss\": "])?.line, 3)
        XCTAssertTrue(error([good, "", "{\"step\": 2, \"loss\": "])!.description.hasPrefix("line 3: not valid JSON"))
        XCTAssertEqual(error([good, "[1, 2]"]), MetricsPlotError(line: 2, "not a JSON object"))
        XCTAssertEqual(error([good, "{\"loss\": 2}"]), MetricsPlotError(line: 2, "no step"))
        XCTAssertEqual(error(["{\"step\": 1.5, \"loss\": 2}"])?.line, 1)
        XCTAssertEqual(error(["{\"step\": \"7\", \"loss\": 2}"]), MetricsPlotError(line: 1, "step is not an integer"))
        XCTAssertEqual(error(["{\"step\": true, \"loss\": 2}"]), MetricsPlotError(line: 1, "step is not an integer"))
        XCTAssertEqual(error([good, good, "{\"step\": 3, \"loss\": \"low\"}"]), MetricsPlotError(line: 3, "loss is the string \"low\", not a number"))
        XCTAssertEqual(error(["{\"step\": 3, \"loss\": 1, \"lr\": false}"]), MetricsPlotError(line: 1, "lr is not a number"))
        XCTAssertEqual(error(["{\"step\": 3, \"grad_norm\": 1}"]), MetricsPlotError(line: 1, "has none of loss, lr, eval_loss"))
        XCTAssertEqual(error([])?.line, nil)
        XCTAssertTrue(error(["", "  ", ""])!.description.contains("no usable points"))
        XCTAssertTrue(error(["{\"step\":1,\"loss\":NaN}", "{\"step\":2,\"loss\":\"inf\"}"])!.description.contains("no usable points"))
        XCTAssertNotNil(error([good], smoothing: 1))
        XCTAssertNotNil(error([good], smoothing: -0.1))
        XCTAssertNotNil(error([good], smoothing: .nan))
        XCTAssertNil(error([good], smoothing: 0))
    }

    func testLongRunStaysCompact() throws {
        let lines = (1...5_000).map { "{\"step\":\($0),\"loss\":\(3 + sin(Double($0))),\"lr\":\(1e-4)}" }
        let svg = try MetricsPlot.svg(jsonl: jsonl(lines))
        let s = scan(svg)
        XCTAssertEqual(s.polylinePoints["loss-raw"], 5_000)
        assertNice(s.labels("tick-x"))
        XCTAssertLessThan(svg.utf8.count, 300_000)
    }
}
