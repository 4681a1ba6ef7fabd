import Foundation

/// Which frames of a video a model sees (docs/video.md). Frames are counted in display order.
public enum FrameSampling: Equatable, Sendable {
    /// N frames spread evenly: indices round(linspace(0, frames − 1, N)), rounding halves to even
    /// as numpy does (fewer frames than N: every frame once).
    case uniform(Int)
    /// One frame every 1/fps seconds from the first frame's time until the video ends (the last
    /// frame lasting as long as the one before it) — at each time t, the frame on screen then (the
    /// last whose timestamp is ≤ t), each frame once — at most `cap` frames; more are thinned to
    /// `cap` with the uniform rule over them.
    case rate(fps: Double, cap: Int)

    /// The indices to decode, ascending and distinct, from the frame count and (for `rate`) the
    /// frames' timestamps in seconds.
    public func indices(frameCount: Int, timestamps: [Double] = []) -> [Int] {
        guard frameCount > 0 else { return [] }
        switch self {
        case .uniform(let n):
            return Self.linspace(count: frameCount, n: n)
        case .rate(let fps, let cap):
            guard fps > 0, timestamps.count == frameCount else { return Self.linspace(count: frameCount, n: cap) }
            var picked: [Int] = [], frame = 0, k = 0
            // The last frame stays on screen as long as the one before it did.
            let start = timestamps[0]
            let end = timestamps[frameCount - 1] + (frameCount > 1 ? timestamps[frameCount - 1] - timestamps[frameCount - 2] : 0)
            while true {
                let t = start + Double(k) / fps
                if t >= end - 1e-9 && k > 0 { break }
                while frame + 1 < frameCount && timestamps[frame + 1] <= t + 1e-9 { frame += 1 }
                if picked.last != frame { picked.append(frame) }
                k += 1
                if k > 10_000_000 { break }
            }
            guard picked.count > cap else { return picked }
            return Self.linspace(count: picked.count, n: cap).map { picked[$0] }
        }
    }

    /// round(linspace(0, count − 1, n)) with halves to even, duplicates removed.
    static func linspace(count: Int, n: Int) -> [Int] {
        guard n > 0 else { return [] }
        if n == 1 { return [0] }
        // As numpy computes it: i·step with step = (count − 1)/(n − 1), the last exactly count − 1.
        let step = Double(count - 1) / Double(n - 1)
        var out: [Int] = []
        for i in 0..<n {
            let x = i == n - 1 ? Double(count - 1) : Double(i) * step
            let r = Int(x.rounded(.toNearestOrEven))
            if out.last != r { out.append(min(r, count - 1)) }
        }
        return out
    }
}
