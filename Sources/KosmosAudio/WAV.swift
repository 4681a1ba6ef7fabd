import Foundation

/// Decoded audio before it is made mono: interleaved float32 samples, `channels` per frame.
public struct PCMAudio: Equatable, Sendable {
    public var samples: [Float]
    public var channels: Int
    public var sampleRate: Int

    public init(samples: [Float], channels: Int, sampleRate: Int) {
        self.samples = samples
        self.channels = channels
        self.sampleRate = sampleRate
    }

    public var frames: Int { channels > 0 ? samples.count / channels : 0 }
    public var duration: Double { sampleRate > 0 ? Double(frames) / Double(sampleRate) : 0 }

    /// The mean of the channels per frame, in float32 (a stereo frame is (l + r) / 2).
    public func mono() -> [Float] {
        if channels == 1 { return samples }
        var out = [Float](repeating: 0, count: frames)
        let scale = 1 / Float(channels)
        samples.withUnsafeBufferPointer { s in
            for f in 0..<frames {
                var sum: Float = 0
                for c in 0..<channels { sum += s[f * channels + c] }
                out[f] = channels == 2 ? sum / 2 : sum * scale
            }
        }
        return out
    }
}

/// RIFF/WAVE files read without FFmpeg: integer PCM of 8 (unsigned), 16, 24 and 32 bits, IEEE
/// float of 32 and 64 bits, any channel count up to 64, plain or WAVE_FORMAT_EXTENSIBLE headers.
/// Integers become floats in [−1, 1) by dividing by 2^(bits−1) (8-bit: (x − 128)/128), as FFmpeg
/// converts them. A data chunk whose declared size is the streaming placeholder (0 or 0xFFFFFFFF)
/// runs to the end of the file; any other declared size beyond the file is a truncated file.
public enum WAVReader {
    public static let maxChannels = 64
    public static let maxSampleRate = 768_000

    /// Whether the bytes start like a WAV file.
    public static func recognises(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 12 && bytes[0..<4].elementsEqual("RIFF".utf8) && bytes[8..<12].elementsEqual("WAVE".utf8)
    }

    /// Decodes a whole WAV file; `maxDuration` seconds (> 0) refuses longer files before
    /// converting samples.
    public static func decode(_ bytes: [UInt8], source: String, maxDuration: Double = 0) throws -> PCMAudio {
        guard !bytes.isEmpty else { throw AudioError.emptyFile(source: source) }
        guard recognises(bytes) else { throw AudioError.unknownFormat(source: source, detail: "no RIFF/WAVE signature") }
        func u16(_ o: Int) -> Int { Int(bytes[o]) | Int(bytes[o + 1]) << 8 }
        func u32(_ o: Int) -> Int { u16(o) | u16(o + 2) << 16 }
        var offset = 12
        var format: (code: Int, channels: Int, rate: Int, blockAlign: Int, bits: Int)? = nil
        while offset + 8 <= bytes.count {
            let id = String(decoding: bytes[offset..<(offset + 4)], as: UTF8.self)
            let declared = u32(offset + 4)
            let body = offset + 8
            if id == "fmt " {
                guard declared >= 16, body + 16 <= bytes.count else {
                    throw AudioError.invalidHeader(source: source, detail: "fmt chunk of \(declared) bytes is too short")
                }
                var code = u16(body)
                if code == 0xFFFE {
                    guard declared >= 40, body + 40 <= bytes.count else {
                        throw AudioError.invalidHeader(source: source, detail: "WAVE_FORMAT_EXTENSIBLE fmt chunk is too short")
                    }
                    code = u16(body + 24)   // the sub-format GUID starts with the format code
                }
                format = (code, u16(body + 2), u32(body + 4), u16(body + 12), u16(body + 14))
            } else if id == "data" {
                guard let f = format else { throw AudioError.invalidHeader(source: source, detail: "data chunk before the fmt chunk") }
                let available = bytes.count - body
                var size = declared
                if declared == 0 || declared == 0xFFFF_FFFF {
                    size = available
                } else if declared > available {
                    throw AudioError.corrupt(source: source, detail: "the data chunk declares \(declared) bytes but the file holds \(available) (truncated)")
                }
                return try convert(bytes, from: body, count: size, format: f, source: source, maxDuration: maxDuration)
            }
            guard declared <= bytes.count else { break }
            offset = body + declared + (declared & 1)   // chunks are padded to even sizes
        }
        throw AudioError.corrupt(source: source, detail: format == nil ? "no fmt chunk" : "no data chunk")
    }

    private static func convert(_ bytes: [UInt8], from start: Int, count: Int,
                                format f: (code: Int, channels: Int, rate: Int, blockAlign: Int, bits: Int),
                                source: String, maxDuration: Double) throws -> PCMAudio {
        func bad(_ why: String) -> AudioError { .invalidHeader(source: source, detail: why) }
        guard f.channels >= 1 && f.channels <= maxChannels else { throw bad("\(f.channels) channels (1...\(maxChannels) supported)") }
        guard f.rate >= 1 && f.rate <= maxSampleRate else { throw bad("sample rate \(f.rate) Hz (1...\(maxSampleRate) supported)") }
        let isFloat: Bool
        switch (f.code, f.bits) {
        case (1, 8), (1, 16), (1, 24), (1, 32): isFloat = false
        case (3, 32), (3, 64): isFloat = true
        default:
            throw AudioError.unsupportedCodec(source: source, detail: "WAV format code \(f.code) with \(f.bits) bits (integer PCM 8/16/24/32 and float 32/64 are read)")
        }
        let width = f.bits / 8
        guard f.blockAlign == width * f.channels else { throw bad("block align \(f.blockAlign) for \(f.channels) × \(f.bits)-bit samples") }
        let frames = count / f.blockAlign
        guard frames > 0 else { throw AudioError.noSamples(source: source) }
        if maxDuration > 0 && Double(frames) > (maxDuration * Double(f.rate)).rounded(.up) {
            throw AudioError.tooLong(source: source, limitSeconds: maxDuration)
        }
        let n = frames * f.channels
        var out = [Float](repeating: 0, count: n)
        bytes.withUnsafeBufferPointer { raw in
            let p = raw.baseAddress! + start
            out.withUnsafeMutableBufferPointer { o in
                switch (isFloat, width) {
                case (false, 1): for i in 0..<n { o[i] = Float(Int(p[i]) - 128) / 128 }
                case (false, 2):
                    for i in 0..<n { o[i] = Float(Int16(bitPattern: UInt16(p[2 * i]) | UInt16(p[2 * i + 1]) << 8)) / 32768 }
                case (false, 3):
                    for i in 0..<n {
                        let u = Int32(p[3 * i]) << 8 | Int32(p[3 * i + 1]) << 16 | Int32(p[3 * i + 2]) << 24
                        o[i] = Float(u >> 8) / 8_388_608
                    }
                case (false, _):
                    for i in 0..<n {
                        let u = UInt32(p[4 * i]) | UInt32(p[4 * i + 1]) << 8 | UInt32(p[4 * i + 2]) << 16 | UInt32(p[4 * i + 3]) << 24
                        o[i] = Float(Int32(bitPattern: u)) / 2_147_483_648
                    }
                case (true, 4):
                    for i in 0..<n {
                        let u = UInt32(p[4 * i]) | UInt32(p[4 * i + 1]) << 8 | UInt32(p[4 * i + 2]) << 16 | UInt32(p[4 * i + 3]) << 24
                        o[i] = Float(bitPattern: u)
                    }
                default:
                    for i in 0..<n {
                        var u: UInt64 = 0
                        for b in 0..<8 { u |= UInt64(p[8 * i + b]) << (8 * b) }
                        o[i] = Float(Double(bitPattern: u))
                    }
                }
            }
        }
        if isFloat, let bad = out.firstIndex(where: { !$0.isFinite }) {
            throw AudioError.corrupt(source: source, detail: "sample \(bad) is not a finite number")
        }
        return PCMAudio(samples: out, channels: f.channels, sampleRate: f.rate)
    }

    /// A 16-bit PCM WAV file of interleaved samples (clipped to [−1, 1]): what the synthetic
    /// data sets write.
    public static func encode16(_ audio: PCMAudio) -> [UInt8] {
        let dataBytes = audio.samples.count * 2
        var out: [UInt8] = []
        out.reserveCapacity(44 + dataBytes)
        func put32(_ v: Int) { for s in stride(from: 0, to: 32, by: 8) { out.append(UInt8((v >> s) & 0xFF)) } }
        func put16(_ v: Int) { out.append(UInt8(v & 0xFF)); out.append(UInt8((v >> 8) & 0xFF)) }
        out += Array("RIFF".utf8); put32(36 + dataBytes); out += Array("WAVE".utf8)
        out += Array("fmt ".utf8); put32(16); put16(1); put16(audio.channels); put32(audio.sampleRate)
        put32(audio.sampleRate * audio.channels * 2); put16(audio.channels * 2); put16(16)
        out += Array("data".utf8); put32(dataBytes)
        for s in audio.samples {
            let v = Int((max(-1, min(1, s)) * 32767).rounded())
            put16(v & 0xFFFF)
        }
        return out
    }
}
