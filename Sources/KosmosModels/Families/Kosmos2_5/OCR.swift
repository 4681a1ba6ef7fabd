import Foundation

/// One line of Kosmos-2.5's `<ocr>` output: its text and its box in the original image's pixels.
public struct OCRLine: Equatable, Sendable, Encodable {
    /// The line's text as generated (it usually ends with its own "\n").
    public var text: String
    /// x0, y0, x1, y1 (top-left, bottom-right) in the original image's pixels.
    public var box: [Int]

    public init(text: String, box: [Int]) {
        self.text = text
        self.box = box
    }
}

/// Kosmos-2.5's output post-processing as transformers' documentation runs it
/// (docs/source/en/model_doc/kosmos2_5.md, "OCR Task"; the model card's ocr.py): every occurrence
/// of the prompt is removed; an `<md>` prompt's text is then the answer; otherwise each
/// `<bbox><x_a><y_b><x_c><y_d></bbox>` (a–d decimal digits, any script's, as Python's `\d`) opens a
/// line whose text runs to the next box, text before the first box belongs to no line, a box
/// whose corners are not strictly ordered (a ≥ c or b ≥ d) drops its line, and the coordinates
/// (positions in the resized image) are scaled back to the original image's pixels by
/// original ÷ resized size — in float32, as the documented code computes it from the processor's
/// tensors (1/resized, times the original size, times the coordinate), truncated toward zero.
/// Tested against that code on written cases (Kosmos25Tests).
public enum Kosmos25OCR {
    /// The lines of a generation for the `<ocr>` task; `width`/`height` are the processor's
    /// resized size, `rawWidth`/`rawHeight` the original image's.
    public static func lines(_ text: String, prompt: String = "<ocr>", rawWidth: Int, rawHeight: Int,
                             width: Int, height: Int) -> [OCRLine] {
        let text = prompt.isEmpty ? text : text.replacingOccurrences(of: prompt, with: "")
        let sx = documentedScale(raw: rawWidth, processed: width), sy = documentedScale(raw: rawHeight, processed: height)
        let boxes = findBoxes(text)
        var out: [OCRLine] = []
        for (k, box) in boxes.enumerated() {
            let end = k + 1 < boxes.count ? boxes[k + 1].range.lowerBound : text.endIndex
            let c = box.coordinates
            guard c[0] < c[2], c[1] < c[3] else { continue }
            out.append(OCRLine(text: String(text.unicodeScalars[box.range.upperBound..<end]),
                               box: [scaled(c[0], sx), scaled(c[1], sy), scaled(c[2], sx), scaled(c[3], sy)]))
        }
        return out
    }

    /// The documented function's result: for `<md>` the text without the prompt; otherwise per
    /// kept line "x0,y0,x1,y0,x1,y1,x0,y1," and its text (the corners clockwise from the top-left).
    public static func postProcess(_ text: String, prompt: String, rawWidth: Int, rawHeight: Int, width: Int, height: Int) -> String {
        if prompt.contains("<md>") { return prompt.isEmpty ? text : text.replacingOccurrences(of: prompt, with: "") }
        return lines(text, prompt: prompt, rawWidth: rawWidth, rawHeight: rawHeight, width: width, height: height)
            .map(cornerText).joined()
    }

    /// "x0,y0,x1,y0,x1,y1,x0,y1," followed by the line's text.
    public static func cornerText(_ l: OCRLine) -> String {
        let (x0, y0, x1, y1) = (l.box[0], l.box[1], l.box[2], l.box[3])
        return "\(x0),\(y0),\(x1),\(y0),\(x1),\(y1),\(x0),\(y1),\(l.text)"
    }

    /// original ÷ resized as the documented code gets it: fl32(fl32(1 / resized) · original).
    static func documentedScale(raw: Int, processed: Int) -> Float {
        (1 / Float(processed)) * Float(raw)
    }

    /// trunc(fl32(c · scale)), saturating where the product leaves Int's range.
    static func scaled(_ c: Int, _ scale: Float) -> Int {
        let v = (Float(c) * scale).rounded(.towardZero)
        guard v.isFinite else { return v > 0 ? Int.max : Int.min }
        if v >= 9.2e18 { return Int.max }
        if v <= -9.2e18 { return Int.min }
        return Int(v)
    }

    /// Every `<bbox><x_N><y_N><x_N><y_N></bbox>` in order, without overlaps, scanned as Python's
    /// `re` scans: a candidate that fails is skipped and the search goes on after its `<bbox>`.
    /// A coordinate of more digits than Int holds saturates.
    static func findBoxes(_ text: String) -> [(range: Range<String.Index>, coordinates: [Int])] {
        let s = text.unicodeScalars
        var found: [(Range<String.Index>, [Int])] = []
        func expect(_ literal: String, at i: String.Index) -> String.Index? {
            var j = i
            for u in literal.unicodeScalars {
                guard j < s.endIndex, s[j] == u else { return nil }
                j = s.index(after: j)
            }
            return j
        }
        var cursor = s.startIndex
        while let start = text.range(of: "<bbox>", range: cursor..<text.endIndex) {
            var i: String.Index? = start.upperBound
            var coordinates: [Int] = []
            for axis in ["<x_", "<y_", "<x_", "<y_"] {
                guard let at = i, var j = expect(axis, at: at) else { i = nil; break }
                var value = 0, digits = 0
                while j < s.endIndex, s[j].properties.numericType == .decimal, let d = s[j].properties.numericValue {
                    let (m, o1) = value.multipliedReportingOverflow(by: 10)
                    let (a, o2) = m.addingReportingOverflow(Int(d))
                    value = o1 || o2 ? Int.max : a
                    digits += 1
                    j = s.index(after: j)
                }
                guard digits > 0, let after = expect(">", at: j) else { i = nil; break }
                coordinates.append(value)
                i = after
            }
            if let at = i, let end = expect("</bbox>", at: at) {
                found.append((start.lowerBound..<end, coordinates))
                cursor = end
            } else {
                cursor = start.upperBound
            }
        }
        return found
    }
}
