import Foundation
import XCTest
import KosmosModels
import KosmosTensor
import KosmosVision

/// The video commands of the `kosmos` executable against the library: `generate --video`,
/// `encode-video`, `chat` `/video`, on a tiny Kosmos-1 directory with video_config.
extension CLITests {
    static func videoDirectory() throws -> (model: URL, clip: URL) {
        let directory = root.appendingPathComponent("kosmos1-video")
        let clip = root.appendingPathComponent("motion.mp4")
        if FileManager.default.fileExists(atPath: directory.path) { return (directory, clip) }
        var c = try kosmos1Configuration()
        c.vocabSize = 904
        c.decoder.vocabSize = 904
        c.resampler.numMediaEmbeds = 3
        var video = VideoConfiguration()
        video.numFrames = 3
        video.maxFrames = 3
        video.videoTokenId = 902
        video.videoEndTokenId = 903
        c.video = video
        try KosmosModel(configuration: c, generator: RandomGenerator(seed: 11)).save(directory: directory)
        try FileManager.default.copyItem(at: kosmos1Tokenizer, to: directory.appendingPathComponent("tokenizer.model"))
        try VideoDecoder.encode(SyntheticMotion.clip(seed: 2, frames: 10, size: 24).frames, fps: 8, format: .mp4H264, to: clip)
        return (directory, clip)
    }

    func testGenerateAndEncodeVideoEqualTheLibrary() throws {
        let (directory, clip) = try Self.videoDirectory()
        let run = try succeed(["generate", "--model", directory.path, "--video", clip.path, "--image", Self.image.path,
                               "--prompt", "<image>and<video> is", "--max-tokens", "6", "--json"])
        let session = try ModelSession(directory: directory)
        let input = try session.input(text: "<image>and<video> is", imageFiles: [Self.image], videoFiles: [clip])
        XCTAssertEqual(input.tokens.filter { $0 == 0 }.count, 4 + 3 * 4)   // image slots + 3 frames × 4 latents
        var options = GenerationOptions()
        options.maxNewTokens = 6
        let expected = try session.model.generate(input, options: options)
        XCTAssertEqual(try jsonObject(run.stdout)["ids"] as? [Int], expected)

        let out = Self.root.appendingPathComponent("video.safetensors")
        let encoded = try succeed(["encode-video", "--model", directory.path, clip.path, "--out", out.path])
        XCTAssertTrue(encoded.stdout.contains("10 frames") && encoded.stdout.contains("[0, 4, 9]"), encoded.stdout)
        let file = try SafeTensorsFile(url: out)
        XCTAssertEqual(try file.int64s("frame_indices"), [0, 4, 9])
        let frames = try session.videos!.load(clip)
        XCTAssertEqual(try file.floats("pixel_values"), frames.pixels.scalars)
        let model = session.model as! KosmosModel
        XCTAssertEqual(try file.floats("video_embeds"), try model.videoEmbeddings(frames: frames.pixels, counts: [3]).scalars)
        XCTAssertEqual(file.entry("video_features")?.shape, [3, 5, 24])

        let fps = try succeed(["encode-video", "--model", directory.path, clip.path, "--video-fps", "4", "--out", out.path])
        XCTAssertTrue(fps.stdout.contains("[0, 4, 8]"), fps.stdout)   // 4 per second gives [0, 2, 4, 6, 8], thinned to max_frames 3

        let bad = try kosmos(["generate", "--model", Self.kosmos1.path, "--video", clip.path, "--prompt", "<video>x"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("no video_config"), bad.stderr)
        let chat = try succeed(["chat", "--model", directory.path, "--max-tokens", "3"], input: "/video \(clip.path)\nwhat moves\n/quit\n")
        XCTAssertTrue(chat.stdout.contains("/video PATH") && chat.stdout.contains("(video attached to your next message)"), chat.stdout)
        XCTAssertFalse(chat.stdout.contains("error:"), chat.stdout)
    }
}
