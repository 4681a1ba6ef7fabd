import Foundation
import KosmosEval
import KosmosModels

/// One multiple-choice task run: its files, shots and limit (a `kosmos eval task` command line, or
/// an entry of a suite file).
public struct TaskRunSpec {
    public var task: String
    public var data: URL
    public var fewshotData: URL?
    public var shots: Int
    public var limit: Int?

    public init(task: String, data: URL, fewshotData: URL? = nil, shots: Int = 0, limit: Int? = nil) {
        self.task = task
        self.data = data
        self.fewshotData = fewshotData
        self.shots = shots
        self.limit = limit
    }
}

/// Runs a multiple-choice task with a model through the harness-equivalent engine.
public func runChoiceTask(_ spec: TaskRunSpec, scorer: ContinuationScorer, progress: EvalProgress? = nil) throws -> ChoiceTaskResult {
    let task = try ChoiceTask.named(spec.task)
    let documents = try task.load(spec.data)
    let pool = try spec.fewshotData.map(task.load)
    let evaluation = try ChoiceEvaluation(task: task, documents: documents, fewshotPool: pool, shots: spec.shots)
    if let limit = spec.limit, limit < 1 { throw EvalError.malformed(path: "--limit", location: "\(limit)", reason: "must be at least 1") }
    return try evaluation.run(limit: spec.limit, score: { requests in
        try scorer.score(requests).map { ChoiceScore(logLikelihood: $0.logLikelihood, isGreedy: $0.isGreedy) }
    }, progress: { progress?($0, $1) })
}

/// A line of a results table: one task's metric.
public struct SuiteRow: Equatable {
    public var task: String
    public var shots: Int
    public var metric: String
    public var value: Double
    /// The harness's standard error where there is one.
    public var stderr: Double?
    public var items: Int
}

extension ChoiceTaskResult {
    public var rows: [SuiteRow] {
        metrics.map { SuiteRow(task: task, shots: shots, metric: $0.rawValue, value: value($0), stderr: standardError($0), items: items.count) }
    }
}

/// The results as a markdown table: a row per task and metric, with the stderr ("N/A" where none).
public func markdownTable(_ rows: [SuiteRow]) -> String {
    var lines = ["| Task | Shots | Metric | Value | ± Stderr | Items |", "|---|---:|---|---:|---:|---:|"]
    for r in rows {
        let stderr = r.stderr.map { String(format: "%.4f", $0) } ?? "N/A"
        lines.append("| \(r.task) | \(r.shots) | \(r.metric) | \(String(format: "%.4f", r.value)) | \(stderr) | \(r.items) |")
    }
    return lines.joined(separator: "\n") + "\n"
}

/// One entry of a suite file: a multiple-choice task, or one of the multimodal evaluations
/// (`vqa`, `vizwiz`, `captions`, `classify`, `raven`), with its options as the commands name them
/// (snake_case; paths relative to the suite file).
public struct SuiteEntry {
    public var task: String
    let fields: [String: Any]
    let base: URL
    let location: String

    /// The keys each kind takes.
    static let keys: [String: [String]] = [
        "choice": ["task", "data", "shots", "limit", "fewshot_data"],
        "vqa": ["task", "questions", "annotations", "images", "image_pattern", "shots", "limit", "max_tokens"],
        "vizwiz": ["task", "annotations", "images", "shots", "limit", "fewshot_data", "fewshot_images", "max_tokens"],
        "captions": ["task", "annotations", "images", "split", "shots", "limit", "fewshot_annotations", "fewshot_split", "fewshot_images",
                     "beams", "max_tokens", "prompt"],
        "classify": ["task", "images", "class_names", "prompt", "limit", "batch_size"],
        "raven": ["task", "data", "answer", "limit"],
    ]

    var kind: String { Self.keys[task] == nil ? "choice" : task }

    func fail(_ reason: String) -> EvalError { .malformed(path: base.path, location: location, reason: reason) }

    func path(_ key: String) throws -> URL {
        guard let p = fields[key] as? String else { throw fail("needs \"\(key)\" (a path)") }
        return p.hasPrefix("/") ? URL(fileURLWithPath: p) : base.deletingLastPathComponent().appendingPathComponent(p)
    }

    func optionalPath(_ key: String) throws -> URL? { fields[key] == nil ? nil : try path(key) }

    func int(_ key: String) throws -> Int? {
        guard let v = fields[key] else { return nil }
        guard let n = v as? NSNumber, String(cString: n.objCType) != "c", n.doubleValue.rounded() == n.doubleValue else {
            throw fail("\"\(key)\" must be an integer")
        }
        return n.intValue
    }

    func string(_ key: String) throws -> String? {
        guard let v = fields[key] else { return nil }
        guard let s = v as? String else { throw fail("\"\(key)\" must be a string") }
        return s
    }

    /// Reads `{"tasks": [...]}`; every entry checked (known task, known keys, types) before anything runs.
    public static func load(_ url: URL) throws -> [SuiteEntry] {
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: try Data(contentsOf: url)) } catch {
            throw EvalError.unreadable(path: url.path, reason: "cannot read the suite: \(error.localizedDescription)")
        }
        guard let tasks = (object as? [String: Any])?["tasks"] as? [[String: Any]], !tasks.isEmpty else {
            throw EvalError.malformed(path: url.path, location: "$", reason: "expected {\"tasks\": [{\"task\": ..., ...}, ...]}")
        }
        return try tasks.enumerated().map { i, t in
            guard let name = t["task"] as? String else {
                throw EvalError.malformed(path: url.path, location: "tasks[\(i)]", reason: "needs a \"task\" string")
            }
            let entry = SuiteEntry(task: name, fields: t, base: url, location: "tasks[\(i)]")
            if keys[name] == nil && !ChoiceTask.all.contains(where: { $0.name == name }) {
                let known = ChoiceTask.all.map(\.name) + keys.keys.filter { $0 != "choice" }.sorted()
                throw entry.fail("unknown task \"\(name)\"; the known ones: \(known.joined(separator: ", "))")
            }
            let allowed = keys[entry.kind]!
            for key in t.keys.sorted() where !allowed.contains(key) {
                throw entry.fail("unknown key \"\(key)\" for \(name) (\(allowed.joined(separator: ", ")))")
            }
            try entry.validate()
            return entry
        }
    }

    func validate() throws {
        for key in ["shots", "limit", "max_tokens", "beams", "batch_size"] { _ = try int(key) }
        for key in ["split", "fewshot_split", "prompt", "answer", "image_pattern"] { _ = try string(key) }
        switch kind {
        case "choice": _ = try path("data")
        case "vqa": _ = try (path("questions"), path("annotations"), path("images"))
        case "vizwiz", "captions": _ = try (path("annotations"), path("images"))
        case "classify": _ = try path("images")
        default: _ = try path("data")
        }
    }

    /// Runs the entry: its table rows and its JSON (as the command of the same name writes it).
    public func run(session: ModelSession, scorer: ContinuationScorer, progress: EvalProgress? = nil) throws -> (rows: [SuiteRow], json: [String: Any]) {
        let shots = try int("shots") ?? 0, limit = try int("limit")
        switch kind {
        case "choice":
            let r = try runChoiceTask(TaskRunSpec(task: task, data: try path("data"), fewshotData: try optionalPath("fewshot_data"), shots: shots, limit: limit),
                                      scorer: scorer, progress: progress)
            return (r.rows, r.json())
        case "vqa":
            let anns = try VQAEvaluation.loadAnnotations(try path("annotations"))
            let list = try VQAEvaluation.loadQuestionList(try path("questions")).filter { anns[$0.questionID] != nil }
            let pool = VisualQuestion.vqa(questions: list, annotations: anns, folder: try path("images"),
                                          pattern: try string("image_pattern") ?? "COCO_val2014_%012d.jpg")
            let answers = try answerVisualQuestions(session: session, questions: Array(pool.prefix(limit ?? Int.max)), pool: pool, poolIsTheQuestions: true,
                                                    shots: shots, maxTokens: try int("max_tokens") ?? 10, progress: progress)
            let r = try VQAEvaluation.evaluate(annotations: anns, predictions: zip(list, answers).map { ($0.questionID, $1.answer) })
            return ([SuiteRow(task: task, shots: shots, metric: "accuracy", value: VQAEvaluation.reported(r.overall), stderr: nil, items: r.perQuestion.count)],
                    ["task": task, "scores": try JSONSerialization.jsonObject(with: try r.jsonData())])
        case "vizwiz":
            let anns = try VizWizEvaluation.loadAnnotations(try path("annotations"))
            let folder = try path("images")
            let poolAnnotations = try optionalPath("fewshot_data").map(VizWizEvaluation.loadAnnotations) ?? anns
            let poolFolder = try fields["fewshot_data"] == nil ? folder : (optionalPath("fewshot_images") ?? folder)
            let list = Array(anns.prefix(limit ?? Int.max))
            let answers = try answerVisualQuestions(session: session, questions: VisualQuestion.vizwiz(list, folder: folder),
                                                    pool: VisualQuestion.vizwiz(poolAnnotations, folder: poolFolder),
                                                    poolIsTheQuestions: fields["fewshot_data"] == nil, shots: shots,
                                                    maxTokens: try int("max_tokens") ?? 10, progress: progress)
            let r = try VizWizEvaluation.evaluate(annotations: anns, predictions: zip(list, answers).map { .init(image: $0.image, answer: $1.answer) })
            var rows = [SuiteRow(task: task, shots: shots, metric: "accuracy", value: VQAEvaluation.reported(r.overall), stderr: nil, items: r.perImage.count)]
            if let ap = r.averagePrecision {
                rows.append(SuiteRow(task: task, shots: shots, metric: "unanswerable_ap", value: VQAEvaluation.reported(ap), stderr: nil, items: r.perImage.count))
            }
            return (rows, ["task": task, "scores": try JSONSerialization.jsonObject(with: try r.jsonData())])
        case "captions":
            let anns = try CaptionEvaluation.loadAnnotations(try path("annotations"), split: try string("split"))
            var run = CaptionRun(annotations: anns, images: try path("images"))
            run.limit = limit
            run.shots = shots
            run.beams = try int("beams") ?? 5
            run.maxTokens = try int("max_tokens") ?? 30
            run.prompt = try string("prompt") ?? "An image of"
            if let pool = try optionalPath("fewshot_annotations") {
                run.pool = (try CaptionEvaluation.loadAnnotations(pool, split: try string("fewshot_split") ?? "train"), try optionalPath("fewshot_images") ?? run.images)
            }
            let outputs = try captionImages(session: session, run, progress: progress)
            let r = try CaptionEvaluation.evaluate(annotations: anns, predictions: Dictionary(outputs.map { ($0.imageID, $0.caption) }, uniquingKeysWith: { a, _ in a }))
            return (["CIDEr", "Bleu_4"].map { SuiteRow(task: task, shots: shots, metric: $0, value: r.scores[$0] ?? 0, stderr: nil, items: r.perImage.count) },
                    ["task": task, "scores": try JSONSerialization.jsonObject(with: try r.jsonData())])
        case "classify":
            let folders = try classFolders(try path("images"))
            let names = try ClassNames.names(folders: folders.classes, mapping: try optionalPath("class_names").map(ClassNames.loadMapping))
            let r = try classifyImages(session: session, items: Array(folders.items.prefix(limit ?? Int.max)), names: names,
                                       prompt: try string("prompt") ?? "The photo of the", batchSize: try int("batch_size") ?? 64, progress: progress)
            return (["top1", "top5"].map { SuiteRow(task: task, shots: 0, metric: $0, value: $0 == "top1" ? r.top1 : r.top5, stderr: nil, items: r.images.count) },
                    ["task": task] .merging(r.json()) { a, _ in a })
        default:
            let r = try scoreRaven(session: session, items: Array(try RavenItem.load(try path("data")).prefix(limit ?? Int.max)),
                                   answer: try string("answer") ?? "Yes", progress: progress)
            return ([SuiteRow(task: task, shots: 0, metric: "acc", value: r.accuracy, stderr: r.standardError, items: r.items.count)],
                    ["task": task].merging(r.json()) { a, _ in a })
        }
    }
}
