import Foundation
import KosmosEval
import KosmosModels

/// Progress of a long evaluation: items done of the total.
public typealias EvalProgress = (_ done: Int, _ total: Int) -> Void

// MARK: - Open-ended VQA (VQA v2, VizWiz)

/// One question of an open-ended VQA set: its text, its image, and the answer it shows when it is
/// a solved example (the one most annotators gave).
public struct VisualQuestion {
    public var text: String
    public var image: URL
    public var demonstrationAnswer: String

    public init(text: String, image: URL, demonstrationAnswer: String) {
        self.text = text
        self.image = image
        self.demonstrationAnswer = demonstrationAnswer
    }
}

extension VisualQuestion {
    /// VQA v2 questions, one for one (callers pass the annotated ones), with their images named by
    /// `pattern` from the image id in `folder`.
    public static func vqa(questions: [VQAEvaluation.Question], annotations: [Int: VQAEvaluation.Annotation], folder: URL,
                           pattern: String) -> [VisualQuestion] {
        questions.map {
            VisualQuestion(text: $0.text, image: folder.appendingPathComponent(String(format: pattern, $0.imageID)),
                           demonstrationAnswer: commonAnswer(annotations[$0.questionID]?.answers.map(\.answer) ?? []))
        }
    }

    /// VizWiz's questions with their images in `folder`.
    public static func vizwiz(_ list: [VizWizEvaluation.Annotation], folder: URL) -> [VisualQuestion] {
        list.map { VisualQuestion(text: $0.question, image: folder.appendingPathComponent($0.image), demonstrationAnswer: commonAnswer($0.answers)) }
    }
}

/// An answer and the pool indices of the solved examples shown before its question.
public struct VisualAnswer {
    public var answer: String
    public var demonstrations: [Int]
}

/// The answer most annotators gave (the first of those tied, as Counter.most_common orders them).
public func commonAnswer(_ answers: [String]) -> String {
    var counts: [String: Int] = [:], order: [String] = []
    for x in answers {
        if counts[x] == nil { order.append(x) }
        counts[x, default: 0] += 1
    }
    var best = ""
    for x in order where best.isEmpty || counts[x]! > counts[best]! { best = x }
    return best
}

/// The Kosmos-1 paper's VQA prompt after its solved examples: "<image>Question: q Answer: a\n"
/// per example, then "<image>Question: q Answer:".
public func visualQuestionPrompt(_ question: String, examples: [VisualQuestion]) -> String {
    examples.map { "<image>Question: \($0.text) Answer: \($0.demonstrationAnswer)\n" }.joined() + "<image>Question: \(question) Answer:"
}

/// The few-shot pool must hold what the harness's sampler draws: K, or K + 1 when the item itself
/// may be drawn (and is then dropped).
func checkPool(shots: Int, poolCount: Int, poolHoldsTheItems: Bool, what: String) throws {
    guard shots >= 0 else { throw EvalError.malformed(path: "--shots", location: "\(shots)", reason: "must be 0 or more") }
    let need = poolHoldsTheItems ? shots + 1 : shots
    if shots > 0 && poolCount < need {
        throw EvalError.malformed(path: "--shots", location: "\(shots)", reason: "draws \(need) \(what); the pool has \(poolCount)")
    }
}

/// Generates after an interleaved prompt, the new tokens bounded by the model's context; the text
/// without EOS, cut at the first of `stops`.
func generateText(_ session: ModelSession, text: String, images: [URL], options: GenerationOptions, stops: [String]) throws -> String {
    let input = try session.input(text: text, imageFiles: images)
    let room = session.model.contextLength - input.tokens.count
    guard room > 0 else {
        throw EvalError.malformed(path: "prompt", location: "\(input.tokens.count) tokens",
                                  reason: "longer than the model's context of \(session.model.contextLength) positions (fewer shots or images?)")
    }
    var fitted = options
    fitted.maxNewTokens = min(options.maxNewTokens, room)
    var streamer = TextStreamer(stops: stops) { ids in session.processor.output(ids, grounding: false).text }
    if fitted.numBeams > 1 {
        _ = streamer.set(try session.model.generate(input, options: fitted), final: true)
    } else {
        _ = try session.model.generate(input, options: fitted, onToken: { id in _ = streamer.add(id); return !streamer.stopped })
    }
    return streamer.text
}

/// Answers each question greedily (up to a newline or EOS) after `shots` solved examples drawn
/// from `pool` as lm-evaluation-harness draws few-shot examples (one Random(1234) across the
/// questions); when the pool is the questions' own list, question i is pool[i] and never its own
/// example.
public func answerVisualQuestions(session: ModelSession, questions: [VisualQuestion], pool: [VisualQuestion], poolIsTheQuestions: Bool,
                                  shots: Int, maxTokens: Int, progress: EvalProgress? = nil) throws -> [VisualAnswer] {
    guard !questions.isEmpty else { throw EvalError.malformed(path: "questions", location: "list", reason: "no annotated questions to answer") }
    try checkPool(shots: shots, poolCount: pool.count, poolHoldsTheItems: poolIsTheQuestions, what: "solved examples")
    var options = GenerationOptions()
    options.maxNewTokens = maxTokens
    var random = PythonRandom(seed: 1234)
    var out: [VisualAnswer] = []
    for (i, q) in questions.enumerated() {
        let examples = try fewShotIndices(count: pool.count, shots: shots, random: &random, isItem: poolIsTheQuestions ? { $0 == i } : nil)
        let text = try generateText(session, text: visualQuestionPrompt(q.text, examples: examples.map { pool[$0] }),
                                    images: examples.map { pool[$0].image } + [q.image], options: options, stops: ["\n"])
        out.append(VisualAnswer(answer: text.trimmingCharacters(in: .whitespaces), demonstrations: examples))
        progress?(i + 1, questions.count)
    }
    return out
}

// MARK: - Captioning (COCO, Flickr30k)

/// What to caption and where few-shot examples come from.
public struct CaptionRun {
    public var annotations: CaptionEvaluation.Annotations
    public var images: URL
    public var limit: Int?
    public var prompt = "An image of"
    public var beams = 5
    public var maxTokens = 30
    public var shots = 0
    /// Captioned examples from another file (the paper draws from the training set); nil: the
    /// other images of `annotations`.
    public var pool: (annotations: CaptionEvaluation.Annotations, images: URL)?

    public init(annotations: CaptionEvaluation.Annotations, images: URL) {
        self.annotations = annotations
        self.images = images
    }

    /// An example's text: the prompt, then its first reference with the first letter lower-cased
    /// ("An image of a dog on the grass."), and a newline.
    public static func example(prompt: String, caption: String) -> String {
        let c = caption.trimmingCharacters(in: .whitespacesAndNewlines)
        return MediaKind.image.placeholder + prompt + " " + c.prefix(1).lowercased() + c.dropFirst() + "\n"
    }
}

public struct CaptionOutput {
    public var imageID: Int
    /// The prompt and the caption's first line ("An image of a dog.").
    public var caption: String
    public var demonstrations: [Int]
}

/// Captions the annotated images (beam search; a caption is its first line, since after examples
/// the model may go on to another) and returns them in the annotations' order.
public func captionImages(session: ModelSession, _ run: CaptionRun, progress: EvalProgress? = nil) throws -> [CaptionOutput] {
    let anns = run.annotations
    let ids = Array(anns.imageOrder.filter { anns.captions[$0] != nil }.prefix(run.limit ?? Int.max))
    guard !ids.isEmpty else { throw EvalError.malformed(path: "annotations", location: "images", reason: "no annotated images to caption") }
    let pool = run.pool?.annotations ?? anns, poolFolder = run.pool?.images ?? run.images
    let poolIDs = pool.imageOrder.filter { !(pool.captions[$0] ?? []).isEmpty }
    try checkPool(shots: run.shots, poolCount: poolIDs.count, poolHoldsTheItems: run.pool == nil, what: "captioned examples")
    func file(_ id: Int, _ a: CaptionEvaluation.Annotations, _ folder: URL) throws -> URL {
        guard let name = a.fileNames[id] else { throw EvalError.malformed(path: "annotations", location: "image \(id)", reason: "no file name") }
        return folder.appendingPathComponent(name)
    }
    var options = GenerationOptions()
    options.numBeams = run.beams
    options.maxNewTokens = run.maxTokens
    var random = PythonRandom(seed: 1234)
    var out: [CaptionOutput] = []
    for (i, id) in ids.enumerated() {
        let examples = try fewShotIndices(count: poolIDs.count, shots: run.shots, random: &random,
                                          isItem: run.pool == nil ? { poolIDs[$0] == id } : nil).map { poolIDs[$0] }
        let text = examples.map { CaptionRun.example(prompt: run.prompt, caption: pool.captions[$0]![0]) }.joined() + MediaKind.image.placeholder + run.prompt
        let caption = try generateText(session, text: text, images: try examples.map { try file($0, pool, poolFolder) } + [try file(id, anns, run.images)],
                                       options: options, stops: ["\n"])
        out.append(CaptionOutput(imageID: id, caption: (run.prompt + " " + caption.trimmingCharacters(in: .whitespaces)).trimmingCharacters(in: .whitespaces),
                                 demonstrations: examples))
        progress?(i + 1, ids.count)
    }
    return out
}

// MARK: - Zero-shot classification (ImageNet, CUB)

public struct ClassificationResult {
    public struct Image {
        public var path: String
        public var label: Int
        /// Class indices, likeliest first.
        public var ranking: [Int]
    }

    public var names: [String]
    public var images: [Image]
    public var seconds: Double

    public var top1: Double { Double(images.filter { $0.ranking.first == $0.label }.count) / Double(max(1, images.count)) }
    public var top5: Double { Double(images.filter { $0.ranking.prefix(5).contains($0.label) }.count) / Double(max(1, images.count)) }
    public var imagesPerSecond: Double { Double(images.count) / max(seconds, 1e-9) }

    public func json() -> [String: Any] {
        ["images": images.count, "classes": names.count, "top1": top1, "top5": top5, "images_per_second": imagesPerSecond,
         "predictions": images.map { ["image": $0.path, "label": names[$0.label], "top5": $0.ranking.prefix(5).map { names[$0] }] as [String: Any] }]
    }
}

/// The images of a folder with one sub-folder per class (sorted by name), and the class folders.
public func classFolders(_ root: URL) throws -> (classes: [String], items: [(url: URL, label: Int)]) {
    let fm = FileManager.default
    let classes = try fm.contentsOfDirectory(atPath: root.path).sorted().filter {
        var isDirectory: ObjCBool = false
        return fm.fileExists(atPath: root.appendingPathComponent($0).path, isDirectory: &isDirectory) && isDirectory.boolValue
    }
    guard classes.count >= 2 else { throw EvalError.malformed(path: root.path, location: "folder", reason: "needs at least two class folders") }
    var items: [(url: URL, label: Int)] = []
    for (label, name) in classes.enumerated() {
        for file in try fm.contentsOfDirectory(atPath: root.appendingPathComponent(name).path).sorted()
        where ["jpg", "jpeg", "png"].contains((file as NSString).pathExtension.lowercased()) {
            items.append((root.appendingPathComponent(name).appendingPathComponent(file), label))
        }
    }
    guard !items.isEmpty else { throw EvalError.malformed(path: root.path, location: "folder", reason: "no .jpg/.jpeg/.png images in the class folders") }
    return (classes, items)
}

/// Ranks every class name by the model's log-likelihood of "prompt name" after the image: one
/// prefill of the image and the prompt, the names scored `batchSize` at a time.
public func classifyImages(session: ModelSession, items: [(url: URL, label: Int)], names: [String], prompt: String = "The photo of the",
                           batchSize: Int = 64, progress: EvalProgress? = nil) throws -> ClassificationResult {
    let continuations = names.map { continuationTokens(session, after: prompt, continuation: $0) }
    var images: [ClassificationResult.Image] = []
    let start = Date()
    for (i, item) in items.enumerated() {
        let input = try session.input(text: MediaKind.image.placeholder + prompt, imageFiles: [item.url])
        let scores = try session.model.logLikelihoods(of: continuations, after: input, batchSize: batchSize)
        images.append(.init(path: item.url.path, label: item.label, ranking: scores.indices.sorted { scores[$0] > scores[$1] }))
        progress?(i + 1, items.count)
    }
    return ClassificationResult(names: names, images: images, seconds: Date().timeIntervalSince(start))
}

// MARK: - Raven-style IQ test

/// The tokens `continuation` adds after the end of a prompt: those of "prompt continuation" after
/// those of "prompt" (all of them when the two encodings do not share that prefix).
func continuationTokens(_ session: ModelSession, after prompt: String, continuation: String) -> [Int] {
    let base = session.tokenizer.encode(prompt), full = session.tokenizer.encode(prompt + " " + continuation)
    return full.starts(with: base) ? Array(full.dropFirst(base.count)) : full
}

/// The tokens of `answer` after "Is it correct?".
public func ravenAnswerTokens(_ session: ModelSession, answer: String) -> [Int] {
    continuationTokens(session, after: "Is it correct?", continuation: answer)
}

/// Every candidate of every item scored by log P(answer) after the paper's prompt.
public func scoreRaven(session: ModelSession, items: [RavenItem], answer: String = "Yes", progress: EvalProgress? = nil) throws -> RavenEvaluation {
    let yes = ravenAnswerTokens(session, answer: answer)
    var scores: [[Double]] = []
    for (i, item) in items.enumerated() {
        scores.append(try item.candidates.indices.map { c in
            try session.model.logLikelihoods(of: [yes], after: try session.input(text: item.prompt(), imageFiles: item.images(candidate: c)))[0]
        })
        progress?(i + 1, items.count)
    }
    return RavenEvaluation(items: items, yesLogProbabilities: scores)
}
