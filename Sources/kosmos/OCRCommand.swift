import ArgumentParser
import Foundation
import KosmosModels
import KosmosTensor
import KosmosVision

/// `kosmos ocr`: Kosmos-2.5 reading pages — text lines with boxes (`<ocr>`) or markdown (`<md>`).
struct OCR: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read document images with Kosmos-2.5: text lines with their boxes, or markdown.",
        discussion: """
        MODEL is a Kosmos-2.5 directory (transformers' save_pretrained layout: config.json, safetensors, \
        tokenizer.json, preprocessor_config.json). Greedy decoding, as the model card runs it.
        Default output, per image: a line "# IMAGE", then one line per text line: x0,y0,x1,y0,x1,y1,x0,y1,TEXT \
        (the box's corners clockwise from the top-left, in the original image's pixels). --markdown prints the \
        page as markdown instead; --json prints one JSON object per image.
        """
    )

    @OptionGroup var modelOptions: ModelOptions

    @Argument(help: "Image files (JPEG or PNG).")
    var images: [String]

    @Flag(help: "Ask for markdown (<md>) instead of lines with boxes (<ocr>).")
    var markdown = false

    @Flag(help: "One JSON object per image: {image, width, height, task, text, lines: [{text, box: [x0, y0, x1, y1]}]}.")
    var json = false

    @Option(help: "Write the page with the lines' boxes drawn (.png or .jpg); with several images, -N is added before the extension.")
    var draw: String?

    @Option(name: .customLong("max-tokens"), help: "Most new tokens per image.")
    var maxTokens = 1024

    func validate() throws {
        guard !images.isEmpty else { throw ValidationError("give at least one image") }
        guard maxTokens > 0 else { throw ValidationError("--max-tokens must be positive") }
        if markdown, draw != nil { throw ValidationError("--draw needs boxes: it works with <ocr> output, not --markdown") }
        if let draw { try validateDrawDestination(draw) }
    }

    func run() throws {
        let session = try modelOptions.session()
        guard session.model is Kosmos25Model, let patches = session.images.patches else {
            throw ValidationError("kosmos ocr needs a Kosmos-2.5 directory; \(modelOptions.model) holds \(session.model.family.name)")
        }
        let task = markdown ? "<md>" : "<ocr>"
        var options = GenerationOptions()
        options.maxNewTokens = maxTokens
        for (n, path) in images.enumerated() {
            let url = URL(fileURLWithPath: path)
            let page = try ImageDecoder.decode(contentsOf: url, options: patches.decodeOptions)
            let processed = patches.process(page)
            let input = try session.processor.input(text: task, media: [.image(Tensor(processed))], grounding: false)
            let fitted = try fitToContext(options, promptLength: input.tokens.count, context: session.model.contextLength)
            let ids = try session.model.generate(input, options: fitted)
            let text = session.processor.output(ids, grounding: false).text
            let lines = markdown ? [] : Kosmos25OCR.lines(text, prompt: task, rawWidth: page.width, rawHeight: page.height,
                                                          width: processed.width, height: processed.height)
            let answer = markdown ? text.replacingOccurrences(of: task, with: "") : text
            if json {
                struct Output: Encodable {
                    let image: String, width: Int, height: Int, task: String, text: String, lines: [OCRLine]?
                }
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                print(String(decoding: try encoder.encode(Output(image: path, width: page.width, height: page.height, task: task,
                                                                 text: answer, lines: markdown ? nil : lines)), as: UTF8.self))
            } else {
                print("# \(path)")
                if markdown {
                    print(answer)
                } else {
                    for line in lines { print(Kosmos25OCR.cornerText(line).trimmingCharacters(in: .newlines)) }
                }
            }
            fflush(nil)
            if let draw {
                try drawGrounding(lines.map { ($0.text.trimmingCharacters(in: .whitespacesAndNewlines), [$0.box]) }, on: page,
                                  to: images.count == 1 ? draw : Self.numbered(draw, n + 1))
            }
        }
    }

    /// OUT.png → OUT-N.png.
    static func numbered(_ path: String, _ n: Int) -> String {
        let url = URL(fileURLWithPath: path)
        let ext = url.pathExtension
        let base = url.deletingPathExtension().path
        return ext.isEmpty ? "\(base)-\(n)" : "\(base)-\(n).\(ext)"
    }
}
