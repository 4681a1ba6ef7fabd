import Foundation
import KosmosModels
import KosmosTensor

/// Why a training configuration was refused. Every message names the field (`optimizer.lr`) so the
/// user can fix the file or the `--set` override without guessing.
public struct ConfigurationError: Error, CustomStringConvertible, LocalizedError, Equatable {
    public let field: String
    public let reason: String
    public init(field: String, reason: String) { self.field = field; self.reason = reason }
    public var description: String { field.isEmpty ? reason : "\(field): \(reason)" }
    public var errorDescription: String? { description }
}

/// `kosmos train --config FILE` (docs/training.md). Every section has defaults; the file only
/// needs what differs. Field names are snake_case in JSON.
public struct TrainingConfiguration: Codable, Equatable, Sendable {
    /// Where the model comes from: exactly one of a preset name, an inline Kosmos-1 configuration,
    /// or an existing model directory (fine-tuning).
    public struct Model: Codable, Equatable, Sendable {
        public var preset: String?
        public var config: KosmosConfiguration?
        public var from: String?
        public init(preset: String? = nil, config: KosmosConfiguration? = nil, from: String? = nil) {
            self.preset = preset; self.config = config; self.from = from
        }
    }

    /// One data source. `path` is a file or folder in a format of docs/data.md, or `synthetic:N`
    /// (N synthetic shapes scenes); `weight` is its share of the training tokens.
    public struct Source: Codable, Equatable, Sendable {
        public var path: String
        public var weight: Double = 1
        /// COCO captions JSON: the folder of the images (default: next to the JSON).
        public var imageDir: String?
        /// Synthetic shapes: scene i is drawn with seed `syntheticSeed + i`, at the vision tower's size.
        public var syntheticSeed: UInt64 = 0
        /// Synthetic shapes: "captions" (default) or "questions".
        public var syntheticMode: String = "captions"
        /// Text prepended to every caption of an image-caption source ("An image of"), so that the
        /// trained model continues `kosmos caption`'s prompt. Empty: none.
        public var captionPrefix: String = ""
        public init(path: String) { self.path = path }
        enum CodingKeys: String, CodingKey {
            case path, weight
            case imageDir = "image_dir", syntheticSeed = "synthetic_seed", syntheticMode = "synthetic_mode"
            case captionPrefix = "caption_prefix"
        }
    }

    public struct Data: Codable, Equatable, Sendable {
        public var sources: [Source] = []
        /// Packed sequence length in tokens (image slots included).
        public var sequenceLength = 512
        /// Sequences per micro-batch.
        public var batchSize = 8
        public var shuffle = true
        /// Background threads decoding and preprocessing images.
        public var workers = 2
        public init() {}
        enum CodingKeys: String, CodingKey {
            case sources, shuffle, workers
            case sequenceLength = "sequence_length", batchSize = "batch_size"
        }
    }

    public struct Optimizer: Codable, Equatable, Sendable {
        /// Peak learning rate (the paper's 2e-4).
        public var lr = 2e-4
        public var beta1 = 0.9
        public var beta2 = 0.98
        public var eps = 1e-6
        public var weightDecay = 0.01
        /// Clip the global gradient norm to this; 0 disables clipping.
        public var maxGradNorm = 1.0
        public init() {}
        enum CodingKeys: String, CodingKey {
            case lr, beta1, beta2, eps
            case weightDecay = "weight_decay", maxGradNorm = "max_grad_norm"
        }
    }

    public struct Schedule: Codable, Equatable, Sendable {
        /// "linear" (warmup then linear decay to 0), "cosine" or "constant" (after warmup).
        public var kind = "linear"
        public var warmupSteps = 375
        public init() {}
        enum CodingKeys: String, CodingKey { case kind, warmupSteps = "warmup_steps" }
    }

    public struct Train: Codable, Equatable, Sendable {
        /// Optimizer steps.
        public var steps = 1000
        /// Micro-batches per optimizer step.
        public var gradAccumulation = 1
        /// Seeds the model initialisation, dropout and the data order.
        public var seed: UInt64 = 0
        /// "none", "all" or "all-but-last-layer" (the paper's choice for a pretrained CLIP).
        public var visionFreeze = VisionFreezePolicy.allButLastLayer.rawValue
        /// The same for the audio encoder (a model with audio_config): its last layer and final
        /// layer_norm train under "all-but-last-layer".
        public var audioFreeze = VisionFreezePolicy.allButLastLayer.rawValue
        /// "float32", or "bfloat16" for mixed precision: bfloat16 products (forward and backward)
        /// with float32 master weights, AdamW states and everything else (docs/precision.md).
        public var dtype = "float32"
        /// Recompute each decoder layer in the backward pass instead of keeping its activations
        /// (the same gradients; memory per sequence of one layer's activations, for long sequences).
        public var checkpointActivations = false
        public init() {}
        enum CodingKeys: String, CodingKey {
            case steps, seed, dtype
            case gradAccumulation = "grad_accumulation", visionFreeze = "vision_freeze", audioFreeze = "audio_freeze"
            case checkpointActivations = "checkpoint_activations"
        }
    }

    public struct Checkpoint: Codable, Equatable, Sendable {
        /// The run's folder: checkpoints (step-NNNNNNNN/), metrics.jsonl and final/ live here.
        public var directory = "runs/kosmos"
        /// Save every N optimizer steps (0: only at the end).
        public var every = 500
        /// Keep the newest K checkpoints (the final model is kept separately).
        public var keep = 3
        public init() {}
    }

    public struct Log: Codable, Equatable, Sendable {
        /// Write a metrics line every N steps.
        public var every = 10
        public init() {}
    }

    /// Data-parallel training across processes (docs/distributed.md); ignored by a single process
    /// unless `zero_stage` is 1 (which then runs the sharded optimizer with one shard).
    public struct Distributed: Codable, Equatable, Sendable {
        /// 0: every rank keeps the whole AdamW state and all-reduces gradients; 1: ZeRO stage 1,
        /// optimizer state sharded across ranks (reduce-scatter gradients, all-gather parameters).
        public var zeroStage = 0
        /// Gradients are all-reduced in buckets of this many megabytes (stage 0).
        public var bucketMB = 25.0
        /// A rank that waits this long in one collective operation (another rank died or hangs)
        /// stops the whole job with an error.
        public var timeoutSeconds = 600.0
        public init() {}
        enum CodingKeys: String, CodingKey {
            case zeroStage = "zero_stage", bucketMB = "bucket_mb", timeoutSeconds = "timeout_seconds"
        }
    }

    public var model = Model(preset: "kosmos-tiny")
    /// A SentencePiece .model or tokenizer.json; defaults to the model directory's tokenizer when
    /// fine-tuning (`model.from`).
    public var tokenizer: String?
    public var data = Data()
    public var optimizer = Optimizer()
    public var schedule = Schedule()
    public var train = Train()
    public var checkpoint = Checkpoint()
    public var log = Log()
    public var distributed = Distributed()

    public init() {}

    // MARK: Reading, with strict keys and overrides

    /// Reads a configuration file and applies `overrides` ("optimizer.lr=1e-4"), rejecting unknown
    /// keys, wrong types and impossible values before any work starts. Relative paths in the file
    /// are resolved against the file's folder.
    public static func load(file: URL?, overrides: [String] = []) throws -> TrainingConfiguration {
        var tree: [String: Any] = [:]
        if let file {
            guard let data = FileManager.default.contents(atPath: file.path) else {
                throw ConfigurationError(field: "", reason: "\(file.path): cannot read the configuration file")
            }
            do {
                guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                    throw ConfigurationError(field: "", reason: "\(file.path): the configuration must be a JSON object")
                }
                tree = object
            } catch let e as ConfigurationError {
                throw e
            } catch {
                throw ConfigurationError(field: "", reason: "\(file.path): not valid JSON (\(error.localizedDescription))")
            }
        }
        for o in overrides { try applyOverride(o, to: &tree) }
        try checkKeys(tree, schema: schema, path: "")
        let json = try JSONSerialization.data(withJSONObject: tree)
        var configuration: TrainingConfiguration
        do {
            configuration = try JSONDecoder().decode(TrainingConfiguration.self, from: json)
        } catch let DecodingError.typeMismatch(type, context) {
            throw ConfigurationError(field: fieldPath(context.codingPath), reason: "expected \(typeName(type))")
        } catch let DecodingError.valueNotFound(type, context) {
            throw ConfigurationError(field: fieldPath(context.codingPath), reason: "expected \(typeName(type)), found null")
        } catch let DecodingError.dataCorrupted(context) {
            throw ConfigurationError(field: fieldPath(context.codingPath), reason: context.debugDescription)
        } catch let DecodingError.keyNotFound(key, context) {
            throw ConfigurationError(field: fieldPath(context.codingPath + [key]), reason: "missing")
        }
        if let file { configuration.resolvePaths(relativeTo: file.deletingLastPathComponent()) }
        try configuration.validate()
        return configuration
    }

    /// "a.b.c=value": value is JSON when it parses as JSON (numbers, true/false, null, arrays,
    /// quoted strings), else a plain string.
    static func applyOverride(_ text: String, to tree: inout [String: Any]) throws {
        guard let eq = text.firstIndex(of: "=") else {
            throw ConfigurationError(field: text, reason: "an override is KEY=VALUE, e.g. optimizer.lr=1e-4")
        }
        let key = String(text[..<eq]), raw = String(text[text.index(after: eq)...])
        let parts = key.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard !parts.isEmpty, parts.allSatisfy({ !$0.isEmpty }) else {
            throw ConfigurationError(field: key, reason: "not a field path (use dots: optimizer.lr)")
        }
        let value: Any = (try? JSONSerialization.jsonObject(with: Foundation.Data(raw.utf8), options: [.fragmentsAllowed])) ?? raw
        func set(_ node: inout [String: Any], _ i: Int) throws {
            if i == parts.count - 1 { node[parts[i]] = value; return }
            var child: [String: Any]
            if let existing = node[parts[i]] {
                guard let dict = existing as? [String: Any] else {
                    throw ConfigurationError(field: parts[0...i].joined(separator: "."), reason: "is not a section, cannot set \(key)")
                }
                child = dict
            } else {
                child = [:]
            }
            try set(&child, i + 1)
            node[parts[i]] = child
        }
        try set(&tree, 0)
    }

    /// Known keys and value types per section (checked before decoding, so every message carries
    /// the field's path); the inline model configuration is checked by its own decoder.
    indirect enum Schema { case object([String: Schema]), array(Schema), integer, number, bool, string, any, modelConfiguration }

    static let schema: Schema = .object([
        "model": .object(["preset": .string, "config": .modelConfiguration, "from": .string]),
        "tokenizer": .string,
        "data": .object([
            "sources": .array(.object(["path": .string, "weight": .number, "image_dir": .string, "synthetic_seed": .integer,
                                       "synthetic_mode": .string, "caption_prefix": .string])),
            "sequence_length": .integer, "batch_size": .integer, "shuffle": .bool, "workers": .integer,
        ]),
        "optimizer": .object(["lr": .number, "beta1": .number, "beta2": .number, "eps": .number, "weight_decay": .number,
                              "max_grad_norm": .number]),
        "schedule": .object(["kind": .string, "warmup_steps": .integer]),
        "train": .object(["steps": .integer, "grad_accumulation": .integer, "seed": .integer, "vision_freeze": .string, "audio_freeze": .string, "dtype": .string,
                           "checkpoint_activations": .bool]),
        "checkpoint": .object(["directory": .string, "every": .integer, "keep": .integer]),
        "log": .object(["every": .integer]),
        "distributed": .object(["zero_stage": .integer, "bucket_mb": .number, "timeout_seconds": .number]),
    ])

    static func checkKeys(_ value: Any, schema: Schema, path: String) throws {
        func expected(_ what: String) -> ConfigurationError {
            ConfigurationError(field: path, reason: "expected \(what), found \(describe(value))")
        }
        switch schema {
        case .any:
            return
        case .modelConfiguration:
            // A Kosmos-1 config.json object: its keys are those a default configuration encodes
            // (plus the optional image_slot_token_id); types are checked by its decoder.
            guard value is [String: Any] else { throw expected("an object") }
            try checkKnownKeys(value, known: knownModelKeys, path: path)
        case .string:
            guard value is String else { throw expected("a string") }
        case .bool:
            guard let n = value as? NSNumber, isBoolean(n) else { throw expected("true or false") }
        case .number:
            guard let n = value as? NSNumber, !isBoolean(n) else { throw expected("a number") }
        case .integer:
            guard let n = value as? NSNumber, !isBoolean(n), n.doubleValue.rounded() == n.doubleValue,
                  abs(n.doubleValue) < 9.0e18 else { throw expected("an integer") }
        case .object(let fields):
            guard let dict = value as? [String: Any] else { throw expected("an object") }
            for (key, child) in dict {
                let childPath = path.isEmpty ? key : "\(path).\(key)"
                guard let s = fields[key] else {
                    let known = fields.keys.sorted().joined(separator: ", ")
                    throw ConfigurationError(field: childPath, reason: "unknown key (known here: \(known))")
                }
                try checkKeys(child, schema: s, path: childPath)
            }
        case .array(let element):
            guard let items = value as? [Any] else { throw expected("an array") }
            for (i, item) in items.enumerated() { try checkKeys(item, schema: element, path: "\(path)[\(i)]") }
        }
    }

    static let knownModelKeys: [String: Any] = {
        var full = KosmosConfiguration()
        full.audio = AudioConfiguration()   // optional sections: their keys are known too
        full.video = VideoConfiguration()
        guard let data = try? JSONEncoder().encode(full),
              var object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return [:] }
        object["image_slot_token_id"] = 0
        return object
    }()

    static func checkKnownKeys(_ value: Any, known: [String: Any], path: String) throws {
        guard let dict = value as? [String: Any] else { return }
        for (key, child) in dict {
            let childPath = "\(path).\(key)"
            guard let knownChild = known[key] else {
                throw ConfigurationError(field: childPath, reason: "unknown key (known here: \(known.keys.sorted().joined(separator: ", ")))")
            }
            if let section = knownChild as? [String: Any] { try checkKnownKeys(child, known: section, path: childPath) }
        }
    }

    static func isBoolean(_ n: NSNumber) -> Bool {
        #if canImport(Darwin)
        return CFGetTypeID(n) == CFBooleanGetTypeID()
        #else
        // swift-corelibs-foundation's JSONSerialization stores true/false as Bool-typed numbers
        // ("c"); integers and reals come as "q" and "d".
        return String(cString: n.objCType) == "c"
        #endif
    }

    static func describe(_ value: Any) -> String {
        switch value {
        case is String: return "a string"
        case let n as NSNumber: return isBoolean(n) ? "\(n.boolValue)" : "\(n)"
        case is [Any]: return "an array"
        case is [String: Any]: return "an object"
        case is NSNull: return "null"
        default: return "\(value)"
        }
    }

    static func fieldPath(_ path: [CodingKey]) -> String {
        var out = ""
        for key in path {
            if let i = key.intValue { out += "[\(i)]" } else { out += out.isEmpty ? key.stringValue : ".\(key.stringValue)" }
        }
        return out
    }

    static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is Double.Type, is Float.Type: return "a number"
        case is Int.Type, is UInt64.Type: return "an integer"
        case is Bool.Type: return "true or false"
        case is String.Type: return "a string"
        default:
            let name = "\(type)"
            return name.hasPrefix("Array") ? "an array" : (name.hasPrefix("Dictionary") ? "an object" : "a \(name)")
        }
    }

    mutating func resolvePaths(relativeTo base: URL) {
        func resolve(_ p: String) -> String {
            p.hasPrefix("/") || p.hasPrefix("synthetic") ? p : base.appendingPathComponent(p).standardizedFileURL.path
        }
        tokenizer = tokenizer.map(resolve)
        model.from = model.from.map(resolve)
        for i in data.sources.indices {
            data.sources[i].path = resolve(data.sources[i].path)
            data.sources[i].imageDir = data.sources[i].imageDir.map(resolve)
        }
        checkpoint.directory = resolve(checkpoint.directory)
    }

    // MARK: Validation

    /// The compute dtype of the training step (`train.dtype`, validated).
    public var computeDType: DType { DType(name: train.dtype) ?? .float32 }
    public var freezePolicy: VisionFreezePolicy { VisionFreezePolicy(rawValue: train.visionFreeze) ?? .allButLastLayer }
    public var audioFreezePolicy: VisionFreezePolicy { VisionFreezePolicy(rawValue: train.audioFreeze) ?? .allButLastLayer }

    /// Impossible values, with the field named.
    public func validate() throws {
        func fail(_ field: String, _ why: String) -> ConfigurationError { ConfigurationError(field: field, reason: why) }
        let choices = [model.preset != nil, model.config != nil, model.from != nil].filter { $0 }.count
        guard choices == 1 else { throw fail("model", "give exactly one of preset, config or from") }
        if let p = model.preset, KosmosConfiguration.preset(named: p) == nil {
            throw fail("model.preset", "unknown preset '\(p)' (known: \(KosmosConfiguration.presetNames.joined(separator: ", ")))")
        }
        if let c = model.config {
            do { try c.validate() } catch { throw fail("model.config", "\(error)") }
        }
        if tokenizer == nil && model.from == nil { throw fail("tokenizer", "required (a SentencePiece .model or tokenizer.json)") }
        guard !data.sources.isEmpty else { throw fail("data.sources", "give at least one data source") }
        for (i, s) in data.sources.enumerated() {
            guard s.weight > 0 && s.weight.isFinite else { throw fail("data.sources[\(i)].weight", "must be a positive number") }
            guard s.syntheticMode == "captions" || s.syntheticMode == "questions" else {
                throw fail("data.sources[\(i)].synthetic_mode", "must be \"captions\" or \"questions\"")
            }
        }
        guard data.sequenceLength >= 2 else { throw fail("data.sequence_length", "must be at least 2") }
        guard data.batchSize >= 1 else { throw fail("data.batch_size", "must be at least 1") }
        guard data.workers >= 1 else { throw fail("data.workers", "must be at least 1") }
        guard optimizer.lr > 0 && optimizer.lr.isFinite else { throw fail("optimizer.lr", "must be a positive number") }
        guard (0..<1).contains(optimizer.beta1) else { throw fail("optimizer.beta1", "must be in [0, 1)") }
        guard (0..<1).contains(optimizer.beta2) else { throw fail("optimizer.beta2", "must be in [0, 1)") }
        guard optimizer.eps > 0 else { throw fail("optimizer.eps", "must be positive") }
        guard optimizer.weightDecay >= 0 && optimizer.weightDecay.isFinite else { throw fail("optimizer.weight_decay", "must not be negative") }
        guard optimizer.maxGradNorm >= 0 && optimizer.maxGradNorm.isFinite else { throw fail("optimizer.max_grad_norm", "must not be negative (0 disables clipping)") }
        guard LearningRateSchedule.Kind(rawValue: schedule.kind) != nil else {
            throw fail("schedule.kind", "'\(schedule.kind)' is not one of linear, cosine, constant")
        }
        guard schedule.warmupSteps >= 0 else { throw fail("schedule.warmup_steps", "must not be negative") }
        guard train.steps >= 1 else { throw fail("train.steps", "must be at least 1") }
        guard schedule.warmupSteps < train.steps || schedule.kind == "constant" else {
            throw fail("schedule.warmup_steps", "\(schedule.warmupSteps) leaves no decay within train.steps \(train.steps)")
        }
        guard train.gradAccumulation >= 1 else { throw fail("train.grad_accumulation", "must be at least 1") }
        guard VisionFreezePolicy(rawValue: train.visionFreeze) != nil else {
            throw fail("train.vision_freeze", "'\(train.visionFreeze)' is not one of none, all, all-but-last-layer")
        }
        guard VisionFreezePolicy(rawValue: train.audioFreeze) != nil else {
            throw fail("train.audio_freeze", "'\(train.audioFreeze)' is not one of none, all, all-but-last-layer")
        }
        switch DType(name: train.dtype) {
        case .float32?, .bfloat16?: break
        case .float16?:
            throw fail("train.dtype", "float16 training is not supported (its range needs loss scaling); use bfloat16 or float32")
        case nil:
            throw fail("train.dtype", "'\(train.dtype)' is not a dtype: use float32 or bfloat16")
        }
        guard !checkpoint.directory.isEmpty else { throw fail("checkpoint.directory", "must not be empty") }
        guard checkpoint.every >= 0 else { throw fail("checkpoint.every", "must not be negative (0: only at the end)") }
        guard checkpoint.keep >= 1 else { throw fail("checkpoint.keep", "must be at least 1") }
        guard log.every >= 1 else { throw fail("log.every", "must be at least 1") }
        guard distributed.zeroStage == 0 || distributed.zeroStage == 1 else {
            throw fail("distributed.zero_stage", "must be 0 (replicated optimizer state) or 1 (sharded)")
        }
        guard distributed.bucketMB > 0 && distributed.bucketMB.isFinite else { throw fail("distributed.bucket_mb", "must be a positive number") }
        guard distributed.timeoutSeconds > 0 && distributed.timeoutSeconds.isFinite else {
            throw fail("distributed.timeout_seconds", "must be a positive number")
        }
    }

    /// The fields that must not change between a run and its resumption: everything that decides
    /// the numbers (model, data, optimizer, schedule, steps, seed). Checkpointing and logging may change.
    public func resumeIncompatibilities(with saved: TrainingConfiguration) -> [String] {
        var out: [String] = []
        if model != saved.model { out.append("model") }
        if tokenizer != saved.tokenizer { out.append("tokenizer") }
        if data != saved.data { out.append("data") }
        if optimizer != saved.optimizer { out.append("optimizer") }
        if schedule != saved.schedule { out.append("schedule") }
        if train != saved.train { out.append("train") }
        return out
    }
}

// Decoding with defaults for absent keys (the synthesized init would require every key).
extension TrainingConfiguration {
    enum CodingKeys: String, CodingKey { case model, tokenizer, data, optimizer, schedule, train, checkpoint, log, distributed }
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init()
        model = try c.decode(.model, default: model)
        tokenizer = try c.decodeIfPresent(String.self, forKey: .tokenizer)
        data = try c.decode(.data, default: data)
        optimizer = try c.decode(.optimizer, default: optimizer)
        schedule = try c.decode(.schedule, default: schedule)
        train = try c.decode(.train, default: train)
        checkpoint = try c.decode(.checkpoint, default: checkpoint)
        log = try c.decode(.log, default: log)
        distributed = try c.decode(.distributed, default: distributed)
    }
}

extension TrainingConfiguration.Source {
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        path = try c.decode(String.self, forKey: .path)
        weight = try c.decode(.weight, default: 1)
        imageDir = try c.decodeIfPresent(String.self, forKey: .imageDir)
        syntheticSeed = try c.decode(.syntheticSeed, default: 0)
        syntheticMode = try c.decode(.syntheticMode, default: "captions")
        captionPrefix = try c.decode(.captionPrefix, default: "")
    }
}

extension TrainingConfiguration.Data {
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init()
        sources = try c.decode(.sources, default: sources)
        sequenceLength = try c.decode(.sequenceLength, default: sequenceLength)
        batchSize = try c.decode(.batchSize, default: batchSize)
        shuffle = try c.decode(.shuffle, default: shuffle)
        workers = try c.decode(.workers, default: workers)
    }
}

extension TrainingConfiguration.Optimizer {
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init()
        lr = try c.decode(.lr, default: lr)
        beta1 = try c.decode(.beta1, default: beta1)
        beta2 = try c.decode(.beta2, default: beta2)
        eps = try c.decode(.eps, default: eps)
        weightDecay = try c.decode(.weightDecay, default: weightDecay)
        maxGradNorm = try c.decode(.maxGradNorm, default: maxGradNorm)
    }
}

extension TrainingConfiguration.Schedule {
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init()
        kind = try c.decode(.kind, default: kind)
        warmupSteps = try c.decode(.warmupSteps, default: warmupSteps)
    }
}

extension TrainingConfiguration.Train {
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init()
        steps = try c.decode(.steps, default: steps)
        gradAccumulation = try c.decode(.gradAccumulation, default: gradAccumulation)
        seed = try c.decode(.seed, default: seed)
        visionFreeze = try c.decode(.visionFreeze, default: visionFreeze)
        audioFreeze = try c.decode(.audioFreeze, default: audioFreeze)
        dtype = try c.decode(.dtype, default: dtype)
        checkpointActivations = try c.decode(.checkpointActivations, default: checkpointActivations)
    }
}

extension TrainingConfiguration.Checkpoint {
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init()
        directory = try c.decode(.directory, default: directory)
        every = try c.decode(.every, default: every)
        keep = try c.decode(.keep, default: keep)
    }
}

extension TrainingConfiguration.Log {
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init()
        every = try c.decode(.every, default: every)
    }
}

extension TrainingConfiguration.Distributed {
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init()
        zeroStage = try c.decode(.zeroStage, default: zeroStage)
        bucketMB = try c.decode(.bucketMB, default: bucketMB)
        timeoutSeconds = try c.decode(.timeoutSeconds, default: timeoutSeconds)
    }
}
