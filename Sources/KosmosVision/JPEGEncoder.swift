import CImageCodecsSupport
import Foundation

/// Baseline JPEG encoding through libjpeg-turbo (used to make benchmark and demo images).
public enum JPEGEncoder {
    public static func encode(_ image: RGBImage, quality: Int = 90) throws -> Data {
        var info = kv_image_info()
        var out: UnsafeMutablePointer<UInt8>?
        var size: UInt = 0
        let status = image.pixels.withUnsafeBufferPointer { px in
            kv_jpeg_encode(px.baseAddress, Int32(image.width), Int32(image.height), 3,
                           Int32(max(1, min(100, quality))), &out, &size, &info)
        }
        guard status == Int32(KV_OK), let bytes = out else {
            let detail = withUnsafeBytes(of: info.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            throw ImageError.corrupt(source: "JPEG encoder", format: "JPEG", detail: detail)
        }
        defer { kv_free(bytes) }
        return Data(bytes: bytes, count: Int(size))
    }
}
