import ArgumentParser
import Foundation
import KosmosBenchmarks
import KosmosModels
import KosmosNN
import KosmosTensor

struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a freshly initialised Kosmos-1 model directory (config.json + model.safetensors).",
        discussion: "Presets: \(KosmosConfiguration.presetNames.joined(separator: ", ")). Weights are initialised as torchscale, transformers and flamingo-pytorch initialise them."
    )

    @Option(help: "Configuration preset.")
    var preset: String

    @Option(help: "Directory to create (must not exist or be empty).")
    var out: String

    @Option(help: "Seed for the initialisation.")
    var seed: UInt64 = 0

    @Option(help: "A tokenizer file (.model or tokenizer.json) to copy into the directory.")
    var tokenizer: String?

    @Option(help: "The stored dtype of every tensor: float32, bfloat16 or float16 (as model.to(dtype) then save_pretrained).")
    var dtype = "float32"

    @Option(name: .customLong("max-positions"), help: "The decoder's max_target_positions (the preset's otherwise), e.g. 65536 for long inputs (xPos carries up to 66,855 at scale base 512).")
    var maxPositions: Int?

    @Option(name: .customLong("kv-heads"), help: "Key/value heads of the decoder's attention: a divisor of its heads (1: multi-query; default: one per head).")
    var kvHeads: Int?

    @Flag(name: .customLong("qk-norm"), help: "QK-norm: a LayerNorm on each head's queries and keys.")
    var qkNorm = false

    @Option(name: .customLong("audio-encoder"), help: "A transformers Whisper directory: adds an audio path (audio_config from its config.json and preprocessor_config.json) with its encoder's weights, and <audio>, </audio> after the vocabulary (docs/audio.md).")
    var audioEncoder: String?

    @Option(name: .customLong("audio-tokens"), help: "Decoder tokens per audio clip (with --audio-encoder).")
    var audioTokens = 64

    @Option(name: .customLong("audio-connector"), help: "perceiver (a resampler, as images) or pool (the mean of max_source_positions / --audio-tokens positions each).")
    var audioConnector = "perceiver"

    /// The preset with the decoder options applied.
    func configuration() throws -> KosmosConfiguration? {
        guard var c = KosmosConfiguration.preset(named: preset) else { return nil }
        if let maxPositions { c.decoder.maxTargetPositions = maxPositions }
        if let kvHeads { c.decoder.decoderKvAttentionHeads = kvHeads }
        if qkNorm { c.decoder.qkNorm = true }
        do { try c.decoder.validate() } catch { throw ValidationError("\(error)") }
        if let audioEncoder {
            guard let connector = AudioConnector(rawValue: audioConnector) else {
                throw ValidationError("--audio-connector '\(audioConnector)': perceiver or pool")
            }
            var audio = try AudioConfiguration(whisperDirectory: URL(fileURLWithPath: audioEncoder))
            audio.connector = connector
            audio.numAudioTokens = audioTokens
            audio.resampler.numLatents = audioTokens
            audio.poolStride = max(1, audio.encoder.maxSourcePositions / max(audioTokens, 1))
            audio.audioTokenId = c.vocabSize
            audio.audioEndTokenId = c.vocabSize + 1
            c.vocabSize += 2
            c.decoder.vocabSize += 2
            c.audio = audio
            do { try c.validate() } catch { throw ValidationError("--audio-encoder \(audioEncoder): \(error)") }
        }
        return c
    }

    func validate() throws {
        guard DType(name: dtype) != nil else {
            throw ValidationError("--dtype '\(dtype)' is not a dtype: use float32, bfloat16 or float16")
        }
        guard KosmosConfiguration.preset(named: preset) != nil else {
            throw ValidationError("unknown preset '\(preset)'; choose one of \(KosmosConfiguration.presetNames.joined(separator: ", "))")
        }
        if let tokenizer, !FileManager.default.fileExists(atPath: tokenizer) {
            throw ValidationError("--tokenizer \(tokenizer): no such file")
        }
        let contents = (try? FileManager.default.contentsOfDirectory(atPath: out)) ?? []
        guard contents.isEmpty else { throw ValidationError("--out \(out) exists and is not empty") }
        if let maxPositions, maxPositions < 1 { throw ValidationError("--max-positions \(maxPositions): at least 1") }
        _ = try configuration()
    }

    func run() throws {
        guard let configuration = try configuration() else { return }
        let directory = URL(fileURLWithPath: out)
        print("initialising \(preset) (seed \(seed))...")
        fflush(nil)
        let stored = DType(name: dtype) ?? .float32
        // Built with 16-bit weights when stored so (the same values, rounded once, in half the memory).
        let model = try withWeightDType(stored) { try KosmosModel(configuration: configuration, generator: RandomGenerator(seed: seed)) }
        if let audioEncoder, let tower = model.audioTower {
            try tower.encoder.loadWeights(whisperDirectory: URL(fileURLWithPath: audioEncoder))
            print("audio encoder: \(tower.encoder.parameterCount.formatted()) parameters from \(audioEncoder); <audio> \(configuration.audio!.audioTokenId), </audio> \(configuration.audio!.audioEndTokenId)")
        }
        print("writing \(model.parameterCount.formatted()) parameters (\(stored)) to \(directory.path)...")
        fflush(nil)
        try model.save(directory: directory, dtype: stored.safeTensorsDType)
        if let tokenizer {
            let source = URL(fileURLWithPath: tokenizer)
            let name = source.pathExtension == "json" ? "tokenizer.json" : "tokenizer.model"
            try FileManager.default.copyItem(at: source, to: directory.appendingPathComponent(name))
        }
        print("done")
    }
}

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Summarise a model directory: configuration, parameters per component, stored dtypes."
    )

    @Option(help: "Model directory (config.json + model.safetensors or shards); or ORG/NAME[@REVISION] from the Hub cache.")
    var model: String

    @OptionGroup var hub: HubPullOption

    mutating func validate() throws { model = try hub.resolve(model) }

    func run() throws {
        let directory = URL(fileURLWithPath: model)
        let (data, type, url) = try ModelDirectory.configuration(in: directory)
        print("model_type: \(type)")
        if let family = ModelRegistry.family(modelType: type) {
            print("family: \(family)")
            for line in try family.describe(data, file: url) { print(line) }
        }
        let weights = try ModelDirectory.weights(in: directory)
        if let quantization = try ModelQuantizer.quantizationConfig(of: directory) {
            let fields = ["format", "group_size", "quantized_linears"].map { "\($0) \(quantization[$0].map { "\($0)" } ?? "?")" }
            print("quantized: \(fields.joined(separator: ", ")) (docs/model-format.md)")
        }
        var counts: [String: Int] = [:], dtypes: [String: Set<String>] = [:], bytes = 0
        for name in weights.names {
            guard let entry = weights.entry(name) else { continue }
            bytes += entry.byteCount
            dtypes[String(name.split(separator: ".").first ?? Substring(name)), default: []].insert(entry.dtype.rawValue)
            // Scales and minimums are not parameters; a q4 byte holds two.
            if name.hasSuffix("_scale") || name.hasSuffix("_min") { continue }
            let component = String(name.split(separator: ".").first ?? Substring(name))
            let packed = entry.dtype == .u8 && weights.entry(QuantizedTensorNames.scale(of: name)) != nil
            counts[component, default: 0] += entry.elementCount * (packed ? 2 : 1)
        }
        print(String(format: "weights: %.2f GB stored", Double(bytes) / 1e9))
        print("parameters (stored tensors, by first name component):")
        for component in counts.keys.sorted() {
            print("  \(component): \(counts[component]!.formatted()) [\(dtypes[component]!.sorted().joined(separator: ", "))]")
        }
        print("  total: \(counts.values.reduce(0, +).formatted())")
        if let tokenizer = ModelDirectory.tokenizerFile(in: directory) {
            print("tokenizer: \(tokenizer.lastPathComponent)")
        } else {
            print("tokenizer: none in the directory")
        }
    }
}

struct ModelBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Time random-initialised models: ViT-L/14 encode, the 1.3B decoder forward, a small training step; Whisper log-mel and a Whisper-base encoder.",
        discussion: "Compare with scripts/bench/pytorch_model.py and scripts/bench/pytorch_audio.py (--bf16 for bfloat16) on the same machine."
    )

    @Option(help: "Timed runs per case (after one warm-up).")
    var repeats: Int = 3

    @OptionGroup var precision: PrecisionOptions

    @Option(help: "Cases to run, comma-separated: \(ModelBenchmark.cases.joined(separator: ", ")); also, only when named: \(ModelBenchmark.namedOnlyCases.joined(separator: ", ")) (a released-size Kosmos-2.5 reading a 4,096-patch page: minutes, about 6 GB in float32).")
    var cases: String = ModelBenchmark.cases.joined(separator: ",")

    @OptionGroup var weights: BenchWeightOptions

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }

        let known = ModelBenchmark.cases + ModelBenchmark.namedOnlyCases
        for name in cases.split(separator: ",") where !known.contains(String(name)) {
            throw ValidationError("unknown case '\(name)'; choose from \(known.joined(separator: ", "))")
        }
    }

    func run() throws {
        let (dtype, quantization) = try weights.resolve(precision)
        print("weights \(quantization.map { "\($0) (other weights \(dtype))" } ?? "\(dtype)"), \(precision.summary), runs: \(repeats)")
        func report(_ result: ModelBenchmark.Result) {
            print(String(format: "%-48@ best %.3f s  median %.3f s  %@", result.name as NSString, result.best, result.median, result.note as NSString))
            fflush(nil)
        }
        for name in cases.split(separator: ",") {
            if name == "train", let quantization {
                print("train: not run with \(quantization) weights (quantized weights do not train)")
                continue
            }
            if name == "kosmos25" {
                try ModelBenchmark.kosmos25Page(repeats: repeats, dtype: dtype, quantization: quantization).forEach(report)
                continue
            }
            let result: ModelBenchmark.Result
            switch name {
            case "vit": result = try ModelBenchmark.visionTower(repeats: repeats, dtype: dtype, quantization: quantization)
            case "decoder": result = try ModelBenchmark.decoderForward(repeats: repeats, dtype: dtype, quantization: quantization)
            case "generate": result = try ModelBenchmark.generation(repeats: repeats, dtype: dtype, quantization: quantization)
            case "log-mel": result = try ModelBenchmark.logMel(repeats: repeats)
            case "whisper": result = try ModelBenchmark.whisperEncoder(repeats: repeats, dtype: dtype, quantization: quantization)
            default: result = try ModelBenchmark.trainingStep(repeats: repeats, dtype: dtype)
            }
            report(result)
        }
    }
}

struct GenerateBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Decode tokens/s of the 1.3B Kosmos-1 decoder with the KV cache (64-token prompt, 64 new tokens).",
        discussion: "Compare with scripts/bench/pytorch_generate.py (torchscale incremental decoding)."
    )

    @Option(help: "Timed runs (after one warm-up).")
    var repeats: Int = 1

    @Option(help: "Batch sizes, comma-separated (e.g. 1,4,16): time the batched decoding step (MagnetoDecoder.step) over that many sequences at once instead.")
    var batch: String?

    @Option(help: "Decoder for --batch: small (12 layers × 768, vocab 32k) or kosmos-1 (1.3B).")
    var size = "small"

    @Option(help: "Timed decoding steps per run with --batch or --past.")
    var steps = 32

    @Option(help: "Past lengths, comma-separated (e.g. 128,1024,2048): time one sequence's decoding step after that many cached tokens instead.")
    var past: String?

    @OptionGroup var precision: PrecisionOptions

    @OptionGroup var weights: BenchWeightOptions

    func validate() throws {
        if let batch {
            let sizes = batch.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !sizes.isEmpty, sizes.allSatisfy({ ($0 ?? 0) >= 1 && ($0 ?? 0) <= 256 }) else {
                throw ValidationError("--batch takes sizes from 1 to 256, comma-separated, e.g. 1,4,16")
            }
        }
        if let past {
            let lengths = past.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !lengths.isEmpty, lengths.allSatisfy({ ($0 ?? 0) >= 1 }) else {
                throw ValidationError("--past takes lengths of at least 1, comma-separated, e.g. 128,1024,2048")
            }
        }
        guard ["small", "kosmos-1"].contains(size) else { throw ValidationError("--size is small or kosmos-1") }
        guard steps >= 1 && steps <= 1024 else { throw ValidationError("--steps must be between 1 and 1024") }
    }

    func run() throws {
        let (dtype, quantization) = try weights.resolve(precision)
        var c = ModelBenchmark.smallDecoderConfiguration()
        if size == "kosmos-1", let preset = KosmosConfiguration.preset(named: "kosmos-1") {
            c = preset.decoder
            c.dropout = 0
        }
        if let past {
            let lengths = past.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            c.maxTargetPositions = Swift.max(c.maxTargetPositions, (lengths.max() ?? 0) + steps)
            print("decoder: \(c.decoderLayers) layers × \(c.decoderEmbedDim), vocab \(c.vocabSize); weights \(quantization.map { "\($0) (other weights \(dtype))" } ?? "\(dtype)"), \(precision.summary)")
            for length in lengths {
                print(try ModelBenchmark.decodeAfterPast(length, configuration: c, steps: steps, dtype: dtype, quantization: quantization, repeats: Swift.max(2, repeats)).note)
                fflush(nil)
            }
            return
        }
        if let batch {
            print("decoder: \(c.decoderLayers) layers × \(c.decoderEmbedDim), vocab \(c.vocabSize); weights \(quantization.map { "\($0) (other weights \(dtype))" } ?? "\(dtype)"), \(precision.summary)")
            var first: Double?
            for size in batch.split(separator: ",").compactMap({ Int($0.trimmingCharacters(in: .whitespaces)) }) {
                let result = try ModelBenchmark.batchedDecoding(batch: size, configuration: c, steps: steps, dtype: dtype, quantization: quantization, repeats: Swift.max(1, repeats))
                let tokensPerSecond = Double(size * steps) / result.best
                if first == nil { first = tokensPerSecond }
                print(String(format: "%@, %.2f× the tokens/s of the first batch size", result.note as NSString,
                             tokensPerSecond / (first ?? tokensPerSecond)))
                fflush(nil)
            }
            return
        }
        print("weights \(quantization.map { "\($0) (other weights \(dtype))" } ?? "\(dtype)"), \(precision.summary)")
        let result = try ModelBenchmark.generation(repeats: Swift.max(1, repeats), dtype: dtype, quantization: quantization)
        print(String(format: "%@: best %.3f s, %@", result.name as NSString, result.best, result.note as NSString))
    }
}

struct LongBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "long",
        abstract: "Long prompts: prefill seconds and tokens/s, decode ms per token at that context, peak memory and KV-cache bytes per token.",
        discussion: "Each length (ascending) is prefilled in --chunk-position chunks into a fresh cache, then --decode-steps tokens are decoded (the median step is reported). Peak RSS is the process's peak after each length. Random weights."
    )

    @Option(help: "Prompt lengths, comma-separated.")
    var tokens = "4096,16384,40960"

    @Option(help: "Decoder: long (4 layers × 256, 65,536 positions), small (12 layers × 768) or kosmos-1 (the 1.3B decoder); the positions are raised to fit the longest prompt.")
    var size = "long"

    @Option(help: "Prompt positions per prefill chunk.")
    var chunk = PromptPrefill.defaultChunkSize

    @Option(name: .customLong("decode-steps"), help: "Decoding steps timed after each prompt.")
    var decodeSteps = 8

    @Option(name: .customLong("kv-heads"), help: "Key/value heads (grouped-query attention: a divisor of the heads; 1: multi-query).")
    var kvHeads: Int?

    @OptionGroup var precision: PrecisionOptions

    @OptionGroup var weights: BenchWeightOptions

    var lengths: [Int] { tokens.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }

    func validate() throws {
        guard !lengths.isEmpty, lengths.count == tokens.split(separator: ",").count, lengths.allSatisfy({ $0 >= 1 }) else {
            throw ValidationError("--tokens takes lengths of at least 1, comma-separated, e.g. 4096,16384,40960")
        }
        guard ["long", "small", "kosmos-1"].contains(size) else { throw ValidationError("--size is long, small or kosmos-1") }
        guard chunk >= 1 else { throw ValidationError("--chunk \(chunk): a chunk holds at least 1 position") }
        guard decodeSteps >= 1 && decodeSteps <= 1024 else { throw ValidationError("--decode-steps must be between 1 and 1024") }
    }

    func run() throws {
        let (dtype, quantization) = try weights.resolve(precision)
        var c = LongContextBenchmark.longConfiguration()
        if size == "small" { c = ModelBenchmark.smallDecoderConfiguration() }
        if size == "kosmos-1", let preset = KosmosConfiguration.preset(named: "kosmos-1") { c = preset.decoder }
        c.dropout = 0
        c.decoderKvAttentionHeads = kvHeads
        c.maxTargetPositions = Swift.max(c.maxTargetPositions, (lengths.max() ?? 0) + decodeSteps)
        try c.validate()
        print("decoder: \(c.decoderLayers) layers × \(c.decoderEmbedDim), \(c.decoderAttentionHeads) heads (\(c.kvAttentionHeads) key/value), vocab \(c.vocabSize), \(c.maxTargetPositions) positions; weights \(quantization.map { "\($0) (other weights \(dtype))" } ?? "\(dtype)"); chunks of \(chunk); \(precision.summary)")
        print("tokens  prefill s  prefill tok/s  decode ms/token  peak RSS MiB  KV bytes/token")
        fflush(nil)
        _ = try LongContextBenchmark.run(configuration: c, lengths: lengths, chunk: chunk, decodeSteps: decodeSteps,
                                         dtype: dtype, quantization: quantization) { row in
            print(String(format: "%6d  %9.2f  %13.0f  %15.2f  %12.0f  %14d", row.tokens, row.prefillSeconds, row.prefillTokensPerSecond,
                         row.decodeMilliseconds, Double(row.peakResidentBytes) / 1_048_576, row.cacheBytesPerToken))
            fflush(nil)
        }
    }
}

/// `--weights float32|bfloat16|q8|q4` of the benchmarks: the weights' storage, quantized formats
/// included (random weights quantized in memory; everything not quantized is bfloat16).
struct BenchWeightOptions: ParsableArguments {
    @Option(help: "Weights: float32, bfloat16, q8 or q4 (random weights quantized in memory; the rest bfloat16). Overrides --dtype.")
    var weights: String?

    var quantization: QuantizationFormat? { weights.flatMap { QuantizationFormat(rawValue: $0.lowercased()) } }

    func validate() throws {
        if let weights, quantization == nil, DType(name: weights) == nil {
            throw ValidationError("--weights '\(weights)' is not float32, bfloat16, q8 or q4")
        }
    }

    /// The dtype of the weights that stay floats, and the quantized format if any.
    func resolve(_ precision: PrecisionOptions) throws -> (dtype: DType, quantization: QuantizationFormat?) {
        let dtype = try precision.apply(default: .float32)
        if let quantization { return (.bfloat16, quantization) }
        if let weights, let named = DType(name: weights) { return (named, nil) }
        return (dtype, nil)
    }
}
