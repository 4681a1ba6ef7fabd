import Foundation
import XCTest
import KosmosFormats
@testable import KosmosModels
import KosmosTensor

/// A model larger than the memory left is refused before its weights are allocated, naming both
/// sizes and what limits the memory; the limits are read from /proc/meminfo and the cgroup files.
final class MemoryCheckTests: XCTestCase {
    func tinyDirectory() throws -> (URL, KosmosModel) {
        var c = KosmosConfiguration.preset(named: "kosmos-tiny")!
        c.decoder.decoderLayers = 1
        let model = try KosmosModel(configuration: c, generator: RandomGenerator(seed: 1))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kosmos-memory-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        try model.save(directory: dir)
        return (dir, model)
    }

    func testTooLargeIsRefusedWithBothSizes() throws {
        let (dir, model) = try tinyDirectory()
        // float32 (as saved): the file's tensor bytes, after its 8-byte length and JSON header.
        let file = try Data(contentsOf: dir.appendingPathComponent("model.safetensors"))
        let headerLength = file.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let stored = Int64(file.count - 8 - headerLength)
        let weights = try ModelDirectory.weights(in: dir)
        XCTAssertEqual(MemoryCheck.estimate(weights, dtype: .float32), stored)
        XCTAssertGreaterThan(stored, Int64(4 * model.parameterCount) - 1)
        XCTAssertLessThan(MemoryCheck.estimate(weights, dtype: .bfloat16), stored * 6 / 10)
        XCTAssertThrowsError(try MemoryCheck.ensure(directory: dir, dtype: .float32, environment: ["KOSMOS_MEMORY_AVAILABLE": "1000"])) { error in
            guard let tooLarge = error as? MemoryCheck.TooLarge else { return XCTFail("\(error)") }
            XCTAssertEqual(tooLarge.needed, stored)
            XCTAssertEqual(tooLarge.available, 1000)
            XCTAssertEqual(tooLarge.limitedBy, "KOSMOS_MEMORY_AVAILABLE")
            XCTAssertTrue("\(error)".contains("needs about") && "\(error)".contains("only 0.00 GB is available"), "\(error)")
        }
        XCTAssertNoThrow(try MemoryCheck.ensure(directory: dir, dtype: .float32, environment: ["KOSMOS_MEMORY_AVAILABLE": "\(1 << 40)"]))
        // The registry checks before it builds anything.
        setenv("KOSMOS_MEMORY_AVAILABLE", "1000", 1)
        defer { unsetenv("KOSMOS_MEMORY_AVAILABLE") }
        XCTAssertThrowsError(try ModelRegistry.load(dir)) { XCTAssertTrue($0 is MemoryCheck.TooLarge, "\($0)") }
    }

    func testLimitsAreReadFromProcAndTheCgroup() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("kosmos-memroot-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: root) }
        func write(_ path: String, _ text: String) throws {
            let url = root.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try text.write(to: url, atomically: true, encoding: .utf8)
        }
        try write("proc/meminfo", "MemTotal:       24000000 kB\nMemFree:         1000000 kB\nMemAvailable:    8000000 kB\n")
        XCTAssertEqual(MemoryCheck.available(environment: [:], root: root.path)?.bytes, 8_000_000 * 1024)
        XCTAssertEqual(MemoryCheck.available(environment: [:], root: root.path)?.limitedBy, "MemAvailable")
        // cgroup v1: limit − usage, when lower; an unlimited v1 limit (2^63) is ignored.
        try write("sys/fs/cgroup/memory/memory.limit_in_bytes", "4000000000\n")
        try write("sys/fs/cgroup/memory/memory.usage_in_bytes", "1000000000\n")
        XCTAssertEqual(MemoryCheck.available(environment: [:], root: root.path)?.bytes, 3_000_000_000)
        try write("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n")
        XCTAssertEqual(MemoryCheck.available(environment: [:], root: root.path)?.limitedBy, "MemAvailable")
        // cgroup v2 wins over v1 files when present.
        try write("sys/fs/cgroup/memory.max", "2000000000\n")
        try write("sys/fs/cgroup/memory.current", "500000000\n")
        let v2 = MemoryCheck.available(environment: [:], root: root.path)
        XCTAssertEqual(v2?.bytes, 1_500_000_000)
        XCTAssertEqual(v2?.limitedBy, "the cgroup's memory.max")
        // "max" (no limit) is not a number: MemAvailable again.
        try write("sys/fs/cgroup/memory.max", "max\n")
        XCTAssertEqual(MemoryCheck.available(environment: [:], root: root.path)?.limitedBy, "MemAvailable")
        // And this machine's own numbers are read.
        #if os(Linux)
        XCTAssertGreaterThan(MemoryCheck.available()?.bytes ?? 0, 0)
        #endif
    }
}
