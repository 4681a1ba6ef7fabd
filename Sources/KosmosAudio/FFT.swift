import Foundation

/// A discrete Fourier transform of one fixed length in float64: X[k] = Σ x[j]·e^(−2πi·jk/n), as
/// numpy's and torch's FFTs define it. Real input of even length is transformed as a complex
/// sequence of half the length (even samples real, odd imaginary) and untangled; complex
/// transforms are mixed-radix Cooley–Tukey decimation in time over the length's prime factors
/// (smallest first; a prime factor p costs p operations per output, so lengths with large prime
/// factors are slow but exact).
public final class FFT: @unchecked Sendable {
    public let length: Int
    /// The complex transform of half the length (even lengths), or of the whole length.
    let complexLength: Int
    let factors: [Int]
    /// e^(−2πi·t/complexLength) for t < complexLength.
    let cosTable: [Double], sinTable: [Double]
    /// e^(−2πi·k/length) for k ≤ length/2 (the real-input untangling).
    let realCos: [Double], realSin: [Double]

    public init(length: Int) {
        precondition(length > 0, "an FFT of length \(length)")
        self.length = length
        complexLength = length % 2 == 0 ? length / 2 : length
        var factors: [Int] = [], m = complexLength, p = 2
        while m > 1 {
            while m % p == 0 { factors.append(p); m /= p }
            p += p == 2 ? 1 : 2
            if p * p > m && m > 1 { factors.append(m); m = 1 }
        }
        self.factors = factors
        let n = complexLength
        cosTable = (0..<n).map { cos(2 * Double.pi * Double($0) / Double(n)) }
        sinTable = (0..<n).map { -sin(2 * Double.pi * Double($0) / Double(n)) }
        realCos = (0...(length / 2)).map { cos(2 * Double.pi * Double($0) / Double(length)) }
        realSin = (0...(length / 2)).map { -sin(2 * Double.pi * Double($0) / Double(length)) }
    }

    /// Bins 0 … length/2 of the transform of real input `x` (length values) into `re`/`im`
    /// (length/2 + 1 values each); the rest of the spectrum is their conjugate mirror.
    public func forwardHalf(real x: UnsafePointer<Double>, re: UnsafeMutablePointer<Double>, im: UnsafeMutablePointer<Double>) {
        let n = complexLength
        withUnsafeTemporaryAllocation(of: Double.self, capacity: 2 * n + 2 * (factors.max() ?? 1)) { buffer in
            let zr = buffer.baseAddress!, zi = zr + n, scratch = zi + n
            if length % 2 == 1 {
                // Odd lengths: the complex transform of the real sequence as it is.
                withUnsafeTemporaryAllocation(of: Double.self, capacity: n) { zeros in
                    zeros.initialize(repeating: 0)
                    transform(x, zeros.baseAddress!, stride: 1, n: n, level: 0, re: zr, im: zi, scratch: scratch)
                }
                for k in 0...(length / 2) { re[k] = zr[k]; im[k] = zi[k] }
                return
            }
            // z[j] = x[2j] + i·x[2j+1]; Z = FFT_{n}(z); then X[k] = E[k] + e^(−2πik/length)·O[k] with
            // E[k] = (Z[k] + conj Z[n−k])/2 and O[k] = (Z[k] − conj Z[n−k])/(2i).
            transform(x, x + 1, stride: 2, n: n, level: 0, re: zr, im: zi, scratch: scratch)
            for k in 0...n {
                let a = k % n, b = (n - k) % n
                let er = 0.5 * (zr[a] + zr[b]), ei = 0.5 * (zi[a] - zi[b])
                let or = 0.5 * (zi[a] + zi[b]), oi = -0.5 * (zr[a] - zr[b])
                let c = realCos[k], s = realSin[k]
                re[k] = er + or * c - oi * s
                im[k] = ei + or * s + oi * c
            }
        }
    }

    /// The whole transform of real input `x` into `re`/`im` (length values each).
    public func forward(real x: UnsafePointer<Double>, re: UnsafeMutablePointer<Double>, im: UnsafeMutablePointer<Double>) {
        forwardHalf(real: x, re: re, im: im)
        for k in (length / 2 + 1)..<max(length, length / 2 + 1) {
            re[k] = re[length - k]
            im[k] = -im[length - k]
        }
    }

    private func transform(_ xr: UnsafePointer<Double>, _ xi: UnsafePointer<Double>, stride s: Int, n: Int, level: Int,
                           re: UnsafeMutablePointer<Double>, im: UnsafeMutablePointer<Double>, scratch: UnsafeMutablePointer<Double>) {
        if n == 1 {
            re[0] = xr[0]
            im[0] = xi[0]
            return
        }
        let p = factors[level], m = n / p
        // The p interleaved subsequences x[r], x[r+p], … transformed into consecutive blocks of m.
        for r in 0..<p {
            transform(xr + r * s, xi + r * s, stride: s * p, n: m, level: level + 1, re: re + r * m, im: im + r * m, scratch: scratch)
        }
        // X[k + q·m] = Σ_r W_n^(r·(k + q·m)) Y_r[k]; the outputs of one k overwrite its inputs.
        let step = complexLength / n, full = complexLength
        if p == 2 {
            for k in 0..<m {
                let c = cosTable[k * step], w = sinTable[k * step]
                let br = re[m + k] * c - im[m + k] * w, bi = re[m + k] * w + im[m + k] * c
                let ar = re[k], ai = im[k]
                re[k] = ar + br; im[k] = ai + bi
                re[m + k] = ar - br; im[m + k] = ai - bi
            }
            return
        }
        let sr = scratch, si = scratch + p
        for k in 0..<m {
            for r in 0..<p {
                sr[r] = re[r * m + k]
                si[r] = im[r * m + k]
            }
            for q in 0..<p {
                let index = k + q * m
                let increment = index * step % full
                var accRe = sr[0], accIm = si[0], t = 0
                for r in 1..<p {
                    t += increment
                    if t >= full { t -= full }
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
