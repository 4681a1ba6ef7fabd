import CImageCodecsSupport
import Foundation
import KosmosFormats

/// PNG encoding through libpng (8-bit RGB, no interlacing), as lossless output for drawn images.
public enum PNGEncoder {
    public static func encode(_ image: RGBImage) throws -> Data {
        guard image.width > 0, image.height > 0, image.pixels.count == image.width * image.height * 3 else {
            throw ImageError.invalidDimensions(source: "PNG encoder", width: image.width, height: image.height)
        }
        var info = kv_image_info()
        var out: UnsafeMutablePointer<UInt8>?
        var size = 0
        let status = image.pixels.withUnsafeBufferPointer { px in
            kv_png_encode(px.baseAddress, Int32(image.width), Int32(image.height), 3, &out, &size, &info)
        }
        guard status == Int32(KV_OK), let bytes = out else {
            let detail = withUnsafeBytes(of: info.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            throw ImageError.corrupt(source: "PNG encoder", format: "PNG", detail: detail)
        }
        defer { kv_free(bytes) }
        return Data(bytes: bytes, count: size)
    }
}

/// Why an image could not be written, naming the destination and what to do.
public struct ImageWriteError: Error, CustomStringConvertible, LocalizedError, Equatable {
    public let destination: String
    public let reason: String
    public var description: String { "\(destination): cannot write the image: \(reason)" }
    public var errorDescription: String? { description }
}

/// Writes images as PNG or JPEG, chosen by the file name's extension.
public enum ImageWriter {
    public enum Format: Sendable { case png, jpeg }

    /// `.png` → PNG; `.jpg` / `.jpeg` → JPEG; anything else is an error that says so.
    public static func format(for url: URL) throws -> Format {
        switch url.pathExtension.lowercased() {
        case "png": return .png
        case "jpg", "jpeg": return .jpeg
        default:
            throw ImageWriteError(destination: url.path, reason: "unknown image type '.\(url.pathExtension)'; name the output .png or .jpg")
        }
    }

    /// Checks, before any work is done, that `url` names a .png/.jpg file in an existing directory
    /// and is not itself a directory; returns the format.
    @discardableResult
    public static func checkDestination(_ url: URL) throws -> Format {
        let format = try format(for: url)
        let directory = url.deletingLastPathComponent()
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ImageWriteError(destination: url.path, reason: "directory \(directory.path) does not exist; create it or choose another path")
        }
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw ImageWriteError(destination: url.path, reason: "it is a directory; give a file name ending in .png or .jpg")
        }
        return format
    }

    /// Encodes and writes `image` atomically (`AtomicFile`: a temporary file in the same directory,
    /// fsynced, then renamed), so a failure or a kill leaves any earlier file in place.
    public static func write(_ image: RGBImage, to url: URL, jpegQuality: Int = 92) throws {
        let format = try checkDestination(url)
        let data = format == .png ? try PNGEncoder.encode(image) : try JPEGEncoder.encode(image, quality: jpegQuality)
        do {
            try AtomicFile.write([UInt8](data), to: url)
        } catch {
            throw ImageWriteError(destination: url.path, reason: "\(error) (is the directory writable?)")
        }
    }
}
