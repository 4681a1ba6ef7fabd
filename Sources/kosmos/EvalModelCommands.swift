import ArgumentParser
import Foundation
import KosmosData
import KosmosEval
import KosmosModels
import KosmosTensor

/// `kosmos eval captions`: caption the images of a COCO annotation file with a model (the paper's
/// "An image of" prompt, beam search) and score the captions as pycocoevalcap does.
struct EvalCaptions: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "captions",
        abstract: "Caption a COCO image set with a Kosmos-1 or Kosmos-2 model and score BLEU, ROUGE-L, CIDEr-D."
    )

    @Option(help: "Kosmos-1 or Kosmos-2 model directory.")
    var model: String

    @Option(help: "COCO captions annotation JSON (images with file_name, annotations).")
    var annotations: String

    @Option(help: "Folder holding the images' file_name files.")
    var images: String

    @Option(help: "Caption only the first N images.")
    var limit: Int?

    @Option(help: "Beams.")
    var beams = 5

    @Option(name: .customLong("max-tokens"), help: "Most new tokens per caption.")
    var maxTokens = 30

    @Option(help: "Prompt.")
    var prompt = "An image of"

    @Option(help: "Tokenizer file (default: the one in the model directory).")
    var tokenizer: String?

    @Option(help: "Write predictions and scores as JSON here.")
    var out: String?

    func run() throws {
        let directory = URL(fileURLWithPath: model)
        let anns = try CaptionEvaluation.loadAnnotations(URL(fileURLWithPath: annotations))
        let ids = Array(anns.imageOrder.filter { anns.captions[$0] != nil }.prefix(limit ?? Int.max))
        guard !ids.isEmpty else { throw ValidationError("no annotated images to caption") }
        var options = GenerationOptions()
        options.numBeams = beams
        options.maxNewTokens = maxTokens
        let (_, type, _) = try ModelDirectory.configuration(in: directory)
        let kosmos2 = type == "kosmos-2" ? try Kosmos2Session(directory: directory, tokenizer: tokenizer) : nil
        let kosmos1 = type == "kosmos-2" ? nil : try KosmosSession(directory: directory, tokenizer: tokenizer)
        var predictions: [Int: String] = [:]
        let start = Date()
        for (i, id) in ids.enumerated() {
            guard let file = anns.fileNames[id] else { throw ValidationError("image \(id) has no file_name in \(annotations)") }
            let path = URL(fileURLWithPath: images).appendingPathComponent(file).path
            var caption = ""
            if let kosmos2 {
                let eos = kosmos2.model.configuration.text.eosTokenId
                let generated = try kosmos2.generate(image: path, prompt: prompt, options: options).filter { $0 != eos }
                caption = Grounding.postProcess(kosmos2.tokenizer.decode(generated)).text
            } else if let kosmos1 {
                let eos = kosmos1.model.configuration.eosTokenId
                let generated = try kosmos1.model.generate(try kosmos1.sequence(prompt: "<image>" + prompt, images: [path]), options: options)
                caption = kosmos1.tokenizer.decode(generated.filter { $0 != eos })
            }
            predictions[id] = (prompt + " " + caption.trimmingCharacters(in: .whitespaces)).trimmingCharacters(in: .whitespaces)
            let elapsed = Date().timeIntervalSince(start)
            let eta = elapsed / Double(i + 1) * Double(ids.count - i - 1)
            FileHandle.standardError.write(Data(String(format: "\r[%d/%d] %.1f s elapsed, ETA %.0f s ", i + 1, ids.count, elapsed, eta).utf8))
        }
        FileHandle.standardError.write(Data("\n".utf8))
        let result = try CaptionEvaluation.evaluate(annotations: anns, predictions: predictions)
        print("images captioned and scored: \(result.perImage.count)")
        for name in CaptionEvaluation.metricNames {
            print(name.padding(toLength: 10, withPad: " ", startingAt: 0) + String(format: "%.4f", result.scores[name] ?? 0))
        }
        if let out {
            let scores = try JSONSerialization.jsonObject(with: try result.jsonData())
            let list = ids.map { ["image_id": $0, "caption": predictions[$0] ?? ""] as [String: Any] }
            let data = try JSONSerialization.data(withJSONObject: ["predictions": list, "scores": scores], options: [.prettyPrinted, .sortedKeys])
            try data.write(to: URL(fileURLWithPath: out))
            print("wrote \(out)")
        }
    }
}

/// `kosmos eval perplexity`: the model's perplexity on a text JSONL file.
struct EvalPerplexity: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "perplexity",
        abstract: "Perplexity of a Kosmos-1 model on a text JSONL file ({\"text\": ...} per line)."
    )

    @Option(help: "Kosmos-1 model directory.")
    var model: String

    @Option(help: "Text JSONL file (plain or .gz).")
    var data: String

    @Option(help: "Use only the first N texts.")
    var limit: Int?

    @Option(name: .customLong("max-length"), help: "Truncate each text to this many tokens (default: the model's context).")
    var maxLength: Int?

    @Option(help: "Tokenizer file (default: the one in the model directory).")
    var tokenizer: String?

    func run() throws {
        let session = try KosmosSession(directory: URL(fileURLWithPath: model), tokenizer: tokenizer)
        let c = session.model.configuration
        let length = Swift.min(maxLength ?? c.decoder.maxTargetPositions, c.decoder.maxTargetPositions)
        let iterator = try DatasetIterator(dataset: try TextJSONLDataset(url: URL(fileURLWithPath: data)), shuffle: false)
        var sequences: [[Int]] = []
        while sequences.count < (limit ?? Int.max), let sample = iterator.next() {
            var ids = (c.bosTokenId.map { [$0] } ?? []) + session.tokenizer.encode(sample.text) + (c.eosTokenId.map { [$0] } ?? [])
            if ids.count > length { ids = Array(ids.prefix(length)) }
            sequences.append(ids)
        }
        let (perplexity, tokens) = try session.model.perplexity(of: sequences)
        print(String(format: "texts: %d  predicted tokens: %d  perplexity: %.4f", sequences.count, tokens, perplexity))
        if iterator.skips.total > 0 { print("skipped: \(iterator.skips)") }
    }
}
