import Foundation
import KosmosData
import KosmosModels
import KosmosNN
import KosmosTensor

public enum TrainingError: Error, CustomStringConvertible, LocalizedError {
    case checkpointWrite(step: Int, directory: String, reason: String, previous: String?)
    case checkpointRead(path: String, reason: String)
    case resumeMismatch(path: String, fields: [String])
    case noCheckpoint(directory: String)
    case runExists(directory: String, step: Int)
    case data(String)
    case diverged(step: Int, loss: Double)
    case worldSizeMismatch(path: String, saved: Int, current: Int)
    case distributed(String)

    public var description: String {
        switch self {
        case let .checkpointWrite(step, directory, reason, previous):
            let kept = previous.map { "the previous checkpoint \($0) is intact" } ?? "no earlier checkpoint exists"
            return "could not write the checkpoint of step \(step) in \(directory): \(reason); nothing partial was left and \(kept)"
        case let .checkpointRead(path, reason):
            return "\(path): cannot resume from this checkpoint (\(reason))"
        case let .resumeMismatch(path, fields):
            return "\(path) was trained with different \(fields.joined(separator: ", ")) settings; resume with the configuration it saved (training_config.json there) or start a new run directory"
        case let .noCheckpoint(directory):
            return "--resume: no complete checkpoint in \(directory) (a folder step-NNNNNNNN with a COMPLETE marker)"
        case let .runExists(directory, step):
            return "\(directory) already holds a run (newest checkpoint: step \(step)); pass --resume to continue it, or set checkpoint.directory to a new folder"
        case let .data(s):
            return s
        case let .diverged(step, loss):
            return "the loss became \(loss) at step \(step); lower optimizer.lr or check the data (the last checkpoint is intact)"
        case let .worldSizeMismatch(path, saved, current):
            let launch = saved == 1 ? "without mpirun (or mpirun -np 1)" : "with mpirun -np \(saved)"
            return "\(path) was written by a run of \(saved) process\(saved == 1 ? "" : "es") and this run has \(current): resume \(launch). "
                + "Each process saved its place in its own shard of the data, and the batch of a step is per-process batch × processes, "
                + "so a different number of processes would change the data order and the batch"
        case let .distributed(s):
            return s
        }
    }
    public var errorDescription: String? { description }
}

/// What a checkpoint holds besides the model: enough to continue bit for bit.
public struct TrainerState: Codable, Equatable, Sendable {
    /// Optimizer steps completed.
    public var step: Int
    /// The dropout generator's xoshiro256** words.
    public var rngState: [UInt64]
    /// Where each data source stands after the last batch of `step`.
    public var data: PackerState
    /// Per parameter, the AdamW step count (its moments are in optimizer.safetensors).
    public var optimizerSteps: [String: Int]
    /// Tokens and images trained on so far.
    public var tokensSeen: Int
    public var imagesSeen: Int
    /// The loss sum and step count of the metrics interval in progress, so the first line logged
    /// after a resume averages the same steps as an uninterrupted run's.
    public var logLossSum: Double
    public var logSteps: Int
    /// Processes of a distributed run (absent for one process).
    public var worldSize: Int?
    /// A distributed run's per-process dropout generator and data position, by rank (`rng_state`
    /// and `data` above are rank 0's).
    public var ranks: [RankState]?

    public struct RankState: Codable, Equatable, Sendable {
        public var rngState: [UInt64]
        public var data: PackerState
        enum CodingKeys: String, CodingKey { case data, rngState = "rng_state" }
    }

    enum CodingKeys: String, CodingKey {
        case step, data, ranks
        case rngState = "rng_state", optimizerSteps = "optimizer_steps"
        case tokensSeen = "tokens_seen", imagesSeen = "images_seen"
        case logLossSum = "log_loss_sum", logSteps = "log_steps", worldSize = "world_size"
    }
}

/// A run folder's checkpoints: `step-NNNNNNNN/` directories, each complete only once its
/// `COMPLETE` marker exists. A checkpoint is written as a hidden `.step-NNNNNNNN.partial-PID`
/// folder (every file written aside and fsynced), marked, fsynced, then renamed into place, so a
/// crash at any moment leaves either the old set of checkpoints or the new one, never half of one.
public struct CheckpointStore {
    public static let marker = "COMPLETE"
    public let directory: URL
    public init(directory: URL) { self.directory = directory }

    public static func name(step: Int) -> String { String(format: "step-%08d", step) }

    /// Complete checkpoints, oldest first.
    public func complete() -> [(step: Int, url: URL)] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else { return [] }
        var out: [(Int, URL)] = []
        for name in names where name.hasPrefix("step-") {
            guard let step = Int(name.dropFirst(5)) else { continue }
            let url = directory.appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: url.appendingPathComponent(CheckpointStore.marker).path) { out.append((step, url)) }
        }
        return out.sorted { $0.0 < $1.0 }.map { (step: $0.0, url: $0.1) }
    }

    public var newest: (step: Int, url: URL)? { complete().last }

    /// Removes debris of interrupted writes (hidden partial folders).
    public func removePartials() {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else { return }
        for name in names where name.hasPrefix(".step-") && name.contains(".partial-") {
            try? FileManager.default.removeItem(at: directory.appendingPathComponent(name))
        }
    }

    /// Writes checkpoint `step` with `body` filling a fresh folder, then publishes it atomically and
    /// keeps the newest `keep`. Any failure removes the partial folder and names the intact previous checkpoint.
    public func write(step: Int, keep: Int, _ body: (URL) throws -> Void) throws -> URL {
        let fm = FileManager.default
        let final = directory.appendingPathComponent(CheckpointStore.name(step: step))
        let partial = directory.appendingPathComponent(".\(CheckpointStore.name(step: step)).partial-\(getpid())")
        let previous = newest?.url.path
        func fail(_ error: Error) -> TrainingError {
            try? fm.removeItem(at: partial)
            let reason = (error as? LocalizedError)?.errorDescription ?? "\(error)"
            return .checkpointWrite(step: step, directory: directory.path, reason: reason, previous: previous)
        }
        do {
            try fm.createDirectory(at: directory, withIntermediateDirectories: true)
            if fm.fileExists(atPath: partial.path) { try fm.removeItem(at: partial) }
            try fm.createDirectory(at: partial, withIntermediateDirectories: false)
            try body(partial)
            try AtomicFile.write(Array("\(step)\n".utf8), to: partial.appendingPathComponent(CheckpointStore.marker))
            try AtomicFile.syncDirectory(partial.path)
            if fm.fileExists(atPath: final.path) {
                // The same step again (a resumed run that redid it): same numbers, replace it.
                try fm.removeItem(at: final)
            }
            guard rename(partial.path, final.path) == 0 else {
                throw AtomicFileError(path: final.path, operation: "renaming \(partial.lastPathComponent) to it", reason: String(cString: strerror(errno)))
            }
            try AtomicFile.syncDirectory(directory.path)
        } catch let e as TrainingError {
            throw e
        } catch {
            throw fail(error)
        }
        updateLatestLink(to: final.lastPathComponent)
        prune(keep: keep)
        return final
    }

    /// `latest` → the newest checkpoint (a relative symlink replaced atomically), for commands
    /// that take a model folder.
    func updateLatestLink(to name: String) {
        let link = directory.appendingPathComponent("latest")
        let temporary = directory.appendingPathComponent(".latest.tmp-\(getpid())")
        unlink(temporary.path)
        guard symlink(name, temporary.path) == 0 else { return }
        if rename(temporary.path, link.path) != 0 { unlink(temporary.path) }
    }

    func prune(keep: Int) {
        let all = complete()
        guard all.count > keep else { return }
        for (_, url) in all.prefix(all.count - keep) {
            // Unmark first, so a crash mid-delete leaves a folder that is never loaded.
            unlink(url.appendingPathComponent(CheckpointStore.marker).path)
            try? FileManager.default.removeItem(at: url)
        }
    }
}

extension AdamW {
    /// Moments as `exp_avg.<name>` / `exp_avg_sq.<name>` (PyTorch's state names) and step counts by name.
    func saveState(named parameters: [(String, Tensor)], to url: URL) throws -> [String: Int] {
        var writer = SafeTensorsWriter(metadata: ["format": "kosmos-adamw"])
        var steps: [String: Int] = [:]
        var keepAlive: [Tensor] = []
        for (name, p) in parameters {
            guard let s = state(of: p) else { continue }
            try writer.add(name: "exp_avg.\(name)", tensor: s.firstMoment, as: .f32)
            try writer.add(name: "exp_avg_sq.\(name)", tensor: s.secondMoment, as: .f32)
            keepAlive += [s.firstMoment, s.secondMoment]
            steps[name] = s.step
        }
        try withExtendedLifetime(keepAlive) { try writer.write(to: url) }
        return steps
    }

    func loadState(named parameters: [(String, Tensor)], steps: [String: Int], from url: URL) throws {
        let file = try SafeTensorsFile(url: url)
        for (name, p) in parameters {
            guard let step = steps[name] else { continue }
            let m = try file.tensor("exp_avg.\(name)"), v = try file.tensor("exp_avg_sq.\(name)")
            guard m.shape == p.shape, v.shape == p.shape else {
                throw TrainingError.checkpointRead(path: url.path, reason: "optimizer state of \(name) has shape \(m.shape), the parameter \(p.shape)")
            }
            setState(of: p, step: step, firstMoment: m, secondMoment: v)
        }
    }
}
