import ArgumentParser
import Foundation
import KosmosAudio
import KosmosPlot
import KosmosModels
import KosmosTensor
import KosmosTraining
import KosmosVision

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a Kosmos model from a JSON configuration (docs/training.md).",
        discussion: """
        Checkpoints go to checkpoint.directory as step-NNNNNNNN/ folders (each a model folder that \
        caption/generate/eval accept, plus optimizer and data state); `latest` points at the newest. \
        metrics.jsonl there has one line per logged step (`kosmos plot` draws it).
        """
    )

    @Option(help: "The training configuration (JSON).")
    var config: String?

    @Option(name: .customLong("set"), help: ArgumentHelp("Override a field, e.g. --set optimizer.lr=1e-4 (repeatable).", valueName: "KEY=VALUE"))
    var overrides: [String] = []

    @Option(help: "Compute dtype: float32, or bfloat16 for mixed precision (bfloat16 products, float32 master weights and AdamW states). Sets train.dtype.")
    var dtype: String?

    @Flag(help: "Continue from the newest complete checkpoint in checkpoint.directory (an error when there is none). `--resume auto` continues from it if there is one and starts afresh otherwise (a job that a scheduler requeues).")
    var resume = false

    @Flag(name: .customLong("resume-auto"), help: ArgumentHelp("The same as `--resume auto`.", visibility: .hidden))
    var resumeAuto = false

    @Flag(help: "Print the effective configuration and exit without training.")
    var dryRun = false

    func run() throws {
        guard config != nil || !overrides.isEmpty else {
            throw ValidationError("give --config FILE (and/or --set KEY=VALUE overrides); see docs/training.md")
        }
        let configuration = try TrainingConfiguration.load(file: config.map { URL(fileURLWithPath: $0) },
                                                           overrides: overrides + (dtype.map { ["train.dtype=\"\($0)\""] } ?? []))
        if dryRun {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(configuration), as: UTF8.self))
            return
        }
        let communicator = try makeCommunicator(timeoutSeconds: configuration.distributed.timeoutSeconds)
        guard communicator.isDistributed else {
            try train(configuration, communicator: communicator)
            try communicator.finalize()   // mpirun -np 1: MPI expects MPI_Finalize before exit
            return
        }
        // One rank's error must end every rank (they would otherwise wait in the next collective).
        do {
            try train(configuration, communicator: communicator)
            try communicator.finalize()
        } catch {
            let message = (error as? LocalizedError)?.errorDescription ?? "\(error)"
            FileHandle.standardError.write(Data("kosmos rank \(communicator.rank) of \(communicator.worldSize): error: \(message)\n".utf8))
            communicator.abort(code: 1)
        }
    }

    /// The status `kosmos train` exits with after SIGTERM or SIGINT stopped it at a step boundary
    /// and wrote that step's checkpoint (EX_TEMPFAIL: run it again with --resume auto).
    static let stoppedStatus: Int32 = 75

    func train(_ configuration: TrainingConfiguration, communicator: Communicator) throws {
        let resuming = resume || (resumeAuto && CheckpointStore(directory: URL(fileURLWithPath: configuration.checkpoint.directory)).newest != nil)
        let trainer = try Trainer(configuration: configuration, resume: resuming, communicator: communicator)
        let stop = StopRequest(rank: communicator.rank)
        trainer.shouldStop = { stop.requested }
        let root = communicator.isRoot
        let trainable = trainer.stepper.trainable.reduce(0) { $0 + $1.tensor.count }
        var header = "model: \(trainer.model.parameterCount) parameters (\(trainable) trained), tokenizer \(trainer.tokenizerFile.lastPathComponent)"
        if communicator.isDistributed || configuration.distributed.zeroStage > 0 {
            header += "\ndistributed: \(communicator.worldSize) process(es) over \(communicator.name), "
                + "global batch \(communicator.worldSize) × \(configuration.train.gradAccumulation) × \(configuration.data.batchSize) sequences, "
                + "ZeRO stage \(configuration.distributed.zeroStage) (AdamW state per process: \(trainer.stepper.optimizerStateElements) floats)"
        }
        if configuration.computeDType == .bfloat16 {
            header += "\nmixed precision: bfloat16 products, float32 master weights, gradients and AdamW states"
        }
        if let from = trainer.resumedFrom { header += "\nresuming from \(from.path) at step \(trainer.step)" }
        if root { FileHandle.standardError.write(Data((header + "\n").utf8)) }
        let display = ProgressDisplay(every: configuration.log.every)
        let start = Date()
        let outcome = try trainer.run { if root { display.update($0) } }
        if case .stopped(let step) = outcome {
            if root {
                display.finish()
                print("stopped at step \(step) of \(configuration.train.steps) by \(stop.signalName); checkpoint: \(trainer.store.newest?.url.path ?? "?")")
                print("continue with: kosmos train --resume auto (same configuration)")
            }
            try communicator.finalize()
            Foundation.exit(Self.stoppedStatus)
        }
        guard root else { return }
        display.finish()
        let seconds = Date().timeIntervalSince(start)
        print("trained to step \(trainer.step) in \(ProgressDisplay.duration(seconds)); model: \(trainer.store.newest?.url.path ?? "?")")
        if communicator.isDistributed || configuration.distributed.zeroStage > 0 {
            print(String(format: "gradient synchronisation and optimizer update: %.1f s (%.0f%% of the run, waiting for the slowest rank included)",
                         trainer.stepper.synchronizationSeconds, 100 * trainer.stepper.synchronizationSeconds / max(seconds, 1e-9)))
        }
        print("metrics: \(trainer.metricsURL.path)")
    }
}

/// SIGTERM or SIGINT during training: the first asks the trainer to stop at the next step boundary
/// (with a checkpoint of that step); a second one ends the process at once.
final class StopRequest: @unchecked Sendable {
    private let lock = NSLock()
    private var received: Int32 = 0
    private var sources: [DispatchSourceSignal] = []

    init(rank: Int) {
        for number in [SIGTERM, SIGINT] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [weak self] in
                guard let self else { return }
                let first = self.lock.withLock { () -> Bool in
                    defer { if self.received == 0 { self.received = number } }
                    return self.received == 0
                }
                guard first else { Foundation.exit(128 + number) }
                if rank == 0 {
                    FileHandle.standardError.write(Data("\n\(self.signalName): stopping after this step and writing its checkpoint (again to stop at once)\n".utf8))
                }
            }
            source.resume()
            sources.append(source)
        }
    }

    var requested: Bool { lock.withLock { received != 0 } }
    var signalName: String { lock.withLock { received == SIGINT ? "SIGINT" : "SIGTERM" } }
}

struct EvalShapes: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shapes",
        abstract: "Caption held-out synthetic shapes scenes with a Kosmos-1 model and report exact-match accuracy.",
        discussion: """
        Scene i is drawn with seed --seed + i at the vision tower's image size; the training demo \
        draws its scenes from seeds below 1,000,000, so the default seeds were never trained on.
        """
    )

    @Option(help: "Kosmos-1 model directory (e.g. runs/shapes-demo/latest); or ORG/NAME[@REVISION] from the Hub cache.")
    var model: String

    @OptionGroup var hub: HubPullOption

    @Option(help: "Held-out scenes to caption.")
    var count = 200

    @Option(help: "Seed of the first held-out scene.")
    var seed: UInt64 = 1_000_000_000

    @Option(help: "Prompt after the image (the demo trains captions as \"An image of ...\").")
    var prompt = "An image of"

    @Option(help: "Beams (1: greedy).")
    var beams = 1

    @Option(help: "Examples to print next to the truth.")
    var show = 10

    @Option(help: "Write the accuracy and every caption to this JSON file.")
    var out: String?

    @Option(name: .customLong("save-images"), help: "Write the shown scenes as PNG files into this folder (to try with kosmos caption).")
    var saveImages: String?

    @OptionGroup var precision: PrecisionOptions

    mutating func validate() throws {
        model = try hub.resolve(model)
        guard count >= 1 else { throw ValidationError("--count must be at least 1") }
        guard beams >= 1 else { throw ValidationError("--beams must be at least 1") }
    }

    func run() throws {
        let dtype = try precision.apply(default: PrecisionOptions.inferenceDefault)
        let session = try KosmosSession(directory: URL(fileURLWithPath: model), tokenizer: nil, dtype: dtype)
        let size = session.model.configuration.vision.imageSize
        let eos = session.model.configuration.eosTokenId
        var options = GenerationOptions()
        options.maxNewTokens = 24
        options.numBeams = beams
        let promptTokens = try session.model.promptTokens("<image>" + prompt, imageCount: 1, encode: session.tokenizer.encode)
        struct Row: Codable { let seed: UInt64; let truth: String; let predicted: String; let correct: Bool }
        var rows: [Row] = []
        let start = Date()
        for i in 0..<count {
            let scene = SyntheticShapes.scene(seed: seed &+ UInt64(i), width: size, height: size)
            let pixels = Tensor(try session.images.preprocessor.preprocess(scene.image, source: "scene \(i)"))
            let ids = try session.model.generate(KosmosSequence(tokens: promptTokens, images: [pixels]), options: options)
            let predicted = session.tokenizer.decode(ids.filter { $0 != eos }).trimmingCharacters(in: .whitespaces)
            rows.append(Row(seed: seed &+ UInt64(i), truth: scene.caption, predicted: predicted, correct: predicted == scene.caption))
            if let saveImages, i < show {
                let folder = URL(fileURLWithPath: saveImages)
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                try ImageWriter.write(scene.image, to: folder.appendingPathComponent("scene-\(seed &+ UInt64(i)).png"))
            }
        }
        let seconds = Date().timeIntervalSince(start)
        let correct = rows.filter(\.correct).count
        for r in rows.prefix(show) {
            print("\(r.correct ? "ok  " : "MISS") \(r.predicted)\n     truth: \(r.truth)")
        }
        let accuracy = Double(correct) / Double(rows.count)
        print(String(format: "exact match: %d/%d = %.1f%% (%.1f s, %.0f ms per caption, weights %@)", correct, rows.count, 100 * accuracy,
                     seconds, 1000 * seconds / Double(rows.count), dtype.rawValue))
        struct Report: Codable { let accuracy: Double; let correct: Int; let count: Int; let captions: [Row] }
        try writeReport(Report(accuracy: accuracy, correct: correct, count: rows.count, captions: rows), to: out)
    }
}

/// Writes a held-out eval's report (`--out`) as pretty JSON with sorted keys; nothing without a path.
func writeReport<T: Encodable>(_ report: T, to path: String?) throws {
    guard let path else { return }
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    try encoder.encode(report).write(to: URL(fileURLWithPath: path))
}

/// `kosmos eval sounds`: the audio demo's held-out clips (docs/audio.md).
struct EvalSounds: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sounds",
        abstract: "Caption held-out synthetic sound clips with a Kosmos-1 model that has audio_config and report exact-match accuracy.",
        discussion: """
        Clip i is synthesised with seed --seed + i (SyntheticSounds); the audio demo trains on seeds below 1,000,000, \
        so the default seeds were never trained on. Also reports what a model blind to the order of events could \
        score at best: for each set of events, only its most frequent order in the held-out clips.
        """
    )

    @Option(help: "Kosmos-1 model directory with audio_config (e.g. runs/audio-demo/latest); or ORG/NAME[@REVISION] from the Hub cache.")
    var model: String

    @OptionGroup var hub: HubPullOption

    @Option(help: "Held-out clips to caption.")
    var count = 200

    @Option(help: "Seed of the first held-out clip.")
    var seed: UInt64 = 1_000_000_000

    @Option(help: "Prompt after the clip (the demo trains captions as \"Sounds: ...\").")
    var prompt = "Sounds:"

    @Option(help: "Examples to print next to the truth.")
    var show = 10

    @Option(help: "Write the accuracy and every caption to this JSON file.")
    var out: String?

    @Option(name: .customLong("save-audio"), help: "Write the shown clips as 16-bit WAV files into this folder (to try with kosmos generate --audio).")
    var saveAudio: String?

    @OptionGroup var precision: PrecisionOptions

    mutating func validate() throws {
        model = try hub.resolve(model)
        guard count >= 1 else { throw ValidationError("--count must be at least 1") }
    }

    func run() throws {
        let dtype = try precision.apply(default: PrecisionOptions.inferenceDefault)
        let session = try KosmosSession(directory: URL(fileURLWithPath: model), tokenizer: nil, dtype: dtype)
        guard let audio = session.audio else { throw CommandError("\(model): the model has no audio_config") }
        let rate = audio.configuration.featureExtractor.samplingRate, duration = audio.configuration.featureExtractor.chunkLength
        let eos = session.model.configuration.eosTokenId
        var options = GenerationOptions()
        options.maxNewTokens = 16
        let promptTokens = try session.model.promptTokens("<audio>" + prompt, imageCount: 0, audioCount: 1, encode: session.tokenizer.encode)
        struct Row: Codable { let seed: UInt64; let truth: String; let predicted: String; let correct: Bool }
        var rows: [Row] = []
        var orders: [String: [String: Int]] = [:]   // the events as a sorted bag → how often each order occurs
        let start = Date()
        for i in 0..<count {
            let clip = SyntheticSounds.clip(seed: seed &+ UInt64(i), sampleRate: rate, duration: duration)
            let features = audio.features(AudioClip(samples: clip.samples, sampleRate: rate, sourceRate: rate, sourceChannels: 1, codec: "synthetic")).tensor
            let ids = try session.model.generate(KosmosSequence(tokens: promptTokens, audio: [features]), options: options)
            let predicted = session.tokenizer.decode(ids.filter { $0 != eos }).trimmingCharacters(in: .whitespaces)
            rows.append(Row(seed: seed &+ UInt64(i), truth: clip.caption, predicted: predicted, correct: predicted == clip.caption))
            orders[clip.events.map(\.rawValue).sorted().joined(separator: " "), default: [:]][clip.caption, default: 0] += 1
            if let saveAudio, i < show {
                let folder = URL(fileURLWithPath: saveAudio)
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                let bytes = WAVReader.encode16(PCMAudio(samples: clip.samples, channels: 1, sampleRate: rate))
                try Data(bytes).write(to: folder.appendingPathComponent("clip-\(seed &+ UInt64(i)).wav"))
            }
            reportProgress(i + 1, of: count, since: start)
        }
        let seconds = Date().timeIntervalSince(start)
        let correct = rows.filter(\.correct).count
        for r in rows.prefix(show) {
            print("\(r.correct ? "ok  " : "MISS") \(r.predicted)\n     truth: \(r.truth)")
        }
        let accuracy = Double(correct) / Double(rows.count)
        let orderBlind = Double(orders.values.map { $0.values.max() ?? 0 }.reduce(0, +)) / Double(rows.count)
        print(String(format: "exact match: %d/%d = %.1f%% (%.1f s, %.0f ms per clip, weights %@)", correct, rows.count, 100 * accuracy,
                     seconds, 1000 * seconds / Double(rows.count), dtype.rawValue))
        print(String(format: "an order-blind model scores at most %.1f%% here (each set of events given its most frequent order)", 100 * orderBlind))
        struct Report: Codable { let accuracy: Double; let orderBlindBound: Double; let correct: Int; let count: Int; let captions: [Row] }
        try writeReport(Report(accuracy: accuracy, orderBlindBound: orderBlind, correct: correct, count: rows.count, captions: rows), to: out)
    }
}

/// `kosmos eval motion`: the video demo's held-out clips (docs/video.md).
struct EvalMotion: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "motion",
        abstract: "Caption held-out synthetic motion clips with a Kosmos-1 model that has video_config; report exact match, and again with one frame repeated.",
        discussion: """
        Clip i is drawn with seed --seed + i (SyntheticMotion), encoded to an MJPEG AVI through FFmpeg and read back as any \
        video file is; the video demo trains on seeds below 1,000,000. The same model is then given the clip's middle \
        frame repeated num_frames times: a caption that needs the motion cannot be right then, except by chance.
        """
    )

    @Option(help: "Kosmos-1 model directory with video_config (e.g. runs/video-demo/latest); or ORG/NAME[@REVISION] from the Hub cache.")
    var model: String

    @OptionGroup var hub: HubPullOption

    @Option(help: "Held-out clips to caption.")
    var count = 200

    @Option(help: "Seed of the first held-out clip.")
    var seed: UInt64 = 1_000_000_000

    @Option(help: "Prompt after the video (the demo trains captions as \"A video of ...\").")
    var prompt = "A video of"

    @Option(help: "Examples to print next to the truth.")
    var show = 10

    @Option(help: "Write the accuracies and every caption to this JSON file.")
    var out: String?

    @Option(name: .customLong("save-videos"), help: "Write the shown clips' AVI files into this folder (to try with kosmos generate --video).")
    var saveVideos: String?

    @OptionGroup var precision: PrecisionOptions

    mutating func validate() throws {
        model = try hub.resolve(model)
        guard count >= 1 else { throw ValidationError("--count must be at least 1") }
    }

    func run() throws {
        let dtype = try precision.apply(default: PrecisionOptions.inferenceDefault)
        let session = try KosmosSession(directory: URL(fileURLWithPath: model), tokenizer: nil, dtype: dtype)
        guard let videos = session.videos else { throw CommandError("\(model): the model has no video_config") }
        let frames = videos.configuration.numFrames, size = session.model.configuration.vision.imageSize
        let eos = session.model.configuration.eosTokenId
        var options = GenerationOptions()
        options.maxNewTokens = 16
        let promptTokens = try session.model.promptTokens("<video>" + prompt, imageCount: 0, videoFrames: [frames], encode: session.tokenizer.encode)
        func caption(_ pixels: Tensor) throws -> String {
            let ids = try session.model.generate(KosmosSequence(tokens: promptTokens, videos: [pixels]), options: options)
            return session.tokenizer.decode(ids.filter { $0 != eos }).trimmingCharacters(in: .whitespaces)
        }
        struct Row: Codable { let seed: UInt64; let truth: String; let predicted: String; let correct: Bool; let oneFrame: String; let oneFrameCorrect: Bool }
        var rows: [Row] = []
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kosmos-eval-motion-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let start = Date()
        for i in 0..<count {
            let s = seed &+ UInt64(i)
            let clip = SyntheticMotion.clip(seed: s, frames: frames, size: size)
            let file = folder.appendingPathComponent("clip-\(s).avi")
            try VideoDecoder.encode(clip.frames, fps: 8, format: .aviMJPEG, to: file)
            let read = try videos.load(file)
            let predicted = try caption(read.pixels)
            let middle = read.pixels.narrowed(axis: 0, start: read.pixels.shape[0] / 2, length: 1)
            let still = try caption(Tensor.concatenate([Tensor](repeating: middle, count: read.pixels.shape[0]), axis: 0))
            rows.append(Row(seed: s, truth: clip.caption, predicted: predicted, correct: predicted == clip.caption,
                            oneFrame: still, oneFrameCorrect: still == clip.caption))
            if let saveVideos, i < show {
                let target = URL(fileURLWithPath: saveVideos)
                try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
                try? FileManager.default.removeItem(at: target.appendingPathComponent(file.lastPathComponent))
                try FileManager.default.copyItem(at: file, to: target.appendingPathComponent(file.lastPathComponent))
            }
            try? FileManager.default.removeItem(at: file)
            reportProgress(i + 1, of: count, since: start)
        }
        let seconds = Date().timeIntervalSince(start)
        for r in rows.prefix(show) {
            print("\(r.correct ? "ok  " : "MISS") \(r.predicted)\n     truth: \(r.truth)\n     one frame: \(r.oneFrame)")
        }
        let accuracy = Double(rows.filter(\.correct).count) / Double(rows.count)
        let still = Double(rows.filter(\.oneFrameCorrect).count) / Double(rows.count)
        print(String(format: "exact match: %d/%d = %.1f%% (%.1f s for both passes, weights %@)", rows.filter(\.correct).count, rows.count,
                     100 * accuracy, seconds, dtype.rawValue))
        print(String(format: "one frame repeated: %.1f%% exact (the motion is not in one frame)", 100 * still))
        struct Report: Codable { let accuracy: Double; let oneFrameAccuracy: Double; let count: Int; let captions: [Row] }
        try writeReport(Report(accuracy: accuracy, oneFrameAccuracy: still, count: rows.count, captions: rows), to: out)
    }
}

struct Plot: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw the loss and learning-rate curves of a metrics.jsonl as an SVG.",
        discussion: "The loss panel shows the raw loss faintly and a bias-corrected exponential moving average boldly (as TensorBoard smooths)."
    )

    @Argument(help: "metrics.jsonl written by kosmos train.")
    var metrics: String

    @Option(name: .shortAndLong, help: "The SVG file to write.")
    var output: String

    @Option(help: "Smoothing of the loss curve, in [0, 1) (0: none).")
    var smoothing = 0.9

    @Option(help: "Title (default: the metrics file's folder).")
    var title: String?

    func run() throws {
        let url = URL(fileURLWithPath: metrics)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw ValidationError("\(metrics): cannot read the file")
        }
        let svg: String
        do {
            svg = try MetricsPlot.svg(jsonl: data, smoothing: smoothing, title: title ?? url.deletingLastPathComponent().lastPathComponent)
        } catch {
            throw ValidationError("\(metrics): \(error)")
        }
        try AtomicFile.write(Array(svg.utf8), to: URL(fileURLWithPath: output))
        print("wrote \(output)")
    }
}
