import Foundation

/// Everything that can go wrong reading an image. Each case names the file (or the caller's label
/// for in-memory data) so a failing item in a data set can be found.
public enum ImageError: Error, Equatable, CustomStringConvertible, LocalizedError {
    case fileNotFound(source: String)
    case unreadable(source: String, reason: String)
    case emptyFile(source: String)
    /// Neither a JPEG nor a PNG signature.
    case unknownFormat(source: String)
    /// The codec rejected the data (libjpeg / libpng message in `detail`).
    case corrupt(source: String, format: String, detail: String)
    /// The data ends before the image does.
    case truncated(source: String, format: String)
    /// The header declares more pixels than allowed; refused before any pixel buffer is allocated.
    case tooManyPixels(source: String, width: Int, height: Int, limit: Int)
    case invalidDimensions(source: String, width: Int, height: Int)
    /// A preprocessor configuration that cannot be used.
    case invalidConfiguration(source: String, detail: String)

    public var description: String {
        switch self {
        case .fileNotFound(let s): return "\(s): no such file"
        case .unreadable(let s, let r): return "\(s): cannot read file (\(r))"
        case .emptyFile(let s): return "\(s): file is empty (0 bytes)"
        case .unknownFormat(let s): return "\(s): not a JPEG, PNG, WebP, BMP, GIF or TIFF image (unrecognised signature); convert it to JPEG or PNG"
        case .corrupt(let s, let f, let d): return "\(s): corrupt \(f) data: \(d) (re-save or re-download the image)"
        case .truncated(let s, let f): return "\(s): \(f) data is truncated (file ends before the image does; re-download or re-save it)"
        case .tooManyPixels(let s, let w, let h, let l):
            return "\(s): image is \(w)x\(h) = \(w * h) pixels, over the limit of \(l) pixels"
        case .invalidDimensions(let s, let w, let h): return "\(s): invalid image dimensions \(w)x\(h)"
        case .invalidConfiguration(let s, let d): return "\(s): invalid preprocessor configuration: \(d)"
        }
    }

    public var errorDescription: String? { description }
}
