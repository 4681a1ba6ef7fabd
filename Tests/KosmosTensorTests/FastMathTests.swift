import Foundation
import XCTest

@testable import KosmosTensor

/// Accuracy and consistency of FastMath.swift against Foundation's Double functions rounded to
/// Float, which gives the correctly rounded value except at near-ties far too rare to matter here.
///
/// The bounds are those measured over every float input in release builds (see FastMath.swift):
/// exp, erf and tanh are within 1 ulp of the correctly rounded value, sigmoid within 2 ulp. The
/// required bound is 2 ulp for exp and erf. Each sweep takes about 200k points: half spread
/// over the bit patterns of the range (every binade, tiny and subnormal ones included) and half
/// spaced evenly in value over the part where the function is not flat.
final class FastMathTests: XCTestCase {

    // MARK: helpers

    /// Position of x in the ordered sequence of floats (−0 and +0 both map to 0).
    private func ordinal(_ x: Float) -> Int64 {
        let magnitude = Int64(x.bitPattern & 0x7FFF_FFFF)
        return x.sign == .minus ? -magnitude : magnitude
    }

    private func float(ordinal k: Int64) -> Float {
        k >= 0 ? Float(bitPattern: UInt32(k)) : -Float(bitPattern: UInt32(-k))
    }

    /// Distance in ulps between two floats, counting subnormal steps like any others.
    /// Two NaNs are 0 apart; a NaN and a number are infinitely far apart.
    private func ulps(_ a: Float, _ b: Float) -> Int64 {
        if a.isNaN || b.isNaN { return a.isNaN && b.isNaN ? 0 : .max }
        return abs(ordinal(a) - ordinal(b))
    }

    /// `count` inputs in bit-pattern order from lo to hi, each jittered within its step by a fixed
    /// LCG so that mantissa patterns vary.
    private func bitSweep(_ lo: Float, _ hi: Float, count: Int) -> [Float] {
        let a = ordinal(lo), b = ordinal(hi)
        let step = max(1, (b - a) / Int64(count))
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        var xs: [Float] = []
        xs.reserveCapacity(count + 1)
        var k = a
        while k <= b {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            xs.append(float(ordinal: min(b, k + Int64(state >> 33) % step)))
            k += step
        }
        return xs
    }

    /// `count` inputs evenly spaced in value over [lo, hi].
    private func linearSweep(_ lo: Float, _ hi: Float, count: Int) -> [Float] {
        (0..<count).map { i in Float(Double(lo) + (Double(hi) - Double(lo)) * Double(i) / Double(count - 1)) }
    }

    /// Applies the SIMD16 version to xs (padding the last block).
    private func vectorMap(_ xs: [Float], _ f: (SIMD16<Float>) -> SIMD16<Float>) -> [Float] {
        var out = [Float](repeating: 0, count: xs.count)
        var i = 0
        while i < xs.count {
            var v = SIMD16<Float>(repeating: 0)
            for j in 0..<16 where i + j < xs.count { v[j] = xs[i + j] }
            let y = f(v)
            for j in 0..<16 where i + j < xs.count { out[i + j] = y[j] }
            i += 16
        }
        return out
    }

    /// Checks vector and scalar versions bit for bit, then the ulp error of the result against
    /// `reference` rounded to Float. Returns the largest ulp error, for the failure messages.
    @discardableResult
    private func checkSweep(
        _ name: String, _ xs: [Float],
        vector: (SIMD16<Float>) -> SIMD16<Float>, scalar: (Float) -> Float,
        reference: (Double) -> Double, maxUlps bound: Int64,
        file: StaticString = #filePath, line: UInt = #line
    ) -> Int64 {
        let yv = vectorMap(xs, vector)
        var worst: Int64 = 0
        var worstX: Float = 0
        var mismatches = 0
        for (i, x) in xs.enumerated() {
            let ys = scalar(x)
            if yv[i].bitPattern != ys.bitPattern && !(yv[i].isNaN && ys.isNaN) {
                if mismatches == 0 {
                    XCTFail("\(name)(\(x)): vector \(yv[i]) and scalar \(ys) differ", file: file, line: line)
                }
                mismatches += 1
            }
            let d = ulps(yv[i], Float(reference(Double(x))))
            if d > worst { (worst, worstX) = (d, x) }
        }
        XCTAssertEqual(mismatches, 0, "\(name): vector/scalar bit mismatches", file: file, line: line)
        XCTAssertLessThanOrEqual(
            worst, bound,
            "\(name): max error \(worst) ulp at x = \(worstX), bound \(bound) ulp from the correctly rounded value",
            file: file, line: line)
        return worst
    }

    /// Special inputs every function is also checked on (vector = scalar, and against reference).
    private let specials: [Float] = [
        0, -0.0, .leastNonzeroMagnitude, -.leastNonzeroMagnitude, .leastNormalMagnitude,
        -.leastNormalMagnitude, 1e-30, -1e-30, 1e-7, -1e-7, 0.5, -0.5, 0.75, -0.75, 1, -1, 2, -2,
        10, -10, 88.72, 88.7228, 88.73, 89, 100, -87.3, -87.34, -88, -100, -103.9, -103.98, -104,
        -150, -176, -177, 1e10, -1e10, .greatestFiniteMagnitude, -.greatestFiniteMagnitude,
        .infinity, -.infinity,
    ]

    // MARK: exp

    func testExpAccuracyAndVectorScalarAgreement() {
        let xs = bitSweep(-110, 90, count: 100_000) + linearSweep(-104, 89, count: 100_000) + specials
        checkSweep("fastExp", xs, vector: { fastExp($0) }, scalar: { fastExp($0) },
                   reference: { Foundation.exp($0) }, maxUlps: 1)
    }

    func testExpEdgeCases() {
        XCTAssertEqual(fastExp(Float(0)), 1)
        XCTAssertEqual(fastExp(Float(-0.0)), 1)
        XCTAssertEqual(fastExp(Float(1e-30)), 1)
        XCTAssertEqual(fastExp(Float.leastNonzeroMagnitude), 1)
        XCTAssertEqual(fastExp(Float.infinity), .infinity)
        XCTAssertEqual(fastExp(-Float.infinity), 0)
        XCTAssertTrue(fastExp(Float.nan).isNaN)
        XCTAssertTrue(fastExp(-Float.nan).isNaN)
        XCTAssertTrue(fastExp(Float(bitPattern: 0x7FC0_01FF)).isNaN, "NaN with payload")
        // Overflow: finite up to ln(greatestFiniteMagnitude) ≈ 88.72284, +inf from there.
        XCTAssertEqual(fastExp(Float(88.72283)), Float(Foundation.exp(Double(Float(88.72283)))))
        XCTAssertTrue(fastExp(Float(88.72283)).isFinite)
        for x: Float in [88.73, 89, 89.5, 1000, 1e30, .greatestFiniteMagnitude] {
            XCTAssertEqual(fastExp(x), .infinity, "exp(\(x))")
        }
        // Underflow: gradual through the subnormals, then exactly +0.
        XCTAssertEqual(fastExp(Float(-103.9)), .leastNonzeroMagnitude)
        XCTAssertTrue(fastExp(Float(-95)).isSubnormal)
        for x: Float in [-104, -150, -175.9, -176, -176.1, -1000, -1e30, -.greatestFiniteMagnitude] {
            XCTAssertEqual(fastExp(x).bitPattern, Float(0).bitPattern, "exp(\(x))")
        }
        // The vector version handles all of these in one block, lane by lane.
        var v = SIMD16<Float>(repeating: 0)
        let lanes: [Float] = [.nan, .infinity, -.infinity, 89, -176, -1e30, -103.9, 0, 1, -1, 50, -50, 88.72, -87.3, 1e-30, 2]
        for (i, x) in lanes.enumerated() { v[i] = x }
        let y = fastExp(v)
        for (i, x) in lanes.enumerated() {
            let s = fastExp(x)
            XCTAssertTrue(y[i].bitPattern == s.bitPattern || (y[i].isNaN && s.isNaN), "lane \(i): exp(\(x))")
        }
    }

    // MARK: erf

    func testErfAccuracyAndVectorScalarAgreement() {
        let xs = bitSweep(-5, 5, count: 100_000) + linearSweep(-4.5, 4.5, count: 100_000) + specials
        checkSweep("fastErf", xs, vector: { fastErf($0) }, scalar: { fastErf($0) },
                   reference: { Foundation.erf($0) }, maxUlps: 1)
    }

    func testErfTinyArgumentsAreRelativelyAccurate() {
        // erf(x) ≈ 2x/√π: for tiny and subnormal x the result must still be accurate to the ulp.
        let xs = bitSweep(.leastNonzeroMagnitude, 1e-3, count: 20_000)
        checkSweep("fastErf tiny", xs, vector: { fastErf($0) }, scalar: { fastErf($0) },
                   reference: { Foundation.erf($0) }, maxUlps: 1)
    }

    func testErfEdgeCasesAndSymmetry() {
        XCTAssertEqual(fastErf(Float(0)).bitPattern, Float(0).bitPattern)
        XCTAssertEqual(fastErf(Float(-0.0)).bitPattern, Float(-0.0).bitPattern)
        XCTAssertTrue(fastErf(Float.nan).isNaN)
        XCTAssertTrue(fastErf(Float(bitPattern: 0x7FC0_01FF)).isNaN, "NaN with payload")
        XCTAssertTrue(fastErf(Float(bitPattern: 0xFFC0_0123)).isNaN, "negative NaN with payload")
        var v = SIMD16<Float>(repeating: 1)
        v[3] = Float(bitPattern: 0x7FC0_01FF)
        v[7] = .nan
        let y = fastErf(v)
        XCTAssertTrue(y[3].isNaN && y[7].isNaN && y[0] == fastErf(Float(1)))
        // 3.9192059 is the first float whose correctly rounded erf is 1.
        let one: Float = 3.9192059
        XCTAssertLessThan(Float(Foundation.erf(Double(one.nextDown))), 1)
        XCTAssertEqual(Float(Foundation.erf(Double(one))), 1)
        for x in [one, 4, 10, 1e30, .greatestFiniteMagnitude, .infinity] {
            XCTAssertEqual(fastErf(x), 1, "erf(\(x))")
            XCTAssertEqual(fastErf(-x), -1, "erf(\(-x))")
        }
        // Exact odd symmetry: erf(−x) has the bits of erf(x) with the sign flipped.
        for x in bitSweep(0, 5, count: 20_000) {
            XCTAssertEqual(fastErf(-x).bitPattern, fastErf(x).bitPattern ^ 0x8000_0000, "erf(±\(x))")
        }
    }

    // MARK: tanh

    func testTanhAccuracyAndVectorScalarAgreement() {
        let xs = bitSweep(-12, 12, count: 100_000) + linearSweep(-10, 10, count: 100_000) + specials
        checkSweep("fastTanh", xs, vector: { fastTanh($0) }, scalar: { fastTanh($0) },
                   reference: { Foundation.tanh($0) }, maxUlps: 1)
    }

    func testTanhEdgeCases() {
        XCTAssertEqual(fastTanh(Float(0)).bitPattern, Float(0).bitPattern)
        XCTAssertEqual(fastTanh(Float(-0.0)).bitPattern, Float(-0.0).bitPattern)
        // Relatively accurate near 0: tanh(x) = x to float precision for tiny x.
        for x: Float in [1e-30, -1e-30, 1e-10, .leastNonzeroMagnitude, .leastNormalMagnitude] {
            XCTAssertEqual(fastTanh(x), x, "tanh(\(x))")
        }
        XCTAssertTrue(fastTanh(Float.nan).isNaN)
        XCTAssertTrue(fastTanh(Float(bitPattern: 0x7FC0_01FF)).isNaN, "NaN with payload")
        for x: Float in [9.1, 10, 20, 89, 1e30, .greatestFiniteMagnitude, .infinity] {
            XCTAssertEqual(fastTanh(x), 1, "tanh(\(x))")
            XCTAssertEqual(fastTanh(-x), -1, "tanh(\(-x))")
        }
    }

    // MARK: sigmoid

    func testSigmoidAccuracyAndVectorScalarAgreement() {
        // Where the result is a normal float (x ≥ −87.33): within 2 ulp, relative error < 1.5e-7.
        let xs = bitSweep(-87.33, 100, count: 100_000) + linearSweep(-87.33, 20, count: 100_000) + specials
        let reference = { (x: Double) in 1 / (1 + Foundation.exp(-x)) }
        checkSweep("fastSigmoid", xs.filter { !($0 < -87.33) }, vector: { fastSigmoid($0) },
                   scalar: { fastSigmoid($0) }, reference: reference, maxUlps: 2)
        var worst = 0.0
        for x in xs where x >= -87.33 {
            let exact = reference(Double(x))
            worst = max(worst, abs(Double(fastSigmoid(x)) - exact) / exact)
        }
        XCTAssertLessThan(worst, 1.5e-7, "fastSigmoid: max relative error \(worst), bound 1.5e-7")
        // Below, the result is subnormal until e^−x overflows at x = −88.72, then exactly 0.
        for x in linearSweep(-100, -87.34, count: 2_000) {
            let y = fastSigmoid(x)
            XCTAssertTrue(y >= 0 && y <= .leastNormalMagnitude, "sigmoid(\(x)) = \(y)")
            XCTAssertLessThan(abs(Double(y) - reference(Double(x))), 3e-39, "sigmoid(\(x))")
        }
    }

    func testSigmoidLargeInputsGiveNoNaNOrInf() {
        for x: Float in [17.4, 20, 89, 100, 1e10, .greatestFiniteMagnitude, .infinity] {
            XCTAssertEqual(fastSigmoid(x), 1, "sigmoid(\(x))")
        }
        for x: Float in [-88.8, -89, -100, -1e10, -.greatestFiniteMagnitude, -.infinity] {
            XCTAssertEqual(fastSigmoid(x), 0, "sigmoid(\(x))")
        }
        XCTAssertEqual(fastSigmoid(Float(0)), 0.5)
        XCTAssertTrue(fastSigmoid(Float.nan).isNaN)
        var v = SIMD16<Float>(repeating: 0)
        let lanes: [Float] = [.infinity, -.infinity, 1e30, -1e30, 100, -100, 88.8, -88.8, 0, 1, -1, 5, -5, 30, -30, 17]
        for (i, x) in lanes.enumerated() { v[i] = x }
        let y = fastSigmoid(v)
        for i in 0..<16 {
            XCTAssertTrue(y[i].isFinite && y[i] >= 0 && y[i] <= 1, "sigmoid(\(lanes[i])) = \(y[i])")
            XCTAssertEqual(y[i].bitPattern, fastSigmoid(lanes[i]).bitPattern, "lane \(i)")
        }
    }
}
