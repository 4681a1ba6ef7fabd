import Foundation

/// One line of metrics.jsonl.
public struct MetricsRecord: Codable, Equatable, Sendable {
    public var step: Int
    /// Mean training loss over the steps since the previous line.
    public var loss: Double
    public var lr: Double
    public var gradNorm: Double
    /// Totals since the run began (across resumptions).
    public var tokens: Int
    public var images: Int
    /// Throughput since this process started training.
    public var tokensPerSecond: Double
    public var imagesPerSecond: Double
    public var elapsed: Double

    public init(step: Int, loss: Double, lr: Double, gradNorm: Double, tokens: Int, images: Int,
                tokensPerSecond: Double, imagesPerSecond: Double, elapsed: Double) {
        self.step = step; self.loss = loss; self.lr = lr; self.gradNorm = gradNorm; self.tokens = tokens
        self.images = images; self.tokensPerSecond = tokensPerSecond; self.imagesPerSecond = imagesPerSecond; self.elapsed = elapsed
    }

    enum CodingKeys: String, CodingKey {
        case step, loss, lr, tokens, images
        case gradNorm = "grad_norm", tokensPerSecond = "tokens_per_s", imagesPerSecond = "images_per_s", elapsed = "elapsed_s"
    }
}

/// Appends metrics lines. Opening it for a resumed run first drops the lines logged after the
/// checkpoint's step (a killed run may have logged steps it then lost), so the file reads as if
/// the run had never been interrupted.
public final class MetricsLog {
    public let url: URL
    let handle: FileHandle
    let encoder: JSONEncoder

    public init(url: URL, truncatingAfter step: Int) throws {
        self.url = url
        var kept = Data()
        if let existing = FileManager.default.contents(atPath: url.path) {
            for line in existing.split(separator: UInt8(ascii: "\n")) {
                guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                      let s = object["step"] as? Int, s <= step else { continue }
                kept.append(Data(line)); kept.append(UInt8(ascii: "\n"))
            }
        }
        guard FileManager.default.createFile(atPath: url.path, contents: kept), let h = FileHandle(forWritingAtPath: url.path) else {
            throw TrainingError.data("\(url.path): cannot write the metrics file")
        }
        h.seekToEndOfFile()
        handle = h
        encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
    }

    deinit { try? handle.close() }

    public func append(_ record: MetricsRecord) throws {
        var line = try encoder.encode(record)
        line.append(UInt8(ascii: "\n"))
        handle.write(line)
    }
}

/// The live progress line on a terminal, or plain periodic lines otherwise.
public final class ProgressDisplay {
    let interactive: Bool
    let every: Int
    var lastDraw = Date.distantPast
    var drewLine = false

    public init(every: Int, interactive: Bool = isatty(STDERR_FILENO) != 0) {
        self.every = max(1, every); self.interactive = interactive
    }

    public func update(_ r: StepReport) {
        let text = ProgressDisplay.line(r)
        if interactive {
            // Redraw at most 10 times a second, always on the last step.
            let now = Date()
            guard now.timeIntervalSince(lastDraw) > 0.1 || r.step == r.totalSteps || r.checkpoint != nil else { return }
            lastDraw = now
            FileHandle.standardError.write(Data(("\r\u{1B}[2K" + text).utf8))
            drewLine = true
            if let c = r.checkpoint { FileHandle.standardError.write(Data("\n  saved \(c.path)\n".utf8)) }
        } else if r.step % every == 0 || r.step == r.totalSteps || r.checkpoint != nil {
            var out = text + "\n"
            if let c = r.checkpoint { out += "  saved \(c.path)\n" }
            FileHandle.standardError.write(Data(out.utf8))
        }
    }

    public func finish() {
        if interactive && drewLine { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    public static func line(_ r: StepReport) -> String {
        let width = String(r.totalSteps).count
        let step = String(repeating: " ", count: max(0, width - String(r.step).count)) + "\(r.step)"
        return "step \(step)/\(r.totalSteps)  loss \(String(format: "%.4f", r.result.loss))  lr \(String(format: "%.2e", r.result.learningRate))"
            + "  \(String(format: "%.0f", r.tokensPerSecond)) tok/s  \(String(format: "%.1f", r.imagesPerSecond)) media/s"
            + "  elapsed \(duration(r.elapsed))  ETA \(duration(r.eta))"
    }

    public static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        let s = Int(seconds.rounded())
        if s >= 3600 { return "\(s / 3600)h\(String(format: "%02d", (s % 3600) / 60))m" }
        if s >= 60 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
        return "\(s)s"
    }
}
