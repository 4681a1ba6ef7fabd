import Foundation

/// One item of a multiple-choice task after the task's rules (lm-evaluation-harness 0.4.x's YAML
/// and utils.py): what the model reads and what it chooses between.
public struct ChoiceDocument: Equatable, Sendable {
    /// How the choices meet the context.
    public enum Layout: Equatable, Sendable {
        /// One context (`doc_to_text`); each choice is a continuation of it.
        case sharedContext(String)
        /// One continuation (`doc_to_target`, Winogrande's partial scoring); each choice is a
        /// context ending where the continuation begins.
        case sharedContinuation(String)
    }

    public var layout: Layout
    /// `doc_to_choice`: continuations (shared context) or contexts (shared continuation).
    public var choices: [String]
    /// The right choice's index.
    public var gold: Int
    /// The item as read from the file (its line, or its CSV row), for the few-shot sampler's
    /// "not the item itself" (the harness compares whole documents).
    public var record: String
}

/// A task's rules: its file schema, prompt, choices and metrics, as lm-evaluation-harness defines
/// the task of the same name.
public struct ChoiceTask: Sendable {
    public enum Metric: String, CaseIterable, Sendable {
        case acc
        /// Log-likelihood over the choice's length in characters (Python `len`: code points).
        case accNorm = "acc_norm"
        /// The mean of the three one-class F1 scores (CB's `cb_multi_fi`).
        case f1
    }

    public var name: String
    /// What the file is and where it comes from, for `--help` and errors.
    public var dataDescription: String
    public var metrics: [Metric]
    /// Whether the harness's config has no test split: then its sampler is handed the item and
    /// draws K + 1, dropping the item (the harness passes eval_doc only when fewshot split ==
    /// test split, both None for these tasks).
    public var dropsItself: Bool
    /// Reads the published file.
    public var load: @Sendable (URL) throws -> [ChoiceDocument]

    /// The tasks `kosmos eval task` knows.
    public static let all: [ChoiceTask] = [hellaswag, piqa, boolq, cb, copa, storyCloze2016, winogrande, wsc273,
                                          relativeSize, memoryColor, colorTerms]

    public static func named(_ name: String) throws -> ChoiceTask {
        guard let task = all.first(where: { $0.name == name }) else {
            throw EvalError.unknownTask(name, known: all.map(\.name))
        }
        return task
    }

    // MARK: - The tasks

    /// HellaSwag (rowanz/hellaswag `hellaswag_val.jsonl`): "activity_label: ctx_a Ctx_b" with the
    /// WikiHow artifacts cleaned as the harness's `preprocess` does.
    public static let hellaswag = ChoiceTask(
        name: "hellaswag", dataDescription: "HellaSwag JSONL (ctx_a, ctx_b, activity_label, endings, label), e.g. hellaswag_val.jsonl",
        metrics: [.acc, .accNorm], dropsItself: true
    ) { url in
        try JSONLines.read(url) { r in
            let ctx = try r.string("ctx_a") + " " + PythonText.capitalize(try r.string("ctx_b"))
            let query = hellaswagPreprocess(try r.string("activity_label") + ": " + ctx)
            let endings = try r.strings("endings").map(hellaswagPreprocess)
            return ChoiceDocument(layout: .sharedContext(query), choices: endings, gold: try r.index("label", below: endings.count), record: r.line)
        }
    }

    /// The harness's HellaSwag `preprocess`: strip, " [title]" → ". ", "[...]" removed, one pass of
    /// "  " → " ".
    static func hellaswagPreprocess(_ text: String) -> String {
        var t = PythonText.strip(text)
        t = PythonText.replace(t, " [title]", ". ")
        t = PythonText.removeBracketed(t)
        return PythonText.replace(t, "  ", " ")
    }

    /// PIQA (ybisk/piqa `valid.jsonl` + `valid-labels.lst`, the labels one per line beside it).
    public static let piqa = ChoiceTask(
        name: "piqa", dataDescription: "PIQA JSONL (goal, sol1, sol2) with its labels file beside it (valid.jsonl + valid-labels.lst)",
        metrics: [.acc, .accNorm], dropsItself: true
    ) { url in
        let labels = try PIQALabels.read(for: url)
        var i = 0
        let documents = try JSONLines.read(url) { r in
            defer { i += 1 }
            guard i < labels.count else {
                throw EvalError.malformed(path: url.path, location: "line \(r.number)", reason: "no label for this line in \(PIQALabels.url(for: url).lastPathComponent) (it has \(labels.count))")
            }
            guard (0..<2).contains(labels[i]) else {
                throw EvalError.malformed(path: PIQALabels.url(for: url).path, location: "line \(i + 1)", reason: "label \(labels[i]) is not 0 or 1")
            }
            return ChoiceDocument(layout: .sharedContext("Question: \(try r.string("goal"))\nAnswer:"),
                                  choices: [try r.string("sol1"), try r.string("sol2")], gold: labels[i],
                                  record: r.line + "\t\(labels[i])")
        }
        guard labels.count == documents.count else {
            throw EvalError.malformed(path: PIQALabels.url(for: url).path, location: "line \(documents.count + 1)",
                                      reason: "\(labels.count) labels for the \(documents.count) items of \(url.lastPathComponent)")
        }
        return documents
    }

    /// BoolQ (SuperGLUE `BoolQ/val.jsonl`, label true/false; or Google's `dev.jsonl`, answer).
    public static let boolq = ChoiceTask(
        name: "boolq", dataDescription: "BoolQ JSONL (passage, question, label or answer true/false), e.g. SuperGLUE BoolQ/val.jsonl",
        metrics: [.acc], dropsItself: true
    ) { url in
        try JSONLines.read(url) { r in
            let answer = try r.has("label") ? r.bool("label") : r.bool("answer")
            return ChoiceDocument(layout: .sharedContext("\(try r.string("passage"))\nQuestion: \(try r.string("question"))?\nAnswer:"),
                                  choices: ["no", "yes"], gold: answer ? 1 : 0, record: r.line)
        }
    }

    /// CommitmentBank (SuperGLUE `CB/val.jsonl`, label entailment/contradiction/neutral).
    public static let cb = ChoiceTask(
        name: "cb", dataDescription: "CB JSONL (premise, hypothesis, label), e.g. SuperGLUE CB/val.jsonl",
        metrics: [.acc, .f1], dropsItself: true
    ) { url in
        try JSONLines.read(url) { r in
            let gold = try r.label("label", names: ["entailment", "contradiction", "neutral"])
            return ChoiceDocument(layout: .sharedContext("\(try r.string("premise"))\nQuestion: \(try r.string("hypothesis")). True, False, or Neither?\nAnswer:"),
                                  choices: ["True", "False", "Neither"], gold: gold, record: r.line)
        }
    }

    /// COPA (SuperGLUE `COPA/val.jsonl`): the premise stripped and its last character dropped,
    /// " because"/" therefore", each choice with its first letter lower-cased after a space (the
    /// harness's target delimiter adds another: two spaces).
    public static let copa = ChoiceTask(
        name: "copa", dataDescription: "COPA JSONL (premise, choice1, choice2, question cause/effect, label), e.g. SuperGLUE COPA/val.jsonl",
        metrics: [.acc], dropsItself: true
    ) { url in
        try JSONLines.read(url) { r in
            let connector: String
            switch try r.string("question") {
            case "cause": connector = "because"
            case "effect": connector = "therefore"
            case let other:
                throw EvalError.malformed(path: url.path, location: "line \(r.number).question", reason: "\"\(other)\" is neither \"cause\" nor \"effect\"")
            }
            let premise = PythonText.strip(try r.string("premise"))
            let text = PythonText.slice(premise, 0, Swift.max(0, PythonText.length(premise) - 1)) + " \(connector)"
            let choices = [try r.string("choice1"), try r.string("choice2")].map { " " + PythonText.lowerFirst($0) }
            guard choices.allSatisfy({ $0.count > 1 }) else {
                throw EvalError.malformed(path: url.path, location: "line \(r.number)", reason: "an empty choice")
            }
            return ChoiceDocument(layout: .sharedContext(text), choices: choices, gold: try r.index("label", below: 2), record: r.line)
        }
    }

    /// StoryCloze 2016 (the published CSV: InputSentence1–4, RandomFifthSentenceQuiz1/2,
    /// AnswerRightEnding 1 or 2). The harness's config has a test split, so its few-shot examples
    /// (from `--fewshot-data`, the validation file) are drawn without dropping the item.
    public static let storyCloze2016 = ChoiceTask(
        name: "storycloze_2016", dataDescription: "StoryCloze 2016 CSV (InputSentence1..4, RandomFifthSentenceQuiz1, RandomFifthSentenceQuiz2, AnswerRightEnding)",
        metrics: [.acc], dropsItself: false
    ) { url in
        try CSVTable.read(url).rows.map { r in
            let story = try (1...4).map { try r.string("InputSentence\($0)") }.joined(separator: " ")
            let choices = [try r.string("RandomFifthSentenceQuiz1"), try r.string("RandomFifthSentenceQuiz2")]
            guard let answer = Int(try r.string("AnswerRightEnding")), (1...2).contains(answer) else {
                throw EvalError.malformed(path: url.path, location: "line \(r.number).AnswerRightEnding", reason: "expected 1 or 2")
            }
            return ChoiceDocument(layout: .sharedContext(story), choices: choices, gold: answer - 1, record: r.line)
        }
    }

    /// Winogrande (allenai `dev.jsonl`: sentence with one "_", option1, option2, answer "1"/"2"),
    /// partially scored: each context is the sentence up to the blank with an option in it, the
    /// continuation the stripped rest after the blank.
    public static let winogrande = ChoiceTask(
        name: "winogrande", dataDescription: "Winogrande JSONL (sentence with _, option1, option2, answer), e.g. winogrande_1.1/dev.jsonl",
        metrics: [.acc], dropsItself: true
    ) { url in
        try JSONLines.read(url) { r in
            let sentence = try r.string("sentence")
            guard let blank = PythonText.index(of: "_", in: sentence) else {
                throw EvalError.malformed(path: url.path, location: "line \(r.number).sentence", reason: "no \"_\" blank")
            }
            let gold = try r.label("answer", names: ["1", "2"])
            let prefix = PythonText.slice(sentence, 0, blank)
            return ChoiceDocument(layout: .sharedContinuation(PythonText.strip(PythonText.slice(sentence, blank + 1))),
                                  choices: [prefix + (try r.string("option1")), prefix + (try r.string("option2"))],
                                  gold: gold, record: r.line)
        }
    }
}

extension EvalError {
    static func unknownTask(_ name: String, known: [String]) -> EvalError {
        .malformed(path: "--task", location: name, reason: "unknown task; the known ones: \(known.joined(separator: ", "))")
    }
}

/// One JSON object per line, read with errors that name the line and the field.
struct JSONLines {
    struct Record {
        let object: [String: Any]
        let line: String
        let number: Int
        let path: String

        func has(_ key: String) -> Bool { object[key] != nil }

        func value(_ key: String) throws -> Any {
            guard let v = object[key], !(v is NSNull) else {
                throw EvalError.malformed(path: path, location: "line \(number)", reason: "missing field \"\(key)\"")
            }
            return v
        }

        func string(_ key: String) throws -> String {
            guard let s = try value(key) as? String else { throw wrong(key, "a string") }
            return s
        }

        func strings(_ key: String) throws -> [String] {
            guard let a = try value(key) as? [Any], let s = a as? [String] else { throw wrong(key, "a list of strings") }
            return s
        }

        func bool(_ key: String) throws -> Bool {
            let v = try value(key)
            if let n = v as? NSNumber, String(cString: n.objCType) == "c" { return n.boolValue }
            if let b = v as? Bool, !(v is NSNumber) { return b }
            throw wrong(key, "true or false")
        }

        /// An index below `count`, stored as a number or as its digits ("2").
        func index(_ key: String, below count: Int) throws -> Int {
            let v = try value(key)
            var i: Int?
            if let n = v as? NSNumber, String(cString: n.objCType) != "c", n.doubleValue.rounded() == n.doubleValue { i = n.intValue }
            if let s = v as? String { i = Int(s) }
            guard let i, (0..<count).contains(i) else { throw wrong(key, "an index 0..<\(count)") }
            return i
        }

        /// The position of a label among `names`, or the index itself when stored as a number.
        func label(_ key: String, names: [String]) throws -> Int {
            if let s = try value(key) as? String {
                guard let i = names.firstIndex(of: s) else { throw wrong(key, "one of \(names.map { "\"\($0)\"" }.joined(separator: ", "))") }
                return i
            }
            return try index(key, below: names.count)
        }

        private func wrong(_ key: String, _ expected: String) -> EvalError {
            .malformed(path: path, location: "line \(number).\(key)", reason: "expected \(expected)")
        }
    }

    static func read<T>(_ url: URL, _ make: (Record) throws -> T) throws -> [T] {
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw EvalError.unreadable(path: url.path, reason: error.localizedDescription)
        }
        var out: [T] = []
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.hasSuffix("\r") ? line.dropLast() : line
            if trimmed.allSatisfy({ $0 == " " || $0 == "\t" }) { continue }
            let object: Any
            do { object = try JSONSerialization.jsonObject(with: Data(trimmed.utf8)) } catch {
                throw EvalError.invalidJSON(path: url.path, reason: "line \(n + 1): \((error as NSError).userInfo["NSDebugDescription"] as? String ?? "\(error)")")
            }
            guard let o = object as? [String: Any] else {
                throw EvalError.malformed(path: url.path, location: "line \(n + 1)", reason: "expected a JSON object")
            }
            out.append(try make(Record(object: o, line: String(trimmed), number: n + 1, path: url.path)))
        }
        guard !out.isEmpty else { throw EvalError.malformed(path: url.path, location: "line 1", reason: "no items") }
        return out
    }
}

/// PIQA's labels: one integer per line, in `NAME-labels.lst` beside `NAME.jsonl`.
enum PIQALabels {
    static func url(for data: URL) -> URL {
        data.deletingLastPathComponent().appendingPathComponent(data.deletingPathExtension().lastPathComponent + "-labels.lst")
    }

    static func read(for data: URL) throws -> [Int] {
        let file = url(for: data)
        let text: String
        do { text = try String(contentsOf: file, encoding: .utf8) } catch {
            throw EvalError.unreadable(path: file.path, reason: "PIQA's labels are read from \(file.lastPathComponent) beside \(data.lastPathComponent): \(error.localizedDescription)")
        }
        return try text.split(separator: "\n", omittingEmptySubsequences: true).enumerated().map { n, line in
            guard let v = Int(line.trimmingCharacters(in: .whitespaces)) else {
                throw EvalError.malformed(path: file.path, location: "line \(n + 1)", reason: "expected an integer label")
            }
            return v
        }
    }
}

/// A CSV file with a header row (RFC 4180: quoted fields, doubled quotes, newlines inside quotes).
struct CSVTable {
    struct Row {
        let fields: [String: String]
        let line: String
        let number: Int
        let path: String

        func string(_ key: String) throws -> String {
            guard let v = fields[key] else {
                throw EvalError.malformed(path: path, location: "line \(number)", reason: "missing column \"\(key)\"")
            }
            return v
        }
    }

    let rows: [Row]

    static func read(_ url: URL) throws -> CSVTable {
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw EvalError.unreadable(path: url.path, reason: error.localizedDescription)
        }
        let records = try parse(text, path: url.path)
        guard let header = records.first?.fields else { throw EvalError.malformed(path: url.path, location: "line 1", reason: "no header row") }
        let names = header.map { $0.hasPrefix("\u{FEFF}") ? String($0.dropFirst()) : $0 }
        var rows: [Row] = []
        for r in records.dropFirst() where !(r.fields.count == 1 && r.fields[0].isEmpty) {
            guard r.fields.count == names.count else {
                throw EvalError.malformed(path: url.path, location: "line \(r.line)", reason: "\(r.fields.count) fields under a header of \(names.count)")
            }
            rows.append(Row(fields: Dictionary(zip(names, r.fields), uniquingKeysWith: { a, _ in a }),
                            line: r.fields.joined(separator: "\u{1F}"), number: r.line, path: url.path))
        }
        guard !rows.isEmpty else { throw EvalError.malformed(path: url.path, location: "line 2", reason: "no items") }
        return CSVTable(rows: rows)
    }

    /// Records with the line each starts on.
    static func parse(_ text: String, path: String) throws -> [(fields: [String], line: Int)] {
        var records: [(fields: [String], line: Int)] = []
        var fields: [String] = [], field = String.UnicodeScalarView()
        var quoted = false, line = 1, start = 1, atFieldStart = true
        var it = Array(text.unicodeScalars)[...]
        while let c = it.popFirst() {
            if quoted {
                if c == "\"" {
                    if it.first == "\"" { field.append("\""); it.removeFirst() } else { quoted = false }
                } else {
                    if c == "\n" { line += 1 }
                    field.append(c)
                }
                continue
            }
            switch c {
            case "\"" where atFieldStart:
                quoted = true
                atFieldStart = false
            case ",":
                fields.append(String(field)); field = .init(); atFieldStart = true
            case "\r" where it.first == "\n":
                continue
            case "\n":
                fields.append(String(field)); field = .init()
                records.append((fields, start))
                fields = []; line += 1; start = line; atFieldStart = true
            default:
                field.append(c); atFieldStart = false
            }
        }
        if quoted { throw EvalError.malformed(path: path, location: "line \(start)", reason: "a quoted field is not closed") }
        if !field.isEmpty || !fields.isEmpty { fields.append(String(field)); records.append((fields, start)) }
        return records
    }
}
