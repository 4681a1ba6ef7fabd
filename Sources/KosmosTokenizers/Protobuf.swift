import Foundation

/// Minimal protobuf wire-format reader: just enough for SentencePiece's `ModelProto`.
/// Every read is bounds-checked and throws `TokenizerError.malformedProtobuf` with the byte offset.
struct ProtoReader {
    let bytes: [UInt8]
    var pos: Int
    let end: Int
    /// Offset of `bytes[0]` in the whole file, so errors in nested messages report file offsets.
    let base: Int

    init(_ bytes: [UInt8], base: Int = 0) {
        self.bytes = bytes
        self.pos = 0
        self.end = bytes.count
        self.base = base
    }

    var atEnd: Bool { pos >= end }

    func fail(_ reason: String) -> TokenizerError {
        .malformedProtobuf(offset: base + pos, reason: reason)
    }

    mutating func varint() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard pos < end else { throw fail("truncated varint") }
            let b = bytes[pos]
            pos += 1
            if shift >= 64 { throw fail("varint longer than 10 bytes") }
            result |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return result }
            shift += 7
        }
    }

    /// Returns (field number, wire type).
    mutating func tag() throws -> (Int, Int) {
        let start = pos
        let t = try varint()
        let field = Int(truncatingIfNeeded: t >> 3)
        guard field > 0, field < (1 << 29) else {
            pos = start
            throw fail("invalid field number \(t >> 3)")
        }
        return (field, Int(t & 7))
    }

    mutating func fixed32() throws -> UInt32 {
        guard end - pos >= 4 else { throw fail("truncated fixed32") }
        let v = UInt32(bytes[pos]) | UInt32(bytes[pos + 1]) << 8 | UInt32(bytes[pos + 2]) << 16 | UInt32(bytes[pos + 3]) << 24
        pos += 4
        return v
    }

    /// A length-delimited payload, returned with its file offset.
    mutating func lengthDelimited() throws -> (ArraySlice<UInt8>, Int) {
        let n = try varint()
        guard n <= UInt64(end - pos) else { throw fail("length \(n) runs past the end of the data") }
        let start = pos
        pos += Int(n)
        return (bytes[start..<pos], base + start)
    }

    mutating func skip(wireType: Int) throws {
        switch wireType {
        case 0: _ = try varint()
        case 1:
            guard end - pos >= 8 else { throw fail("truncated fixed64") }
            pos += 8
        case 2: _ = try lengthDelimited()
        case 5: _ = try fixed32()
        default: throw fail("unsupported wire type \(wireType)")
        }
    }

    /// Reads a field value expecting `wireType`; a mismatch means the field has the wrong type.
    mutating func expect(_ wireType: Int, got: Int, field: String) throws {
        if wireType != got {
            throw fail("field \(field) has wire type \(got), expected \(wireType)")
        }
    }

    mutating func string(field: String) throws -> String {
        let (slice, off) = try lengthDelimited()
        guard let s = String(validating: slice, as: UTF8.self) else {
            throw TokenizerError.malformedProtobuf(offset: off, reason: "field \(field) is not valid UTF-8")
        }
        return s
    }

    mutating func bool() throws -> Bool { try varint() != 0 }

    mutating func int32() throws -> Int { Int(Int32(truncatingIfNeeded: try varint())) }
}
