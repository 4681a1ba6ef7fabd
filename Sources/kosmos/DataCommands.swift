import ArgumentParser
import Foundation
import KosmosData

/// `kosmos data ...`: look at training data before training on it.
struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Inspect training data sets (JSONL text, COCO captions, WebDataset tar shards, interleaved JSONL).",
        subcommands: [DataInspect.self]
    )
}

struct DataInspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Print a data set's detected format, counts, a few decoded samples and why records were skipped."
    )

    @Argument(help: "A .jsonl / .jsonl.gz, a COCO .json, a .tar shard, a folder of .tar shards, or synthetic[:N].")
    var path: String

    @Option(help: "Image folder for a COCO captions file (default: the JSON file's folder).")
    var images: String?

    @Option(help: "How many samples to print.")
    var samples: Int = 3

    @Flag(help: "Do not decode images (faster; unreadable images are then not detected).")
    var noDecode = false

    func validate() throws {
        guard samples >= 0 else { throw ValidationError("--samples must not be negative") }
    }

    func run() throws {
        let r = try DataInspection.run(path: path, imageDirectory: images, examples: samples, decodeImages: !noDecode)
        print("format: \(r.format.rawValue)")
        print("name: \(r.name)")
        print("records: \(r.records)  usable samples: \(r.usable)  skipped: \(r.skips.total)")
        let kinds = r.kinds.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.rawValue): \($0.value)" }
        if !kinds.isEmpty { print("kinds: " + kinds.joined(separator: ", ")) }
        print("images referenced: \(r.imagesReferenced)" + (noDecode ? "" : "  decoded: \(r.imagesDecoded)"))
        print("skip reasons: \(r.skips)")
        for e in r.examples { print("  " + e) }
    }
}
