import Foundation

/// The lines of a JSONL file (plain, or gzip when it starts with the gzip magic), as byte ranges.
/// Blank lines are not records (a trailing newline is not a sample).
struct JSONLines {
    let data: Data
    let ranges: [Range<Int>]
    var skips = SkipCounts()

    init(url: URL) throws {
        var raw: Data
        do { raw = try Data(contentsOf: url, options: .mappedIfSafe) } catch {
            throw DataError.unreadable(path: url.path, reason: error.localizedDescription)
        }
        if Gzip.isGzip(raw) {
            do { raw = try Gzip.decompress(raw) } catch {
                // The whole file is unusable; report it as one skip rather than failing the run.
                skips.add(.corruptGzip)
                raw = Data()
            }
        }
        data = raw
        var rs: [Range<Int>] = []
        raw.withUnsafeBytes { (b: UnsafeRawBufferPointer) in
            var start = 0
            for i in 0...b.count {
                if i == b.count || b[i] == 0x0A {
                    var s = start, e = i
                    while s < e, b[s] == 0x20 || b[s] == 0x09 || b[s] == 0x0D { s += 1 }
                    while e > s, b[e - 1] == 0x20 || b[e - 1] == 0x09 || b[e - 1] == 0x0D { e -= 1 }
                    if e > s { rs.append(start..<i) }
                    start = i + 1
                }
            }
        }
        ranges = rs
    }

    func object(at i: Int) throws -> [String: Any] {
        let r = ranges[i]
        let line = data.subdata(in: (data.startIndex + r.lowerBound)..<(data.startIndex + r.upperBound))
        guard let obj = try? JSONSerialization.jsonObject(with: line, options: []) as? [String: Any] else {
            throw SkipReason.malformedJSON
        }
        return obj
    }
}

/// `{"text": ...}` per line: the Pile's format.
public final class TextJSONLDataset: Dataset {
    public let url: URL
    let lines: JSONLines
    public var name: String { url.lastPathComponent }
    public var count: Int { lines.ranges.count }
    public var indexingSkips: SkipCounts { lines.skips }

    public init(url: URL) throws {
        self.url = url
        lines = try JSONLines(url: url)
    }

    public func sample(at index: Int) throws -> Sample {
        let obj = try lines.object(at: index)
        guard let text = obj["text"] as? String else { throw SkipReason.missingText }
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { throw SkipReason.emptyText }
        return Sample(kind: .text, segments: [.text(text)], id: "\(name):\(index + 1)")
    }
}

/// A JSONL file whose records name media files relative to the file's folder (absolute paths are
/// used as given): the common part of the interleaved and audio-caption sets.
public class MediaJSONLDataset {
    public let url: URL
    let lines: JSONLines
    let baseDirectory: URL
    public var name: String { url.lastPathComponent }
    public var count: Int { lines.ranges.count }
    public var indexingSkips: SkipCounts { lines.skips }

    public init(url: URL) throws {
        self.url = url
        baseDirectory = url.deletingLastPathComponent()
        lines = try JSONLines(url: url)
    }

    /// The file a record names, or `missing` thrown when it does not exist.
    func file(_ path: String, missing: SkipReason) throws -> URL {
        let u = path.hasPrefix("/") ? URL(fileURLWithPath: path) : baseDirectory.appendingPathComponent(path)
        guard FileManager.default.fileExists(atPath: u.path) else { throw missing }
        return u
    }
}

/// `{"segments": [{"text": ...}, {"image": "relative/path.jpg"}, {"audio": "clip.wav"}, ...]}` per
/// line; image and audio paths are relative to the JSONL file's folder.
public final class InterleavedJSONLDataset: MediaJSONLDataset, Dataset {
    public func sample(at index: Int) throws -> Sample {
        let obj = try lines.object(at: index)
        guard let list = obj["segments"] as? [Any] else { throw SkipReason.malformedSegment }
        var segments: [Segment] = []
        for item in list {
            guard let seg = item as? [String: Any] else { throw SkipReason.malformedSegment }
            if let text = seg["text"] as? String {
                // An empty text segment carries nothing; dropping it keeps the document valid.
                if !text.isEmpty { segments.append(.text(text)) }
            } else if let path = seg["image"] as? String, !path.isEmpty {
                segments.append(.image(.file(try file(path, missing: .missingImage))))
            } else if let path = seg["audio"] as? String, !path.isEmpty {
                segments.append(.audio(.file(try file(path, missing: .missingAudio))))
            } else if let path = seg["video"] as? String, !path.isEmpty {
                segments.append(.video(.file(try file(path, missing: .missingVideo))))
            } else {
                throw SkipReason.malformedSegment
            }
        }
        guard !segments.isEmpty else { throw SkipReason.emptyDocument }
        return Sample(kind: .interleaved, segments: segments, id: "\(name):\(index + 1)")
    }
}

/// Audio-caption pairs, `{"audio": "clip.wav", "text": "a high beep"}` per line ("caption" is read
/// when there is no "text"); paths relative to the JSONL file's folder. The sample is the clip,
/// then its text.
public final class AudioCaptionJSONLDataset: MediaJSONLDataset, Dataset {
    public func sample(at index: Int) throws -> Sample {
        let (path, caption) = try captioned(index, key: "audio")
        return Sample(kind: .audioCaption, segments: [.audio(.file(try file(path, missing: .missingAudio))), .text(caption)],
                      id: "\(name):\(index + 1)")
    }
}

/// Video-caption pairs, `{"video": "clip.mp4", "text": "a red circle moves left"}` per line
/// ("caption" read when there is no "text"); paths relative to the JSONL file's folder.
public final class VideoCaptionJSONLDataset: MediaJSONLDataset, Dataset {
    public func sample(at index: Int) throws -> Sample {
        let (path, caption) = try captioned(index, key: "video")
        return Sample(kind: .videoCaption, segments: [.video(.file(try file(path, missing: .missingVideo))), .text(caption)],
                      id: "\(name):\(index + 1)")
    }
}

extension MediaJSONLDataset {
    /// A media-caption record: the path under `key` and the trimmed "text" (or "caption").
    func captioned(_ index: Int, key: String) throws -> (path: String, caption: String) {
        let obj = try lines.object(at: index)
        guard let path = obj[key] as? String, !path.isEmpty else { throw SkipReason.malformedSegment }
        guard let text = (obj["text"] ?? obj["caption"]) as? String else { throw SkipReason.missingText }
        let caption = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !caption.isEmpty else { throw SkipReason.emptyCaption }
        return (path, caption)
    }
}
