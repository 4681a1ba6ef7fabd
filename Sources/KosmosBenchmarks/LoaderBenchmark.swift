import Foundation
import KosmosData
import KosmosTokenizers
import KosmosVision

/// Images per second through the whole loader path (`kosmos bench data --tokenizer`): image files
/// and captions written as a COCO captions dataset in a temporary directory, read by
/// COCOCaptionsDataset, decoded, preprocessed and tokenized by a PrefetchingLoader's workers.
public enum LoaderBenchmark {
    public static func run(images: [Data], passes: Int, workers: Int, tokenizer: Tokenizer,
                           preprocessor: CLIPPreprocessor = CLIPPreprocessor()) throws -> (images: Int, seconds: Double) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kosmos-loader-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var imageEntries: [[String: Any]] = [], annotations: [[String: Any]] = []
        for (i, data) in images.enumerated() {
            let name = "image\(i).jpg"
            try data.write(to: directory.appendingPathComponent(name))
            imageEntries.append(["id": i, "file_name": name])
            annotations.append(["image_id": i, "caption": "a synthetic picture number \(i)"])
        }
        let json = directory.appendingPathComponent("captions.json")
        try JSONSerialization.data(withJSONObject: ["images": imageEntries, "annotations": annotations]).write(to: json)
        let dataset = try COCOCaptionsDataset(url: json)
        let tokens = PackingTokens(tokenizer: tokenizer, image: tokenizer.vocabularySize, imageEnd: tokenizer.vocabularySize + 1,
                                   slot: 0, pad: 0, slotsPerImage: 64)
        let preparer = try SamplePreparer(tokenizer: tokenizer, tokens: tokens, maxLength: 512, preprocessor: preprocessor)
        let total = images.count * passes
        // Warm-up pass plus the timed passes, as epochs of the iterator.
        let iterator = try DatasetIterator(dataset: dataset, seed: 0, epochs: passes + 1)
        let loader = try PrefetchingLoader(iterator: iterator, preparer: preparer,
                                           capacity: 4 * workers, workers: workers)
        defer { loader.stop() }
        // One pass to warm up (page cache, thread start), then the timed passes.
        for _ in 0..<images.count { _ = loader.next() }
        let start = DispatchTime.now().uptimeNanoseconds
        var seen = 0
        while seen < total, loader.next() != nil { seen += 1 }
        return (seen, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
}
