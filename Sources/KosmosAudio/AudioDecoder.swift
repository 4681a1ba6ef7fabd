import CAudioCodecsSupport
import Foundation

/// A clip as the models read it: mono float32 samples at `sampleRate`, with what the file held.
public struct AudioClip: Sendable {
    public var samples: [Float]
    public var sampleRate: Int
    /// The file's own rate and channel count (channels are averaged to mono).
    public var sourceRate: Int
    public var sourceChannels: Int
    /// The codec that decoded it ("pcm_s16le" for WAV read natively, else FFmpeg's name).
    public var codec: String

    public var duration: Double { Double(samples.count) / Double(sampleRate) }

    public init(samples: [Float], sampleRate: Int, sourceRate: Int? = nil, sourceChannels: Int = 1, codec: String = "samples") {
        self.samples = samples
        self.sampleRate = sampleRate
        self.sourceRate = sourceRate ?? sampleRate
        self.sourceChannels = sourceChannels
        self.codec = codec
    }
}

/// Decodes audio files and bytes to mono clips at one sample rate. WAV is read natively
/// (`WAVReader`); every other container (MP3, FLAC, Ogg/Opus, Ogg/Vorbis, M4A/AAC, …) goes through
/// FFmpeg (libavformat, libavcodec) in the C layer CAudioCodecsSupport. Resampling is
/// libswresample's, with the settings the C header lists (the swr engine, filter size 32, phase
/// shift 10, linear interpolation, cutoff 0.97, Kaiser β 9, no dither, float internally), for WAV
/// and compressed files alike. Channels are averaged after resampling: mono = mean of channels.
public struct AudioDecoder: Sendable {
    public var sampleRate: Int
    /// Longest clip accepted, in seconds (0: no limit); longer files are refused while decoding.
    public var maxDuration: Double

    public init(sampleRate: Int = 16_000, maxDuration: Double = 600) {
        self.sampleRate = sampleRate
        self.maxDuration = maxDuration
    }

    /// Whether compressed formats can be read (FFmpeg linked in), and its library versions.
    public static var codecsVersion: String { String(cString: ka_version()) }
    public static var hasCodecs: Bool { !codecsVersion.lowercased().contains("not available") }

    public func decode(contentsOf url: URL) throws -> AudioClip {
        let source = url.path
        guard FileManager.default.fileExists(atPath: source) else { throw AudioError.fileNotFound(source: source) }
        let bytes: [UInt8]
        do {
            bytes = [UInt8](try Data(contentsOf: url, options: .mappedIfSafe))
        } catch {
            throw AudioError.unreadable(source: source, reason: error.localizedDescription)
        }
        return try decode(bytes, source: source)
    }

    /// Decodes bytes of any supported container; `source` names them in errors.
    public func decode(_ bytes: [UInt8], source: String) throws -> AudioClip {
        guard !bytes.isEmpty else { throw AudioError.emptyFile(source: source) }
        if WAVReader.recognises(bytes) {
            let pcm = try WAVReader.decode(bytes, source: source, maxDuration: maxDuration)
            let resampled = pcm.sampleRate == sampleRate ? pcm : try resample(pcm, source: source)
            return AudioClip(samples: resampled.mono(), sampleRate: sampleRate, sourceRate: pcm.sampleRate,
                             sourceChannels: pcm.channels, codec: "pcm")
        }
        let maxFrames = maxDuration > 0 ? Int((maxDuration * Double(sampleRate)).rounded(.up)) : 0
        var out = ka_audio()
        let status = bytes.withUnsafeBufferPointer { ka_decode_memory($0.baseAddress, $0.count, Int32(sampleRate), Int64(maxFrames), &out) }
        defer { ka_free(&out) }
        try Self.check(status, &out, source: source, limit: maxDuration)
        let count = Int(out.frames) * Int(out.channels)
        let pcm = PCMAudio(samples: Array(UnsafeBufferPointer(start: out.samples, count: count)),
                           channels: Int(out.channels), sampleRate: Int(out.output_rate))
        return AudioClip(samples: pcm.mono(), sampleRate: sampleRate, sourceRate: Int(out.source_rate),
                         sourceChannels: pcm.channels, codec: Self.text(&out.codec))
    }

    /// Interleaved samples at another rate, through libswresample.
    public func resample(_ pcm: PCMAudio, source: String) throws -> PCMAudio {
        var out = ka_audio()
        let status = pcm.samples.withUnsafeBufferPointer {
            ka_resample($0.baseAddress, Int64(pcm.frames), Int32(pcm.channels), Int32(pcm.sampleRate), Int32(sampleRate), &out)
        }
        defer { ka_free(&out) }
        try Self.check(status, &out, source: source, limit: maxDuration)
        return PCMAudio(samples: Array(UnsafeBufferPointer(start: out.samples, count: Int(out.frames) * pcm.channels)),
                        channels: pcm.channels, sampleRate: sampleRate)
    }

    static func text<T>(_ tuple: inout T) -> String {
        withUnsafeBytes(of: &tuple) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
    }

    static func check(_ status: Int32, _ out: inout ka_audio, source: String, limit: Double) throws {
        let message = text(&out.message)
        switch Int(status) {
        case Int(KA_OK): return
        case Int(KA_NOT_AVAILABLE): throw AudioError.codecsUnavailable(source: source)
        case Int(KA_OPEN_FAILED): throw AudioError.unknownFormat(source: source, detail: message.isEmpty ? "unrecognised data" : message)
        case Int(KA_NO_AUDIO): throw AudioError.noAudioStream(source: source)
        case Int(KA_UNSUPPORTED_CODEC): throw AudioError.unsupportedCodec(source: source, detail: message)
        case Int(KA_TOO_LONG): throw AudioError.tooLong(source: source, limitSeconds: limit)
        case Int(KA_EMPTY): throw AudioError.noSamples(source: source)
        case Int(KA_BAD_ARGUMENT): throw AudioError.invalidHeader(source: source, detail: message)
        case Int(KA_OUT_OF_MEMORY): throw AudioError.unreadable(source: source, reason: "out of memory: \(message)")
        default: throw AudioError.corrupt(source: source, detail: message)
        }
    }
}
