import Foundation
import KosmosTokenizers
import Dispatch

/// Encoding throughput on a text file, line by line (what scripts/reference/tokenizer_bench.py
/// measures for Python sentencepiece / tokenizers).
public enum TokenizerBenchmark {
    public struct Result: Sendable {
        public var bytes: Int
        public var lines: Int
        public var tokens: Int
        public var bestSeconds: Double
        public var medianSeconds: Double
        public var threads: Int
        public var megabytesPerSecond: Double { Double(bytes) / 1e6 / bestSeconds }
    }

    public static func run(tokenizer: Tokenizer, file: URL, repeats: Int = 3, threads: Int = 1) throws -> Result {
        let data: Data
        do { data = try Data(contentsOf: file) } catch {
            throw TokenizerError.unreadable(path: file.path, reason: error.localizedDescription)
        }
        guard repeats >= 1 else { throw TokenizerError.invalidArgument("repeats must be at least 1") }
        let text = String(decoding: data, as: UTF8.self)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var times: [Double] = []
        var tokens = 0
        for _ in 0..<repeats {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let ids = tokenizer.encodeBatch(lines, threads: threads)
            let t1 = DispatchTime.now().uptimeNanoseconds
            times.append(Double(t1 - t0) / 1e9)
            tokens = ids.reduce(0) { $0 + $1.count }
        }
        times.sort()
        return Result(bytes: data.count, lines: lines.count, tokens: tokens, bestSeconds: times[0],
                      medianSeconds: times[times.count / 2], threads: threads)
    }
}
