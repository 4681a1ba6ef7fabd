import ArgumentParser
import Foundation
import KosmosBenchmarks
import KosmosTensor

@main
struct Kosmos: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kosmos",
        abstract: "Train and run Kosmos multimodal language models in Swift.",
        version: "0.1.0",
        subcommands: [Init.self, Info.self, Pull.self, Quantize.self, Convert.self, Forward.self, Generate.self, Caption.self, Ground.self, OCR.self, Chat.self, Serve.self, EncodeImage.self, EncodeAudio.self, EncodeVideo.self, Tokenize.self, Detokenize.self, Train.self, Plot.self, Bench.self, DataCommand.self, Eval.self]
    )

    static func main() async {
        runWithPassiveOpenMP()
        if let message = unknownSubcommand(Array(CommandLine.arguments.dropFirst())) {
            FileHandle.standardError.write(Data((message + "\n").utf8))
            Foundation.exit(64)
        }
        await main(rewrittenArguments(Array(CommandLine.arguments.dropFirst())))
    }

    /// `train --resume auto` (or `--resume=auto`) as the hidden flag `--resume-auto`: ArgumentParser
    /// cannot give `--resume` both a bare form and a value.
    static func rewrittenArguments(_ arguments: [String]) -> [String] {
        guard arguments.first == "train" else { return arguments }
        var out: [String] = []
        var i = 0
        while i < arguments.count {
            if arguments[i] == "--resume", i + 1 < arguments.count, arguments[i + 1] == "auto" {
                out.append("--resume-auto")
                i += 2
                continue
            }
            out.append(arguments[i] == "--resume=auto" ? "--resume-auto" : arguments[i])
            i += 1
        }
        return out
    }

    /// The error for a command name that does not exist, wherever it stands (`kosmos frobnicate
    /// --help`, `kosmos eval nope`): ArgumentParser would print the group's help for the first and
    /// exit 0. Flags before a command name are left to the parser.
    static func unknownSubcommand(_ arguments: [String]) -> String? {
        var command: ParsableCommand.Type = Kosmos.self
        var path = ["kosmos"]
        for argument in arguments {
            let subcommands = command.configuration.subcommands
            guard !subcommands.isEmpty, !argument.hasPrefix("-"), argument != "help" else { return nil }
            guard let next = subcommands.first(where: { $0._commandName == argument || $0.configuration.aliases.contains(argument) }) else {
                let names = subcommands.map { $0._commandName }.joined(separator: ", ")
                return "Error: '\(argument)' is not a command of '\(path.joined(separator: " "))'. The commands are: \(names).\n"
                    + "  See '\(path.joined(separator: " ")) --help' for what each does."
            }
            command = next
            path.append(argument)
        }
        return nil
    }
}

/// oneDNN's OpenMP threads spin after each product by default, taking a core from our own pool's
/// work between products (measured: the ViT-L/14 encode 0.66–0.73 s passive against 0.79–0.87 s
/// spinning, docs/precision.md). OpenMP reads OMP_WAIT_POLICY when it loads, before any Swift code
/// runs, so the process sets it and starts itself again; a value the user set is kept.
func runWithPassiveOpenMP() {
    #if os(Linux)
    guard getenv("OMP_WAIT_POLICY") == nil else { return }
    setenv("OMP_WAIT_POLICY", "passive", 1)
    execv("/proc/self/exe", CommandLine.unsafeArgv)
    // execv returns only when it failed: go on with the spinning default.
    #endif
}

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the speed of the engine's building blocks.",
        subcommands: [Gemm.self, KernelsBench.self, ModelBench.self, GenerateBench.self, LongBench.self, ServeBench.self, DataBenchmark.self, TokenizeBenchmark.self, AllReduceBench.self]
    )
}

struct Gemm: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Matrix-product throughput (GFLOP/s) for square and transformer-shaped products, float32 or bfloat16 weights."
    )

    @Option(help: "Timed runs per shape (after one warm-up).")
    var repeats: Int = 5

    @Option(help: "Threads of every backend (default: KOSMOS_NUM_THREADS, else all cores).")
    var threads: Int?

    @Option(help: "The weight's storage: float32 or bfloat16 (activations are float32 either way).")
    var dtype: String = "float32"

    @Option(help: "float32 products through onednn or blas (default: KOSMOS_MATMUL, else onednn where available).")
    var backend: String?

    @Option(help: "Only these square sizes, comma-separated (e.g. 512,2048), instead of the default set.")
    var sizes: String?

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        _ = try parseDType(dtype)
        if let backend {
            guard let b = MatmulBackend(rawValue: backend) else { throw ValidationError("--backend takes onednn or blas, not '\(backend)'") }
            if b == .onednn && !Kernels.oneDNNAvailable {
                throw ValidationError("--backend onednn: oneDNN is not available in this build (Linux with libdnnl-dev)")
            }
        }
        if let sizes {
            let parsed = sizes.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !parsed.isEmpty, parsed.allSatisfy({ ($0 ?? 0) > 0 && ($0 ?? 0) <= 16384 }) else {
                throw ValidationError("--sizes takes positive integers up to 16384, comma-separated, e.g. 512,2048")
            }
        }
    }

    func run() throws {
        if let threads { Kernels.setThreadCount(threads) }
        if let backend { Kernels.float32Backend = MatmulBackend(rawValue: backend)! }
        let dtype = try parseDType(dtype)
        var shapes = GemmBenchmark.defaultShapes
        if let sizes {
            shapes = sizes.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
                .map { GemmBenchmark.Shape(m: $0, k: $0, n: $0, label: "square") }
        }
        print("\(dtype) weights, float32 activations: GEMM through Tensor.matmul (B transposed, as a Linear layer reads it)")
        print("float32 backend: \(Kernels.float32Backend.rawValue), kernels: \(Kernels.isa), "
              + "threads: \(Parallel.threadCount), runs per shape: \(repeats)")
        if let impl = Kernels.oneDNNImplementation(m: 128, n: 2048, k: 2048, dtype: dtype) {
            print("oneDNN implementation (128×2048·2048×2048): \(impl)")
        }
        print(pad("shape", 24) + pad("best ms", 10) + pad("GFLOP/s", 10) + pad("median", 10) + "  what")
        _ = GemmBenchmark.run(shapes: shapes, repeats: repeats, dtype: dtype) { r in
            print(pad(r.shape.description, 24)
                  + pad(String(format: "%.2f", r.bestSeconds * 1000), 10)
                  + pad(String(format: "%.1f", r.bestGFLOPs), 10)
                  + pad(String(format: "%.1f", r.medianGFLOPs), 10)
                  + "  " + r.shape.label)
            fflush(nil)
        }
    }

    private func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count)
    }
}

struct KernelsBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels",
        abstract: "Time the Swift kernels (layer norm, softmax, GELU, cross-entropy, attention) on transformer-sized inputs."
    )

    @Option(help: "Timed runs per kernel (after one warm-up).")
    var repeats: Int = 10

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
    }

    func run() throws {
        print("kernel threads: \(Parallel.threadCount), BLAS threads: \(BLAS.threadCount), runs: \(repeats)")
        print("kernel".padding(toLength: 40, withPad: " ", startingAt: 0) + "best ms    median ms")
        _ = KernelBenchmark.run(repeats: repeats) { r in
            print(r.name.padding(toLength: 40, withPad: " ", startingAt: 0)
                  + String(format: "%-10.3f %.3f", r.bestMilliseconds, r.medianMilliseconds))
            fflush(nil)
        }
    }
}
