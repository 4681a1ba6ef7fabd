import Foundation
import KosmosAudio
import KosmosVision
import XCTest
@testable import KosmosData

/// Audio in the data sets: audio-caption JSONL, interleaved segments, WebDataset shards, the
/// preparer's features, and bad clips skipped and counted.
final class AudioDataTests: XCTestCase {
    static let audio = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/audio")

    func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("kosmos-audio-data-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    static var features: AudioFeatureConfiguration {
        var c = AudioFeatureConfiguration()
        c.featureSize = 8
        c.chunkLength = 0.32
        return c
    }

    func testAudioCaptionJSONLWithBadClipsSkippedAndCounted() throws {
        let folder = try temporaryFolder()
        let lines = [
            #"{"audio": "\#(Self.audio.path)/tone.mp3", "text": "w7 w8"}"#,
            #"{"audio": "\#(Self.audio.path)/missing.wav", "text": "w1"}"#,
            #"{"audio": "\#(Self.audio.path)/notaudio.wav", "caption": "w2"}"#,
            #"{"audio": "\#(Self.audio.path)/tone_s16.wav", "text": "  "}"#,
            #"{"audio": "\#(Self.audio.path)/tone.flac", "caption": "w3"}"#,
        ]
        let url = folder.appendingPathComponent("clips.jsonl")
        try lines.joined(separator: "\n").write(to: url, atomically: true, encoding: .utf8)
        XCTAssertEqual(try DataFormat.detect(url.path), .audioCaptionsJSONL)
        let dataset = try DataFormat.open(url.path)
        let tokens = PackingTokens(tokenizer: WordTokenizer(), image: 3, imageEnd: 4, slot: 5, pad: 0, slotsPerImage: 2,
                                   audio: (open: 6, close: 7, slots: 3))
        let preparer = try SamplePreparer(tokenizer: WordTokenizer(), tokens: tokens, maxLength: 32,
                                          audio: try AudioPreparer(configuration: Self.features, maxDuration: 30))
        let source = SynchronousSource(iterator: try DatasetIterator(dataset: dataset, shuffle: false), preparer: preparer)
        var prepared: [PreparedSample] = []
        while let s = source.next() { prepared.append(s) }
        XCTAssertEqual(prepared.map(\.tokens), [[1, 6, 5, 5, 5, 7, 1007, 1008, 2], [1, 6, 5, 5, 5, 7, 1003, 2]])
        XCTAssertEqual(prepared.map(\.kind), [.audioCaption, .audioCaption])
        XCTAssertEqual(prepared[0].audio.count, 1)
        XCTAssertEqual(prepared[0].audio[0].frames, 32)
        XCTAssertEqual(prepared[0].audio[0].featureSize, 8)
        XCTAssertEqual(source.skips[.missingAudio], 1)
        XCTAssertEqual(source.skips[.unreadableAudio], 1)
        XCTAssertEqual(source.skips[.emptyCaption], 1)
        // The clip's features are the extractor's on the decoded clip.
        let clip = try AudioDecoder(sampleRate: 16000).decode(contentsOf: Self.audio.appendingPathComponent("tone.flac"))
        XCTAssertEqual(prepared[1].audio[0].values, try LogMelExtractor(configuration: Self.features).features(clip.samples).values)

        // `kosmos data inspect` decodes every clip: the unreadable one is a skip, the good ones count.
        let inspection = try DataInspection.run(path: url.path)
        XCTAssertEqual(inspection.format, .audioCaptionsJSONL)
        XCTAssertEqual(inspection.audioReferenced, 3)
        XCTAssertEqual(inspection.audioDecoded, 2)
        XCTAssertEqual(inspection.usable, 2)
        XCTAssertEqual(inspection.skips[.unreadableAudio], 1)
        XCTAssertTrue(inspection.examples[0].contains("<audio ") && inspection.examples[0].contains("tone.mp3"), inspection.examples[0])

        let packer = try SequencePacker(sources: [(SynchronousSource(iterator: try DatasetIterator(dataset: dataset, shuffle: false),
                                                                     preparer: preparer), 1)], maxLength: 20, tokens: tokens)
        let packed = try XCTUnwrap(packer.next())
        XCTAssertEqual(packed.audio.count, 2)
        XCTAssertEqual(Array(packed.tokens.prefix(packed.length)), prepared[0].tokens + prepared[1].tokens)
    }

    func testInterleavedSegmentsAndModelsWithoutAudio() throws {
        let folder = try temporaryFolder()
        try FileManager.default.copyItem(at: Self.audio.appendingPathComponent("tone.ogg"), to: folder.appendingPathComponent("a.ogg"))
        let url = folder.appendingPathComponent("docs.jsonl")
        try [#"{"segments": [{"text": "w1"}, {"audio": "a.ogg"}, {"text": "w2 w3"}]}"#,
             #"{"segments": [{"audio": "gone.wav"}]}"#].joined(separator: "\n").write(to: url, atomically: true, encoding: .utf8)
        let dataset = try DataFormat.open(url.path)
        XCTAssertEqual(dataset.count, 2)
        let first = try dataset.sample(at: 0)
        XCTAssertEqual(first.audioCount, 1)
        XCTAssertThrowsError(try dataset.sample(at: 1)) { XCTAssertEqual($0 as? SkipReason, .missingAudio) }
        let tokens = PackingTokens(tokenizer: WordTokenizer(), image: 3, imageEnd: 4, slot: 5, pad: 0, slotsPerImage: 2,
                                   audio: (open: 6, close: 7, slots: 1))
        let withAudio = try SamplePreparer(tokenizer: WordTokenizer(), tokens: tokens, maxLength: 32,
                                           audio: try AudioPreparer(configuration: Self.features, maxDuration: 30))
        XCTAssertEqual(try withAudio.prepare(first).tokens, [1, 1001, 6, 5, 7, 1002, 1003, 2])
        // A model without an audio path skips such samples (counted), never trains on bare markers.
        let without = try SamplePreparer(tokenizer: WordTokenizer(), tokens: ids, maxLength: 32)
        XCTAssertThrowsError(try without.prepare(first)) { XCTAssertEqual($0 as? SkipReason, .audioUnsupported) }
        // A clip beyond max_duration is its own skip reason.
        let strict = try SamplePreparer(tokenizer: WordTokenizer(), tokens: tokens, maxLength: 32,
                                        audio: try AudioPreparer(configuration: Self.features, maxDuration: 0.1))
        XCTAssertThrowsError(try strict.prepare(first)) { XCTAssertEqual($0 as? SkipReason, .audioTooLong) }
    }

    func testWebDatasetAudioShards() throws {
        let dataset = try WebDatasetCaptions(shards: [Self.audio.appendingPathComponent("sounds.tar")])
        // 000.wav+txt, 001.flac+json, 002.wav+txt (not audio inside); 003.wav has no caption.
        XCTAssertEqual(dataset.count, 3)
        XCTAssertEqual(dataset.indexingSkips[.unpairedMember], 1)
        let preparer = try SamplePreparer(tokenizer: WordTokenizer(), tokens: PackingTokens(tokenizer: WordTokenizer(), image: 3, imageEnd: 4,
                                                                                           slot: 5, pad: 0, slotsPerImage: 2, audio: (6, 7, 1)),
                                          maxLength: 32, audio: try AudioPreparer(configuration: Self.features, maxDuration: 30))
        let source = SynchronousSource(iterator: try DatasetIterator(dataset: dataset, shuffle: false), preparer: preparer)
        var captions: [String] = []
        while let s = source.next() { captions.append(s.id); XCTAssertEqual(s.audio.count, 1) }
        XCTAssertEqual(captions, ["sounds.tar:000", "sounds.tar:001"])
        XCTAssertEqual(source.skips[.unreadableAudio], 1)
        XCTAssertEqual(source.skips[.unpairedMember], 1)
        XCTAssertEqual(try dataset.sample(at: 1).text, "a tone")
    }

    func testSyntheticSoundsAreDeterministicAndNeedTheOrder() throws {
        let dataset = try SyntheticSoundsDataset(clips: 400)
        let a = try dataset.sample(at: 17), b = try dataset.sample(at: 17)
        XCTAssertEqual(a, b)
        var captions = Set<String>(), bags = [String: Set<String>]()
        for i in 0..<400 {
            let clip = SyntheticSounds.clip(seed: UInt64(i))
            XCTAssertEqual(clip.samples.count, 32000)
            XCTAssertTrue((1...4).contains(clip.events.count))
            XCTAssertLessThanOrEqual(clip.times.last!.end, 2.0)
            XCTAssertLessThanOrEqual(clip.samples.map { abs($0) }.max()!, 1)
            captions.insert(clip.caption)
            bags[clip.events.map(\.rawValue).sorted().joined(separator: " "), default: []].insert(clip.caption)
        }
        // Many sets of events come in several orders: the order is part of the answer.
        XCTAssertGreaterThan(bags.values.filter { $0.count > 1 }.count, 20)
        XCTAssertGreaterThan(captions.count, 100)
    }
}

/// Video in the data sets: video-caption JSONL (real files written through FFmpeg), synthetic
/// motion clips, the preparer's frames, and bad videos skipped and counted.
final class VideoDataTests: XCTestCase {
    func testVideoCaptionJSONLAndSyntheticMotion() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kosmos-video-data-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try VideoDecoder.encode(SyntheticMotion.clip(seed: 5, frames: 6, size: 16).frames, fps: 8, format: .mp4H264,
                                to: folder.appendingPathComponent("a.mp4"))
        try Data("not a video".utf8).write(to: folder.appendingPathComponent("b.avi"))
        let url = folder.appendingPathComponent("videos.jsonl")
        try [#"{"video": "a.mp4", "text": "w7"}"#, #"{"video": "gone.mp4", "text": "w1"}"#, #"{"video": "b.avi", "caption": "w2"}"#,
             #"{"segments": [{"text": "w3"}, {"video": "a.mp4"}]}"#].joined(separator: "\n").write(to: url, atomically: true, encoding: .utf8)
        XCTAssertEqual(try DataFormat.detect(url.path), .videoCaptionsJSONL)
        let tokens = PackingTokens(tokenizer: WordTokenizer(), image: 3, imageEnd: 4, slot: 5, pad: 0, slotsPerImage: 1, video: (open: 6, close: 7))
        let preparer = try SamplePreparer(tokenizer: WordTokenizer(), tokens: tokens, maxLength: 32,
                                          video: VideoPreparer(sampling: .uniform(4), preprocessor: CLIPPreprocessor(config: {
                                              var c = CLIPPreprocessorConfig(); c.size = .shortestEdge(16); c.cropHeight = 16; c.cropWidth = 16; return c
                                          }())))
        let source = SynchronousSource(iterator: try DatasetIterator(dataset: try DataFormat.open(url.path), shuffle: false), preparer: preparer)
        var prepared: [PreparedSample] = []
        while let s = source.next() { prepared.append(s) }
        // a.mp4 (6 frames): 4 sampled, each one slot; the interleaved line is an unknown-format record here.
        XCTAssertEqual(prepared.map(\.tokens), [[1, 6, 5, 5, 5, 5, 7, 1007, 2]])
        XCTAssertEqual(prepared[0].videos.count, 1)
        XCTAssertEqual(prepared[0].videos[0].count, 4)
        XCTAssertEqual(prepared[0].videos[0][0].shape, [3, 16, 16])
        XCTAssertEqual(source.skips[.missingVideo], 1)
        XCTAssertEqual(source.skips[.unreadableVideo], 1)

        let interleaved = folder.appendingPathComponent("docs.jsonl")
        try #"{"segments": [{"text": "w3"}, {"video": "a.mp4"}]}"#.write(to: interleaved, atomically: true, encoding: .utf8)
        let doc = try DataFormat.open(interleaved.path).sample(at: 0)
        XCTAssertEqual(try preparer.prepare(doc).tokens, [1, 1003, 6, 5, 5, 5, 5, 7, 2])
        // A model without video skips such samples.
        XCTAssertThrowsError(try SamplePreparer(tokenizer: WordTokenizer(), tokens: ids, maxLength: 32).prepare(doc)) {
            XCTAssertEqual($0 as? SkipReason, .videoUnsupported)
        }

        // Synthetic motion: each clip encoded to an AVI and decoded back when prepared.
        let motion = try SyntheticMotionDataset(clips: 10, frames: 8, size: 16)
        let sample = try motion.sample(at: 3)
        XCTAssertEqual(sample.text, SyntheticMotion.clip(seed: 3, frames: 8, size: 16).caption)
        let frames = try VideoPreparer(sampling: .uniform(8), preprocessor: CLIPPreprocessor(config: {
            var c = CLIPPreprocessorConfig(); c.size = .shortestEdge(16); c.cropHeight = 16; c.cropWidth = 16; return c
        }())).frames(.synthetic(seed: 3, frames: 8, size: 16))
        XCTAssertEqual(frames.count, 8)
    }

    func testWebDatasetVideoShards() throws {
        let shard = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/video/clips.tar")
        let dataset = try WebDatasetCaptions(shards: [shard])
        XCTAssertEqual(dataset.count, 2)
        XCTAssertEqual(dataset.indexingSkips[.unpairedMember], 1)
        let preparer = try SamplePreparer(tokenizer: WordTokenizer(),
                                          tokens: PackingTokens(tokenizer: WordTokenizer(), image: 3, imageEnd: 4, slot: 5, pad: 0, slotsPerImage: 1,
                                                                video: (open: 6, close: 7)),
                                          maxLength: 64, video: VideoPreparer(sampling: .uniform(4), preprocessor: CLIPPreprocessor()))
        let source = SynchronousSource(iterator: try DatasetIterator(dataset: dataset, shuffle: false), preparer: preparer)
        var kinds: [SampleKind] = [], frames: [Int] = []
        while let s = source.next() { kinds.append(s.kind); frames.append(s.videos.first?.count ?? 0) }
        XCTAssertEqual(kinds, [.videoCaption, .videoCaption])
        XCTAssertEqual(frames, [4, 4])
        XCTAssertEqual(try dataset.sample(at: 1).text, "a gif")
    }
}
