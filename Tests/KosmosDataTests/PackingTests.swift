import Foundation
import KosmosTokenizers
import KosmosVision
import XCTest
@testable import KosmosData

/// "wN" -> 1000 + N, one id per whitespace-separated word, so expected ids follow from the text.
final class WordTokenizer: Tokenizer {
    func encode(_ text: String) -> [Int] { text.split(separator: " ").map { 1000 + (Int($0.dropFirst()) ?? 0) } }
    func decode(_ ids: [Int]) -> String { ids.map { "w\($0 - 1000)" }.joined(separator: " ") }
    var vocabularySize: Int { 2000 }
    func id(of token: String) -> Int? { nil }
    func token(of id: Int) -> String? { nil }
    var specialIds: SpecialTokenIds { SpecialTokenIds(bos: 1, eos: 2, pad: 0) }
}

final class ListDataset: Dataset {
    let samples: [Sample]
    init(_ samples: [Sample]) { self.samples = samples }
    var name: String { "list" }
    var count: Int { samples.count }
    var indexingSkips: SkipCounts { SkipCounts() }
    func sample(at index: Int) throws -> Sample { samples[index] }
}

let smallImage = SyntheticShapes.scene(seed: 5, width: 16, height: 16).image
let ids = PackingTokens(tokenizer: WordTokenizer(), image: 3, imageEnd: 4, slot: 5, pad: 0, slotsPerImage: 2)

func source(_ samples: [Sample], maxLength: Int) throws -> SynchronousSource {
    SynchronousSource(iterator: try DatasetIterator(dataset: ListDataset(samples), shuffle: false),
                      preparer: try SamplePreparer(tokenizer: WordTokenizer(), tokens: ids, maxLength: maxLength))
}

func caption(_ text: String, _ id: String) -> Sample {
    Sample(kind: .imageCaption, segments: [.image(.decoded(smallImage)), .text(text)], id: id)
}
func text(_ t: String, _ id: String) -> Sample { Sample(kind: .text, segments: [.text(t)], id: id) }

final class PackingTests: XCTestCase {
    func testIdsLabelsAndImagesPositionByPosition() throws {
        let src = try source([caption("w7 w8", "cap"), text("w1 w2 w3", "txt")], maxLength: 16)
        let packer = try SequencePacker(sources: [(src, 1)], maxLength: 16, tokens: ids)
        let seq = try XCTUnwrap(packer.next())
        XCTAssertEqual(seq.tokens, [1, 3, 5, 5, 4, 1007, 1008, 2, 1, 1001, 1002, 1003, 2, 0, 0, 0])
        let x = ignoreIndex
        // <s> predicts <image>; <image> predicts a slot (masked); slots masked; </image> predicts w7 ...;
        // the last real token and the padding have no target.
        XCTAssertEqual(seq.labels, [3, x, x, x, 1007, 1008, 2, 1, 1001, 1002, 1003, 2, x, x, x, x])
        XCTAssertEqual(seq.images.count, 1)
        XCTAssertEqual(seq.images[0], try CLIPPreprocessor().preprocess(smallImage))
        XCTAssertEqual(seq.images[0].shape, [3, 224, 224])
        XCTAssertEqual(seq.sampleIds, ["cap", "txt"])
        XCTAssertEqual(seq.tokensByKind[.imageCaption], 8)
        XCTAssertEqual(seq.tokensByKind[.text], 5)
        XCTAssertNil(packer.next())
    }

    func testSampleThatDoesNotFitStartsTheNextSequence() throws {
        let src = try source([caption("w7 w8", "cap"), text("w1 w2 w3", "txt")], maxLength: 10)
        let packer = try SequencePacker(sources: [(src, 1)], maxLength: 10, tokens: ids)
        let batch = packer.nextBatch(4)
        XCTAssertEqual(batch.count, 2)
        XCTAssertEqual(batch[0].tokens, [1, 3, 5, 5, 4, 1007, 1008, 2, 0, 0])
        XCTAssertEqual(batch[0].labels, [3, -100, -100, -100, 1007, 1008, 2, -100, -100, -100])
        XCTAssertEqual(batch[1].tokens, [1, 1001, 1002, 1003, 2, 0, 0, 0, 0, 0])
        XCTAssertEqual(batch[1].labels, [1001, 1002, 1003, 2, -100, -100, -100, -100, -100, -100])
        XCTAssertEqual(batch[1].images.count, 0)
    }

    func testOverlongTextIsTruncatedAndOverlongImageSampleSkipped() throws {
        let src = try source([text("w1 w2 w3 w4 w5", "long"), caption("w9", "img"), text("w6", "short")], maxLength: 4)
        let packer = try SequencePacker(sources: [(src, 1)], maxLength: 4, tokens: ids)
        let a = try XCTUnwrap(packer.next())
        XCTAssertEqual(a.tokens, [1, 1001, 1002, 1003])
        XCTAssertEqual(a.labels, [1001, 1002, 1003, -100])
        let b = try XCTUnwrap(packer.next())
        XCTAssertEqual(b.tokens, [1, 1006, 2, 0])
        XCTAssertEqual(b.labels, [1006, 2, -100, -100])
        XCTAssertNil(packer.next())
        // The caption sample needs 1 + 4 + 1 + 1 = 7 tokens.
        XCTAssertEqual(packer.skips[.imageSampleTooLong], 1)
    }

    func testMixingByTokenShare() throws {
        let a = try source((0..<20).map { text("w1 w1", "A\($0)") }, maxLength: 12)
        let b = try source((0..<20).map { text("w2 w2", "B\($0)") }, maxLength: 12)
        // Weights 0.5 : 0.25 normalise to 2/3 : 1/3. Each sample is 4 tokens, so the source furthest
        // below its share goes next: A(0 vs 0, tie -> A), B, A, A (tie at 12), B, A, A, B, A.
        let packer = try SequencePacker(sources: [(a, 0.5), (b, 0.25)], maxLength: 12, tokens: ids)
        let seqs = packer.nextBatch(3)
        XCTAssertEqual(seqs.map(\.sampleIds), [["A0", "B0", "A1"], ["A2", "B1", "A3"], ["A4", "B2", "A5"]])
        XCTAssertEqual(packer.tokensTaken, [24, 12])
        XCTAssertThrowsError(try SequencePacker(sources: [(a, 0)], maxLength: 12, tokens: ids))
    }

    func testUnreadableImageIsSkippedAtPreparation() throws {
        let bad = Sample(kind: .imageCaption, segments: [.image(.data(Data([0xFF, 0xD8, 0xFF, 0x00]), name: "bad")), .text("w1")], id: "bad")
        let src = try source([bad, text("w3", "ok")], maxLength: 8)
        let first = try XCTUnwrap(src.next())
        XCTAssertEqual(first.id, "ok")
        XCTAssertEqual(src.skips[.unreadableImage], 1)
    }

    func testBosEosComeFromARealTokenizer() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/tokenizers/hf_llama_bpe.tokenizer.json")
        let tok = try TokenizerLoader.load(url)
        let t = PackingTokens(tokenizer: tok, image: 9000, imageEnd: 9001, slot: 9002, pad: 9003, slotsPerImage: 1)
        XCTAssertEqual(t.bos, tok.specialIds.bos)
        XCTAssertEqual(t.eos, tok.specialIds.eos)
        let prep = try SamplePreparer(tokenizer: tok, tokens: t, maxLength: 64)
        let got = prep.tokenIds(Sample(kind: .imageCaption, segments: [.text("hello"), .image(.decoded(smallImage)), .text("world")], id: "x"))
        var expected: [Int] = []
        if let b = tok.specialIds.bos { expected.append(b) }
        expected += tok.encode("hello") + [9000, 9002, 9001] + tok.encode("world")
        if let e = tok.specialIds.eos { expected.append(e) }
        XCTAssertEqual(got, expected)
    }
}

final class LoaderTests: XCTestCase {
    func testPrefetchingLoaderMatchesSynchronousOrder() throws {
        let ds = try SyntheticShapesDataset(scenes: 10, baseSeed: 3, width: 16, height: 16)
        let preparer = try SamplePreparer(tokenizer: WordTokenizer(), tokens: ids, maxLength: 32)
        let sync = SynchronousSource(iterator: try DatasetIterator(dataset: ds, seed: 9), preparer: preparer)
        let loader = try PrefetchingLoader(iterator: try DatasetIterator(dataset: ds, seed: 9), preparer: preparer,
                                           capacity: 3, workers: 2)
        var n = 0
        while let expected = sync.next() {
            let got = try XCTUnwrap(loader.next())
            XCTAssertEqual(got.id, expected.id)
            XCTAssertEqual(got.tokens, expected.tokens)
            XCTAssertEqual(got.images, expected.images)
            XCTAssertEqual(got.positionAfter, expected.positionAfter)
            n += 1
        }
        XCTAssertEqual(n, 10)
        XCTAssertNil(loader.next())
        XCTAssertTrue(loader.stop(timeout: 5))
    }

    func testLoaderCountsUnreadableImagesInOrder() throws {
        let ds = try COCOCaptionsDataset(url: DataFixtures.url("images/captions.json"))
        let preparer = try SamplePreparer(tokenizer: WordTokenizer(), tokens: ids, maxLength: 32)
        let loader = try PrefetchingLoader(iterator: try DatasetIterator(dataset: ds, shuffle: false), preparer: preparer,
                                           capacity: 2, workers: 2)
        var got: [String] = []
        while let s = loader.next() { got.append(s.id) }
        XCTAssertEqual(got, ["captions.json:0", "captions.json:1", "captions.json:6"])
        XCTAssertEqual(loader.skips[.unreadableImage], 1)
        XCTAssertEqual(loader.skips[.missingImage], 1)
        XCTAssertEqual(loader.skips[.unknownImageId], 1)
        XCTAssertEqual(loader.skips[.emptyCaption], 1)
    }

    func testStoppingEarlyDoesNotHang() throws {
        let ds = try SyntheticShapesDataset(scenes: 1000, width: 16, height: 16)
        let preparer = try SamplePreparer(tokenizer: WordTokenizer(), tokens: ids, maxLength: 32)
        let loader = try PrefetchingLoader(iterator: try DatasetIterator(dataset: ds, epochs: nil), preparer: preparer,
                                           capacity: 2, workers: 2)
        XCTAssertNotNil(loader.next())
        XCTAssertTrue(loader.stop(timeout: 10), "the producer thread should exit promptly")
        XCTAssertNil(loader.next())
        // Dropping a loader that was never stopped must not block either.
        var other: PrefetchingLoader? = try PrefetchingLoader(iterator: try DatasetIterator(dataset: ds), preparer: preparer, capacity: 2)
        _ = other?.next()
        other = nil
    }
}

final class PackerResumeTests: XCTestCase {
    /// Three kinds with different lengths: text (3-6 tokens), captions (7-8), interleaved (12).
    func makeSources(_ state: PackerState?) throws -> [(PreparedSampleSource, Double)] {
        let texts = (0..<30).map { text(Array(repeating: "w\($0 % 7)", count: 1 + $0 % 4).joined(separator: " "), "T\($0)") }
        let caps = (0..<30).map { caption($0 % 2 == 0 ? "w8" : "w8 w9", "C\($0)") }
        let docs = (0..<30).map {
            Sample(kind: .interleaved, segments: [.text("w1 w2"), .image(.decoded(smallImage)), .text("w3 w4 w5")], id: "D\($0)")
        }
        let preparer = try SamplePreparer(tokenizer: WordTokenizer(), tokens: ids, maxLength: 20)
        return try [(texts, 0.5), (caps, 0.5), (docs, 0.2)].enumerated().map { k, entry in
            let it = try DatasetIterator(dataset: ListDataset(entry.0), seed: UInt64(k), resumeFrom: state?.positions[k] ?? nil)
            return (SynchronousSource(iterator: it, preparer: preparer), entry.1)
        }
    }

    func testMixedPackingResumesExactly() throws {
        let full = try SequencePacker(sources: try makeSources(nil), maxLength: 20, tokens: ids)
        let all = full.nextBatch(12)
        XCTAssertEqual(all.count, 12)
        // Deficit scheduling keeps each source within one sample (at most 12 tokens) of its share.
        let total = Double(full.tokensTaken.reduce(0, +))
        for (k, w) in [0.5 / 1.2, 0.5 / 1.2, 0.2 / 1.2].enumerated() {
            XCTAssertLessThanOrEqual(abs(Double(full.tokensTaken[k]) - w * total), 12, "source \(k): \(full.tokensTaken)")
        }
        // Every sequence's labels follow its ids.
        for seq in all {
            XCTAssertEqual(seq.tokens.count, 20)
            for i in 0..<19 where seq.labels[i] != ignoreIndex { XCTAssertEqual(seq.labels[i], seq.tokens[i + 1]) }
            XCTAssertEqual(seq.images.count, seq.tokens.filter { $0 == ids.image }.count)
        }
        for cut in [1, 5, 11] {
            let first = try SequencePacker(sources: try makeSources(nil), maxLength: 20, tokens: ids)
            let head = first.nextBatch(cut)
            let saved = try JSONDecoder().decode(PackerState.self, from: try JSONEncoder().encode(first.state))
            let resumed = try SequencePacker(sources: try makeSources(saved), maxLength: 20, tokens: ids, resume: saved)
            let tail = resumed.nextBatch(12 - cut)
            XCTAssertEqual((head + tail).map(\.tokens), all.map(\.tokens), "cut at \(cut)")
            XCTAssertEqual((head + tail).map(\.sampleIds), all.map(\.sampleIds), "cut at \(cut)")
        }
    }
}
