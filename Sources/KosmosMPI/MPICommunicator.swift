import CMPISupport
import Foundation
import KosmosTraining

/// `Communicator` over MPI (Open MPI or MPICH), for processes started by `mpirun`
/// (docs/distributed.md). Collectives are called from the thread that created it (MPI is
/// initialised "funneled").
///
/// A watchdog thread bounds every collective: if one waits longer than `timeoutSeconds` (another
/// rank died without the launcher noticing, hangs, or the network is gone), this process prints
/// what it was waiting for and exits with status 75, and the launcher then stops the job. A rank
/// that fails with an error calls `abort`, which ends every rank (MPI_Abort). When the launcher
/// terminates this process because another rank failed, a message says so.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let worldSize: Int
    public let name: String
    public let timeoutSeconds: Double

    private let lock = NSLock()
    private var operation: String?
    private var operationStart: UInt64 = 0
    private var finalized = false

    /// Exit status of a rank whose watchdog fired (EX_TEMPFAIL).
    public static let watchdogExitStatus: Int32 = 75

    /// Initialises MPI (once per process).
    public init(timeoutSeconds: Double) throws {
        guard kosmos_mpi_available() != 0 else {
            throw CommunicatorError(operation: "MPI_Init", reason: "this build found no mpi.h; install libopenmpi-dev (or an MPICH dev package) and rebuild with --traits MPI")
        }
        var r: Int32 = 0, w: Int32 = 0
        let rc = kosmos_mpi_init(&r, &w)
        guard rc == 0 else { throw CommunicatorError(operation: "MPI_Init", reason: MPICommunicator.describe(rc)) }
        rank = Int(r); worldSize = Int(w)
        var version = [CChar](repeating: 0, count: 256)
        kosmos_mpi_library_version(&version, Int32(version.count))
        name = "MPI (\(String(cString: version)))"
        self.timeoutSeconds = timeoutSeconds
        kosmos_mpi_install_termination_message(
            "kosmos rank \(rank) of \(worldSize): stopped by the MPI launcher, most likely because another rank failed (see its message above); "
            + "restart with --resume to continue from the last complete checkpoint\n")
        let watchdog = Thread { [weak self] in
            while let self, !self.isFinalized {
                self.checkTimeout()
                Thread.sleep(forTimeInterval: 0.2)
            }
        }
        watchdog.name = "kosmos-mpi-watchdog"
        watchdog.start()
    }

    static func describe(_ code: Int32) -> String {
        var text = [CChar](repeating: 0, count: 512)
        kosmos_mpi_error_string(code, &text, Int32(text.count))
        return String(cString: text)
    }

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    private var isFinalized: Bool { lock.lock(); defer { lock.unlock() }; return finalized }

    private func checkTimeout() {
        lock.lock()
        let op = operation, start = operationStart
        lock.unlock()
        guard let op else { return }
        let waited = Double(MPICommunicator.now() &- start) / 1e9
        guard waited > timeoutSeconds else { return }
        let message = "kosmos rank \(rank) of \(worldSize): \(op) has waited \(Int(waited)) s for the other ranks "
            + "(distributed.timeout_seconds \(timeoutSeconds)); another rank has died or hangs. Stopping the job; "
            + "restart with --resume to continue from the last complete checkpoint\n"
        FileHandle.standardError.write(Data(message.utf8))
        _exit(MPICommunicator.watchdogExitStatus)
    }

    /// Runs one collective under the watchdog and turns an MPI error code into a thrown error.
    private func collective(_ name: String, _ body: () -> Int32) throws {
        lock.lock(); operation = name; operationStart = MPICommunicator.now(); lock.unlock()
        let rc = body()
        lock.lock(); operation = nil; lock.unlock()
        guard rc == 0 else { throw CommunicatorError(operation: "\(name) on rank \(rank) of \(worldSize)", reason: MPICommunicator.describe(rc)) }
    }

    public func allReduce(_ buffer: UnsafeMutableBufferPointer<Float>, _ operation: ReduceOperation) throws {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        try collective("all-reduce of \(buffer.count) floats") { kosmos_mpi_allreduce_sum_float(base, buffer.count) }
        if operation == .mean {
            let scale = 1 / Float(worldSize)
            for i in buffer.indices { buffer[i] *= scale }
        }
    }

    public func allReduce(_ buffer: UnsafeMutableBufferPointer<Double>, _ operation: ReduceOperation) throws {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        try collective("all-reduce of \(buffer.count) doubles") { kosmos_mpi_allreduce_sum_double(base, buffer.count) }
        if operation == .mean {
            let scale = 1 / Double(worldSize)
            for i in buffer.indices { buffer[i] *= scale }
        }
    }

    public func reduceScatter(_ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>,
                              _ operation: ReduceOperation) throws {
        precondition(input.count == output.count * worldSize, "reduceScatter: input \(input.count) for output \(output.count) × \(worldSize) ranks")
        guard output.count > 0 else { return }
        try collective("reduce-scatter of \(input.count) floats") {
            kosmos_mpi_reduce_scatter_sum_float(input.baseAddress!, output.baseAddress!, output.count)
        }
        if operation == .mean {
            let scale = 1 / Float(worldSize)
            for i in output.indices { output[i] *= scale }
        }
    }

    public func allGather(_ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>) throws {
        precondition(output.count == input.count * worldSize, "allGather: output \(output.count) for input \(input.count) × \(worldSize) ranks")
        guard input.count > 0 else { return }
        try collective("all-gather of \(output.count) floats") {
            kosmos_mpi_allgather_float(input.baseAddress!, output.baseAddress!, input.count)
        }
    }

    public func allGather(bytes: [UInt8]) throws -> [[UInt8]] {
        var counts = [Int32](repeating: 0, count: worldSize)
        try collective("all-gather of byte counts") { kosmos_mpi_allgather_int(Int32(bytes.count), &counts) }
        var displacements = [Int32](repeating: 0, count: worldSize)
        for r in 1..<max(1, worldSize) { displacements[r] = displacements[r - 1] + counts[r - 1] }
        let total = Int(counts.reduce(0, +))
        var output = [UInt8](repeating: 0, count: max(1, total))
        var input = bytes.isEmpty ? [0] : bytes
        try collective("all-gather of \(total) bytes") {
            kosmos_mpi_allgatherv_bytes(&input, Int32(bytes.count), &output, counts, displacements)
        }
        return (0..<worldSize).map { r in Array(output[Int(displacements[r])..<Int(displacements[r] + counts[r])]) }
    }

    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        try collective("broadcast of \(buffer.count) floats") { kosmos_mpi_broadcast_bytes(base, buffer.count * 4, Int32(root)) }
    }

    public func broadcast(bytes: [UInt8], root: Int) throws -> [UInt8] {
        var count = [Double(rank == root ? bytes.count : 0)]
        try count.withUnsafeMutableBufferPointer { c in
            try collective("broadcast of a byte count") { kosmos_mpi_broadcast_bytes(c.baseAddress!, 8, Int32(root)) }
        }
        var buffer = rank == root ? bytes : [UInt8](repeating: 0, count: Int(count[0]))
        guard !buffer.isEmpty else { return [] }
        try collective("broadcast of \(buffer.count) bytes") { kosmos_mpi_broadcast_bytes(&buffer, buffer.count, Int32(root)) }
        return buffer
    }

    public func barrier() throws {
        try collective("barrier") { kosmos_mpi_barrier() }
    }

    public func abort(code: Int32) -> Never {
        kosmos_mpi_abort(code)
        _exit(code)
    }

    public func finalize() throws {
        lock.lock()
        let done = finalized
        finalized = true
        lock.unlock()
        guard !done else { return }
        let rc = kosmos_mpi_finalize()
        guard rc == 0 else { throw CommunicatorError(operation: "MPI_Finalize", reason: MPICommunicator.describe(rc)) }
    }
}
