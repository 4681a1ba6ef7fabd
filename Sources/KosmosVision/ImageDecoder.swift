import CImageCodecs
import CImageCodecsSupport
import Foundation

/// An 8-bit RGB image, row-major, interleaved (height x width x 3), as `np.array(pil_image)` holds it.
public struct RGBImage: Equatable, Sendable {
    public let width: Int
    public let height: Int
    /// `width * height * 3` samples, R G B for each pixel, rows top to bottom.
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        self.width = width
        self.height = height
        self.pixels = pixels
    }
}

/// How `ImageDecoder` reads files.
public struct DecodeOptions: Sendable {
    /// Images whose header declares more pixels than this are refused before their pixels are
    /// allocated (PIL has a similar decompression-bomb check). Default 50 megapixels.
    public var maxPixels: Int = 50_000_000
    /// Rotate/flip JPEGs by their EXIF Orientation tag, as `PIL.ImageOps.exif_transpose` does.
    /// Off by default, because `PIL.Image.open(path).convert("RGB")` followed by transformers'
    /// CLIPImageProcessor does not apply it, and the default here reproduces that pipeline.
    public var applyEXIFOrientation: Bool = false
    /// Composite an image with alpha over opaque white instead of dropping the alpha, as
    /// transformers 5's `convert_to_rgb` does for the processors that call it (Kosmos-2.5):
    /// each channel becomes round-half-up((v·a + 255·(255 − a)) / 255), PIL's alpha_composite.
    public var alphaOnWhite: Bool = false

    public init(maxPixels: Int = 50_000_000, applyEXIFOrientation: Bool = false, alphaOnWhite: Bool = false) {
        self.maxPixels = maxPixels
        self.applyEXIFOrientation = applyEXIFOrientation
        self.alphaOnWhite = alphaOnWhite
    }

    /// One channel value over opaque white at alpha `a` (PIL's integer alpha_composite).
    @inlinable public static func onWhite(_ v: UInt8, alpha a: UInt8) -> UInt8 {
        let x = Int(v) * Int(a) + 255 * (255 - Int(a))
        return UInt8((2 * x + 255) / 510)
    }
}

/// Decodes JPEG (baseline, progressive, greyscale, CMYK), PNG (1-16 bit, palette, grey, alpha) and
/// WebP (lossy, lossless, alpha; still images) through libjpeg-turbo, libpng and libwebp, BMP and
/// GIF's first frame natively (BMPDecoder, GIFDecoder) into RGB the way `PIL.Image.open(...).convert("RGB")` does:
/// alpha is dropped (not composited; `DecodeOptions.alphaOnWhite` composites it over white), palettes are expanded, 16-bit samples keep their high byte
/// (16-bit greyscale is clipped to 255, as PIL's I;16 -> RGB conversion does), CMYK JPEGs are read
/// with Adobe's inverted convention and converted with PIL's formula.
public enum ImageDecoder {
    public enum Format: String, Sendable { case jpeg = "JPEG", png = "PNG", webp = "WebP", bmp = "BMP", gif = "GIF", tiff = "TIFF" }

    public static func decode(contentsOf url: URL, options: DecodeOptions = DecodeOptions()) throws -> RGBImage {
        let source = url.path
        let data: Data
        do {
            data = try Data(contentsOf: url, options: .mappedIfSafe)
        } catch {
            if !FileManager.default.fileExists(atPath: url.path) { throw ImageError.fileNotFound(source: source) }
            throw ImageError.unreadable(source: source, reason: error.localizedDescription)
        }
        return try decode(data: data, source: source, options: options)
    }

    /// Identifies the format from the leading bytes.
    public static func sniff(_ data: Data) -> Format? {
        if data.count >= 3, data[data.startIndex] == 0xFF, data[data.startIndex + 1] == 0xD8,
           data[data.startIndex + 2] == 0xFF {
            return .jpeg
        }
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        if data.count >= 8, data.prefix(8).elementsEqual(png) { return .png }
        let b = data.startIndex
        if data.count >= 12, data[b..<(b + 4)].elementsEqual("RIFF".utf8), data[(b + 8)..<(b + 12)].elementsEqual("WEBP".utf8) { return .webp }
        if data.count >= 26, data[b] == 0x42, data[b + 1] == 0x4D { return .bmp }
        if data.count >= 13, data[b..<(b + 6)].elementsEqual("GIF87a".utf8) || data[b..<(b + 6)].elementsEqual("GIF89a".utf8) { return .gif }
        if data.count >= 8, data[b..<(b + 4)].elementsEqual([0x49, 0x49, 0x2A, 0x00]) || data[b..<(b + 4)].elementsEqual([0x4D, 0x4D, 0x00, 0x2A]) {
            return .tiff
        }
        return nil
    }

    /// Decodes in-memory JPEG or PNG data; `source` names it in errors.
    public static func decode(data: Data, source: String, options: DecodeOptions = DecodeOptions()) throws -> RGBImage {
        if data.isEmpty { throw ImageError.emptyFile(source: source) }
        guard let format = sniff(data) else { throw ImageError.unknownFormat(source: source) }
        return try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> RGBImage in
            guard let base = raw.bindMemory(to: UInt8.self).baseAddress else {
                throw ImageError.emptyFile(source: source)
            }
            switch format {
            case .jpeg: return try decodeJPEG(base, raw.count, source: source, options: options)
            case .png: return try decodePNG(base, raw.count, source: source, options: options)
            case .webp: return try decodeWebP(base, raw.count, source: source, options: options)
            case .bmp: return try BMPDecoder.decode(UnsafeBufferPointer(start: base, count: raw.count), source: source, options: options)
            case .gif: return try GIFDecoder.decode(UnsafeBufferPointer(start: base, count: raw.count), source: source, options: options)
            case .tiff: return try decodeTIFF(base, raw.count, source: source, options: options)
            }
        }
    }

    // MARK: - JPEG

    private static let exifCapacity = 65_536

    private static func decodeJPEG(_ base: UnsafePointer<UInt8>, _ count: Int, source: String,
                                   options: DecodeOptions) throws -> RGBImage {
        var info = kv_image_info()
        var exif = [UInt8](repeating: 0, count: options.applyEXIFOrientation ? exifCapacity : 0)
        let headerStatus = exif.withUnsafeMutableBufferPointer { buf in
            kv_jpeg_read_header(base, count, &info, buf.baseAddress, Int32(buf.count))
        }
        try check(headerStatus, info, format: .jpeg, source: source)
        let exifLength = Int(info.exifLength)  // the decode call below resets info
        let (width, height, channels) = try checkedSize(info, source: source, options: options)
        let raw = try decodeBuffer(count: width * height * channels, source: source) { out, size in
            kv_jpeg_decode(base, count, &info, out, size)
        }
        try check(raw.status, info, format: .jpeg, source: source)
        var image: RGBImage
        switch channels {
        case 1: image = grayToRGB(raw.buffer, width: width, height: height)
        case 3: image = RGBImage(width: width, height: height, pixels: raw.buffer)
        case 4: image = cmykInvertedToRGB(raw.buffer, width: width, height: height)
        default:
            throw ImageError.corrupt(source: source, format: "JPEG", detail: "unsupported channel count \(channels)")
        }
        if options.applyEXIFOrientation {
            let orientation = EXIF.orientation(in: exif.prefix(exifLength))
            image = image.applyingOrientation(orientation)
        }
        return image
    }

    /// PIL reads every CMYK JPEG as "CMYK;I" (Adobe's inverted samples) and converts to RGB with
    /// r = 255 - k' - c*(255 - k')/255 (rounded divide), where c, k are the re-inverted samples.
    private static func cmykInvertedToRGB(_ cmyk: [UInt8], width: Int, height: Int) -> RGBImage {
        let n = width * height
        let rgb = [UInt8](unsafeUninitializedCapacity: n * 3) { out, initialized in
            cmyk.withUnsafeBufferPointer { src in
                for i in 0..<n {
                    let nk = Int(src[4 * i + 3])  // 255 - k, since the stored sample is inverted
                    for c in 0..<3 {
                        let v = 255 - Int(src[4 * i + c])
                        out[3 * i + c] = clampByte(nk - mulDiv255(v, nk))
                    }
                }
            }
            initialized = n * 3
        }
        return RGBImage(width: width, height: height, pixels: rgb)
    }

    // MARK: - PNG

    private static func decodePNG(_ base: UnsafePointer<UInt8>, _ count: Int, source: String,
                                  options: DecodeOptions) throws -> RGBImage {
        var info = kv_image_info()
        try check(kv_png_read_header(base, count, &info), info, format: .png, source: source)
        let (width, height, channels) = try checkedSize(info, source: source, options: options)
        let bytes = Int(info.bytesPerSample)
        let raw = try decodeBuffer(count: width * height * channels * bytes, source: source) { out, size in
            kv_png_decode(base, count, &info, out, size)
        }
        try check(raw.status, info, format: .png, source: source)
        let buf = raw.buffer
        let n = width * height
        switch (channels, bytes) {
        case (3, 1): return RGBImage(width: width, height: height, pixels: buf)
        case (1, 1): return grayToRGB(buf, width: width, height: height)
        case (1, 2):
            // PIL opens 16-bit grey as I;16 and its conversion to RGB clips at 255.
            var gray = [UInt8](repeating: 0, count: n)
            for i in 0..<n {
                let v = Int(buf[2 * i]) << 8 | Int(buf[2 * i + 1])
                gray[i] = UInt8(min(v, 255))
            }
            return grayToRGB(gray, width: width, height: height)
        case (2, 1), (4, 1):
            return withAlphaToRGB(buf, width: width, height: height, channels: channels, options: options)
        default:
            throw ImageError.corrupt(source: source, format: "PNG",
                                     detail: "unsupported layout: \(channels) channels of \(8 * bytes) bits")
        }
    }

    // MARK: - WebP

    /// Lossy and lossless WebP (still images) through libwebp, as Pillow decodes them: RGB, or RGBA
    /// whose alpha is dropped (or composited over white with `alphaOnWhite`) as a PNG's is.
    private static func decodeWebP(_ base: UnsafePointer<UInt8>, _ count: Int, source: String,
                                   options: DecodeOptions) throws -> RGBImage {
        let decoded = try decodeOptional(base, count, format: .webp, source: source, options: options,
                                         header: kv_webp_read_header, decode: kv_webp_decode)
        if decoded.channels == 3 { return RGBImage(width: decoded.width, height: decoded.height, pixels: decoded.samples) }
        return withAlphaToRGB(decoded.samples, width: decoded.width, height: decoded.height, channels: 4, options: options)
    }

    /// The samples of a codec that may be compiled out (libwebp, libtiff): its header, the size
    /// checks, the decode; a build without the library says so.
    private static func decodeOptional(
        _ base: UnsafePointer<UInt8>, _ count: Int, format: Format, source: String, options: DecodeOptions,
        header: (UnsafePointer<UInt8>?, Int, UnsafeMutablePointer<kv_image_info>?) -> Int32,
        decode: (UnsafePointer<UInt8>?, Int, UnsafeMutablePointer<kv_image_info>?, UnsafeMutablePointer<UInt8>?, Int) -> Int32
    ) throws -> (samples: [UInt8], width: Int, height: Int, channels: Int, info: kv_image_info) {
        var info = kv_image_info()
        let status = header(base, count, &info)
        if status == Int32(KV_UNAVAILABLE) {
            throw ImageError.corrupt(source: source, format: format.rawValue, detail: message(info))
        }
        try check(status, info, format: format, source: source)
        let (width, height, channels) = try checkedSize(info, source: source, options: options)
        let raw = try decodeBuffer(count: width * height * channels, source: source) { out, size in
            decode(base, count, &info, out, size)
        }
        try check(raw.status, info, format: format, source: source)
        return (raw.buffer, width, height, channels, info)
    }

    // MARK: - TIFF

    /// The first page of a TIFF through libtiff, as Pillow reads it: 8-bit grey, RGB or palette and
    /// 1-bit images, alpha dropped (or over white) as a PNG's; an unspecified extra sample
    /// (Pillow's RGBX) is dropped either way.
    private static func decodeTIFF(_ base: UnsafePointer<UInt8>, _ count: Int, source: String,
                                   options: DecodeOptions) throws -> RGBImage {
        let decoded = try decodeOptional(base, count, format: .tiff, source: source, options: options,
                                         header: kv_tiff_read_header, decode: kv_tiff_decode)
        let width = decoded.width, height = decoded.height
        switch decoded.channels {
        case 1: return grayToRGB(decoded.samples, width: width, height: height)
        case 3: return RGBImage(width: width, height: height, pixels: decoded.samples)
        default:
            var drop = options
            if decoded.info.lastIsAlpha == 0 { drop.alphaOnWhite = false }
            return withAlphaToRGB(decoded.samples, width: width, height: height, channels: decoded.channels, options: drop)
        }
    }

    /// Grey + alpha (2 channels) or RGBA (4) as RGB: the alpha dropped (PIL's convert("RGB")) or
    /// composited over white.
    static func withAlphaToRGB(_ buf: [UInt8], width: Int, height: Int, channels: Int, options: DecodeOptions) -> RGBImage {
        let n = width * height, colours = channels - 1
        var rgb = [UInt8](repeating: 0, count: n * 3)
        for i in 0..<n {
            let alpha = buf[channels * i + colours]
            for c in 0..<3 {
                let v = buf[channels * i + (colours == 1 ? 0 : c)]
                rgb[3 * i + c] = options.alphaOnWhite ? DecodeOptions.onWhite(v, alpha: alpha) : v
            }
        }
        return RGBImage(width: width, height: height, pixels: rgb)
    }

    // MARK: - Shared

    private static func check(_ status: Int32, _ info: kv_image_info, format: Format, source: String) throws {
        switch Int(status) {
        case Int(KV_OK): return
        case Int(KV_TRUNCATED): throw ImageError.truncated(source: source, format: format.rawValue)
        case Int(KV_NOT_THIS_FORMAT): throw ImageError.unknownFormat(source: source)
        default: throw ImageError.corrupt(source: source, format: format.rawValue, detail: message(info))
        }
    }

    private static func message(_ info: kv_image_info) -> String {
        withUnsafeBytes(of: info.message) { raw in
            let bytes = raw.prefix { $0 != 0 }
            return String(decoding: bytes, as: UTF8.self)
        }
    }

    private static func checkedSize(_ info: kv_image_info, source: String,
                                    options: DecodeOptions) throws -> (Int, Int, Int) {
        let w = Int(info.width), h = Int(info.height), c = Int(info.channels)
        guard w > 0, h > 0 else { throw ImageError.invalidDimensions(source: source, width: w, height: h) }
        // w, h < 2^31 each, so the product fits in Int on 64-bit platforms.
        if w * h > options.maxPixels {
            throw ImageError.tooManyPixels(source: source, width: w, height: h, limit: options.maxPixels)
        }
        guard (1...4).contains(c) else {
            throw ImageError.corrupt(source: source, format: "image", detail: "unsupported channel count \(c)")
        }
        return (w, h, c)
    }

    private static func decodeBuffer(count: Int, source: String,
                                     _ body: (UnsafeMutablePointer<UInt8>, Int) -> Int32) throws
        -> (buffer: [UInt8], status: Int32) {
        var status: Int32 = Int32(KV_OK)
        // Uninitialised allocation: the decoder writes every byte on success; on failure the buffer is
        // discarded (zero-filled first so nothing uninitialised can ever be read).
        var buffer = [UInt8](unsafeUninitializedCapacity: count) { buf, initialized in
            if let base = buf.baseAddress { status = body(base, count) }
            if status != Int32(KV_OK), let base = buf.baseAddress { base.initialize(repeating: 0, count: count) }
            initialized = count
        }
        if status != Int32(KV_OK) { buffer = [] }
        return (buffer, status)
    }

    static func grayToRGB(_ gray: [UInt8], width: Int, height: Int) -> RGBImage {
        let n = width * height
        let rgb = [UInt8](unsafeUninitializedCapacity: n * 3) { out, initialized in
            for i in 0..<n {
                let v = gray[i]
                out[3 * i] = v
                out[3 * i + 1] = v
                out[3 * i + 2] = v
            }
            initialized = n * 3
        }
        return RGBImage(width: width, height: height, pixels: rgb)
    }
}

/// PIL's MULDIV255: a * b / 255 rounded, computed with shifts.
@inline(__always) func mulDiv255(_ a: Int, _ b: Int) -> Int {
    let t = a * b + 128
    return ((t >> 8) + t) >> 8
}

@inline(__always) func clampByte(_ v: Int) -> UInt8 {
    UInt8(truncatingIfNeeded: v < 0 ? 0 : (v > 255 ? 255 : v))
}
