import Foundation
import KosmosFormats
import KosmosVision
import XCTest

/// Fixtures written by scripts/reference/images_reference.py (PIL + transformers).
enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/images")

    static func url(_ relative: String) -> URL { root.appendingPathComponent(relative) }

    struct ConfigEntry {
        var resizedHeight: Int, resizedWidth: Int, shape: [Int], cropTop: Int, cropLeft: Int, hasResizedPNG: Bool
    }

    struct Entry {
        var file: String, mode: String, width: Int, height: Int
        var configs: [String: ConfigEntry]
        var stem: String { (file as NSString).deletingPathExtension }
    }

    struct Index {
        var stride: Int
        var fixtures: [Entry]
    }

    static func index() throws -> Index {
        let data = try Data(contentsOf: url("index.json"))
        guard let d = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let stride = d["stride"] as? Int, let list = d["fixtures"] as? [[String: Any]] else {
            throw FixtureError(message: "index.json has an unexpected layout")
        }
        var entries: [Entry] = []
        for f in list {
            guard let file = f["file"] as? String, let mode = f["mode"] as? String,
                  let w = f["width"] as? Int, let h = f["height"] as? Int,
                  let cfgs = f["configs"] as? [String: [String: Any]] else { continue }
            var configs: [String: ConfigEntry] = [:]
            for (name, c) in cfgs {
                configs[name] = ConfigEntry(
                    resizedHeight: c["resized_height"] as? Int ?? -1, resizedWidth: c["resized_width"] as? Int ?? -1,
                    shape: c["pixel_values_shape"] as? [Int] ?? [], cropTop: c["crop_top"] as? Int ?? 0,
                    cropLeft: c["crop_left"] as? Int ?? 0, hasResizedPNG: c["resized_png"] as? Bool ?? false)
            }
            entries.append(Entry(file: file, mode: mode, width: w, height: h, configs: configs))
        }
        return Index(stride: stride, fixtures: entries)
    }

    static func config(_ name: String) throws -> CLIPPreprocessorConfig {
        try CLIPPreprocessorConfig(contentsOf: url("configs/\(name).json"))
    }

    /// Minimal safetensors reader for the float32 expectations.
    static func tensors(_ relative: String) throws -> [String: (shape: [Int], values: [Float])] {
        let data = try Data(contentsOf: url(relative))
        let n = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        guard let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<8 + n)) as? [String: Any] else {
            throw FixtureError(message: "bad safetensors header in \(relative)")
        }
        var out: [String: (shape: [Int], values: [Float])] = [:]
        for (name, v) in header {
            guard let t = v as? [String: Any], t["dtype"] as? String == "F32", let shape = t["shape"] as? [Int],
                  let offsets = t["data_offsets"] as? [Int], offsets.count == 2 else { continue }
            let bytes = data.subdata(in: 8 + n + offsets[0]..<8 + n + offsets[1])
            let values = bytes.withUnsafeBytes { raw in
                (0..<(bytes.count / 4)).map { Float(bitPattern: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)) }
            }
            out[name] = (shape, values)
        }
        return out
    }

    /// Counts equal samples and the largest absolute difference between two byte arrays.
    static func compare(_ a: [UInt8], _ b: [UInt8]) -> (equal: Int, maxDiff: Int) {
        var equal = 0, maxDiff = 0
        for i in 0..<min(a.count, b.count) {
            let d = abs(Int(a[i]) - Int(b[i]))
            if d == 0 { equal += 1 }
            maxDiff = max(maxDiff, d)
        }
        return (equal, maxDiff)
    }
}

/// A fixture that cannot be read: the test fails (it does not skip).
struct FixtureError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// Every file named in `folder/expected.safetensors` (U8 [H, W, 3] per file, from a reference
/// script run with Pillow) is sniffed as `format` and decodes to exactly those pixels.
func assertDecodeAsPillow(folder: String, format: ImageDecoder.Format, count: Int, file: StaticString = #filePath, line: UInt = #line) throws {
    let expected = try SafeTensorsFile(url: Fixtures.url("\(folder)/expected.safetensors"))
    XCTAssertEqual(expected.names.count, count, file: file, line: line)
    for name in expected.names {
        let url = Fixtures.url("\(folder)/\(name)")
        XCTAssertEqual(ImageDecoder.sniff(try Data(contentsOf: url)), format, name, file: file, line: line)
        let image = try ImageDecoder.decode(contentsOf: url)
        XCTAssertEqual([image.height, image.width, 3], expected.entry(name)?.shape, name, file: file, line: line)
        let want = try expected.withRawBytes(name) { Array($0) }
        XCTAssertEqual(zip(image.pixels, want).filter { $0 != $1 }.count, 0, "\(name): samples differ from Pillow's", file: file, line: line)
    }
}
