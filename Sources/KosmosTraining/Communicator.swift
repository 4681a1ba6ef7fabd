import Foundation

/// How `allReduce` and `reduceScatter` combine the ranks' buffers.
public enum ReduceOperation: Sendable {
    case sum
    /// The sum divided by the world size (computed as the sum, then one multiplication).
    case mean
}

/// Why a collective operation failed. Collectives are all-or-nothing for the job: a rank that sees
/// one of these must stop (the CLI aborts the whole job so that no other rank waits forever).
public struct CommunicatorError: Error, CustomStringConvertible, LocalizedError {
    public let operation: String
    public let reason: String
    public init(operation: String, reason: String) { self.operation = operation; self.reason = reason }
    public var description: String { "\(operation) failed: \(reason)" }
    public var errorDescription: String? { description }
}

/// The processes of one training job and the collective operations between them (docs/distributed.md).
///
/// Every rank must call the same collectives in the same order with the same counts; a collective
/// returns once every rank has entered it. Buffers are float32 (gradients, parameters, optimizer
/// state), float64 (counts and sums that must be exact or order-independent enough: token counts,
/// squared norms) and bytes (small JSON states gathered for checkpoints).
///
/// `SingleProcessCommunicator` is the default (world size 1, every operation an identity);
/// the MPI implementation lives in the `KosmosMPI` target, built with `--traits MPI`.
public protocol Communicator: AnyObject {
    var rank: Int { get }
    var worldSize: Int { get }
    /// A short name for logs ("single process", "MPI (Open MPI v4.1.4)").
    var name: String { get }

    /// In place: every rank ends with the element-wise reduction of all ranks' buffers.
    func allReduce(_ buffer: UnsafeMutableBufferPointer<Float>, _ operation: ReduceOperation) throws
    func allReduce(_ buffer: UnsafeMutableBufferPointer<Double>, _ operation: ReduceOperation) throws
    /// `input` holds `worldSize` equal blocks of `output.count`; rank r receives in `output` the
    /// reduction of every rank's block r.
    func reduceScatter(_ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>,
                       _ operation: ReduceOperation) throws
    /// `output` holds `worldSize` blocks of `input.count`; block r is rank r's `input`.
    func allGather(_ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>) throws
    /// Every rank's bytes (any length), by rank.
    func allGather(bytes: [UInt8]) throws -> [[UInt8]]
    /// In place: every rank ends with `root`'s buffer.
    func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws
    func broadcast(bytes: [UInt8], root: Int) throws -> [UInt8]
    func barrier() throws
    /// Ends every process of the job; never returns.
    func abort(code: Int32) -> Never
    /// Ends the job's communication after a successful run (every rank calls it).
    func finalize() throws
}

extension Communicator {
    public var isDistributed: Bool { worldSize > 1 }
    public var isRoot: Bool { rank == 0 }

    /// Sums of a few scalars across ranks (token counts, losses): exact for integers below 2^53.
    public func sum(_ values: [Double]) throws -> [Double] {
        var out = values
        try out.withUnsafeMutableBufferPointer { try allReduce($0, .sum) }
        return out
    }
}

/// One process: rank 0 of 1. Reductions and gathers copy their input, broadcasts do nothing.
public final class SingleProcessCommunicator: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var worldSize: Int { 1 }
    public var name: String { "single process" }
    public func allReduce(_ buffer: UnsafeMutableBufferPointer<Float>, _ operation: ReduceOperation) throws {}
    public func allReduce(_ buffer: UnsafeMutableBufferPointer<Double>, _ operation: ReduceOperation) throws {}
    public func reduceScatter(_ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>,
                              _ operation: ReduceOperation) throws {
        precondition(input.count == output.count, "reduceScatter: input \(input.count) for output \(output.count) × 1 rank")
        if let src = input.baseAddress, let dst = output.baseAddress, src != UnsafePointer(dst) {
            dst.update(from: src, count: input.count)
        }
    }
    public func allGather(_ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>) throws {
        precondition(input.count == output.count, "allGather: input \(input.count) for output \(output.count) × 1 rank")
        if let src = input.baseAddress, let dst = output.baseAddress, src != UnsafePointer(dst) {
            dst.update(from: src, count: input.count)
        }
    }
    public func allGather(bytes: [UInt8]) throws -> [[UInt8]] { [bytes] }
    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws {}
    public func broadcast(bytes: [UInt8], root: Int) throws -> [UInt8] { bytes }
    public func barrier() throws {}
    public func abort(code: Int32) -> Never { exit(code) }
    public func finalize() throws {}
}

/// What the process launcher says about the job, before any MPI call: Open MPI's mpirun sets
/// OMPI_COMM_WORLD_SIZE, MPICH's Hydra and Slurm's PMI set PMI_SIZE, MVAPICH MV2_COMM_WORLD_SIZE.
public enum DistributedLaunch {
    public static var launcherWorldSize: Int? {
        let environment = ProcessInfo.processInfo.environment
        for key in ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE"] {
            if let value = environment[key], let n = Int(value) { return n }
        }
        return nil
    }
}
