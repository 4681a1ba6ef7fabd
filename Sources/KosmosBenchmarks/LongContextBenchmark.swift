import Foundation
import KosmosModels
import KosmosNN
import KosmosTensor

/// `kosmos bench long`: a prompt of each length prefilled in chunks into a fresh KV cache, then
/// decoding steps at that context, on a random decoder. Printed, never asserted.
public enum LongContextBenchmark {
    public struct Row: Sendable {
        public let tokens: Int
        public let prefillSeconds: Double
        public let decodeMilliseconds: Double
        /// The process's peak resident memory after this length (lengths run in increasing order).
        public let peakResidentBytes: Int
        public let cacheBytesPerToken: Int

        public var prefillTokensPerSecond: Double { Double(tokens) / prefillSeconds }
    }

    /// A decoder for long inputs that a 2-core machine prefills at 64k tokens in minutes:
    /// 4 layers × 256 (4 heads of 64), FFN 1024, vocab 32k, xPos, 65,536 positions.
    public static func longConfiguration() -> DecoderConfiguration {
        var c = ModelBenchmark.smallDecoderConfiguration()
        c.decoderLayers = 4
        c.decoderEmbedDim = 256
        c.decoderFfnEmbedDim = 1024
        c.decoderAttentionHeads = 4
        c.maxTargetPositions = 65_536
        return c
    }

    /// KV-cache bytes per position: keys and values of every layer, float32, key/value heads only.
    public static func cacheBytesPerToken(_ c: DecoderConfiguration) -> Int {
        c.decoderLayers * 2 * c.kvAttentionHeads * (c.decoderEmbedDim / c.decoderAttentionHeads) * MemoryLayout<Float>.size
    }

    /// Runs each length (ascending) once: the prefill in `chunk`-position chunks, then
    /// `decodeSteps` single-token steps (the median step reported). `progress` hears each row.
    public static func run(configuration c: DecoderConfiguration, lengths: [Int], chunk: Int, decodeSteps: Int,
                           dtype: DType, quantization: QuantizationFormat?, progress: (Row) -> Void) throws -> [Row] {
        let decoder = try withWeightDType(dtype) { try MagnetoDecoder(configuration: c, generator: RandomGenerator(seed: 0)) }
        try ModelBenchmark.quantize(decoder, quantization)
        decoder.eval()
        var rows: [Row] = []
        for length in lengths.sorted() {
            let generator = RandomGenerator(seed: UInt64(length))
            let prompt = (0..<length).map { _ in 3 + generator.nextInt(below: c.vocabSize - 3) }
            let cache = decoder.makeCache(reservation: length + decodeSteps)
            let start = DispatchTime.now().uptimeNanoseconds
            let prefill = try PromptPrefill(decoder: decoder, input: DecoderInput(tokens: prompt), cache: cache, chunkSize: chunk)
            var logits = try prefill.run()
            let prefillSeconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            var steps: [Double] = []
            for _ in 0..<decodeSteps {
                let next = TokenSampler.argmax(logits.scalars)
                let t0 = DispatchTime.now().uptimeNanoseconds
                logits = try withoutGrad { try decoder.next(next, cache: cache) }
                steps.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
            }
            let row = Row(tokens: length, prefillSeconds: prefillSeconds, decodeMilliseconds: steps.sorted()[steps.count / 2],
                          peakResidentBytes: ModelBenchmark.peakResidentBytes(), cacheBytesPerToken: cacheBytesPerToken(c))
            rows.append(row)
            progress(row)
        }
        return rows
    }
}
