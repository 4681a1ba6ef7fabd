import ArgumentParser
import Foundation
import KosmosData
import KosmosEval
import KosmosTokenizers

/// `kosmos data ...`: look at training data before training on it.
struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Inspect training data sets (JSONL text, COCO captions, WebDataset tar shards, interleaved JSONL), or write the passkey task's.",
        subcommands: [DataInspect.self, DataPasskey.self]
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
        if r.audioReferenced > 0 {
            print("audio clips referenced: \(r.audioReferenced)" + (noDecode ? "" : "  decoded: \(r.audioDecoded)"))
        }
        print("skip reasons: \(r.skips)")
        for e in r.examples { print("  " + e) }
    }
}

/// `kosmos data passkey`: training documents for the passkey task (`kosmos eval passkey`).
struct DataPasskey: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "passkey",
        abstract: "Write passkey-task documents as text JSONL ({\"text\": prompt + answer}) for `kosmos train`.",
        discussion: "Each document has a five-digit key at a random depth of filler text and ends with the question and its answer; lengths are drawn between --min-tokens and --max-tokens (counted with --tokenizer). Keys come from --seed; `kosmos eval passkey` draws its own from its seed."
    )

    @Option(help: "Output .jsonl file.")
    var out: String

    @Option(help: "SentencePiece .model or tokenizer.json that counts the tokens (the model's).")
    var tokenizer: String

    @Option(help: "Documents to write.")
    var documents = 1000

    @Option(name: .customLong("min-tokens"), help: "Shortest document, in tokens (about).")
    var minTokens = 128

    @Option(name: .customLong("max-tokens"), help: "Longest document, in tokens (about).")
    var maxTokens = 1024

    @Option(help: "Seed of the keys, depths and lengths.")
    var seed: UInt64 = 1

    func validate() throws {
        guard documents >= 1 else { throw ValidationError("--documents takes at least 1") }
        guard minTokens >= 1 && minTokens <= maxTokens else { throw ValidationError("--min-tokens must be at least 1 and at most --max-tokens") }
    }

    func run() throws {
        let tok = try TokenizerLoader.load(URL(fileURLWithPath: tokenizer))
        // Every filler sentence tokenizes alike (it starts with a space), so tokens grow linearly with them.
        let bare = tok.encode(PasskeyTask.document(key: 12345, fillers: 0, before: 0)).count
        let perFiller = Swift.max(1, (tok.encode(PasskeyTask.document(key: 12345, fillers: 10, before: 0)).count - bare) / 10)
        let draws = PasskeyTask.keys(count: 3 * documents, seed: seed)
        var lines = ""
        for i in 0..<documents {
            let key = draws[3 * i]
            let target = minTokens + draws[3 * i + 1] % (maxTokens - minTokens + 1)
            let fillers = Swift.max(0, (target - bare) / perFiller)
            let before = fillers == 0 ? 0 : draws[3 * i + 2] % (fillers + 1)
            let text = PasskeyTask.document(key: key, fillers: fillers, before: before)
            let data = try JSONSerialization.data(withJSONObject: ["text": text], options: [.withoutEscapingSlashes])
            lines += String(decoding: data, as: UTF8.self) + "\n"
        }
        try Data(lines.utf8).write(to: URL(fileURLWithPath: out))
        print("wrote \(documents) documents (about \(minTokens)–\(maxTokens) tokens, \(perFiller) per filler sentence) to \(out)")
    }
}
