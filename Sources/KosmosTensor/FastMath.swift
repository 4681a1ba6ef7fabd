// Vectorised float32 exp, erf, sigmoid and tanh for the element-wise kernels.
//
// Each function comes as a `SIMD16<Float>` version, for the body of a kernel loop, and a `Float`
// version, for the loop tail. Both perform the same IEEE float32 operations in the same order. The
// package builds without unsafeFlags, so the compiler targets baseline x86-64: no FMA, and nothing
// gets contracted. So the two versions give identical bits for the same input, and a kernel's
// result does not depend on where the 16-element blocks start. FastMathTests checks this.
//
// The vector code has no branches: ranges are chosen per lane with `replacing(with:where:)`, and
// exponent and sign bits are set with integer operations on the bit patterns. Clamps compare with
// `.>`/`.<` and do not use pointwiseMin/Max. Those follow IEEE minNum (min(NaN, c) == c) and would
// drop NaN inputs. A comparison with NaN is false, so NaN lanes pass through the selects untouched.
//
// Accuracy was measured over all 2^32 float inputs, against Foundation's Double function rounded to
// Float (the correctly rounded value). "ulp" is the distance to that value in float steps.
// FastMathTests checks the same bounds on strided sweeps.
//   fastExp      ≤ 1 ulp for every x, subnormal results included (≤ 0.998 ulp from the exact value)
//   fastErf      ≤ 1 ulp for every x, tiny and subnormal x included (≤ 1.28 ulp from exact)
//   fastTanh     ≤ 1 ulp for every x (≤ 1.07 ulp from exact; relative error ≤ 1.0e-7, also near 0)
//   fastSigmoid  ≤ 2 ulp with relative error ≤ 1.48e-7 wherever the result is a normal float
//                (x ≥ −87.33); subnormal below that, and 0 from x = −88.72 on
//
// The polynomial coefficients come from scripts/fit_fastmath.py: weighted near-minimax fits
// (Lawson's algorithm on mpmath reference values), rounded to float32 one coefficient at a time
// with the rest refitted. The script also emulates these algorithms in float32 and reports their
// error. Rerun it if a range or degree changes here, and paste its output into _FastMathConst.

/// Constants produced by scripts/fit_fastmath.py. They are written as hex literals so that each
/// one is exactly the fitted float32 value.
enum _FastMathConst {
    // exp: x = n·ln2 + r with |r| ≤ ln2/2, then exp(r) = 1 + r + r²·Q(r).
    static let log2e: Float = 0x1.715476p0  // 1.44269502
    /// 1.5·2^23. In [2^23, 2^24) the float spacing is 1, so `v + roundingMagic` rounds v to an
    /// integer (ties to even) for |v| < 2^22. That integer is also the low bits of the sum.
    static let roundingMagic: Float = 0x1.8p23
    static let roundingMagicBits: Int32 = 0x4B40_0000
    /// Cody–Waite split of ln2. ln2Hi has 16 significant bits, so n·ln2Hi is exact for |n| ≤ 255,
    /// and x − n·ln2Hi is exact too, because x is within a factor of 2 of it (Sterbenz).
    /// ln2Lo = ln2 − ln2Hi, rounded to float32.
    static let ln2Hi: Float = 0x1.62e4p-1  // 0.693145752
    static let ln2Lo: Float = 0x1.7f7d1cp-20  // 1.42860677e-06
    // Q(r) ≈ (e^r − 1 − r)/r² on |r| ≤ ln2/2. With float32 coefficients its weighted error is
    // 0.053·2^-24 of exp(r), which is almost nothing next to the final rounding.
    static let expQ0: Float = 0x1.fffffcp-2  // 0.49999994
    static let expQ1: Float = 0x1.555492p-3  // 0.166665211
    static let expQ2: Float = 0x1.5558b6p-5  // 0.0416682772
    static let expQ3: Float = 0x1.1239a2p-7  // 0.00836868677
    static let expQ4: Float = 0x1.6a4748p-10  // 0.00138198258
    /// Above this the result is +inf: exp(x) overflows for x > 88.72284. Clamping here keeps n at
    /// most 128.
    static let expOverflow: Float = 89
    /// exp(x) rounds to 0 below −103.97. Clamping at −176 gives n = −254, where both scale factors
    /// of fastExp are exactly +0.
    static let expClampLow: Float = -176

    // erf, with a = |x|:
    //   a < erfSplit:  erf = a + a·S(a²), where S(a²) ≈ erf(a)/a − 1. S(0) ≈ 2/√π − 1 is small, so
    //                  the rounding of the leading coefficient does not spoil tiny a.
    //   a ≥ erfSplit:  erf = 1 − exp(L(a − erfSplit)), where L ≈ log(erfc). L is expanded at the left
    //                  end so that its Horner terms all have one sign. Centring it on the interval
    //                  cost 2–4 ulp through cancellation near the split.
    //   a ≥ erfOne:    a is clamped to erfOne, the first float whose correctly rounded erf is 1, and
    //                  the formula above gives exactly 1 there.
    // The S fit is weighted for relative error in erf: 0.027·2^-24 with float32 coefficients. The L
    // fit is weighted by erfc/erf, so an error in L counts as the error it makes in erf: 0.30·2^-24
    // with float32 coefficients, almost all of it the rounding of L0 to float32.
    static let erfSplit: Float = 0x1.8p-1  // 0.75
    static let erfOne: Float = 0x1.f5a88ap1  // 3.9192059
    static let erfS0: Float = 0x1.06eba8p-3  // 0.128379166
    static let erfS1: Float = -0x1.81273ap-2  // -0.3761262
    static let erfS2: Float = 0x1.ce2acep-4  // 0.11283379
    static let erfS3: Float = -0x1.b7a75cp-6  // -0.0268343352
    static let erfS4: Float = 0x1.4f1888p-8  // 0.00511315651
    static let erfS5: Float = -0x1.613e2cp-11  // -0.000673757284
    static let erfL0: Float = -0x1.3deb04p0  // -1.2418673
    static let erfL1: Float = -0x1.1ce94cp1  // -2.22586966
    static let erfL2: Float = -0x1.9da59cp-1  // -0.807904124
    static let erfL3: Float = -0x1.af7fdep-5  // -0.0526732765
    static let erfL4: Float = 0x1.935244p-7  // 0.0123083908
    static let erfL5: Float = -0x1.073a44p-9  // -0.00200826721
    static let erfL6: Float = 0x1.3b47b4p-13  // 0.000150337262

    // tanh, with a = |x|:
    //   a < tanhSplit: tanh = a + a³·T(a²), where T ≈ (tanh(a)/a − 1)/a². The weighted error of the
    //                  fit is 0.028·2^-24 relative.
    //   otherwise:     tanh = 1 − 2/(1 + exp(2a)). Below about 0.6 this form loses relative accuracy
    //                  to cancellation; at 0.75 it is still within 1 ulp.
    // a is clamped to tanhClamp. tanh rounds to 1 beyond 9.01, and exp(20) is far from overflow.
    static let tanhSplit: Float = 0x1.8p-1  // 0.75
    static let tanhClamp: Float = 0x1.4p3  // 10
    static let tanhT0: Float = -0x1.55554ap-2  // -0.333333164
    static let tanhT1: Float = 0x1.110ddap-3  // 0.133327201
    static let tanhT2: Float = -0x1.b98108p-5  // -0.0538945347
    static let tanhT3: Float = 0x1.5f9082p-6  // 0.0214577932
    static let tanhT4: Float = -0x1.f662fep-8  // -0.0076658125
    static let tanhT5: Float = 0x1.c8975p-10  // 0.00174175669
}

// MARK: - Shared pieces (vector and scalar versions perform identical operations)

/// Splits x into n·ln2 + r and returns exp(r) with t = x·log2e + roundingMagic, whose bit pattern
/// is roundingMagicBits + n. The caller scales by 2^n. Valid for |x| < 2^21. For a NaN x, p is NaN.
@inline(__always)
private func expKernel(_ x: SIMD16<Float>) -> (p: SIMD16<Float>, t: SIMD16<Float>) {
    typealias C = _FastMathConst
    let t = x * C.log2e + C.roundingMagic
    let nf = t - C.roundingMagic
    let r = (x - nf * C.ln2Hi) - nf * C.ln2Lo
    // Estrin's scheme: same operation count as Horner, shorter dependency chains.
    let r2 = r * r
    let a = r * C.expQ1 + C.expQ0
    var b = r * C.expQ3 + C.expQ2
    b = r2 * C.expQ4 + b
    let q = r2 * b + a
    let p = 1 + (r + r2 * q)  // |r + r²q| < 0.42: a single rounding near 1
    return (p, t)
}

@inline(__always)
private func expKernel(_ x: Float) -> (p: Float, t: Float) {
    typealias C = _FastMathConst
    let t = x * C.log2e + C.roundingMagic
    let nf = t - C.roundingMagic
    let r = (x - nf * C.ln2Hi) - nf * C.ln2Lo
    let r2 = r * r
    let a = r * C.expQ1 + C.expQ0
    var b = r * C.expQ3 + C.expQ2
    b = r2 * C.expQ4 + b
    let q = r2 * b + a
    let p = 1 + (r + r2 * q)
    return (p, t)
}

/// p·2^n for a result in the normal range, by adding n to p's exponent field. Because
/// roundingMagicBits·2^23 ≡ 0 (mod 2^32), n << 23 equals bits(t) << 23.
@inline(__always)
private func scaleNormal(_ p: SIMD16<Float>, _ t: SIMD16<Float>) -> SIMD16<Float> {
    let pBits = unsafeBitCast(p, to: SIMD16<UInt32>.self)
    let nBits = unsafeBitCast(t, to: SIMD16<UInt32>.self) &<< 23
    return unsafeBitCast(pBits &+ nBits, to: SIMD16<Float>.self)
}

@inline(__always)
private func scaleNormal(_ p: Float, _ t: Float) -> Float {
    Float(bitPattern: p.bitPattern &+ (t.bitPattern &<< 23))
}

// MARK: - exp

/// e^x, within 1 ulp of the correctly rounded value for every float x. Subnormal results are
/// right as well. Returns +inf for x > 88.72284, 0 for x < −103.97 (like the correctly rounded
/// value), exp(−inf) = 0 and exp(NaN) = NaN.
///
/// 2^n, for n in [−254, 128], is applied as two factors, 2^⌊n/2⌋ and 2^⌈n/2⌉. Each factor is normal
/// or exactly 0, and p·2^⌊n/2⌋ is exact, so only the last multiply rounds, subnormal results too.
/// x is clamped to [−176, 89]. At the lower end n = −254 and both factors are +0, so masked inputs
/// (−inf, −1e9) give an exact 0 without taking the slow subnormal path. This costs no lane mask
/// kept alive across the kernel, which would spill registers.
@inline(__always)
func fastExp(_ x: SIMD16<Float>) -> SIMD16<Float> {
    typealias C = _FastMathConst
    // Written so that LLVM emits minps/maxps; a NaN lane compares false and stays NaN.
    let xHi = x.replacing(with: C.expOverflow, where: x .> C.expOverflow)
    let xc = xHi.replacing(with: C.expClampLow, where: xHi .< C.expClampLow)
    let (p, t) = expKernel(xc)
    // v = n + 254 ≥ 0, and h = ⌊v/2⌋ is the biased exponent of 2^⌊n/2⌋ (v − h that of 2^⌈n/2⌉).
    let v = unsafeBitCast(t, to: SIMD16<Int32>.self) &- (C.roundingMagicBits - 254)
    let h = v &>> 1
    let s1 = unsafeBitCast(h &<< 23, to: SIMD16<Float>.self)
    let s2 = unsafeBitCast((v &- h) &<< 23, to: SIMD16<Float>.self)
    return (p * s1) * s2
}

/// Scalar twin of `fastExp(SIMD16<Float>)`, bit for bit.
@inline(__always)
func fastExp(_ x: Float) -> Float {
    typealias C = _FastMathConst
    let xHi = x > C.expOverflow ? C.expOverflow : x
    let xc = xHi < C.expClampLow ? C.expClampLow : xHi
    let (p, t) = expKernel(xc)
    let v = Int32(bitPattern: t.bitPattern) &- (C.roundingMagicBits - 254)
    let h = v &>> 1
    let s1 = Float(bitPattern: UInt32(bitPattern: h &<< 23))
    let s2 = Float(bitPattern: UInt32(bitPattern: (v &- h) &<< 23))
    return (p * s1) * s2
}

// MARK: - erf

/// erf(x), within 1 ulp of the correctly rounded value for every float x. It is exactly odd, is
/// exactly ±1 for |x| ≥ 3.9192059, and erf(NaN) = NaN.
@inline(__always)
func fastErf(_ x: SIMD16<Float>) -> SIMD16<Float> {
    typealias C = _FastMathConst
    let bits = unsafeBitCast(x, to: SIMD16<UInt32>.self)
    let a = unsafeBitCast(bits & 0x7FFF_FFFF, to: SIMD16<Float>.self)

    // |x| < 0.75
    let s = a * a
    var q = s * C.erfS5 + C.erfS4
    q = q * s + C.erfS3
    q = q * s + C.erfS2
    q = q * s + C.erfS1
    q = q * s + C.erfS0
    let small = a + a * q

    // |x| ≥ 0.75. The argument is clamped into the fitted range [erfSplit, erfOne], so that other
    // lanes compute something harmless. At erfOne, exp(L) = 0.9934·2^-25, so 1 − exp(L) rounds to
    // exactly 1 and every |x| ≥ erfOne gives ±1 without another select (fit_fastmath.py checks).
    let aLo = a.replacing(with: C.erfSplit, where: a .< C.erfSplit)
    let al = aLo.replacing(with: C.erfOne, where: aLo .> C.erfOne)
    let t = al - C.erfSplit
    var l = t * C.erfL6 + C.erfL5
    l = l * t + C.erfL4
    l = l * t + C.erfL3
    l = l * t + C.erfL2
    l = l * t + C.erfL1
    l = l * t + C.erfL0  // ≈ log(erfc(a)) in [−17.2, −1.24]: n in [−25, −2], the result is normal
    let (p, e) = expKernel(l)
    let large = 1 - scaleNormal(p, e)

    // Selecting on a ≥ erfSplit (false for NaN) sends NaN lanes down the small path, where plain
    // arithmetic keeps them NaN. The exponent-field add in scaleNormal could turn a NaN with
    // payload into a number.
    let y = small.replacing(with: large, where: a .>= C.erfSplit)
    let yBits = unsafeBitCast(y, to: SIMD16<UInt32>.self) | (bits & 0x8000_0000)
    return unsafeBitCast(yBits, to: SIMD16<Float>.self)
}

/// Scalar twin of `fastErf(SIMD16<Float>)`, bit for bit.
@inline(__always)
func fastErf(_ x: Float) -> Float {
    typealias C = _FastMathConst
    let bits = x.bitPattern
    let a = Float(bitPattern: bits & 0x7FFF_FFFF)

    let s = a * a
    var q = s * C.erfS5 + C.erfS4
    q = q * s + C.erfS3
    q = q * s + C.erfS2
    q = q * s + C.erfS1
    q = q * s + C.erfS0
    let small = a + a * q

    let aLo = a < C.erfSplit ? C.erfSplit : a
    let al = aLo > C.erfOne ? C.erfOne : aLo
    let t = al - C.erfSplit
    var l = t * C.erfL6 + C.erfL5
    l = l * t + C.erfL4
    l = l * t + C.erfL3
    l = l * t + C.erfL2
    l = l * t + C.erfL1
    l = l * t + C.erfL0
    let (p, e) = expKernel(l)
    let large = 1 - scaleNormal(p, e)

    let y = a >= C.erfSplit ? large : small
    return Float(bitPattern: y.bitPattern | (bits & 0x8000_0000))
}

// MARK: - sigmoid

/// 1/(1 + e^−x). Within 2 ulp of the correctly rounded value (1 ulp for x ≥ 0), with relative
/// error ≤ 1.48e-7 wherever the result is a normal float (x ≥ −87.33). Below that the result is
/// subnormal, then exactly 0 from x = −88.72, where e^−x becomes +inf. That is an absolute error
/// under 3e-39. The result is exactly 1 for x ≥ 16.64. No NaN or inf comes out of a non-NaN
/// input.
@inline(__always)
func fastSigmoid(_ x: SIMD16<Float>) -> SIMD16<Float> {
    1 / (1 + fastExp(-x))
}

/// Scalar twin of `fastSigmoid(SIMD16<Float>)`, bit for bit.
@inline(__always)
func fastSigmoid(_ x: Float) -> Float {
    1 / (1 + fastExp(-x))
}

// MARK: - tanh

/// tanh(x), within 1 ulp of the correctly rounded value for every float x. It is relatively
/// accurate near 0 (tanh(x) = x for tiny x), exactly odd, and exactly ±1 for |x| > 9.01.
/// tanh(NaN) = NaN.
@inline(__always)
func fastTanh(_ x: SIMD16<Float>) -> SIMD16<Float> {
    typealias C = _FastMathConst
    let bits = unsafeBitCast(x, to: SIMD16<UInt32>.self)
    let a = unsafeBitCast(bits & 0x7FFF_FFFF, to: SIMD16<Float>.self)

    let s = a * a
    var q = s * C.tanhT5 + C.tanhT4
    q = q * s + C.tanhT3
    q = q * s + C.tanhT2
    q = q * s + C.tanhT1
    q = q * s + C.tanhT0
    let small = a + (a * s) * q

    let al = a.replacing(with: C.tanhClamp, where: a .> C.tanhClamp)
    let (p, e) = expKernel(al + al)  // n in [0, 29]: the result is normal
    let large = 1 - 2 / (1 + scaleNormal(p, e))

    let y = small.replacing(with: large, where: a .>= C.tanhSplit)  // NaN takes the small path
    let yBits = unsafeBitCast(y, to: SIMD16<UInt32>.self) | (bits & 0x8000_0000)
    return unsafeBitCast(yBits, to: SIMD16<Float>.self)
}

/// Scalar twin of `fastTanh(SIMD16<Float>)`, bit for bit.
@inline(__always)
func fastTanh(_ x: Float) -> Float {
    typealias C = _FastMathConst
    let bits = x.bitPattern
    let a = Float(bitPattern: bits & 0x7FFF_FFFF)

    let s = a * a
    var q = s * C.tanhT5 + C.tanhT4
    q = q * s + C.tanhT3
    q = q * s + C.tanhT2
    q = q * s + C.tanhT1
    q = q * s + C.tanhT0
    let small = a + (a * s) * q

    let al = a > C.tanhClamp ? C.tanhClamp : a
    let (p, e) = expKernel(al + al)
    let large = 1 - 2 / (1 + scaleNormal(p, e))

    let y = a >= C.tanhSplit ? large : small
    return Float(bitPattern: y.bitPattern | (bits & 0x8000_0000))
}
