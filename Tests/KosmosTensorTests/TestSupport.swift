import Foundation
import XCTest
@testable import KosmosTensor

/// Asserts |actual − expected| ≤ atol + rtol·|expected| element-wise, reporting the worst element.
func assertClose(_ actual: [Float], _ expected: [Float], rtol: Float, atol: Float, _ message: String = "",
                 file: StaticString = #filePath, line: UInt = #line) {
    guard actual.count == expected.count else {
        XCTFail("\(message): \(actual.count) values, expected \(expected.count)", file: file, line: line)
        return
    }
    var worst = -1
    var worstExcess: Float = 0
    for i in 0..<actual.count {
        let a = actual[i], e = expected[i]
        if a.isNaN || e.isNaN {
            if a.isNaN != e.isNaN { worst = i; worstExcess = .infinity; break }
            continue
        }
        if a == e { continue }
        let excess = abs(a - e) - (atol + rtol * abs(e))
        if excess > worstExcess || (excess.isNaN) { worstExcess = excess; worst = i }
    }
    if worst >= 0 {
        XCTFail("\(message): element \(worst) is \(actual[worst]), expected \(expected[worst]) (rtol \(rtol), atol \(atol))",
                file: file, line: line)
    }
}

func assertClose(_ actual: Tensor, _ expected: Tensor, rtol: Float, atol: Float, _ message: String = "",
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.shape, expected.shape, "\(message): shape", file: file, line: line)
    assertClose(actual.scalars, expected.scalars, rtol: rtol, atol: atol, message, file: file, line: line)
}

/// The tensors of one fixture file, by name.
final class Fixture {
    let file: SafeTensorsFile

    init(_ name: String) throws {
        file = try SafeTensorsFile(url: fixtureURL(name))
    }

    func tensor(_ name: String, requiresGrad: Bool = false) throws -> Tensor {
        let t = try file.tensor(name)
        t.requiresGrad = requiresGrad
        return t
    }

    func ints(_ name: String) throws -> [Int] {
        try file.int64s(name).map { Int($0) }
    }
}

/// Finite-difference gradient check.
///
/// The scalar checked is L = Σ f(inputs) ⊙ w for a fixed random w, so every output element and
/// every input element is exercised. The analytic gradient comes from `backward()`; the numeric one
/// from central differences (L(x + ε) − L(x − ε)) / 2ε, with L accumulated in Double from the float32
/// outputs. Error budget with ε = 1e-2 and O(1) values: float32 rounding of the outputs gives
/// about 1e-7·√n / 2ε ≈ 5e-5 for n ≈ 100 outputs, truncation ε²/6·|f'''| ≈ 2e-5; the default
/// tolerance (atol 1e-3, rtol 1e-2) keeps a margin of more than ten over both, while a wrong
/// backward formula is off by O(1).
func gradCheck(_ label: String, _ inputs: [Tensor], eps: Float = 1e-2, atol: Float = 1e-3, rtol: Float = 1e-2,
               seed: UInt64 = 99, file: StaticString = #filePath, line: UInt = #line,
               _ f: ([Tensor]) -> Tensor) {
    for x in inputs { x.requiresGrad = true; x.grad = nil }
    let y = f(inputs)
    let weights = Tensor.randn(y.shape, generator: RandomGenerator(seed: seed))
    (y * weights).sum().backward()
    let w = weights.scalars

    func objective() -> Double {
        let out = withoutGrad { f(inputs) }
        let values = out.scalars
        var total = 0.0
        for i in 0..<values.count { total += Double(values[i]) * Double(w[i]) }
        return total
    }

    for (index, x) in inputs.enumerated() {
        guard let analytic = x.grad?.scalars else {
            XCTFail("\(label): input \(index) got no gradient", file: file, line: line)
            continue
        }
        var numeric = [Float](repeating: 0, count: x.count)
        for i in 0..<x.count {
            let original = x.withUnsafeMutableBufferPointer { $0[i] }
            x.withUnsafeMutableBufferPointer { $0[i] = original + eps }
            let plus = objective()
            x.withUnsafeMutableBufferPointer { $0[i] = original - eps }
            let minus = objective()
            x.withUnsafeMutableBufferPointer { $0[i] = original }
            numeric[i] = Float((plus - minus) / (2 * Double(eps)))
        }
        assertClose(analytic, numeric, rtol: rtol, atol: atol, "\(label): gradient of input \(index)", file: file, line: line)
    }
}
