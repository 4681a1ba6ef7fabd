import Foundation

/// Kosmos-2.5's image preprocessing (transformers' `Kosmos2_5ImageProcessorPil` and its default,
/// torchvision-backed `Kosmos2_5ImageProcessor`): the image standardised by its own mean and
/// standard deviation, resized (aspect kept) to the largest grid of 16 × 16 patches with
/// rows · cols ≤ `maxPatches`, cut into patches, each flattened (row within the patch, column,
/// channel) behind its 1-based row and column ids, and zero rows padding the sequence to
/// `maxPatches`. docs/kosmos-2.5.md gives the rules.
public struct Kosmos25ImageProcessorConfig: Equatable, Sendable {
    /// Which transformers backend to equal. They differ in one place: the PIL backend divides by
    /// numpy's standard deviation (over n), the torchvision one by torch's (over n − 1).
    public typealias Backend = ImageBackend

    public var maxPatches = 4096
    public var patchHeight = 16
    public var patchWidth = 16
    public var doNormalize = true
    public var backend = Backend.torchvision

    public init() {}

    /// preprocessor_config.json (or processor_config.json's "image_processor"): `max_patches`,
    /// `patch_size`, `do_normalize`, and the backend from `image_processor_type`.
    public init(json: Data, source: String = "preprocessor_config.json") throws {
        guard var o = (try? JSONSerialization.jsonObject(with: json)) as? [String: Any] else {
            throw ImageError.invalidConfiguration(source: source, detail: "not a JSON object")
        }
        if let nested = o["image_processor"] as? [String: Any] {
            o = nested
        } else if o["processor_class"] != nil {
            throw ImageError.invalidConfiguration(source: source, detail: "a processor configuration without an image_processor section")
        }
        func int(_ key: String, _ value: Any?) throws -> Int? {
            guard let value, !(value is NSNull) else { return nil }
            guard let n = value as? NSNumber, n.doubleValue == n.doubleValue.rounded(), n.intValue > 0 else {
                throw ImageError.invalidConfiguration(source: source, detail: "\(key) must be a positive integer")
            }
            return n.intValue
        }
        if let m = try int("max_patches", o["max_patches"]) { maxPatches = m }
        if let p = o["patch_size"] as? [String: Any] {
            if let h = try int("patch_size.height", p["height"]) { patchHeight = h }
            if let w = try int("patch_size.width", p["width"]) { patchWidth = w }
        } else if o["patch_size"] != nil, !(o["patch_size"] is NSNull) {
            throw ImageError.invalidConfiguration(source: source, detail: "patch_size must be {\"height\": …, \"width\": …}")
        }
        if let b = o["do_normalize"] as? Bool { doNormalize = b }
        if let b = o["do_convert_rgb"] as? Bool, !b {
            throw ImageError.invalidConfiguration(source: source, detail: "do_convert_rgb false is not supported (the vision encoder takes 3 channels)")
        }
        if let type = o["image_processor_type"] as? String {
            switch type {
            case "Kosmos2_5ImageProcessorPil": backend = .pil
            case "Kosmos2_5ImageProcessor", "Kosmos2_5ImageProcessorFast": backend = .torchvision
            default: throw ImageError.invalidConfiguration(source: source, detail: "image_processor_type \(type) is not a Kosmos-2.5 image processor")
            }
        }
    }
}

/// One image as Kosmos-2.5's vision encoder takes it.
public struct FlattenedPatches: Equatable, Sendable {
    /// [maxPatches, 2 + patchHeight · patchWidth · 3], row-major: row id, column id, patch values.
    public var values: [Float]
    /// [maxPatches]: 1 for a patch, 0 for padding (transformers: a row whose values sum to 0).
    public var attentionMask: [Float]
    public let maxPatches: Int
    /// Values per row (2 + the patch's).
    public let depth: Int
    public let rows: Int
    public let columns: Int
    /// The resized image's size in pixels (rows · patch height × columns · patch width).
    public let width: Int
    public let height: Int
}

public struct Kosmos25ImageProcessor: Sendable {
    public var config: Kosmos25ImageProcessorConfig
    public var decodeOptions: DecodeOptions

    /// Images with alpha are composited over white whatever `decodeOptions` says, as the
    /// processor's convert_to_rgb does.
    public init(config: Kosmos25ImageProcessorConfig = Kosmos25ImageProcessorConfig(), decodeOptions: DecodeOptions = DecodeOptions()) {
        self.config = config
        var options = decodeOptions
        options.alphaOnWhite = true
        self.decodeOptions = options
    }

    /// The patch grid for an image of this size: the scale that makes rows · cols = maxPatches at
    /// the image's aspect, floored per axis and clamped to [1, maxPatches] (transformers' order of
    /// operations in double precision, so the same grid).
    public func grid(height: Int, width: Int) -> (rows: Int, columns: Int) {
        let ph = Double(config.patchHeight), pw = Double(config.patchWidth), m = Double(config.maxPatches)
        let scale = (m * (ph / Double(height)) * (pw / Double(width))).squareRoot()
        let rows = max(min(Int((scale * Double(height) / ph).rounded(.down)), config.maxPatches), 1)
        let columns = max(min(Int((scale * Double(width) / pw).rounded(.down)), config.maxPatches), 1)
        return (rows, columns)
    }

    /// The image's values [3, height, width] as float32, standardised by the mean and standard
    /// deviation of all its values, the deviation floored at 1/√n.
    public func standardised(_ image: RGBImage) -> [Float] {
        let n = image.width * image.height * 3
        var chw = [Float](repeating: 0, count: n)
        let plane = image.width * image.height
        for i in 0..<plane {
            for c in 0..<3 { chw[c * plane + i] = Float(image.pixels[i * 3 + c]) }
        }
        guard config.doNormalize else { return chw }
        var sum = 0.0
        for v in chw { sum += Double(v) }
        let mean = sum / Double(n)
        var squares = 0.0
        for v in chw { let d = Double(v) - mean; squares += d * d }
        let divisor = config.backend == .pil ? Double(n) : Double(max(n - 1, 1))
        let std = Float((squares / divisor).squareRoot())
        let floor = Float(1 / Double(n).squareRoot())
        let m = Float(mean), s = max(std, floor)
        for i in 0..<n { chw[i] = (chw[i] - m) / s }
        return chw
    }

    /// The processor's output for one decoded image.
    public func process(_ image: RGBImage) -> FlattenedPatches {
        let (rows, columns) = grid(height: image.height, width: image.width)
        let ph = config.patchHeight, pw = config.patchWidth
        let outH = rows * ph, outW = columns * pw
        let resized = AntialiasedBilinear.resize(standardised(image), channels: 3, height: image.height, width: image.width,
                                                 toHeight: outH, toWidth: outW)
        let patch = ph * pw * 3, depth = 2 + patch
        var values = [Float](repeating: 0, count: config.maxPatches * depth)
        var mask = [Float](repeating: 0, count: config.maxPatches)
        let plane = outH * outW
        for r in 0..<rows {
            for c in 0..<columns {
                let row = (r * columns + c) * depth
                values[row] = Float(r + 1)
                values[row + 1] = Float(c + 1)
                var k = row + 2
                for y in 0..<ph {
                    let line = (r * ph + y) * outW + c * pw
                    for x in 0..<pw {
                        for ch in 0..<3 { values[k] = resized[ch * plane + line + x]; k += 1 }
                    }
                }
            }
        }
        // transformers' mask: a row counts when its values (ids included) do not sum to zero.
        for p in 0..<config.maxPatches {
            var s: Float = 0
            for i in 0..<depth { s += values[p * depth + i] }
            mask[p] = s != 0 ? 1 : 0
        }
        return FlattenedPatches(values: values, attentionMask: mask, maxPatches: config.maxPatches, depth: depth,
                                rows: rows, columns: columns, width: outW, height: outH)
    }

    public func process(contentsOf url: URL) throws -> FlattenedPatches {
        process(try ImageDecoder.decode(contentsOf: url, options: decodeOptions))
    }

    public func process(data: Data, source: String) throws -> FlattenedPatches {
        process(try ImageDecoder.decode(data: data, source: source, options: decodeOptions))
    }
}

/// torch.nn.functional.interpolate(mode="bilinear", align_corners=False, antialias=True) on
/// float32 planes: a triangle filter whose support widens by the scale when shrinking, weights
/// normalised per output pixel; width first, then height, an axis of unchanged size left alone.
public enum AntialiasedBilinear {
    /// For each output index, the first input index and the normalised weights, computed in
    /// float32 as torch computes them for float32 input (in double a boundary tap of weight ~1e-5
    /// can come or go, which moves outputs by as much).
    static func weights(input: Int, output: Int) -> [(start: Int, weights: [Float])] {
        let scale = Float(input) / Float(output)
        let support: Float = scale >= 1 ? scale : 1
        let invScale: Float = scale >= 1 ? 1 / scale : 1
        return (0..<output).map { i in
            let center = scale * (Float(i) + 0.5)
            let lo = max(Int(center - support + 0.5), 0)
            let hi = min(Int(center + support + 0.5), input)
            var w = (lo..<hi).map { j -> Float in
                let x = abs((Float(j) - center + 0.5) * invScale)
                return x < 1 ? 1 - x : 0
            }
            var total: Float = 0
            for v in w { total += v }
            if total != 0 { w = w.map { $0 / total } }
            return (lo, w)
        }
    }

    /// `values` [channels, height, width] → [channels, toHeight, toWidth].
    public static func resize(_ values: [Float], channels: Int, height: Int, width: Int, toHeight: Int, toWidth: Int) -> [Float] {
        var current = values
        var w = width
        if toWidth != width {
            let taps = weights(input: width, output: toWidth)
            var out = [Float](repeating: 0, count: channels * height * toWidth)
            for line in 0..<(channels * height) {
                let src = line * width, dst = line * toWidth
                for (i, t) in taps.enumerated() {
                    var acc: Float = 0
                    for (j, wt) in t.weights.enumerated() { acc += wt * current[src + t.start + j] }
                    out[dst + i] = acc
                }
            }
            current = out
            w = toWidth
        }
        if toHeight != height {
            let taps = weights(input: height, output: toHeight)
            var out = [Float](repeating: 0, count: channels * toHeight * w)
            for c in 0..<channels {
                let src = c * height * w, dst = c * toHeight * w
                for (i, t) in taps.enumerated() {
                    for x in 0..<w {
                        var acc: Float = 0
                        for (j, wt) in t.weights.enumerated() { acc += wt * current[src + (t.start + j) * w + x] }
                        out[dst + i * w + x] = acc
                    }
                }
            }
            current = out
        }
        return current
    }
}
