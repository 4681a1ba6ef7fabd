import Foundation
import XCTest
import KosmosEval
import KosmosModels

/// `kosmos eval captions` on a Karpathy split file (Flickr30k's layout), zero- and few-shot: every
/// caption equals the library's generation on the documented prompt, and the scores are the
/// library's on those captions.
extension CLITests {
    func testEvalCaptionsFlickrSplitZeroAndFewShot() throws {
        let dir = Self.root.appendingPathComponent("flickr")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let sources = ["images/inputs/rgb8_224x224.png", "images/inputs/palette_63x41.png"]
        for i in 0..<4 {
            let target = dir.appendingPathComponent("\(1000 + i).jpg")
            try? FileManager.default.removeItem(at: target)
            try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent(sources[i % 2]), to: target)
        }
        let references = [["A red car on the road.", "a car"], ["Two dogs play.", "dogs in a park"], ["A man reads.", "a man with a paper"], ["Bread on a table.", "bread"]]
        let images = references.enumerated().map { i, refs in
            ["imgid": i, "filename": "\(1000 + i).jpg", "split": i == 3 ? "val" : "test",
             "sentences": refs.map { ["raw": $0, "tokens": [String]()] }] as [String: Any]
        }
        let file = dir.appendingPathComponent("dataset_flickr30k.json")
        try JSONSerialization.data(withJSONObject: ["images": images, "dataset": "flickr30k"]).write(to: file)
        let model = Self.harness.appendingPathComponent("model")
        let session = try ModelSession(directory: model, dtype: .float32)
        var options = GenerationOptions()
        options.numBeams = 2
        options.maxNewTokens = 4
        for shots in [0, 1] {
            let out = dir.appendingPathComponent("r\(shots).json")
            let run = try succeed(["eval", "captions", "--model", model.path, "--annotations", file.path, "--images", dir.path,
                                   "--beams", "2", "--max-tokens", "4", "--shots", "\(shots)", "--out", out.path])
            XCTAssertTrue(run.stdout.contains("images captioned and scored: 3"), run.stdout)
            let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: out)) as? [String: Any])
            let predictions = try XCTUnwrap(json["predictions"] as? [[String: Any]])
            XCTAssertEqual(predictions.map { $0["image_id"] as? Int }, [0, 1, 2])  // the test split only
            var random = PythonRandom(seed: 1234)
            var captions: [Int: String] = [:]
            for (i, p) in predictions.enumerated() {
                let demos = try fewShotIndices(count: 3, shots: shots, random: &random, isItem: { $0 == i })
                XCTAssertEqual(p["demonstrations"] as? [Int], demos)
                let examples = ["<image>An image of a red car on the road.\n", "<image>An image of two dogs play.\n", "<image>An image of a man reads.\n"]
                let text = demos.map { examples[$0] }.joined() + "<image>An image of"
                let files = (demos + [i]).map { dir.appendingPathComponent("\(1000 + $0).jpg") }
                let generated = session.processor.output(try session.model.generate(try session.input(text: text, imageFiles: files), options: options), grounding: false).text
                let first = String(generated.split(separator: "\n", omittingEmptySubsequences: false).first ?? "").trimmingCharacters(in: .whitespaces)
                let expected = ("An image of " + first).trimmingCharacters(in: .whitespaces)
                XCTAssertEqual(p["caption"] as? String, expected, "\(shots)-shot image \(i)")
                captions[i] = expected
            }
            let reference = try CaptionEvaluation.evaluate(annotations: try CaptionEvaluation.loadAnnotations(file), predictions: captions)
            let scores = try XCTUnwrap(json["scores"] as? [String: Any])
            let overall = try XCTUnwrap(scores["metrics"] as? [String: Double])
            XCTAssertEqual(try XCTUnwrap(overall["CIDEr"]), try XCTUnwrap(reference.scores["CIDEr"]), accuracy: 1e-12)
        }
    }
}
