import Foundation
import KosmosTokenizers
import KosmosVision
import XCTest
@testable import KosmosData

enum DataFixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/data")
    static func url(_ relative: String) -> URL { root.appendingPathComponent(relative) }
}

/// Record i is the text "r<i>"; indices in `bad` throw `emptyText`.
final class NumberedDataset: Dataset {
    let n: Int
    let bad: Set<Int>
    init(_ n: Int, bad: Set<Int> = []) { self.n = n; self.bad = bad }
    var name: String { "numbered" }
    var count: Int { n }
    var indexingSkips: SkipCounts { SkipCounts() }
    func sample(at index: Int) throws -> Sample {
        if bad.contains(index) { throw SkipReason.emptyText }
        return Sample(kind: .text, segments: [.text("r\(index)")], id: "\(index)")
    }
}

func drain(_ it: DatasetIterator) -> [String] {
    var out: [String] = []
    while let s = it.next() { out.append(s.text) }
    return out
}

final class DatasetOrderTests: XCTestCase {
    func testPermutationIsSeededFisherYatesOverSplitMix64() {
        // Expected order recomputed here from the generator, step by step.
        var rng = SplitMix64(seed: 42)
        var expected = Array(0..<10)
        for i in stride(from: 9, to: 0, by: -1) { expected.swapAt(i, rng.below(i + 1)) }
        XCTAssertEqual(seededPermutation(10, seed: 42), expected)
        XCTAssertEqual(seededPermutation(10, seed: 42).sorted(), Array(0..<10))
        XCTAssertNotEqual(seededPermutation(10, seed: 42), seededPermutation(10, seed: 43))
        XCTAssertEqual(seededPermutation(0, seed: 1), [])
        XCTAssertEqual(seededPermutation(1, seed: 1), [0])
    }

    func testUnshuffledOrderAndSkips() throws {
        let it = try DatasetIterator(dataset: NumberedDataset(6, bad: [1, 4]), shuffle: false)
        XCTAssertEqual(drain(it), ["r0", "r2", "r3", "r5"])
        XCTAssertEqual(it.skips[.emptyText], 2)
        XCTAssertEqual(it.skips.total, 2)
    }

    func testShuffledOrderFollowsPermutation() throws {
        let it = try DatasetIterator(dataset: NumberedDataset(12), seed: 7)
        XCTAssertEqual(drain(it), seededPermutation(12, seed: 7).map { "r\($0)" })
    }

    func testShardsAreDisjointAndCover() throws {
        for world in [1, 2, 3, 5] {
            var all: [String] = []
            let order = seededPermutation(13, seed: 3).map { "r\($0)" }
            for rank in 0..<world {
                let got = drain(try DatasetIterator(dataset: NumberedDataset(13), seed: 3, rank: rank, worldSize: world))
                // Rank r takes positions r, r+W, ... of the epoch's order.
                XCTAssertEqual(got, stride(from: rank, to: 13, by: world).map { order[$0] })
                all += got
            }
            XCTAssertEqual(all.count, 13)
            XCTAssertEqual(Set(all).count, 13)
        }
        XCTAssertThrowsError(try DatasetIterator(dataset: NumberedDataset(3), rank: 2, worldSize: 2))
    }

    func testResumeYieldsExactlyTheRemainingSamplesAcrossEpochs() throws {
        let ds = NumberedDataset(9, bad: [4])
        let full = drain(try DatasetIterator(dataset: ds, seed: 11, rank: 1, worldSize: 2, epochs: 3))
        var expected: [String] = []
        for e in 0..<3 {
            let perm = seededPermutation(9, seed: 11 &+ UInt64(e) &* 0x9E37_79B9_7F4A_7C15)
            expected += [1, 3, 5, 7].map { perm[$0] }.filter { $0 != 4 }.map { "r\($0)" }
        }
        XCTAssertEqual(full, expected)
        for cut in [0, 1, 3, 4, 5, 9, full.count] {
            let first = try DatasetIterator(dataset: ds, seed: 11, rank: 1, worldSize: 2, epochs: 3)
            var head: [String] = []
            for _ in 0..<cut { if let s = first.next() { head.append(s.text) } }
            // Round-trip the position through JSON, as a checkpoint would.
            let saved = try JSONEncoder().encode(first.position)
            let position = try JSONDecoder().decode(DatasetPosition.self, from: saved)
            let resumed = try DatasetIterator(dataset: ds, seed: 11, rank: 1, worldSize: 2, epochs: 3, resumeFrom: position)
            XCTAssertEqual(head + drain(resumed), full, "cut at \(cut)")
        }
        // Each epoch has its own order.
        let epochs = drain(try DatasetIterator(dataset: NumberedDataset(8), seed: 5, epochs: 2))
        XCTAssertEqual(Array(epochs[0..<8]), seededPermutation(8, seed: 5).map { "r\($0)" })
        XCTAssertEqual(Array(epochs[8...]), seededPermutation(8, seed: 5 &+ 0x9E37_79B9_7F4A_7C15).map { "r\($0)" })
        XCTAssertThrowsError(try DatasetIterator(dataset: ds, seed: 12, rank: 1, worldSize: 2,
                                                 resumeFrom: DatasetPosition(seed: 11, rank: 1, worldSize: 2)))
    }

    func testAllBadDatasetDoesNotCycleForever() throws {
        let it = try DatasetIterator(dataset: NumberedDataset(3, bad: [0, 1, 2]), epochs: nil)
        XCTAssertNil(it.next())
        XCTAssertEqual(it.skips[.emptyText], 3)
    }
}

final class FormatTests: XCTestCase {
    func testTextJSONL() throws {
        let ds = try TextJSONLDataset(url: DataFixtures.url("text.jsonl"))
        XCTAssertEqual(ds.count, 8)  // the blank line is not a record
        let it = try DatasetIterator(dataset: ds, shuffle: false)
        XCTAssertEqual(drain(it), ["hello world", "the quick brown fox", "one two three", "jumps over", "lazy dog"])
        XCTAssertEqual(it.skips[.malformedJSON], 1)
        XCTAssertEqual(it.skips[.missingText], 1)
        XCTAssertEqual(it.skips[.emptyText], 1)
        XCTAssertEqual(it.skips.total, 3)
    }

    func testGzipInflateMatchesPythonGzip() throws {
        let gz = try Data(contentsOf: DataFixtures.url("text.jsonl.gz"))
        let expected = try Data(contentsOf: DataFixtures.url("text_gz_expected.jsonl"))
        XCTAssertEqual(try Gzip.decompress(gz), expected)
        XCTAssertEqual(Gzip.crc32(Array("123456789".utf8)), 0xCBF4_3926)  // the CRC-32 check value
        XCTAssertThrowsError(try Gzip.decompress(gz.prefix(gz.count / 2)))
        var flipped = gz
        flipped[gz.count - 6] ^= 0xFF  // inside the last member's CRC
        XCTAssertThrowsError(try Gzip.decompress(flipped))
    }

    func testGzipJSONL() throws {
        let it = try DatasetIterator(dataset: try TextJSONLDataset(url: DataFixtures.url("text.jsonl.gz")), shuffle: false)
        let texts = drain(it)
        XCTAssertEqual(Array(texts.prefix(5)), ["hello world", "the quick brown fox", "one two three", "jumps over", "lazy dog"])
        XCTAssertEqual(texts.count, 8)
        XCTAssertEqual(texts[5], Array(repeating: "lorem ipsum dolor sit amet", count: 200).joined(separator: " "))
        XCTAssertEqual(texts[7], "stored block")
        XCTAssertEqual(it.skips.total, 3)

        let bad = try TextJSONLDataset(url: DataFixtures.url("corrupt.jsonl.gz"))
        XCTAssertEqual(bad.count, 0)
        let badIt = try DatasetIterator(dataset: bad)
        XCTAssertNil(badIt.next())
        XCTAssertEqual(badIt.skips[.corruptGzip], 1)
    }

    func testCOCOCaptions() throws {
        let ds = try COCOCaptionsDataset(url: DataFixtures.url("images/captions.json"))
        XCTAssertEqual(ds.count, 7)
        let it = try DatasetIterator(dataset: ds, shuffle: false)
        var got: [(String, String)] = []
        while let s = it.next() {
            XCTAssertEqual(s.kind, .imageCaption)
            guard case .image(.file(let u)) = s.segments[0] else { return XCTFail("expected an image file first") }
            got.append((u.lastPathComponent, s.text))
        }
        XCTAssertEqual(got.map(\.0), ["a.jpg", "b.png", "corrupt.jpg", "b.png"])
        XCTAssertEqual(got.map(\.1), ["a tiny photo", "one red pixel", "a corrupt image", "another caption for b"])
        XCTAssertEqual(it.skips[.missingImage], 1)
        XCTAssertEqual(it.skips[.unknownImageId], 1)
        XCTAssertEqual(it.skips[.emptyCaption], 1)
        XCTAssertThrowsError(try COCOCaptionsDataset(url: DataFixtures.url("text.jsonl")))
    }

    func testWebDatasetShards() throws {
        let ds = try WebDatasetCaptions(directory: DataFixtures.url("shards"))
        // Pairs: 000, 001 (shard 0), 003, 005, 006 (shard 1); 002 and 004 are unpaired.
        XCTAssertEqual(ds.count, 5)
        XCTAssertEqual(ds.indexingSkips[.unpairedMember], 2)
        let it = try DatasetIterator(dataset: ds, shuffle: false)
        var got: [String] = []
        var imageBytes: [Data] = []
        while let s = it.next() {
            got.append("\(s.id)=\(s.text)")
            if case .image(.data(let d, _)) = s.segments[0] { imageBytes.append(d) }
        }
        XCTAssertEqual(got, ["shard-000.tar:000=a tiny photo", "shard-000.tar:001=one red pixel",
                             "shard-001.tar:003=black and white", "shard-001.tar:005=corrupt"])
        XCTAssertEqual(imageBytes[0], try Data(contentsOf: DataFixtures.url("images/a.jpg")))
        XCTAssertEqual(imageBytes[2], try Data(contentsOf: DataFixtures.url("images/c.png")))
        XCTAssertEqual(it.skips[.emptyCaption], 1)
        XCTAssertEqual(it.skips[.unpairedMember], 2)
    }

    func testTruncatedAndCorruptTar() throws {
        let ds = try WebDatasetCaptions(shards: [DataFixtures.url("truncated.tar")])
        XCTAssertEqual(ds.count, 1)
        XCTAssertEqual(ds.indexingSkips[.corruptArchive], 1)
        XCTAssertEqual(ds.indexingSkips[.unpairedMember], 1)

        var tar = try Data(contentsOf: DataFixtures.url("shards/shard-000.tar"))
        let good = TarReader.read(tar)
        XCTAssertEqual(good.members.map(\.name), ["000.jpg", "000.txt", "001.png", "001.json", "002.jpg"])
        XCTAssertFalse(good.corrupt)
        // Damage the third header's name: its checksum no longer matches, so reading stops there.
        let third = good.members[2].range.lowerBound - 512
        tar[third] ^= 0x01
        let damaged = TarReader.read(tar)
        XCTAssertEqual(damaged.members.map(\.name), ["000.jpg", "000.txt"])
        XCTAssertTrue(damaged.corrupt)
        XCTAssertEqual(TarReader.read(Data([1, 2, 3])).corrupt, true)
        XCTAssertEqual(TarReader.read(Data()).members.count, 0)

        let long = TarReader.read(try Data(contentsOf: DataFixtures.url("longname.tar")))
        XCTAssertEqual(long.members.map(\.name), ["deep/" + String(repeating: "x", count: 120) + ".png",
                                                  "deep/" + String(repeating: "x", count: 120) + ".txt"])
    }

    func testInterleavedJSONL() throws {
        let ds = try InterleavedJSONLDataset(url: DataFixtures.url("interleaved.jsonl"))
        let it = try DatasetIterator(dataset: ds, shuffle: false)
        let a = try XCTUnwrap(it.next())
        XCTAssertEqual(a.kind, .interleaved)
        XCTAssertEqual(a.segments, [.text("look at"), .image(.file(DataFixtures.url("images/a.jpg"))), .text("and"),
                                    .image(.file(DataFixtures.url("images/b.png")))])
        let b = try XCTUnwrap(it.next())
        XCTAssertEqual(b.segments, [.image(.file(DataFixtures.url("images/c.png"))), .text("a picture first")])
        XCTAssertNil(it.next())
        XCTAssertEqual(it.skips[.missingImage], 1)
        XCTAssertEqual(it.skips[.emptyDocument], 1)
        // {"video": "x.mp4"} was an unknown segment before video existed; now it names a missing file.
        XCTAssertEqual(it.skips[.missingVideo], 1)
        XCTAssertEqual(it.skips[.malformedSegment], 0)
        XCTAssertEqual(it.skips[.malformedJSON], 1)
    }

    func testSyntheticShapes() throws {
        let ds = try SyntheticShapesDataset(scenes: 3, baseSeed: 100, width: 32, height: 32)
        for i in 0..<3 {
            let s = try ds.sample(at: i)
            let scene = SyntheticShapes.scene(seed: 100 + UInt64(i), width: 32, height: 32)
            XCTAssertEqual(s.segments, [.image(.decoded(scene.image)), .text(scene.caption)])
        }
        let qa = try SyntheticShapesDataset(scenes: 2, baseSeed: 100, mode: .questions, width: 32, height: 32)
        XCTAssertEqual(qa.count, 8)
        let scene1 = SyntheticShapes.scene(seed: 101, width: 32, height: 32)
        XCTAssertEqual(try qa.sample(at: 6).text, scene1.questions[2].question + " " + scene1.questions[2].answer)
    }

    func testFormatDetectionAndInspect() throws {
        XCTAssertEqual(try DataFormat.detect(DataFixtures.url("text.jsonl.gz").path), .textJSONL)
        XCTAssertEqual(try DataFormat.detect(DataFixtures.url("interleaved.jsonl").path), .interleavedJSONL)
        XCTAssertEqual(try DataFormat.detect(DataFixtures.url("images/captions.json").path), .cocoCaptions)
        XCTAssertEqual(try DataFormat.detect(DataFixtures.url("shards").path), .webDataset)
        XCTAssertThrowsError(try DataFormat.detect(DataFixtures.url("nope.jsonl").path))
        let r = try DataInspection.run(path: DataFixtures.url("images/captions.json").path)
        XCTAssertEqual(r.records, 7)
        XCTAssertEqual(r.usable, 3)  // corrupt.jpg fails to decode
        XCTAssertEqual(r.skips[.unreadableImage], 1)
        XCTAssertEqual(r.examples.count, 3)
    }
}

final class CorruptionTests: XCTestCase {
    /// Damaged archives must throw or report corruption, never trap.
    func testDamagedGzipAndTarNeverCrash() throws {
        let gz = try Data(contentsOf: DataFixtures.url("text.jsonl.gz"))
        let expected = try Data(contentsOf: DataFixtures.url("text_gz_expected.jsonl"))
        var rng = SplitMix64(seed: 1)
        for _ in 0..<150 {
            var d = gz
            let i = rng.below(d.count)
            d[i] ^= UInt8(1 + rng.below(255))
            // The CRC catches a flipped byte that still inflates to something.
            if let out = try? Gzip.decompress(d) { XCTAssertEqual(out, expected, "flip at \(i) went undetected") }
        }
        for cut in stride(from: 0, to: gz.count, by: 37) { _ = try? Gzip.decompress(gz.prefix(cut)) }

        let tar = try Data(contentsOf: DataFixtures.url("shards/shard-001.tar"))
        let members = TarReader.read(tar).members.count
        for _ in 0..<150 {
            var d = tar
            d[rng.below(d.count)] ^= UInt8(1 + rng.below(255))
            let a = TarReader.read(d)
            XCTAssertLessThanOrEqual(a.members.count, members + 1)
            for m in a.members { XCTAssertLessThanOrEqual(m.range.upperBound, d.count) }
        }
        for cut in stride(from: 0, to: tar.count, by: 97) {
            let a = TarReader.read(tar.prefix(cut))
            for m in a.members { XCTAssertLessThanOrEqual(m.range.upperBound, cut) }
        }
    }
}
