import ArgumentParser
import Foundation
import KosmosBenchmarks
import KosmosTokenizers

// Thin CLI over KosmosTokenizers: all tokenisation, id parsing and timing live in the library.

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Encode text to token ids with a SentencePiece .model or a tokenizer.json.")

    @Option(help: "A SentencePiece .model file or a Hugging Face tokenizer.json.")
    var tokenizer: String

    @Option(help: "For .model files: plain, kosmos-x (adds <image>, </image>) or kosmos-2 (XLM-R ids + grounding tokens).")
    var layout: String = "plain"

    @Flag(help: "Print only the ids, not the pieces.")
    var idsOnly = false

    @Flag(help: "Add BOS/EOS (or the tokenizer.json post-processor's tokens).")
    var addSpecialTokens = false

    @Argument(help: "The text to encode.")
    var text: String

    func run() throws {
        guard let layout = TokenizerLayout(rawValue: layout) else {
            throw ValidationError("--layout must be one of \(TokenizerLayout.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let tok = try TokenizerLoader.load(URL(fileURLWithPath: tokenizer), layout: layout)
        let ids: [Int]
        if let hf = tok as? HFTokenizer {
            ids = hf.encode(text, addSpecialTokens: addSpecialTokens)
        } else {
            ids = tok.encode(text, options: EncodeOptions(addBOS: addSpecialTokens, addEOS: addSpecialTokens))
        }
        let json: Any = idsOnly ? ids : ids.map { ["id": $0, "piece": tok.token(of: $0) ?? ""] as [String: Any] }
        let data = try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys, .withoutEscapingSlashes])
        print(String(decoding: data, as: UTF8.self))
    }
}

struct Detokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decode a JSON array of token ids back to text.")

    @Option(help: "A SentencePiece .model file or a Hugging Face tokenizer.json.")
    var tokenizer: String

    @Option(help: "For .model files: plain, kosmos-x or kosmos-2 (must match how the ids were made).")
    var layout: String = "plain"

    @Argument(help: "Token ids as a JSON array, e.g. '[8774, 1]'.")
    var ids: String

    func run() throws {
        guard let layout = TokenizerLayout(rawValue: layout) else {
            throw ValidationError("--layout must be one of \(TokenizerLayout.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let tok = try TokenizerLoader.load(URL(fileURLWithPath: tokenizer), layout: layout)
        print(try tok.decodeChecked(try TokenizerLoader.parseIds(json: ids)))
    }
}

struct TokenizeBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Encoding throughput (MB/s) on a text file, line by line; compare with scripts/reference/tokenizer_bench.py.")

    @Option(help: "A SentencePiece .model file or a Hugging Face tokenizer.json.")
    var tokenizer: String

    @Option(help: "Timed passes over the file (best is reported).")
    var repeats: Int = 3

    @Option(help: "Encoding threads (1 = single-threaded).")
    var threads: Int = 1

    @Argument(help: "A UTF-8 text file.")
    var file: String

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        let tok = try TokenizerLoader.load(URL(fileURLWithPath: tokenizer))
        let r = try TokenizerBenchmark.run(tokenizer: tok, file: URL(fileURLWithPath: file), repeats: repeats, threads: threads)
        print(String(format: "%@: %.2f MB/s (best of %d; median %.3f s), %d bytes, %d lines, %d tokens, %d thread(s)",
                     (tokenizer as NSString).lastPathComponent, r.megabytesPerSecond, repeats, r.medianSeconds,
                     r.bytes, r.lines, r.tokens, r.threads))
    }
}
