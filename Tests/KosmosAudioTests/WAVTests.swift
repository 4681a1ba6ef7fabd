import Foundation
import XCTest
@testable import KosmosAudio

/// The native WAV reader: every sample format it takes, the channel average, and bad headers.
final class WAVTests: XCTestCase {
    /// A WAV file of raw sample bytes, with a plain or an extensible fmt chunk.
    static func wav(format: Int, bits: Int, channels: Int, rate: Int, data: [UInt8], extensible: Bool = false,
                    declaredDataSize: Int? = nil) -> [UInt8] {
        var out: [UInt8] = []
        func put32(_ v: Int) { for s in stride(from: 0, to: 32, by: 8) { out.append(UInt8((v >> s) & 0xFF)) } }
        func put16(_ v: Int) { out.append(UInt8(v & 0xFF)); out.append(UInt8((v >> 8) & 0xFF)) }
        let fmtSize = extensible ? 40 : 16
        out += Array("RIFF".utf8); put32(4 + 8 + fmtSize + 8 + data.count); out += Array("WAVE".utf8)
        out += Array("LIST".utf8); put32(3); out += [1, 2, 3, 0]   // an odd-sized chunk to skip (padded)
        out += Array("fmt ".utf8); put32(fmtSize); put16(extensible ? 0xFFFE : format); put16(channels); put32(rate)
        put32(rate * channels * bits / 8); put16(channels * bits / 8); put16(bits)
        if extensible { put16(22); put16(bits); put32(0); put16(format); out += [UInt8](repeating: 0, count: 14) }
        out += Array("data".utf8); put32(declaredDataSize ?? data.count); out += data
        return out
    }

    func testEverySampleFormat() throws {
        // The same two frames of stereo in each format: left = half scale, right = −quarter scale.
        let cases: [(format: Int, bits: Int, bytes: [UInt8], expected: [Float])] = [
            (1, 8, [192, 96, 64, 160], [0.5, -0.25, -0.5, 0.25]),
            (1, 16, [0x00, 0x40, 0x00, 0xE0, 0x00, 0xC0, 0x00, 0x20], [0.5, -0.25, -0.5, 0.25]),
            (1, 24, [0, 0, 0x40, 0, 0, 0xE0, 0, 0, 0xC0, 0, 0, 0x20], [0.5, -0.25, -0.5, 0.25]),
            (1, 32, [0, 0, 0, 0x40, 0, 0, 0, 0xE0, 0, 0, 0, 0xC0, 0, 0, 0, 0x20], [0.5, -0.25, -0.5, 0.25]),
            (3, 32, [0.5, -0.25, -0.5, 0.25].flatMap { (f: Float) in withUnsafeBytes(of: f.bitPattern.littleEndian, Array.init) },
             [0.5, -0.25, -0.5, 0.25]),
            (3, 64, [0.5, -0.25, -0.5, 0.25].flatMap { (d: Double) in withUnsafeBytes(of: d.bitPattern.littleEndian, Array.init) },
             [0.5, -0.25, -0.5, 0.25]),
        ]
        for c in cases {
            for extensible in [false, true] {
                let pcm = try WAVReader.decode(Self.wav(format: c.format, bits: c.bits, channels: 2, rate: 8000, data: c.bytes,
                                                        extensible: extensible), source: "t.wav")
                XCTAssertEqual(pcm.samples, c.expected, "format \(c.format) \(c.bits)-bit extensible \(extensible)")
                XCTAssertEqual(pcm.channels, 2)
                XCTAssertEqual(pcm.sampleRate, 8000)
                XCTAssertEqual(pcm.mono(), [0.125, -0.125])
            }
        }
    }

    func testMonoIsTheMeanOfTheChannels() {
        let pcm = PCMAudio(samples: [0.3, 0.6, 0.9, -0.3, 0, 0.3], channels: 3, sampleRate: 16000)
        let mono = pcm.mono()
        XCTAssertEqual(mono[0], 0.6, accuracy: 1e-7)
        XCTAssertEqual(mono[1], 0, accuracy: 1e-7)
    }

    func testEncodeRoundTrip() throws {
        let pcm = PCMAudio(samples: [0, 0.5, -0.5, 1, -1, 0.25], channels: 2, sampleRate: 22050)
        let back = try WAVReader.decode(WAVReader.encode16(pcm), source: "round.wav")
        XCTAssertEqual(back.channels, 2)
        XCTAssertEqual(back.sampleRate, 22050)
        for (a, b) in zip(back.samples, pcm.samples) { XCTAssertEqual(a, b, accuracy: 1.0 / 32767) }
    }

    func testBadFilesAreNamedErrors() {
        let good = Self.wav(format: 1, bits: 16, channels: 1, rate: 16000, data: [0, 0, 1, 0])
        let cases: [([UInt8], String)] = [
            ([], "file is empty"),
            (Array("hello world, not audio".utf8), "not an audio file"),
            (Array(good.prefix(30)), "corrupt or truncated"),
            (Self.wav(format: 1, bits: 16, channels: 1, rate: 16000, data: [0, 0], declaredDataSize: 4000), "truncated"),
            (Self.wav(format: 1, bits: 16, channels: 0, rate: 16000, data: [0, 0]), "0 channels"),
            (Self.wav(format: 1, bits: 16, channels: 65, rate: 16000, data: [UInt8](repeating: 0, count: 130)), "65 channels"),
            (Self.wav(format: 1, bits: 16, channels: 1, rate: 0, data: [0, 0]), "sample rate 0 Hz"),
            (Self.wav(format: 1, bits: 16, channels: 1, rate: 5_000_000, data: [0, 0]), "sample rate 5000000 Hz"),
            (Self.wav(format: 2, bits: 4, channels: 1, rate: 16000, data: [0, 0]), "unsupported audio codec"),
            (Self.wav(format: 1, bits: 16, channels: 1, rate: 16000, data: []), "no audio samples"),
            (Self.wav(format: 3, bits: 32, channels: 1, rate: 16000, data: [0, 0, 0xC0, 0x7F]), "not a finite number"),
        ]
        for (bytes, message) in cases {
            XCTAssertThrowsError(try WAVReader.decode(bytes, source: "bad.wav")) { error in
                XCTAssertTrue("\(error)".contains(message) && "\(error)".contains("bad.wav"), "\(error) should name bad.wav and say \(message)")
            }
        }
        XCTAssertThrowsError(try WAVReader.decode(Self.wav(format: 1, bits: 16, channels: 1, rate: 100, data: [UInt8](repeating: 0, count: 400)),
                                                  source: "long.wav", maxDuration: 1)) {
            XCTAssertTrue("\($0)".contains("longer than the limit of 1 s"), "\($0)")
        }
    }

    /// Random damage to valid files of every format: an error or a clip, never a crash.
    func testSeededFuzzOfTheWAVReader() {
        var g = SyntheticSounds.Generator(state: 7)
        let seeds = [Self.wav(format: 1, bits: 16, channels: 2, rate: 16000, data: [UInt8](repeating: 7, count: 64)),
                     Self.wav(format: 3, bits: 32, channels: 1, rate: 44100, data: [UInt8](repeating: 0, count: 64), extensible: true),
                     Self.wav(format: 1, bits: 24, channels: 3, rate: 8000, data: [UInt8](repeating: 1, count: 63))]
        var decoded = 0, refused = 0
        for i in 0..<3000 {
            var bytes = seeds[i % seeds.count]
            for _ in 0..<(1 + g.below(4)) {
                switch g.below(3) {
                case 0: bytes[g.below(bytes.count)] = UInt8(g.below(256))
                case 1: bytes = Array(bytes.prefix(g.below(bytes.count + 1)))
                default: bytes.insert(UInt8(g.below(256)), at: g.below(bytes.count + 1))
                }
                if bytes.isEmpty { break }
            }
            do { _ = try WAVReader.decode(bytes, source: "fuzz"); decoded += 1 } catch { refused += 1 }
        }
        XCTAssertEqual(decoded + refused, 3000)
        XCTAssertGreaterThan(decoded, 100)
        XCTAssertGreaterThan(refused, 100)
    }
}
