import Foundation

/// Windows bitmaps as Pillow reads them and `convert("RGB")` gives them: the BITMAPINFOHEADER
/// family (40, 52, 56, 108 and 124-byte headers) and OS/2's 12-byte one; 1, 4 and 8 bits through
/// the palette, 24-bit BGR, 32-bit BGRX (the fourth byte dropped) and 32-bit bit fields with
/// 8-bit masks; bottom-up and top-down rows padded to 4 bytes. RLE-compressed bitmaps are refused.
enum BMPDecoder {
    static func decode(_ bytes: UnsafeBufferPointer<UInt8>, source: String, options: DecodeOptions) throws -> RGBImage {
        func fail(_ detail: String) -> ImageError { .corrupt(source: source, format: "BMP", detail: detail) }
        func u16(_ at: Int) throws -> Int {
            guard at + 2 <= bytes.count else { throw ImageError.truncated(source: source, format: "BMP") }
            return Int(bytes[at]) | Int(bytes[at + 1]) << 8
        }
        func u32(_ at: Int) throws -> Int { try u16(at) | (try u16(at + 2)) << 16 }
        func i32(_ at: Int) throws -> Int { Int(Int32(truncatingIfNeeded: try u32(at))) }
        let dataOffset = try u32(10), headerSize = try u32(14)
        let width: Int, rawHeight: Int, bits: Int, compression: Int
        var paletteCount = 0
        let paletteEntry: Int
        if headerSize == 12 {
            width = try u16(18); rawHeight = try u16(20); bits = try u16(24); compression = 0; paletteEntry = 3
        } else if [40, 52, 56, 108, 124].contains(headerSize) {
            width = try i32(18); rawHeight = try i32(22); bits = try u16(28); compression = try u32(30)
            paletteCount = try u32(46)
            paletteEntry = 4
        } else {
            throw fail("a DIB header of \(headerSize) bytes")
        }
        let height = abs(rawHeight), topDown = rawHeight < 0
        guard width > 0, height > 0 else { throw ImageError.invalidDimensions(source: source, width: width, height: height) }
        if width * height > options.maxPixels {
            throw ImageError.tooManyPixels(source: source, width: width, height: height, limit: options.maxPixels)
        }
        var masks: [Int]? = nil
        switch (compression, bits) {
        case (0, 1), (0, 4), (0, 8), (0, 24), (0, 32): break
        case (3, 32):
            // The masks follow a 40-byte header, or sit inside the larger ones at the same place.
            masks = [try u32(54), try u32(58), try u32(62)]
        default:
            throw fail("\(bits)-bit with compression \(compression) (RLE and 16-bit bitmaps are not read)")
        }
        var palette: [[UInt8]] = []
        if bits <= 8 {
            let start = 14 + headerSize + (masks == nil ? 0 : 12)
            // As Pillow: 2^bits colours unless the header says fewer, but no more than fit before the pixels.
            let count = min(paletteCount == 0 ? 1 << bits : min(paletteCount, 1 << bits), max(0, (dataOffset - start) / paletteEntry))
            for i in 0..<count {
                let p = start + i * paletteEntry
                guard p + 3 <= bytes.count else { throw ImageError.truncated(source: source, format: "BMP") }
                palette.append([bytes[p + 2], bytes[p + 1], bytes[p]])
            }
        }
        let stride = (width * bits + 31) / 32 * 4
        guard dataOffset + stride * height <= bytes.count else { throw ImageError.truncated(source: source, format: "BMP") }
        func shiftOf(_ mask: Int) throws -> Int {
            guard mask != 0 else { throw fail("a zero colour mask") }
            let shift = mask.trailingZeroBitCount
            guard mask >> shift == 0xFF else { throw fail(String(format: "colour mask 0x%08x is not 8 bits wide", mask)) }
            return shift
        }
        let shifts = try masks.map { try $0.map(shiftOf) }
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            let row = dataOffset + (topDown ? y : height - 1 - y) * stride
            for x in 0..<width {
                let out = (y * width + x) * 3
                switch bits {
                case 24, 32:
                    let p = row + x * (bits / 8)
                    if let shifts {
                        let v = Int(bytes[p]) | Int(bytes[p + 1]) << 8 | Int(bytes[p + 2]) << 16 | Int(bytes[p + 3]) << 24
                        for c in 0..<3 { pixels[out + c] = UInt8((v >> shifts[c]) & 0xFF) }
                    } else {
                        pixels[out] = bytes[p + 2]; pixels[out + 1] = bytes[p + 1]; pixels[out + 2] = bytes[p]
                    }
                default:
                    let bit = x * bits
                    let byte = bytes[row + bit / 8]
                    let index = Int(byte >> (8 - bits - bit % 8)) & ((1 << bits) - 1)
                    guard index < palette.count else { throw fail("palette index \(index) past its \(palette.count) colours") }
                    pixels[out] = palette[index][0]; pixels[out + 1] = palette[index][1]; pixels[out + 2] = palette[index][2]
                }
            }
        }
        return RGBImage(width: width, height: height, pixels: pixels)
    }
}
