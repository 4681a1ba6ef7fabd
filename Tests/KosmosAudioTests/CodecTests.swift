import Foundation
import XCTest
@testable import KosmosAudio
import CAudioCodecsSupport

/// The FFmpeg decoders and libswresample through CAudioCodecsSupport, against the ffmpeg CLI's
/// own decodes with the same resampler settings (scripts/reference/audio_codec_fixtures.sh).
final class CodecTests: XCTestCase {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/audio")

    static func raw(_ name: String) throws -> [Float] {
        let data = try Data(contentsOf: folder.appendingPathComponent(name))
        return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    func testEveryCodecDecodesAsTheFFmpegCLIDoes() throws {
        XCTAssertTrue(AudioDecoder.hasCodecs, AudioDecoder.codecsVersion)
        let decoder = AudioDecoder(sampleRate: 16000)
        for name in ["tone.flac", "tone.mp3", "tone.ogg", "tone.m4a"] {
            let bytes = [UInt8](try Data(contentsOf: Self.folder.appendingPathComponent(name)))
            var out = ka_audio()
            let status = bytes.withUnsafeBufferPointer { ka_decode_memory($0.baseAddress, $0.count, 16000, 0, &out) }
            defer { ka_free(&out) }
            XCTAssertEqual(status, Int32(KA_OK), name)
            let expected = try Self.raw(name + ".16k.f32")
            let ours = Array(UnsafeBufferPointer(start: out.samples, count: Int(out.frames) * Int(out.channels)))
            XCTAssertEqual(ours.count, expected.count, name)
            let worst = zip(ours, expected).map { abs($0 - $1) }.max() ?? 1
            XCTAssertLessThanOrEqual(worst, 1e-6, name)
            // The clip as the models read it: the channel mean at 16 kHz, 0.5 s long.
            let clip = try decoder.decode(contentsOf: Self.folder.appendingPathComponent(name))
            XCTAssertEqual(clip.sourceChannels, 2, name)
            XCTAssertEqual(clip.samples.count, expected.count / 2, name)
            XCTAssertEqual(clip.samples[1000], (expected[2000] + expected[2001]) / 2, accuracy: 1e-7, name)
        }
    }

    func testWAVReadNativelyEqualsFLACThroughFFmpeg() throws {
        // tone.flac is tone_s16.wav losslessly: the native WAV path (then libswresample) and the
        // FFmpeg path give the same clip, at the source rate and resampled.
        for rate in [44100, 16000] {
            let decoder = AudioDecoder(sampleRate: rate)
            let wav = try decoder.decode(contentsOf: Self.folder.appendingPathComponent("tone_s16.wav"))
            let flac = try decoder.decode(contentsOf: Self.folder.appendingPathComponent("tone.flac"))
            XCTAssertEqual(wav.codec, "pcm")
            XCTAssertEqual(flac.codec, "flac")
            XCTAssertEqual(wav.sourceRate, 44100)
            XCTAssertEqual(wav.samples.count, rate == 44100 ? 22050 : 8000)
            XCTAssertEqual(wav.samples, flac.samples, "rate \(rate)")
        }
    }

    func testBadFilesAreNamedErrors() throws {
        let decoder = AudioDecoder(sampleRate: 16000)
        let cases: [(String, String)] = [
            ("empty.wav", "file is empty"),
            ("notaudio.wav", "not an audio file"),
            ("corrupt.flac", "corrupt"),
            ("missing.mp3", "no such file"),
        ]
        for (name, message) in cases {
            XCTAssertThrowsError(try decoder.decode(contentsOf: Self.folder.appendingPathComponent(name))) { error in
                XCTAssertTrue("\(error)".contains(message) && "\(error)".contains(name), "\(error) should name \(name) and say \(message)")
            }
        }
        // A file cut short decodes to what it holds (FFmpeg tolerates a torn last packet).
        let cut = try decoder.decode(contentsOf: Self.folder.appendingPathComponent("truncated.mp3"))
        XCTAssertGreaterThan(cut.samples.count, 1000)
        XCTAssertLessThan(cut.samples.count, 8000)
        let short = AudioDecoder(sampleRate: 16000, maxDuration: 0.25)
        for name in ["tone.mp3", "tone_s16.wav"] {
            XCTAssertThrowsError(try short.decode(contentsOf: Self.folder.appendingPathComponent(name))) {
                XCTAssertTrue("\($0)".contains("longer than the limit of 0.25 s"), "\($0)")
            }
        }
    }

    /// An M4A whose sample entry and object type no decoder knows: a named unsupported-codec error.
    func testUnknownCodecIsUnsupported() throws {
        var bytes = [UInt8](try Data(contentsOf: Self.folder.appendingPathComponent("tone.m4a")))
        let esds = Array("esds".utf8), descriptor: [UInt8] = [0x04, 0x80, 0x80, 0x80, 0x17]
        let at = (0..<(bytes.count - 4)).first { Array(bytes[$0..<($0 + 4)]) == esds }!
        let object = (at..<(bytes.count - 5)).first { Array(bytes[$0..<($0 + 5)]) == descriptor }! + 5
        XCTAssertEqual(bytes[object], 0x40)   // AAC
        bytes[object] = 0xFE
        for i in 0..<(bytes.count - 3) where Array(bytes[i..<(i + 4)]) == Array("mp4a".utf8) {
            bytes.replaceSubrange(i..<(i + 4), with: Array("zzzz".utf8))
        }
        XCTAssertThrowsError(try AudioDecoder().decode(bytes, source: "zzzz.m4a")) {
            XCTAssertTrue("\($0)".contains("zzzz.m4a: unsupported audio codec"), "\($0)")
        }
    }

    /// Random damage to real files of every codec, through the decoder as datasets and the server
    /// use it: an error or a clip, never a crash.
    func testSeededFuzzOfTheDecoders() throws {
        let decoder = AudioDecoder(sampleRate: 16000, maxDuration: 5)
        var g = SyntheticSounds.Generator(state: 11)
        var decoded = 0, refused = 0
        for name in ["tone.flac", "tone.mp3", "tone.ogg", "tone.m4a", "tone_s16.wav"] {
            let original = [UInt8](try Data(contentsOf: Self.folder.appendingPathComponent(name)))
            for _ in 0..<60 {
                var bytes = original
                for _ in 0..<(1 + g.below(8)) {
                    switch g.below(4) {
                    case 0, 1: bytes[g.below(bytes.count)] = UInt8(g.below(256))
                    case 2: bytes = Array(bytes.prefix(g.below(bytes.count + 1)))
                    default: bytes.insert(contentsOf: (0..<g.below(16)).map { _ in UInt8(g.below(256)) }, at: g.below(bytes.count + 1))
                    }
                    if bytes.isEmpty { break }
                }
                do { _ = try decoder.decode(bytes, source: "fuzz-\(name)"); decoded += 1 } catch { refused += 1 }
            }
        }
        XCTAssertEqual(decoded + refused, 300)
        XCTAssertGreaterThan(decoded, 10)
        XCTAssertGreaterThan(refused, 10)
    }
}
