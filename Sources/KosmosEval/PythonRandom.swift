import Foundation

/// CPython's `random.Random` as far as the harness's few-shot sampler uses it: the Mersenne
/// Twister (MT19937) seeded from an integer the way `random.seed(n)` seeds it (`init_by_array` over
/// n's 32-bit words), `getrandbits`, `_randbelow` (rejection over n.bit_length() bits) and
/// `sample` (both of its strategies: a shrinking pool for small populations, a set of taken indices
/// for large ones), so the same seed draws the same few-shot examples.
public struct PythonRandom {
    private var state = [UInt32](repeating: 0, count: 624)
    private var index = 624

    /// `random.Random(seed)` for a non-negative integer seed below 2⁶⁴.
    public init(seed: UInt64) {
        var key: [UInt32] = []
        var n = seed
        repeat {
            key.append(UInt32(truncatingIfNeeded: n))
            n >>= 32
        } while n > 0
        seedByArray(key)
    }

    private mutating func seedGenrand(_ s: UInt32) {
        state[0] = s
        for i in 1..<624 {
            state[i] = 1_812_433_253 &* (state[i - 1] ^ (state[i - 1] >> 30)) &+ UInt32(i)
        }
        index = 624
    }

    private mutating func seedByArray(_ key: [UInt32]) {
        seedGenrand(19_650_218)
        var i = 1, j = 0
        for _ in 0..<Swift.max(624, key.count) {
            state[i] = (state[i] ^ ((state[i - 1] ^ (state[i - 1] >> 30)) &* 1_664_525)) &+ key[j] &+ UInt32(j)
            i += 1
            j += 1
            if i >= 624 { state[0] = state[623]; i = 1 }
            if j >= key.count { j = 0 }
        }
        for _ in 0..<623 {
            state[i] = (state[i] ^ ((state[i - 1] ^ (state[i - 1] >> 30)) &* 1_566_083_941)) &- UInt32(i)
            i += 1
            if i >= 624 { state[0] = state[623]; i = 1 }
        }
        state[0] = 0x8000_0000
    }

    /// The next 32-bit output (genrand_uint32).
    public mutating func next32() -> UInt32 {
        if index >= 624 {
            for k in 0..<624 {
                let y = (state[k] & 0x8000_0000) | (state[(k + 1) % 624] & 0x7fff_ffff)
                state[k] = state[(k + 397) % 624] ^ (y >> 1) ^ ((y & 1) == 0 ? 0 : 0x9908_b0df)
            }
            index = 0
        }
        var y = state[index]
        index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9d2c_5680
        y ^= (y << 15) & 0xefc6_0000
        y ^= y >> 18
        return y
    }

    /// `getrandbits(k)` for 0 ≤ k ≤ 64 (words low first, the last one's top bits, as CPython).
    public mutating func getrandbits(_ k: Int) -> UInt64 {
        precondition(k >= 0 && k <= 64, "getrandbits takes 0...64 bits here")
        if k == 0 { return 0 }
        if k <= 32 { return UInt64(next32() >> (32 - k)) }
        let low = UInt64(next32())
        let high = UInt64(next32() >> (64 - k))
        return low | (high << 32)
    }

    /// `_randbelow(n)` for n > 0.
    public mutating func randbelow(_ n: Int) -> Int {
        precondition(n > 0, "randbelow needs n > 0")
        let bits = Int.bitWidth - n.leadingZeroBitCount
        var r = getrandbits(bits)
        while r >= UInt64(n) { r = getrandbits(bits) }
        return Int(r)
    }

    /// The indices `random.sample(range(n), k)` draws, in order (k ≤ n).
    public mutating func sample(_ n: Int, _ k: Int) -> [Int] {
        precondition(k >= 0 && k <= n, "sample larger than population or negative")
        var setSize = 21
        if k > 5 {
            // 4 ** ceil(log(3k, 4)), computed as CPython does (a float logarithm).
            setSize += Int(pow4(Int((Foundation.log(Double(k * 3)) / Foundation.log(4.0)).rounded(.up))))
        }
        var result: [Int] = []
        if n <= setSize {
            var pool = Array(0..<n)
            for i in 0..<k {
                let j = randbelow(n - i)
                result.append(pool[j])
                pool[j] = pool[n - i - 1]
            }
        } else {
            var selected = Set<Int>()
            for _ in 0..<k {
                var j = randbelow(n)
                while selected.contains(j) { j = randbelow(n) }
                selected.insert(j)
                result.append(j)
            }
        }
        return result
    }

    private func pow4(_ e: Int) -> Int { (0..<e).reduce(1) { r, _ in r * 4 } }
}

/// The harness's few-shot draw (`ContextSampler.sample`): `shots` indices of a pool of `count`,
/// from a `random.Random` that the caller keeps across its items. With `isItem` (the item may be
/// in the pool) K + 1 are drawn, those that are the item dropped and the first K kept; if that
/// leaves fewer than K (several copies of the item drawn), K are drawn again from the pool
/// without any copy of it. A pool too small for the draw is an error, not a crash.
public func fewShotIndices(count: Int, shots: Int, random: inout PythonRandom, isItem: ((Int) -> Bool)?) throws -> [Int] {
    guard shots > 0 else { return [] }
    let tooFew = { (have: Int, need: Int) in
        EvalError.malformed(path: "--shots", location: "\(shots)", reason: "the few-shot pool has \(have) items to draw from; \(shots) shots draw \(need)")
    }
    guard let isItem else {
        guard count >= shots else { throw tooFew(count, shots) }
        return random.sample(count, shots)
    }
    guard count >= shots + 1 else { throw tooFew(count, shots + 1) }
    let drawn = Array(random.sample(count, shots + 1).filter { !isItem($0) }.prefix(shots))
    if drawn.count == shots { return drawn }
    let others = (0..<count).filter { !isItem($0) }
    guard others.count >= shots else { throw tooFew(others.count, shots) }
    return random.sample(others.count, shots).map { others[$0] }
}
