import ArgumentParser
import Foundation
import KosmosModels
import KosmosTensor
import KosmosTokenizers

/// An interactive session: each line you type is appended to the conversation and the model's
/// reply is streamed; `/image PATH` attaches an image to your next message, `/reset` starts over,
/// `/quit` (or end of input) leaves. The whole transcript is re-encoded each turn.
struct Chat: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Chat with a Kosmos-1 or Kosmos-2 model: /image PATH, /reset, /quit.",
        discussion: "Replies end at EOS, a newline, or --max-tokens. Kosmos-2 takes one image per conversation (a new /image starts over)."
    )

    @Option(help: "Kosmos-1 or Kosmos-2 model directory.")
    var model: String

    @Option(help: "Tokenizer file (default: the one in the model directory).")
    var tokenizer: String?

    @Option(name: .customLong("max-tokens"), help: "Most tokens per reply.")
    var maxTokens = 64

    @Option(help: "0 is greedy; otherwise the sampling temperature.")
    var temperature: Float = 0

    @Option(help: "Seed for sampling.")
    var seed: UInt64 = 0

    func run() throws {
        let directory = URL(fileURLWithPath: model)
        let (_, type, _) = try ModelDirectory.configuration(in: directory)
        var options = GenerationOptions()
        options.maxNewTokens = maxTokens
        options.temperature = temperature
        options.seed = seed
        let kosmos2 = type == "kosmos-2" ? try Kosmos2Session(directory: directory, tokenizer: tokenizer) : nil
        let kosmos1 = type == "kosmos-2" ? nil : try KosmosSession(directory: directory, tokenizer: tokenizer)
        var transcript = ""
        var images: [String] = []
        var pending: [String] = []
        print("kosmos chat — /image PATH, /reset, /quit")
        while true {
            print("> ", terminator: "")
            fflush(nil)
            guard let line = readLine() else { break }
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed == "/quit" { break }
            if trimmed == "/reset" { transcript = ""; images = []; pending = []; print("(conversation cleared)"); continue }
            if trimmed.hasPrefix("/image ") {
                let path = String(trimmed.dropFirst(7)).trimmingCharacters(in: .whitespaces)
                guard FileManager.default.fileExists(atPath: path) else { print("no such file: \(path)"); continue }
                if type == "kosmos-2" { transcript = ""; images = []; pending = [path] } else { pending.append(path) }
                print("(image attached to your next message)")
                continue
            }
            if trimmed.isEmpty { continue }
            transcript += String(repeating: "<image>", count: pending.count) + trimmed + "\n"
            images += pending
            pending = []
            do {
                let reply = try respond(kosmos1: kosmos1, kosmos2: kosmos2, transcript: transcript, images: images, options: options)
                transcript += reply + "\n"
            } catch {
                print("error: \(error)")
            }
        }
    }

    /// Streams the model's continuation of the transcript up to a newline and returns it.
    func respond(kosmos1: KosmosSession?, kosmos2: Kosmos2Session?, transcript: String, images: [String],
                 options: GenerationOptions) throws -> String {
        let stream: TextStream
        if let kosmos2 {
            guard let image = images.first else { throw ValidationError("Kosmos-2 needs an image first: /image PATH") }
            stream = TextStream(tokenizer: kosmos2.tokenizer, eos: kosmos2.model.configuration.text.eosTokenId, stops: ["\n"])
            _ = try kosmos2.generate(image: image, prompt: transcript, options: options, onToken: stream.add)
        } else if let kosmos1 {
            stream = TextStream(tokenizer: kosmos1.tokenizer, eos: kosmos1.model.configuration.eosTokenId, stops: ["\n"])
            let sequence = try kosmos1.sequence(prompt: transcript, images: images)
            let fitted = try fitToContext(options, promptLength: sequence.tokens.count, context: kosmos1.model.configuration.decoder.maxTargetPositions)
            _ = try kosmos1.model.generate(sequence, options: fitted, onToken: stream.add)
        } else {
            return ""
        }
        stream.finish()
        return stream.text
    }
}
