import Foundation
import KosmosModels
import KosmosNN
import KosmosTensor

/// One optimizer step of a trainable model (`TrainableModel`) over one or more micro-batches: gradient accumulation
/// weighted by labelled tokens (so k micro-batches give the gradient of their combined batch's mean
/// loss), clipping by global norm, the scheduled learning rate, and AdamW with decayed and
/// non-decayed groups (`ParameterGroups`).
///
/// With a distributed `communicator` (docs/distributed.md) each rank runs its own micro-batches
/// and the step is that of the ranks' combined batch: the labelled-token count is summed across
/// ranks before backward (so every micro-batch's loss is weighted by n_k / N_global), gradients
/// are summed across ranks (stage 0) or reduce-scattered into optimizer shards (ZeRO stage 1),
/// and clipping uses the global norm. One process without ZeRO runs exactly the original path.
public final class TrainingStep {
    public let model: any TrainableModel
    public let optimizer: AdamW
    public let schedule: LearningRateSchedule
    public let maxGradNorm: Double
    /// Trainable parameters by state-dict name (tied tensors once), in the optimizer's order.
    public let trainable: [(name: String, tensor: Tensor)]
    public let communicator: Communicator
    /// Stage 0 across ranks.
    let allReduce: GradientAllReduce?
    /// ZeRO stage 1 (also with one rank, when configured).
    let sharded: ShardedAdamW?
    /// Seconds spent in collective operations and the optimizer update since this object was made
    /// (distributed path only: includes waiting for the slowest rank).
    public private(set) var synchronizationSeconds = 0.0
    /// float32, or bfloat16 for mixed precision (`train.dtype`): the Linear products of forward
    /// and backward in bfloat16, the parameters, gradients and AdamW states float32.
    public let computeDType: DType

    public struct Result: Equatable, Sendable {
        /// Mean cross-entropy over the step's labelled tokens.
        public var loss: Double
        /// Global gradient norm before clipping.
        public var gradNorm: Double
        public var learningRate: Double
        public var labelledTokens: Int
        /// Non-padding tokens and images in the step's batches (throughput).
        public var tokens: Int
        public var images: Int
    }

    public init(model: any TrainableModel, optimizer settings: TrainingConfiguration.Optimizer, schedule: LearningRateSchedule,
                communicator: Communicator = SingleProcessCommunicator(),
                distributed: TrainingConfiguration.Distributed = .init(), computeDType: DType = .float32) {
        self.communicator = communicator
        self.computeDType = computeDType
        self.model = model
        self.schedule = schedule
        maxGradNorm = settings.maxGradNorm
        let named = model.namedParameters().filter { $0.tensor.requiresGrad }
        trainable = named.map { (name: $0.name, tensor: $0.tensor) }
        let (decayed, plain) = ParameterGroups.split(named)
        optimizer = AdamW(groups: [AdamW.Group(parameters: decayed.map(\.1), weightDecay: Float(settings.weightDecay)),
                                   AdamW.Group(parameters: plain.map(\.1), weightDecay: 0)],
                          learningRate: Float(schedule.peak), beta1: Float(settings.beta1), beta2: Float(settings.beta2),
                          eps: Float(settings.eps))
        if distributed.zeroStage == 1 {
            sharded = ShardedAdamW(communicator: communicator, trainable: trainable, settings: optimizer)
            allReduce = nil
        } else {
            sharded = nil
            allReduce = communicator.isDistributed
                ? GradientAllReduce(communicator: communicator, parameters: trainable.map(\.tensor), bucketMB: distributed.bucketMB) : nil
        }
    }

    /// Floats of AdamW moments held by this process (sharded: about 2·P / world size).
    public var optimizerStateElements: Int {
        if let sharded { return sharded.stateElements }
        return trainable.reduce(0) { $0 + ($1.tensor.requiresGrad ? 2 * $1.tensor.count : 0) }
    }

    /// Runs forward and backward on every micro-batch, then clips and updates. `index` is the
    /// 0-based number of the optimizer step (it picks the learning rate).
    public func step(index: Int, microBatches: [any TrainingBatch]) throws -> Result {
        if communicator.isDistributed || sharded != nil { return try distributedStep(index: index, microBatches: microBatches) }
        let counts = try labelledCounts(microBatches)
        let total = counts.reduce(0, +)
        let (loss, tokens, images) = try accumulateGradients(microBatches, counts: counts, total: total, step: index)
        let norm = GradientClipping.clip(trainable.map(\.tensor), maxNorm: maxGradNorm)
        let lr = schedule.learningRate(step: index)
        optimizer.learningRate = Float(lr)
        optimizer.step()
        optimizer.zeroGrad()
        return Result(loss: loss, gradNorm: norm, learningRate: lr, labelledTokens: total, tokens: tokens, images: images)
    }

    /// Labelled positions (targets other than −100) per micro-batch.
    func labelledCounts(_ microBatches: [any TrainingBatch]) throws -> [Int] {
        guard !microBatches.isEmpty else { throw TrainingError.data("a training step needs at least one micro-batch") }
        return microBatches.map(\.labelledCount)
    }

    /// Forward and backward of every micro-batch, micro-batch k's loss scaled by n_k / `total`
    /// (the step's labelled positions, over every rank), so the summed gradient is that of the
    /// mean over all of them. Returns this process's share of the step loss and its non-padding
    /// tokens and images.
    func accumulateGradients(_ microBatches: [any TrainingBatch], counts: [Int], total: Int, step index: Int) throws
        -> (loss: Double, tokens: Int, images: Int) {
        guard total > 0 else { throw TrainingError.data("step \(index + 1): no position in the batch has a target (sequences too short?)") }
        optimizer.zeroGrad()
        var loss = 0.0
        for (batch, n) in zip(microBatches, counts) where n > 0 {
            let weight = Double(n) / Double(total)
            let l = try withComputeDType(computeDType) { try model.trainingLoss(batch) }
            loss += Double(l.item()) * weight
            l.scaled(by: Float(weight)).backward()
        }
        let tokens = microBatches.reduce(0) { $0 + $1.tokenCount }
        let images = microBatches.reduce(0) { $0 + $1.mediaCount }
        return (loss, tokens, images)
    }

    /// The step across ranks (or with the sharded optimizer): see the type's comment.
    func distributedStep(index: Int, microBatches: [any TrainingBatch]) throws -> Result {
        let counts = try labelledCounts(microBatches)
        let total = Int(try communicator.sum([Double(counts.reduce(0, +))])[0])
        let (loss, tokens, images) = try accumulateGradients(microBatches, counts: counts, total: total, step: index)
        let synchronizationStart = DispatchTime.now().uptimeNanoseconds
        defer { synchronizationSeconds += Double(DispatchTime.now().uptimeNanoseconds - synchronizationStart) / 1e9 }
        // One small all-reduce: the loss, throughput counts, and which parameters got a gradient
        // on some rank (a parameter unused by every rank's batch keeps no gradient, as in one process).
        let sums = try communicator.sum([loss, Double(tokens), Double(images)] + trainable.map { $0.tensor.grad == nil ? 0 : 1 })
        let hasGradient = sums[3...].map { $0 > 0 }
        let lr = schedule.learningRate(step: index)
        optimizer.learningRate = Float(lr)
        let norm: Double
        if let sharded {
            norm = try sharded.step(hasGradient: hasGradient, maxNorm: maxGradNorm)
        } else {
            try allReduce?.synchronize(hasGradient: hasGradient)
            norm = GradientClipping.clip(trainable.map(\.tensor), maxNorm: maxGradNorm)
            optimizer.step()
        }
        optimizer.zeroGrad()
        return Result(loss: sums[0], gradNorm: norm, learningRate: lr, labelledTokens: total, tokens: Int(sums[1]), images: Int(sums[2]))
    }
}
