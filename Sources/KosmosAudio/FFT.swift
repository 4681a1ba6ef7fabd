import Foundation

/// A complex discrete Fourier transform of one fixed length in float64, by mixed-radix
/// Cooley–Tukey decimation in time (the length's prime factors, smallest first; a prime factor p
/// costs p operations per output, so lengths with large prime factors are slow but exact).
/// X[k] = Σ x[j]·e^(−2πi·jk/n), as numpy's and torch's FFTs define it.
public final class FFT: @unchecked Sendable {
    public let length: Int
    let factors: [Int]
    let cosTable: [Double], sinTable: [Double]

    public init(length: Int) {
        precondition(length > 0, "an FFT of length \(length)")
        self.length = length
        var factors: [Int] = [], m = length, p = 2
        while m > 1 {
            while m % p == 0 { factors.append(p); m /= p }
            p += p == 2 ? 1 : 2
            if p * p > m && m > 1 { factors.append(m); m = 1 }
        }
        self.factors = factors
        cosTable = (0..<length).map { cos(2 * Double.pi * Double($0) / Double(length)) }
        sinTable = (0..<length).map { -sin(2 * Double.pi * Double($0) / Double(length)) }
    }

    /// The transform of real input `x` (length values) into `re`/`im` (length values each).
    public func forward(real x: UnsafePointer<Double>, re: UnsafeMutablePointer<Double>, im: UnsafeMutablePointer<Double>) {
        withUnsafeTemporaryAllocation(of: Double.self, capacity: 2 * (factors.max() ?? 1)) { scratch in
            transform(x, stride: 1, n: length, level: 0, re: re, im: im, scratch: scratch.baseAddress!)
        }
    }

    private func transform(_ x: UnsafePointer<Double>, stride s: Int, n: Int, level: Int,
                           re: UnsafeMutablePointer<Double>, im: UnsafeMutablePointer<Double>, scratch: UnsafeMutablePointer<Double>) {
        if n == 1 {
            re[0] = x[0]
            im[0] = 0
            return
        }
        let p = factors[level], m = n / p
        // The p interleaved subsequences x[r], x[r+p], … transformed into consecutive blocks of m.
        for r in 0..<p {
            transform(x + r * s, stride: s * p, n: m, level: level + 1, re: re + r * m, im: im + r * m, scratch: scratch)
        }
        // X[k + q·m] = Σ_r W_n^(r·(k + q·m)) Y_r[k]; the outputs of one k overwrite its inputs.
        let step = length / n
        let sr = scratch, si = scratch + p
        for k in 0..<m {
            for r in 0..<p {
                sr[r] = re[r * m + k]
                si[r] = im[r * m + k]
            }
            for q in 0..<p {
                let index = k + q * m
                var accRe = sr[0], accIm = si[0]
                for r in 1..<p {
                    let t = (r * index % n) * step
                    let c = cosTable[t], w = sinTable[t]
                    accRe += sr[r] * c - si[r] * w
                    accIm += sr[r] * w + si[r] * c
                }
                re[index] = accRe
                im[index] = accIm
            }
        }
    }
}
