import ArgumentParser
import Foundation
import KosmosBenchmarks
import KosmosTraining
#if MPI
import KosmosMPI
#endif

/// The job this process belongs to: MPI when launched by mpirun and built with `--traits MPI`,
/// else one process. A build without MPI started by mpirun with several processes refuses, so
/// that N independent copies never train side by side and overwrite each other's checkpoints.
func makeCommunicator(timeoutSeconds: Double) throws -> Communicator {
    let launched = DistributedLaunch.launcherWorldSize
    #if MPI
    if launched != nil { return try MPICommunicator(timeoutSeconds: timeoutSeconds) }
    #else
    if let n = launched, n > 1 {
        throw ValidationError("this kosmos was built without MPI but was started as one of \(n) MPI processes; "
            + "build it with `swift build -c release --traits MPI` (docs/distributed.md)")
    }
    #endif
    return SingleProcessCommunicator()
}

struct AllReduceBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "allreduce",
        abstract: "All-reduce bandwidth across the processes of an MPI job (run it under mpirun).",
        discussion: """
        Example: mpirun -np 2 kosmos bench allreduce. Sizes are float32 buffers; \
        bus bandwidth = bytes/time × 2(W−1)/W, as nccl-tests reports it.
        """
    )

    @Option(help: "Buffer sizes in bytes, comma-separated (default 4K,64K,1M,4M,16M,64M).")
    var sizes: String?

    @Option(help: "Seconds to spend on each size.")
    var seconds = 0.5

    func run() throws {
        var list = AllReduceBenchmark.defaultSizes
        if let sizes {
            let parsed = sizes.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !parsed.isEmpty, parsed.allSatisfy({ ($0 ?? 0) >= 4 }) else { throw ValidationError("--sizes takes byte counts ≥ 4, comma-separated") }
            list = parsed.map { $0! }
        }
        let communicator = try makeCommunicator(timeoutSeconds: 600)
        if communicator.isRoot {
            print("all-reduce (sum, float32) over \(communicator.worldSize) process(es), \(communicator.name)")
            if !communicator.isDistributed { print("(one process: nothing is exchanged; run under mpirun -np 2 or more)") }
            print(pad("bytes", 12) + pad("iterations", 12) + pad("time us", 12) + pad("algbw GB/s", 12) + "busbw GB/s")
        }
        do {
            try AllReduceBenchmark.run(communicator: communicator, sizes: list, secondsPerSize: seconds) { r in
                guard communicator.isRoot else { return }
                print(pad(byteString(r.bytes), 12) + pad("\(r.iterations)", 12) + pad(String(format: "%.1f", r.seconds * 1e6), 12)
                      + pad(String(format: "%.3f", r.algorithmBandwidth / 1e9), 12) + String(format: "%.3f", r.busBandwidth / 1e9))
            }
            try communicator.finalize()
        } catch {
            if communicator.isDistributed {
                FileHandle.standardError.write(Data("kosmos rank \(communicator.rank): error: \(error)\n".utf8))
                communicator.abort(code: 1)
            }
            throw error
        }
    }

    func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count)
    }

    func byteString(_ n: Int) -> String {
        if n >= 1 << 20 && n % (1 << 20) == 0 { return "\(n >> 20)M" }
        if n >= 1 << 10 && n % (1 << 10) == 0 { return "\(n >> 10)K" }
        return "\(n)"
    }
}
