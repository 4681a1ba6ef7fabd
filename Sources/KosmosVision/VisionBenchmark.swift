import Dispatch
import Foundation

/// Throughput of decode + CLIP preprocessing, the work a data loader does per image.
public enum VisionBenchmark {
    public struct Result: Sendable {
        public var images: Int
        public var seconds: Double
        public var threads: Int
        public var imagesPerSecond: Double { Double(images) / seconds }
    }

    /// `count` distinct JPEGs of width x height: a shapes scene over a smooth gradient (so the JPEG
    /// has realistic detail), quality 90.
    public static func makeJPEGs(count: Int, width: Int = 640, height: Int = 480) throws -> [Data] {
        try (0..<count).map { i in
            var scene = SyntheticShapes.scene(seed: UInt64(i) &+ 1, width: width, height: height).image
            for y in 0..<height {
                for x in 0..<width {
                    let o = (y * width + x) * 3
                    if scene.pixels[o] == 255, scene.pixels[o + 1] == 255, scene.pixels[o + 2] == 255 {
                        scene.pixels[o] = UInt8((x * 255) / max(1, width - 1))
                        scene.pixels[o + 1] = UInt8((y * 255) / max(1, height - 1))
                        scene.pixels[o + 2] = UInt8(((x + y + i * 37) * 3) & 255)
                    }
                }
            }
            return try JPEGEncoder.encode(scene, quality: 90)
        }
    }

    /// Decodes and preprocesses `images` `repeats` times over, split across `threads` workers.
    /// Throws the first decode error.
    /// With `decodeOnly`, only decoding is timed (to see how the time splits).
    public static func run(images: [Data], repeats: Int, threads: Int,
                           preprocessor: CLIPPreprocessor = CLIPPreprocessor(), decodeOnly: Bool = false) throws -> Result {
        let total = images.count * max(1, repeats)
        let workers = max(1, threads)
        let lock = NSLock()
        var firstError: Error?
        var checksum: Float = 0
        let start = DispatchTime.now().uptimeNanoseconds
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            var local: Float = 0
            var i = w
            while i < total {
                do {
                    let source = "benchmark image \(i % images.count)"
                    if decodeOnly {
                        let image = try ImageDecoder.decode(data: images[i % images.count], source: source,
                                                            options: preprocessor.fileDecodeOptions)
                        local += Float(image.pixels[0])
                    } else {
                        let pv = try preprocessor.preprocess(data: images[i % images.count], source: source)
                        local += pv.values[0]
                    }
                } catch {
                    lock.lock()
                    if firstError == nil { firstError = error }
                    lock.unlock()
                    return
                }
                i += workers
            }
            lock.lock()
            checksum += local
            lock.unlock()
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        if let firstError { throw firstError }
        _ = checksum
        return Result(images: total, seconds: seconds, threads: workers)
    }
}
