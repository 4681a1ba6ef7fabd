import Foundation

/// Pillow's convolution resampler (`Image.resize(size, Image.BICUBIC)` on an 8-bit RGB image),
/// reimplemented from the facts of Pillow's libImaging/Resample.c so that outputs match bit for bit:
///  - separable: a horizontal pass over the source rows the vertical pass needs, then a vertical pass;
///  - the filter support (2 for bicubic, a = -0.5) is multiplied by the reduction factor when
///    downscaling, so every source pixel contributes (antialiasing);
///  - per output sample the window is [round(center - support), round(center + support)) clipped to
///    the image, weights are normalised to sum 1 in double precision, then converted to fixed point
///    with 22 fractional bits, rounding half away from zero;
///  - accumulation starts at 0.5 (1 << 21) and the result is shifted right by 22 and clamped to 0...255.
public enum PillowResample {
    static let precisionBits = 32 - 8 - 2

    /// Pillow's bicubic kernel, a = -0.5. The evaluation order is kept as Pillow writes it so the
    /// double-precision weights are identical.
    @inline(__always) static func bicubic(_ xIn: Double) -> Double {
        let a = -0.5
        let x = xIn < 0 ? -xIn : xIn
        if x < 1.0 { return ((a + 2.0) * x - (a + 3.0)) * x * x + 1 }
        if x < 2.0 { return (((x - 5) * x + 8) * x - 4) * a }
        return 0.0
    }

    struct Coefficients {
        var kernelSize: Int
        /// (first source index, number of taps) for each output index.
        var bounds: [(Int, Int)]
        /// kernelSize fixed-point weights per output index.
        var weights: [Int32]
        /// Fractional bits of the weights: 22 for Pillow, chosen per axis for torch (≤ 15 bits' worth).
        var precision: Int = PillowResample.precisionBits
    }

    /// Weights for resampling `inSize` samples onto `outSize` (box = [0, inSize)).
    static func coefficients(inSize: Int, outSize: Int) -> Coefficients {
        let support0 = 2.0
        // Pillow passes the box edges as C floats; for whole-image boxes they are exact integers.
        let in0 = 0.0, in1 = Double(Float(inSize))
        let scale = (in1 - in0) / Double(outSize)
        let filterScale = max(scale, 1.0)
        let support = support0 * filterScale
        let kernelSize = Int(support.rounded(.up)) * 2 + 1
        var bounds = [(Int, Int)](repeating: (0, 0), count: outSize)
        var weights = [Int32](repeating: 0, count: outSize * kernelSize)
        var k = [Double](repeating: 0, count: kernelSize)
        let ss = 1.0 / filterScale
        let one = Double(1 << precisionBits)
        for xx in 0..<outSize {
            let center = in0 + (Double(xx) + 0.5) * scale
            var xmin = Int(center - support + 0.5)  // C's (int) cast truncates toward zero
            if xmin < 0 { xmin = 0 }
            var xmax = Int(center + support + 0.5)
            if xmax > inSize { xmax = inSize }
            xmax -= xmin
            var ww = 0.0
            for x in 0..<xmax {
                let w = bicubic((Double(x + xmin) - center + 0.5) * ss)
                k[x] = w
                ww += w
            }
            for x in 0..<xmax where ww != 0.0 { k[x] /= ww }
            for x in 0..<xmax {
                let v = k[x] * one
                weights[xx * kernelSize + x] = Int32(v < 0 ? -0.5 + v : 0.5 + v)
            }
            bounds[xx] = (xmin, xmax)
        }
        return Coefficients(kernelSize: kernelSize, bounds: bounds, weights: weights)
    }

    @inline(__always) static func clip8(_ v: Int32, _ precision: Int32) -> UInt8 {
        let s = v >> precision
        return s < 0 ? 0 : (s > 255 ? 255 : UInt8(truncatingIfNeeded: s))
    }

    /// Resizes to `width` x `height` with Pillow's BICUBIC filter. Sizes must be positive.
    public static func resizeBicubic(_ image: RGBImage, width: Int, height: Int) -> RGBImage {
        if width == image.width && height == image.height { return image }
        guard width > 0, height > 0, image.width > 0, image.height > 0 else {
            return RGBImage(width: max(0, width), height: max(0, height),
                            pixels: [UInt8](repeating: 0, count: max(0, width) * max(0, height) * 3))
        }
        let horiz = coefficients(inSize: image.width, outSize: width)
        let vert = coefficients(inSize: image.height, outSize: height)
        let needHorizontal = width != image.width, needVertical = height != image.height
        // Pillow 10.1+ runs the vertical pass first when the height shrinks by more than twice as many
        // pixels as the width does (a speed choice that changes the rounding, so it is followed here).
        let shrinkY = image.height - height, shrinkX = image.width - width
        let horizontalFirst = !(shrinkY > 0 && shrinkY > shrinkX * 2)
        var pixels = image.pixels
        if horizontalFirst {
            var rowOffset = 0
            if needHorizontal {
                // Only the source rows the vertical pass reads.
                let yFirst = vert.bounds[0].0
                let yLast = vert.bounds[height - 1].0 + vert.bounds[height - 1].1
                pixels = horizontalPass(pixels, inWidth: image.width, rows: yFirst..<yLast, c: horiz, outWidth: width)
                rowOffset = yFirst
            }
            if needVertical {
                pixels = verticalPass(pixels, width: width, rowOffset: rowOffset, c: vert, outHeight: height)
            }
        } else {
            if needVertical {
                pixels = verticalPass(pixels, width: image.width, rowOffset: 0, c: vert, outHeight: height)
            }
            if needHorizontal {
                pixels = horizontalPass(pixels, inWidth: image.width, rows: 0..<height, c: horiz, outWidth: width)
            }
        }
        return RGBImage(width: width, height: height, pixels: pixels)
    }

    /// Horizontal pass over `rows` of an interleaved RGB image, as Pillow's loop does it: per output
    /// pixel, the taps of its window times the fixed-point weights, three channels at a time.
    static func horizontalPass(_ input: [UInt8], inWidth: Int, rows: Range<Int>, c: Coefficients,
                               outWidth: Int) -> [UInt8] {
        let ks = c.kernelSize
        let rowCount = rows.count
        let shift = Int32(c.precision), half = Int32(1) << (shift - 1)
        let starts = c.bounds.map { $0.0 }, counts = c.bounds.map { $0.1 }
        return [UInt8](unsafeUninitializedCapacity: rowCount * outWidth * 3) { out, initialized in
            input.withUnsafeBufferPointer { inp in
                c.weights.withUnsafeBufferPointer { kk in
                    starts.withUnsafeBufferPointer { starts in
                        counts.withUnsafeBufferPointer { counts in
                            var o = 0
                            for y in rows {
                                let rowBase = y * inWidth * 3
                                for xx in 0..<outWidth {
                                    let n = counts[xx]
                                    var s0 = half, s1 = half, s2 = half
                                    var p = rowBase + starts[xx] * 3
                                    var k = xx * ks
                                    for _ in 0..<n {
                                        let w = kk[k]
                                        s0 &+= Int32(inp[p]) &* w
                                        s1 &+= Int32(inp[p + 1]) &* w
                                        s2 &+= Int32(inp[p + 2]) &* w
                                        p += 3
                                        k += 1
                                    }
                                    out[o] = clip8(s0, shift)
                                    out[o + 1] = clip8(s1, shift)
                                    out[o + 2] = clip8(s2, shift)
                                    o += 3
                                }
                            }
                        }
                    }
                }
            }
            initialized = rowCount * outWidth * 3
        }
    }

    /// Vertical pass: output row yy is the weighted sum of source rows bounds[yy] (shifted by
    /// rowOffset). Accumulates a whole row per tap: the same integer sums as Pillow's per-pixel loop
    /// (integer addition is exact), but streaming through memory.
    static func verticalPass(_ input: [UInt8], width: Int, rowOffset: Int, c: Coefficients,
                             outHeight: Int) -> [UInt8] {
        let ks = c.kernelSize
        let rowLen = width * 3
        let shift = Int32(c.precision), half = Int32(1) << (shift - 1)
        var acc = [Int32](repeating: 0, count: rowLen)
        return [UInt8](unsafeUninitializedCapacity: outHeight * rowLen) { out, initialized in
            input.withUnsafeBufferPointer { inp in
                c.weights.withUnsafeBufferPointer { kk in
                    acc.withUnsafeMutableBufferPointer { acc in
                        for yy in 0..<outHeight {
                            let (ymin, n) = c.bounds[yy]
                            for i in 0..<rowLen { acc[i] = half }
                            for y in 0..<n {
                                let w = kk[yy * ks + y]
                                let src = UnsafeBufferPointer(rebasing: inp[((ymin - rowOffset + y) * rowLen)...])
                                for i in 0..<rowLen { acc[i] &+= Int32(src[i]) &* w }
                            }
                            let ob = yy * rowLen
                            for i in 0..<rowLen { out[ob + i] = clip8(acc[i], shift) }
                        }
                    }
                }
            }
            initialized = outHeight * rowLen
        }
    }
}

/// torch's antialiased bicubic resize of a uint8 image (`interpolate(..., mode="bicubic",
/// antialias=True)` on CPU, which torchvision's `resize` and so transformers 5's default
/// CLIPImageProcessor call on uint8 tensors), from the facts of ATen's UpSampleKernel.cpp:
///  - the same windows as Pillow's (support 2 × the reduction factor, bounds rounded the same way),
///    Keys' cubic with a = −0.5 written as ATen writes it (((a·x − 5a)·x + 8a)·x − 4a for 1 ≤ x < 2),
///    normalised to sum 1 in double;
///  - weights as int16 with a precision chosen per axis: the largest p < 22 with
///    round(max weight · 2^(p+1)) < 2^15, each weight rounded half away from zero;
///  - always the horizontal pass first, then the vertical one (Pillow may do vertical first), each
///    rounding to 8 bits: (Σ w·v + 2^(p−1)) >> p, clamped to 0…255.
public enum TorchResample {
    @inline(__always) static func bicubic(_ xIn: Double) -> Double {
        let a = -0.5
        let x = abs(xIn)
        if x < 1.0 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
        if x < 2.0 { return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }
        return 0.0
    }

    static func coefficients(inSize: Int, outSize: Int) -> PillowResample.Coefficients {
        let scale = Double(inSize) / Double(outSize)
        let support = scale >= 1.0 ? 2.0 * scale : 2.0
        let kernelSize = Int(support.rounded(.up)) * 2 + 1
        let invScale = scale >= 1.0 ? 1.0 / scale : 1.0
        var bounds = [(Int, Int)](repeating: (0, 0), count: outSize)
        var doubles = [Double](repeating: 0, count: outSize * kernelSize)
        var maxWeight = 0.0
        for i in 0..<outSize {
            let center = scale * (Double(i) + 0.5)
            let xmin = max(Int(center - support + 0.5), 0)
            let xsize = min(max(min(Int(center + support + 0.5), inSize) - xmin, 0), kernelSize)
            var total = 0.0
            for j in 0..<xsize {
                let w = bicubic((Double(j + xmin) - center + 0.5) * invScale)
                doubles[i * kernelSize + j] = w
                total += w
            }
            if total != 0.0 {
                for j in 0..<xsize {
                    doubles[i * kernelSize + j] /= total
                    maxWeight = max(maxWeight, doubles[i * kernelSize + j])
                }
            }
            bounds[i] = (xmin, xsize)
        }
        var precision = 0
        while precision < 22 {
            if Int(0.5 + maxWeight * Double(1 << (precision + 1))) >= 1 << 15 { break }
            precision += 1
        }
        let one = Double(1 << precision)
        let weights = doubles.map { w -> Int32 in
            let v = w * one
            return Int32(Int16(truncatingIfNeeded: Int(v < 0 ? -0.5 + v : 0.5 + v)))
        }
        return PillowResample.Coefficients(kernelSize: kernelSize, bounds: bounds, weights: weights, precision: precision)
    }

    /// Resizes to `width` x `height`. Sizes must be positive.
    public static func resizeBicubic(_ image: RGBImage, width: Int, height: Int) -> RGBImage {
        if width == image.width && height == image.height { return image }
        guard width > 0, height > 0, image.width > 0, image.height > 0 else {
            return RGBImage(width: max(0, width), height: max(0, height),
                            pixels: [UInt8](repeating: 0, count: max(0, width) * max(0, height) * 3))
        }
        var pixels = image.pixels
        var currentWidth = image.width
        if width != image.width {
            let horizontal = coefficients(inSize: image.width, outSize: width)
            pixels = PillowResample.horizontalPass(pixels, inWidth: image.width, rows: 0..<image.height, c: horizontal, outWidth: width)
            currentWidth = width
        }
        if height != image.height {
            let vertical = coefficients(inSize: image.height, outSize: height)
            pixels = PillowResample.verticalPass(pixels, width: currentWidth, rowOffset: 0, c: vertical, outHeight: height)
        }
        return RGBImage(width: width, height: height, pixels: pixels)
    }
}
