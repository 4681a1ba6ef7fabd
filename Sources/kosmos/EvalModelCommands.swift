import ArgumentParser
import Foundation
import KosmosData
import KosmosEval
import KosmosEvalRuns
import KosmosModels
import KosmosPlot
import KosmosTensor

/// `kosmos eval captions`: caption the images of a COCO annotation file with a model (the paper's
/// "An image of" prompt, beam search) and score the captions as pycocoevalcap does.
struct EvalCaptions: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "captions",
        abstract: "Caption a COCO image set with a Kosmos-1 or Kosmos-2 model and score BLEU, ROUGE-L, CIDEr-D."
    )

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "COCO captions annotation JSON (images with file_name, annotations), or Karpathy's split file (dataset_flickr30k.json, dataset_coco.json).")
    var annotations: String

    @Option(help: "The split of a Karpathy file (default: test).")
    var split: String?

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

    @Option(help: "Captioned examples before each image (interleaved: image, prompt, its first reference), drawn as lm-evaluation-harness draws few-shot examples (Random(1234)); Kosmos-1.")
    var shots = 0

    @Option(name: .customLong("fewshot-annotations"), help: "Draw the examples from this file (the paper draws from the training set) instead of the other images.")
    var fewshotAnnotations: String?

    @Option(name: .customLong("fewshot-split"), help: "The split of a Karpathy --fewshot-annotations file (train takes restval too).")
    var fewshotSplit = "train"

    @Option(name: .customLong("fewshot-images"), help: "Folder of the --fewshot-annotations images (default: --images).")
    var fewshotImages: String?

    @Option(help: "Write predictions and scores as JSON here.")
    var out: String?

    func run() throws {
        try reportingEvalErrors {
            let anns = try CaptionEvaluation.loadAnnotations(URL(fileURLWithPath: annotations), split: split)
            var run = CaptionRun(annotations: anns, images: URL(fileURLWithPath: images))
            run.limit = limit
            run.prompt = prompt
            run.beams = beams
            run.maxTokens = maxTokens
            run.shots = shots
            if let fewshotAnnotations {
                run.pool = (try CaptionEvaluation.loadAnnotations(URL(fileURLWithPath: fewshotAnnotations), split: fewshotSplit),
                            URL(fileURLWithPath: fewshotImages ?? images))
            }
            let start = Date()
            let outputs = try captionImages(session: try modelOptions.session(), run, progress: { reportProgress($0, of: $1, since: start) })
            let result = try CaptionEvaluation.evaluate(annotations: anns, predictions: Dictionary(outputs.map { ($0.imageID, $0.caption) }, uniquingKeysWith: { a, _ in a }))
            print("images captioned and scored: \(result.perImage.count)")
            for name in CaptionEvaluation.metricNames {
                print(name.padding(toLength: 10, withPad: " ", startingAt: 0) + String(format: "%.4f", result.scores[name] ?? 0))
            }
            if let out {
                let scores = try JSONSerialization.jsonObject(with: try result.jsonData())
                let list = outputs.map { ["image_id": $0.imageID, "caption": $0.caption, "demonstrations": $0.demonstrations] as [String: Any] }
                let data = try JSONSerialization.data(withJSONObject: ["predictions": list, "scores": scores], options: [.prettyPrinted, .sortedKeys])
                try data.write(to: URL(fileURLWithPath: out))
                print("wrote \(out)")
            }
        }
    }
}

/// `kosmos eval perplexity`: the model's perplexity on a text JSONL file.
struct EvalPerplexity: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "perplexity",
        abstract: "Perplexity of a Kosmos-1 model on a text JSONL file ({\"text\": ...} per line)."
    )

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "Text JSONL file (plain or .gz).")
    var data: String

    @Option(help: "Use only the first N texts.")
    var limit: Int?

    @Option(name: .customLong("max-length"), help: "Truncate each text to this many tokens (default: the model's context).")
    var maxLength: Int?

    @Option(help: "Write the result as JSON here.")
    var out: String?

    func run() throws {
        let session = try KosmosSession(directory: modelOptions.directory, tokenizer: modelOptions.tokenizer,
                                        dtype: try modelOptions.dtype(), imageBackend: try modelOptions.backend())
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
        if let out {
            try writeJSON(["texts": sequences.count, "tokens": tokens, "perplexity": perplexity,
                           "skipped": iterator.skips.total], to: out)
        }
    }
}

/// Writes a JSON object (keys sorted) and says so.
func writeJSON(_ object: [String: Any], to path: String) throws {
    try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]).write(to: URL(fileURLWithPath: path))
    print("wrote \(path)")
}

/// Prints "[i/n] elapsed, ETA" on one terminal line.
func reportProgress(_ done: Int, of total: Int, since start: Date) {
    let elapsed = Date().timeIntervalSince(start)
    let eta = elapsed / Double(done) * Double(total - done)
    FileHandle.standardError.write(Data(String(format: "\r[%d/%d] %.1f s elapsed, ETA %.0f s ", done, total, elapsed, eta).utf8))
    if done == total { FileHandle.standardError.write(Data("\n".utf8)) }
}

/// `kosmos eval vqa`: answer VQA v2 questions with a Kosmos-1 model ("Question: {q} Answer:",
/// greedy, to EOS or a newline) and score them as the official evaluation does.
struct EvalVQA: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vqa",
        abstract: "Answer VQA v2 questions with a Kosmos-1 or Kosmos-2 model and score VQA accuracy."
    )

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "VQA v2 questions JSON.")
    var questions: String

    @Option(help: "VQA v2 annotations JSON.")
    var annotations: String

    @Option(help: "Folder of the images.")
    var images: String

    @Option(name: .customLong("image-pattern"), help: "Image file name from the image id (printf style).")
    var imagePattern = "COCO_val2014_%012d.jpg"

    @Option(help: "Answer only the first N questions.")
    var limit: Int?

    @Option(name: .customLong("max-tokens"), help: "Most tokens per answer.")
    var maxTokens = 10

    @Option(help: "Solved examples before each question (interleaved: image, question, answer), drawn from the other questions as lm-evaluation-harness draws few-shot examples (Random(1234)); Kosmos-1 (several images a prompt).")
    var shots = 0

    @Option(help: "Write predictions and scores as JSON here.")
    var out: String?

    func run() throws {
        try reportingEvalErrors {
            let anns = try VQAEvaluation.loadAnnotations(URL(fileURLWithPath: annotations))
            let questionList = try VQAEvaluation.loadQuestionList(URL(fileURLWithPath: questions)).filter { anns[$0.questionID] != nil }
            let pool = VisualQuestion.vqa(questions: questionList, annotations: anns, folder: URL(fileURLWithPath: images), pattern: imagePattern)
            let start = Date()
            let answered = try answerVisualQuestions(session: try modelOptions.session(), questions: Array(pool.prefix(limit ?? Int.max)),
                                                     pool: pool, poolIsTheQuestions: true, shots: shots, maxTokens: maxTokens,
                                                     progress: { reportProgress($0, of: $1, since: start) })
            let predictions = zip(questionList, answered).map { ($0.questionID, $1.answer) }
            let demonstrations = answered.map { $0.demonstrations.map { questionList[$0].questionID } }
            let result = try VQAEvaluation.evaluate(annotations: anns, predictions: predictions)
            print("questions answered and scored: \(result.perQuestion.count)")
            print(String(format: "overall accuracy: %.2f", VQAEvaluation.reported(result.overall)))
            for k in result.perAnswerType.keys.sorted() {
                print("  " + k.padding(toLength: 20, withPad: " ", startingAt: 0) + String(format: "%.2f", VQAEvaluation.reported(result.perAnswerType[k] ?? 0)))
            }
            if let out {
                let scores = try JSONSerialization.jsonObject(with: try result.jsonData())
                let answers = zip(predictions, demonstrations).map { p, d in ["question_id": p.0, "answer": p.1, "demonstrations": d] as [String: Any] }
                try JSONSerialization.data(withJSONObject: ["predictions": answers, "scores": scores], options: [.prettyPrinted, .sortedKeys])
                    .write(to: URL(fileURLWithPath: out))
                print("wrote \(out)")
            }
        }
    }
}

/// `kosmos eval classify`: zero-shot classification by ranking "The photo of the {class}" by the
/// model's likelihood of the class name after the image and the prompt (the Kosmos-1 paper's setup).
struct EvalClassify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "classify",
        abstract: "Zero-shot image classification with a Kosmos-1 or Kosmos-2 model: top-1 and top-5 accuracy.",
        discussion: "IMAGES holds one folder per class with the images inside. The class name is the folder name with _ as spaces, without a leading \"NNN.\" (CUB-200-2011's folders), or the name --class-names gives the folder (ImageNet's WordNet-id folders)."
    )

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "Folder with one sub-folder of images per class.")
    var images: String

    @Option(help: "Prompt before the class name.")
    var prompt = "The photo of the"

    @Option(name: .customLong("class-names"), help: "Names for the class folders, one \"folder name, synonyms\" per line (ImageNet's LOC_synset_mapping.txt); the first name is used.")
    var classNames: String?

    @Option(name: .customLong("batch-size"), help: "Class names scored in one batched pass after the image's prefill.")
    var batchSize = 64

    @Option(help: "Classify only the first N images.")
    var limit: Int?

    @Option(help: "Write the accuracies and per-image predictions as JSON here.")
    var out: String?

    func run() throws {
        try reportingEvalErrors {
            let folders = try classFolders(URL(fileURLWithPath: images))
            let names = try ClassNames.names(folders: folders.classes, mapping: try classNames.map { try ClassNames.loadMapping(URL(fileURLWithPath: $0)) },
                                             mappingPath: classNames ?? "--class-names")
            let items = Array(folders.items.prefix(limit ?? Int.max))
            let start = Date()
            let result = try classifyImages(session: try modelOptions.session(), items: items, names: names, prompt: prompt, batchSize: batchSize,
                                            progress: { reportProgress($0, of: $1, since: start) })
            print(String(format: "images: %d  classes: %d  top-1: %.2f%%  top-5: %.2f%%  (%.3f images/s)", result.images.count, names.count,
                         100 * result.top1, 100 * result.top5, result.imagesPerSecond))
            if let out { try writeJSON(result.json(), to: out) }
        }
    }
}

/// `kosmos eval passkey`: a number hidden at a depth of filler text; does the model find it at
/// each length (docs/long-context.md)?
struct EvalPasskey: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "passkey",
        abstract: "Passkey retrieval by prompt length and depth: accuracy as a table, JSON and an SVG heat map.",
        discussion: "Each prompt is the longest of at most each --lengths tokens with a five-digit key after a fraction of the filler (--depths evenly from 0 to 1), then 'What is the pass key? The pass key is'; greedy, --max-tokens new tokens; right when the first number generated is the key. How far a model's positions carry is a result, not a pass mark."
    )

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "Prompt lengths in tokens, comma-separated.")
    var lengths = "1024,4096,16384,40960"

    @Option(help: "Depths per length, evenly from 0 (right after the introduction) to 1 (right before the question).")
    var depths = 10

    @Option(help: "Keys (trials) per length and depth.")
    var trials = 1

    @Option(help: "Seed of the keys.")
    var seed: UInt64 = 0

    @Option(name: .customLong("max-tokens"), help: "New tokens per answer.")
    var maxTokens = 8

    @Option(name: .customLong("prefill-chunk"), help: "Prompt positions per prefill chunk.")
    var prefillChunk = PromptPrefill.defaultChunkSize

    @Option(help: "Write the results as JSON here.")
    var json: String?

    @Option(help: "Write an SVG heat map (length × depth) here.")
    var svg: String?

    var lengthValues: [Int] { lengths.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }

    func validate() throws {
        guard !lengthValues.isEmpty, lengthValues.count == lengths.split(separator: ",").count, lengthValues.allSatisfy({ $0 >= 1 }) else {
            throw ValidationError("--lengths takes token counts of at least 1, comma-separated, e.g. 1024,4096,16384")
        }
        guard depths >= 1 && depths <= 100 else { throw ValidationError("--depths takes 1 to 100") }
        guard trials >= 1 && trials <= 1000 else { throw ValidationError("--trials takes 1 to 1000") }
        guard maxTokens >= 1 && maxTokens <= 64 else { throw ValidationError("--max-tokens takes 1 to 64") }
        guard prefillChunk >= 1 else { throw ValidationError("--prefill-chunk \(prefillChunk): at least 1 position") }
    }

    func run() throws {
        let session = try modelOptions.session()
        let context = session.model.contextLength
        if let longest = lengthValues.max(), longest + maxTokens > context {
            throw CommandError("--lengths \(longest) with --max-tokens \(maxTokens) needs \(longest + maxTokens) positions; the model has \(context). Use shorter lengths (or a model with more max_target_positions)")
        }
        var options = GenerationOptions()
        options.maxNewTokens = maxTokens
        options.prefillChunkSize = prefillChunk
        let depthValues = PasskeyTask.depths(depths)
        let keys = PasskeyTask.keys(count: lengthValues.count * depthValues.count * trials, seed: seed)
        let total = keys.count
        var accuracy: [[Double]] = [], promptTokens: [Int] = []
        var done = 0
        let start = Date()
        // Counted as the model reads the prompt (the processor's ids, BOS included).
        let encode = { (text: String) in (try? session.input(text: text, imageFiles: []).tokens.count) ?? Int.max }
        for length in lengthValues {
            var row: [Double] = []
            var longest = 0
            for depth in depthValues {
                var right = 0
                for _ in 0..<trials {
                    let key = keys[done]
                    guard let prompt = PasskeyTask.prompt(key: key, depth: depth, tokens: length, count: encode) else {
                        throw CommandError("--lengths \(length): the passkey prompt without filler is already longer; use a length of at least a few hundred tokens")
                    }
                    let input = try session.input(text: prompt.text, imageFiles: [])
                    longest = Swift.max(longest, input.tokens.count)
                    let ids = try session.model.generate(input, options: options)
                    if PasskeyTask.isCorrect(session.processor.output(ids, grounding: false).text, key: key) { right += 1 }
                    done += 1
                    reportProgress(done, of: total, since: start)
                }
                row.append(Double(right) / Double(trials))
            }
            accuracy.append(row)
            promptTokens.append(longest)
        }
        let report = PasskeyReport(model: modelOptions.directory.lastPathComponent, lengths: lengthValues, promptTokens: promptTokens,
                                   depths: depthValues, trials: trials, accuracy: accuracy, maxPositions: context)
        print(report.table)
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: json))
            print("wrote \(json)")
        }
        if let svg {
            let map = HeatMap.svg(title: "Passkey retrieval: \(report.model) (\(trials) trial\(trials == 1 ? "" : "s") per cell)",
                                  rowTitle: "prompt tokens", columnTitle: "depth of the key in the filler",
                                  rows: lengthValues.map(String.init), columns: depthValues.map { String(format: "%.0f%%", 100 * $0) },
                                  values: accuracy.map { $0.map(Optional.some) })
            try Data(map.utf8).write(to: URL(fileURLWithPath: svg))
            print("wrote \(svg)")
        }
    }
}
