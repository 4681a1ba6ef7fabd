import Foundation

public enum DataFormat: String, Sendable {
    case textJSONL = "text JSONL"
    case interleavedJSONL = "interleaved JSONL"
    case cocoCaptions = "COCO captions JSON"
    case audioCaptionsJSONL = "audio-caption JSONL"
    case videoCaptionsJSONL = "video-caption JSONL"
    case webDataset = "WebDataset tar shards"
    case syntheticShapes = "synthetic shapes"

    /// From the path: a folder of `.tar` files or a `.tar` is WebDataset, `.json` is COCO, and a
    /// `.jsonl`/`.jsonl.gz` is interleaved when its first record has "segments", audio captions when
    /// it has "audio", else text.
    /// `synthetic` or `synthetic:N` names the built-in shapes set.
    public static func detect(_ path: String) throws -> DataFormat {
        if path == "synthetic" || path.hasPrefix("synthetic:") { return .syntheticShapes }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw DataError.unreadable(path: path, reason: "no such file or folder")
        }
        if isDir.boolValue { return .webDataset }
        let lower = path.lowercased()
        if lower.hasSuffix(".tar") { return .webDataset }
        if lower.hasSuffix(".json") { return .cocoCaptions }
        if lower.hasSuffix(".jsonl") || lower.hasSuffix(".jsonl.gz") || lower.hasSuffix(".json.gz") {
            let lines = try JSONLines(url: URL(fileURLWithPath: path))
            for i in lines.ranges.indices {
                if let obj = try? lines.object(at: i) {
                    return obj["segments"] != nil ? .interleavedJSONL : obj["audio"] != nil ? .audioCaptionsJSONL
                        : obj["video"] != nil ? .videoCaptionsJSONL : .textJSONL
                }
            }
            return .textJSONL
        }
        throw DataError.unknownFormat(path: path)
    }

    public static func open(_ path: String, format: DataFormat? = nil, imageDirectory: String? = nil) throws -> Dataset {
        let f = try format ?? detect(path)
        let url = URL(fileURLWithPath: path)
        switch f {
        case .textJSONL: return try TextJSONLDataset(url: url)
        case .interleavedJSONL: return try InterleavedJSONLDataset(url: url)
        case .audioCaptionsJSONL: return try AudioCaptionJSONLDataset(url: url)
        case .videoCaptionsJSONL: return try VideoCaptionJSONLDataset(url: url)
        case .cocoCaptions: return try COCOCaptionsDataset(url: url, imageDirectory: imageDirectory.map { URL(fileURLWithPath: $0) })
        case .webDataset:
            var isDir: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
            return isDir.boolValue ? try WebDatasetCaptions(directory: url) : try WebDatasetCaptions(shards: [url])
        case .syntheticShapes:
            let n = path.split(separator: ":").dropFirst().first.flatMap { Int($0) } ?? 16
            return try SyntheticShapesDataset(scenes: n)
        }
    }
}

/// What `kosmos data inspect` prints: format, counts, a few samples, skip reasons.
public struct DataInspection: Sendable {
    public var format: DataFormat
    public var name: String
    public var records: Int
    public var usable: Int
    public var imagesReferenced: Int
    public var imagesDecoded: Int
    public var audioReferenced = 0
    public var audioDecoded = 0
    public var kinds: [SampleKind: Int]
    public var examples: [String]
    public var skips: SkipCounts

    /// Reads every record in file order (no shuffle) and, when `decodeImages`, decodes and
    /// preprocesses every image so unreadable ones show up in the skip counts.
    public static func run(path: String, imageDirectory: String? = nil, examples: Int = 3,
                           decodeImages: Bool = true) throws -> DataInspection {
        let format = try DataFormat.detect(path)
        let dataset = try DataFormat.open(path, format: format, imageDirectory: imageDirectory)
        let it = try DatasetIterator(dataset: dataset, shuffle: false)
        var r = DataInspection(format: format, name: dataset.name, records: dataset.count, usable: 0, imagesReferenced: 0,
                               imagesDecoded: 0, kinds: [:], examples: [], skips: SkipCounts())
        let preprocessor = CLIPPreprocessorBox()
        var extra = SkipCounts()
        while let s = it.next() {
            r.imagesReferenced += s.imageCount
            r.audioReferenced += s.audioCount
            if decodeImages {
                var bad = false
                for seg in s.segments {
                    guard case .image(let src) = seg else { continue }
                    if preprocessor.decodes(src) { r.imagesDecoded += 1 } else { bad = true }
                }
                if bad { extra.add(.unreadableImage); continue }
                var failure: SkipReason? = nil
                for seg in s.segments {
                    guard case .audio(let src) = seg else { continue }
                    do { _ = try AudioPreparer.decode(src, decoder: AudioDecoder()); r.audioDecoded += 1 } catch let reason as SkipReason {
                        failure = reason
                    } catch { failure = .unreadableAudio }
                }
                if let failure { extra.add(failure); continue }
            }
            r.usable += 1
            r.kinds[s.kind, default: 0] += 1
            if r.examples.count < examples {
                let parts = s.segments.map { seg -> String in
                    switch seg {
                    case .text(let t): return t.count > 120 ? String(t.prefix(120)).debugDescription + "…" : t.debugDescription
                    case .image(let src): return "<image \(src.label)>"
                    case .audio(let src): return "<audio \(src.label)>"
                    case .video(let src): return "<video \(src.label)>"
                    }
                }
                r.examples.append("[\(s.id)] " + parts.joined(separator: " "))
            }
        }
        r.skips = it.skips
        r.skips.merge(extra)
        return r
    }
}

import KosmosAudio
import KosmosVision

/// Decodes with CLIP preprocessing to check an image is usable.
struct CLIPPreprocessorBox {
    let preprocessor = CLIPPreprocessor()
    func decodes(_ src: ImageSource) -> Bool {
        switch src {
        case .file(let u): return (try? preprocessor.preprocess(contentsOf: u)) != nil
        case .data(let d, let n): return (try? preprocessor.preprocess(data: d, source: n)) != nil
        case .decoded: return true
        }
    }
}
