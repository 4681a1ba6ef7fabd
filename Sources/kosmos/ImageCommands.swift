import ArgumentParser
import Foundation
import KosmosBenchmarks
import KosmosData
import KosmosTokenizers
import KosmosVision

/// `kosmos bench data`: images per second for JPEG decode + CLIP preprocessing (the data loader's work).
struct DataBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Images/s for JPEG decode + CLIP preprocessing (resize 224, crop, normalise) on N threads."
    )

    @Option(help: "Worker threads.")
    var threads: Int = 2

    @Option(help: "Distinct synthetic 640x480 JPEGs to generate (ignored with --dir).")
    var images: Int = 32

    @Option(help: "Passes over the image set (after one warm-up pass).")
    var repeats: Int = 8

    @Option(help: "Benchmark the .jpg/.jpeg/.png files in this directory instead of synthetic images.")
    var dir: String?

    @Option(help: "A preprocessor_config.json to use instead of CLIP's defaults.")
    var config: String?

    @OptionGroup var backendOption: ImageBackendOption

    @Option(help: "A tokenizer file: also measure the full loader (COCO dataset → decode, preprocess, tokenize on the loader's workers).")
    var tokenizer: String?

    func validate() throws {
        guard threads >= 1, threads <= 256 else { throw ValidationError("--threads must be between 1 and 256") }
        guard images >= 1 else { throw ValidationError("--images must be at least 1") }
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
    }

    func run() throws {
        var preprocessor = CLIPPreprocessor()
        if let config { preprocessor.config = try CLIPPreprocessorConfig(contentsOf: URL(fileURLWithPath: config)) }
        if let backend = try backendOption.backend() { preprocessor.config.backend = backend }
        let data: [Data]
        let label: String
        if let dir {
            let url = URL(fileURLWithPath: dir)
            let names = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
                .filter { ["jpg", "jpeg", "png"].contains(($0 as NSString).pathExtension.lowercased()) }
            guard !names.isEmpty else { throw ValidationError("no .jpg/.jpeg/.png files in \(dir)") }
            data = try names.map { try Data(contentsOf: url.appendingPathComponent($0)) }
            label = "\(names.count) files from \(dir)"
        } else {
            data = try VisionBenchmark.makeJPEGs(count: images)
            label = "\(images) synthetic 640x480 JPEGs (quality 90)"
        }
        let bytes = data.reduce(0) { $0 + $1.count }
        print("decode + CLIP preprocess (\(preprocessor.config.backend.rawValue) backend): \(label), \(bytes / max(1, data.count)) bytes each on average")
        _ = try VisionBenchmark.run(images: data, repeats: 1, threads: threads, preprocessor: preprocessor)
        let r = try VisionBenchmark.run(images: data, repeats: repeats, threads: threads, preprocessor: preprocessor)
        print(String(format: "threads: %d  images: %d  seconds: %.3f  images/s: %.1f",
                     r.threads, r.images, r.seconds, r.imagesPerSecond))
        let dec = try VisionBenchmark.run(images: data, repeats: repeats, threads: threads, preprocessor: preprocessor,
                                          decodeOnly: true)
        print(String(format: "threads: %d  decode only: %.1f images/s", dec.threads, dec.imagesPerSecond))
        if let tokenizer {
            let loaded = try LoaderBenchmark.run(images: data, passes: repeats, workers: threads,
                                                 tokenizer: try TokenizerLoader.load(URL(fileURLWithPath: tokenizer)),
                                                 preprocessor: preprocessor)
            print(String(format: "loader, %d workers: %d images in %.3f s: %.1f images/s",
                         threads, loaded.images, loaded.seconds, Double(loaded.images) / loaded.seconds))
        }
        if threads > 1 {
            let one = try VisionBenchmark.run(images: data, repeats: max(1, repeats / 2), threads: 1, preprocessor: preprocessor)
            print(String(format: "threads: 1  images: %d  seconds: %.3f  images/s: %.1f",
                         one.images, one.seconds, one.imagesPerSecond))
        }
    }
}
