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
    /// e^(−2πi·t/complexLength) for t < complexLength (allocated once, read without checks).
    let cosTable: UnsafeMutablePointer<Double>, sinTable: UnsafeMutablePointer<Double>
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
        cosTable = .allocate(capacity: n)
        sinTable = .allocate(capacity: n)
        for t in 0..<n {
            cosTable[t] = cos(2 * Double.pi * Double(t) / Double(n))
            sinTable[t] = -sin(2 * Double.pi * Double(t) / Double(n))
        }
        realCos = (0...(length / 2)).map { cos(2 * Double.pi * Double($0) / Double(length)) }
        realSin = (0...(length / 2)).map { -sin(2 * Double.pi * Double($0) / Double(length)) }
    }

    deinit {
        cosTable.deallocate()
        sinTable.deallocate()
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

    static let c1 = cos(2 * Double.pi / 5), c2 = cos(4 * Double.pi / 5)
    static let s1 = sin(2 * Double.pi / 5), s2 = sin(4 * Double.pi / 5)

    /// A radix-5 level: the five subsequences' transforms twiddled by W_n^(r·k), then the 5-point
    /// DFT written out (its constants cos/sin of 2π/5 and 4π/5), as a 5-point FFT is usually done.
    private func radix5(_ xr: UnsafePointer<Double>, _ xi: UnsafePointer<Double>, stride s: Int, m: Int, step: Int, level: Int,
                        re: UnsafeMutablePointer<Double>, im: UnsafeMutablePointer<Double>, scratch: UnsafeMutablePointer<Double>) {
        if m > 1 {
            for r in 0..<5 {
                transform(xr + r * s, xi + r * s, stride: s * 5, n: m, level: level + 1, re: re + r * m, im: im + r * m, scratch: scratch)
            }
        }
        let c1 = Self.c1, c2 = Self.c2, s1 = Self.s1, s2 = Self.s2
        for k in 0..<m {
            var ar = (0.0, 0.0, 0.0, 0.0, 0.0), ai = (0.0, 0.0, 0.0, 0.0, 0.0)
            if m == 1 {
                ar = (xr[0], xr[s], xr[2 * s], xr[3 * s], xr[4 * s])
                ai = (xi[0], xi[s], xi[2 * s], xi[3 * s], xi[4 * s])
            } else {
                func twiddled(_ r: Int) -> (Double, Double) {
                    let t = r * k * step, yr = re[r * m + k], yi = im[r * m + k]
                    let c = cosTable[t], w = sinTable[t]
                    return (yr * c - yi * w, yr * w + yi * c)
                }
                let t1 = twiddled(1), t2 = twiddled(2), t3 = twiddled(3), t4 = twiddled(4)
                ar = (re[k], t1.0, t2.0, t3.0, t4.0)
                ai = (im[k], t1.1, t2.1, t3.1, t4.1)
            }
            let b1r = ar.1 + ar.4, b1i = ai.1 + ai.4, b2r = ar.2 + ar.3, b2i = ai.2 + ai.3
            let d1r = ar.1 - ar.4, d1i = ai.1 - ai.4, d2r = ar.2 - ar.3, d2i = ai.2 - ai.3
            let t1r = ar.0 + c1 * b1r + c2 * b2r, t1i = ai.0 + c1 * b1i + c2 * b2i
            let t2r = ar.0 + c2 * b1r + c1 * b2r, t2i = ai.0 + c2 * b1i + c1 * b2i
            let u1r = s1 * d1r + s2 * d2r, u1i = s1 * d1i + s2 * d2i
            let u2r = s2 * d1r - s1 * d2r, u2i = s2 * d1i - s1 * d2i
            re[k] = ar.0 + b1r + b2r; im[k] = ai.0 + b1i + b2i
            re[k + m] = t1r + u1i; im[k + m] = t1i - u1r
            re[k + 4 * m] = t1r - u1i; im[k + 4 * m] = t1i + u1r
            re[k + 2 * m] = t2r + u2i; im[k + 2 * m] = t2i - u2r
            re[k + 3 * m] = t2r - u2i; im[k + 3 * m] = t2i + u2r
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
        let step = complexLength / n, full = complexLength
        if p == 5 {
            radix5(xr, xi, stride: s, m: m, step: step, level: level, re: re, im: im, scratch: scratch)
            return
        }
        if m == 1 {
            // The last level: one DFT of p inputs straight from the strided input.
            for q in 0..<p {
                var accRe = xr[0], accIm = xi[0], t = 0
                let increment = q * step
                for r in 1..<p {
                    t += increment
                    if t >= full { t -= full }
                    let c = cosTable[t], w = sinTable[t], a = xr[r * s], b = xi[r * s]
                    accRe += a * c - b * w
                    accIm += a * w + b * c
                }
                re[q] = accRe
                im[q] = accIm
            }
            return
        }
        // The p interleaved subsequences x[r], x[r+p], … transformed into consecutive blocks of m.
        for r in 0..<p {
            transform(xr + r * s, xi + r * s, stride: s * p, n: m, level: level + 1, re: re + r * m, im: im + r * m, scratch: scratch)
        }
        // X[k + q·m] = Σ_r W_n^(r·(k + q·m)) Y_r[k]; the outputs of one k overwrite its inputs.
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
