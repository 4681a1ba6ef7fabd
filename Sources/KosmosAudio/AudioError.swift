import Foundation

/// Everything that can go wrong reading an audio clip. Each case names the file (or the caller's
/// label for in-memory data) so a failing item in a data set can be found.
public enum AudioError: Error, Equatable, CustomStringConvertible, LocalizedError {
    case fileNotFound(source: String)
    case unreadable(source: String, reason: String)
    case emptyFile(source: String)
    /// Not a container FFmpeg (or our WAV reader) recognises.
    case unknownFormat(source: String, detail: String)
    case noAudioStream(source: String)
    case unsupportedCodec(source: String, detail: String)
    /// The data is damaged or ends early (the codec's message in `detail`).
    case corrupt(source: String, detail: String)
    /// Decoded to zero samples.
    case noSamples(source: String)
    /// Longer than the caller's limit; refused before the rest is decoded.
    case tooLong(source: String, limitSeconds: Double)
    /// A header that declares an impossible rate, channel count or sample format.
    case invalidHeader(source: String, detail: String)
    /// FFmpeg is not linked into this build (compressed formats need it; WAV does not).
    case codecsUnavailable(source: String)
    case invalidConfiguration(source: String, detail: String)

    public var description: String {
        switch self {
        case .fileNotFound(let s): return "\(s): no such file"
        case .unreadable(let s, let r): return "\(s): cannot read file (\(r))"
        case .emptyFile(let s): return "\(s): file is empty (0 bytes)"
        case .unknownFormat(let s, let d): return "\(s): not an audio file this build reads (\(d)); WAV, MP3, FLAC, Ogg/Opus and M4A/AAC are supported"
        case .noAudioStream(let s): return "\(s): the file has no audio stream"
        case .unsupportedCodec(let s, let d): return "\(s): unsupported audio codec (\(d))"
        case .corrupt(let s, let d): return "\(s): corrupt or truncated audio data: \(d) (re-encode or re-download it)"
        case .noSamples(let s): return "\(s): the file decodes to no audio samples"
        case .tooLong(let s, let l): return "\(s): longer than the limit of \(Self.seconds(l)) s (raise max_duration to accept it)"
        case .invalidHeader(let s, let d): return "\(s): invalid audio header: \(d)"
        case .codecsUnavailable(let s): return "\(s): this build has no FFmpeg (libavformat), so only WAV files can be read; install FFmpeg's dev libraries and rebuild"
        case .invalidConfiguration(let s, let d): return "\(s): invalid audio feature configuration: \(d)"
        }
    }

    public var errorDescription: String? { description }

    public static func seconds(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(format: "%.2f", value)
    }
}
