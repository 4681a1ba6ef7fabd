import ArgumentParser
import Foundation
import KosmosEval
import KosmosModels
import KosmosEvalRuns

/// Runs a multiple-choice task with a progress line (items, elapsed, ETA) on stderr.
func runChoiceTaskReporting(_ spec: TaskRunSpec, scorer: ContinuationScorer) throws -> ChoiceTaskResult {
    let start = Date()
    FileHandle.standardError.write(Data("\(spec.task): \(spec.shots)-shot\n".utf8))
    return try runChoiceTask(spec, scorer: scorer, progress: { reportProgress($0, of: $1, since: start) })
}

/// `kosmos eval task`: one multiple-choice benchmark, scored as lm-evaluation-harness scores it.
struct EvalTask: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "task",
        abstract: "Score a multiple-choice language task (HellaSwag, PIQA, BoolQ, CB, COPA, StoryCloze, Winogrande) as lm-evaluation-harness does.",
        discussion: "Tasks and their files:\n" + ChoiceTask.all.map { "  \($0.name): \($0.dataDescription)" }.joined(separator: "\n")
    )

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "Task name (see below).")
    var task: String

    @Option(help: "The task's data file, in the schema its dataset is published in.")
    var data: String

    @Option(help: "Few-shot examples (no more than K are needed).")
    var shots = 0

    @Option(name: .customLong("fewshot-data"), help: "Where few-shot examples come from (the split the harness uses, e.g. the training file); default: the --data file without the item itself.")
    var fewshotData: String?

    @Option(help: "Score only the first N items.")
    var limit: Int?

    @Option(name: .customLong("batch-size"), help: "Continuations scored in one batched pass.")
    var batchSize = 8

    @Option(help: "Write the metrics and every item's log-likelihoods as JSON here.")
    var out: String?

    func run() throws {
        try reportingEvalErrors {
            _ = try ChoiceTask.named(task)  // an unknown task fails before the model loads
            let session = try modelOptions.session()
            let scorer = ContinuationScorer(model: session.model, processor: session.processor, batchSize: batchSize)
            let result = try runChoiceTaskReporting(TaskRunSpec(task: task, data: URL(fileURLWithPath: data),
                                                       fewshotData: fewshotData.map(URL.init(fileURLWithPath:)), shots: shots, limit: limit),
                                           scorer: scorer)
            print(markdownTable(result.rows), terminator: "")
            if let out { try writeJSON(result.json(), to: out) }
        }
    }
}

/// `kosmos eval suite`: several tasks from one JSON file into one table.
struct EvalSuite: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "suite",
        abstract: "Run several benchmarks (multiple-choice tasks, VQA, VizWiz, captions, classification, Raven) listed in a JSON file into one markdown table and one JSON.",
        discussion: """
        The suite file: {"tasks": [{"task": "hellaswag", "data": "hellaswag_val.jsonl", "shots": 0, "limit": 100, "fewshot_data": "..."},
        {"task": "vizwiz", "annotations": "val.json", "images": "val/", "shots": 2}, {"task": "classify", "images": "imagenet/val", "class_names": "LOC_synset_mapping.txt"}, ...]}
        (paths relative to the suite file). Keys of the multimodal entries are the options of the command of the same name in snake_case:
        vqa: questions, annotations, images, image_pattern, shots, limit, max_tokens; vizwiz: annotations, images, shots, limit, fewshot_data,
        fewshot_images, max_tokens; captions: annotations, images, split, shots, limit, fewshot_annotations, fewshot_split, fewshot_images,
        beams, max_tokens, prompt; classify: images, class_names, prompt, limit, batch_size; raven: data, answer, limit.
        """
    )

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "Suite JSON file.")
    var config: String

    @Option(name: .customLong("batch-size"), help: "Continuations scored in one batched pass (multiple-choice tasks).")
    var batchSize = 8

    @Option(help: "Write every task's result as JSON here.")
    var out: String?

    @Option(help: "Write the markdown table here too.")
    var markdown: String?

    func run() throws {
        try reportingEvalErrors {
            let entries = try SuiteEntry.load(URL(fileURLWithPath: config))
            let session = try modelOptions.session()
            let scorer = ContinuationScorer(model: session.model, processor: session.processor, batchSize: batchSize)
            var rows: [SuiteRow] = [], results: [[String: Any]] = []
            for entry in entries {
                let start = Date()
                FileHandle.standardError.write(Data("\(entry.task)\n".utf8))
                let (r, json) = try entry.run(session: session, scorer: scorer, progress: { reportProgress($0, of: $1, since: start) })
                rows += r
                results.append(json)
            }
            let table = markdownTable(rows)
            print(table, terminator: "")
            if let markdown {
                try table.write(toFile: markdown, atomically: true, encoding: .utf8)
                print("wrote \(markdown)")
            }
            if let out { try writeJSON(["model": modelOptions.model, "results": results], to: out) }
        }
    }
}
