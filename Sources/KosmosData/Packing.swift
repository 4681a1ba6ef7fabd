import Foundation
import KosmosAudio
import KosmosTokenizers
import KosmosVision

/// The ids a packed sequence is built from. Image ids come from the caller because they depend on
/// the model's vocabulary layout (Kosmos-X appends `<image>`/`</image>`; Kosmos-2 has its own).
public struct PackingTokens: Equatable, Sendable {
    public var bos: Int?
    public var eos: Int?
    public var image: Int
    public var imageEnd: Int
    /// Placeholder id filled by the connector's N image embeddings.
    public var slot: Int
    public var pad: Int
    public var slotsPerImage: Int
    /// `<audio>`, `</audio>` and the slots per clip, for a model with an audio path (nil: none).
    public var audio: (open: Int, close: Int, slots: Int)?
    /// `<video>`, `</video>` for a model with video (nil: none); a video of T frames takes
    /// T × slotsPerImage slots.
    public var video: (open: Int, close: Int)?
    public init(bos: Int?, eos: Int?, image: Int, imageEnd: Int, slot: Int, pad: Int, slotsPerImage: Int,
                audio: (open: Int, close: Int, slots: Int)? = nil, video: (open: Int, close: Int)? = nil) {
        self.bos = bos; self.eos = eos; self.image = image; self.imageEnd = imageEnd
        self.slot = slot; self.pad = pad; self.slotsPerImage = slotsPerImage; self.audio = audio; self.video = video
    }

    public static func == (a: PackingTokens, b: PackingTokens) -> Bool {
        a.bos == b.bos && a.eos == b.eos && a.image == b.image && a.imageEnd == b.imageEnd && a.slot == b.slot && a.pad == b.pad
            && a.slotsPerImage == b.slotsPerImage && a.audio?.open == b.audio?.open && a.audio?.close == b.audio?.close
            && a.audio?.slots == b.audio?.slots && a.video?.open == b.video?.open && a.video?.close == b.video?.close
    }
    /// BOS / EOS from the tokenizer's declared special ids.
    public init(tokenizer: Tokenizer, image: Int, imageEnd: Int, slot: Int, pad: Int, slotsPerImage: Int,
                audio: (open: Int, close: Int, slots: Int)? = nil, video: (open: Int, close: Int)? = nil) {
        self.init(bos: tokenizer.specialIds.bos, eos: tokenizer.specialIds.eos, image: image, imageEnd: imageEnd,
                  slot: slot, pad: pad, slotsPerImage: slotsPerImage, audio: audio, video: video)
    }
}

public let ignoreIndex = -100

/// A sample tokenized and with its images decoded and preprocessed: what the packer places.
public struct PreparedSample: @unchecked Sendable {
    public var kind: SampleKind
    public var tokens: [Int]
    public var images: [PixelValues]
    /// Log-mel features of its audio clips, in order.
    public var audio: [LogMelFeatures] = []
    /// Its videos' preprocessed frames, in order.
    public var videos: [[PixelValues]] = []
    public var id: String
    /// The source iterator's position just after this sample: resuming there continues with the next one.
    public var positionAfter: DatasetPosition?
}

/// Sample -> `<s> text <image> [slot x N] </image> text </s>` ids plus preprocessed images.
public struct SamplePreparer {
    public let tokenizer: Tokenizer
    public let tokens: PackingTokens
    public let maxLength: Int
    public let preprocessor: CLIPPreprocessor
    /// Decodes and featurises audio segments (nil: samples with audio are skipped).
    public let audio: AudioPreparer?
    /// Decodes and samples video segments (nil: samples with video are skipped).
    public let video: VideoPreparer?

    public init(tokenizer: Tokenizer, tokens: PackingTokens, maxLength: Int, preprocessor: CLIPPreprocessor = CLIPPreprocessor(),
                audio: AudioPreparer? = nil, video: VideoPreparer? = nil) throws {
        guard maxLength >= 2, tokens.slotsPerImage >= 0 else {
            throw DataError.invalidArgument("maxLength must be at least 2 and slotsPerImage non-negative")
        }
        self.tokenizer = tokenizer; self.tokens = tokens; self.maxLength = maxLength; self.preprocessor = preprocessor
        self.audio = audio
        self.video = video
    }

    /// Ids only (no decoding): used by tests and by `inspect` to count tokens cheaply. A video takes
    /// `videoFrames[i]` frames' slots (the sampling's frame count when not given).
    public func tokenIds(_ sample: Sample, videoFrames: [Int] = []) -> [Int] {
        var ids: [Int] = [], videos = 0
        if let b = tokens.bos { ids.append(b) }
        for seg in sample.segments {
            switch seg {
            case .text(let t): ids += tokenizer.encode(t)
            case .image:
                ids.append(tokens.image)
                ids += [Int](repeating: tokens.slot, count: tokens.slotsPerImage)
                ids.append(tokens.imageEnd)
            case .audio:
                // Without audio ids the sample is skipped in `prepare`; counting stays cheap here.
                let a = tokens.audio ?? (open: tokens.image, close: tokens.imageEnd, slots: 0)
                ids.append(a.open)
                ids += [Int](repeating: tokens.slot, count: a.slots)
                ids.append(a.close)
            case .video:
                let v = tokens.video ?? (open: tokens.image, close: tokens.imageEnd)
                let frames = videos < videoFrames.count ? videoFrames[videos] : (video?.defaultFrames ?? 1)
                videos += 1
                ids.append(v.open)
                ids += [Int](repeating: tokens.slot, count: frames * tokens.slotsPerImage)
                ids.append(v.close)
            }
        }
        if let e = tokens.eos { ids.append(e) }
        return ids
    }

    /// Throws a `SkipReason`: an image that cannot be decoded, or an image sample that cannot fit.
    /// A text-only sample longer than `maxLength` is truncated to it (its tail is lost, as in GPT-style packing).
    public func prepare(_ sample: Sample, positionAfter: DatasetPosition? = nil) throws -> PreparedSample {
        if sample.audioCount > 0 && (audio == nil || tokens.audio == nil) { throw SkipReason.audioUnsupported }
        if sample.videoCount > 0 && (video == nil || tokens.video == nil) { throw SkipReason.videoUnsupported }
        var videos: [[PixelValues]] = []
        if let video {
            for seg in sample.segments {
                guard case .video(let src) = seg else { continue }
                videos.append(try video.frames(src))
            }
        }
        var ids = tokenIds(sample, videoFrames: videos.map(\.count))
        if ids.count > maxLength {
            if sample.imageCount > 0 || sample.audioCount > 0 || sample.videoCount > 0 { throw SkipReason.imageSampleTooLong }
            ids = Array(ids.prefix(maxLength))
        }
        var images: [PixelValues] = []
        for seg in sample.segments {
            guard case .image(let src) = seg else { continue }
            do {
                switch src {
                case .file(let u): images.append(try preprocessor.preprocess(contentsOf: u))
                case .data(let d, let n): images.append(try preprocessor.preprocess(data: d, source: n))
                case .decoded(let img): images.append(try preprocessor.preprocess(img, source: "synthetic"))
                }
            } catch let e as ImageError {
                if case .fileNotFound = e { throw SkipReason.missingImage }
                throw SkipReason.unreadableImage
            } catch {
                throw SkipReason.unreadableImage
            }
        }
        var clips: [LogMelFeatures] = []
        if let audio {
            for seg in sample.segments {
                guard case .audio(let src) = seg else { continue }
                clips.append(try audio.features(src))
            }
        }
        return PreparedSample(kind: sample.kind, tokens: ids, images: images, audio: clips, videos: videos, id: sample.id,
                              positionAfter: positionAfter)
    }
}

/// Audio segments → log-mel features: decoded (FFmpeg or WAV), resampled to the extractor's rate,
/// averaged to mono, featurised. Throws a `SkipReason` for a clip that cannot be used.
public struct AudioPreparer: Sendable {
    public let decoder: AudioDecoder
    public let extractor: LogMelExtractor

    public init(configuration: AudioFeatureConfiguration, maxDuration: Double) throws {
        decoder = AudioDecoder(sampleRate: configuration.samplingRate, maxDuration: maxDuration)
        extractor = try LogMelExtractor(configuration: configuration)
    }

    public func features(_ source: AudioSource) throws -> LogMelFeatures {
        extractor.features(try Self.decode(source, decoder: decoder))
    }

    /// The clip's mono samples at the decoder's rate.
    static func decode(_ source: AudioSource, decoder: AudioDecoder) throws -> [Float] {
        do {
            switch source {
            case .file(let u): return try decoder.decode(contentsOf: u).samples
            case .data(let d, let n): return try decoder.decode([UInt8](d), source: n).samples
            case .samples(let s, let rate, let n):
                guard rate != decoder.sampleRate else { return s }
                return try decoder.resample(PCMAudio(samples: s, channels: 1, sampleRate: rate), source: n).samples
            }
        } catch let e as AudioError {
            if case .fileNotFound = e { throw SkipReason.missingAudio }
            if case .tooLong = e { throw SkipReason.audioTooLong }
            throw SkipReason.unreadableAudio
        }
    }
}

/// Anything that hands out prepared samples in a fixed order: a synchronous source or the prefetching loader.
public protocol PreparedSampleSource: AnyObject {
    func next() -> PreparedSample?
    var skips: SkipCounts { get }
}

/// Reads and prepares on the caller's thread.
public final class SynchronousSource: PreparedSampleSource {
    public let iterator: DatasetIterator
    public let preparer: SamplePreparer
    private var prepareSkips = SkipCounts()
    public var skips: SkipCounts { var s = iterator.skips; s.merge(prepareSkips); return s }
    public init(iterator: DatasetIterator, preparer: SamplePreparer) { self.iterator = iterator; self.preparer = preparer }
    public func next() -> PreparedSample? {
        while let s = iterator.next() {
            do { return try preparer.prepare(s, positionAfter: iterator.position) } catch let r as SkipReason {
                prepareSkips.add(r)
            } catch { prepareSkips.add(.unreadableImage) }
        }
        return nil
    }
}

public struct PackerState: Codable, Equatable, Sendable {
    public var positions: [DatasetPosition?]
    public var tokensTaken: [Int]
}

public struct PackedSequence: @unchecked Sendable {
    /// Exactly `maxLength` ids, padded with `pad`.
    public var tokens: [Int]
    /// Real (non-padding) ids at the start of `tokens`.
    public var length: Int
    /// `labels[i]` is the id at i+1, or -100 (see `SequencePacker.labels`).
    public var labels: [Int]
    /// In the order of their `<image>` tokens.
    public var images: [PixelValues]
    /// In the order of their `<audio>` tokens.
    public var audio: [LogMelFeatures] = []
    /// In the order of their `<video>` tokens, each its frames.
    public var videos: [[PixelValues]] = []
    /// Ids of the samples packed, in order.
    public var sampleIds: [String]
    /// Real (non-pad) tokens per kind, for mixing statistics.
    public var tokensByKind: [SampleKind: Int]
}

/// Packs whole samples into fixed-length sequences, mixing sources by share of tokens.
/// A sample that does not fit in what is left of a sequence starts the next one (no splitting, so
/// every `<image>` has all its slots in the same sequence as its pixels).
public final class SequencePacker {
    public let maxLength: Int
    public let tokens: PackingTokens
    let sources: [PreparedSampleSource]
    let weights: [Double]
    public private(set) var tokensTaken: [Int]
    var exhausted: [Bool]
    var pending: (source: Int, sample: PreparedSample)?
    /// Per source, the iterator position after the last sample placed in an emitted sequence.
    var consumed: [DatasetPosition?]

    /// `weights` are normalised; e.g. [0.5, 0.5, 0.2] gives 5/12, 5/12, 2/12 of the tokens.
    /// `resume`: a `state` saved earlier; the sources must then be built with iterators resumed from
    /// `state.positions` (fresh iterators where a position is nil).
    public init(sources: [(PreparedSampleSource, Double)], maxLength: Int, tokens: PackingTokens,
                resume: PackerState? = nil) throws {
        guard !sources.isEmpty, sources.allSatisfy({ $0.1 > 0 && $0.1.isFinite }) else {
            throw DataError.invalidArgument("the packer needs at least one source, each with a positive weight")
        }
        guard maxLength >= 2 else { throw DataError.invalidArgument("maxLength must be at least 2") }
        let total = sources.reduce(0) { $0 + $1.1 }
        self.sources = sources.map(\.0)
        weights = sources.map { $0.1 / total }
        self.maxLength = maxLength; self.tokens = tokens
        tokensTaken = [Int](repeating: 0, count: sources.count)
        exhausted = [Bool](repeating: false, count: sources.count)
        consumed = [DatasetPosition?](repeating: nil, count: sources.count)
        if let r = resume {
            guard r.tokensTaken.count == sources.count, r.positions.count == sources.count else {
                throw DataError.invalidArgument("saved packer state has \(r.tokensTaken.count) sources, the packer \(sources.count)")
            }
            tokensTaken = r.tokensTaken
            consumed = r.positions
        }
    }

    /// What to save to resume exactly after the last emitted sequence. A sample read but not yet
    /// placed (the one that did not fit) is not counted as consumed, so it is read again on resume.
    public var state: PackerState { PackerState(positions: consumed, tokensTaken: tokensTaken) }

    public var skips: SkipCounts { sources.reduce(into: SkipCounts()) { $0.merge($1.skips) } }

    /// Deficit scheduling: the source furthest below its share of tokens goes next (ties: lowest
    /// index). Deterministic, so packing needs no random numbers to be reproducible.
    func pickSource() -> Int? {
        var best: Int?, bestRatio = Double.infinity
        for k in sources.indices where !exhausted[k] {
            let r = Double(tokensTaken[k]) / weights[k]
            if r < bestRatio { bestRatio = r; best = k }
        }
        return best
    }

    public func next() -> PackedSequence? {
        var ids: [Int] = [], images: [PixelValues] = [], clips: [LogMelFeatures] = [], videos: [[PixelValues]] = []
        var sampleIds: [String] = []
        var byKind: [SampleKind: Int] = [:]
        while true {
            if pending == nil {
                guard let k = pickSource() else { break }
                guard let s = sources[k].next() else { exhausted[k] = true; continue }
                pending = (k, s)
            }
            guard let (k, s) = pending else { break }
            var sampleTokens = s.tokens
            if sampleTokens.count > maxLength {
                // Preparer normally guarantees this; guard anyway since sources are pluggable.
                if !s.images.isEmpty || !s.audio.isEmpty || !s.videos.isEmpty { pending = nil; continue }
                sampleTokens = Array(sampleTokens.prefix(maxLength))
            }
            if ids.count + sampleTokens.count > maxLength { break }
            ids += sampleTokens; images += s.images; clips += s.audio; videos += s.videos; sampleIds.append(s.id)
            byKind[s.kind, default: 0] += sampleTokens.count
            tokensTaken[k] += sampleTokens.count
            if let p = s.positionAfter { consumed[k] = p }
            pending = nil
        }
        if ids.isEmpty { return nil }
        let real = ids.count
        ids += [Int](repeating: tokens.pad, count: maxLength - real)
        return PackedSequence(tokens: ids, length: real, labels: SequencePacker.labels(ids, realLength: real, tokens: tokens),
                              images: images, audio: clips, videos: videos, sampleIds: sampleIds, tokensByKind: byKind)
    }

    public func nextBatch(_ size: Int) -> [PackedSequence] {
        var batch: [PackedSequence] = []
        while batch.count < size, let s = next() { batch.append(s) }
        return batch
    }

    /// Next-token targets: labels[i] = ids[i+1], except -100 where position i is an image slot,
    /// where it predicts into an image slot (the `<image>` token and the slots themselves), on
    /// padding, and at the last real position (its next token is not in this sequence).
    public static func labels(_ ids: [Int], realLength: Int, tokens: PackingTokens) -> [Int] {
        var labels = [Int](repeating: ignoreIndex, count: ids.count)
        if realLength >= 2 {
            for i in 0..<(realLength - 1) {
                let target = ids[i + 1]
                if ids[i] == tokens.slot || target == tokens.slot { continue }
                labels[i] = target
            }
        }
        return labels
    }
}

/// Video segments → preprocessed frames: opened (FFmpeg), frames chosen by the sampling rule,
/// decoded, each through the CLIP preprocessing. A synthetic clip is first encoded to a real
/// container (MJPEG in AVI, through FFmpeg) in a temporary file. Throws a `SkipReason` for a video
/// that cannot be used.
public struct VideoPreparer: @unchecked Sendable {
    public let decoder: VideoDecoder
    public let sampling: FrameSampling
    public let preprocessor: CLIPPreprocessor

    public init(decoder: VideoDecoder = VideoDecoder(), sampling: FrameSampling, preprocessor: CLIPPreprocessor) {
        self.decoder = decoder; self.sampling = sampling; self.preprocessor = preprocessor
    }

    /// Frames a video is expected to give (for counting tokens before decoding).
    public var defaultFrames: Int {
        switch sampling {
        case .uniform(let n): return n
        case .rate(_, let cap): return cap
        }
    }

    public func frames(_ source: VideoSource) throws -> [PixelValues] {
        do {
            let video: VideoFile
            switch source {
            case .file(let u): video = try decoder.open(contentsOf: u)
            case .data(let d, let n): video = try decoder.open(data: d, source: n)
            case .synthetic(let seed, let count, let size):
                let clip = SyntheticMotion.clip(seed: seed, frames: count, size: size)
                let url = FileManager.default.temporaryDirectory.appendingPathComponent("kosmos-motion-\(UUID().uuidString).avi")
                defer { try? FileManager.default.removeItem(at: url) }
                try VideoDecoder.encode(clip.frames, fps: 8, format: .aviMJPEG, to: url)
                video = try decoder.open(contentsOf: url)
                // Read now: the file goes when this scope ends.
                return try video.frames(sampling).map { try preprocessor.preprocess($0.image, source: source.label) }
            }
            return try video.frames(sampling).map { try preprocessor.preprocess($0.image, source: source.label) }
        } catch let e as VideoError {
            if case .fileNotFound = e { throw SkipReason.missingVideo }
            throw SkipReason.unreadableVideo
        } catch is SkipReason {
            throw SkipReason.unreadableVideo
        } catch {
            throw SkipReason.unreadableVideo
        }
    }
}
