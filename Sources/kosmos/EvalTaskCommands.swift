import ArgumentParser
import Foundation
import KosmosEval
import KosmosModels

/// One task run: its files, shots and limit (a `kosmos eval task` command line, or an entry of a
/// suite file).
struct TaskRunSpec {
    var task: String
    var data: URL
    var fewshotData: URL?
    var shots: Int
    var limit: Int?
}

/// Runs a multiple-choice task with a model through the harness-equivalent engine, with a
/// progress line (items, elapsed, ETA) on stderr.
func runChoiceTask(_ spec: TaskRunSpec, scorer: ContinuationScorer) throws -> ChoiceTaskResult {
    let task = try ChoiceTask.named(spec.task)
    let documents = try task.load(spec.data)
    let pool = try spec.fewshotData.map(task.load)
    let evaluation = try ChoiceEvaluation(task: task, documents: documents, fewshotPool: pool, shots: spec.shots)
    if let limit = spec.limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
    let start = Date()
    FileHandle.standardError.write(Data("\(task.name): \(Swift.min(spec.limit ?? documents.count, documents.count)) items, \(spec.shots)-shot\n".utf8))
    return try evaluation.run(limit: spec.limit, score: { requests in
        try scorer.score(requests).map { ChoiceScore(logLikelihood: $0.logLikelihood, isGreedy: $0.isGreedy) }
    }, progress: { done, total in reportProgress(done, of: total, since: start) })
}

/// The results as a markdown table: a row per task and metric, with the harness's stderr.
func markdownTable(_ results: [ChoiceTaskResult]) -> String {
    var lines = ["| Task | Shots | Metric | Value | ± Stderr | Items |", "|---|---:|---|---:|---:|---:|"]
    for r in results {
        for m in r.metrics {
            let stderr = r.standardError(m).map { String(format: "%.4f", $0) } ?? "N/A"
            lines.append("| \(r.task) | \(r.shots) | \(m.rawValue) | \(String(format: "%.4f", r.value(m))) | \(stderr) | \(r.items.count) |")
        }
    }
    return lines.joined(separator: "\n") + "\n"
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
            let result = try runChoiceTask(TaskRunSpec(task: task, data: URL(fileURLWithPath: data),
                                                       fewshotData: fewshotData.map(URL.init(fileURLWithPath:)), shots: shots, limit: limit),
                                           scorer: scorer)
            print(markdownTable([result]), terminator: "")
            if let out { try writeJSON(result.json(), to: out) }
        }
    }
}

/// `kosmos eval suite`: several tasks from one JSON file into one table.
struct EvalSuite: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "suite",
        abstract: "Run several multiple-choice tasks listed in a JSON file into one markdown table and one JSON.",
        discussion: """
        The suite file: {"tasks": [{"task": "hellaswag", "data": "hellaswag_val.jsonl", "shots": 0, "limit": 100, "fewshot_data": "..."}, ...]}
        (paths relative to the suite file; shots, limit and fewshot_data optional).
        """
    )

    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "Suite JSON file.")
    var config: String

    @Option(name: .customLong("batch-size"), help: "Continuations scored in one batched pass.")
    var batchSize = 8

    @Option(help: "Write every task's result as JSON here.")
    var out: String?

    @Option(help: "Write the markdown table here too.")
    var markdown: String?

    static func specs(from url: URL) throws -> [TaskRunSpec] {
        let path = url.path
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: try Data(contentsOf: url)) } catch {
            throw ValidationError("\(path): cannot read the suite: \(error.localizedDescription)")
        }
        guard let tasks = (object as? [String: Any])?["tasks"] as? [[String: Any]], !tasks.isEmpty else {
            throw ValidationError("\(path): expected {\"tasks\": [{\"task\": ..., \"data\": ...}, ...]}")
        }
        let base = url.deletingLastPathComponent()
        func resolve(_ p: String) -> URL { p.hasPrefix("/") ? URL(fileURLWithPath: p) : base.appendingPathComponent(p) }
        return try tasks.enumerated().map { i, t in
            guard let name = t["task"] as? String, let data = t["data"] as? String else {
                throw ValidationError("\(path): tasks[\(i)] needs \"task\" and \"data\" strings")
            }
            _ = try ChoiceTask.named(name)
            for key in t.keys where !["task", "data", "shots", "limit", "fewshot_data"].contains(key) {
                throw ValidationError("\(path): tasks[\(i)]: unknown key \"\(key)\" (task, data, shots, limit, fewshot_data)")
            }
            let shots = t["shots"] as? Int ?? 0, limit = t["limit"] as? Int
            if t["shots"] != nil && t["shots"] as? Int == nil { throw ValidationError("\(path): tasks[\(i)].shots must be an integer") }
            if t["limit"] != nil && limit == nil { throw ValidationError("\(path): tasks[\(i)].limit must be an integer") }
            return TaskRunSpec(task: name, data: resolve(data), fewshotData: (t["fewshot_data"] as? String).map(resolve), shots: shots, limit: limit)
        }
    }

    func run() throws {
        try reportingEvalErrors {
            let specs = try Self.specs(from: URL(fileURLWithPath: config))
            let session = try modelOptions.session()
            let scorer = ContinuationScorer(model: session.model, processor: session.processor, batchSize: batchSize)
            let results = try specs.map { try runChoiceTask($0, scorer: scorer) }
            let table = markdownTable(results)
            print(table, terminator: "")
            if let markdown {
                try table.write(toFile: markdown, atomically: true, encoding: .utf8)
                print("wrote \(markdown)")
            }
            if let out { try writeJSON(["model": modelOptions.model, "results": results.map { $0.json() }], to: out) }
        }
    }
}
