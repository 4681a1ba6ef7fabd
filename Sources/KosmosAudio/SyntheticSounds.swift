import Foundation

/// Synthetic clips for the audio demo: one to four sound events in a row — a high beep, a low
/// beep, a rising chirp or a noise burst — at random times, levels and slight detunings over quiet
/// background noise, captioned with the events in order ("high low low chirp"). The caption needs
/// the order: the same events in another order are another caption. Deterministic per seed.
public enum SyntheticSounds {
    public enum Event: String, CaseIterable, Sendable {
        case high, low, chirp, noise
    }

    public struct Clip: Sendable {
        public var samples: [Float]
        public var sampleRate: Int
        public var events: [Event]
        /// Start and end of each event, in seconds.
        public var times: [(start: Double, end: Double)]
        public var caption: String { events.map(\.rawValue).joined(separator: " ") }
    }

    /// splitmix64: the same numbers on every platform.
    struct Generator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func uniform() -> Double { Double(next() >> 11) / Double(1 << 53) }
        mutating func uniform(_ low: Double, _ high: Double) -> Double { low + (high - low) * uniform() }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    /// Clip `seed`: `duration` seconds at `sampleRate` (2 s at 16 kHz fits four events).
    public static func clip(seed: UInt64, sampleRate: Int = 16_000, duration: Double = 2) -> Clip {
        var g = Generator(state: seed &* 0x2545_F491_4F6C_DD1D &+ 1)
        let count = 1 + g.below(4)
        let events = (0..<count).map { _ in Event.allCases[g.below(Event.allCases.count)] }
        let n = Int(duration * Double(sampleRate))
        var samples = (0..<n).map { _ in Float(g.uniform(-0.004, 0.004)) }
        var t = g.uniform(0.02, 0.15)
        var times: [(Double, Double)] = []
        for event in events {
            let length = event == .chirp ? g.uniform(0.22, 0.28) : g.uniform(0.13, 0.18)
            let level = g.uniform(0.2, 0.6)
            let detune = g.uniform(0.95, 1.05)
            let start = Int(t * Double(sampleRate)), count = min(Int(length * Double(sampleRate)), n - start)
            let fade = Double(sampleRate) * 0.01
            var phase = g.uniform(0, 2 * Double.pi)
            for i in 0..<max(count, 0) {
                let time = Double(i) / Double(sampleRate)
                let frequency: Double
                switch event {
                case .high: frequency = 1500 * detune
                case .low: frequency = 400 * detune
                case .chirp: frequency = (300 + (2000 - 300) * time / length) * detune
                case .noise: frequency = 0
                }
                phase += 2 * Double.pi * frequency / Double(sampleRate)
                let value = event == .noise ? g.uniform(-1, 1) : sin(phase)
                let envelope = min(1, Double(i) / fade, Double(count - 1 - i) / fade)
                samples[start + i] += Float(level * envelope * value)
            }
            times.append((t, t + length))
            t += length + g.uniform(0.06, 0.2)
        }
        return Clip(samples: samples, sampleRate: sampleRate, events: events, times: times)
    }
}
