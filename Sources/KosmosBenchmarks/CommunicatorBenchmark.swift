import Foundation
import KosmosTraining

/// `kosmos bench allreduce`: the time of a sum all-reduce of float32 buffers of several sizes.
/// Bandwidths follow nccl-tests: algorithm bandwidth = bytes / time; bus bandwidth = algorithm
/// bandwidth × 2(W−1)/W, the traffic each rank's link carries in a ring all-reduce, comparable
/// across world sizes.
public enum AllReduceBenchmark {
    public struct Result: Sendable {
        public var bytes: Int
        public var iterations: Int
        /// Mean seconds per all-reduce (the slowest rank's, so the figure is the job's).
        public var seconds: Double
        public var algorithmBandwidth: Double
        public var busBandwidth: Double
    }

    public static let defaultSizes = [4 << 10, 64 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20]

    /// Every rank must call it with the same sizes; each size runs for about `secondsPerSize`.
    public static func run(communicator: Communicator, sizes: [Int] = defaultSizes, secondsPerSize: Double = 0.5,
                           report: (Result) -> Void) throws {
        for bytes in sizes {
            var buffer = [Float](repeating: 1, count: max(1, bytes / 4))
            func timed(_ n: Int) throws -> Double {
                try communicator.barrier()
                let start = DispatchTime.now().uptimeNanoseconds
                try buffer.withUnsafeMutableBufferPointer { b in
                    for _ in 0..<n { try communicator.allReduce(b, .sum) }
                }
                let local = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                // All ranks agree on the figure (and on the next iteration count): the slowest rank's.
                var all = try communicator.allGather(bytes: Array(String(local).utf8)).compactMap { Double(String(decoding: $0, as: UTF8.self)) }
                if all.isEmpty { all = [local] }
                return all.max()!
            }
            _ = try timed(2)  // warm-up (connection setup, first touch)
            let probe = try timed(3) / 3
            let iterations = max(3, min(10_000, Int(secondsPerSize / max(probe, 1e-7))))
            let seconds = try timed(iterations) / Double(iterations)
            let w = Double(communicator.worldSize)
            let algorithm = Double(buffer.count * 4) / seconds
            report(Result(bytes: buffer.count * 4, iterations: iterations, seconds: seconds, algorithmBandwidth: algorithm,
                          busBandwidth: algorithm * 2 * (w - 1) / w))
        }
    }
}
