import Foundation

/// Preprocessed image in the layout of HF `pixel_values` for one image: shape [3, height, width],
/// channel-first, row-major.
public struct PixelValues: Equatable, Sendable {
    public let shape: [Int]
    public var values: [Float]

    public init(shape: [Int], values: [Float]) {
        self.shape = shape
        self.values = values
    }
}

/// Which of transformers 5's two CLIP image processors to equal: `pil` is `CLIPImageProcessorPil`
/// (Pillow's resize, NumPy's arithmetic: what the Kosmos checkpoints were trained with), `torchvision`
/// is transformers 5's default `CLIPImageProcessor` (torch's uint8 resize, torchvision's crop, float32
/// fused normalisation). docs/images.md.
public enum ImageBackend: String, CaseIterable, Sendable {
    case pil, torchvision

    public init(name: String) throws {
        guard let backend = ImageBackend(rawValue: name.lowercased()) else {
            throw ImageError.invalidConfiguration(source: "image backend", detail: "'\(name)' is not an image backend: use pil or torchvision")
        }
        self = backend
    }
}

/// The fields of a transformers `preprocessor_config.json` that CLIPImageProcessor uses.
/// Defaults are CLIPImageProcessor's (OpenAI CLIP at 224 pixels).
public struct CLIPPreprocessorConfig: Equatable, Sendable {
    public enum Size: Equatable, Sendable {
        /// Resize so the shorter side is this long, keeping the aspect ratio (long side truncated).
        case shortestEdge(Int)
        /// Squash to exactly this size (Kosmos-2 fine-tunes).
        case fixed(height: Int, width: Int)
    }

    public var doResize = true
    public var size = Size.shortestEdge(224)
    /// PIL resampling filter id; only 3 (BICUBIC) is implemented.
    public var resample = 3
    public var doCenterCrop = true
    public var cropHeight = 224
    public var cropWidth = 224
    public var doRescale = true
    public var rescaleFactor = 1.0 / 255.0
    public var doNormalize = true
    public var imageMean: [Double] = [0.48145466, 0.4578275, 0.40821073]
    public var imageStd: [Double] = [0.26862954, 0.26130258, 0.27577711]
    /// Decoding always yields RGB (PIL's convert("RGB")), so this only records the file's value.
    public var doConvertRGB = true
    /// `"backend": "pil" | "torchvision"` (our key, named after transformers 5's `backend=`
    /// argument of `AutoImageProcessor.from_pretrained`); pil when absent.
    public var backend = ImageBackend.pil

    public init() {}

    /// Reads a preprocessor_config.json. Unknown keys are ignored; missing keys keep the defaults.
    public init(contentsOf url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            if !FileManager.default.fileExists(atPath: url.path) { throw ImageError.fileNotFound(source: url.path) }
            throw ImageError.unreadable(source: url.path, reason: error.localizedDescription)
        }
        try self.init(json: data, source: url.path)
    }

    public init(json: Data, source: String = "preprocessor_config.json") throws {
        func bad(_ detail: String) -> ImageError { .invalidConfiguration(source: source, detail: detail) }
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: json) } catch {
            throw bad("not valid JSON (\(error.localizedDescription))")
        }
        guard let d = object as? [String: Any] else { throw bad("top level is not a JSON object") }
        let text = String(decoding: json, as: UTF8.self)
        // Foundation's JSON number parsing is not always correctly rounded (it reads 0.00392156862745098
        // one ulp away from 1/255); Python's float() is. For the float fields re-read the literal text
        // with Swift's correctly rounded Double(String) so the arithmetic matches transformers exactly.
        func literals(_ key: String) -> [Double]? {
            let escaped = NSRegularExpression.escapedPattern(for: key)
            let pattern = "\"\(escaped)\"\\s*:\\s*(\\[[^\\]]*\\]|[-+0-9.eE]+)"
            guard let re = try? NSRegularExpression(pattern: pattern),
                  let m = re.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)),
                  let r = Range(m.range(at: 1), in: text) else { return nil }
            let parts = text[r].trimmingCharacters(in: CharacterSet(charactersIn: "[] \n\t\r"))
                .split(separator: ",").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            let values = parts.compactMap { Double($0) }
            return values.count == parts.count && !values.isEmpty ? values : nil
        }
        func bool(_ key: String) throws -> Bool? {
            guard let v = d[key], !(v is NSNull) else { return nil }
            guard let b = v as? Bool else { throw bad("\(key) must be true or false") }
            return b
        }
        func int(_ v: Any, _ key: String) throws -> Int {
            // The upper bound keeps a hostile config from asking for absurd allocations.
            guard let n = v as? NSNumber, !(v is Bool), let i = Int(exactly: n.doubleValue), i > 0, i <= 65_536 else {
                throw bad("\(key) must be an integer between 1 and 65536")
            }
            return i
        }
        func double(_ v: Any, _ key: String) throws -> Double {
            guard let n = v as? NSNumber, !(v is Bool) else { throw bad("\(key) must be a number") }
            return n.doubleValue
        }
        func triple(_ key: String) throws -> [Double]? {
            guard let v = d[key], !(v is NSNull) else { return nil }
            if let list = v as? [Any] {
                guard list.count == 3 else { throw bad("\(key) must have 3 values (one per RGB channel)") }
                return try list.map { try double($0, key) }
            }
            let x = try double(v, key)
            return [x, x, x]
        }
        if let v = try bool("do_resize") { doResize = v }
        if let v = try bool("do_center_crop") { doCenterCrop = v }
        if let v = try bool("do_rescale") { doRescale = v }
        if let v = try bool("do_normalize") { doNormalize = v }
        if let v = try bool("do_convert_rgb") { doConvertRGB = v }
        // transformers 4's torchvision processor was "CLIPImageProcessorFast"; 5's PIL one is
        // "CLIPImageProcessorPil". A plain "CLIPImageProcessor" (PIL in 4, torchvision in 5) keeps pil.
        switch d["image_processor_type"] as? String {
        case "CLIPImageProcessorFast": backend = .torchvision
        case "CLIPImageProcessorPil": backend = .pil
        default: break
        }
        if let v = d["backend"], !(v is NSNull) {
            guard let name = v as? String, let b = ImageBackend(rawValue: name) else { throw bad("backend must be \"pil\" or \"torchvision\"") }
            backend = b
        }
        if let v = d["resample"], !(v is NSNull) {
            guard let n = v as? NSNumber, !(v is Bool), let i = Int(exactly: n.doubleValue) else {
                throw bad("resample must be an integer PIL filter id")
            }
            resample = i
        }
        if let v = d["rescale_factor"], !(v is NSNull) {
            rescaleFactor = try double(v, "rescale_factor")
            if let exact = literals("rescale_factor"), exact.count == 1 { rescaleFactor = exact[0] }
        }
        if let v = try triple("image_mean") {
            imageMean = v
            if let exact = literals("image_mean"), exact.count == 3 { imageMean = exact }
        }
        if let v = try triple("image_std") {
            imageStd = v
            if let exact = literals("image_std"), exact.count == 3 { imageStd = exact }
        }
        guard imageStd.allSatisfy({ $0 != 0 }) else { throw bad("image_std must not contain 0") }
        if let v = d["size"], !(v is NSNull) {
            if let s = v as? [String: Any] {
                if let e = s["shortest_edge"] {
                    guard s["longest_edge"] == nil else { throw bad("size.longest_edge is not supported") }
                    size = .shortestEdge(try int(e, "size.shortest_edge"))
                } else if let h = s["height"], let w = s["width"] {
                    size = .fixed(height: try int(h, "size.height"), width: try int(w, "size.width"))
                } else {
                    throw bad("size needs \"shortest_edge\" or both \"height\" and \"width\"")
                }
            } else {
                // A bare integer is a shortest edge for CLIP (default_to_square = False).
                size = .shortestEdge(try int(v, "size"))
            }
        }
        // transformers' CLIPImageProcessor: Kosmos-2 configs may say use_square_size.
        if try bool("use_square_size") == true, case .shortestEdge(let e) = size {
            size = .fixed(height: e, width: e)
        }
        if let v = d["crop_size"], !(v is NSNull) {
            if let s = v as? [String: Any] {
                guard let h = s["height"], let w = s["width"] else {
                    throw bad("crop_size needs \"height\" and \"width\"")
                }
                cropHeight = try int(h, "crop_size.height")
                cropWidth = try int(w, "crop_size.width")
            } else {
                let c = try int(v, "crop_size")
                cropHeight = c
                cropWidth = c
            }
        }
        if doResize && resample != 3 {
            throw bad("resample = \(resample) is not supported (only 3, PIL BICUBIC, is implemented)")
        }
    }
}

/// transformers' CLIP image processors in Swift: resize (bicubic), center crop, rescale, normalise,
/// channel-first, as either backend computes them (`config.backend`). `pil` (CLIPImageProcessorPil):
/// Pillow's resize, rescale in double then float32, normalise in float32. `torchvision` (transformers
/// 5's default CLIPImageProcessor): torch's uint8 resize (`TorchResample`), torchvision's padding in
/// the crop, rescale and normalise fused in float32.
/// A file or buffer is decoded as transformers 5's `convert_to_rgb` converts it: transparency
/// (alpha, a palette's or a colour key's tRNS, a GIF's transparent index) composited onto white.
public struct CLIPPreprocessor: Sendable {
    public var config: CLIPPreprocessorConfig
    public var decodeOptions: DecodeOptions

    public init(config: CLIPPreprocessorConfig = CLIPPreprocessorConfig(), decodeOptions: DecodeOptions = DecodeOptions()) {
        self.config = config
        self.decodeOptions = decodeOptions
    }

    /// Output (height, width) of the resize step for an input of the given size, as transformers'
    /// `get_resize_output_image_size` computes it: short side = shortest_edge,
    /// long side = int(shortest_edge * long / short).
    public func resizedSize(width: Int, height: Int) -> (height: Int, width: Int) {
        switch config.size {
        case .fixed(let h, let w): return (h, w)
        case .shortestEdge(let s):
            let short = min(width, height), long = max(width, height)
            // Python: int(s * long / short) — exact product, correctly rounded division, truncation.
            let newLong = Int(Double(s * long) / Double(short))
            return width <= height ? (newLong, s) : (s, newLong)
        }
    }

    /// The resize step alone (8-bit, as PIL returns it, or torch for the torchvision backend).
    public func resize(_ image: RGBImage) -> RGBImage {
        let (h, w) = resizedSize(width: image.width, height: image.height)
        switch config.backend {
        case .pil: return PillowResample.resizeBicubic(image, width: w, height: h)
        case .torchvision: return TorchResample.resizeBicubic(image, width: w, height: h)
        }
    }

    /// Center crop as transformers does it: top = (H - crop_h) // 2, left likewise; when the crop is
    /// larger than the image the image is first zero-padded (top/left pad = ceil(diff / 2)).
    public func centerCrop(_ image: RGBImage) -> RGBImage {
        if config.backend == .torchvision { return torchvisionCenterCrop(image) }
        let ch = config.cropHeight, cw = config.cropWidth
        let h = image.height, w = image.width
        var top = floorDiv(h - ch, 2), left = floorDiv(w - cw, 2)
        if top >= 0, left >= 0, top + ch <= h, left + cw <= w {
            var out = [UInt8](repeating: 0, count: ch * cw * 3)
            for y in 0..<ch {
                let s = ((top + y) * w + left) * 3
                out.replaceSubrange(y * cw * 3..<(y + 1) * cw * 3, with: image.pixels[s..<s + cw * 3])
            }
            return RGBImage(width: cw, height: ch, pixels: out)
        }
        let nh = max(ch, h), nw = max(cw, w)
        let topPad = (nh - h + 1) / 2, leftPad = (nw - w + 1) / 2
        top += topPad
        left += leftPad
        let y0 = max(0, top), y1 = min(nh, top + ch), x0 = max(0, left), x1 = min(nw, left + cw)
        let oh = y1 - y0, ow = x1 - x0
        var out = [UInt8](repeating: 0, count: oh * ow * 3)
        for y in 0..<oh {
            for x in 0..<ow {
                // Position in the padded canvas, then in the original image.
                let sy = y0 + y - topPad, sx = x0 + x - leftPad
                guard sy >= 0, sy < h, sx >= 0, sx < w else { continue }
                for c in 0..<3 { out[(y * ow + x) * 3 + c] = image.pixels[(sy * w + sx) * 3 + c] }
            }
        }
        return RGBImage(width: ow, height: oh, pixels: out)
    }

    /// The torchvision backend's center crop: a dimension smaller than the crop is zero-padded
    /// first, floor((crop − size) / 2) before and the rest after; then top = int((H − crop_h) / 2),
    /// left likewise.
    func torchvisionCenterCrop(_ image: RGBImage) -> RGBImage {
        let ch = config.cropHeight, cw = config.cropWidth
        let padTop = ch > image.height ? (ch - image.height) / 2 : 0, padLeft = cw > image.width ? (cw - image.width) / 2 : 0
        let h = max(image.height, ch), w = max(image.width, cw)
        let top = (h - ch) / 2, left = (w - cw) / 2
        var out = [UInt8](repeating: 0, count: ch * cw * 3)
        for y in 0..<ch {
            let sy = top + y - padTop
            guard sy >= 0, sy < image.height else { continue }
            for x in 0..<cw {
                let sx = left + x - padLeft
                guard sx >= 0, sx < image.width else { continue }
                for c in 0..<3 { out[(y * cw + x) * 3 + c] = image.pixels[(sy * image.width + sx) * 3 + c] }
            }
        }
        return RGBImage(width: cw, height: ch, pixels: out)
    }

    /// One channel value, as the configured backend computes it from the 8-bit sample.
    func normalized(_ v: Int, channel c: Int) -> Float {
        let mean = Float(config.imageMean[c]), std = Float(config.imageStd[c])
        switch config.backend {
        case .pil:
            // NumPy: rescale in double, then float32; normalise in float32.
            var x = config.doRescale ? Float(Double(v) * config.rescaleFactor) : Float(v)
            if config.doNormalize { x = (x - mean) / std }
            return x
        case .torchvision:
            // Fused: mean and std (float32 tensors) times 1 / rescale_factor (a float32 scalar),
            // then (x − mean′) / std′ in float32; rescale alone is x · rescale_factor in float32.
            if config.doNormalize {
                let inverse = config.doRescale ? Float(1.0 / config.rescaleFactor) : 1
                return (Float(v) - mean * inverse) / (std * inverse)
            }
            return config.doRescale ? Float(v) * Float(config.rescaleFactor) : Float(v)
        }
    }

    /// Rescale + normalise + HWC -> CHW.
    public func normalize(_ image: RGBImage) -> PixelValues {
        let h = image.height, w = image.width, n = h * w
        // Per channel, the output is a function of the 8-bit value only: tabulate it.
        var table = [Float](repeating: 0, count: 3 * 256)
        for c in 0..<3 {
            for v in 0..<256 { table[c * 256 + v] = normalized(v, channel: c) }
        }
        let values = [Float](unsafeUninitializedCapacity: 3 * n) { out, initialized in
            image.pixels.withUnsafeBufferPointer { px in
                for c in 0..<3 {
                    let t = c * 256, o = c * n
                    for i in 0..<n { out[o + i] = table[t + Int(px[3 * i + c])] }
                }
            }
            initialized = 3 * n
        }
        return PixelValues(shape: [3, h, w], values: values)
    }

    /// The whole pipeline on a decoded image. Throws `tooManyPixels` when the resize would produce
    /// more pixels than `decodeOptions.maxPixels` (a 1 x 40000 strip resized to shortest edge 224
    /// would otherwise ask for gigabytes).
    public func preprocess(_ image: RGBImage, source: String = "image") throws -> PixelValues {
        var img = image
        if config.doResize {
            let (h, w) = resizedSize(width: image.width, height: image.height)
            if h * w > decodeOptions.maxPixels {
                throw ImageError.tooManyPixels(source: "\(source) resized", width: w, height: h, limit: decodeOptions.maxPixels)
            }
            img = resize(img)
        }
        if config.doCenterCrop { img = centerCrop(img) }
        return normalize(img)
    }

    /// The decoding the processor applies to files: `decodeOptions` with transparency over white
    /// (transformers 5's `convert_to_rgb`; transformers 4 dropped the alpha, as `decodeOptions`'
    /// default does for `ImageDecoder` alone, which reproduces PIL's `convert("RGB")`).
    public var fileDecodeOptions: DecodeOptions {
        var options = decodeOptions
        options.alphaOnWhite = true
        return options
    }

    /// Decode an image file and preprocess it.
    public func preprocess(contentsOf url: URL) throws -> PixelValues {
        try preprocess(try ImageDecoder.decode(contentsOf: url, options: fileDecodeOptions), source: url.path)
    }

    public func preprocess(data: Data, source: String) throws -> PixelValues {
        try preprocess(try ImageDecoder.decode(data: data, source: source, options: fileDecodeOptions), source: source)
    }
}

@inline(__always) func floorDiv(_ a: Int, _ b: Int) -> Int {
    let q = a / b
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
}
