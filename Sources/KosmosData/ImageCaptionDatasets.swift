import Foundation
import KosmosAudio
import KosmosVision

/// COCO captions: `{"images": [{"id", "file_name"}], "annotations": [{"image_id", "caption"}]}`.
/// One sample per annotation (COCO has about five captions per image), in annotation order.
public final class COCOCaptionsDataset: Dataset {
    public let url: URL
    public let imageDirectory: URL
    struct Record { var file: String?; var caption: String? }
    let records: [Record]
    public private(set) var indexingSkips = SkipCounts()
    public var name: String { url.lastPathComponent }
    public var count: Int { records.count }

    public init(url: URL, imageDirectory: URL? = nil) throws {
        self.url = url
        self.imageDirectory = imageDirectory ?? url.deletingLastPathComponent()
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw DataError.unreadable(path: url.path, reason: error.localizedDescription)
        }
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              let images = root["images"] as? [Any], let annotations = root["annotations"] as? [Any] else {
            // The whole file is the unit here: without its index nothing can be read.
            throw DataError.unreadable(path: url.path, reason: "not a COCO captions file (needs \"images\" and \"annotations\" arrays)")
        }
        var files: [Int: String] = [:]
        for case let img as [String: Any] in images {
            if let id = (img["id"] as? NSNumber)?.intValue, let f = img["file_name"] as? String { files[id] = f }
        }
        // Unknown image ids and non-string captions are kept as records so they are counted when read.
        records = annotations.map { a in
            let obj = a as? [String: Any]
            let id = (obj?["image_id"] as? NSNumber)?.intValue
            return Record(file: id.flatMap { files[$0] }, caption: obj?["caption"] as? String)
        }
    }

    public func sample(at index: Int) throws -> Sample {
        let r = records[index]
        guard let file = r.file else { throw SkipReason.unknownImageId }
        guard let caption = r.caption?.trimmingCharacters(in: .whitespacesAndNewlines), !caption.isEmpty else {
            throw SkipReason.emptyCaption
        }
        let u = imageDirectory.appendingPathComponent(file)
        guard FileManager.default.fileExists(atPath: u.path) else { throw SkipReason.missingImage }
        return Sample(kind: .imageCaption, segments: [.image(.file(u)), .text(caption)], id: "\(name):\(index)")
    }
}

/// WebDataset shards: tar files where `KEY.jpg|jpeg|png` (or an audio clip, `KEY.wav|flac|mp3|ogg|
/// opus|m4a`) pairs with `KEY.txt` or `KEY.json` (a "caption" field). The key is the member path up to the first dot of its file name, as the
/// webdataset library groups members.
public final class WebDatasetCaptions: Dataset {
    public let shards: [URL]
    struct Record { var shard: Int; var key: String; var image: Range<Int>; var imageName: String
                    var caption: Range<Int>; var captionIsJSON: Bool; var isAudio: Bool; var isVideo: Bool = false }
    var shardData: [Data] = []
    var records: [Record] = []
    public private(set) var indexingSkips = SkipCounts()
    public var name: String { shards.count == 1 ? shards[0].lastPathComponent : "\(shards.count) tar shards" }
    public var count: Int { records.count }

    static let imageExtensions: Set<String> = ["jpg", "jpeg", "png"]
    static let audioExtensions: Set<String> = ["wav", "flac", "mp3", "ogg", "opus", "m4a"]
    static let videoExtensions: Set<String> = ["mp4", "webm", "mkv", "avi", "gif", "mov"]

    /// `shards` in the order given (sort names first for a stable order across machines).
    public init(shards: [URL]) throws {
        self.shards = shards
        for (si, url) in shards.enumerated() {
            let data: Data
            do { data = try Data(contentsOf: url, options: .mappedIfSafe) } catch {
                throw DataError.unreadable(path: url.path, reason: error.localizedDescription)
            }
            shardData.append(data)
            let archive = TarReader.read(data)
            if archive.corrupt { indexingSkips.add(.corruptArchive) }
            // Group consecutive members by key.
            var groups: [(key: String, members: [TarMember])] = []
            for m in archive.members where m.isFile {
                let (key, ext) = WebDatasetCaptions.split(m.name)
                if groups.last?.key == key { groups[groups.count - 1].members.append(m) } else { groups.append((key, [m])) }
                _ = ext
            }
            for g in groups {
                var image: TarMember?, caption: TarMember?, json = false, audio = false, video = false
                for m in g.members {
                    let ext = WebDatasetCaptions.split(m.name).ext.lowercased()
                    if WebDatasetCaptions.imageExtensions.contains(ext) { if image == nil { image = m; audio = false } }
                    else if WebDatasetCaptions.audioExtensions.contains(ext) { if image == nil { image = m; audio = true } }
                    else if WebDatasetCaptions.videoExtensions.contains(ext) { if image == nil { image = m; video = true } }
                    else if ext == "txt" { caption = m; json = false }
                    else if ext == "json", caption == nil { caption = m; json = true }
                }
                guard let im = image, let cap = caption else { indexingSkips.add(.unpairedMember); continue }
                records.append(Record(shard: si, key: g.key, image: im.range, imageName: "\(url.lastPathComponent)/\(im.name)",
                                      caption: cap.range, captionIsJSON: json, isAudio: audio, isVideo: video))
            }
        }
    }

    /// All `.tar` files in a folder, sorted by name.
    public convenience init(directory: URL) throws {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory.path) } catch {
            throw DataError.unreadable(path: directory.path, reason: error.localizedDescription)
        }
        try self.init(shards: names.filter { $0.hasSuffix(".tar") }.sorted().map { directory.appendingPathComponent($0) })
    }

    static func split(_ path: String) -> (key: String, ext: String) {
        let slash = path.lastIndex(of: "/").map { path.index(after: $0) } ?? path.startIndex
        guard let dot = path[slash...].firstIndex(of: ".") else { return (path, "") }
        return (String(path[..<dot]), String(path[path.index(after: dot)...]))
    }

    public func sample(at index: Int) throws -> Sample {
        let r = records[index]
        let data = shardData[r.shard]
        let capData = data.subdata(in: (data.startIndex + r.caption.lowerBound)..<(data.startIndex + r.caption.upperBound))
        var caption: String?
        if r.captionIsJSON {
            guard let obj = (try? JSONSerialization.jsonObject(with: capData)) as? [String: Any] else { throw SkipReason.malformedJSON }
            caption = obj["caption"] as? String
        } else {
            caption = String(data: capData, encoding: .utf8)
        }
        guard let c = caption?.trimmingCharacters(in: .whitespacesAndNewlines), !c.isEmpty else { throw SkipReason.emptyCaption }
        let img = data.subdata(in: (data.startIndex + r.image.lowerBound)..<(data.startIndex + r.image.upperBound))
        if r.isVideo {
            return Sample(kind: .videoCaption, segments: [.video(.data(img, name: r.imageName)), .text(c)],
                          id: "\(shards[r.shard].lastPathComponent):\(r.key)")
        }
        if r.isAudio {
            return Sample(kind: .audioCaption, segments: [.audio(.data(img, name: r.imageName)), .text(c)],
                          id: "\(shards[r.shard].lastPathComponent):\(r.key)")
        }
        return Sample(kind: .imageCaption, segments: [.image(.data(img, name: r.imageName)), .text(c)],
                      id: "\(shards[r.shard].lastPathComponent):\(r.key)")
    }
}

/// Scenes from `SyntheticShapes`, deterministic per seed: scene i uses seed `baseSeed + i`.
/// `.captions` yields one caption sample per scene; `.questions` one sample per (scene, question),
/// the text being "question answer".
public final class SyntheticShapesDataset: Dataset {
    public enum Mode: String, Sendable { case captions, questions }
    public static let questionsPerScene = 4
    public let scenes: Int
    public let baseSeed: UInt64
    public let mode: Mode
    public let width: Int, height: Int
    public var name: String { "synthetic shapes (\(mode.rawValue))" }
    public var count: Int { mode == .captions ? scenes : scenes * SyntheticShapesDataset.questionsPerScene }
    public var indexingSkips: SkipCounts { SkipCounts() }

    public init(scenes: Int, baseSeed: UInt64 = 0, mode: Mode = .captions, width: Int = 224, height: Int = 224) throws {
        guard scenes >= 0, scenes <= Int.max / 8, width >= 8, height >= 8 else {
            throw DataError.invalidArgument("synthetic shapes need scenes >= 0 and at least 8x8 pixels")
        }
        self.scenes = scenes; self.baseSeed = baseSeed; self.mode = mode; self.width = width; self.height = height
    }

    public func sample(at index: Int) throws -> Sample {
        let q = SyntheticShapesDataset.questionsPerScene
        let sceneIndex = mode == .captions ? index : index / q
        let scene = SyntheticShapes.scene(seed: baseSeed &+ UInt64(sceneIndex), width: width, height: height)
        let text: String
        if mode == .captions {
            text = scene.caption
        } else {
            let k = index % q
            guard k < scene.questions.count else { throw SkipReason.emptyText }
            text = scene.questions[k].question + " " + scene.questions[k].answer
        }
        return Sample(kind: .imageCaption, segments: [.image(.decoded(scene.image)), .text(text)],
                      id: "shapes:\(sceneIndex)" + (mode == .questions ? "/q\(index % q)" : ""))
    }
}

/// Clips from `SyntheticSounds`, deterministic per seed: clip i uses seed `baseSeed + i`; each
/// sample is the clip, then its caption (the events in order).
public final class SyntheticSoundsDataset: Dataset {
    public let clips: Int
    public let baseSeed: UInt64
    public let sampleRate: Int
    public let duration: Double
    public var name: String { "synthetic sounds" }
    public var count: Int { clips }
    public var indexingSkips: SkipCounts { SkipCounts() }

    public init(clips: Int, baseSeed: UInt64 = 0, sampleRate: Int = 16_000, duration: Double = 2) throws {
        guard clips >= 0, sampleRate >= 1000, duration >= 1.5 else {
            throw DataError.invalidArgument("synthetic sounds need clips >= 0, a rate of at least 1000 Hz and at least 1.5 s per clip")
        }
        self.clips = clips; self.baseSeed = baseSeed; self.sampleRate = sampleRate; self.duration = duration
    }

    public func sample(at index: Int) throws -> Sample {
        let clip = SyntheticSounds.clip(seed: baseSeed &+ UInt64(index), sampleRate: sampleRate, duration: duration)
        return Sample(kind: .audioCaption, segments: [.audio(.samples(clip.samples, rate: sampleRate, name: "sounds:\(index)")), .text(clip.caption)],
                      id: "sounds:\(index)")
    }
}

/// Clips from `SyntheticMotion`, deterministic per seed: clip i uses seed `baseSeed + i`; each sample
/// is the clip (encoded to a real container and decoded when prepared), then its caption.
public final class SyntheticMotionDataset: Dataset {
    public let clips: Int
    public let baseSeed: UInt64
    public let frames: Int
    public let size: Int
    public var name: String { "synthetic motion" }
    public var count: Int { clips }
    public var indexingSkips: SkipCounts { SkipCounts() }

    public init(clips: Int, baseSeed: UInt64 = 0, frames: Int = 8, size: Int = 32) throws {
        guard clips >= 0, frames >= 2, size >= 16 else {
            throw DataError.invalidArgument("synthetic motion needs clips >= 0, at least 2 frames and 16 pixels")
        }
        self.clips = clips; self.baseSeed = baseSeed; self.frames = frames; self.size = size
    }

    public func sample(at index: Int) throws -> Sample {
        let seed = baseSeed &+ UInt64(index)
        return Sample(kind: .videoCaption, segments: [.video(.synthetic(seed: seed, frames: frames, size: size)),
                                                      .text(SyntheticMotion.caption(seed: seed, frames: frames, size: size))],
                      id: "motion:\(index)")
    }
}
