import Foundation

/// transformers' WhisperFeatureExtractor settings (preprocessor_config.json field names; absent
/// fields take its defaults). `chunk_length` seconds of audio make one example: shorter clips are
/// padded with `padding_value`, longer ones truncated, as the extractor's default call does.
public struct AudioFeatureConfiguration: Codable, Equatable, Sendable {
    public var featureSize = 80
    public var samplingRate = 16_000
    public var hopLength = 160
    public var nFFT = 400
    public var chunkLength: Double = 30
    public var paddingValue: Float = 0
    /// Zero-mean, unit-variance normalisation of the clip's samples first (the extractor's
    /// `do_normalize` argument; off by default, as there).
    public var doNormalize = false

    public init() {}

    enum CodingKeys: String, CodingKey {
        case featureSize = "feature_size"
        case samplingRate = "sampling_rate"
        case hopLength = "hop_length"
        case nFFT = "n_fft"
        case chunkLength = "chunk_length"
        case nSamples = "n_samples"
        case paddingValue = "padding_value"
        case doNormalize = "do_normalize"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = AudioFeatureConfiguration()
        featureSize = try c.decodeIfPresent(Int.self, forKey: .featureSize) ?? d.featureSize
        samplingRate = try c.decodeIfPresent(Int.self, forKey: .samplingRate) ?? d.samplingRate
        hopLength = try c.decodeIfPresent(Int.self, forKey: .hopLength) ?? d.hopLength
        nFFT = try c.decodeIfPresent(Int.self, forKey: .nFFT) ?? d.nFFT
        chunkLength = try c.decodeIfPresent(Double.self, forKey: .chunkLength) ?? d.chunkLength
        // A saved n_samples wins over chunk_length (transformers writes both; a fractional
        // chunk_length saves an exact n_samples beside it).
        if let n = try c.decodeIfPresent(Double.self, forKey: .nSamples), n > 0 {
            chunkLength = n / Double(samplingRate)
        }
        paddingValue = try c.decodeIfPresent(Float.self, forKey: .paddingValue) ?? d.paddingValue
        doNormalize = try c.decodeIfPresent(Bool.self, forKey: .doNormalize) ?? d.doNormalize
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(featureSize, forKey: .featureSize)
        try c.encode(samplingRate, forKey: .samplingRate)
        try c.encode(hopLength, forKey: .hopLength)
        try c.encode(nFFT, forKey: .nFFT)
        try c.encode(chunkLength, forKey: .chunkLength)
        try c.encode(sampleCount, forKey: .nSamples)
        try c.encode(paddingValue, forKey: .paddingValue)
        try c.encode(doNormalize, forKey: .doNormalize)
    }

    /// Samples per example: chunk_length × sampling_rate.
    public var sampleCount: Int { Int((chunkLength * Double(samplingRate)).rounded()) }
    /// Feature frames per example (the last STFT frame is dropped, as Whisper does).
    public var frameCount: Int { sampleCount / hopLength }

    public func validate(source: String = "audio feature configuration") throws {
        func fail(_ why: String) -> AudioError { .invalidConfiguration(source: source, detail: why) }
        guard featureSize >= 1 && featureSize <= 512 else { throw fail("feature_size \(featureSize) (1...512)") }
        guard samplingRate >= 1000 && samplingRate <= 192_000 else { throw fail("sampling_rate \(samplingRate) Hz (1000...192000)") }
        guard nFFT >= 2 && nFFT % 2 == 0 && nFFT <= 8192 else { throw fail("n_fft \(nFFT) (an even number up to 8192)") }
        guard hopLength >= 1 && hopLength <= nFFT else { throw fail("hop_length \(hopLength) (1...n_fft)") }
        guard chunkLength.isFinite, sampleCount > nFFT / 2, frameCount >= 1 else {
            throw fail("chunk_length \(chunkLength) s gives \(sampleCount) samples, fewer than one frame")
        }
    }
}

/// One example's log-mel features: `values` [feature_size, frames] row-major, and the frames that
/// hold audio (1) rather than padding (0), as the extractor's attention mask.
public struct LogMelFeatures: Sendable {
    public var values: [Float]
    public var featureSize: Int
    public var frames: Int
    public var attentionMask: [Int]
    /// Seconds of the clip that the features cover (after truncation).
    public var duration: Double
    /// Whether the clip was longer than one example and cut.
    public var truncated: Bool
}

/// WhisperFeatureExtractor's log-mel spectrogram: a periodic Hann window of n_fft, centred frames
/// (reflect padding of n_fft/2), the power spectrum, Slaney-scale mel filters with Slaney
/// normalisation from 0 to 8 kHz (Whisper's fixed range, whatever the rate), a 1e-10 floor, log10, the last frame dropped, a
/// clamp at (maximum − 8) over the whole example, then (x + 4)/4. The spectrum and the filters are
/// computed in float64 and rounded once to float32 after the log.
public final class LogMelExtractor: @unchecked Sendable {
    public let configuration: AudioFeatureConfiguration
    /// [n_fft/2 + 1, feature_size] row-major, as transformers' `mel_filters`.
    public let melFilters: [Double]
    public let window: [Double]
    let fft: FFT
    /// Per filter, the frequency bins where its weight is not zero.
    let filterBins: [Range<Int>]
    /// Those weights, filter after filter.
    let filterWeights: [Double]

    public init(configuration: AudioFeatureConfiguration) throws {
        try configuration.validate()
        self.configuration = configuration
        let n = configuration.nFFT
        window = (0..<n).map { 0.5 - 0.5 * cos(2 * Double.pi * Double($0) / Double(n)) }
        fft = FFT(length: n)
        let filters = Self.slaneyMelFilters(bins: n / 2 + 1, filters: configuration.featureSize, maxFrequency: 8000,
                                            samplingRate: configuration.samplingRate)
        melFilters = filters
        let bins = n / 2 + 1, count = configuration.featureSize
        filterBins = (0..<count).map { m in
            let nonzero = (0..<bins).filter { filters[$0 * count + m] != 0 }
            guard let first = nonzero.first, let last = nonzero.last else { return 0..<0 }
            return first..<(last + 1)
        }
        filterWeights = filterBins.enumerated().flatMap { m, range in range.map { filters[$0 * count + m] } }
    }

    static func hertzToMel(_ f: Double) -> Double {
        let minLogHertz = 1000.0, minLogMel = 15.0, logstep = 27.0 / log(6.4)
        return f >= minLogHertz ? minLogMel + log(f / minLogHertz) * logstep : 3.0 * f / 200.0
    }

    static func melToHertz(_ m: Double) -> Double {
        let minLogHertz = 1000.0, minLogMel = 15.0, logstep = log(6.4) / 27.0
        return m >= minLogMel ? minLogHertz * exp(logstep * (m - minLogMel)) : 200.0 * m / 3.0
    }

    /// transformers' `mel_filter_bank(..., norm="slaney", mel_scale="slaney")` from 0 Hz.
    static func slaneyMelFilters(bins: Int, filters: Int, maxFrequency: Double, samplingRate: Int) -> [Double] {
        let nyquist = Double(samplingRate / 2)
        let fftFreqs = (0..<bins).map { bins == 1 ? 0 : nyquist * Double($0) / Double(bins - 1) }
        let melMin = hertzToMel(0), melMax = hertzToMel(maxFrequency)
        let filterFreqs = (0..<(filters + 2)).map { melToHertz(melMin + (melMax - melMin) * Double($0) / Double(filters + 1)) }
        var out = [Double](repeating: 0, count: bins * filters)
        for m in 0..<filters {
            let lower = filterFreqs[m], centre = filterFreqs[m + 1], upper = filterFreqs[m + 2]
            let enorm = 2.0 / (upper - lower)
            for k in 0..<bins {
                let down = -(lower - fftFreqs[k]) / (centre - lower)
                let up = (upper - fftFreqs[k]) / (upper - centre)
                out[k * filters + m] = max(0, min(down, up)) * enorm
            }
        }
        return out
    }

    /// Features of one mono clip at the configured rate (padded or truncated to one example).
    public func features(_ clip: [Float]) -> LogMelFeatures {
        let c = configuration
        let total = c.sampleCount, nfft = c.nFFT, half = nfft / 2, hop = c.hopLength
        let used = min(clip.count, total)
        var samples = [Float](repeating: c.paddingValue, count: total)
        samples.replaceSubrange(0..<used, with: clip[0..<used])
        if c.doNormalize && used > 0 {
            // (x − mean) / sqrt(var + 1e-7) over the clip's samples; the padding set back after.
            var mean = 0.0
            for i in 0..<used { mean += Double(samples[i]) }
            mean /= Double(used)
            var variance = 0.0
            for i in 0..<used { variance += (Double(samples[i]) - mean) * (Double(samples[i]) - mean) }
            let scale = 1 / (variance / Double(used) + 1e-7).squareRoot()
            for i in 0..<used { samples[i] = Float((Double(samples[i]) - mean) * scale) }
        }
        // Reflect padding (the edge sample not repeated), as np.pad / torch.stft(center=True).
        var padded = [Double](repeating: 0, count: total + 2 * half)
        for i in 0..<padded.count {
            var j = i - half
            if j < 0 { j = -j }
            if j >= total { j = 2 * (total - 1) - j }
            padded[i] = Double(samples[j])
        }
        let frames = c.frameCount, bins = half + 1, count = c.featureSize
        var logSpec = [Float](repeating: 0, count: count * frames)
        let workers = min(frames, ProcessInfo.processInfo.activeProcessorCount, 8)
        padded.withUnsafeBufferPointer { input in
            logSpec.withUnsafeMutableBufferPointer { output in
                let out = output.baseAddress!
                DispatchQueue.concurrentPerform(iterations: workers) { w in
                    let buffer = UnsafeMutablePointer<Double>.allocate(capacity: 2 * nfft + 2 * bins)
                    defer { buffer.deallocate() }
                    let frame = buffer, re = buffer + nfft, im = re + bins, power = im + bins
                    window.withUnsafeBufferPointer { window in
                        filterWeights.withUnsafeBufferPointer { weights in
                            for t in stride(from: w, to: frames, by: workers) {
                                let x = input.baseAddress! + t * hop
                                for j in 0..<nfft { frame[j] = x[j] * window[j] }
                                fft.forwardHalf(real: frame, re: re, im: im)
                                for k in 0..<bins { power[k] = re[k] * re[k] + im[k] * im[k] }
                                var offset = 0
                                for m in 0..<count {
                                    let range = filterBins[m]
                                    var sum = 0.0
                                    for (i, k) in range.enumerated() { sum += weights[offset + i] * power[k] }
                                    offset += range.count
                                    out[m * frames + t] = Float(log10(max(1e-10, sum)))
                                }
                            }
                        }
                    }
                }
            }
        }
        let ceiling = logSpec.max() ?? 0
        let floor = ceiling - 8
        for i in 0..<logSpec.count { logSpec[i] = (max(logSpec[i], floor) + 4) / 4 }
        let mask = (0..<frames).map { $0 * hop < used ? 1 : 0 }
        return LogMelFeatures(values: logSpec, featureSize: count, frames: frames, attentionMask: mask,
                              duration: Double(used) / Double(c.samplingRate), truncated: clip.count > total)
    }
}
