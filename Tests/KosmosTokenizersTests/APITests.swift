import Foundation
import XCTest
@testable import KosmosTokenizers
import KosmosBenchmarks

/// The helpers the CLI calls (it does no tokenizer logic itself).
final class APITests: XCTestCase {
    func testParseIds() throws {
        XCTAssertEqual(try TokenizerLoader.parseIds(json: "[1, 2, 30000]"), [1, 2, 30000])
        XCTAssertEqual(try TokenizerLoader.parseIds(json: "[]"), [])
        for bad in ["", "[1.5]", "{\"a\": 1}", "[\"x\"]", "7", "[1,"] {
            XCTAssertThrowsError(try TokenizerLoader.parseIds(json: bad), bad) { XCTAssertTrue($0 is TokenizerError) }
        }
    }

    func testBatchEncodingOnThreadsMatchesSequential() throws {
        let parity = try Fixtures.load()
        for file in ["bpe_nmt_nfkc.model", "uni_nmt_nfkc.model", "hf_kosmos2_bpe.tokenizer.json"] {
            let tok = try TokenizerLoader.load(Fixtures.dir.appendingPathComponent(file))
            XCTAssertEqual(tok.encodeBatch(parity.strings, threads: 4), parity.strings.map { tok.encode($0) }, file)
        }
    }

    func testLayoutsThroughTheLoader() throws {
        let url = Fixtures.dir.appendingPathComponent("bpe_nmt_nfkc.model")
        let k2 = try TokenizerLoader.load(url, layout: .kosmos2)
        XCTAssertEqual(k2.id(of: "<grounding>"), k2.vocabularySize - 1025)
        XCTAssertThrowsError(try TokenizerLoader.load(Fixtures.dir.appendingPathComponent("hf_t5_unigram.tokenizer.json"), layout: .kosmosX))
    }

    func testBenchmarkReportsThroughput() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("kosmos-tok-bench-\(UUID().uuidString).txt")
        defer { try? FileManager.default.removeItem(at: tmp) }
        try String(repeating: "the quick brown fox café 東京\n", count: 200).write(to: tmp, atomically: true, encoding: .utf8)
        let tok = try TokenizerLoader.load(Fixtures.dir.appendingPathComponent("uni_nmt_nfkc.model"))
        let r = try TokenizerBenchmark.run(tokenizer: tok, file: tmp, repeats: 2)
        XCTAssertEqual(r.lines, 201)
        XCTAssertGreaterThan(r.tokens, 200)
        XCTAssertGreaterThan(r.megabytesPerSecond, 0)
        XCTAssertThrowsError(try TokenizerBenchmark.run(tokenizer: tok, file: tmp, repeats: 0))
    }
}
