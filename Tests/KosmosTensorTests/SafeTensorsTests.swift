import Foundation
import KosmosTensor
import XCTest

final class SafeTensorsTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("SafeTensorsTests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    // MARK: - Helpers

    /// A file image: length prefix, header (space-padded to a multiple of 8 unless `pad` is false),
    /// data. `declaredLength` overrides the length prefix.
    private func image(_ header: String, data: [UInt8] = [], pad: Bool = true, declaredLength: UInt64? = nil) -> [UInt8] {
        var headerBytes = Array(header.utf8)
        if pad {
            headerBytes += [UInt8](repeating: 0x20, count: (8 - headerBytes.count % 8) % 8)
        }
        return littleEndian(declaredLength ?? UInt64(headerBytes.count)) + headerBytes + data
    }

    private func littleEndian(_ value: UInt64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }
    }

    private func save(_ bytes: [UInt8], as name: String = "model.safetensors") throws -> URL {
        let url = directory.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url
    }

    /// Asserts that opening `bytes` throws a SafeTensorsError whose reason contains every fragment
    /// (case-insensitive) and, when given, names `tensor`.
    private func assertRejects(
        _ bytes: [UInt8], _ fragments: [String], tensor: String? = nil,
        file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let url = try save(bytes)
        do {
            let opened = try SafeTensorsFile(url: url)
            XCTFail("expected an error, opened a file with \(opened.names)", file: file, line: line)
        } catch let error as SafeTensorsError {
            XCTAssertEqual(error.file, url.path, file: file, line: line)
            for fragment in fragments {
                XCTAssertTrue(error.reason.lowercased().contains(fragment.lowercased()),
                              "\"\(error.reason)\" should mention \"\(fragment)\"", file: file, line: line)
            }
            if let tensor = tensor {
                XCTAssertEqual(error.tensor, tensor, "in \(error)", file: file, line: line)
            }
        }
    }

    private func oneTensorHeader(_ entry: String, name: String = "w") -> String {
        "{\"\(name)\":\(entry)}"
    }

    /// A small valid file with several dtypes, odd byte counts (so later tensors are unaligned) and
    /// metadata, written by our writer.
    private func writeSample(to url: URL) throws {
        let weights: [Float] = [1, -2.5, 3.25, .infinity, -0.0, 1e-3]
        var writer = SafeTensorsWriter(metadata: ["format": "pt", "step": "12"])
        try weights.withUnsafeBufferPointer { buffer in
            try writer.add(name: "a.weight", shape: [2, 3], floats: buffer)
            try writer.add(name: "b.half", shape: [3, 2], floats: buffer, as: .f16)
            try writer.add(name: "c.brain", shape: [6], floats: buffer, as: .bf16)
            try writer.add(name: "d.ids", shape: [2], int64s: [7, -9])
            try writer.add(name: "e.mask", dtype: .bool, shape: [3], bytes: [1, 0, 1])
            try writer.add(name: "f.bytes", dtype: .u8, shape: [1, 1], bytes: [200])
            try writer.add(name: "g.i32", dtype: .i32, shape: [], bytes: [1, 0, 0, 0x80])
            try writer.write(to: url)
        }
    }

    /// Reads every tensor the way a loader would, so a corrupted file exercises the data paths too.
    private func readEverything(_ file: SafeTensorsReadable) {
        for name in file.names {
            guard let entry = file.entry(name) else { continue }
            if entry.dtype.isFloatingPoint {
                _ = try? file.floats(name)
            } else {
                _ = try? file.int64s(name)
            }
            _ = try? file.withRawBytes(name) { $0.reduce(0) { $0 &+ Int($1) } }
        }
    }

    private func isF16NaN(_ bits: UInt16) -> Bool { bits & 0x7C00 == 0x7C00 && bits & 0x03FF != 0 }
    private func isBF16NaN(_ bits: UInt16) -> Bool { bits & 0x7F80 == 0x7F80 && bits & 0x007F != 0 }

    // MARK: - Half precision

    func testF16ExhaustiveRoundTrip() {
        for raw in 0...0xFFFF {
            let bits = UInt16(raw)
            let value = HalfPrecision.float(fromF16: bits)
            if isF16NaN(bits) {
                XCTAssertTrue(value.isNaN, "bits \(bits)")
                XCTAssertTrue(isF16NaN(HalfPrecision.f16Bits(from: value)))
            } else {
                XCTAssertEqual(HalfPrecision.f16Bits(from: value), bits, "bits \(bits) -> \(value)")
            }
        }
        XCTAssertEqual(HalfPrecision.float(fromF16: 0x0001), 0x1p-24)
        XCTAssertEqual(HalfPrecision.float(fromF16: 0x03FF), 0x1p-14 - 0x1p-24)
        XCTAssertEqual(HalfPrecision.float(fromF16: 0x7BFF), 65504)
        XCTAssertEqual(HalfPrecision.float(fromF16: 0xFC00), -.infinity)
        XCTAssertEqual(HalfPrecision.float(fromF16: 0x8000).bitPattern, (-0.0 as Float).bitPattern)
    }

    func testBF16ExhaustiveRoundTrip() {
        for raw in 0...0xFFFF {
            let bits = UInt16(raw)
            let value = HalfPrecision.float(fromBF16: bits)
            if isBF16NaN(bits) {
                XCTAssertTrue(value.isNaN, "bits \(bits)")
                XCTAssertTrue(isBF16NaN(HalfPrecision.bf16Bits(from: value)))
            } else {
                XCTAssertEqual(HalfPrecision.bf16Bits(from: value), bits, "bits \(bits) -> \(value)")
            }
        }
    }

    /// Every midpoint between adjacent halves must round to the even one, and the floats just
    /// beside it to the nearer one; covers normals, subnormals and the overflow threshold.
    func testF16RoundsToNearestEven() {
        for raw in 0..<0x7C00 {
            for sign in [UInt16(0), 0x8000] {
                let low = UInt16(raw) | sign
                let lowValue = HalfPrecision.float(fromF16: low)
                // The next half up in magnitude; for 65504 that is the would-be 65536, i.e. inf.
                let highValue = raw == 0x7BFF ? (sign == 0 ? 65536 : -65536) : HalfPrecision.float(fromF16: low + 1)
                let middle = (lowValue + highValue) / 2
                let even = raw % 2 == 0 ? low : low + 1
                XCTAssertEqual(HalfPrecision.f16Bits(from: middle), even, "midpoint \(middle)")
                let inner = sign == 0 ? middle.nextDown : middle.nextUp
                let outer = sign == 0 ? middle.nextUp : middle.nextDown
                XCTAssertEqual(HalfPrecision.f16Bits(from: inner), low, "below midpoint \(middle)")
                XCTAssertEqual(HalfPrecision.f16Bits(from: outer), low + 1, "above midpoint \(middle)")
            }
        }
        XCTAssertEqual(HalfPrecision.f16Bits(from: 1e10), 0x7C00)
        XCTAssertEqual(HalfPrecision.f16Bits(from: -.infinity), 0xFC00)
        XCTAssertEqual(HalfPrecision.f16Bits(from: 0x1p-26), 0)
        XCTAssertEqual(HalfPrecision.f16Bits(from: -0x1p-25), 0x8000)
        XCTAssertEqual(HalfPrecision.f16Bits(from: .nan), 0x7E00)
        XCTAssertEqual(HalfPrecision.f16Bits(from: .greatestFiniteMagnitude), 0x7C00)
        XCTAssertEqual(HalfPrecision.f16Bits(from: .leastNonzeroMagnitude), 0)
    }

    func testBF16RoundsToNearestEven() {
        for raw in 0..<0x7F80 {
            for sign in [UInt32(0), 0x8000_0000] {
                let low = UInt16(raw) | UInt16(sign >> 16)
                let middle = Float(bitPattern: UInt32(raw) << 16 | 0x8000 | sign)
                let even = raw % 2 == 0 ? low : low + 1
                XCTAssertEqual(HalfPrecision.bf16Bits(from: middle), even)
                XCTAssertEqual(HalfPrecision.bf16Bits(from: Float(bitPattern: middle.bitPattern - 1)), low)
                XCTAssertEqual(HalfPrecision.bf16Bits(from: Float(bitPattern: middle.bitPattern + 1)), low + 1)
            }
        }
        XCTAssertEqual(HalfPrecision.bf16Bits(from: .greatestFiniteMagnitude), 0x7F80)
        XCTAssertEqual(HalfPrecision.bf16Bits(from: .nan), 0x7FC0)
    }

    #if !(os(macOS) && arch(x86_64))
    /// Independent check against the platform's Float16 where it exists (the implementation must not
    /// depend on it, but tests may use it as a second reference).
    func testF16AgreesWithPlatformFloat16() {
        for raw in 0...0xFFFF {
            let bits = UInt16(raw)
            let ours = HalfPrecision.float(fromF16: bits)
            let platform = Float(Float16(bitPattern: bits))
            XCTAssertTrue(ours.bitPattern == platform.bitPattern || (ours.isNaN && platform.isNaN), "bits \(bits)")
        }
        var generator = SplitMix64(seed: 7)
        for _ in 0..<200_000 {
            let value = Float(bitPattern: UInt32(truncatingIfNeeded: generator.next()))
            let ours = HalfPrecision.f16Bits(from: value)
            let platform = Float16(value).bitPattern
            XCTAssertTrue(ours == platform || (value.isNaN && isF16NaN(ours) && isF16NaN(platform)), "\(value)")
        }
    }
    #endif

    // MARK: - Round trips

    /// A temporary tensor added to the writer stays alive until the file is written (it was freed
    /// first: AddressSanitizer's heap-use-after-free in `kosmos encode-video`'s frame_times). The
    /// allocator is churned in between so a freed buffer would likely hold other values.
    func testATemporaryTensorIsKeptUntilWritten() throws {
        var writer = SafeTensorsWriter()
        try writer.add(name: "times", tensor: Tensor(shape: [3], scalars: [0.25, 1.5, 2.75]))
        try writer.add(name: "more", tensor: Tensor(shape: [2, 2], scalars: [1, 2, 3, 4]), as: .bf16)
        var churn: [Tensor] = []
        for i in 0..<200 { churn.append(Tensor(shape: [3], scalars: [Float(i), -1, -2])) }
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("temporary-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try writer.write(to: url)
        let file = try SafeTensorsFile(url: url)
        XCTAssertEqual(try file.floats("times"), [0.25, 1.5, 2.75])
        XCTAssertEqual(try file.floats("more"), [1, 2, 3, 4])
        XCTAssertEqual(churn.count, 200)
    }

    func testRoundTripEveryDType() throws {
        let url = directory.appendingPathComponent("all.safetensors")
        let f32: [Float] = [0, 1, -1, .pi, .infinity, -.infinity, .nan, -0.0, .leastNonzeroMagnitude, .greatestFiniteMagnitude]
        let halfExact: [Float] = [0, -0.0, 1, -2, 0.5, 65504, -65504, 0x1p-24, 0x1p-14, .infinity, -.infinity, .nan]
        let inexact: [Float] = [0.1, 1.0 / 3, 1e-6, 70000, -1e-9, 123.456]
        let ints: [Int64] = [0, 1, -1, .max, .min]
        var writer = SafeTensorsWriter(metadata: ["format": "pt", "note": "héllo \"✓\"\n"])
        try f32.withUnsafeBufferPointer { f32Buffer in
            try halfExact.withUnsafeBufferPointer { exactBuffer in
                try inexact.withUnsafeBufferPointer { inexactBuffer in
                    try writer.add(name: "f32", shape: [2, 5], floats: f32Buffer)
                    try writer.add(name: "f16.exact", shape: [3, 4], floats: exactBuffer, as: .f16)
                    try writer.add(name: "bf16.exact", shape: [12], floats: exactBuffer, as: .bf16)
                    try writer.add(name: "f16.inexact", shape: [6], floats: inexactBuffer, as: .f16)
                    try writer.add(name: "bf16.inexact", shape: [2, 3], floats: inexactBuffer, as: .bf16)
                    try writer.add(name: "i64", shape: [5], int64s: ints)
                    try writer.add(name: "i32", dtype: .i32, shape: [2], bytes: [0xFF, 0xFF, 0xFF, 0xFF, 5, 0, 0, 0])
                    try writer.add(name: "u8", dtype: .u8, shape: [3], bytes: [0, 128, 255])
                    try writer.add(name: "bool", dtype: .bool, shape: [1, 3], bytes: [1, 0, 1])
                    try writer.add(name: "scalar", shape: [], floats: UnsafeBufferPointer(rebasing: f32Buffer[3..<4]))
                    try writer.add(name: "empty", shape: [0, 4], floats: UnsafeBufferPointer(rebasing: f32Buffer[0..<0]), as: .f16)
                    try writer.write(to: url)
                }
            }
        }
        let file = try SafeTensorsFile(url: url)
        XCTAssertEqual(file.names, ["bf16.exact", "bf16.inexact", "bool", "empty", "f16.exact", "f16.inexact", "f32", "i32", "i64", "scalar", "u8"])
        XCTAssertEqual(file.metadata, ["format": "pt", "note": "héllo \"✓\"\n"])
        func assertBits(_ actual: [Float], _ expected: [Float], _ name: String) {
            XCTAssertEqual(actual.count, expected.count, name)
            for (a, e) in zip(actual, expected) {
                XCTAssertTrue(a.bitPattern == e.bitPattern || (a.isNaN && e.isNaN), "\(name): \(a) != \(e)")
            }
        }
        assertBits(try file.floats("f32"), f32, "f32")
        assertBits(try file.floats("f16.exact"), halfExact, "f16.exact")
        assertBits(try file.floats("bf16.exact"), halfExact.map { HalfPrecision.float(fromBF16: HalfPrecision.bf16Bits(from: $0)) }, "bf16.exact")
        assertBits(try file.floats("f16.inexact"), inexact.map { HalfPrecision.float(fromF16: HalfPrecision.f16Bits(from: $0)) }, "f16.inexact")
        assertBits(try file.floats("bf16.inexact"), inexact.map { HalfPrecision.float(fromBF16: HalfPrecision.bf16Bits(from: $0)) }, "bf16.inexact")
        XCTAssertEqual(try file.floats("f16.inexact")[4], 0)  // -1e-9 underflows to -0
        XCTAssertEqual(try file.floats("f16.inexact")[3], .infinity)  // 70000 overflows
        XCTAssertEqual(try file.int64s("i64"), ints)
        XCTAssertEqual(try file.int64s("i32"), [-1, 5])
        XCTAssertEqual(try file.int64s("u8"), [0, 128, 255])
        XCTAssertEqual(try file.int64s("bool"), [1, 0, 1])
        XCTAssertEqual(try file.floats("scalar"), [.pi])
        XCTAssertEqual(try file.floats("empty"), [])
        XCTAssertEqual(file.entry("scalar"), file.entry("scalar"))
        XCTAssertEqual(file.entry("scalar")?.shape, [])
        XCTAssertEqual(file.entry("scalar")?.elementCount, 1)
        XCTAssertEqual(file.entry("empty")?.elementCount, 0)
        XCTAssertEqual(file.entry("f16.exact")?.dtype, .f16)
        XCTAssertEqual(file.entry("bool")?.shape, [1, 3])
        XCTAssertEqual(try file.withRawBytes("i32") { Array($0) }, [0xFF, 0xFF, 0xFF, 0xFF, 5, 0, 0, 0])

        var destination = [Float](repeating: 0, count: 10)
        try destination.withUnsafeMutableBufferPointer { try file.copyFloats("f32", into: $0) }
        assertBits(destination, f32, "copyFloats")
    }

    func testHeaderIsPaddedAndTensorsOrderedByName() throws {
        for nameLength in 1...9 {
            let url = directory.appendingPathComponent("pad\(nameLength).safetensors")
            var writer = SafeTensorsWriter()
            let values: [Float] = [1, 2, 3]
            try values.withUnsafeBufferPointer { buffer in
                try writer.add(name: "z", shape: [3], floats: buffer)
                try writer.add(name: String(repeating: "n", count: nameLength), shape: [1, 3], floats: buffer, as: .bf16)
                try writer.write(to: url)
            }
            let bytes = [UInt8](try Data(contentsOf: url))
            let length = (0..<8).reduce(0) { $0 | Int(bytes[$1]) << (8 * $1) }
            XCTAssertEqual(length % 8, 0)
            let header = Array(bytes[8..<(8 + length)])
            let jsonEnd = try XCTUnwrap(header.lastIndex(of: UInt8(ascii: "}")))
            XCTAssertTrue(header[(jsonEnd + 1)...].allSatisfy { $0 == 0x20 }, "padding must be spaces")
            XCTAssertLessThan(header.count - jsonEnd - 1, 8)
            let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(header)) as? [String: Any])
            let first = try XCTUnwrap((json[String(repeating: "n", count: nameLength)] as? [String: Any])?["data_offsets"] as? [Int])
            let second = try XCTUnwrap((json["z"] as? [String: Any])?["data_offsets"] as? [Int])
            XCTAssertEqual(first, [0, 6])
            XCTAssertEqual(second, [6, 18])
            XCTAssertEqual(try SafeTensorsFile(url: url).floats("z"), values)
        }
    }

    func testMetadataRoundTripAndEmptyFile() throws {
        let url = directory.appendingPathComponent("empty.safetensors")
        let metadata = ["format": "pt", "": "empty key", "unicode ✓": "tab\there", "quote\"back\\slash": "\u{01}"]
        try SafeTensorsWriter(metadata: metadata).write(to: url)
        let file = try SafeTensorsFile(url: url)
        XCTAssertEqual(file.metadata, metadata)
        XCTAssertEqual(file.names, [])

        let noMetadata = directory.appendingPathComponent("none.safetensors")
        try SafeTensorsWriter().write(to: noMetadata)
        XCTAssertEqual([UInt8](try Data(contentsOf: noMetadata)), image("{}"))
        XCTAssertEqual(try SafeTensorsFile(url: noMetadata).metadata, [:])
    }

    func testTensorNamesNeedingEscapesRoundTrip() throws {
        let url = directory.appendingPathComponent("names.safetensors")
        let names = ["quote\"d", "back\\slash", "new\nline", "ünïcødé ✓", "ctrl\u{07}", "emoji 🙂", ""]
        var writer = SafeTensorsWriter()
        for (index, name) in names.enumerated() {
            try writer.add(name: name, shape: [1], int64s: [Int64(index)])
        }
        try writer.write(to: url)
        let file = try SafeTensorsFile(url: url)
        XCTAssertEqual(file.names, names.sorted())
        for (index, name) in names.enumerated() {
            XCTAssertEqual(try file.int64s(name), [Int64(index)], name)
        }
    }

    func testLargeHalfTensorStreamsInChunks() throws {
        // More elements than one conversion chunk, so the chunk boundary is crossed.
        let count = 300_001
        let values = (0..<count).map { Float($0 % 2048) * 0.25 - 256 }
        let url = directory.appendingPathComponent("large.safetensors")
        var writer = SafeTensorsWriter()
        try values.withUnsafeBufferPointer { buffer in
            try writer.add(name: "big.f16", shape: [count], floats: buffer, as: .f16)
            try writer.add(name: "big.f32", shape: [1, count], floats: buffer)
            try writer.write(to: url)
        }
        let file = try SafeTensorsFile(url: url)
        XCTAssertEqual(try file.floats("big.f16"), values)
        XCTAssertEqual(try file.floats("big.f32"), values)
        XCTAssertGreaterThan(file.fileSize, count * 6)
    }

    // MARK: - Python fixtures

    private func expectedFixture() throws -> [String: Any] {
        let data = try Data(contentsOf: fixtureURL("safetensors_python_expected.json"))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// Compares every tensor of `file` with the expected JSON, bit for bit.
    private func assertMatches(_ file: SafeTensorsReadable, _ expected: [String: Any]) throws {
        XCTAssertEqual(file.names, expected.keys.sorted())
        for (name, value) in expected {
            let description = try XCTUnwrap(value as? [String: Any])
            let entry = try XCTUnwrap(file.entry(name), name)
            XCTAssertEqual(entry.dtype.rawValue, description["dtype"] as? String, name)
            XCTAssertEqual(entry.shape, description["shape"] as? [Int], name)
            let values = try XCTUnwrap(description["values"] as? [Any])
            XCTAssertEqual(entry.elementCount, values.count, name)
            if entry.dtype.isFloatingPoint {
                let actual = try file.floats(name)
                for (index, text) in values.enumerated() {
                    let expectedValue = Float(try XCTUnwrap(Double(try XCTUnwrap(text as? String)), "\(text)"))
                    XCTAssertTrue(actual[index].bitPattern == expectedValue.bitPattern || (actual[index].isNaN && expectedValue.isNaN),
                                  "\(name)[\(index)]: \(actual[index]) != \(expectedValue)")
                }
            } else {
                let actual = try file.int64s(name)
                let expectedValues = try values.map { try XCTUnwrap(($0 as? NSNumber)?.int64Value) }
                XCTAssertEqual(actual, expectedValues, name)
            }
        }
    }

    func testReadsPythonFixtureExactly() throws {
        let expected = try expectedFixture()
        let file = try SafeTensorsFile(url: fixtureURL("safetensors_python.safetensors"))
        XCTAssertEqual(file.metadata, expected["metadata"] as? [String: String])
        try assertMatches(file, try XCTUnwrap(expected["tensors"] as? [String: Any]))
        // The extremes survive JSON: check them directly too.
        XCTAssertEqual(try file.int64s("i64.values"), [0, 1, -1, .max, .min, 1_234_567_890_123])
        XCTAssertEqual(file.entry("scalar")?.shape, [])
        XCTAssertEqual(file.entry("empty")?.shape, [0, 3])
    }

    /// PyTorch's own Float→F16/BF16 roundings of tie cases and random values must equal ours.
    func testRoundingMatchesPyTorch() throws {
        let file = try SafeTensorsFile(url: fixtureURL("safetensors_python.safetensors"))
        let source = try file.floats("rounding.source")
        let f16 = try file.withRawBytes("rounding.f16") { raw in (0..<source.count).map { UInt16(raw[2 * $0]) | UInt16(raw[2 * $0 + 1]) << 8 } }
        let bf16 = try file.withRawBytes("rounding.bf16") { raw in (0..<source.count).map { UInt16(raw[2 * $0]) | UInt16(raw[2 * $0 + 1]) << 8 } }
        XCTAssertGreaterThan(source.count, 50)
        for (index, value) in source.enumerated() {
            if value.isNaN {
                XCTAssertTrue(isF16NaN(f16[index]) && isF16NaN(HalfPrecision.f16Bits(from: value)))
                XCTAssertTrue(isBF16NaN(bf16[index]) && isBF16NaN(HalfPrecision.bf16Bits(from: value)))
            } else {
                XCTAssertEqual(HalfPrecision.f16Bits(from: value), f16[index], "F16 of \(value)")
                XCTAssertEqual(HalfPrecision.bf16Bits(from: value), bf16[index], "BF16 of \(value)")
            }
        }
    }

    func testReadsShardedFixture() throws {
        let expected = try XCTUnwrap(try expectedFixture()["sharded"] as? [String: Any])
        let checkpoint = try ShardedSafeTensors(directory: fixtureURL("sharded"))
        XCTAssertEqual(checkpoint.metadata, expected["metadata"] as? [String: String])
        XCTAssertEqual(checkpoint.shardURLs.count, 2)
        try assertMatches(checkpoint, try XCTUnwrap(expected["tensors"] as? [String: Any]))
        try checkpoint.validate()
        let byIndex = try ShardedSafeTensors(indexURL: fixtureURL("sharded/model.safetensors.index.json"))
        XCTAssertEqual(byIndex.names, checkpoint.names)
        XCTAssertEqual(try byIndex.shard(containing: "model.step")?.url.lastPathComponent, "model-00001-of-00002.safetensors")
        XCTAssertThrowsError(try byIndex.floats("model.nope")) { error in
            XCTAssertEqual((error as? SafeTensorsError)?.tensor, "model.nope")
        }
    }

    // MARK: - Sharded checkpoints

    /// Copies the sharded fixture into a fresh directory, optionally replacing the index.
    private func shardedCopy(index: String? = nil, dropping: String? = nil) throws -> URL {
        let target = directory.appendingPathComponent("sharded-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
        for name in try FileManager.default.contentsOfDirectory(atPath: fixtureURL("sharded").path) where name != dropping {
            try FileManager.default.copyItem(at: fixtureURL("sharded").appendingPathComponent(name),
                                             to: target.appendingPathComponent(name))
        }
        if let index = index {
            try Data(index.utf8).write(to: target.appendingPathComponent("model.safetensors.index.json"))
        }
        return target
    }

    func testShardedMissingShardIsNamed() throws {
        let target = try shardedCopy(dropping: "model-00002-of-00002.safetensors")
        XCTAssertThrowsError(try ShardedSafeTensors(directory: target)) { error in
            let error = error as? SafeTensorsError
            XCTAssertTrue(error?.reason.contains("model-00002-of-00002.safetensors") == true, "\(String(describing: error))")
            XCTAssertTrue(error?.reason.contains("missing") == true)
        }
    }

    func testShardedTensorAbsentFromItsShard() throws {
        let index = """
        {"metadata": {"total_size": 80}, "weight_map": {
          "model.embed.weight": "model-00001-of-00002.safetensors",
          "model.ghost": "model-00001-of-00002.safetensors",
          "model.layers.0.fc.bias": "model-00002-of-00002.safetensors"}}
        """
        let checkpoint = try ShardedSafeTensors(directory: try shardedCopy(index: index))
        XCTAssertEqual(try checkpoint.floats("model.layers.0.fc.bias").count, 3)
        XCTAssertNil(checkpoint.entry("model.ghost"))
        XCTAssertThrowsError(try checkpoint.floats("model.embed.weight")) { error in
            let error = error as? SafeTensorsError
            XCTAssertEqual(error?.tensor, "model.ghost")
            XCTAssertTrue(error?.file.hasSuffix("model-00001-of-00002.safetensors") == true)
        }
        XCTAssertThrowsError(try checkpoint.validate())
    }

    func testShardedRejectsBadIndexes() throws {
        let cases: [(String, String)] = [
            ("[1, 2]", "object"),
            ("{\"metadata\": {}}", "weight_map"),
            ("{\"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\", \"a\": \"model-00002-of-00002.safetensors\"}}", "twice"),
            ("{\"weight_map\": {\"a\": \"../../etc/passwd.safetensors\"}}", "relative path"),
            ("{\"weight_map\": {\"a\": \"pytorch_model-00001.bin\"}}", ".bin"),
            ("{\"weight_map\": {\"a\": 3}}", "string"),
            ("{\"weight_map\": {", "not valid JSON"),
            (String(repeating: "[", count: 100_000), "nesting"),
            ("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n", "Git LFS"),
        ]
        for (index, fragment) in cases {
            let target = try shardedCopy(index: index)
            XCTAssertThrowsError(try ShardedSafeTensors(directory: target), fragment) { error in
                let reason = (error as? SafeTensorsError)?.description ?? "\(error)"
                XCTAssertTrue(reason.contains(fragment), "\(reason) should mention \(fragment)")
            }
        }
    }

    func testShardedSingleFileDirectory() throws {
        let target = directory.appendingPathComponent("single")
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
        try writeSample(to: target.appendingPathComponent("model.safetensors"))
        let checkpoint = try ShardedSafeTensors(directory: target)
        XCTAssertNil(checkpoint.indexURL)
        XCTAssertEqual(checkpoint.metadata["step"], "12")
        XCTAssertEqual(try checkpoint.int64s("d.ids"), [7, -9])
        XCTAssertEqual(checkpoint.entry("a.weight")?.shape, [2, 3])

        let emptyDirectory = directory.appendingPathComponent("nothing")
        try FileManager.default.createDirectory(at: emptyDirectory, withIntermediateDirectories: true)
        XCTAssertThrowsError(try ShardedSafeTensors(directory: emptyDirectory)) { error in
            XCTAssertTrue("\(error)".contains("model.safetensors"))
        }
    }

    // MARK: - Malformed files

    private let validEntry = "{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"
    private let eightBytes = [UInt8](repeating: 0, count: 8)

    func testAcceptsHandMadeMinimalFile() throws {
        let url = try save(image(oneTensorHeader(validEntry), data: eightBytes))
        XCTAssertEqual(try SafeTensorsFile(url: url).floats("w"), [0, 0])
        // Unpadded headers and surrounding whitespace are legal too.
        let unpadded = try save(image(" \n" + oneTensorHeader(validEntry) + "\t", data: eightBytes, pad: false), as: "unpadded.safetensors")
        XCTAssertEqual(try SafeTensorsFile(url: unpadded).names, ["w"])
        // Zero tensors is a valid file.
        let empty = try save(image("{\"__metadata__\":{\"a\":\"b\"}}"), as: "empty.safetensors")
        XCTAssertEqual(try SafeTensorsFile(url: empty).metadata, ["a": "b"])
    }

    func testRejectsTruncatedData() throws {
        try assertRejects(image(oneTensorHeader(validEntry), data: [0, 0, 0, 0, 0]), ["truncated"])
    }

    func testRejectsTruncatedHeader() throws {
        let full = image(oneTensorHeader(validEntry), data: eightBytes)
        try assertRejects(Array(full.prefix(30)), ["truncated", "runs past the end"])
    }

    func testRejectsFileShorterThanEightBytes() throws {
        try assertRejects([1, 0, 0], ["shorter than the 8-byte"])
        try assertRejects([], ["empty file"])
        try assertRejects(Array("<html>".utf8), ["HTML"])
    }

    func testRejectsHugeHeaderLength() throws {
        try assertRejects(image(oneTensorHeader(validEntry), data: eightBytes, declaredLength: 1 << 63), ["9223372036854775808", "limit"])
        try assertRejects(image("{}", declaredLength: .max), ["limit"])
        try assertRejects(image("{}", declaredLength: 100_000_001), ["limit"])
    }

    func testRejectsHeaderLengthPastEndOfFile() throws {
        try assertRejects(image(oneTensorHeader(validEntry), data: eightBytes, declaredLength: 1000), ["runs past the end"])
    }

    func testRejectsBitFlippedHeaderJSON() throws {
        var bytes = image(oneTensorHeader(validEntry), data: eightBytes)
        let colon = try XCTUnwrap(bytes.firstIndex(of: UInt8(ascii: ":")))
        bytes[colon] ^= 0x01  // ':' becomes ';'
        try assertRejects(bytes, ["not valid JSON", "expected ':'"])
        var brace = image(oneTensorHeader(validEntry), data: eightBytes)
        brace[8] ^= 0x02  // '{' becomes 'y'
        try assertRejects(brace, ["not valid JSON"])
        // Garbage after the object instead of space padding.
        try assertRejects(image(oneTensorHeader(validEntry) + "x", data: eightBytes), ["unexpected content"])
    }

    func testRejectsNonUTF8Header() throws {
        var bytes = image(oneTensorHeader(validEntry, name: "wxyz"), data: eightBytes)
        let position = try XCTUnwrap(bytes.firstIndex(of: UInt8(ascii: "x")))
        bytes[position] = 0xFF
        try assertRejects(bytes, ["UTF-8"])
        // An overlong encoding of '/' is not valid UTF-8 either.
        bytes[position] = 0xC0
        bytes[position + 1] = 0xAF
        try assertRejects(bytes, ["UTF-8"])
    }

    func testRejectsHeaderThatIsNotAnObject() throws {
        try assertRejects(image("[1,2]"), ["must be an object", "array"])
        try assertRejects(image("\"text\""), ["must be an object"])
        try assertRejects(image(oneTensorHeader("[1,2]")), ["must be an object"], tensor: "w")
    }

    func testRejectsShapeThatIsNotAnArray() throws {
        try assertRejects(image(oneTensorHeader("{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}"), data: eightBytes),
                          ["shape must be an array"], tensor: "w")
        try assertRejects(image(oneTensorHeader("{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}"), data: eightBytes),
                          ["shape", "a string"], tensor: "w")
    }

    func testRejectsNegativeDimension() throws {
        try assertRejects(image(oneTensorHeader("{\"dtype\":\"F32\",\"shape\":[-1,-2],\"data_offsets\":[0,8]}"), data: eightBytes),
                          ["negative"], tensor: "w")
    }

    func testRejectsNonIntegerOffsets() throws {
        try assertRejects(image(oneTensorHeader("{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0.0,8]}"), data: eightBytes),
                          ["data_offsets", "not an integer"], tensor: "w")
        try assertRejects(image(oneTensorHeader("{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8e0]}"), data: eightBytes),
                          ["not an integer"], tensor: "w")
        try assertRejects(image(oneTensorHeader("{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,99999999999999999999999]}"), data: eightBytes),
                          ["too large"], tensor: "w")
        try assertRejects(image(oneTensorHeader("{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}"), data: eightBytes),
                          ["exactly 2"], tensor: "w")
        try assertRejects(image(oneTensorHeader("{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}"), data: eightBytes),
                          ["end before they begin"], tensor: "w")
    }

    func testRejectsMissingOrUnexpectedFields() throws {
        try assertRejects(image(oneTensorHeader("{\"shape\":[2],\"data_offsets\":[0,8]}"), data: eightBytes), ["no dtype"], tensor: "w")
        try assertRejects(image(oneTensorHeader("{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"extra\":1}"), data: eightBytes),
                          ["unexpected key \"extra\""], tensor: "w")
        try assertRejects(image(oneTensorHeader("{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"), data: eightBytes),
                          ["dtype appears twice"], tensor: "w")
    }

    func testRejectsOverlappingOffsets() throws {
        let header = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}"
        try assertRejects(image(header, data: eightBytes), ["overlap tensor a"], tensor: "b")
    }

    func testRejectsGappedOffsets() throws {
        let header = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}"
        try assertRejects(image(header, data: [UInt8](repeating: 0, count: 12)), ["gap", "4..<8"], tensor: "b")
    }

    func testRejectsOffsetsNotStartingAtZero() throws {
        try assertRejects(image(oneTensorHeader("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}"), data: eightBytes),
                          ["gap", "start of the data section"], tensor: "w")
    }

    func testRejectsOverflowingShapeProduct() throws {
        try assertRejects(image(oneTensorHeader("{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4611686018427387904],\"data_offsets\":[0,8]}"), data: eightBytes),
                          ["overflows"], tensor: "w")
        // The element count fits but the byte count does not.
        try assertRejects(image(oneTensorHeader("{\"dtype\":\"I64\",\"shape\":[2305843009213693952],\"data_offsets\":[0,8]}"), data: eightBytes),
                          ["overflows"], tensor: "w")
    }

    func testRejectsShapeThatDoesNotMatchSpan() throws {
        try assertRejects(image(oneTensorHeader("{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}"), data: eightBytes),
                          ["needs 12 bytes", "span 8"], tensor: "w")
        try assertRejects(image(oneTensorHeader("{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,8]}"), data: eightBytes),
                          ["needs 4 bytes"], tensor: "w")
    }

    func testRejectsUnknownDType() throws {
        try assertRejects(image(oneTensorHeader("{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}"), data: eightBytes),
                          ["unknown dtype \"F33\""], tensor: "w")
        try assertRejects(image(oneTensorHeader("{\"dtype\":\"U64\",\"shape\":[1],\"data_offsets\":[0,8]}"), data: eightBytes),
                          ["U64 is not supported"], tensor: "w")
        try assertRejects(image(oneTensorHeader("{\"dtype\":32,\"shape\":[2],\"data_offsets\":[0,8]}"), data: eightBytes),
                          ["dtype must be a string"], tensor: "w")
    }

    func testRejectsDuplicateTensorNames() throws {
        let header = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}"
        try assertRejects(image(header, data: eightBytes), ["duplicate tensor name"], tensor: "a")
        // The same name spelled with an escape is still the same name.
        let escaped = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"\\u0061\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}"
        try assertRejects(image(escaped, data: eightBytes), ["duplicate tensor name"], tensor: "a")
        try assertRejects(image("{\"__metadata__\":{},\"__metadata__\":{}}"), ["__metadata__ appears twice"])
    }

    func testRejectsTrailingBytes() throws {
        try assertRejects(image(oneTensorHeader(validEntry), data: eightBytes + [0]), ["1 trailing byte after"])
        try assertRejects(image("{}", data: [1, 2, 3]), ["3 trailing bytes"])
    }

    func testRejectsGitLFSPointerWithHelpfulMessage() throws {
        let pointer = """
        version https://git-lfs.github.com/spec/v1
        oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393
        size 1421154048

        """
        try assertRejects(Array(pointer.utf8), ["looks like a Git LFS pointer, not the weights", "git lfs pull"])
    }

    func testRejectsHTMLErrorPage() throws {
        let page = "<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>Not Found</body></html>\n"
        try assertRejects(Array(page.utf8), ["HTML"])
        try assertRejects(Array("{\"weight_map\": {}}".utf8), ["JSON file"])
    }

    func testRejectsMetadataWithNonStringValue() throws {
        try assertRejects(image("{\"__metadata__\":{\"total_size\":80}}"), ["__metadata__", "total_size", "must be a string"])
        try assertRejects(image("{\"__metadata__\":[\"a\"]}"), ["__metadata__ must be an object"])
        try assertRejects(image("{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"}}"), ["twice"])
    }

    func testErrorDescriptionNamesFileAndTensor() {
        let error = SafeTensorsError(file: "model.safetensors", tensor: "decoder.layers.3.fc1.weight", reason: "bad shape")
        XCTAssertEqual(error.description, "model.safetensors: tensor decoder.layers.3.fc1.weight: bad shape")
        XCTAssertEqual(SafeTensorsError(file: "x", reason: "r").description, "x: r")
    }

    // MARK: - Robustness

    /// Every truncation of a valid file must throw, and thousands of random byte corruptions must
    /// each either load (and read) or throw — never crash, hang or trap.
    func testTruncationsAndRandomCorruptionNeverCrash() throws {
        let sourceURL = directory.appendingPathComponent("sample.safetensors")
        try writeSample(to: sourceURL)
        let original = [UInt8](try Data(contentsOf: sourceURL))
        XCTAssertNoThrow(try SafeTensorsFile(url: sourceURL))
        let url = directory.appendingPathComponent("mutant.safetensors")
        for length in 0..<original.count {
            try Data(original.prefix(length)).write(to: url)
            XCTAssertThrowsError(try SafeTensorsFile(url: url), "prefix of \(length) bytes") { error in
                XCTAssertTrue(error is SafeTensorsError)
            }
        }
        var generator = SplitMix64(seed: 0x5AFE_7E45)
        var loaded = 0
        let headerEnd = 8 + (0..<8).reduce(0) { $0 | Int(original[$1]) << (8 * $1) }
        for attempt in 0..<3000 {
            var bytes = original
            let flips = 1 + Int(generator.next() % 3)
            for _ in 0..<flips {
                // Mostly inside the length field and header, where the parsing is.
                let limit = attempt % 4 == 0 ? bytes.count : headerEnd
                let position = Int(generator.next() % UInt64(limit))
                if generator.next() % 2 == 0 {
                    bytes[position] ^= UInt8(1) << UInt8(generator.next() % 8)
                } else {
                    bytes[position] = UInt8(truncatingIfNeeded: generator.next())
                }
            }
            if attempt % 10 == 0 {
                bytes.removeLast(Int(generator.next() % 16))
            }
            try Data(bytes).write(to: url)
            do {
                let file = try SafeTensorsFile(url: url)
                readEverything(file)
                loaded += 1
            } catch {
                XCTAssertTrue(error is SafeTensorsError, "\(error)")
            }
        }
        // Flips in tensor data (and in some header digits) keep files valid, so some must load.
        XCTAssertGreaterThan(loaded, 0)
    }

    // MARK: - Atomic writes

    func testAtomicWriteReplacesExistingFile() throws {
        let url = directory.appendingPathComponent("target.bin")
        try Data("old contents".utf8).write(to: url)
        try AtomicFile.write(to: url) { file in
            try file.write("new ")
            try file.write([UInt8](repeating: 0x41, count: 3 << 20))  // larger than the write buffer
            try file.write([1, 2, 3])
        }
        let bytes = [UInt8](try Data(contentsOf: url))
        XCTAssertEqual(bytes.count, 4 + (3 << 20) + 3)
        XCTAssertEqual(Array(bytes.prefix(4)), Array("new ".utf8))
        XCTAssertEqual(Array(bytes.suffix(3)), [1, 2, 3])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["target.bin"])

        // The writer goes through the same path: a second save replaces the first.
        let model = directory.appendingPathComponent("model.safetensors")
        try writeSample(to: model)
        var writer = SafeTensorsWriter()
        try writer.add(name: "only", shape: [1], int64s: [5])
        try writer.write(to: model)
        XCTAssertEqual(try SafeTensorsFile(url: model).names, ["only"])
    }

    func testAtomicWriteThatThrowsLeavesOldFileUntouched() throws {
        struct Interrupted: Error {}
        let url = directory.appendingPathComponent("model.safetensors")
        try writeSample(to: url)
        let before = try Data(contentsOf: url)
        let listing = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        XCTAssertThrowsError(try AtomicFile.write(to: url) { file in
            try file.write([UInt8](repeating: 7, count: 5 << 20))
            throw Interrupted()
        }) { error in
            XCTAssertTrue(error is Interrupted)
        }
        XCTAssertEqual(try Data(contentsOf: url), before)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted(), listing)
    }

    func testAtomicWriteErrorNamesPathAndReason() throws {
        let url = directory.appendingPathComponent("no-such-directory/model.safetensors")
        XCTAssertThrowsError(try AtomicFile.write(to: url) { try $0.write([1]) }) { error in
            let error = error as? AtomicFileError
            XCTAssertEqual(error?.path, url.path)
            XCTAssertTrue(error?.reason.contains("No such file or directory") == true, "\(String(describing: error))")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.path))
    }

    // MARK: - API misuse

    func testMissingTensorAndWrongDTypeNameTheTensor() throws {
        let url = directory.appendingPathComponent("model.safetensors")
        try writeSample(to: url)
        let file = try SafeTensorsFile(url: url)
        func assertError(_ body: () throws -> Void, tensor: String, _ fragment: String, line: UInt = #line) {
            XCTAssertThrowsError(try body(), line: line) { error in
                let error = error as? SafeTensorsError
                XCTAssertEqual(error?.tensor, tensor, line: line)
                XCTAssertEqual(error?.file, url.path, line: line)
                XCTAssertTrue(error?.reason.contains(fragment) == true, "\(String(describing: error))", line: line)
            }
        }
        assertError({ _ = try file.floats("missing") }, tensor: "missing", "no such tensor")
        assertError({ _ = try file.int64s("weight") }, tensor: "weight", "did you mean a.weight?")
        assertError({ _ = try file.withRawBytes("missing") { _ in 0 } }, tensor: "missing", "no such tensor")
        assertError({ _ = try file.floats("d.ids") }, tensor: "d.ids", "I64")
        assertError({ _ = try file.floats("e.mask") }, tensor: "e.mask", "BOOL")
        assertError({ _ = try file.int64s("b.half") }, tensor: "b.half", "F16")
        var wrongCount = [Float](repeating: 0, count: 5)
        assertError({ try wrongCount.withUnsafeMutableBufferPointer { try file.copyFloats("a.weight", into: $0) } },
                    tensor: "a.weight", "destination holds 5")
        XCTAssertNil(file.entry("missing"))
        XCTAssertEqual(file.names, ["a.weight", "b.half", "c.brain", "d.ids", "e.mask", "f.bytes", "g.i32"])
        XCTAssertEqual(try file.int64s("g.i32"), [Int64(Int32.min) + 1])
    }

    func testWriterRejectsInvalidTensors() throws {
        var writer = SafeTensorsWriter()
        let values: [Float] = [1, 2, 3]
        try values.withUnsafeBufferPointer { buffer in
            try writer.add(name: "a", shape: [3], floats: buffer)
            XCTAssertThrowsError(try writer.add(name: "a", shape: [3], floats: buffer)) {
                XCTAssertTrue(($0 as? SafeTensorsError)?.reason.contains("already added") == true)
            }
            XCTAssertThrowsError(try writer.add(name: "b", shape: [2, 2], floats: buffer)) {
                XCTAssertEqual(($0 as? SafeTensorsError)?.tensor, "b")
            }
            XCTAssertThrowsError(try writer.add(name: "c", shape: [3], floats: buffer, as: .i32))
            XCTAssertThrowsError(try writer.add(name: "d", shape: [-3], floats: buffer))
            XCTAssertThrowsError(try writer.add(name: "__metadata__", shape: [3], floats: buffer))
        }
        XCTAssertThrowsError(try writer.add(name: "e", dtype: .i32, shape: [2], bytes: [1, 2, 3]))
        XCTAssertThrowsError(try writer.add(name: "f", dtype: .bool, shape: [2], bytes: [1, 2]))
        XCTAssertThrowsError(try writer.add(name: "g", shape: [2], int64s: [1]))
        XCTAssertThrowsError(try writer.add(name: "h", dtype: .u8, shape: [1 << 62, 1 << 62], bytes: []))
        XCTAssertEqual(writer.names, ["a"])
    }

    func testProducedTensorsAreMadeInFileOrderAndMustHaveTheirSize() throws {
        var writer = SafeTensorsWriter()
        var calls: [String] = []
        try writer.add(name: "b.second", dtype: .i32, shape: [2]) { write in
            calls.append("b.second")
            try [Int32(7), -9].withUnsafeBytes { try write($0) }
        }
        try writer.add(name: "a.first", dtype: .u8, shape: [5]) { write in
            calls.append("a.first")
            // In pieces.
            try [UInt8]([1, 2]).withUnsafeBytes { try write($0) }
            try [UInt8]([3, 4, 5]).withUnsafeBytes { try write($0) }
        }
        XCTAssertThrowsError(try writer.add(name: "c", dtype: .bool, shape: [1]) { _ in })
        XCTAssertTrue(calls.isEmpty, "nothing is produced before write(to:)")
        let url = directory.appendingPathComponent("produced.safetensors")
        try writer.write(to: url)
        XCTAssertEqual(calls, ["a.first", "b.second"])
        let file = try SafeTensorsFile(url: url)
        XCTAssertEqual(try file.int64s("a.first"), [1, 2, 3, 4, 5])
        XCTAssertEqual(try file.int64s("b.second"), [7, -9])
        file.releaseResidentPages("a.first")  // a hint: the values stay
        XCTAssertEqual(try file.int64s("b.second"), [7, -9])

        for (count, fragment) in [(3, "wrote 3 of the 4 bytes"), (6, "more than the 4 bytes")] {
            var short = SafeTensorsWriter()
            try short.add(name: "x", dtype: .f16, shape: [2]) { write in
                try [UInt8](repeating: 0, count: count).withUnsafeBytes { try write($0) }
            }
            let bad = directory.appendingPathComponent("bad\(count).safetensors")
            XCTAssertThrowsError(try short.write(to: bad)) { error in
                XCTAssertEqual((error as? SafeTensorsError)?.tensor, "x")
                XCTAssertTrue("\(error)".contains(fragment), "\(error)")
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: bad.path), "no file is left behind")
        }
    }
}

/// A small seeded generator (SplitMix64) so the corruption test is reproducible. Private so it
/// cannot clash with other test files' helpers.
private struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
