import Foundation

/// An SVG heat map of values in [0, 1] (accuracies): one cell per (row, column), coloured from red
/// (0) through yellow to green (1), its value printed in it as a percentage; nil cells are grey.
public enum HeatMap {
    public static func svg(title: String, rowTitle: String, columnTitle: String, rows: [String], columns: [String],
                           values: [[Double?]]) -> String {
        precondition(values.count == rows.count && values.allSatisfy { $0.count == columns.count },
                     "a heat map needs one value per row and column")
        let cell = 56.0, left = 110.0, top = 70.0
        let width = left + cell * Double(columns.count) + 30, height = top + cell * Double(rows.count) + 70
        var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(MetricsPlot.coordinate(width))" height="\(MetricsPlot.coordinate(height))" \
        viewBox="0 0 \(MetricsPlot.coordinate(width)) \(MetricsPlot.coordinate(height))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(MetricsPlot.coordinate(width / 2))" y="24" text-anchor="middle" font-size="16">\(MetricsPlot.escape(title))</text>
        <text x="\(MetricsPlot.coordinate(left + cell * Double(columns.count) / 2))" y="\(MetricsPlot.coordinate(height - 16))" text-anchor="middle">\(MetricsPlot.escape(columnTitle))</text>
        <text x="16" y="\(MetricsPlot.coordinate(top + cell * Double(rows.count) / 2))" text-anchor="middle" transform="rotate(-90 16 \(MetricsPlot.coordinate(top + cell * Double(rows.count) / 2)))">\(MetricsPlot.escape(rowTitle))</text>

        """
        for (i, row) in rows.enumerated() {
            let y = top + cell * Double(i)
            svg += "<text x=\"\(MetricsPlot.coordinate(left - 8))\" y=\"\(MetricsPlot.coordinate(y + cell / 2 + 4))\" text-anchor=\"end\">\(MetricsPlot.escape(row))</text>\n"
            for (j, value) in values[i].enumerated() {
                let x = left + cell * Double(j)
                let label = value.map { String(format: "%.0f%%", 100 * $0) } ?? "–"
                svg += "<rect class=\"cell\" x=\"\(MetricsPlot.coordinate(x))\" y=\"\(MetricsPlot.coordinate(y))\" width=\"\(MetricsPlot.coordinate(cell))\" height=\"\(MetricsPlot.coordinate(cell))\" fill=\"\(color(value))\" stroke=\"white\"/>"
                svg += "<text x=\"\(MetricsPlot.coordinate(x + cell / 2))\" y=\"\(MetricsPlot.coordinate(y + cell / 2 + 4))\" text-anchor=\"middle\">\(label)</text>\n"
            }
        }
        for (j, column) in columns.enumerated() {
            let x = left + cell * Double(j) + cell / 2
            svg += "<text x=\"\(MetricsPlot.coordinate(x))\" y=\"\(MetricsPlot.coordinate(top + cell * Double(rows.count) + 18))\" text-anchor=\"middle\">\(MetricsPlot.escape(column))</text>\n"
        }
        return svg + "</svg>\n"
    }

    /// Red (0) → yellow (0.5) → green (1); grey for no value.
    static func color(_ value: Double?) -> String {
        guard let value, value.isFinite else { return "#cccccc" }
        let v = Swift.min(1, Swift.max(0, value))
        let (r, g): (Double, Double) = v < 0.5 ? (230, 60 + 2 * v * 170) : (230 - 2 * (v - 0.5) * 190, 230 - 2 * (v - 0.5) * 60)
        return String(format: "#%02x%02x%02x", Int(r.rounded()), Int(g.rounded()), 70)
    }
}
