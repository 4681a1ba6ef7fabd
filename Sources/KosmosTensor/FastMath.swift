import Foundation
// Placeholder: replaced by the vectorised implementation.
@inline(__always) func fastExp(_ x: Float) -> Float { Foundation.exp(x) }
@inline(__always) func fastExp(_ x: SIMD16<Float>) -> SIMD16<Float> { var r = x; for i in 0..<16 { r[i] = Foundation.exp(x[i]) }; return r }
@inline(__always) func fastErf(_ x: Float) -> Float { Foundation.erf(x) }
@inline(__always) func fastErf(_ x: SIMD16<Float>) -> SIMD16<Float> { var r = x; for i in 0..<16 { r[i] = Foundation.erf(x[i]) }; return r }
@inline(__always) func fastSigmoid(_ x: Float) -> Float { 1 / (1 + Foundation.exp(-x)) }
@inline(__always) func fastSigmoid(_ x: SIMD16<Float>) -> SIMD16<Float> { var r = x; for i in 0..<16 { r[i] = fastSigmoid(x[i]) }; return r }
@inline(__always) func fastTanh(_ x: Float) -> Float { Foundation.tanh(x) }
@inline(__always) func fastTanh(_ x: SIMD16<Float>) -> SIMD16<Float> { var r = x; for i in 0..<16 { r[i] = Foundation.tanh(x[i]) }; return r }
