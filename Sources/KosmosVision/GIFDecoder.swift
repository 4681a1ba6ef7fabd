import Foundation

/// The first frame of a GIF as Pillow gives it (`Image.open(f).convert("RGB")`, frame 0): the
/// logical screen filled with the frame's transparent index (else index 0, as Pillow fills it), the frame's
/// indices at its offset (interlaced rows put back in order), then each index through the frame's
/// local colour table or else the global one (indices past the table are black). Animation is
/// not read: later frames are ignored (the video issue handles animation).
enum GIFDecoder {
    static func decode(_ bytes: UnsafeBufferPointer<UInt8>, source: String, options: DecodeOptions) throws -> RGBImage {
        func fail(_ detail: String) -> ImageError { .corrupt(source: source, format: "GIF", detail: detail) }
        let truncated = ImageError.truncated(source: source, format: "GIF")
        var at = 6
        func byte() throws -> Int {
            guard at < bytes.count else { throw truncated }
            defer { at += 1 }
            return Int(bytes[at])
        }
        func u16() throws -> Int { try byte() | (try byte()) << 8 }
        func table(_ size: Int) throws -> [[UInt8]] {
            guard at + 3 * size <= bytes.count else { throw truncated }
            defer { at += 3 * size }
            return (0..<size).map { i in [bytes[at + 3 * i], bytes[at + 3 * i + 1], bytes[at + 3 * i + 2]] }
        }
        func skipSubBlocks() throws {
            while true {
                let n = try byte()
                if n == 0 { return }
                at += n
                guard at <= bytes.count else { throw truncated }
            }
        }
        let width = try u16(), height = try u16()
        let flags = try byte()
        _ = try byte()  // the background index: Pillow does not use it for the first frame
        _ = try byte()
        guard width > 0, height > 0 else { throw ImageError.invalidDimensions(source: source, width: width, height: height) }
        if width * height > options.maxPixels {
            throw ImageError.tooManyPixels(source: source, width: width, height: height, limit: options.maxPixels)
        }
        let global = flags & 0x80 != 0 ? try table(2 << (flags & 7)) : []
        var transparent: Int? = nil
        while true {
            switch try byte() {
            case 0x21:  // extension
                let label = try byte()
                if label == 0xF9 {
                    let size = try byte()
                    guard size >= 4, at + size <= bytes.count else { throw truncated }
                    if bytes[at] & 1 != 0 { transparent = Int(bytes[at + 3]) }
                    at += size
                }
                try skipSubBlocks()
            case 0x2C:  // the first image
                let left = try u16(), top = try u16(), w = try u16(), h = try u16(), f = try byte()
                let local = f & 0x80 != 0 ? try table(2 << (f & 7)) : nil
                let palette = local ?? global
                let indices = try lzw(bytes, at: &at, count: w * h, fail: fail, truncated: truncated)
                // Pillow fills the screen around a smaller first frame with the transparent index, else
                // index 0 (not the background index; gif_reference.py checks both).
                var canvas = [Int](repeating: transparent ?? 0, count: width * height)
                let order = f & 0x40 != 0 ? interlacedRows(h) : Array(0..<h)
                for (k, y) in order.enumerated() where top + y < height {
                    for x in 0..<w where left + x < width {
                        canvas[(top + y) * width + left + x] = indices[k * w + x]
                    }
                }
                var pixels = [UInt8](repeating: 0, count: width * height * 3)
                // Over white, the transparent index is white (PIL: P with a transparency entry,
                // converted to RGBA and composited).
                let clear = options.alphaOnWhite ? transparent : nil
                for (i, index) in canvas.enumerated() {
                    if index == clear {
                        pixels[3 * i] = 255; pixels[3 * i + 1] = 255; pixels[3 * i + 2] = 255
                    } else if index < palette.count {
                        pixels[3 * i] = palette[index][0]; pixels[3 * i + 1] = palette[index][1]; pixels[3 * i + 2] = palette[index][2]
                    }
                }
                return RGBImage(width: width, height: height, pixels: pixels)
            case 0x3B:
                throw fail("no image in the file")
            default:
                throw fail("an unknown block at byte \(at - 1)")
            }
        }
    }

    /// The rows of an interlaced image in the order they are stored (every 8th from 0, every 8th
    /// from 4, every 4th from 2, every 2nd from 1).
    static func interlacedRows(_ h: Int) -> [Int] {
        Array(stride(from: 0, to: h, by: 8)) + Array(stride(from: 4, to: h, by: 8)) + Array(stride(from: 2, to: h, by: 4)) + Array(stride(from: 1, to: h, by: 2))
    }

    /// GIF's variable-width LZW over the image's sub-blocks: `count` indices (missing ones are 0,
    /// as a short image is padded).
    static func lzw(_ bytes: UnsafeBufferPointer<UInt8>, at: inout Int, count: Int,
                    fail: (String) -> ImageError, truncated: ImageError) throws -> [Int] {
        guard at < bytes.count else { throw truncated }
        let minimum = Int(bytes[at]); at += 1
        guard (1...11).contains(minimum) else { throw fail("an LZW code size of \(minimum)") }
        var data: [UInt8] = []
        while true {
            guard at < bytes.count else { throw truncated }
            let n = Int(bytes[at]); at += 1
            if n == 0 { break }
            guard at + n <= bytes.count else { throw truncated }
            data.append(contentsOf: bytes[at..<(at + n)])
            at += n
        }
        let clear = 1 << minimum, end = clear + 1
        var prefix = [Int](repeating: -1, count: 4096), suffix = [Int](repeating: 0, count: 4096)
        for i in 0..<clear { suffix[i] = i }
        var next = end + 1, size = minimum + 1, previous = -1
        var out: [Int] = []
        out.reserveCapacity(count)
        var buffer = 0, bits = 0, position = 0
        var stack: [Int] = []
        decoding: while out.count < count {
            while bits < size {
                guard position < data.count else { break decoding }
                buffer |= Int(data[position]) << bits; bits += 8; position += 1
            }
            let code = buffer & ((1 << size) - 1)
            buffer >>= size; bits -= size
            if code == clear { next = end + 1; size = minimum + 1; previous = -1; continue }
            if code == end { break }
            var entry: Int
            if code < next {
                entry = code
            } else if code == next && previous >= 0 {
                entry = -1  // KwKwK: previous string + its own first index
            } else {
                throw fail("an LZW code \(code) beyond the table (\(next))")
            }
            stack.removeAll(keepingCapacity: true)
            var c = entry >= 0 ? entry : previous
            while c >= clear { stack.append(suffix[c]); c = prefix[c] }
            stack.append(c)
            let head = c
            if entry < 0 { stack.insert(head, at: 0) }
            for v in stack.reversed() where out.count < count { out.append(v) }
            if previous >= 0 && next < 4096 {
                prefix[next] = previous; suffix[next] = head; next += 1
                if next == 1 << size && size < 12 { size += 1 }
            }
            previous = entry >= 0 ? entry : next - 1
        }
        if out.count < count { out += [Int](repeating: 0, count: count - out.count) }
        return out
    }
}
