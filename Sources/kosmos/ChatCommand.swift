import ArgumentParser
import Foundation
import KosmosModels
import KosmosTensor
import KosmosTokenizers

/// An interactive session: each line you type is appended to the conversation and the model's
/// reply is streamed; `/image PATH` attaches an image to your next message (`/audio PATH` an audio
/// clip, for a model with audio_config), `/reset` starts over,
/// `/quit` (or end of input) leaves. The whole transcript is re-encoded each turn.
struct Chat: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Chat with a Kosmos-1, Kosmos-2 or Kosmos-2.5 model: /image PATH, /audio PATH, /video PATH, /reset, /quit.",
        discussion: "Replies end at EOS, a newline, or --max-tokens. Kosmos-2 takes one image per conversation (a new /image starts over)."
    )

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: .customLong("max-tokens"), help: "Most tokens per reply.")
    var maxTokens = 64

    @Option(help: "0 is greedy; otherwise the sampling temperature.")
    var temperature: Float = 0

    @Option(help: "Seed for sampling.")
    var seed: UInt64 = 0

    func run() throws {
        let session = try modelOptions.session()
        // A family that takes one image per prompt starts a new conversation with each image.
        let oneImage = session.processor.mediaLimit(.image) == 1
        var options = GenerationOptions()
        options.maxNewTokens = maxTokens
        options.temperature = temperature
        options.seed = seed
        var transcript = ""
        var images: [String] = [], clips: [String] = [], videos: [String] = []
        // Media attached to the next message, in order: (kind, path).
        var pending: [(kind: MediaKind, path: String)] = []
        let takesAudio = session.model.mediaKinds.contains(.audio), takesVideo = session.model.mediaKinds.contains(.video)
        print("kosmos chat — /image PATH\(takesAudio ? ", /audio PATH" : "")\(takesVideo ? ", /video PATH" : ""), /reset, /quit")
        while true {
            print("> ", terminator: "")
            fflush(nil)
            guard let line = readLine() else { break }
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed == "/quit" { break }
            if trimmed == "/reset" { transcript = ""; images = []; clips = []; videos = []; pending = []; print("(conversation cleared)"); continue }
            if let kind = [MediaKind.image, .audio, .video].first(where: { trimmed.hasPrefix("/\($0.rawValue) ") }) {
                let path = String(trimmed.dropFirst(kind.rawValue.count + 2)).trimmingCharacters(in: .whitespaces)
                guard FileManager.default.fileExists(atPath: path) else { print("no such file: \(path)"); continue }
                guard session.model.mediaKinds.contains(kind) else { print("this model takes no \(kind) (no \(kind)_config)"); continue }
                if kind == .image && oneImage {
                    transcript = ""; images = []; clips = []; videos = []; pending = [(kind, path)]
                } else {
                    pending.append((kind, path))
                }
                print("(\(kind) attached to your next message)")
                continue
            }
            if trimmed.isEmpty { continue }
            transcript += pending.map(\.kind.placeholder).joined() + trimmed + "\n"
            images += pending.filter { $0.kind == .image }.map(\.path)
            clips += pending.filter { $0.kind == .audio }.map(\.path)
            videos += pending.filter { $0.kind == .video }.map(\.path)
            pending = []
            do {
                let reply = try respond(session, transcript: transcript, images: images, clips: clips, videos: videos, options: options)
                transcript += reply + "\n"
            } catch {
                print("error: \(error)")
            }
        }
    }

    /// Streams the model's continuation of the transcript up to a newline and returns it.
    func respond(_ session: ModelSession, transcript: String, images: [String], clips: [String], videos: [String],
                 options: GenerationOptions) throws -> String {
        if session.processor.mediaLimit(.image) == 1 && images.isEmpty {
            throw ValidationError("\(session.model.family) needs an image first: /image PATH")
        }
        let input = try session.input(text: transcript, imageFiles: images.map(URL.init(fileURLWithPath:)),
                                      audioFiles: clips.map(URL.init(fileURLWithPath:)), videoFiles: videos.map(URL.init(fileURLWithPath:)))
        let stream = TextStream(tokenizer: session.tokenizer, eos: session.model.eosTokenId, stops: ["\n"])
        let fitted = try fitToContext(options, promptLength: input.tokens.count, context: session.model.contextLength)
        _ = try session.model.generate(input, options: fitted, onToken: stream.add)
        stream.finish()
        return stream.text
    }
}
