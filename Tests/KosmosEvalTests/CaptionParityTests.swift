import Foundation
import XCTest
@testable import KosmosEval

/// Fixtures come from scripts/reference/eval_reference.py (pycocoevalcap + the jar tokenizer).
func evalFixtureURL(_ name: String) -> URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/eval/\(name)")
}

func loadEvalJSON(_ name: String) throws -> Any {
    try JSONSerialization.jsonObject(with: Data(contentsOf: evalFixtureURL(name)))
}

final class CaptionParityTests: XCTestCase {
    struct Expected {
        var overall: [String: Double]
        var perImage: [String: [String: Double]]
        var order: [Int]
        var gts: [String: [String]]
        var res: [String: [String]]
    }

    func expected() throws -> Expected {
        let root = try XCTUnwrap(loadEvalJSON("captions_expected.json") as? [String: Any])
        let tok = try XCTUnwrap(root["tokenized"] as? [String: Any])
        return Expected(overall: try XCTUnwrap(root["overall"] as? [String: Double]),
                        perImage: try XCTUnwrap(root["per_image"] as? [String: [String: Double]]),
                        order: try XCTUnwrap(root["image_order"] as? [Int]),
                        gts: try XCTUnwrap(tok["gts"] as? [String: [String]]),
                        res: try XCTUnwrap(tok["res"] as? [String: [String]]))
    }

    func check(_ result: CaptionEvaluation, _ e: Expected, file: StaticString = #filePath, line: UInt = #line) -> Double {
        var maxDiff = 0.0
        for name in CaptionEvaluation.metricNames {
            let d = abs((result.scores[name] ?? .nan) - (e.overall[name] ?? .infinity))
            maxDiff = max(maxDiff, d)
            XCTAssertLessThanOrEqual(d, 1e-6, "\(name) overall", file: file, line: line)
        }
        XCTAssertEqual(result.perImage.count, e.perImage.count, file: file, line: line)
        for p in result.perImage {
            guard let exp = e.perImage[String(p.imageID)] else { XCTFail("image \(p.imageID) not expected"); continue }
            var got: [String: Double] = ["ROUGE_L": p.rougeL, "CIDEr": p.cider]
            for k in 0..<4 { got["Bleu_\(k + 1)"] = p.bleu[k] }
            for (name, v) in exp {
                let d = abs((got[name] ?? .nan) - v)
                maxDiff = max(maxDiff, d)
                XCTAssertLessThanOrEqual(d, 1e-6, "\(name) image \(p.imageID)", file: file, line: line)
            }
        }
        return maxDiff
    }

    /// Metric arithmetic alone: the reference's own tokenised captions in, its scores out.
    func testMetricsOnReferenceTokensMatchPycocoevalcap() throws {
        let e = try expected()
        XCTAssertGreaterThanOrEqual(e.order.count, 200)
        let items = try e.order.map { id in
            CaptionMetrics.Item(imageID: id, candidate: try XCTUnwrap(e.res[String(id)]?.first),
                                references: try XCTUnwrap(e.gts[String(id)]))
        }
        let r = try CaptionEvaluation.evaluate(tokenized: items)
        let d = check(r, e)
        print("caption metrics on reference tokens: max |diff| = \(d)")
    }

    /// The Swift tokenizer on every fixture caption gives the jar's tokens.
    func testTokenizerMatchesJarOnFixtureCaptions() throws {
        let e = try expected()
        let anns = try CaptionEvaluation.loadAnnotations(evalFixtureURL("captions_annotations.json"))
        let preds = try CaptionEvaluation.loadPredictions(evalFixtureURL("captions_predictions.json"), annotations: anns)
        var mismatches = 0
        for id in e.order {
            let refs = anns.captions[id] ?? []
            let want = e.gts[String(id)] ?? []
            XCTAssertEqual(refs.count, want.count)
            for (raw, w) in zip(refs, want) where CaptionTokenizer.tokenizedCaption(raw) != w {
                mismatches += 1
                XCTFail("ref of \(id): \(raw.debugDescription) → \(CaptionTokenizer.tokenizedCaption(raw).debugDescription), jar: \(w.debugDescription)")
            }
            let p = preds[id] ?? ""
            if let w = e.res[String(id)]?.first, CaptionTokenizer.tokenizedCaption(p) != w {
                mismatches += 1
                XCTFail("pred of \(id): \(p.debugDescription) → \(CaptionTokenizer.tokenizedCaption(p).debugDescription), jar: \(w.debugDescription)")
            }
        }
        XCTAssertEqual(mismatches, 0)
    }

    /// End to end from the raw files (Swift tokenizer + metrics) against pycocoevalcap.
    func testEndToEndMatchesPycocoevalcap() throws {
        let e = try expected()
        let anns = try CaptionEvaluation.loadAnnotations(evalFixtureURL("captions_annotations.json"))
        let preds = try CaptionEvaluation.loadPredictions(evalFixtureURL("captions_predictions.json"), annotations: anns)
        let r = try CaptionEvaluation.evaluate(annotations: anns, predictions: preds)
        let d = check(r, e)
        print("caption metrics end to end: max |diff| = \(d)")
        // Images are scored in the annotation file's order, restricted to predicted ones.
        XCTAssertEqual(r.perImage.map(\.imageID), e.order)
    }

    /// The same references in Karpathy's split format (as dataset_flickr30k.json lays them out:
    /// imgid, filename, split, sentences[].raw; one image in another split) score as pycocoevalcap
    /// scored the COCO file.
    func testKarpathySplitFileScoresAsTheCOCOFile() throws {
        let e = try expected()
        let coco = try XCTUnwrap(loadEvalJSON("captions_annotations.json") as? [String: Any])
        let annotations = try XCTUnwrap(coco["annotations"] as? [[String: Any]])
        var images = try XCTUnwrap(coco["images"] as? [[String: Any]]).map { image -> [String: Any] in
            let id = image["id"] as! Int
            let sentences = annotations.filter { $0["image_id"] as? Int == id }.map { ["raw": $0["caption"]!, "tokens": ["x"], "imgid": id] as [String: Any] }
            return ["imgid": id, "filename": image["file_name"]!, "split": "test", "sentences": sentences, "sentids": []]
        }
        images.append(["imgid": 999_999_999, "filename": "x.jpg", "split": "train", "sentences": [["raw": "A cat."]]])
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("karpathy-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: url) }
        try JSONSerialization.data(withJSONObject: ["images": images, "dataset": "flickr30k"]).write(to: url)
        let anns = try CaptionEvaluation.loadAnnotations(url)
        XCTAssertNil(anns.captions[999_999_999])
        XCTAssertEqual(anns.fileNames[24544], "000000024544.jpg")
        let preds = try CaptionEvaluation.loadPredictions(evalFixtureURL("captions_predictions.json"), annotations: anns)
        let r = try CaptionEvaluation.evaluate(annotations: anns, predictions: preds)
        _ = check(r, e)
        XCTAssertEqual(r.perImage.map(\.imageID), e.order)
        XCTAssertEqual(try CaptionEvaluation.loadAnnotations(url, split: "train").imageOrder, [999_999_999])
        XCTAssertThrowsError(try CaptionEvaluation.loadAnnotations(url, split: "val")) { error in
            XCTAssertEqual("\(error)", "\(url.path): at $.images: no images in split \"val\" (the file has test, train)")
        }
        XCTAssertThrowsError(try CaptionEvaluation.loadAnnotations(evalFixtureURL("captions_annotations.json"), split: "test")) { error in
            XCTAssertTrue("\(error)".contains("a COCO captions file has no splits"), "\(error)")
        }
    }

    /// Stress captions (contractions, hyphens, numbers, quotes, brackets, ellipses, unicode).
    func testTokenizerStressCases() throws {
        let cases = try XCTUnwrap(loadEvalJSON("tokenizer_cases.json") as? [[String: String]])
        var failed: [String] = []
        for c in cases {
            let input = c["input"] ?? "", want = c["expected"] ?? ""
            // pycocoevalcap replaces newlines by spaces before the jar sees them.
            let got = CaptionTokenizer.tokenizedCaption(input.replacingOccurrences(of: "\n", with: " "))
            if got != want { failed.append("\(input.debugDescription): swift \(got.debugDescription) jar \(want.debugDescription)") }
        }
        print("tokenizer stress cases: \(cases.count - failed.count)/\(cases.count) match")
        for f in failed { print("  mismatch: \(f)") }
        XCTAssertEqual(failed.count, 0, failed.joined(separator: "\n"))
    }

    /// Runs of periods, ellipses, dashes, quotes and brackets at the end, middle and start of a
    /// caption (scripts/reference/ptb_stress_reference.py: the jar itself, each caption followed
    /// by a capitalised one as in a COCO set). Every caption equals the jar's but the five rare
    /// lexer paths CaptionTokenizer's documentation lists, which must differ exactly there.
    func testPunctuationRunsTokenizeAsTheJar() throws {
        let cases = try XCTUnwrap(loadEvalJSON("ptb_stress.json") as? [[String: String]])
        XCTAssertGreaterThan(cases.count, 700)
        let known: Set<String> = ["A 3. . .5", "A 3,,5", "A \u{2019}red car", "A 3.-5", "A 3...-5"]
        var failed: [String] = [], differing: Set<String> = []
        for c in cases {
            let input = c["input"] ?? "", want = c["expected"] ?? ""
            let got = CaptionTokenizer.tokenizedCaption(input)
            if got != want {
                differing.insert(input)
                if !known.contains(input) { failed.append("\(input.debugDescription): swift \(got.debugDescription) jar \(want.debugDescription)") }
            }
        }
        print("punctuation stress cases: \(cases.count - differing.count)/\(cases.count) match")
        XCTAssertEqual(failed.count, 0, failed.joined(separator: "\n"))
        XCTAssertEqual(differing, known, "the documented differences")
    }
}
