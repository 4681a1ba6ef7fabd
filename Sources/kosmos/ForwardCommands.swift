import ArgumentParser
import Foundation
import KosmosAudio
import KosmosModels
import KosmosTensor
import KosmosTokenizers
import KosmosVision

/// Loads the tokenizer for a Kosmos-1 model and warns when its vocabulary cannot be the model's.
func loadTokenizer(for model: KosmosModel, directory: URL, explicit: String?) throws -> Tokenizer {
    let tokenizer = try model.loadTokenizer(directory: directory, explicit: explicit.map(URL.init(fileURLWithPath:)))
    if let warning = ModelSession.vocabularyWarning(tokenizer: tokenizer, model: model) {
        FileHandle.standardError.write(Data("warning: \(warning)\n".utf8))
    }
    return tokenizer
}

/// The model, prompt, images and tokenizer options `forward` and `generate` share.
struct PromptOptions: ParsableArguments {
    @OptionGroup var modelOptions: ModelOptions

    @Option(help: "Prompt text; <image> marks each image's place. `generate` takes several (repeat --prompt): they are decoded together, batched.")
    var prompt: [String] = []

    @Option(name: .customLong("prompt-file"), help: "A UTF-8 file whose text is a prompt (one final newline dropped), for prompts longer than a command line; repeatable, read after the --prompt values.")
    var promptFile: [String] = []

    @Option(help: "Image file (JPEG or PNG); repeat for several.")
    var image: [String] = []

    @Option(help: "Audio file (WAV, MP3, FLAC, Ogg/Opus, M4A); repeat for several. <audio> in the prompt marks each clip's place (a model with audio_config).")
    var audio: [String] = []

    @Option(help: "Video file (MP4, WebM, MKV, AVI, GIF); repeat for several. <video> in the prompt marks each video's place (a model with video_config).")
    var video: [String] = []

    @Option(name: .customLong("video-fps"), help: "Sample video frames at this rate (at most video_config.max_frames) instead of num_frames evenly.")
    var videoFPS: Double?

    var directory: URL { modelOptions.directory }

    /// How many prompts were given (--prompt and --prompt-file together).
    var count: Int { prompt.count + promptFile.count }

    /// The prompts: the --prompt values, then each --prompt-file's text.
    func texts() throws -> [String] {
        guard count > 0 else { throw ValidationError("give a --prompt or a --prompt-file") }
        return try prompt + promptFile.map { path in
            let data: Data
            do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
                throw CommandError("--prompt-file \(path): cannot read it (\(error.localizedDescription))")
            }
            guard var text = String(data: data, encoding: .utf8) else { throw CommandError("--prompt-file \(path): not UTF-8 text") }
            if text.hasSuffix("\r\n") { text.removeLast(2) } else if text.hasSuffix("\n") { text.removeLast() }
            return text
        }
    }

    /// Loads the Kosmos-1 model and its tokenizer, and builds the prompt's sequence: `tokens` when
    /// given (ids as they are, the --image files for their image slots), else the one prompt's text.
    func loadKosmos(tokens given: [Int]? = nil) throws -> (model: KosmosModel, tokenizer: Tokenizer, sequence: KosmosSequence, text: String?) {
        // forward exists to check a conversion against PyTorch: float32 unless --dtype says otherwise.
        let session = try KosmosSession(directory: directory, tokenizer: modelOptions.tokenizer,
                                        dtype: try modelOptions.dtype(default: .float32), imageBackend: try modelOptions.backend())
        if let given {
            let images = try image.map { try session.images.load(URL(fileURLWithPath: $0)) }
            return (session.model, session.tokenizer, KosmosSequence(tokens: given, images: images, audio: try session.clips(audio)), nil)
        }
        let text = try texts()[0]
        return (session.model, session.tokenizer, try session.sequence(prompt: text, images: image, audio: audio), text)
    }

    /// The images of each prompt: the `<image>` markers of all prompts take the --image files in order.
    func imagesPerPrompt(_ prompts: [String]) throws -> [[String]] {
        try Self.filesPerPrompt(prompts, files: image, marker: "<image>", option: "--image")
    }

    /// The video files of each prompt: the `<video>` markers of all prompts take the --video files in order.
    func videosPerPrompt(_ prompts: [String]) throws -> [[String]] {
        try Self.filesPerPrompt(prompts, files: video, marker: "<video>", option: "--video")
    }

    /// The audio files of each prompt: the `<audio>` markers of all prompts take the --audio files in order.
    func audioPerPrompt(_ prompts: [String]) throws -> [[String]] {
        try Self.filesPerPrompt(prompts, files: audio, marker: "<audio>", option: "--audio")
    }

    static func filesPerPrompt(_ prompts: [String], files: [String], marker: String, option: String) throws -> [[String]] {
        var remaining = files[...]
        var result: [[String]] = []
        for text in prompts {
            let markers = text.components(separatedBy: marker).count - 1
            guard remaining.count >= markers else {
                throw ValidationError("the prompts have more \(marker) markers than the \(files.count) \(option) file(s)")
            }
            result.append(Array(remaining.prefix(markers)))
            remaining = remaining.dropFirst(markers)
        }
        guard remaining.isEmpty else {
            throw ValidationError("\(files.count) \(option) file(s) for \(files.count - remaining.count) \(marker) marker(s) in the prompts")
        }
        return result
    }
}

struct Forward: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a Kosmos-1 model on a prompt (with images) and write input_ids, logits and image features to safetensors.",
        discussion: "`<image>` in the prompt marks where each --image goes, in order. Use it to check a converted checkpoint against PyTorch."
    )

    @OptionGroup var input: PromptOptions

    @Option(name: .customLong("input-ids"), help: "A JSON file holding an array of token ids: the input as it is (no tokenizing), in place of a prompt; --image files fill its image slots.")
    var inputIds: String?

    @Option(help: "Output .safetensors file.")
    var out: String

    func validate() throws {
        if inputIds != nil {
            guard input.count == 0 else { throw ValidationError("give --input-ids or a prompt, not both") }
        } else {
            guard input.count == 1 else { throw ValidationError("forward takes one --prompt (or --prompt-file, or --input-ids)") }
        }
    }

    func run() throws {
        let given = try inputIds.map(readTokenIds)
        let (kosmos, _, sequence, text) = try input.loadKosmos(tokens: given)
        let tokens = sequence.tokens, images = sequence.images
        let batch = try kosmos.makeBatch([sequence])
        var metadata = ["model": input.directory.lastPathComponent]
        if let text { metadata["prompt"] = text } else if let inputIds { metadata["input_ids_file"] = inputIds }
        var writer = SafeTensorsWriter(metadata: metadata)
        var keep: [Tensor] = []
        try withoutGrad {
            var embeds: Tensor? = nil
            if let pixels = batch.pixels {
                let features = try kosmos.visionModel(pixels).lastHiddenState
                let images = try kosmos.imageEmbeddings(visionFeatures: features)
                embeds = images
                keep += [pixels, features, images]
                try writer.add(name: "pixel_values", tensor: pixels)
                try writer.add(name: "image_features", tensor: features)
                try writer.add(name: "image_embeds", tensor: images)
            }
            if let features = batch.audioFeatures {
                keep.append(features)
                try writer.add(name: "input_features", tensor: features)
            }
            // The image path ran once above; its embeddings go straight into the logits.
            let logits = try kosmos.logits(batch, imageEmbeddings: embeds)
            keep.append(logits)
            try writer.add(name: "logits", tensor: logits)
        }
        try writer.add(name: "input_ids", shape: [1, tokens.count], int64s: tokens.map(Int64.init))
        try withExtendedLifetime(keep) { try writer.write(to: URL(fileURLWithPath: out)) }
        print("\(tokens.count) tokens, \(images.count) image(s)\(sequence.audio.isEmpty ? "" : ", \(sequence.audio.count) audio clip(s)") → \(out)")
    }
}

struct EncodeAudio: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encode-audio",
        abstract: "Decode an audio file, compute its log-mel features and run the audio encoder; write input_features and audio_features to safetensors.",
        discussion: "MODEL is a Kosmos-1 directory with audio_config or a transformers Whisper directory (model_type whisper, its preprocessor_config.json for the features). audio_features is the encoder's last_hidden_state, before the connector."
    )

    @Option(help: "Kosmos-1 (with audio_config) or Whisper model directory; or ORG/NAME[@REVISION] from the Hub cache.")
    var model: String

    @OptionGroup var hub: HubPullOption

    @Argument(help: "Audio file (WAV, MP3, FLAC, Ogg/Opus, M4A).")
    var audio: String

    @Option(help: "Output .safetensors file.")
    var out: String

    mutating func validate() throws { model = try hub.resolve(model) }

    func run() throws {
        let (encoder, configuration) = try ModelRegistry.loadAudioEncoder(URL(fileURLWithPath: model))
        let input = try AudioInput(configuration: configuration)
        let clip = try input.decoder.decode(contentsOf: URL(fileURLWithPath: audio))
        let (features, extracted) = input.features(clip)
        let batch = features.unsqueezed(0)
        let hidden = try withoutGrad { try encoder(batch) }
        var writer = SafeTensorsWriter(metadata: ["audio": audio, "model": URL(fileURLWithPath: model).lastPathComponent])
        try writer.add(name: "input_features", tensor: batch)
        try writer.add(name: "audio_features", tensor: hidden)
        let mask = extracted.attentionMask.map(Int64.init)
        try writer.add(name: "attention_mask", shape: [1, mask.count], int64s: mask)
        try withExtendedLifetime((batch, hidden)) { try writer.write(to: URL(fileURLWithPath: out)) }
        let cut = extracted.truncated ? String(format: " (truncated to the first %.2f s)", extracted.duration) : ""
        print(String(format: "%@: %.2f s, %d Hz, %d channel(s)%@ → input_features %@, audio_features %@ → %@",
                     audio, clip.duration, clip.sourceRate, clip.sourceChannels, cut, "\(batch.shape)", "\(hidden.shape)", out))
    }
}

struct EncodeVideo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encode-video",
        abstract: "Sample a video's frames, preprocess them and run the vision tower and resampler; write frame_indices, pixel_values and video_features to safetensors.",
        discussion: "MODEL is a Kosmos-1 directory with video_config. video_features is the vision tower's last_hidden_state per frame [T, tokens, dim]; video_embeds the embeddings that fill the <video> slots [T × num_image_tokens, dim] (after the resampler's time embeddings and image_proj)."
    )

    @Option(help: "Kosmos-1 model directory with video_config; or ORG/NAME[@REVISION] from the Hub cache.")
    var model: String

    @OptionGroup var hub: HubPullOption

    @Argument(help: "Video file (MP4, WebM, MKV, AVI, GIF).")
    var video: String

    @Option(name: .customLong("video-fps"), help: "Sample at this rate (at most max_frames) instead of num_frames evenly.")
    var videoFPS: Double?

    @Option(help: "Output .safetensors file.")
    var out: String

    mutating func validate() throws { model = try hub.resolve(model) }

    func run() throws {
        let session = try KosmosSession(directory: URL(fileURLWithPath: model), tokenizer: nil, dtype: .float32, videoFPS: videoFPS)
        guard let input = session.videos else { throw CommandError("\(model): the model has no video_config") }
        let frames = try input.load(URL(fileURLWithPath: video))
        let kosmos = session.model
        let (features, embeds) = try withoutGrad {
            (try kosmos.visionModel(frames.pixels).lastHiddenState,
             try kosmos.videoEmbeddings(frames: frames.pixels, counts: [frames.pixels.shape[0]]))
        }
        var writer = SafeTensorsWriter(metadata: ["video": video, "model": URL(fileURLWithPath: model).lastPathComponent])
        try writer.add(name: "frame_indices", shape: [frames.indices.count], int64s: frames.indices.map(Int64.init))
        try writer.add(name: "frame_times", tensor: Tensor(shape: [frames.times.count], scalars: frames.times.map(Float.init)))
        try writer.add(name: "pixel_values", tensor: frames.pixels)
        try writer.add(name: "video_features", tensor: features)
        try writer.add(name: "video_embeds", tensor: embeds)
        try withExtendedLifetime((frames.pixels, features, embeds)) { try writer.write(to: URL(fileURLWithPath: out)) }
        let i = frames.info
        print("\(video): \(i.codec) \(i.width)x\(i.height), \(i.frameCount) frames, \(String(format: "%.2f", i.duration)) s → frames \(frames.indices) → pixel_values \(frames.pixels.shape), video_features \(features.shape), video_embeds \(embeds.shape) → \(out)")
    }
}

struct EncodeImage: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encode-image",
        abstract: "Preprocess an image and run a vision tower; write pixel_values and last_hidden_state to safetensors.",
        discussion: "MODEL is a Kosmos-1 directory or a transformers CLIP directory (model_type clip or clip_vision_model)."
    )

    @Option(help: "Kosmos-1 or CLIP model directory; or ORG/NAME[@REVISION] from the Hub cache.")
    var model: String

    @OptionGroup var hub: HubPullOption

    @Argument(help: "Image file (JPEG or PNG).")
    var image: String

    @OptionGroup var precision: PrecisionOptions

    @Option(help: "Output .safetensors file.")
    var out: String

    @OptionGroup var images: ImageBackendOption

    mutating func validate() throws { model = try hub.resolve(model) }

    func run() throws {
        let directory = URL(fileURLWithPath: model)
        let tower = try ModelRegistry.loadVisionTower(directory, dtype: try precision.apply(default: .float32))
        let input = try ImageInput(modelDirectory: directory, imageSize: tower.configuration.imageSize).with(backend: try images.backend())
        let pixels = try input.load(URL(fileURLWithPath: image)).unsqueezed(0)
        let last = try withoutGrad { try tower(pixels).lastHiddenState }
        var writer = SafeTensorsWriter(metadata: ["image": image])
        try writer.add(name: "pixel_values", tensor: pixels)
        try writer.add(name: "last_hidden_state", tensor: last)
        try withExtendedLifetime((pixels, last)) { try writer.write(to: URL(fileURLWithPath: out)) }
        print("pixel_values \(pixels.shape), last_hidden_state \(last.shape) → \(out)")
    }
}

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Continue a prompt (with images or audio) with a Kosmos-1, Kosmos-2 or Kosmos-2.5 model, streaming the text as it is produced.",
        discussion: "`<image>` in the prompt marks where each --image goes, `<audio>` where each --audio goes, `<video>` where each --video goes. Greedy by default; --temperature > 0 samples (with --top-k, --top-p, --seed)."
    )

    @OptionGroup var input: PromptOptions

    @Option(name: .customLong("max-tokens"), help: "Most new tokens.")
    var maxTokens = 32

    @Option(help: "0 is greedy; otherwise the sampling temperature.")
    var temperature: Float = 0

    @Option(name: .customLong("top-k"), help: "Sample among the k most likely tokens.")
    var topK: Int?

    @Option(name: .customLong("top-p"), help: "Nucleus sampling mass.")
    var topP: Float?

    @Option(name: .customLong("repetition-penalty"), help: "> 1 discourages repeated tokens.")
    var repetitionPenalty: Float = 1

    @Option(name: .customLong("no-repeat-ngram-size"), help: "Never repeat an n-gram of this size (0: off).")
    var noRepeatNgramSize = 0

    @Option(help: "Seed for sampling.")
    var seed: UInt64 = 0

    @Option(help: "Beam search with this many beams (1: greedy or sampling). The text is printed when the search ends.")
    var beams = 1

    @Option(name: .customLong("length-penalty"), help: "Beam scores are divided by (new tokens)^penalty.")
    var lengthPenalty: Float = 1

    @Option(help: "Stop when the generated text contains this string (repeat for several); it is cut off.")
    var stop: [String] = []

    @Flag(help: "Print one JSON object {ids, text} at the end instead of streaming text (an array of them for several prompts).")
    var json = false

    @Option(name: .customLong("prefill-chunk"), help: "Prompt positions per prefill chunk: a long prompt runs in chunks of this many, so its activations never exist for more than one chunk.")
    var prefillChunk = PromptPrefill.defaultChunkSize

    @Flag(name: .customLong("truncate-prompt"), help: "A text prompt too long for the model's context keeps its last tokens (its first, BOS, kept) so that --max-tokens fit; without it such a prompt is an error.")
    var truncatePrompt = false

    func validate() throws {
        try validateBeams(beams)
        guard prefillChunk >= 1 else { throw ValidationError("--prefill-chunk \(prefillChunk): a chunk holds at least 1 prompt position") }
    }

    func run() throws {
        var options = GenerationOptions()
        options.maxNewTokens = maxTokens
        options.temperature = temperature
        options.topK = topK
        options.topP = topP
        options.repetitionPenalty = repetitionPenalty
        options.noRepeatNgramSize = noRepeatNgramSize
        options.seed = seed
        options.numBeams = beams
        options.lengthPenalty = lengthPenalty
        options.prefillChunkSize = prefillChunk
        if let fps = input.videoFPS, !(fps > 0 && fps.isFinite) { throw ValidationError("--video-fps \(fps): a positive rate") }
        let session = try input.modelOptions.session(videoFPS: input.videoFPS)
        let prompts = try input.texts()
        let files: [[String]]
        if session.processor.mediaLimit(.image) == 1 {
            // One image per prompt (Kosmos-2): one --image for all prompts, or one per prompt.
            guard input.image.count == 1 || input.image.count == prompts.count else {
                throw ValidationError("\(session.model.family) takes exactly one --image (or one per --prompt)")
            }
            files = prompts.indices.map { [input.image[input.image.count == 1 ? 0 : $0]] }
        } else {
            files = try input.imagesPerPrompt(prompts)
        }
        let clips = try input.audioPerPrompt(prompts), videos = try input.videosPerPrompt(prompts)
        var inputs = try prompts.indices.map {
            try session.input(text: prompts[$0], imageFiles: files[$0].map(URL.init(fileURLWithPath:)),
                              audioFiles: clips[$0].map(URL.init(fileURLWithPath:)),
                              videoFiles: videos[$0].map(URL.init(fileURLWithPath:)))
        }
        if truncatePrompt {
            inputs = try inputs.map { try truncated($0, session: session, keep: session.model.contextLength - maxTokens) }
        }
        let eos = session.model.eosTokenId
        if prompts.count > 1 {
            let streams = prompts.map { _ in TextStream(tokenizer: session.tokenizer, eos: eos, stops: stop, quiet: true) }
            _ = try session.model.generate(inputs, options: options) { i, id in streams[i].add(id) }
            TextStream.finish(streams, json: json)
            return
        }
        let stream = TextStream(tokenizer: session.tokenizer, eos: eos, stops: stop, quiet: json)
        let fitted = try fitToContext(options, promptLength: inputs[0].tokens.count, context: session.model.contextLength)
        _ = try session.model.generate(inputs[0], options: fitted, onToken: stream.add)
        stream.finish()
    }
}

/// The prompt cut to its last `keep` tokens (its first kept when it is BOS), with a warning; text
/// prompts only (cutting could split an image's slots).
func truncated(_ input: ModelInput, session: ModelSession, keep: Int) throws -> ModelInput {
    guard input.tokens.count > keep else { return input }
    guard input.media.isEmpty else {
        throw CommandError("--truncate-prompt: the prompt is \(input.tokens.count) tokens with images, more than the \(keep) that leave room for --max-tokens; prompts with images are not truncated (shorten the text)")
    }
    guard keep >= 2 else { throw CommandError("--truncate-prompt: --max-tokens leaves \(keep) positions of the model's context for the prompt") }
    let bos = session.tokenizer.specialIds.bos
    let head = input.tokens.first == bos && bos != nil ? [input.tokens[0]] : []
    let tokens = head + input.tokens.suffix(keep - head.count)
    FileHandle.standardError.write(Data("warning: --truncate-prompt: the prompt's first \(input.tokens.count - tokens.count) tokens after \(head.isEmpty ? "its start" : "BOS") dropped (\(input.tokens.count) → \(tokens.count))\n".utf8))
    return ModelInput(tokens: tokens, media: [], mediaPositions: [])
}

/// The token ids of a JSON file holding one array of integers (`forward --input-ids`).
func readTokenIds(_ path: String) throws -> [Int] {
    let data: Data
    do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
        throw CommandError("--input-ids \(path): cannot read it (\(error.localizedDescription))")
    }
    guard let ids = try? JSONDecoder().decode([Int].self, from: data) else {
        throw CommandError("--input-ids \(path): not a JSON array of integer token ids (like [1, 4093, 29871])")
    }
    guard !ids.isEmpty else { throw CommandError("--input-ids \(path): the array is empty; give at least one token id") }
    return ids
}

/// A loaded Kosmos-1 model with its tokenizer and image preprocessing.
struct KosmosSession {
    let model: KosmosModel
    let tokenizer: Tokenizer
    let images: ImageInput
    let audio: AudioInput?
    let videos: VideoInput?

    init(directory: URL, tokenizer explicit: String?, dtype: DType = .float32, videoFPS: Double? = nil,
         imageBackend: ImageBackend? = nil) throws {
        try MemoryCheck.ensure(directory: directory, dtype: dtype)
        model = try KosmosModel.load(directory: directory, dtype: dtype)
        tokenizer = try loadTokenizer(for: model, directory: directory, explicit: explicit)
        let images = try ImageInput(modelDirectory: directory, imageSize: model.configuration.vision.imageSize).with(backend: imageBackend)
        self.images = images
        audio = try model.configuration.audio.map(AudioInput.init)
        videos = model.configuration.video.map { VideoInput(configuration: $0, images: images, fps: videoFPS) }
    }

    /// The features of audio files, refused when the model has no audio path.
    func clips(_ paths: [String]) throws -> [Tensor] {
        guard !paths.isEmpty else { return [] }
        guard let audio else { throw CommandError("--audio: the model has no audio_config, so it takes no audio") }
        return try paths.map { try audio.load(URL(fileURLWithPath: $0)) }
    }

    /// The prompt's tokens (`<image>` marks each image) and the loaded images.
    func sequence(prompt: String, images paths: [String], audio audioPaths: [String] = []) throws -> KosmosSequence {
        let loaded = try paths.map { try images.load(URL(fileURLWithPath: $0)) }
        let clips = try self.clips(audioPaths)
        return KosmosSequence(tokens: try model.promptTokens(prompt, imageCount: loaded.count, audioCount: clips.count, encode: tokenizer.encode),
                              images: loaded, audio: clips)
    }
}

struct Ground: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Caption an image with Kosmos-2 and print the grounded phrases with their boxes as JSON.",
        discussion: "Boxes are given normalised to [0, 1] and in pixels of the original image (x1, y1, x2, y2)."
    )

    @OptionGroup var modelOptions: ModelOptions

    @Argument(help: "Image file (JPEG or PNG).")
    var image: String

    @Option(help: "Prompt (Kosmos2Processor adds the image).")
    var prompt = "<grounding> An image of"

    @Option(name: .customLong("max-tokens"), help: "Most new tokens.")
    var maxTokens = 64

    @Option(help: "Also write the image with each phrase's boxes and label drawn (.png, or .jpg for JPEG).")
    var draw: String?

    func validate() throws {
        if let draw { try validateDrawDestination(draw) }
    }

    func run() throws {
        let session = try modelOptions.session()
        guard session.processor.supportsGrounding else {
            throw ValidationError("\(session.model.family) does not ground phrases: kosmos ground needs a Kosmos-2 directory")
        }
        var options = GenerationOptions()
        options.maxNewTokens = maxTokens
        options.noRepeatNgramSize = 3  // the converted checkpoint's generation default
        let input = try session.input(text: prompt, imageFiles: [URL(fileURLWithPath: image)])
        let fitted = try fitToContext(options, promptLength: input.tokens.count, context: session.model.contextLength)
        let result = session.processor.output(try session.model.generate(input, options: fitted), grounding: true)
        let text = result.text, entities = result.entities ?? []
        let size = try ImageDecoder.decode(contentsOf: URL(fileURLWithPath: image))
        struct Output: Encodable {
            struct Entity: Encodable { let phrase: String; let start: Int; let end: Int; let boxes: [[Double]]; let pixelBoxes: [[Int]] }
            let text: String
            let entities: [Entity]
        }
        let output = Output(text: text, entities: entities.map { e in
            Output.Entity(phrase: e.phrase, start: e.start, end: e.end, boxes: e.boxes, pixelBoxes: e.boxes.map { b in
                [Int((b[0] * Double(size.width)).rounded()), Int((b[1] * Double(size.height)).rounded()),
                 Int((b[2] * Double(size.width)).rounded()), Int((b[3] * Double(size.height)).rounded())]
            })
        })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        print(String(decoding: try encoder.encode(output), as: UTF8.self))
        if let draw { try drawGrounding(output.entities.map { ($0.phrase, $0.pixelBoxes) }, on: size, to: draw) }
    }
}

/// Prints generated text as it grows: decodes all ids so far and prints what is new (pieces can
/// merge across tokens, so decoding token by token would be wrong). Stops the generation when a stop
/// string appears (the text is cut before it); with `quiet`, prints one JSON object at the end.
final class TextStream {
    let quiet: Bool
    private var streamer: TextStreamer
    var ids: [Int] { streamer.ids }
    var text: String { streamer.text }

    /// Streams the text of the ids (EOS dropped) to standard output unless `quiet`, with
    /// `TextStreamer`'s stop strings and hold-back of unsettled text.
    init(tokenizer: Tokenizer, eos: Int?, stops: [String] = [], quiet: Bool = false) {
        self.quiet = quiet
        streamer = TextStreamer(stops: stops) { ids in tokenizer.decode(ids.filter { $0 != eos }) }
    }

    func add(_ id: Int) -> Bool {
        let delta = streamer.add(id)
        if !quiet && !delta.isEmpty {
            print(delta, terminator: "")
            fflush(nil)
        }
        return !streamer.stopped
    }

    /// Prints the finished texts of several prompts in order: one line each (newlines inside a
    /// text escaped as \\n), or with `json` one array of {ids, text} objects.
    static func finish(_ streams: [TextStream], json: Bool) {
        if json {
            struct Output: Encodable { let ids: [Int]; let text: String }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            if let data = try? encoder.encode(streams.map { Output(ids: $0.ids, text: $0.text) }) {
                print(String(decoding: data, as: UTF8.self))
            }
        } else {
            for stream in streams { print(stream.text.replacingOccurrences(of: "\n", with: "\\n")) }
        }
    }

    func finish() {
        let (rest, extends) = streamer.finish()
        if !quiet {
            // A detokenizer that changed earlier text: show the final text whole.
            print(extends ? rest : "\n" + streamer.text, terminator: "")
        }
        if quiet {
            struct Output: Encodable { let ids: [Int]; let text: String }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            if let data = try? encoder.encode(Output(ids: ids, text: text)) { print(String(decoding: data, as: UTF8.self)) }
        } else {
            print("")
        }
    }
}

/// Captions images with a model directory of any family, loaded once: `<image>` then the prompt,
/// laid out by the family's processor (Kosmos-2's grounding markup removed from the text).
struct Captioner {
    let session: ModelSession

    /// The text generated after the image and `prompt`.
    func caption(_ path: String, prompt: String, options: GenerationOptions) throws -> String {
        let input = try session.input(text: MediaKind.image.placeholder + prompt, imageFiles: [URL(fileURLWithPath: path)])
        let fitted = try fitToContext(options, promptLength: input.tokens.count, context: session.model.contextLength)
        return session.processor.output(try session.model.generate(input, options: fitted), grounding: false).text
    }
}

struct Caption: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Caption images: prompt \"An image of\", beam search (5 beams), one line per image.",
        discussion: "Works with Kosmos-1 and Kosmos-2 directories (Kosmos-2 uses its processor's prompt layout)."
    )

    @OptionGroup var modelOptions: ModelOptions

    @Argument(help: "Image files (JPEG or PNG).")
    var images: [String]

    @Option(help: "Prompt.")
    var prompt = "An image of"

    @Option(help: "Beams.")
    var beams = 5

    @Option(name: .customLong("max-tokens"), help: "Most new tokens.")
    var maxTokens = 30

    func validate() throws {
        guard !images.isEmpty else { throw ValidationError("give at least one image") }
        try validateBeams(beams)
    }

    func run() throws {
        var options = GenerationOptions()
        options.numBeams = beams
        options.maxNewTokens = maxTokens
        let captioner = Captioner(session: try modelOptions.session())
        for path in images {
            let caption = try captioner.caption(path, prompt: prompt, options: options)
            print("\(path)\t\(prompt) \(caption.trimmingCharacters(in: .whitespaces))")
            fflush(nil)
        }
    }
}
