import Foundation
import KosmosModels
import KosmosNN
import KosmosTensor

/// A batch a `TrainingStep` can take: how many positions carry a target (the loss is their mean,
/// and accumulation weights micro-batches by them), and what it holds, for throughput figures.
public protocol TrainingBatch {
    /// Positions with a target (labels other than −100).
    var labelledCount: Int { get }
    /// Non-padding tokens.
    var tokenCount: Int { get }
    /// Media items (images today).
    var mediaCount: Int { get }
}

/// A model the optimizer step trains: its parameters (a `Module`) and the mean loss of a batch it
/// made. Kosmos-1 implements it; an audio or video model plugs in the same way.
public protocol TrainableModel: Module {
    /// Mean cross-entropy over the batch's labelled positions, recorded for backward.
    func trainingLoss(_ batch: any TrainingBatch) throws -> Tensor
}

extension KosmosBatch: TrainingBatch {
    public var labelledCount: Int { labels.reduce(0) { $1 == -100 ? $0 : $0 + 1 } }
    public var tokenCount: Int { padding.reduce(0) { $1 ? $0 : $0 + 1 } }
    /// Images, audio clips and videos in the batch (the loader decoded each once).
    public var mediaCount: Int { (pixels?.shape[0] ?? 0) + (audioFeatures?.shape[0] ?? 0) + videoFrameCounts.count }
}

extension KosmosModel: TrainableModel {
    public func trainingLoss(_ batch: any TrainingBatch) throws -> Tensor {
        guard let batch = batch as? KosmosBatch else {
            throw TrainingError.data("a Kosmos-1 model trains on KosmosBatch, not \(type(of: batch))")
        }
        return try loss(batch)
    }
}
