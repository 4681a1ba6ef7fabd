import Foundation
import KosmosNN
import KosmosTensor

/// Stage 0 of data parallelism: every rank holds all parameters and the whole AdamW state, and
/// after backward the gradients are summed across ranks (each rank scaled its losses by its
/// labelled tokens over the global count, so the sum is the gradient of the global batch's mean
/// loss). Gradients travel in buckets of `bucketElements` floats, packed in parameter order, so a
/// model with many small tensors makes few collective calls and one large tensor is split.
final class GradientAllReduce {
    let communicator: Communicator
    let parameters: [Tensor]
    let bucketElements: Int
    private var buffer: [Float]

    init(communicator: Communicator, parameters: [Tensor], bucketMB: Double) {
        self.communicator = communicator
        self.parameters = parameters
        let total = parameters.reduce(0) { $0 + $1.count }
        bucketElements = max(1, min(total, Int(bucketMB * 1_048_576 / 4)))
        buffer = [Float](repeating: 0, count: bucketElements)
    }

    /// Sums the gradients of the parameters that have one on some rank (`hasGradient`, agreed
    /// by all ranks); a rank without its own gradient for such a parameter contributes zeros.
    func synchronize(hasGradient: [Bool]) throws {
        var pending: [(parameter: Tensor, offset: Int, at: Int, count: Int)] = []
        var filled = 0
        func flush() throws {
            guard filled > 0 else { return }
            try buffer.withUnsafeMutableBufferPointer { b in
                try communicator.allReduce(UnsafeMutableBufferPointer(rebasing: b[0..<filled]), .sum)
                for s in pending {
                    s.parameter.grad!.withUnsafeMutableBufferPointer { g in
                        g.baseAddress!.advanced(by: s.offset).update(from: b.baseAddress!.advanced(by: s.at), count: s.count)
                    }
                }
            }
            pending.removeAll(keepingCapacity: true)
            filled = 0
        }
        for (p, has) in zip(parameters, hasGradient) where has {
            if p.grad == nil { p.grad = Tensor.zeros(p.shape) }
            var offset = 0
            while offset < p.count {
                let n = min(p.count - offset, bucketElements - filled)
                let at = filled
                p.grad!.withUnsafeBufferPointer { g in
                    buffer.withUnsafeMutableBufferPointer { b in
                        b.baseAddress!.advanced(by: at).update(from: g.baseAddress!.advanced(by: offset), count: n)
                    }
                }
                pending.append((p, offset, at, n))
                filled += n; offset += n
                if filled == bucketElements { try flush() }
            }
        }
        try flush()
    }
}

/// ZeRO stage 1 (Rajbhandari et al., 2020): the trainable parameters, in `trainable` order, are
/// seen as one flat vector cut into `worldSize` equal contiguous shards (the last padded). Rank r
/// keeps AdamW's moments only for shard r, so optimizer memory is 2·P/W floats instead of 2·P.
/// A step reduce-scatters the gradients (rank r receives the summed gradient of its shard), clips
/// by the global norm (partial squared sums all-reduced), applies AdamW's element-wise update to
/// its shard with the same arithmetic as `AdamW` (`AdamW.update`), and all-gathers the updated
/// parameters. With one rank it equals `AdamW` + `GradientClipping` bit for bit.
final class ShardedAdamW {
    let communicator: Communicator
    let parameters: [Tensor]
    let names: [String]
    let weightDecays: [Float]
    /// Hyper-parameters and the learning rate (its per-parameter state stays empty).
    let settings: AdamW
    let offsets: [Int]
    let total: Int
    let shardSize: Int
    var shardStart: Int { communicator.rank * shardSize }
    /// Per parameter, updates taken (0: no state yet). The same on every rank.
    private(set) var steps: [Int]
    private var firstMoment: [Float]
    private var secondMoment: [Float]
    /// Communication buffers: the full flat gradient (reduce-scattered) and parameters (all-gathered).
    private var flat: [Float]
    private var shard: [Float]
    private var shardParameters: [Float]

    /// `trainable` in the order the global gradient norm is summed (GradientClipping's order).
    init(communicator: Communicator, trainable: [(name: String, tensor: Tensor)], settings: AdamW) {
        self.communicator = communicator
        self.settings = settings
        parameters = trainable.map(\.tensor)
        names = trainable.map(\.name)
        var decay: [ObjectIdentifier: Float] = [:]
        for g in settings.groups { for p in g.parameters { decay[ObjectIdentifier(p)] = g.weightDecay } }
        weightDecays = parameters.map { decay[ObjectIdentifier($0)] ?? 0 }
        var offsets: [Int] = [], at = 0
        for p in parameters { offsets.append(at); at += p.count }
        self.offsets = offsets
        total = at
        let w = communicator.worldSize
        shardSize = max(1, (total + w - 1) / w)
        steps = [Int](repeating: 0, count: parameters.count)
        firstMoment = [Float](repeating: 0, count: shardSize)
        secondMoment = [Float](repeating: 0, count: shardSize)
        flat = [Float](repeating: 0, count: shardSize * w)
        shard = [Float](repeating: 0, count: shardSize)
        shardParameters = [Float](repeating: 0, count: shardSize)
    }

    /// Floats of optimizer state this rank holds (both moments).
    var stateElements: Int { firstMoment.count + secondMoment.count }

    /// Parameter i's elements that fall in this rank's shard: (offset in the parameter, offset in
    /// the shard, count), or nil.
    func segment(_ i: Int) -> (inParameter: Int, inShard: Int, count: Int)? {
        let start = max(offsets[i], shardStart), end = min(offsets[i] + parameters[i].count, shardStart + shardSize)
        guard start < end else { return nil }
        return (start - offsets[i], start - shardStart, end - start)
    }

    /// One update from the parameters' local gradients. Returns the global gradient norm before clipping.
    func step(hasGradient: [Bool], maxNorm: Double) throws -> Double {
        // Pack local gradients (zeros where this rank has none), reduce-scatter into the shard.
        flat.withUnsafeMutableBufferPointer { f in
            f.update(repeating: 0)
            for (i, p) in parameters.enumerated() where hasGradient[i] {
                p.grad?.withUnsafeBufferPointer { g in f.baseAddress!.advanced(by: offsets[i]).update(from: g.baseAddress!, count: g.count) }
            }
        }
        try flat.withUnsafeBufferPointer { f in
            try shard.withUnsafeMutableBufferPointer { s in try communicator.reduceScatter(f, into: s, .sum) }
        }

        // The global norm: per parameter a Double sum of squares (as GradientClipping), summed in
        // parameter order, then across ranks.
        var sumSquares = 0.0
        shard.withUnsafeBufferPointer { s in
            for i in parameters.indices where hasGradient[i] {
                guard let seg = segment(i) else { continue }
                var partial: Double = 0
                for x in s[seg.inShard..<(seg.inShard + seg.count)] { partial += Double(x) * Double(x) }
                sumSquares += partial
            }
        }
        if communicator.isDistributed { sumSquares = try communicator.sum([sumSquares])[0] }
        let norm = sumSquares.squareRoot()
        if maxNorm > 0 {
            let coefficient = maxNorm / (norm + 1e-6)
            if coefficient < 1 {
                let c = Float(coefficient)
                shard.withUnsafeMutableBufferPointer { b in for i in b.indices { b[i] *= c } }
            }
        }

        // AdamW on this shard.
        for i in parameters.indices where hasGradient[i] { steps[i] += 1 }
        shardParameters.withUnsafeMutableBufferPointer { sp in
            firstMoment.withUnsafeMutableBufferPointer { m in
                secondMoment.withUnsafeMutableBufferPointer { v in
                    shard.withUnsafeBufferPointer { g in
                        for i in parameters.indices {
                            guard let seg = segment(i) else { continue }
                            let at = sp.baseAddress!.advanced(by: seg.inShard)
                            parameters[i].withUnsafeBufferPointer { p in at.update(from: p.baseAddress!.advanced(by: seg.inParameter), count: seg.count) }
                            guard hasGradient[i] else { continue }
                            let scalars = settings.stepScalars(step: steps[i], weightDecay: weightDecays[i])
                            AdamW.update(parameter: at, firstMoment: m.baseAddress!.advanced(by: seg.inShard),
                                         secondMoment: v.baseAddress!.advanced(by: seg.inShard),
                                         gradient: g.baseAddress!.advanced(by: seg.inShard), count: seg.count, scalars)
                        }
                    }
                }
            }
        }

        // Every rank gets every shard's updated parameters.
        try shardParameters.withUnsafeBufferPointer { sp in
            try flat.withUnsafeMutableBufferPointer { f in try communicator.allGather(sp, into: f) }
        }
        flat.withUnsafeBufferPointer { f in
            for (i, p) in parameters.enumerated() where hasGradient[i] {
                p.withUnsafeMutableBufferPointer { b in b.baseAddress!.update(from: f.baseAddress!.advanced(by: offsets[i]), count: b.count) }
            }
        }
        return norm
    }

    /// The full moments, gathered from every rank's shard (a collective: every rank calls it).
    struct GatheredState { var firstMoment: [Float]; var secondMoment: [Float] }

    func gatherState() throws -> GatheredState {
        let w = communicator.worldSize
        var m = [Float](repeating: 0, count: shardSize * w), v = [Float](repeating: 0, count: shardSize * w)
        try firstMoment.withUnsafeBufferPointer { s in try m.withUnsafeMutableBufferPointer { try communicator.allGather(s, into: $0) } }
        try secondMoment.withUnsafeBufferPointer { s in try v.withUnsafeMutableBufferPointer { try communicator.allGather(s, into: $0) } }
        return GatheredState(firstMoment: m, secondMoment: v)
    }

    /// Writes gathered moments in `AdamW`'s checkpoint format (`exp_avg.<name>`, `exp_avg_sq.<name>`),
    /// so sharded and unsharded checkpoints are interchangeable. Returns the step counts by name.
    func writeState(_ state: GatheredState, to url: URL) throws -> [String: Int] {
        var stepsByName: [String: Int] = [:]
        var writer = SafeTensorsWriter(metadata: ["format": "kosmos-adamw"])
        try state.firstMoment.withUnsafeBufferPointer { mb in
            try state.secondMoment.withUnsafeBufferPointer { vb in
                for (i, name) in names.enumerated() where steps[i] > 0 {
                    let range = offsets[i]..<(offsets[i] + parameters[i].count)
                    try writer.add(name: "exp_avg.\(name)", shape: parameters[i].shape, floats: UnsafeBufferPointer(rebasing: mb[range]))
                    try writer.add(name: "exp_avg_sq.\(name)", shape: parameters[i].shape, floats: UnsafeBufferPointer(rebasing: vb[range]))
                    stepsByName[name] = steps[i]
                }
                try writer.write(to: url)
            }
        }
        return stepsByName
    }

    /// Restores this rank's shard of a checkpoint written by `saveState` or by `AdamW`.
    func loadState(steps saved: [String: Int], from url: URL) throws {
        let file = try SafeTensorsFile(url: url)
        for (i, name) in names.enumerated() {
            guard let step = saved[name] else { continue }
            steps[i] = step
            guard let seg = segment(i) else { continue }
            for (key, target) in [("exp_avg", 0), ("exp_avg_sq", 1)] {
                let values = try file.floats("\(key).\(name)")
                guard values.count == parameters[i].count else {
                    throw TrainingError.checkpointRead(path: url.path, reason: "optimizer state of \(name) has \(values.count) values, the parameter \(parameters[i].count)")
                }
                let slice = values[seg.inParameter..<(seg.inParameter + seg.count)]
                if target == 0 { firstMoment.replaceSubrange(seg.inShard..<(seg.inShard + seg.count), with: slice) }
                else { secondMoment.replaceSubrange(seg.inShard..<(seg.inShard + seg.count), with: slice) }
            }
        }
    }
}
