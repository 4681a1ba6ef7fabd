import Foundation
import XCTest
import KosmosNN
import KosmosTensor
@testable import KosmosModels

/// Kosmos-1 with video against a PyTorch assembly (scripts/reference/video_reference.py): a video's
/// frames through the CLIP tower and the same flamingo-pytorch resampler as images, now over T
/// frames with its time embeddings (media_pos_emb), the frames' latents in order into the slots
/// between <video> and </video>. Sequence 0 has an image and a 3-frame video, sequence 1 a 2-frame one.
final class KosmosVideoParityTests: XCTestCase {
    static func configuration() throws -> KosmosConfiguration { try fixtureConfiguration("kosmos_video_tiny_config.json") }

    static func loadBatch(_ model: KosmosModel, _ fixture: SafeTensorsFile) throws -> KosmosBatch {
        let tokens = try fixture.int64s("tokens").map { Int($0) }
        let lengths = try fixture.int64s("lengths").map { Int($0) }
        let width = tokens.count / 2
        return try model.makeBatch([
            KosmosSequence(tokens: Array(tokens[0..<lengths[0]]), images: [try fixture.tensor("pixels").squeezed(0)],
                           videos: [try fixture.tensor("video0")]),
            KosmosSequence(tokens: Array(tokens[width..<(width + lengths[1])]), videos: [try fixture.tensor("video1")]),
        ])
    }

    func testTextImageAndVideoMatchPyTorch() throws {
        let fixture = try modelFixture("kosmos_video_tiny.safetensors")
        let model = try KosmosModel(configuration: try Self.configuration(), generator: RandomGenerator(seed: 0))
        XCTAssertEqual(model.mediaKinds, [.image, .video])
        try model.load(from: fixture, prefix: "model.", sourceName: "kosmos_video_tiny")
        model.eval()
        let batch = try Self.loadBatch(model, fixture)
        XCTAssertEqual(batch.videoFrameCounts, [3, 2])
        XCTAssertEqual(batch.videoSlotPositions.count, 20)
        assertAllClose(try model.videoEmbeddings(frames: try fixture.tensor("video0"), counts: [3]).scalars,
                       try fixture.floats("video0_embeds"), rtol: 1e-5, atol: 1e-5, "video0 embeddings")
        let logits = try model.logits(batch)
        assertAllClose(logits.scalars, try fixture.floats("logits"), rtol: 1e-5, atol: 1e-5, "logits")
        let loss = logits.reshaped([-1, 42]).crossEntropy(targets: batch.labels)
        XCTAssertEqual(loss.item(), try fixture.floats("loss")[0], accuracy: 1e-5 * loss.item())
        loss.backward()
        var checked = 0
        for (name, parameter) in model.namedParameters() {
            if fixture.entry("grad.\(name)") == nil { XCTAssertNil(parameter.grad, name); continue }
            guard let grad = parameter.grad else { XCTFail("no gradient for \(name)"); continue }
            assertGradientClose(grad.scalars, try fixture.floats("grad.\(name)"), "grad \(name)")
            checked += 1
        }
        XCTAssertEqual(checked, 97)
        let fresh = try KosmosModel(configuration: try Self.configuration(), generator: RandomGenerator(seed: 0))
        try fresh.load(from: fixture, prefix: "model.", sourceName: "kosmos_video_tiny")
        fresh.eval()
        let losses = try adamWLosses(fresh) { try fresh.loss(batch) }
        assertAllClose(losses, try fixture.floats("adamw_losses"), rtol: 1e-4, atol: 0, "AdamW losses")
    }

    func testVideoLayoutAndBadSequences() throws {
        let model = try KosmosModel(configuration: try Self.configuration(), generator: RandomGenerator(seed: 1))
        let twoFrames = Tensor.zeros([2, 3, 16, 16])
        let encode: (String) -> [Int] = { $0.unicodeScalars.map { Int($0.value) % 30 + 3 } }
        let tokens = try model.promptTokens("a<video>b", imageCount: 0, videoFrames: [2], encode: encode)
        XCTAssertEqual(tokens, [1] + encode("a") + [40] + [Int](repeating: 0, count: 8) + [41] + encode("b"))
        let batch = try model.makeBatch([KosmosSequence(tokens: tokens, videos: [twoFrames])])
        XCTAssertEqual(batch.videoSlotPositions, Array(3..<11))
        let cases: [(KosmosSequence, String)] = [
            (KosmosSequence(tokens: [1, 40] + [Int](repeating: 0, count: 8) + [41]), "more <video> markers than its 0 video(s)"),
            (KosmosSequence(tokens: [1, 40] + [Int](repeating: 0, count: 4) + [41], videos: [twoFrames]), "is not followed by 8 slots"),
            (KosmosSequence(tokens: [1, 40] + [Int](repeating: 0, count: 16) + [41], videos: [Tensor.zeros([4, 3, 16, 16])]),
             "4 frames; video_config.max_frames is 3"),
            (KosmosSequence(tokens: [1, 40, 0, 0, 0, 0, 41], videos: [Tensor.zeros([1, 3, 8, 8])]), "the vision tower expects [frames, 3, 16, 16]"),
        ]
        for (sequence, message) in cases {
            XCTAssertThrowsError(try model.makeBatch([sequence])) { XCTAssertTrue("\($0)".contains(message), "\($0) should mention \(message)") }
        }
        var bad = try Self.configuration()
        bad.video!.maxFrames = 4
        XCTAssertThrowsError(try bad.validate()) { XCTAssertTrue("\($0)".contains("num_media_embeds 3"), "\($0)") }
        let imageOnly = try KosmosModel(configuration: KosmosParityTests.tinyConfiguration(), generator: RandomGenerator(seed: 1))
        XCTAssertThrowsError(try imageOnly.makeBatch([KosmosSequence(tokens: [1, 5], videos: [twoFrames])])) {
            XCTAssertTrue("\($0)".contains("no video_config"), "\($0)")
        }
    }
}
