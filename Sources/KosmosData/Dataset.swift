import Foundation
import KosmosVision

/// Where an image comes from. Datasets never decode: they only say where the bytes are, so that
/// decoding (the expensive part) can run on the loader's background threads.
public enum ImageSource: Equatable, @unchecked Sendable {
    case file(URL)
    /// Bytes already in memory (a WebDataset tar member), with a name for error messages.
    case data(Data, name: String)
    /// An image that exists only in memory (synthetic scenes).
    case decoded(RGBImage)

    public var label: String {
        switch self {
        case .file(let u): return u.path
        case .data(_, let n): return n
        case .decoded(let img): return "in-memory \(img.width)x\(img.height) image"
        }
    }
}

/// Where an audio clip comes from; decoded (and resampled) on the loader's threads like images.
public enum AudioSource: Equatable, @unchecked Sendable {
    case file(URL)
    /// Bytes already in memory (a WebDataset tar member), with a name for error messages.
    case data(Data, name: String)
    /// Mono samples that exist only in memory (synthetic clips), at `rate`.
    case samples([Float], rate: Int, name: String)

    public var label: String {
        switch self {
        case .file(let u): return u.path
        case .data(_, let n): return n
        case .samples(let s, let rate, let n): return "\(n) (\(s.count) samples at \(rate) Hz)"
        }
    }
}

/// Where a video comes from; decoded (frames sampled and preprocessed) on the loader's threads.
public enum VideoSource: Equatable, @unchecked Sendable {
    case file(URL)
    /// Bytes already in memory (a WebDataset tar member), with a name for error messages.
    case data(Data, name: String)
    /// A synthetic motion clip (`SyntheticMotion.clip(seed:frames:size:)`), encoded to a real
    /// container through FFmpeg and decoded back when prepared, as a file would be.
    case synthetic(seed: UInt64, frames: Int, size: Int)

    public var label: String {
        switch self {
        case .file(let u): return u.path
        case .data(_, let n): return n
        case .synthetic(let seed, _, _): return "motion:\(seed)"
        }
    }
}

public enum Segment: Equatable, @unchecked Sendable {
    case text(String)
    case image(ImageSource)
    case audio(AudioSource)
    case video(VideoSource)
}

/// The kinds the packer mixes by proportion of tokens.
public enum SampleKind: String, Codable, CaseIterable, Sendable {
    case text, imageCaption, interleaved, audioCaption, videoCaption
}

/// One training document, in reading order.
public struct Sample: Equatable, @unchecked Sendable {
    public var kind: SampleKind
    public var segments: [Segment]
    /// Where the sample came from ("file.jsonl:12", "shard-0.tar:000003"), for error messages and `inspect`.
    public var id: String
    public init(kind: SampleKind, segments: [Segment], id: String) {
        self.kind = kind; self.segments = segments; self.id = id
    }
    public var text: String {
        segments.compactMap { if case .text(let t) = $0 { return t } else { return nil } }.joined(separator: " ")
    }
    public var imageCount: Int { segments.filter { if case .image = $0 { return true } else { return false } }.count }
    public var audioCount: Int { segments.filter { if case .audio = $0 { return true } else { return false } }.count }
    public var videoCount: Int { segments.filter { if case .video = $0 { return true } else { return false } }.count }
}

/// Why a sample was skipped. Bad data is counted by reason, never fatal.
public enum SkipReason: String, Codable, CaseIterable, Sendable, Error {
    case malformedJSON = "malformed JSON"
    case missingText = "missing text field"
    case emptyText = "empty text"
    case emptyCaption = "empty caption"
    case missingImage = "missing image file"
    case unreadableImage = "unreadable image"
    case unknownImageId = "caption for an unknown image id"
    case unpairedMember = "tar member without a pair"
    case corruptArchive = "corrupt or truncated tar"
    case corruptGzip = "corrupt gzip"
    case malformedSegment = "malformed interleaved segment"
    case emptyDocument = "document without segments"
    case imageSampleTooLong = "image sample longer than the sequence"
    case missingAudio = "missing audio file"
    case unreadableAudio = "unreadable audio"
    case audioTooLong = "audio longer than max_duration"
    case audioUnsupported = "audio for a model without audio_config"
    case missingVideo = "missing video file"
    case unreadableVideo = "unreadable video"
    case videoUnsupported = "video for a model without video_config"
}

public struct SkipCounts: Codable, Equatable, Sendable, CustomStringConvertible {
    public private(set) var counts: [SkipReason: Int] = [:]
    public init() {}
    public mutating func add(_ reason: SkipReason, _ n: Int = 1) { counts[reason, default: 0] += n }
    public mutating func merge(_ other: SkipCounts) { for (k, v) in other.counts { add(k, v) } }
    public subscript(_ reason: SkipReason) -> Int { counts[reason] ?? 0 }
    public var total: Int { counts.values.reduce(0, +) }
    public var description: String {
        if counts.isEmpty { return "none" }
        return SkipReason.allCases.compactMap { r in counts[r].map { "\(r.rawValue): \($0)" } }.joined(separator: ", ")
    }
}

/// A data set as a list of candidate records, readable by index. Indexing is what makes shuffling,
/// sharding and resuming exact: the order is a pure function of (seed, epoch, rank, worldSize).
public protocol Dataset: AnyObject {
    var name: String { get }
    /// Candidate records (a record may still turn out to be bad and be skipped).
    var count: Int { get }
    /// Skips found while indexing (unpaired tar members, a corrupt archive tail, ...).
    var indexingSkips: SkipCounts { get }
    /// Throws a `SkipReason` for a bad record.
    func sample(at index: Int) throws -> Sample
}

/// A deterministic permutation of 0..<n: Fisher-Yates driven by splitmix64, so the order is the
/// same on every platform and Swift version (the standard library's shuffle makes no such promise).
public func seededPermutation(_ n: Int, seed: UInt64) -> [Int] {
    var order = Array(0..<max(0, n))
    var rng = SplitMix64(seed: seed)
    if n > 1 {
        for i in stride(from: n - 1, to: 0, by: -1) {
            let j = rng.below(i + 1)
            order.swapAt(i, j)
        }
    }
    return order
}

/// Where an iteration stands; saved in checkpoints and passed back to resume exactly.
public struct DatasetPosition: Codable, Equatable, Sendable {
    public var seed: UInt64
    public var rank: Int
    public var worldSize: Int
    public var epoch: Int
    /// Index into this rank's share of the epoch's order of the next record to read.
    public var cursor: Int
    public init(seed: UInt64, rank: Int, worldSize: Int, epoch: Int = 0, cursor: Int = 0) {
        self.seed = seed; self.rank = rank; self.worldSize = worldSize; self.epoch = epoch; self.cursor = cursor
    }
}

public enum DataError: Error, CustomStringConvertible, LocalizedError {
    case invalidArgument(String)
    case unreadable(path: String, reason: String)
    case unknownFormat(path: String)
    public var description: String {
        switch self {
        case .invalidArgument(let s): return s
        case .unreadable(let p, let r): return "\(p): cannot read (\(r))"
        case .unknownFormat(let p): return "\(p): cannot tell the data format (expected .jsonl, .jsonl.gz, .json, .tar or a folder of .tar shards)"
        }
    }
    public var errorDescription: String? { description }
}

/// Reads a data set in a seeded order, one rank's share of it, from any saved position.
/// Rank r of W takes positions r, r+W, r+2W, ... of each epoch's permutation: the shares are
/// disjoint and together cover every record exactly once per epoch.
public final class DatasetIterator {
    public let dataset: Dataset
    public let shuffle: Bool
    /// nil: cycle forever (still stops if a whole epoch yields nothing, so an all-bad set cannot hang).
    public let epochs: Int?
    public private(set) var position: DatasetPosition
    public private(set) var skips = SkipCounts()
    private var order: [Int] = []
    private var orderEpoch = -1
    private var yieldedThisEpoch = false

    public init(dataset: Dataset, seed: UInt64 = 0, rank: Int = 0, worldSize: Int = 1, shuffle: Bool = true,
                epochs: Int? = 1, resumeFrom: DatasetPosition? = nil) throws {
        guard worldSize >= 1, rank >= 0, rank < worldSize else {
            throw DataError.invalidArgument("rank \(rank) is not in 0..<\(worldSize)")
        }
        if let e = epochs, e < 0 { throw DataError.invalidArgument("epochs must not be negative") }
        if let p = resumeFrom {
            guard p.seed == seed, p.rank == rank, p.worldSize == worldSize, p.epoch >= 0, p.cursor >= 0 else {
                throw DataError.invalidArgument("saved position \(p) does not match seed \(seed), rank \(rank) of \(worldSize)")
            }
        }
        self.dataset = dataset; self.shuffle = shuffle; self.epochs = epochs
        position = resumeFrom ?? DatasetPosition(seed: seed, rank: rank, worldSize: worldSize)
        skips.merge(dataset.indexingSkips)
        // Resumed mid-epoch: what came before is unknown, so do not take an all-bad tail for an all-bad epoch.
        yieldedThisEpoch = position.cursor > 0
    }

    /// Records in this rank's share of an epoch.
    public var shareCount: Int {
        let n = dataset.count, r = position.rank, w = position.worldSize
        return n > r ? (n - r + w - 1) / w : 0
    }

    private func epochOrder(_ epoch: Int) -> [Int] {
        if orderEpoch != epoch {
            // Mix the epoch into the seed so each epoch has its own order.
            let s = position.seed &+ UInt64(epoch) &* 0x9E37_79B9_7F4A_7C15
            order = shuffle ? seededPermutation(dataset.count, seed: s) : Array(0..<dataset.count)
            orderEpoch = epoch
        }
        return order
    }

    public func next() -> Sample? {
        while true {
            if let e = epochs, position.epoch >= e { return nil }
            if position.cursor >= shareCount {
                // An epoch in which nothing was usable: stop instead of cycling forever.
                if (!yieldedThisEpoch && position.cursor > 0) || shareCount == 0 { return nil }
                position.epoch += 1; position.cursor = 0; yieldedThisEpoch = false
                continue
            }
            let index = epochOrder(position.epoch)[position.rank + position.cursor * position.worldSize]
            position.cursor += 1
            do {
                let s = try dataset.sample(at: index)
                yieldedThisEpoch = true
                return s
            } catch let r as SkipReason {
                skips.add(r)
            } catch {
                skips.add(.malformedJSON)
            }
        }
    }
}
