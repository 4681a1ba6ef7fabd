import Foundation
import KosmosAudio
import KosmosModels
import KosmosNN
import KosmosTensor

/// Whole-model timings for `kosmos bench model` on random-initialised models (weights float32 or
/// bfloat16), in the shapes scripts/bench/pytorch_model.py measures PyTorch on. Printed, never asserted.
public enum ModelBenchmark {
    public struct Result: Sendable {
        public let name: String
        public let seconds: [Double]
        public let note: String
        public var best: Double { seconds.min() ?? 0 }
        public var median: Double { seconds.sorted()[seconds.count / 2] }
    }

    public static let cases = ["vit", "decoder", "train", "generate", "log-mel", "whisper"]
    /// Cases run only when named (minutes each): a released-size Kosmos-2.5 reading one page.
    public static let namedOnlyCases = ["kosmos25"]

    /// Peak resident memory of this process so far, in bytes.
    public static func peakResidentBytes() -> Int {
        var usage = rusage()
        #if os(Linux)
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Int(usage.ru_maxrss) * 1024  // kilobytes on Linux
        #else
        getrusage(RUSAGE_SELF, &usage)
        return Int(usage.ru_maxrss)  // bytes on macOS
        #endif
    }

    static func time(_ repeats: Int, _ body: () throws -> Void) rethrows -> [Double] {
        try body()  // warm-up
        var times: [Double] = []
        for _ in 0..<repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return times
    }

    /// ViT-L/14 encoding one 224×224 image.
    public static func visionTower(repeats: Int, dtype: DType = .float32, quantization: QuantizationFormat? = nil) throws -> Result {
        guard let preset = KosmosConfiguration.preset(named: "kosmos-1") else { throw ModelError.invalidInput("no kosmos-1 preset") }
        let tower = try withWeightDType(dtype) { try CLIPVisionTransformer(configuration: preset.vision, generator: RandomGenerator(seed: 0)) }
        try quantize(tower, quantization)
        tower.eval()
        let pixels = Tensor.randn([1, 3, 224, 224], generator: RandomGenerator(seed: 1))
        let times = try time(repeats) { _ = try withoutGrad { try tower(pixels) } }
        return Result(name: "ViT-L/14 encode, 1 image 224×224", seconds: times, note: "")
    }

    /// 30 s of integer noise at 16 kHz, the clip scripts/bench/pytorch_audio.py makes the same way.
    public static func audioClip(samples: Int = 480_000) -> [Float] {
        var x = 1
        return (0..<samples).map { _ in
            x = (1_103_515_245 * x + 12345) % (1 << 31)
            return Float((x >> 15) - 32768) / 32768
        }
    }

    /// WhisperFeatureExtractor's log-mel of one 30-second clip (80 bins).
    public static func logMel(repeats: Int) throws -> Result {
        let extractor = try LogMelExtractor(configuration: AudioFeatureConfiguration())
        let clip = audioClip()
        let times = time(repeats) { _ = extractor.features(clip) }
        return Result(name: "log-mel, one 30 s clip (80 bins)", seconds: times, note: "")
    }

    /// A whisper-base-shaped encoder (d_model 512, 6 layers, 8 heads, ffn 2048) on one clip's features.
    public static func whisperEncoder(repeats: Int, dtype: DType = .float32, quantization: QuantizationFormat? = nil) throws -> Result {
        var c = WhisperEncoderConfiguration()
        c.dModel = 512
        c.encoderLayers = 6
        c.encoderAttentionHeads = 8
        c.encoderFfnDim = 2048
        let encoder = try withWeightDType(dtype) { try WhisperEncoder(configuration: c, generator: RandomGenerator(seed: 0)) }
        try quantize(encoder, quantization)
        encoder.eval()
        let f = try LogMelExtractor(configuration: AudioFeatureConfiguration()).features(audioClip())
        let features = Tensor(shape: [1, f.featureSize, f.frames], scalars: f.values)
        let times = try time(repeats) { _ = try withoutGrad { try encoder(features) } }
        return Result(name: "Whisper-base encoder, one 30 s clip", seconds: times, note: "")
    }

    /// Bytes of a module's weights as held (each in its own dtype; quantized Linears' levels,
    /// scales and minimums).
    static func weightBytes(_ module: Module) -> Int { module.weightByteCount }

    /// Quantizes a freshly built model's Linears in memory (`--weights q8|q4`); nothing for nil.
    static func quantize(_ module: Module, _ format: QuantizationFormat?) throws {
        guard let format else { return }
        try TensorMemory.withoutBufferReuse { _ = try module.quantizeLinears(format) }
    }

    /// The machine's memory read bandwidth in bytes/s: the best of nine passes summing a 512 MiB
    /// buffer with every worker thread, each streaming its own contiguous part (as a decoding
    /// step's products do), with the C kernels' widest loads. The best pass, because other work on
    /// a shared machine only ever slows a pass down.
    public static func readBandwidth() -> Double {
        let count = 128 << 20
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: count)
        defer { buffer.deallocate() }
        buffer.initialize(repeating: 1, count: count)
        var best = Double.infinity
        var sink: Float = 0
        let lock = NSLock()
        for _ in 0..<9 {
            let start = DispatchTime.now().uptimeNanoseconds
            Parallel.forRanges(count / 1024, minimumPerChunk: 1) { range in
                let sum = Kernels.readSum(buffer + range.lowerBound * 1024, range.count * 1024)
                lock.lock()
                sink += sum
                lock.unlock()
            }
            best = Swift.min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        precondition(sink > 0)
        return Double(count * 4) / best
    }

    /// The kosmos-1 decoder (1.3B) forward over 128 tokens, logits included.
    public static func decoderForward(repeats: Int, dtype: DType = .float32, quantization: QuantizationFormat? = nil) throws -> Result {
        guard let preset = KosmosConfiguration.preset(named: "kosmos-1") else { throw ModelError.invalidInput("no kosmos-1 preset") }
        var c = preset.decoder
        c.dropout = 0
        let before = peakResidentBytes()
        let decoder = try withWeightDType(dtype) { try MagnetoDecoder(configuration: c, generator: RandomGenerator(seed: 0)) }
        try quantize(decoder, quantization)
        decoder.eval()
        let weightBytes = weightBytes(decoder)
        let generator = RandomGenerator(seed: 2)
        let tokens = (0..<128).map { _ in generator.nextInt(below: c.vocabSize) }
        let times = try time(repeats) { _ = try withoutGrad { try decoder(tokens: tokens, batch: 1, length: 128) } }
        let peak = peakResidentBytes()
        let note = String(format: "weights %.2f GB, peak RSS %.2f GB (%.2f GB before building)",
                          Double(weightBytes) / 1e9, Double(peak) / 1e9, Double(before) / 1e9)
        return Result(name: "1.3B decoder forward, 128 tokens", seconds: times, note: note)
    }

    /// One training step (forward, backward, AdamW) of a 4-layer d=256 decoder, vocab 32,002, 8 × 128
    /// tokens; bfloat16 is mixed precision (float32 weights and AdamW states, bfloat16 products),
    /// as `train.dtype: bfloat16` runs it.
    public static func trainingStep(repeats: Int, dtype: DType = .float32) throws -> Result {
        guard dtype != .float16 else {
            throw ModelError.invalidInput("the training step runs in float32 or bfloat16 (mixed precision); float16 training is not supported")
        }
        var c = DecoderConfiguration()
        c.decoderLayers = 4
        c.decoderEmbedDim = 256
        c.decoderFfnEmbedDim = 1024
        c.decoderAttentionHeads = 4
        c.vocabSize = 32002
        c.xposRelPos = true
        let decoder = try MagnetoDecoder(configuration: c, generator: RandomGenerator(seed: 0))
        let optimizer = AdamW(parameters: decoder.parameters(), learningRate: 1e-4)
        let generator = RandomGenerator(seed: 3)
        let tokens = (0..<(8 * 128)).map { _ in generator.nextInt(below: c.vocabSize) }
        var targets: [Int] = []
        for b in 0..<8 { for t in 0..<128 { targets.append(t + 1 < 128 ? tokens[b * 128 + t + 1] : -100) } }
        var phases = [Double](repeating: .infinity, count: 4)
        func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
        let times = try time(repeats) {
            optimizer.zeroGrad()
            let t0 = now()
            let logits = try withComputeDType(dtype) { try decoder(tokens: tokens, batch: 8, length: 128) }
            let t1 = now()
            let loss = logits.reshaped([-1, c.vocabSize]).crossEntropy(targets: targets)
            let t2 = now()
            loss.backward()
            let t3 = now()
            optimizer.step()
            let t4 = now()
            for (i, d) in [t1 - t0, t2 - t1, t3 - t2, t4 - t3].enumerated() { phases[i] = Swift.min(phases[i], d) }
        }
        let note = String(format: "(fastest phases: forward %.3f, loss %.3f, backward %.3f, AdamW %.3f s)",
                          phases[0], phases[1], phases[2], phases[3])
        return Result(name: "train step, 4 layers d=256, vocab 32k, 8×128", seconds: times, note: note)
    }

    /// KV-cached greedy decoding with the kosmos-1 decoder (1.3B): a 64-token prompt, then 64 new
    /// tokens; the note gives tokens/s and the fraction of the memory-bandwidth bound (every step
    /// reads all weights once) at `bandwidth` bytes/s (nil: `readBandwidth` measured before and
    /// after each repeat).
    public static func generation(repeats: Int, dtype: DType = .float32, quantization: QuantizationFormat? = nil,
                                  bandwidth: Double? = nil) throws -> Result {
        guard let preset = KosmosConfiguration.preset(named: "kosmos-1") else { throw ModelError.invalidInput("no kosmos-1 preset") }
        var c = preset.decoder
        c.dropout = 0
        let decoder = try withWeightDType(dtype) { try MagnetoDecoder(configuration: c, generator: RandomGenerator(seed: 0)) }
        try quantize(decoder, quantization)
        decoder.eval()
        let weightBytes = Double(weightBytes(decoder))
        let generator = RandomGenerator(seed: 4)
        let prompt = (0..<64).map { _ in generator.nextInt(below: c.vocabSize) }
        var options = GenerationOptions()
        options.maxNewTokens = 64
        options.stopAtEOS = false
        func decodeOnce() throws -> (total: Double, decode: Double) {
            let cache = decoder.makeCache()
            let start = Double(DispatchTime.now().uptimeNanoseconds) / 1e9
            var stepStart = 0.0
            _ = try runGeneration(prompt: prompt, eos: nil, options: options, onToken: { _ in
                if stepStart == 0 { stepStart = Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
                return true
            }, makeCache: { cache }, prefill: { cache in try decoder(tokens: prompt, batch: 1, length: 64, cache: cache) },
               step: { next, cache in try decoder(tokens: [next], batch: 1, length: 1, cache: cache) })
            let end = Double(DispatchTime.now().uptimeNanoseconds) / 1e9
            return (end - start, end - stepStart)
        }
        _ = try decodeOnce()  // warm-up
        let peak = peakResidentBytes()  // before the bandwidth buffer exists
        // The read bandwidth moves with other work on a shared machine (39–68 GB/s within an hour
        // here), so it is measured before and after every repeat, and each repeat is set against
        // the better of its two neighbours: the fraction printed is the median of those pairs.
        var bandwidths: [Double] = [bandwidth ?? readBandwidth()]
        var times: [Double] = [], decodeSeconds: [Double] = [], fractions: [Double] = []
        for i in 0..<repeats {
            let run = try decodeOnce()
            times.append(run.total)
            decodeSeconds.append(run.decode)
            bandwidths.append(bandwidth ?? readBandwidth())
            let near = Swift.max(bandwidths[i], bandwidths[i + 1])
            fractions.append((63 / run.decode) / (near / weightBytes))  // 63 cached steps follow the prefill's token
        }
        let tokensPerSecond = 63 / (decodeSeconds.min() ?? .infinity)
        let fraction = fractions.sorted()[fractions.count / 2]
        let note = String(format: "decode %.2f tokens/s (%.0f%% of the bandwidth bound, the median of the repeats each against the read bandwidth measured beside it, %.0f–%.0f%%; %.2f GB read per token; %.1f–%.1f GB/s measured)",
                          tokensPerSecond, 100 * fraction, 100 * (fractions.min() ?? 0), 100 * (fractions.max() ?? 0),
                          weightBytes / 1e9, (bandwidths.min() ?? 0) / 1e9, (bandwidths.max() ?? 0) / 1e9)
        return Result(name: "1.3B decoder, 64-token prompt + 64 new (greedy)", seconds: times,
                      note: note + String(format: ", peak RSS %.2f GB", Double(peak) / 1e9))
    }

    /// A random Kosmos-2.5 of the released size (vision 18 × 1536 over 4,096 patches, text 24 ×
    /// 1536, vocabulary 108,481, 2,048 image tokens) reading one page: the vision encode (encoder,
    /// normalisation, projection), then the `<ocr>` prompt (2,052 positions) prefilled and 32 new
    /// tokens decoded greedily with the cache. Two results: the encode, and the generation with
    /// decode tokens/s (steps after the prompt) and peak RSS in its note.
    public static func kosmos25Page(repeats: Int, dtype: DType = .float32, quantization: QuantizationFormat? = nil) throws -> [Result] {
        let before = peakResidentBytes()
        let model = try withWeightDType(dtype) { try Kosmos25Model(configuration: Kosmos25Configuration(), generator: RandomGenerator(seed: 0)) }
        try quantize(model, quantization)
        model.eval()
        let c = model.configuration
        let side = 64, depth = 2 + c.vision.patchEmbedHiddenSize
        let noise = Tensor.randn([side * side, depth], generator: RandomGenerator(seed: 5)).scalars
        var values = [Float](repeating: 0, count: side * side * depth)
        for p in 0..<(side * side) {
            values[p * depth] = Float(p / side + 1)
            values[p * depth + 1] = Float(p % side + 1)
            for k in 2..<depth { values[p * depth + k] = noise[p * depth + k] }
        }
        let patches = Tensor(shape: [side * side, depth], scalars: values)
        let encode = try time(repeats) { _ = try withoutGrad { try model.imageEmbeddings(patches.unsqueezed(0)) } }
        // <s> <image> 2,048 × <s> </image> <ocr>, with the released tokenizer's ids.
        let tokens = [0, 100283] + [Int](repeating: 0, count: c.latentQueryNum) + [100284, 100282]
        let input = ModelInput(tokens: tokens, media: [.image(patches)], mediaPositions: Array(2..<(2 + c.latentQueryNum)))
        var options = GenerationOptions()
        options.maxNewTokens = 32
        options.stopAtEOS = false
        var rates: [Double] = []
        let generate = try time(repeats) {
            var first = 0.0, last = 0.0, count = 0
            _ = try model.generate(input, options: options) { _ in
                let now = Double(DispatchTime.now().uptimeNanoseconds) / 1e9
                if count == 0 { first = now }
                last = now
                count += 1
                return true
            }
            rates.append(Double(count - 1) / (last - first))
        }
        let peak = peakResidentBytes()
        let note = String(format: "decode %.2f tokens/s (best; steps after the prompt only), weights %.2f GB, peak RSS %.2f GB (%.2f GB before building)",
                          rates.max() ?? 0, Double(weightBytes(model)) / 1e9, Double(peak) / 1e9, Double(before) / 1e9)
        return [Result(name: "Kosmos-2.5 vision encode, 4,096 patches", seconds: encode, note: ""),
                Result(name: "Kosmos-2.5 page: 2,052-token prompt + 32 new", seconds: generate, note: note)]
    }

    /// A small decoder for batched-decoding measurements: 12 layers × 768, ffn 3072, 12 heads,
    /// xPos and sub-LN, vocabulary 32,002 (about 135M parameters with the output projection).
    public static func smallDecoderConfiguration() -> DecoderConfiguration {
        var c = DecoderConfiguration()
        c.decoderLayers = 12
        c.decoderEmbedDim = 768
        c.decoderFfnEmbedDim = 3072
        c.decoderAttentionHeads = 12
        c.vocabSize = 32002
        c.xposRelPos = true
        c.subln = true
        c.paddingIdx = 0
        c.maxTargetPositions = 2048
        c.dropout = 0
        return c
    }

    /// Milliseconds per single-sequence decoding step after `past` cached tokens: the cache is
    /// filled by a prefill of `past` random tokens, then `steps` steps are timed (each grows the
    /// past by one). Shows how a step's time grows with the past (attention only, with nothing of
    /// the past copied or re-rotated).
    public static func decodeAfterPast(_ past: Int, configuration c: DecoderConfiguration, steps: Int = 16, dtype: DType = .float32, quantization: QuantizationFormat? = nil,
                                       repeats: Int) throws -> Result {
        let decoder = try withWeightDType(dtype) { try MagnetoDecoder(configuration: c, generator: RandomGenerator(seed: 0)) }
        try quantize(decoder, quantization)
        decoder.eval()
        let generator = RandomGenerator(seed: 6)
        let prompt = (0..<past).map { _ in generator.nextInt(below: c.vocabSize) }
        let tokens = (0..<steps).map { _ in generator.nextInt(below: c.vocabSize) }
        var stepSeconds: [Double] = []
        _ = try time(repeats) {
            try withoutGrad {
                let cache = decoder.makeCache()
                // Prefilled in chunks of 256 so the prefill's own attention stays small.
                var done = 0
                while done < past {
                    let n = Swift.min(256, past - done)
                    _ = try decoder(tokens: Array(prompt[done..<(done + n)]), batch: 1, length: n, cache: cache)
                    done += n
                }
                let start = DispatchTime.now().uptimeNanoseconds
                for token in tokens { _ = try decoder(tokens: [token], batch: 1, length: 1, cache: cache) }
                stepSeconds.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 / Double(steps))
            }
        }
        let timed = Array(stepSeconds.dropFirst())
        let note = String(format: "past %d: %.2f ms per step (median %.2f, %d steps)", past, 1000 * (timed.min() ?? 0),
                          1000 * timed.sorted()[timed.count / 2], steps)
        return Result(name: "decode step after \(past) tokens", seconds: timed, note: note)
    }

    /// Decode tokens/s of `MagnetoDecoder.step` over `batch` sequences at once: each sequence is
    /// prefilled alone (prompts of 48 + 4·i tokens, so the caches differ in length), then `steps`
    /// batched steps are timed. tokens/s counts every sequence's token: batch × steps / seconds.
    public static func batchedDecoding(batch: Int, configuration c: DecoderConfiguration, steps: Int = 32, dtype: DType = .float32, quantization: QuantizationFormat? = nil,
                                       repeats: Int) throws -> Result {
        let decoder = try withWeightDType(dtype) { try MagnetoDecoder(configuration: c, generator: RandomGenerator(seed: 0)) }
        try quantize(decoder, quantization)
        decoder.eval()
        let generator = RandomGenerator(seed: 5)
        let prompts = (0..<batch).map { i in (0..<(48 + 4 * (i % 8))).map { _ in generator.nextInt(below: c.vocabSize) } }
        let tokens = (0..<batch).map { _ in generator.nextInt(below: c.vocabSize) }
        var stepSeconds: [Double] = []
        _ = try time(repeats) {
            try withoutGrad {
                let caches = prompts.map { _ in decoder.makeCache() }
                for (prompt, cache) in zip(prompts, caches) {
                    _ = try decoder(tokens: prompt, batch: 1, length: prompt.count, cache: cache)
                }
                let start = DispatchTime.now().uptimeNanoseconds
                for _ in 0..<steps { _ = try decoder.step(tokens: tokens, caches: caches) }
                stepSeconds.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            }
        }
        // The first run is the warm-up; `seconds` are the timed steps of each later run.
        let timed = Array(stepSeconds.dropFirst())
        let best = timed.min() ?? 0
        let note = String(format: "batch %d: %.1f tokens/s (%.1f ms per step, %d steps)",
                          batch, Double(batch * steps) / best, 1000 * best / Double(steps), steps)
        return Result(name: "batched decode step, batch \(batch)", seconds: timed, note: note)
    }
}
