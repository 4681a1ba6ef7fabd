import ArgumentParser
import Foundation
import KosmosModels
import KosmosTensor
import KosmosVision

/// A failure of a command's input found while it runs (ArgumentParser's ValidationError would
/// also print a usage line). The text says what is wrong and what to do.
struct CommandError: Error, CustomStringConvertible, LocalizedError {
    let description: String
    init(_ description: String) { self.description = description }
    var errorDescription: String? { description }
}

/// Beam search takes 1…64 beams (`GenerationOptions.validate`); checked before the model loads.
func validateBeams(_ beams: Int) throws {
    guard beams >= 1 && beams <= 64 else {
        throw ValidationError("--beams \(beams): beam search takes 1 to 64 beams; pass a --beams in that range (1 is greedy)")
    }
}

/// Fits generation into the model's context: a prompt that leaves no position to generate into is
/// an error; a --max-tokens that would run past the context is lowered (with a warning), so the
/// text generated so far is not lost at the limit.
func fitToContext(_ options: GenerationOptions, promptLength: Int, context: Int) throws -> GenerationOptions {
    guard promptLength < context else {
        throw CommandError("the prompt is \(promptLength) tokens (image tokens included) but the model's context is \(context) positions; shorten the prompt or use fewer images (in chat: /reset)")
    }
    var fitted = options
    if promptLength + options.maxNewTokens > context {
        fitted.maxNewTokens = context - promptLength
        FileHandle.standardError.write(Data("warning: --max-tokens \(options.maxNewTokens) lowered to \(fitted.maxNewTokens): the prompt is \(promptLength) tokens and the model's context \(context)\n".utf8))
    }
    return fitted
}

/// A `--dtype` value: float32, bfloat16 or float16 (and their short spellings).
func parseDType(_ name: String) throws -> DType {
    guard let dtype = DType(name: name) else {
        throw ValidationError("--dtype '\(name)' is not a dtype: use float32, bfloat16 (bf16) or float16 (f16)")
    }
    return dtype
}

/// `--dtype` and `--threads`, as every command that runs a model takes them (docs/precision.md).
struct PrecisionOptions: ParsableArguments {
    @Option(help: "Weights' storage: float32 or bfloat16 (float16 too). Default: bfloat16 for inference where the CPU has native bfloat16 (AVX512-BF16), else float32; float32 for forward, encode-image and bench; KOSMOS_DTYPE overrides the default.")
    var dtype: String?

    @Option(help: "Threads for every backend (our kernels, OpenBLAS, oneDNN). Default: KOSMOS_NUM_THREADS, else all cores.")
    var threads: Int?

    func validate() throws {
        if let dtype { _ = try parseDType(dtype) }
        if let threads, threads < 1 || threads > 1024 { throw ValidationError("--threads takes 1 to 1024, not \(threads)") }
    }

    /// Sets the thread budget and returns the dtype: --dtype, else KOSMOS_DTYPE, else `fallback`.
    func apply(default fallback: DType) throws -> DType {
        if let threads { Kernels.setThreadCount(threads) }
        if let dtype { return try parseDType(dtype) }
        if let name = ProcessInfo.processInfo.environment["KOSMOS_DTYPE"], !name.isEmpty {
            guard let dtype = DType(name: name) else {
                throw CommandError("KOSMOS_DTYPE '\(name)' is not a dtype: use float32, bfloat16 (bf16) or float16 (f16)")
            }
            return dtype
        }
        return fallback
    }

    /// The inference default: bfloat16 where the CPU computes it natively, float32 elsewhere.
    static var inferenceDefault: DType { Kernels.hasNativeBFloat16 ? .bfloat16 : .float32 }

    var summary: String {
        "threads \(Parallel.threadCount), float32 products \(Kernels.float32Backend.rawValue), kernels \(Kernels.isa)"
    }
}

/// `--image-backend pil|torchvision` (docs/images.md).
struct ImageBackendOption: ParsableArguments {
    @Option(help: "Image preprocessing to equal: pil (transformers' CLIPImageProcessorPil, what the models were trained with) or torchvision (transformers 5's default CLIPImageProcessor). Default: the preprocessor config's \"backend\" key, else pil.")
    var imageBackend: String?

    func validate() throws { _ = try backend() }

    func backend() throws -> ImageBackend? { try imageBackend.map { try ImageBackend(name: $0) } }
}

/// `--model DIR` and `--tokenizer FILE`, as every command that loads a model directory takes them,
/// with `--dtype` and `--threads`.
struct ModelOptions: ParsableArguments {
    @Option(help: "Model directory: config.json (model_type kosmos-1, kosmos-2 or kosmos-2.5), the weights, a tokenizer; or ORG/NAME[@REVISION] from the Hub cache (kosmos pull).")
    var model: String

    @Option(help: "Tokenizer file (default: the one in the model directory).")
    var tokenizer: String?

    @OptionGroup var precision: PrecisionOptions

    @OptionGroup var hub: HubPullOption

    @OptionGroup var images: ImageBackendOption

    mutating func validate() throws { model = try hub.resolve(model) }

    /// `--image-backend`, if given.
    func backend() throws -> ImageBackend? { try images.backend() }

    var directory: URL { URL(fileURLWithPath: model) }
    var tokenizerFile: URL? { tokenizer.map(URL.init(fileURLWithPath:)) }

    /// The dtype this command runs in (its own default when neither --dtype nor KOSMOS_DTYPE says).
    func dtype(default fallback: DType = PrecisionOptions.inferenceDefault) throws -> DType {
        try precision.apply(default: fallback)
    }

    /// The directory loaded through the registry (a warning when the tokenizer cannot be the model's).
    func session(videoFPS: Double? = nil) throws -> ModelSession {
        let session = try ModelSession(directory: directory, tokenizer: tokenizerFile, dtype: try dtype(), videoFPS: videoFPS,
                                       imageBackend: try backend())
        if let warning = session.vocabularyWarning { FileHandle.standardError.write(Data("warning: \(warning)\n".utf8)) }
        return session
    }
}
