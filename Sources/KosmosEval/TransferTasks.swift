import Foundation

// The Kosmos-1 paper's language-only probes of visual commonsense ("cross-modal transfer",
// Huang et al. 2023, section 4.9.2 and Table 15) and WSC273 (the harness's `wsc273`). The first
// three are not in lm-evaluation-harness: their prompts are the paper's templates, scored by the
// same multiple-choice engine (docs/evaluation.md says where each choice comes from).
extension ChoiceTask {
    /// The eleven basic colour terms the colour tasks choose between (Berlin & Kay's; the labels
    /// of MemoryColor), alphabetically.
    public static let colorLabels = ["black", "blue", "brown", "green", "grey", "orange", "pink", "purple", "red", "white", "yellow"]

    /// RelativeSize (Bagherinezhad et al. 2016, the 486 pairs of 41 objects as VaLM ships them:
    /// `sizePairsFull.txt`, one "bigger smaller" pair per line). Each pair is asked both ways,
    /// "Is {bigger} larger than {smaller}?" (Yes) and the swapped question (No): the file lists
    /// every pair bigger-first, so one order alone would reward always answering "Yes".
    public static let relativeSize = ChoiceTask(
        name: "relativesize", dataDescription: "RelativeSize pairs, one \"bigger smaller\" pair per line (VaLM's data/object_size/sizePairsFull.txt)",
        metrics: [.acc], dropsItself: true
    ) { url in
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw EvalError.unreadable(path: url.path, reason: error.localizedDescription)
        }
        var documents: [ChoiceDocument] = []
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let words = PythonText.split(String(line))
            if words.isEmpty { continue }
            guard words.count == 2 else {
                throw EvalError.malformed(path: url.path, location: "line \(n + 1)", reason: "expected two object names (bigger, then smaller), found \(words.count) words")
            }
            for (a, b, gold) in [(words[0], words[1], 0), (words[1], words[0], 1)] {
                documents.append(ChoiceDocument(layout: .sharedContext("Is \(a) larger than \(b)?"), choices: ["Yes", "No"],
                                                gold: gold, record: "\(n + 1)\t\(a)\t\(b)"))
            }
        }
        guard !documents.isEmpty else { throw EvalError.malformed(path: url.path, location: "line 1", reason: "no items") }
        return documents
    }

    /// MemoryColor (Norlund et al. 2021): VaLM's `memory_color_data.csv` (Index, Descriptor, Item,
    /// Color) or the authors' `memory_colors.jsonl` (descriptor, item, label). "The color of
    /// {descriptor item} is?" against the eleven colour terms.
    public static let memoryColor = ChoiceTask(
        name: "memorycolor", dataDescription: "MemoryColor CSV (Index, Descriptor, Item, Color) or JSONL (descriptor, item, label)",
        metrics: [.acc], dropsItself: true
    ) { url in
        if url.pathExtension.lowercased() == "jsonl" {
            return try JSONLines.read(url) { r in
                try colorDocument(object: described(try r.string("descriptor"), try r.string("item")), color: try r.string("label"),
                                  path: url.path, location: "line \(r.number).label", record: r.line)
            }
        }
        return try CSVTable.read(url).rows.map { r in
            try colorDocument(object: described(try r.string("Descriptor"), try r.string("Item")), color: try r.string("Color"),
                              path: url.path, location: "line \(r.number).Color", record: r.line)
        }
    }

    /// ColorTerms (Bruni et al. 2012) as VaLM ships it: `color-concrete-objects.csv` (object, color).
    public static let colorTerms = ChoiceTask(
        name: "colorterms", dataDescription: "ColorTerms CSV (object, color), e.g. VaLM's color-concrete-objects.csv",
        metrics: [.acc], dropsItself: true
    ) { url in
        try CSVTable.read(url).rows.map { r in
            try colorDocument(object: PythonText.strip(try r.string("object")), color: try r.string("color"),
                              path: url.path, location: "line \(r.number).color", record: r.line)
        }
    }

    /// "a " + "sunflower", "" + "grass": the descriptor's own spaces do not count.
    static func described(_ descriptor: String, _ item: String) -> String {
        let d = PythonText.strip(descriptor), i = PythonText.strip(item)
        return d.isEmpty ? i : d + " " + i
    }

    static func colorDocument(object: String, color: String, path: String, location: String, record: String) throws -> ChoiceDocument {
        let label = PythonText.strip(color).lowercased()
        guard let gold = colorLabels.firstIndex(of: label) else {
            throw EvalError.malformed(path: path, location: location, reason: "\"\(color)\" is not one of the colours \(colorLabels.joined(separator: ", "))")
        }
        return ChoiceDocument(layout: .sharedContext("The color of \(object) is?"), choices: colorLabels, gold: gold, record: record)
    }

    /// WSC273 (Levesque et al. 2012; the published `WSCollection.xml`, its first 273 schemas),
    /// read as the Hugging Face `winograd_wsc` loader reads it and prepared as the harness's
    /// `wsc273` task: options lower-cased mid-sentence and made possessive after a possessive
    /// pronoun, partially scored (the context ends with an option where the pronoun was, the
    /// continuation is the text after the pronoun, its leading space kept as the harness keeps it).
    public static let wsc273 = ChoiceTask(
        name: "wsc273", dataDescription: "the Winograd Schema Challenge's WSCollection.xml (schema: text/txt1, pron, txt2; answers; correctAnswer)",
        metrics: [.acc], dropsItself: true
    ) { url in
        let root = try SimpleXML.parse(contentsOf: url)
        var documents: [ChoiceDocument] = []
        for (n, schema) in root.children.filter({ $0.name == "schema" }).prefix(273).enumerated() {
            let location = "schema \(n + 1)"
            func clean(_ s: String) -> String { PythonText.split(s).joined(separator: " ") }
            guard let text = schema.child("text") else {
                throw EvalError.malformed(path: url.path, location: location, reason: "no <text> element")
            }
            guard let pronElement = text.child("pron") else {
                throw EvalError.malformed(path: url.path, location: location + ".text", reason: "no <pron> element")
            }
            let left = clean(text.child("txt1")?.text ?? ""), right = clean(text.child("txt2")?.text ?? "")
            let pronoun = clean(pronElement.text)
            var sentence = PythonText.strip([left, pronoun, right].joined(separator: " "))
            let options = (schema.child("answers")?.children ?? []).filter { $0.name == "answer" }.map { clean($0.text) }
            guard options.count == 2 else {
                throw EvalError.malformed(path: url.path, location: location + ".answers", reason: "expected two <answer> elements, found \(options.count)")
            }
            guard let correct = schema.child("correctAnswer") else {
                throw EvalError.malformed(path: url.path, location: location, reason: "no <correctAnswer> element")
            }
            let gold = clean(correct.text).contains("B") ? 1 : 0
            let location0 = left.isEmpty ? 0 : PythonText.length(left) + 1
            // The harness's process_doc.
            sentence = PythonText.replace(sentence, "  ", " ")
            let normalized = options.map { wscOption($0, pronoun: pronoun, text: sentence, pronounLocation: location0) }
            let prefix = PythonText.slice(sentence, 0, location0)
            let target = PythonText.slice(sentence, location0 + PythonText.length(pronoun))
            documents.append(ChoiceDocument(layout: .sharedContinuation(target), choices: normalized.map { prefix + $0 },
                                            gold: gold, record: "\(n)\t" + sentence))
        }
        guard !documents.isEmpty else { throw EvalError.malformed(path: url.path, location: "collection", reason: "no <schema> elements") }
        return documents
    }

    /// The harness's `__normalize_option`: "'s" after a possessive pronoun; the option's first word
    /// lower-cased (every occurrence, as `str.replace`) unless the pronoun starts a sentence.
    static func wscOption(_ option: String, pronoun: String, text: String, pronounLocation: Int) -> String {
        var o = option
        if ["my", "his", "her", "our", "their"].contains(pronoun.lowercased()) { o += "'s" }
        guard let first = PythonText.split(o).first else { return o }
        let scalars = Array(text.unicodeScalars)
        var at = pronounLocation - 2
        if at < 0 { at += scalars.count }  // Python's negative index
        let startOfSentence = scalars.indices.contains(at) && scalars[at] == "."
        let upper: Set<String> = ["A", "An", "The", "She", "He", "It", "They", "My", "His", "Her", "Their"]
        if !startOfSentence && upper.contains(first) { return PythonText.replace(o, first, first.lowercased()) }
        return o
    }
}

/// Just enough XML for WSCollection.xml: elements, text with the five named and the numeric
/// character references, CDATA, comments, processing instructions and a DOCTYPE skipped.
/// `text` is what ElementTree calls an element's text: the characters before its first child.
struct SimpleXML {
    var name: String
    var text = ""
    var children: [SimpleXML] = []

    func child(_ name: String) -> SimpleXML? { children.first { $0.name == name } }

    static func parse(contentsOf url: URL) throws -> SimpleXML {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw EvalError.unreadable(path: url.path, reason: error.localizedDescription)
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw EvalError.malformed(path: url.path, location: "file", reason: "not UTF-8 text")
        }
        return try parse(text, path: url.path)
    }

    static func parse(_ source: String, path: String) throws -> SimpleXML {
        let s = Array(source.unicodeScalars)
        var i = 0, line = 1
        var stack: [SimpleXML] = [SimpleXML(name: "")]
        var sawChild: [Bool] = [false]
        func fail(_ reason: String) -> EvalError { .malformed(path: path, location: "line \(line)", reason: reason) }
        func starts(_ p: String) -> Bool {
            let u = Array(p.unicodeScalars)
            return i + u.count <= s.count && Array(s[i..<(i + u.count)]) == u
        }
        func skip(past end: String) throws {
            let u = Array(end.unicodeScalars)
            while i < s.count {
                if s[i] == "\n" { line += 1 }
                if i + u.count <= s.count && Array(s[i..<(i + u.count)]) == u { i += u.count; return }
                i += 1
            }
            throw fail("\"\(end)\" never comes")
        }
        func appendText(_ t: String) {
            if !sawChild[sawChild.count - 1] { stack[stack.count - 1].text += t }
        }
        while i < s.count {
            if s[i] == "<" {
                if starts("<!--") { try skip(past: "-->"); continue }
                if starts("<?") { try skip(past: "?>"); continue }
                if starts("<![CDATA[") {
                    i += 9
                    let begin = i
                    try skip(past: "]]>")
                    var v = String.UnicodeScalarView(); v.append(contentsOf: s[begin..<(i - 3)]); appendText(String(v))
                    continue
                }
                if starts("<!") { try skip(past: ">"); continue }
                let begin = i + 1
                try skip(past: ">")
                var v = String.UnicodeScalarView(); v.append(contentsOf: s[begin..<(i - 1)])
                var tag = String(v)
                if tag.hasPrefix("/") {
                    let name = PythonText.strip(String(tag.dropFirst()))
                    guard stack.count > 1 else { throw fail("</\(name)> closes nothing open") }
                    guard stack[stack.count - 1].name == name else { throw fail("</\(name)> where <\(stack[stack.count - 1].name)> is open") }
                    let done = stack.removeLast(); sawChild.removeLast()
                    stack[stack.count - 1].children.append(done); sawChild[sawChild.count - 1] = true
                    continue
                }
                let selfClosing = tag.hasSuffix("/")
                if selfClosing { tag.removeLast() }
                guard let name = PythonText.split(tag).first else { throw fail("an empty tag") }
                if selfClosing {
                    stack[stack.count - 1].children.append(SimpleXML(name: name)); sawChild[sawChild.count - 1] = true
                } else {
                    stack.append(SimpleXML(name: name)); sawChild.append(false)
                }
                continue
            }
            if s[i] == "&" {
                guard let semi = s[i...].firstIndex(of: ";"), semi - i <= 10 else { throw fail("an unterminated character reference") }
                var v = String.UnicodeScalarView(); v.append(contentsOf: s[(i + 1)..<semi])
                let entity = String(v)
                let named = ["amp": "&", "lt": "<", "gt": ">", "quot": "\"", "apos": "'"]
                if let r = named[entity] {
                    appendText(r)
                } else if entity.hasPrefix("#"), let code = entity.hasPrefix("#x") ? UInt32(entity.dropFirst(2), radix: 16) : UInt32(entity.dropFirst()),
                          let u = Unicode.Scalar(code) {
                    appendText(String(Character(u)))
                } else {
                    throw fail("unknown character reference &\(entity);")
                }
                i = semi + 1
                continue
            }
            if s[i] == "\n" { line += 1 }
            appendText(String(Character(s[i])))
            i += 1
        }
        guard stack.count == 1 else { throw fail("<\(stack[stack.count - 1].name)> is never closed") }
        guard let root = stack[0].children.first else { throw fail("no root element") }
        return root
    }
}
