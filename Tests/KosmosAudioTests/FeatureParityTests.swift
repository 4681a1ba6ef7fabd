import Foundation
import XCTest
import KosmosFormats
@testable import KosmosAudio

/// Log-mel features against transformers' WhisperFeatureExtractor (scripts/reference/
/// audio_reference.py): clips of awkward lengths regenerated here from the integer formulas the
/// fixture's metadata states, so no audio is committed.
final class FeatureParityTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    struct ClipSpec: Decodable {
        struct Channel: Decodable { var kind: String; var seed: Int?; var shift: Int?; var period: Int?; var amplitude: Int? }
        var name: String
        var n_samples: Int
        var channels: Int
        var feature_size: Int
        var n_samples_max: Int
        var storage: String
        var channels_spec: [Channel]
    }

    /// The fixture's generators, integers only (its metadata "formula").
    static func samples(_ c: ClipSpec.Channel, count: Int) -> [Int] {
        func noise() -> [Int] {
            var x = c.seed!
            return (0..<count).map { _ in
                x = (1_103_515_245 * x + 12345) % (1 << 31)
                return ((x >> 15) - 32768) >> c.shift!
            }
        }
        func triangle() -> [Int] {
            let period = c.period!, a = c.amplitude!, half = period / 2
            return (0..<count).map { i in
                let p = i % period
                return p < half ? -a + (2 * a * p) / half : a - (2 * a * (p - half)) / half
            }
        }
        switch c.kind {
        case "noise": return noise()
        case "triangle": return triangle()
        case "square": return (0..<count).map { ($0 % c.period!) < c.period! / 2 ? c.amplitude! : -c.amplitude! }
        case "silence": return [Int](repeating: 0, count: count)
        case "mix": return zip(triangle(), noise()).map { $0 + $1 }
        default: fatalError("unknown clip kind \(c.kind)")
        }
    }

    static func waveform(_ spec: ClipSpec) -> [Float] {
        let channels = spec.channels_spec.map { samples($0, count: spec.n_samples).map { Float($0) / 32768 } }
        var interleaved: [Float] = []
        for i in 0..<spec.n_samples { for c in channels { interleaved.append(c[i]) } }
        return PCMAudio(samples: interleaved, channels: channels.count, sampleRate: 16000).mono()
    }

    func testLogMelEqualsWhisperFeatureExtractor() throws {
        let fixture = try SafeTensorsFile(url: Self.fixtures.appendingPathComponent("audio/whisper_features.safetensors"))
        let specs = try JSONDecoder().decode([ClipSpec].self, from: Data(fixture.metadata["clips"]!.utf8))
        XCTAssertGreaterThanOrEqual(specs.count, 12)
        var worst = 0.0
        for spec in specs {
            var config = AudioFeatureConfiguration()
            config.featureSize = spec.feature_size
            config.chunkLength = Double(spec.n_samples_max) / 16000
            config.doNormalize = spec.name == "clip_norm"
            let features = try LogMelExtractor(configuration: config).features(Self.waveform(spec))
            XCTAssertEqual(features.frames, spec.n_samples_max / 160, spec.name)
            XCTAssertEqual(features.attentionMask, try fixture.int64s("\(spec.name).attention_mask").map { Int($0) }, spec.name)
            XCTAssertEqual(features.truncated, spec.n_samples > spec.n_samples_max, spec.name)
            let frames: [Int], expected: [Float]
            if spec.storage == "full" {
                frames = Array(0..<features.frames)
                expected = try fixture.floats("\(spec.name).features")
            } else {
                frames = try fixture.int64s("\(spec.name).frame_indices").map { Int($0) }
                expected = try fixture.floats("\(spec.name).features_strided")
            }
            XCTAssertEqual(expected.count, frames.count * spec.feature_size, spec.name)
            for m in 0..<spec.feature_size {
                for (j, t) in frames.enumerated() {
                    let ours = features.values[m * features.frames + t], theirs = expected[m * frames.count + j]
                    worst = max(worst, Double(abs(ours - theirs)))
                    if abs(ours - theirs) > 1e-5 {
                        XCTFail("\(spec.name) bin \(m) frame \(t): \(ours) vs \(theirs)")
                        return
                    }
                }
            }
        }
        print("log-mel: largest difference from WhisperFeatureExtractor \(worst)")
        // The extractor's numpy path (float64 FFT, what runs without torch) is closer still.
        let clip1 = specs.first { $0.name == "clip1" }!
        let ours = try LogMelExtractor(configuration: AudioFeatureConfiguration()).features(Self.waveform(clip1))
        let frames = try fixture.int64s("clip1.frame_indices").map { Int($0) }
        let numpy = try fixture.floats("clip1.features_strided_np")
        var numpyWorst: Float = 0
        for m in 0..<80 { for (j, t) in frames.enumerated() { numpyWorst = max(numpyWorst, abs(ours.values[m * 3000 + t] - numpy[m * frames.count + j])) } }
        XCTAssertLessThan(numpyWorst, 2e-6)
        print("log-mel: largest difference from the numpy path \(numpyWorst)")
    }

    func testMelFiltersAndWindowEqualTransformers() throws {
        let fixture = try SafeTensorsFile(url: Self.fixtures.appendingPathComponent("audio/whisper_features.safetensors"))
        for size in [8, 80, 128] {
            var config = AudioFeatureConfiguration()
            config.featureSize = size
            let extractor = try LogMelExtractor(configuration: config)
            let expected = try fixture.floats("mel_filters_\(size)")
            XCTAssertEqual(expected.count, extractor.melFilters.count)
            for (a, b) in zip(extractor.melFilters, expected) {
                XCTAssertEqual(Float(a), b, accuracy: 1e-7 + 1e-6 * abs(b), "mel filters \(size)")
            }
        }
        let window = try LogMelExtractor(configuration: AudioFeatureConfiguration()).window
        // torch.hann_window computes in float32: within a few of its rounding steps of float64's.
        for (a, b) in zip(window, try fixture.floats("hann_window")) { XCTAssertEqual(Float(a), b, accuracy: 5e-7) }
    }

    func testFFTEqualsTheDefinition() {
        for n in [1, 2, 3, 5, 12, 400, 97, 194] {
            let fft = FFT(length: n)
            let x = (0..<n).map { Double(($0 * 37 + 11) % 23) - 11 }
            var re = [Double](repeating: 0, count: n), im = re
            x.withUnsafeBufferPointer { fft.forward(real: $0.baseAddress!, re: &re, im: &im) }
            for k in 0..<n {
                var sr = 0.0, si = 0.0
                for j in 0..<n {
                    let a = -2 * Double.pi * Double(j * k % n) / Double(n)
                    sr += x[j] * cos(a)
                    si += x[j] * sin(a)
                }
                XCTAssertEqual(re[k], sr, accuracy: 1e-9 * Double(n), "n \(n) bin \(k)")
                XCTAssertEqual(im[k], si, accuracy: 1e-9 * Double(n), "n \(n) bin \(k)")
            }
        }
    }

    func testBadConfigurationsAreNamed() {
        var config = AudioFeatureConfiguration()
        config.nFFT = 401
        XCTAssertThrowsError(try LogMelExtractor(configuration: config)) { XCTAssertTrue("\($0)".contains("n_fft 401"), "\($0)") }
        config = AudioFeatureConfiguration()
        config.chunkLength = 0.001
        XCTAssertThrowsError(try LogMelExtractor(configuration: config)) { XCTAssertTrue("\($0)".contains("chunk_length"), "\($0)") }
    }
}
