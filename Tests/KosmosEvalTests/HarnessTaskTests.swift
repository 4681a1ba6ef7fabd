import Foundation
import XCTest
@testable import KosmosEval

/// The harness fixtures (scripts/reference/harness_reference.py: lm-evaluation-harness 0.4.13 run
/// on the files in Tests/Fixtures/harness): every request string, the few-shot draws, and the
/// metrics computed from the harness's own log-likelihoods. No model here; the model's
/// log-likelihoods are checked in KosmosCLITests.
final class HarnessTaskTests: XCTestCase {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/harness")

    static let files = ["hellaswag": "hellaswag_val.jsonl", "piqa": "piqa_valid.jsonl", "boolq": "boolq_val.jsonl",
                        "cb": "cb_val.jsonl", "copa": "copa_val.jsonl", "storycloze_2016": "storycloze_2016_val.csv",
                        "winogrande": "winogrande_dev.jsonl", "wsc273": "WSCollection.xml",
                        "relativesize": "relativesize_pairs.txt", "memorycolor": "memorycolor.csv", "colorterms": "colorterms.csv"]

    static func expected() throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("expected.json"))) as? [String: Any])
    }

    static func runs() throws -> [[String: Any]] {
        try XCTUnwrap(try expected()["runs"] as? [[String: Any]])
    }

    static func evaluation(_ run: [String: Any]) throws -> ChoiceEvaluation {
        let name = try XCTUnwrap(run["task"] as? String)
        let task = try ChoiceTask.named(name)
        return try ChoiceEvaluation(task: task, documents: try task.load(directory.appendingPathComponent(try XCTUnwrap(files[name]))),
                                    shots: try XCTUnwrap(run["shots"] as? Int))
    }

    /// Contexts and continuations equal the harness's `arguments`, character for character, for
    /// every task at 0 shots and three tasks with few-shot examples (drawn by the same sampler).
    func testRequestsEqualTheHarness() throws {
        let runs = try Self.runs()
        XCTAssertEqual(runs.count, 16)
        for run in runs {
            let label = "\(run["task"]!) \(run["shots"]!)-shot"
            let requests = try Self.evaluation(run).requests()
            let samples = try XCTUnwrap(run["samples"] as? [[String: Any]])
            XCTAssertEqual(requests.count, samples.count, label)
            for (mine, theirs) in zip(requests, samples) {
                let arguments = try XCTUnwrap(theirs["arguments"] as? [[String]])
                XCTAssertEqual(mine.map { [$0.context, $0.continuation] }, arguments, "\(label) doc \(theirs["doc_id"]!)")
            }
        }
    }

    /// The harness's log-likelihoods through our metrics give its numbers: per item acc/acc_norm,
    /// and acc, acc_norm, CB's F1 and every stderr ("N/A" where it has none).
    func testMetricsFromTheHarnessLogLikelihoodsEqualTheHarness() throws {
        for run in try Self.runs() {
            let label = "\(run["task"]!) \(run["shots"]!)-shot"
            let samples = try XCTUnwrap(run["samples"] as? [[String: Any]])
            var next = 0
            let result = try Self.evaluation(run).run(score: { requests in
                defer { next += 1 }
                let lls = samples[next]["loglikelihoods"] as! [Double], greedy = samples[next]["is_greedy"] as! [Bool]
                XCTAssertEqual(lls.count, requests.count)
                return zip(lls, greedy).map { ChoiceScore(logLikelihood: $0, isGreedy: $1) }
            })
            for (item, sample) in zip(result.items, samples) {
                XCTAssertEqual(item.prediction == item.gold ? 1.0 : 0.0, sample["acc"] as? Double, label)
                if let norm = sample["acc_norm"] as? Double {
                    XCTAssertEqual(item.normalizedPrediction == item.gold ? 1.0 : 0.0, norm, label)
                }
            }
            let metrics = try XCTUnwrap(run["metrics"] as? [String: Any])
            XCTAssertEqual(Set(metrics.keys), Set(result.metrics.flatMap { [$0.rawValue, $0.rawValue + "_stderr"] }), label)
            for metric in result.metrics {
                XCTAssertEqual(result.value(metric), try Self.exact(run, metric.rawValue), "\(label) \(metric)")
                if metrics[metric.rawValue + "_stderr"] is Double {
                    XCTAssertEqual(try XCTUnwrap(result.standardError(metric)), try Self.exact(run, metric.rawValue + "_stderr"), "\(label) \(metric) stderr")
                } else {
                    XCTAssertEqual(metrics[metric.rawValue + "_stderr"] as? String, "N/A")
                    XCTAssertNil(result.standardError(metric))
                }
            }
            let json = result.json()
            XCTAssertEqual(json["items"] as? Int, samples.count)
        }
    }

    /// A harness metric exactly as Python holds it: parsed from its repr, because Foundation's
    /// JSONSerialization on Linux reads some decimals an ulp or two off ("0.1111111111111111" as
    /// 0.11111111111111109), while Double(String) rounds correctly.
    static func exact(_ run: [String: Any], _ key: String) throws -> Double {
        try XCTUnwrap(Double(try XCTUnwrap((run["metrics_repr"] as? [String: String])?[key], key)))
    }

    /// CPython's random.Random: the same draws from `sample` (both strategies) and `getrandbits`.
    func testPythonRandomEqualsCPython() throws {
        let cases = try XCTUnwrap(try Self.expected()["python_random"] as? [[String: Any]])
        XCTAssertEqual(cases.count, 3)
        for c in cases {
            var random = PythonRandom(seed: UInt64(try XCTUnwrap(c["seed"] as? Int)))
            let calls = try XCTUnwrap(c["calls"] as? [[Int]]), samples = try XCTUnwrap(c["samples"] as? [[Int]])
            for (call, sample) in zip(calls, samples) {
                XCTAssertEqual(random.sample(call[0], call[1]), sample, "seed \(c["seed"]!) sample\(call)")
            }
            for pair in try XCTUnwrap(c["bits"] as? [[NSNumber]]) {
                XCTAssertEqual(random.getrandbits(pair[0].intValue), pair[1].uint64Value, "getrandbits(\(pair[0]))")
            }
        }
    }

    /// Python's str operations on code points: capitalize (title case first, final sigma),
    /// strip/rstrip (Python's whitespace), the first letter lowered, len, HellaSwag's preprocess.
    func testPythonStringRulesEqualCPython() throws {
        let cases = try XCTUnwrap(try Self.expected()["python_text"] as? [[String: Any]])
        XCTAssertGreaterThan(cases.count, 15)
        for c in cases {
            let text = try XCTUnwrap(c["text"] as? String)
            XCTAssertEqual(PythonText.capitalize(text), c["capitalize"] as? String, "capitalize \(text.debugDescription)")
            XCTAssertEqual(PythonText.strip(text), c["strip"] as? String, "strip \(text.debugDescription)")
            XCTAssertEqual(PythonText.rstrip(text), c["rstrip"] as? String, "rstrip \(text.debugDescription)")
            XCTAssertEqual(PythonText.lowerFirst(text), c["lower_first"] as? String, "lower first \(text.debugDescription)")
            XCTAssertEqual(PythonText.length(text), c["len"] as? Int, "len \(text.debugDescription)")
            XCTAssertEqual(ChoiceTask.hellaswagPreprocess(text), c["hellaswag"] as? String, "preprocess \(text.debugDescription)")
        }
    }

    /// The harness's whitespace move: trailing spaces of the context start the continuation.
    func testTrailingWhitespaceMovesToTheContinuation() {
        let split = ChoiceRequest(context: "Answer: \u{3000} ", continuation: " yes").split
        XCTAssertEqual(split.context, "Answer:")
        XCTAssertEqual(split.continuation, " \u{3000}  yes")
        XCTAssertEqual(ChoiceRequest(context: "a\u{200B}", continuation: " b").split.context, "a\u{200B}", "U+200B is not whitespace to Python")
    }

    // MARK: - Bad input

    func write(_ name: String, _ text: String) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("harness-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent(name)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    func message(_ body: () throws -> Any) -> String {
        do { _ = try body(); return "no error" } catch { return "\(error)" }
    }

    func testBadInputIsNamed() throws {
        let hellaswag = try write("h.jsonl", #"{"ctx_a": "x", "ctx_b": "y", "activity_label": "z", "endings": ["a", "b"], "label": 1}"# + "\n"
                                  + #"{"ctx_a": "x", "activity_label": "z", "endings": ["a"], "label": 0}"# + "\n")
        XCTAssertEqual(message { try ChoiceTask.hellaswag.load(hellaswag) }, "\(hellaswag.path): at line 2: missing field \"ctx_b\"")
        let badLabel = try write("h.jsonl", #"{"ctx_a": "x", "ctx_b": "y", "activity_label": "z", "endings": ["a", "b"], "label": 4}"#)
        XCTAssertEqual(message { try ChoiceTask.hellaswag.load(badLabel) }, "\(badLabel.path): at line 1.label: expected an index 0..<2")
        let notJSON = try write("b.jsonl", "{\"question\": 1\n")
        XCTAssertTrue(message { try ChoiceTask.boolq.load(notJSON) }.hasPrefix("\(notJSON.path): not valid JSON: line 1"))
        let boolq = try write("b.jsonl", #"{"question": "q", "passage": "p", "label": 1}"#)
        XCTAssertEqual(message { try ChoiceTask.boolq.load(boolq) }, "\(boolq.path): at line 1.label: expected true or false")
        let cb = try write("c.jsonl", #"{"premise": "p", "hypothesis": "h", "label": "maybe"}"#)
        XCTAssertEqual(message { try ChoiceTask.cb.load(cb) }, "\(cb.path): at line 1.label: expected one of \"entailment\", \"contradiction\", \"neutral\"")
        let wino = try write("w.jsonl", #"{"sentence": "no blank", "option1": "a", "option2": "b", "answer": "1"}"#)
        XCTAssertEqual(message { try ChoiceTask.winogrande.load(wino) }, "\(wino.path): at line 1.sentence: no \"_\" blank")
        let piqa = try write("valid.jsonl", #"{"goal": "g", "sol1": "a", "sol2": "b"}"#)
        XCTAssertTrue(message { try ChoiceTask.piqa.load(piqa) }.contains("valid-labels.lst beside valid.jsonl"))
        try "0\n1\n".write(to: piqa.deletingLastPathComponent().appendingPathComponent("valid-labels.lst"), atomically: true, encoding: .utf8)
        XCTAssertEqual(message { try ChoiceTask.piqa.load(piqa) },
                       "\(piqa.deletingLastPathComponent().appendingPathComponent("valid-labels.lst").path): at line 2: 2 labels for the 1 items of valid.jsonl")
        let story = try write("s.csv", "InputSentence1,InputSentence2\na,b\n")
        XCTAssertEqual(message { try ChoiceTask.storyCloze2016.load(story) }, "\(story.path): at line 2: missing column \"InputSentence3\"")
        let empty = try write("e.jsonl", "\n\n")
        XCTAssertEqual(message { try ChoiceTask.copa.load(empty) }, "\(empty.path): at line 1: no items")
        XCTAssertEqual(message { try ChoiceTask.named("hellaswagg") },
                       "--task: at hellaswagg: unknown task; the known ones: hellaswag, piqa, boolq, cb, copa, storycloze_2016, winogrande, wsc273, relativesize, memorycolor, colorterms")
        let sizes = try write("p.txt", "dog cat\n\nbig red bus\n")
        XCTAssertEqual(message { try ChoiceTask.relativeSize.load(sizes) }, "\(sizes.path): at line 3: expected two object names (bigger, then smaller), found 3 words")
        let colors = try write("m.csv", "Index,Descriptor,Item,Color\n0,a ,sunflower,yellow\n1,,sky,azure\n")
        XCTAssertEqual(message { try ChoiceTask.memoryColor.load(colors) },
                       "\(colors.path): at line 3.Color: \"azure\" is not one of the colours black, blue, brown, green, grey, orange, pink, purple, red, white, yellow")
        let terms = try write("t.csv", "object,colour\nash,grey\n")
        XCTAssertEqual(message { try ChoiceTask.colorTerms.load(terms) }, "\(terms.path): at line 2: missing column \"color\"")
        let oneAnswer = try write("w.xml", "<collection><schema><text><txt1>A</txt1><pron>he</pron><txt2>ran.</txt2></text>"
                                  + "<answers><answer>The x</answer></answers><correctAnswer>A</correctAnswer></schema></collection>")
        XCTAssertEqual(message { try ChoiceTask.wsc273.load(oneAnswer) }, "\(oneAnswer.path): at schema 1.answers: expected two <answer> elements, found 1")
        let noPronoun = try write("w.xml", "<collection><schema><text><txt1>A</txt1></text></schema></collection>")
        XCTAssertEqual(message { try ChoiceTask.wsc273.load(noPronoun) }, "\(noPronoun.path): at schema 1.text: no <pron> element")
        let unclosed = try write("w.xml", "<collection>\n<schema><text>\n</collection>")
        XCTAssertEqual(message { try ChoiceTask.wsc273.load(unclosed) }, "\(unclosed.path): at line 3: </collection> where <text> is open")
        let entity = try write("w.xml", "<collection>&nbsp;</collection>")
        XCTAssertEqual(message { try ChoiceTask.wsc273.load(entity) }, "\(entity.path): at line 1: unknown character reference &nbsp;")
        let documents = try ChoiceTask.copa.load(Self.directory.appendingPathComponent("copa_val.jsonl"))
        XCTAssertEqual(message { try ChoiceEvaluation(task: .copa, documents: documents, shots: 10) },
                       "--shots: at 10: the few-shot pool (the --data file) has 10 items; 10 shots draw 11")
        XCTAssertEqual(message { try ChoiceEvaluation(task: .copa, documents: documents, shots: -1) }, "--shots: at -1: must be 0 or more")
    }

    /// The XML reader keeps ElementTree's `text` (the characters before the first child) and
    /// decodes references, CDATA, and skips comments and declarations.
    func testXMLReader() throws {
        let root = try SimpleXML.parse("<?xml version=\"1.0\"?>\n<!DOCTYPE c>\n<c>a &amp; &#233;&#x41;<b/>tail<d> x <![CDATA[<y>]]></d><!-- z --></c>", path: "t")
        XCTAssertEqual(root.name, "c")
        XCTAssertEqual(root.text, "a & éA")
        XCTAssertEqual(root.children.map(\.name), ["b", "d"])
        XCTAssertEqual(root.child("d")?.text, " x <y>")
    }

    /// A CSV with quoted fields (commas, doubled quotes, a newline inside quotes, CRLF rows).
    func testCSVQuoting() throws {
        let url = try write("q.csv", "a,b\r\n\"x, y\",\"say \"\"hi\"\"\"\r\n\"two\nlines\",z\r\n")
        let rows = try CSVTable.read(url).rows
        XCTAssertEqual(rows.map { $0.fields["a"]! }, ["x, y", "two\nlines"])
        XCTAssertEqual(rows.map { $0.fields["b"]! }, ["say \"hi\"", "z"])
        XCTAssertEqual(rows.map(\.number), [2, 3])
    }
}
