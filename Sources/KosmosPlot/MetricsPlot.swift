import Foundation

/// Why a metrics file could not be plotted. `line` is the 1-based line of the JSONL input the
/// problem is on, nil when it concerns the input as a whole (no usable points, bad smoothing).
public struct MetricsPlotError: Error, CustomStringConvertible, Equatable, Sendable {
    public let line: Int?
    public let message: String

    public init(line: Int? = nil, _ message: String) {
        self.line = line; self.message = message
    }

    public var description: String { line.map { "line \($0): \(message)" } ?? message }
}

/// Renders a training run's metrics.jsonl as a standalone SVG (`kosmos plot`): two stacked panels
/// sharing the step axis, the loss on top (raw as a faint line, smoothed as a bold line, eval_loss
/// as markers) and the learning rate below.
///
/// Input: one JSON object per line with an integer `step` and the numbers `loss`, `lr` and
/// optionally `eval_loss` (other keys such as `grad_norm` or `tokens_per_s` are ignored). A line
/// may lack `loss` / `lr` (an eval-only line, say) but must have at least one of the three. Blank
/// lines are skipped. Non-finite values — NaN / Infinity written as bare literals (Python's json),
/// as strings ("nan", "inf", "-Infinity", ...) or as numbers that overflow — are skipped and counted
/// in a note; `null` counts as absent. Points are plotted in step order.
///
/// Smoothing is TensorBoard's: an exponential moving average over the finite losses in step order,
/// s_n = w·s_{n-1} + (1-w)·x_n from s_0 = 0, divided by the bias correction 1 - w^n (so the first
/// smoothed value is the first loss). w = `smoothing` in [0, 1); 0 draws the raw values again.
public enum MetricsPlot {
    public static func svg(jsonl: Data, smoothing: Double = 0.9, title: String? = nil) throws -> String {
        guard smoothing.isFinite, smoothing >= 0, smoothing < 1 else {
            throw MetricsPlotError("smoothing must be in [0, 1), got \(smoothing)")
        }
        let metrics = try parse(jsonl)
        guard !(metrics.loss.isEmpty && metrics.lr.isEmpty && metrics.eval.isEmpty) else {
            var reason = "no usable points: no line has a finite loss, lr or eval_loss"
            if metrics.lines == 0 { reason = "no usable points: the input has no metrics lines" }
            throw MetricsPlotError(reason)
        }
        return render(metrics, smoothing: smoothing, title: title ?? "Training metrics")
    }

    // MARK: - Parsing

    struct Point: Equatable {
        var step: Int
        var value: Double
    }

    struct Metrics {
        var loss: [Point] = []
        var lr: [Point] = []
        var eval: [Point] = []
        /// Non-finite values skipped, per key.
        var skippedLoss = 0, skippedLR = 0, skippedEval = 0
        /// Non-blank lines read.
        var lines = 0
    }

    enum Value { case absent, finite(Double), nonFinite }

    static func parse(_ data: Data) throws -> Metrics {
        var m = Metrics()
        var loss: [(Int, Point)] = [], lr: [(Int, Point)] = [], eval: [(Int, Point)] = []
        let bytes = [UInt8](data)
        var start = 0, lineNumber = 0
        while start <= bytes.count {
            var end = start
            while end < bytes.count && bytes[end] != UInt8(ascii: "\n") { end += 1 }
            lineNumber += 1
            let line = bytes[start..<end]
            start = end + 1
            guard line.contains(where: { !isJSONWhitespace($0) }) else { continue }
            m.lines += 1
            let object = try jsonObject(quoteNonFiniteLiterals(line), line: lineNumber)
            let step = try integer(object["step"], key: "step", line: lineNumber)
            let values = try ["loss", "lr", "eval_loss"].map { try number(object[$0], key: $0, line: lineNumber) }
            if values.allSatisfy({ if case .absent = $0 { return true } else { return false } }) {
                throw MetricsPlotError(line: lineNumber, "has none of loss, lr, eval_loss")
            }
            func add(_ v: Value, to points: inout [(Int, Point)], skipped: inout Int) {
                switch v {
                case .absent: break
                case .nonFinite: skipped += 1
                case .finite(let x): points.append((lineNumber, Point(step: step, value: x)))
                }
            }
            add(values[0], to: &loss, skipped: &m.skippedLoss)
            add(values[1], to: &lr, skipped: &m.skippedLR)
            add(values[2], to: &eval, skipped: &m.skippedEval)
        }
        // By step; lines with equal steps keep their file order.
        func ordered(_ p: [(Int, Point)]) -> [Point] {
            p.sorted { ($0.1.step, $0.0) < ($1.1.step, $1.0) }.map { $0.1 }
        }
        m.loss = ordered(loss); m.lr = ordered(lr); m.eval = ordered(eval)
        return m
    }

    static func isJSONWhitespace(_ b: UInt8) -> Bool {
        b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") || b == UInt8(ascii: "\r") || b == UInt8(ascii: "\n")
    }

    /// Python's json writes NaN, Infinity and -Infinity bare, which JSON (and JSONSerialization)
    /// rejects: outside strings they become the strings "NaN", "Infinity", "-Infinity".
    static func quoteNonFiniteLiterals(_ line: ArraySlice<UInt8>) -> [UInt8] {
        let literals: [[UInt8]] = [Array("-Infinity".utf8), Array("Infinity".utf8), Array("NaN".utf8)]
        var out: [UInt8] = []
        out.reserveCapacity(line.count + 8)
        var inString = false, escaped = false
        var i = line.startIndex
        outer: while i < line.endIndex {
            let b = line[i]
            if inString {
                if escaped { escaped = false } else if b == UInt8(ascii: "\\") { escaped = true } else if b == UInt8(ascii: "\"") { inString = false }
            } else if b == UInt8(ascii: "\"") {
                inString = true
            } else {
                for literal in literals where line[i...].starts(with: literal) {
                    out.append(UInt8(ascii: "\"")); out.append(contentsOf: literal); out.append(UInt8(ascii: "\""))
                    i += literal.count
                    continue outer
                }
            }
            out.append(b)
            i += 1
        }
        return out
    }

    static func jsonObject(_ bytes: [UInt8], line: Int) throws -> [String: Any] {
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: Data(bytes), options: [])
        } catch {
            let text = String(decoding: bytes.prefix(60), as: UTF8.self)
            throw MetricsPlotError(line: line, "not valid JSON: \(text)\(bytes.count > 60 ? "…" : "")")
        }
        guard let object = parsed as? [String: Any] else { throw MetricsPlotError(line: line, "not a JSON object") }
        return object
    }

    static func isBoolean(_ n: NSNumber) -> Bool {
        // JSON true/false come back as NSNumber-backed booleans with type "c" on Linux and Darwin.
        String(cString: n.objCType) == "c"
    }

    static func number(_ any: Any?, key: String, line: Int) throws -> Value {
        guard let any, !(any is NSNull) else { return .absent }
        if let s = any as? String {
            switch s.lowercased() {
            case "nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity": return .nonFinite
            default: throw MetricsPlotError(line: line, "\(key) is the string \"\(s)\", not a number")
            }
        }
        guard let n = any as? NSNumber, !isBoolean(n) else {
            throw MetricsPlotError(line: line, "\(key) is not a number")
        }
        let x = n.doubleValue
        return x.isFinite ? .finite(x) : .nonFinite
    }

    static func integer(_ any: Any?, key: String, line: Int) throws -> Int {
        guard let any, !(any is NSNull) else { throw MetricsPlotError(line: line, "no \(key)") }
        guard let n = any as? NSNumber, !isBoolean(n) else {
            throw MetricsPlotError(line: line, "\(key) is not an integer")
        }
        let x = n.doubleValue
        guard x.isFinite, x == x.rounded(), abs(x) < 9e15 else {
            throw MetricsPlotError(line: line, "\(key) is not an integer: \(n)")
        }
        return Int(n.int64Value)
    }

    // MARK: - Smoothing and axes

    /// TensorBoard's bias-corrected exponential moving average.
    static func smoothed(_ values: [Double], weight: Double) -> [Double] {
        var last = 0.0, out: [Double] = []
        out.reserveCapacity(values.count)
        for (i, x) in values.enumerated() {
            last = last * weight + (1 - weight) * x
            out.append(last / (1 - pow(weight, Double(i + 1))))
        }
        return out
    }

    struct Axis {
        var lo: Double, hi: Double, step: Double
        var ticks: [Double]
    }

    /// The one of 1, 2, 5 × 10^k nearest to `raw` (on a log scale).
    static func niceStep(_ raw: Double) -> Double {
        guard raw > 0, raw.isFinite else { return 1 }
        let base = pow(10, floor(log10(raw)))
        return [1.0, 2, 5, 10].map { $0 * base }.min { abs(log($0 / raw)) < abs(log($1 / raw)) }!
    }

    /// Ticks every `step` (a nice number) inside the range; `extend` widens the range to whole
    /// steps so the data sit between the first and last tick.
    static func axis(_ lo0: Double, _ hi0: Double, target: Int, extend: Bool, minStep: Double = 0) -> Axis {
        var lo = lo0, hi = hi0
        if hi - lo <= abs(hi) * 1e-12 {
            let pad = lo == 0 ? 1 : abs(lo) * 0.1
            lo -= pad; hi += pad
        }
        let step = max(niceStep((hi - lo) / Double(target)), minStep)
        if extend {
            // min/max: a tick computed as k·step may land a rounding error inside the data.
            lo = min(lo, floor(lo / step + 1e-9) * step)
            hi = max(hi, ceil(hi / step - 1e-9) * step)
        }
        let first = Int(ceil(lo / step - 1e-9)), last = Int(floor(hi / step + 1e-9))
        let ticks = first <= last ? (first...last).map { Double($0) * step } : []
        return Axis(lo: lo, hi: hi, step: step, ticks: ticks)
    }

    /// Tick label: fixed decimals enough for the step, or `2.5e-4` style when the axis' values are
    /// very small or very large.
    static func label(_ v: Double, step: Double, scientific: Bool) -> String {
        if abs(v) < step * 1e-6 { return "0" }
        let stepExponent = Int(floor(log10(step) + 1e-9))
        if !scientific {
            return fixed(v, decimals: max(0, -stepExponent))
        }
        var e = Int(floor(log10(abs(v)) + 1e-9))
        var mantissa = fixed(v / pow(10, Double(e)), decimals: max(0, e - stepExponent))
        if let m = Double(mantissa), abs(m) >= 10 {
            e += 1
            mantissa = fixed(v / pow(10, Double(e)), decimals: max(0, e - stepExponent))
        }
        if mantissa.contains(".") {
            while mantissa.hasSuffix("0") { mantissa.removeLast() }
            if mantissa.hasSuffix(".") { mantissa.removeLast() }
        }
        return "\(mantissa)e\(e)"
    }

    static func needsScientific(_ axis: Axis) -> Bool {
        let m = max(abs(axis.lo), abs(axis.hi))
        return m >= 1e5 || (m > 0 && m < 1e-2)
    }

    static func fixed(_ v: Double, decimals: Int) -> String {
        String(format: "%.\(decimals)f", v)
    }

    /// A coordinate with one decimal, without String(format:) (fast for long runs).
    static func coordinate(_ v: Double) -> String {
        let tenths = Int((v * 10).rounded())
        let sign = tenths < 0 ? "-" : ""
        let a = abs(tenths)
        return "\(sign)\(a / 10).\(a % 10)"
    }

    static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default:
                // Characters XML 1.0 forbids (most C0 controls) are dropped.
                if let a = c.unicodeScalars.first, c.unicodeScalars.count == 1, a.value < 0x20, a != "\t", a != "\n", a != "\r" { continue }
                out.append(c)
            }
        }
        return out
    }

    static func compact(_ v: Double) -> String {
        if v == 0 { return "0" }
        let a = abs(v)
        if a >= 1e5 || a < 1e-3 { return String(format: "%.3g", v) }
        return String(format: a >= 100 ? "%.1f" : "%.4g", v)
    }

    // MARK: - Rendering

    static let width = 900.0, height = 600.0
    static let plotLeft = 90.0, plotRight = 700.0
    static let lossTop = 76.0, lossBottom = 336.0
    static let lrTop = 366.0, lrBottom = 516.0
    static let rawColor = "#1f77b4", smoothColor = "#1f77b4", evalColor = "#d62728", lrColor = "#2ca02c"

    static func render(_ m: Metrics, smoothing: Double, title: String) -> String {
        let allSteps = (m.loss + m.lr + m.eval).map { Double($0.step) }
        let xAxis = axis(allSteps.min()!, allSteps.max()!, target: 8, extend: false, minStep: 1)
        let lossValues = m.loss.map(\.value)
        let smooth = smoothed(lossValues, weight: smoothing)
        let lossRange = (lossValues + m.eval.map(\.value))
        let lossAxis = lossRange.isEmpty ? nil : axis(lossRange.min()!, lossRange.max()!, target: 5, extend: true)
        let lrValues = m.lr.map(\.value)
        // The learning rate axis starts at 0 (warmup starts near it) unless a value is negative.
        let lrAxis = lrValues.isEmpty ? nil : axis(min(0, lrValues.min()!), lrValues.max()!, target: 4, extend: true)

        func x(_ step: Int) -> Double {
            plotLeft + (Double(step) - xAxis.lo) / (xAxis.hi - xAxis.lo) * (plotRight - plotLeft)
        }
        func y(_ v: Double, _ a: Axis, top: Double, bottom: Double) -> Double {
            bottom - (v - a.lo) / (a.hi - a.lo) * (bottom - top)
        }
        func points(_ steps: [Int], _ values: [Double], _ a: Axis, top: Double, bottom: Double) -> String {
            var s = ""
            s.reserveCapacity(steps.count * 12)
            for (i, (step, v)) in zip(steps, values).enumerated() {
                if i > 0 { s += " " }
                s += coordinate(x(step)) + "," + coordinate(y(v, a, top: top, bottom: bottom))
            }
            return s
        }

        var svg = """
        <?xml version="1.0" encoding="UTF-8"?>
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" \
        viewBox="0 0 \(Int(width)) \(Int(height))" font-family="Helvetica, Arial, sans-serif" font-size="12">
        <rect x="0" y="0" width="\(Int(width))" height="\(Int(height))" fill="#ffffff"/>
        <text id="title" x="\(coordinate(width / 2))" y="28" text-anchor="middle" font-size="18" font-weight="bold">\(escape(title))</text>

        """
        var summary: [String] = []
        if let first = allSteps.min(), let last = allSteps.max() {
            summary.append("steps \(Int(first))–\(Int(last))")
        }
        if let last = m.loss.last {
            summary.append("last loss \(compact(last.value)) (smoothed \(compact(smooth.last!)))")
        }
        if let best = m.eval.min(by: { $0.value < $1.value }) {
            summary.append("best eval loss \(compact(best.value)) at step \(best.step)")
        }
        svg += "<text id=\"summary\" x=\"\(coordinate(width / 2))\" y=\"50\" text-anchor=\"middle\" fill=\"#555555\">\(escape(summary.joined(separator: "  ·  ")))</text>\n"

        func panel(id: String, top: Double, bottom: Double, yAxis: Axis?, yTitle: String, empty: String, xLabels: Bool) {
            svg += "<g id=\"\(id)-panel\">\n"
            svg += "<rect x=\"\(coordinate(plotLeft))\" y=\"\(coordinate(top))\" width=\"\(coordinate(plotRight - plotLeft))\" height=\"\(coordinate(bottom - top))\" fill=\"#fafafa\" stroke=\"#cccccc\"/>\n"
            // Vertical grid and, on the bottom panel, the step tick labels.
            for t in xAxis.ticks {
                let px = coordinate(x(Int(t.rounded())))
                svg += "<line x1=\"\(px)\" y1=\"\(coordinate(top))\" x2=\"\(px)\" y2=\"\(coordinate(bottom))\" stroke=\"#e4e4e4\"/>\n"
                if xLabels {
                    svg += "<line x1=\"\(px)\" y1=\"\(coordinate(bottom))\" x2=\"\(px)\" y2=\"\(coordinate(bottom + 5))\" stroke=\"#333333\"/>\n"
                    svg += "<text class=\"tick-x\" x=\"\(px)\" y=\"\(coordinate(bottom + 19))\" text-anchor=\"middle\">\(label(t, step: xAxis.step, scientific: false))</text>\n"
                }
            }
            if let a = yAxis {
                let sci = needsScientific(a)
                for t in a.ticks {
                    let py = coordinate(y(t, a, top: top, bottom: bottom))
                    svg += "<line x1=\"\(coordinate(plotLeft))\" y1=\"\(py)\" x2=\"\(coordinate(plotRight))\" y2=\"\(py)\" stroke=\"#e4e4e4\"/>\n"
                    svg += "<line x1=\"\(coordinate(plotLeft - 5))\" y1=\"\(py)\" x2=\"\(coordinate(plotLeft))\" y2=\"\(py)\" stroke=\"#333333\"/>\n"
                    svg += "<text class=\"tick-\(id)\" x=\"\(coordinate(plotLeft - 8))\" y=\"\(py)\" dy=\"0.35em\" text-anchor=\"end\">\(label(t, step: a.step, scientific: sci))</text>\n"
                }
            } else {
                svg += "<text x=\"\(coordinate((plotLeft + plotRight) / 2))\" y=\"\(coordinate((top + bottom) / 2))\" text-anchor=\"middle\" fill=\"#888888\">\(empty)</text>\n"
            }
            svg += "<line x1=\"\(coordinate(plotLeft))\" y1=\"\(coordinate(bottom))\" x2=\"\(coordinate(plotRight))\" y2=\"\(coordinate(bottom))\" stroke=\"#333333\"/>\n"
            svg += "<line x1=\"\(coordinate(plotLeft))\" y1=\"\(coordinate(top))\" x2=\"\(coordinate(plotLeft))\" y2=\"\(coordinate(bottom))\" stroke=\"#333333\"/>\n"
            let cy = coordinate((top + bottom) / 2)
            svg += "<text class=\"axis-title\" x=\"22\" y=\"\(cy)\" text-anchor=\"middle\" font-size=\"13\" transform=\"rotate(-90 22 \(cy))\">\(yTitle)</text>\n"
            svg += "</g>\n"
        }

        panel(id: "loss", top: lossTop, bottom: lossBottom, yAxis: lossAxis, yTitle: "loss", empty: "no finite loss values", xLabels: false)
        panel(id: "lr", top: lrTop, bottom: lrBottom, yAxis: lrAxis, yTitle: "learning rate", empty: "no learning-rate values", xLabels: true)
        svg += "<text class=\"axis-title\" x=\"\(coordinate((plotLeft + plotRight) / 2))\" y=\"\(coordinate(lrBottom + 44))\" text-anchor=\"middle\" font-size=\"13\">step</text>\n"

        // A lone point makes an invisible polyline: mark it with a dot as well.
        func series(id: String, steps: [Int], values: [Double], axis a: Axis, top: Double, bottom: Double, style: String, color: String) {
            svg += "<polyline id=\"\(id)\" fill=\"none\" \(style) points=\"\(points(steps, values, a, top: top, bottom: bottom))\"/>\n"
            if steps.count == 1 {
                svg += "<circle cx=\"\(coordinate(x(steps[0])))\" cy=\"\(coordinate(y(values[0], a, top: top, bottom: bottom)))\" r=\"2.5\" fill=\"\(color)\"/>\n"
            }
        }
        if let a = lossAxis {
            if !m.loss.isEmpty {
                let steps = m.loss.map(\.step)
                series(id: "loss-raw", steps: steps, values: lossValues, axis: a, top: lossTop, bottom: lossBottom,
                       style: "stroke=\"\(rawColor)\" stroke-opacity=\"0.4\" stroke-width=\"1\" stroke-linejoin=\"round\"", color: rawColor)
                series(id: "loss-smoothed", steps: steps, values: smooth, axis: a, top: lossTop, bottom: lossBottom,
                       style: "stroke=\"\(smoothColor)\" stroke-width=\"2.2\" stroke-linejoin=\"round\" stroke-linecap=\"round\"", color: smoothColor)
            }
            if !m.eval.isEmpty {
                svg += "<g id=\"eval-loss\" fill=\"\(evalColor)\" stroke=\"#ffffff\" stroke-width=\"1\">\n"
                for p in m.eval {
                    svg += "<circle cx=\"\(coordinate(x(p.step)))\" cy=\"\(coordinate(y(p.value, a, top: lossTop, bottom: lossBottom)))\" r=\"4\"/>\n"
                }
                svg += "</g>\n"
            }
        }
        if let a = lrAxis {
            series(id: "lr", steps: m.lr.map(\.step), values: lrValues, axis: a, top: lrTop, bottom: lrBottom,
                   style: "stroke=\"\(lrColor)\" stroke-width=\"1.8\" stroke-linejoin=\"round\"", color: lrColor)
        }

        // Legend, right of the loss panel.
        let lx = plotRight + 22
        var ly = lossTop + 10
        svg += "<g id=\"legend\">\n"
        func entry(_ sample: String, _ text: String) {
            svg += sample + "<text x=\"\(coordinate(lx + 34))\" y=\"\(coordinate(ly))\" dy=\"0.35em\">\(escape(text))</text>\n"
            ly += 22
        }
        func lineSample(_ attributes: String) -> String {
            "<line x1=\"\(coordinate(lx))\" y1=\"\(coordinate(ly))\" x2=\"\(coordinate(lx + 26))\" y2=\"\(coordinate(ly))\" \(attributes)/>"
        }
        if !m.loss.isEmpty {
            entry(lineSample("stroke=\"\(rawColor)\" stroke-opacity=\"0.4\" stroke-width=\"1.5\""), "loss")
            entry(lineSample("stroke=\"\(smoothColor)\" stroke-width=\"2.2\""), "loss, smoothed (\(compact(smoothing)))")
        }
        if !m.eval.isEmpty {
            entry("<circle cx=\"\(coordinate(lx + 13))\" cy=\"\(coordinate(ly))\" r=\"4\" fill=\"\(evalColor)\"/>", "eval loss")
        }
        if !m.lr.isEmpty {
            entry(lineSample("stroke=\"\(lrColor)\" stroke-width=\"1.8\""), "learning rate")
        }
        svg += "</g>\n"

        var skipped: [String] = []
        if m.skippedLoss > 0 { skipped.append("\(m.skippedLoss) loss") }
        if m.skippedEval > 0 { skipped.append("\(m.skippedEval) eval_loss") }
        if m.skippedLR > 0 { skipped.append("\(m.skippedLR) lr") }
        if !skipped.isEmpty {
            svg += "<text id=\"note\" x=\"\(coordinate(lx))\" y=\"\(coordinate(ly + 8))\" font-size=\"11\" fill=\"#b22222\">"
                + "<tspan x=\"\(coordinate(lx))\">skipped non-finite:</tspan>"
                + "<tspan x=\"\(coordinate(lx))\" dy=\"1.3em\">\(skipped.joined(separator: ", "))</tspan></text>\n"
        }
        svg += "</svg>\n"
        return svg
    }
}
