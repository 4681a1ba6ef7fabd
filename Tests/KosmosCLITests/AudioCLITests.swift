import Foundation
import XCTest
import KosmosAudio
import KosmosModels
import KosmosTensor

/// The audio commands of the `kosmos` executable against the library calls they stand for:
/// `encode-audio` on a transformers Whisper directory, `generate --audio` and `chat` `/audio` on a
/// tiny Kosmos-1 directory with audio_config.
extension CLITests {
    static let tone = fixtures.appendingPathComponent("audio/tone.mp3")

    /// The CLI tests' Kosmos-1 configuration with the audio path of kosmos_audio_tiny_config.json
    /// (markers after the tokenizer's pieces and the image markers).
    static func audioDirectory() throws -> URL {
        let directory = root.appendingPathComponent("kosmos1-audio")
        if FileManager.default.fileExists(atPath: directory.path) { return directory }
        let url = fixtures.appendingPathComponent("kosmos_audio_tiny_config.json")
        let audio = try ModelDirectory.decode(KosmosConfiguration.self, from: Data(contentsOf: url), file: url).audio!
        var c = try kosmos1Configuration()
        c.vocabSize = 904
        c.decoder.vocabSize = 904
        c.audio = audio
        c.audio!.audioTokenId = 902
        c.audio!.audioEndTokenId = 903
        let model = try KosmosModel(configuration: c, generator: RandomGenerator(seed: 9))
        try model.save(directory: directory)
        try FileManager.default.copyItem(at: kosmos1Tokenizer, to: directory.appendingPathComponent("tokenizer.model"))
        return directory
    }

    func testEncodeAudioEqualsTheLibrary() throws {
        let whisper = Self.fixtures.appendingPathComponent("whisper_tiny")
        let out = Self.root.appendingPathComponent("tone-features.safetensors")
        let run = try succeed(["encode-audio", "--model", whisper.path, Self.tone.path, "--out", out.path])
        XCTAssertTrue(run.stdout.contains("0.50 s, 44100 Hz, 2 channel(s) (truncated to the first 0.32 s)"), run.stdout)
        let file = try SafeTensorsFile(url: out)
        let (encoder, configuration) = try ModelRegistry.loadAudioEncoder(whisper)
        let input = try AudioInput(configuration: configuration)
        let features = try input.load(Self.tone)
        XCTAssertEqual(try file.floats("input_features"), features.scalars)
        XCTAssertEqual(file.entry("input_features")?.shape, [1, 8, 32])
        let hidden = try encoder(features.unsqueezed(0))
        XCTAssertEqual(try file.floats("audio_features"), hidden.scalars)
        XCTAssertEqual(try file.int64s("attention_mask"), [Int64](repeating: 1, count: 32))

        let refused = try kosmos(["encode-audio", "--model", whisper.path, Self.fixtures.appendingPathComponent("audio/corrupt.flac").path,
                                  "--out", out.path])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("corrupt.flac") && refused.stderr.contains("corrupt"), refused.stderr)
        let imageOnly = try kosmos(["encode-audio", "--model", Self.kosmos1.path, Self.tone.path, "--out", out.path])
        XCTAssertNotEqual(imageOnly.status, 0)
        XCTAssertTrue(imageOnly.stderr.contains("no audio_config"), imageOnly.stderr)
    }

    /// `init --audio-encoder`: a Kosmos-1 directory whose audio_model holds the Whisper weights.
    func testInitWithAWhisperEncoder() throws {
        let whisper = Self.fixtures.appendingPathComponent("whisper_tiny")
        let out = Self.root.appendingPathComponent("init-audio")
        let run = try succeed(["init", "--preset", "kosmos-tiny", "--audio-encoder", whisper.path, "--audio-tokens", "4",
                               "--audio-connector", "pool", "--out", out.path])
        XCTAssertTrue(run.stdout.contains("audio encoder:"), run.stdout)
        let model = try KosmosModel.load(directory: out)
        let audio = try XCTUnwrap(model.configuration.audio)
        XCTAssertEqual(audio.connector, .pool)
        XCTAssertEqual(audio.poolStride, 4)
        XCTAssertEqual(audio.featureExtractor.sampleCount, 5120)
        XCTAssertEqual(audio.audioTokenId, model.configuration.vocabSize - 2)
        let reference = try WhisperEncoder.load(directory: whisper)
        let ours = Dictionary(uniqueKeysWithValues: model.audioTower!.encoder.stateDict().map { ($0.name, $0.tensor.scalars) })
        for (name, tensor) in reference.stateDict() { XCTAssertEqual(ours[name], tensor.scalars, name) }
        let info = try succeed(["info", "--model", out.path])
        XCTAssertTrue(info.stdout.contains("audio: Whisper encoder 2 layers × 24"), info.stdout)
        let features = try succeed(["encode-audio", "--model", out.path, Self.tone.path, "--out", out.appendingPathComponent("f.safetensors").path])
        XCTAssertTrue(features.stdout.contains("audio_features [1, 16, 24]"), features.stdout)
    }

    func testGenerateWithAudioEqualsTheLibrary() throws {
        let directory = try Self.audioDirectory()
        let wav = Self.fixtures.appendingPathComponent("audio/tone_s16.wav")
        let run = try succeed(["generate", "--model", directory.path, "--image", Self.image.path, "--audio", Self.tone.path,
                               "--audio", wav.path, "--prompt", "<audio>sounds and <image> then <audio> is", "--max-tokens", "6", "--json"])
        let session = try ModelSession(directory: directory)
        let input = try session.input(text: "<audio>sounds and <image> then <audio> is", imageFiles: [Self.image], audioFiles: [Self.tone, wav])
        XCTAssertEqual(input.tokens.filter { $0 == 902 }.count, 2)
        var options = GenerationOptions()
        options.maxNewTokens = 6
        let expected = try session.model.generate(input, options: options)
        XCTAssertEqual(try jsonObject(run.stdout)["ids"] as? [Int], expected)
        XCTAssertFalse(expected.isEmpty)

        let missing = try kosmos(["generate", "--model", directory.path, "--audio", Self.tone.path, "--prompt", "no marker"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("1 --audio file(s) for 0 <audio> marker(s)"), missing.stderr)
        let imageOnly = try kosmos(["generate", "--model", Self.kosmos1.path, "--audio", Self.tone.path, "--prompt", "<audio>x"])
        XCTAssertNotEqual(imageOnly.status, 0)
        XCTAssertTrue(imageOnly.stderr.contains("no audio_config"), imageOnly.stderr)

        let chat = try succeed(["chat", "--model", directory.path, "--max-tokens", "3"],
                               input: "/audio \(Self.tone.path)\nwhat is it\n/quit\n")
        XCTAssertTrue(chat.stdout.contains("/audio PATH") && chat.stdout.contains("(audio attached to your next message)"), chat.stdout)
        XCTAssertFalse(chat.stdout.contains("error:"), chat.stdout)
    }
}
