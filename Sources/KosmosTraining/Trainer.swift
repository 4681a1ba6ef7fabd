import Foundation
import KosmosData
import KosmosModels
import KosmosNN
import KosmosTensor
import KosmosTokenizers
import KosmosVision

/// What the trainer reports after each optimizer step (for progress displays).
public struct StepReport: Sendable {
    public var step: Int
    public var totalSteps: Int
    public var result: TrainingStep.Result
    /// Throughput since the run (or the resumption) started.
    public var tokensPerSecond: Double
    public var imagesPerSecond: Double
    public var elapsed: Double
    /// Seconds left at the current pace.
    public var eta: Double
    /// Set when this step wrote a checkpoint.
    public var checkpoint: URL?
}

/// `kosmos train`: builds the model, the data pipeline and the optimizer from a
/// `TrainingConfiguration`, trains, logs metrics, and checkpoints so that a run killed at any
/// moment and resumed gives bit-identical weights and losses to one that was never interrupted.
public final class Trainer {
    public let configuration: TrainingConfiguration
    public let model: KosmosModel
    public let tokenizer: Tokenizer
    public let tokenizerFile: URL
    public let stepper: TrainingStep
    public let store: CheckpointStore
    /// The job's processes (one by default). Only rank 0 logs and writes checkpoints.
    public let communicator: Communicator
    /// The generator dropout draws from (saved in checkpoints).
    let generator: RandomGenerator
    let packer: SequencePacker
    let loaders: [PrefetchingLoader]
    let modelDirectory: URL?
    public private(set) var step = 0
    public private(set) var resumedFrom: URL?
    var tokensSeen = 0, imagesSeen = 0
    var logLossSum = 0.0, logSteps = 0

    public var metricsURL: URL { store.directory.appendingPathComponent("metrics.jsonl") }

    /// Builds everything; with `resume`, continues from the newest complete checkpoint in the run folder.
    /// With a distributed `communicator` every rank calls this (docs/distributed.md): rank 0's
    /// initial or loaded parameters are broadcast, and each rank reads its own shard of the data.
    public init(configuration c: TrainingConfiguration, resume: Bool,
                communicator: Communicator = SingleProcessCommunicator()) throws {
        configuration = c
        self.communicator = communicator
        store = CheckpointStore(directory: URL(fileURLWithPath: c.checkpoint.directory))
        var state: TrainerState? = nil
        var checkpoint: URL? = nil
        if resume {
            let newest = store.newest
            if communicator.isDistributed {
                // Every rank reads the checkpoint (its data position and, with ZeRO, its optimizer
                // shard), so all must see the same one: the run folder must be shared.
                let mine = newest?.step ?? -1
                let roots = Int(String(decoding: try communicator.broadcast(bytes: Array("\(mine)".utf8), root: 0), as: UTF8.self)) ?? -2
                guard roots == mine else {
                    throw TrainingError.distributed("rank \(communicator.rank) sees \(mine < 0 ? "no checkpoint" : "checkpoint step \(mine)") in \(store.directory.path) but rank 0 sees \(roots < 0 ? "none" : "step \(roots)"); checkpoint.directory must be a folder every rank shares (docs/distributed.md)")
                }
            }
            guard let newest else { throw TrainingError.noCheckpoint(directory: store.directory.path) }
            checkpoint = newest.url
            let savedConfig: TrainingConfiguration = try Trainer.readJSON(newest.url.appendingPathComponent("training_config.json"))
            let differences = c.resumeIncompatibilities(with: savedConfig)
            guard differences.isEmpty else { throw TrainingError.resumeMismatch(path: newest.url.path, fields: differences) }
            let saved: TrainerState = try Trainer.readJSON(newest.url.appendingPathComponent("trainer_state.json"))
            let savedWorld = saved.worldSize ?? 1
            guard savedWorld == communicator.worldSize else {
                throw TrainingError.worldSizeMismatch(path: newest.url.path, saved: savedWorld, current: communicator.worldSize)
            }
            if communicator.isDistributed {
                guard let ranks = saved.ranks, ranks.count == communicator.worldSize else {
                    throw TrainingError.checkpointRead(path: newest.url.path, reason: "trainer_state.json lacks the per-rank states of its \(savedWorld) processes")
                }
                // This rank's own place in the data and dropout stream.
                var mine = saved
                mine.rngState = ranks[communicator.rank].rngState
                mine.data = ranks[communicator.rank].data
                state = mine
            } else {
                state = saved
            }
        } else if let existing = store.newest {
            // Starting over in a folder with checkpoints would interleave two runs' files.
            throw TrainingError.runExists(directory: store.directory.path, step: existing.step)
        }
        resumedFrom = checkpoint

        // The model: initialised from the seed (so dropout's generator continues deterministically
        // after initialisation), then, when resuming or fine-tuning, given the saved weights.
        generator = RandomGenerator(seed: c.train.seed)
        modelDirectory = c.model.from.map { URL(fileURLWithPath: $0) }
        let modelConfiguration: KosmosConfiguration
        if let preset = c.model.preset {
            modelConfiguration = KosmosConfiguration.preset(named: preset)!
        } else if let inline = c.model.config {
            modelConfiguration = inline
        } else {
            let (data, type, url) = try ModelDirectory.configuration(in: modelDirectory!)
            // Training takes the families whose model is trainable here: Kosmos-1.
            guard ModelRegistry.family(modelType: type) == Kosmos1Family.entry else {
                throw ModelDirectoryError.unknownModelType(type, url, expected: Kosmos1Family.entry.modelTypes)
            }
            modelConfiguration = try ModelDirectory.decode(KosmosConfiguration.self, from: data, file: url)
            if let quantization = try ModelQuantizer.quantizationConfig(of: modelDirectory!) {
                throw ModelError.invalidInput("\(modelDirectory!.path) is quantized (\(quantization["format"] ?? "?")): quantized weights do not train; train from the float checkpoint it came from")
            }
        }
        model = try KosmosModel(configuration: modelConfiguration, generator: generator)
        if let weightsFrom = checkpoint ?? modelDirectory {
            try model.load(from: try ModelDirectory.weights(in: weightsFrom), sourceName: weightsFrom.lastPathComponent)
        }
        model.train()
        model.decoder.checkpointActivations = c.train.checkpointActivations
        model.applyVisionFreeze(c.freezePolicy)
        model.applyAudioFreeze(c.audioFreezePolicy)
        if communicator.isDistributed {
            // Identical parameters everywhere (rank 0's), whatever each rank initialised or loaded.
            for (_, tensor) in model.namedParameters() {
                try tensor.withUnsafeMutableBufferPointer { try communicator.broadcast($0, root: 0) }
            }
            // Each rank its own dropout stream; rank 0 keeps the seed's, as in one process.
            if communicator.rank > 0 {
                try generator.restore(state: RandomGenerator(seed: c.train.seed ^ (0xD1B5_4A32_D192_ED03 &* UInt64(communicator.rank))).state)
            }
        }

        // The tokenizer: the configured file, else the fine-tuned model's.
        guard let file = c.tokenizer.map({ URL(fileURLWithPath: $0) }) ?? modelDirectory.flatMap(ModelDirectory.tokenizerFile(in:)) else {
            throw ConfigurationError(field: "tokenizer", reason: "required: \(c.model.from ?? "the model") has no tokenizer file")
        }
        tokenizerFile = file
        tokenizer = try TokenizerLoader.load(file)
        if tokenizer.vocabularySize > modelConfiguration.vocabSize {
            throw ConfigurationError(field: "tokenizer", reason: "\(file.lastPathComponent) has \(tokenizer.vocabularySize) tokens but the model's vocabulary is \(modelConfiguration.vocabSize)")
        }

        let schedule = LearningRateSchedule(kind: LearningRateSchedule.Kind(rawValue: c.schedule.kind)!, peak: c.optimizer.lr,
                                            warmupSteps: c.schedule.warmupSteps, totalSteps: c.train.steps)
        stepper = TrainingStep(model: model, optimizer: c.optimizer, schedule: schedule, communicator: communicator,
                               distributed: c.distributed, computeDType: c.computeDType)

        (packer, loaders) = try Trainer.makeData(c, model: modelConfiguration, tokenizer: tokenizer,
                                                 modelDirectory: modelDirectory, resume: state?.data,
                                                 rank: communicator.rank, worldSize: communicator.worldSize)
        if let state, let checkpoint {
            do {
                try generator.restore(state: state.rngState)
                let optimizerFile = checkpoint.appendingPathComponent("optimizer.safetensors")
                if let sharded = stepper.sharded {
                    try sharded.loadState(steps: state.optimizerSteps, from: optimizerFile)
                } else {
                    try stepper.optimizer.loadState(named: stepper.trainable.map { ($0.name, $0.tensor) }, steps: state.optimizerSteps,
                                                    from: optimizerFile)
                }
            } catch let e as TrainingError {
                throw e
            } catch {
                throw TrainingError.checkpointRead(path: checkpoint.path, reason: "\(error)")
            }
            step = state.step
            tokensSeen = state.tokensSeen
            imagesSeen = state.imagesSeen
            logLossSum = state.logLossSum
            logSteps = state.logSteps
        }
    }

    deinit { for l in loaders { l.stop(timeout: 1) } }

    static func readJSON<T: Decodable>(_ url: URL) throws -> T {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw TrainingError.checkpointRead(path: url.path, reason: "missing")
        }
        do { return try JSONDecoder().decode(T.self, from: data) } catch {
            throw TrainingError.checkpointRead(path: url.path, reason: "\(error)")
        }
    }

    /// One loader and iterator per source, mixed by the packer. Each source's order is seeded by
    /// the run's seed and its index, so adding a source does not reshuffle the others.
    static func makeData(_ c: TrainingConfiguration, model m: KosmosConfiguration, tokenizer: Tokenizer,
                         modelDirectory: URL?, resume: PackerState?, rank: Int = 0, worldSize: Int = 1) throws -> (SequencePacker, [PrefetchingLoader]) {
        let tokens = PackingTokens(bos: m.bosTokenId, eos: m.eosTokenId, image: m.imageTokenId, imageEnd: m.imageEndTokenId,
                                   slot: m.slotTokenId, pad: m.padTokenId, slotsPerImage: m.numImageTokens,
                                   audio: m.audio.map { ($0.audioTokenId, $0.audioEndTokenId, $0.numAudioTokens) },
                                   video: m.video.map { ($0.videoTokenId, $0.videoEndTokenId) })
        let preprocessor = try ImageInput(modelDirectory: modelDirectory, imageSize: m.vision.imageSize).preprocessor
        let audio = try m.audio.map { try AudioPreparer(configuration: $0.featureExtractor, maxDuration: $0.maxDuration) }
        let video = m.video.map { VideoPreparer(sampling: .uniform($0.numFrames), preprocessor: preprocessor) }
        let preparer = try SamplePreparer(tokenizer: tokenizer, tokens: tokens, maxLength: c.data.sequenceLength, preprocessor: preprocessor,
                                          audio: audio, video: video)
        if let r = resume, r.positions.count != c.data.sources.count {
            throw TrainingError.checkpointRead(path: c.checkpoint.directory, reason: "saved data state has \(r.positions.count) sources, the configuration \(c.data.sources.count)")
        }
        var loaders: [PrefetchingLoader] = []
        var sources: [(PreparedSampleSource, Double)] = []
        for (i, s) in c.data.sources.enumerated() {
            var dataset: Dataset
            do {
                if s.path == "synthetic-motion" || s.path.hasPrefix("synthetic-motion:") {
                    let n = s.path.split(separator: ":").dropFirst().first.flatMap { Int($0) } ?? 10_000
                    guard let video = m.video else { throw DataError.invalidArgument("synthetic motion needs a model with video_config") }
                    dataset = try SyntheticMotionDataset(clips: n, baseSeed: s.syntheticSeed, frames: video.numFrames, size: m.vision.imageSize)
                } else if s.path == "synthetic-sounds" || s.path.hasPrefix("synthetic-sounds:") {
                    let n = s.path.split(separator: ":").dropFirst().first.flatMap { Int($0) } ?? 10_000
                    guard let audio = m.audio else { throw DataError.invalidArgument("synthetic sounds need a model with audio_config") }
                    dataset = try SyntheticSoundsDataset(clips: n, baseSeed: s.syntheticSeed, sampleRate: audio.featureExtractor.samplingRate,
                                                         duration: audio.featureExtractor.chunkLength)
                } else if s.path == "synthetic" || s.path.hasPrefix("synthetic:") {
                    let n = s.path.split(separator: ":").dropFirst().first.flatMap { Int($0) } ?? 10_000
                    dataset = try SyntheticShapesDataset(scenes: n, baseSeed: s.syntheticSeed,
                                                         mode: SyntheticShapesDataset.Mode(rawValue: s.syntheticMode) ?? .captions,
                                                         width: m.vision.imageSize, height: m.vision.imageSize)
                } else {
                    dataset = try DataFormat.open(s.path, imageDirectory: s.imageDir)
                }
            } catch {
                throw TrainingError.data("data.sources[\(i)] \(s.path): \(error)")
            }
            if !s.captionPrefix.isEmpty { dataset = PrefixedCaptions(dataset, prefix: s.captionPrefix) }
            let seed = c.train.seed &+ UInt64(i) &* 0x9E37_79B9
            // Rank r of W reads positions r, r+W, ... of each epoch's seeded order: disjoint shards.
            let iterator = try DatasetIterator(dataset: dataset, seed: seed, rank: rank, worldSize: worldSize, shuffle: c.data.shuffle,
                                               epochs: nil, resumeFrom: resume?.positions[i] ?? nil)
            let loader = try PrefetchingLoader(iterator: iterator, preparer: preparer,
                                               capacity: max(16, 2 * c.data.batchSize * c.train.gradAccumulation),
                                               workers: c.data.workers)
            loaders.append(loader)
            sources.append((loader, s.weight))
        }
        let packer = try SequencePacker(sources: sources, maxLength: c.data.sequenceLength, tokens: tokens, resume: resume)
        return (packer, loaders)
    }

    /// The next micro-batch from the packer, as the model's batch.
    func nextBatch() throws -> KosmosBatch {
        let packed = packer.nextBatch(configuration.data.batchSize)
        guard !packed.isEmpty else {
            throw TrainingError.data("the data sources gave no usable sample (skipped: \(packer.skips))")
        }
        let sequences = packed.map { p in
            KosmosSequence(tokens: Array(p.tokens.prefix(p.length)), images: p.images.map { Tensor($0) },
                           audio: p.audio.map { Tensor(shape: [$0.featureSize, $0.frames], scalars: $0.values) },
                           videos: p.videos.map { frames in Tensor.concatenate(frames.map { Tensor($0).unsqueezed(0) }, axis: 0) })
        }
        return try model.makeBatch(sequences)
    }

    /// Asked after every step whether to stop there (a SIGTERM from a scheduler, say); when it says
    /// yes on any rank, every rank stops after the same step and a checkpoint of it is written.
    public var shouldStop: () -> Bool = { false }

    /// How a run ended: at `train.steps` (or `stopAfter`), or at a step where `shouldStop` said so.
    public enum Outcome: Equatable {
        case finished
        case stopped(step: Int)
    }

    /// Whether to stop after this step, agreed by every rank (any rank's yes, summed in one
    /// one-number all-reduce per step in a distributed run).
    func stopAgreed() throws -> Bool {
        var flag: [Double] = [shouldStop() ? 1 : 0]
        if communicator.isDistributed {
            try flag.withUnsafeMutableBufferPointer { try communicator.allReduce($0, .sum) }
        }
        return flag[0] > 0
    }

    /// Trains until `train.steps` (or `stopAfter` more steps, for tests), logging and checkpointing;
    /// stops early, with a checkpoint of the last step, when `shouldStop` asks.
    @discardableResult
    public func run(stopAfter: Int? = nil, report: (StepReport) -> Void = { _ in }) throws -> Outcome {
        let total = configuration.train.steps
        let root = communicator.isRoot
        var metrics: MetricsLog? = nil
        if root {
            try FileManager.default.createDirectory(at: store.directory, withIntermediateDirectories: true)
            store.removePartials()
            metrics = try MetricsLog(url: metricsURL, truncatingAfter: step)
        }
        let start = Date()
        var runTokens = 0, runImages = 0, runSteps = 0
        let last = stopAfter.map { min(total, step + $0) } ?? total
        while step < last {
            var micro: [KosmosBatch] = []
            for _ in 0..<configuration.train.gradAccumulation { micro.append(try nextBatch()) }
            let result = try stepper.step(index: step, microBatches: micro)
            step += 1
            guard result.loss.isFinite else { throw TrainingError.diverged(step: step, loss: result.loss) }
            tokensSeen += result.tokens; imagesSeen += result.images
            runTokens += result.tokens; runImages += result.images; runSteps += 1
            logLossSum += result.loss; logSteps += 1
            let elapsed = Date().timeIntervalSince(start)
            if step % configuration.log.every == 0 || step == total {
                try metrics?.append(MetricsRecord(step: step, loss: logLossSum / Double(logSteps), lr: result.learningRate,
                                                 gradNorm: result.gradNorm, tokens: tokensSeen, images: imagesSeen,
                                                 tokensPerSecond: Double(runTokens) / max(elapsed, 1e-9),
                                                 imagesPerSecond: Double(runImages) / max(elapsed, 1e-9), elapsed: elapsed))
                logLossSum = 0; logSteps = 0
            }
            var saved: URL? = nil
            if (configuration.checkpoint.every > 0 && step % configuration.checkpoint.every == 0) || step == total {
                saved = try saveCheckpoint()
            }
            let stopping = try step < last && stopAgreed()
            if stopping, saved == nil { saved = try saveCheckpoint() }
            let pace = elapsed / Double(runSteps)
            report(StepReport(step: step, totalSteps: total, result: result,
                              tokensPerSecond: Double(runTokens) / max(elapsed, 1e-9),
                              imagesPerSecond: Double(runImages) / max(elapsed, 1e-9), elapsed: elapsed,
                              eta: pace * Double(total - step), checkpoint: saved))
            if stopping { return .stopped(step: step) }
        }
        return .finished
    }

    /// Writes checkpoint `step` (model directory + optimizer + trainer state) atomically. In a
    /// distributed run every rank calls it (the ranks' states, and with ZeRO the optimizer
    /// shards, are gathered) and rank 0 writes.
    @discardableResult
    public func saveCheckpoint() throws -> URL {
        let named = stepper.trainable.map { ($0.name, $0.tensor) }
        var ranks: [TrainerState.RankState]? = nil
        if communicator.isDistributed {
            let mine = try JSONEncoder().encode(TrainerState.RankState(rngState: generator.state, data: packer.state))
            ranks = try communicator.allGather(bytes: [UInt8](mine)).enumerated().map { r, bytes in
                do { return try JSONDecoder().decode(TrainerState.RankState.self, from: Data(bytes)) } catch {
                    throw TrainingError.distributed("rank \(r) sent an unreadable state for the checkpoint: \(error)")
                }
            }
        }
        let gathered = try stepper.sharded?.gatherState()
        guard communicator.isRoot else { return store.directory.appendingPathComponent(CheckpointStore.name(step: step)) }
        return try store.write(step: step, keep: configuration.checkpoint.keep) { dir in
            try model.save(directory: dir)
            try copyFile(tokenizerFile, to: dir.appendingPathComponent(tokenizerFile.pathExtension == "json" ? "tokenizer.json" : "tokenizer.model"))
            if let source = modelDirectory {
                for name in ["preprocessor_config.json", "processor_config.json"] {
                    let f = source.appendingPathComponent(name)
                    if FileManager.default.fileExists(atPath: f.path) { try copyFile(f, to: dir.appendingPathComponent(name)) }
                }
            }
            let optimizerFile = dir.appendingPathComponent("optimizer.safetensors")
            let steps = try gathered.map { try stepper.sharded!.writeState($0, to: optimizerFile) }
                ?? stepper.optimizer.saveState(named: named, to: optimizerFile)
            let state = TrainerState(step: step, rngState: generator.state, data: packer.state, optimizerSteps: steps,
                                     tokensSeen: tokensSeen, imagesSeen: imagesSeen, logLossSum: logLossSum, logSteps: logSteps,
                                     worldSize: communicator.isDistributed ? communicator.worldSize : nil, ranks: ranks)
            try ModelDirectory.writeJSON(state, to: dir.appendingPathComponent("trainer_state.json"))
            try ModelDirectory.writeJSON(configuration, to: dir.appendingPathComponent("training_config.json"))
        }
    }

    func copyFile(_ from: URL, to: URL) throws {
        guard let data = FileManager.default.contents(atPath: from.path) else {
            throw AtomicFileError(path: from.path, operation: "reading", reason: "cannot read")
        }
        try AtomicFile.write([UInt8](data), to: to)
    }
}

/// An image- or audio-caption source whose caption text gets a fixed prefix ("An image of").
final class PrefixedCaptions: Dataset {
    let base: Dataset
    let prefix: String
    init(_ base: Dataset, prefix: String) { self.base = base; self.prefix = prefix }
    var name: String { base.name }
    var count: Int { base.count }
    var indexingSkips: SkipCounts { base.indexingSkips }
    func sample(at index: Int) throws -> Sample {
        var s = try base.sample(at: index)
        guard s.kind == .imageCaption || s.kind == .audioCaption || s.kind == .videoCaption, let i = s.segments.lastIndex(where: { if case .text = $0 { return true } else { return false } }),
              case .text(let t) = s.segments[i] else { return s }
        s.segments[i] = .text(prefix + " " + t)
        return s
    }
}
