import ArgumentParser
import Foundation
import KosmosModels
import KosmosTensor

struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a quantized copy of a model directory (q8 or q4 Linear weights) that every command loads.",
        discussion: """
        The Linear weights of the decoder, the resampler and the vision tower become q8 (int8, a float16 scale per \
        group) or q4 (4-bit, a float16 scale and minimum per group); token embeddings and the output head are \
        stored bfloat16; norms, biases and everything else as they are. The formats: docs/model-format.md.
        """
    )

    @Option(help: "Model directory to quantize (config.json and float weights); or ORG/NAME[@REVISION] from the Hub cache.")
    var model: String

    @OptionGroup var hub: HubPullOption

    @Option(help: "Format: q8 or q4.")
    var to: String

    @Option(help: "Directory to create (must not exist or be empty).")
    var out: String

    @Option(help: "Columns per scale: a multiple of 32 that divides the Linear rows (default 32).")
    var groupSize: Int?

    @Option(help: "Threads (default: KOSMOS_NUM_THREADS, else all cores).")
    var threads: Int?

    mutating func validate() throws {
        model = try hub.resolve(model)
        guard QuantizationFormat(rawValue: to.lowercased()) != nil else {
            throw ValidationError("--to '\(to)' is not a format: use q8 or q4")
        }
        if let groupSize, groupSize < 32 || groupSize % 32 != 0 {
            throw ValidationError("--group-size \(groupSize) is not a positive multiple of 32")
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: model, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ValidationError("--model \(model): no such directory")
        }
    }

    func run() throws {
        if let threads { Kernels.setThreadCount(threads) }
        guard let format = QuantizationFormat(rawValue: to.lowercased()) else { return }
        let source = URL(fileURLWithPath: model), destination = URL(fileURLWithPath: out)
        let interactive = isatty(STDERR_FILENO) != 0
        var lastDraw = Date.distantPast
        let start = Date()
        print("quantizing \(source.path) to \(format) (groups of \(groupSize ?? format.defaultGroupSize))...")
        fflush(nil)
        let summary = try ModelQuantizer.quantize(source, to: destination, format: format, groupSize: groupSize) { done, total, read, all in
            let now = Date()
            guard now.timeIntervalSince(lastDraw) > (interactive ? 0.1 : 5) || done == total else { return }
            lastDraw = now
            let width = 30, filled = all > 0 ? width * read / all : width
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            let line = String(format: "%@ %d/%d tensors  %.0f/%.0f MB  %.0f s", bar, done, total,
                              Double(read) / 1e6, Double(all) / 1e6, now.timeIntervalSince(start))
            FileHandle.standardError.write(Data(((interactive ? "\r\u{1B}[2K" : "") + line + (interactive && done < total ? "" : "\n")).utf8))
        }
        print(String(format: "wrote %@: %d Linear weights in %@, %d tables in bfloat16, %d tensors as stored; weights %.1f MB → %.1f MB (%.0f s)",
                     destination.path, summary.quantized, format.rawValue, summary.convertedToBFloat16, summary.copied,
                     Double(summary.inputBytes) / 1e6, Double(summary.outputBytes) / 1e6, Date().timeIntervalSince(start)))
    }
}
