import Foundation
import XCTest
import KosmosEval
import KosmosModels

/// `kosmos eval classify`: ImageNet-style folders named through a synset mapping and CUB-style
/// numbered folders; each image's ranking equals the library's log-likelihoods of the names.
extension CLITests {
    func testEvalClassifyNamesFoldersAndRanksByLikelihood() throws {
        let model = Self.harness.appendingPathComponent("model")
        let session = try ModelSession(directory: model, dtype: .float32)
        let sources = ["images/inputs/rgb8_224x224.png", "images/inputs/palette_63x41.png"]
        for (layout, folders, names) in [("imagenet", ["n01440764", "n01443537", "n01484850"], ["tench", "goldfish", "great white shark"]),
                                         ("cub", ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross"],
                                          ["Black footed Albatross", "Laysan Albatross", "Sooty Albatross"])] {
            let dir = Self.root.appendingPathComponent("classify-\(layout)")
            try? FileManager.default.removeItem(at: dir)
            for (i, folder) in folders.enumerated() {
                let sub = dir.appendingPathComponent("images/\(folder)")
                try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: true)
                try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent(sources[i % 2]), to: sub.appendingPathComponent("a.png"))
            }
            var arguments = ["eval", "classify", "--model", model.path, "--images", dir.appendingPathComponent("images").path,
                             "--batch-size", "2", "--out", dir.appendingPathComponent("r.json").path]
            if layout == "imagenet" {
                let mapping = dir.appendingPathComponent("LOC_synset_mapping.txt")
                try "n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\nn01484850 great white shark, white shark, man-eater\n"
                    .write(to: mapping, atomically: true, encoding: .utf8)
                arguments += ["--class-names", mapping.path]
            }
            let run = try succeed(arguments)
            XCTAssertTrue(run.stdout.contains("images: 3  classes: 3"), run.stdout)
            let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("r.json"))) as? [String: Any])
            let predictions = try XCTUnwrap(json["predictions"] as? [[String: Any]])
            let promptTokens = session.tokenizer.encode("The photo of the")
            let continuations = names.map { Array(session.tokenizer.encode("The photo of the " + $0).dropFirst(promptTokens.count)) }
            var right = 0
            for (i, p) in predictions.enumerated() {
                XCTAssertEqual(p["label"] as? String, names[i])
                let input = try session.input(text: "<image>The photo of the", imageFiles: [dir.appendingPathComponent("images/\(folders[i])/a.png")])
                let scores = try session.model.logLikelihoods(of: continuations, after: input, batchSize: 1)
                let ranking = scores.indices.sorted { scores[$0] > scores[$1] }
                XCTAssertEqual(p["top5"] as? [String], ranking.map { names[$0] }, "\(layout) image \(i)")
                if ranking[0] == i { right += 1 }
            }
            XCTAssertEqual(json["top1"] as? Double, Double(right) / 3)
        }
        let mapping = Self.root.appendingPathComponent("classify-imagenet/LOC_synset_mapping.txt")
        try "n01440764 tench\n".write(to: mapping, atomically: true, encoding: .utf8)
        let missing = try kosmos(["eval", "classify", "--model", model.path, "--images", Self.root.appendingPathComponent("classify-imagenet/images").path,
                                  "--class-names", mapping.path])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("LOC_synset_mapping.txt: at n01443537: no name for this class folder"), missing.stderr)
    }
}
