import CKosmosKernels
import Foundation

/// A seeded random number generator whose streams are identical on every run and machine:
/// xoshiro256** (Blackman & Vigna) seeded through splitmix64, with float conversions defined here
/// bit for bit. Normals use the Box–Muller transform in Double and are rounded to Float; the only
/// platform functions involved (log, cos, sin in Double) are correctly rounded in practice, and
/// rounding to Float hides last-ulp differences.
///
/// A class, so layers (dropout) and data loaders can share one stream; `state` can be saved and
/// restored for exactly resumable training.
public final class RandomGenerator {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    public init(seed: UInt64) {
        var x = seed
        func splitmix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitmix(); s1 = splitmix(); s2 = splitmix(); s3 = splitmix()
    }

    /// The four state words, for checkpoints (restore them with `restore(state:)`).
    public var state: [UInt64] { [s0, s1, s2, s3] }

    /// Continues the stream from saved state words. They come from files, so a wrong count or the
    /// all-zero state (a fixed point of xoshiro) is an error, not a crash.
    public func restore(state words: [UInt64]) throws {
        guard words.count == 4, words.contains(where: { $0 != 0 }) else {
            throw RandomGeneratorError.invalidState(words.count == 4 ? "all four words are zero" : "\(words.count) words, expected 4")
        }
        s0 = words[0]; s1 = words[1]; s2 = words[2]; s3 = words[3]
    }

    @inline(__always) private static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 {
        (x << k) | (x >> (64 - k))
    }

    /// The next 64 random bits.
    @inline(__always) public func next() -> UInt64 {
        let result = RandomGenerator.rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = RandomGenerator.rotl(s3, 45)
        return result
    }

    /// Uniform in [0, 1) with 24 random bits (every float multiple of 2⁻²⁴).
    @inline(__always) public func nextFloat() -> Float {
        Float(next() >> 40) * 0x1p-24
    }

    /// Uniform in [0, 1) with 53 random bits.
    @inline(__always) public func nextDouble() -> Double {
        Double(next() >> 11) * 0x1p-53
    }

    /// Uniform integer in 0..<bound, without modulo bias (Lemire's method with rejection).
    public func nextInt(below bound: Int) -> Int {
        precondition(bound > 0, "nextInt(below:) needs a positive bound")
        let b = UInt64(bound)
        var product = next().multipliedFullWidth(by: b)
        if product.low < b {
            let threshold = (0 &- b) % b
            while product.low < threshold { product = next().multipliedFullWidth(by: b) }
        }
        return Int(product.high)
    }

    /// One standard normal: the cosine half of a Box–Muller pair (the sine half is discarded so a
    /// single draw always consumes exactly two words).
    public func nextNormal() -> Float {
        let (z0, _) = normalPair()
        return Float(z0)
    }

    @inline(__always) func normalPair() -> (Double, Double) {
        // u1 in (0, 1] so the log is finite.
        let u1 = Double((next() >> 11) + 1) * 0x1p-53
        let u2 = Double(next() >> 11) * 0x1p-53
        let radius = (-2 * Foundation.log(u1)).squareRoot()
        let angle = 2 * Double.pi * u2
        return (radius * Foundation.cos(angle), radius * Foundation.sin(angle))
    }

    /// Fills `buffer` with N(mean, std²) values, two per Box–Muller pair (the last odd one uses
    /// only the cosine half).
    public func fillNormal(_ buffer: UnsafeMutableBufferPointer<Float>, mean: Float = 0, std: Float = 1) {
        var i = 0
        let n = buffer.count
        while i < n {
            let (z0, z1) = normalPair()
            buffer[i] = Float(z0) * std + mean
            if i + 1 < n { buffer[i + 1] = Float(z1) * std + mean }
            i += 2
        }
    }

    /// Fills `buffer` with values uniform in [low, high).
    public func fillUniform(_ buffer: UnsafeMutableBufferPointer<Float>, low: Float = 0, high: Float = 1) {
        for i in 0..<buffer.count { buffer[i] = low + (high - low) * nextFloat() }
    }
}

public enum RandomGeneratorError: Error, CustomStringConvertible, Equatable {
    case invalidState(String)

    public var description: String {
        switch self {
        case let .invalidState(why): return "invalid random generator state: \(why)"
        }
    }
}

/// Whether `Tensor.randn` and `Tensor.uniform` generate values (per thread, like grad mode). A
/// model about to be filled from a checkpoint needs no random values: building it inside
/// `withoutRandomInitialisation` skips the generator (12.8 s of the 1.3B decoder's 15 s build and
/// one forward here), the tensors' memory left as mapped (zero pages, not yet resident).
public enum RandomInitialisation {
    static let skipped = ThreadFlag()

    /// True inside a `withoutRandomInitialisation` scope on this thread.
    public static var isSkipped: Bool { skipped.isSet }
}

/// Runs `body` with `Tensor.randn`/`uniform` returning tensors of unspecified contents without
/// touching their generator: for building a module every tensor of which a strict load then
/// overwrites. Nothing may read those tensors before that.
public func withoutRandomInitialisation<R>(_ body: () throws -> R) rethrows -> R {
    try RandomInitialisation.skipped.with(true, body)
}

extension Tensor {
    /// Standard normal values (times std, plus mean), stored as `dtype` (16-bit: generated in
    /// float32 a block at a time and rounded, the same values as a float32 tensor converted,
    /// without a float32 copy of the whole tensor).
    public static func randn(_ shape: [Int], mean: Float = 0, std: Float = 1, generator: RandomGenerator,
                             requiresGrad: Bool = false, dtype: DType = .float32) -> Tensor {
        let t = Tensor.generated(shape, dtype: dtype) { generator.fillNormal($0, mean: mean, std: std) }
        t.requiresGrad = requiresGrad
        return t
    }

    /// Values uniform in [low, high), stored as `dtype` (as `randn`).
    public static func uniform(_ shape: [Int], low: Float = 0, high: Float = 1, generator: RandomGenerator,
                               requiresGrad: Bool = false, dtype: DType = .float32) -> Tensor {
        let t = Tensor.generated(shape, dtype: dtype) { generator.fillUniform($0, low: low, high: high) }
        t.requiresGrad = requiresGrad
        return t
    }

    /// A tensor filled by `fill` in order; 16-bit storage a block at a time. Blocks are of even
    /// length so normal pairs never straddle a block: the stream is consumed exactly as one fill.
    static func generated(_ shape: [Int], dtype: DType, _ fill: (UnsafeMutableBufferPointer<Float>) -> Void) -> Tensor {
        let t = Tensor.uninitialized(shape, dtype: dtype)
        if !RandomInitialisation.isSkipped { t.updateInFloat32Blocks(reading: false, fill) }
        return t
    }

    /// 1 with probability p, else 0.
    public static func bernoulli(_ shape: [Int], probability p: Float, generator: RandomGenerator) -> Tensor {
        let t = Tensor.uninitialized(shape)
        t.withUnsafeMutableBufferPointer { buffer in
            for i in 0..<buffer.count { buffer[i] = generator.nextFloat() < p ? 1 : 0 }
        }
        return t
    }

    /// Inverted dropout: each element is zeroed with probability p and the survivors are scaled by
    /// 1/(1 − p), so the expectation is unchanged. The caller passes p = 0 (or skips the call) at
    /// evaluation time.
    public func dropout(probability p: Float, generator: RandomGenerator) -> Tensor {
        precondition(p >= 0 && p <= 1, "dropout probability \(p) outside [0, 1]")
        if p == 0 { return self }
        if p == 1 { return self * Tensor.zeros(shape) }
        let mask = Tensor.bernoulli(shape, probability: 1 - p, generator: generator).scaled(by: 1 / (1 - p))
        return self * mask
    }
}
