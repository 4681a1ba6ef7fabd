import Foundation

/// gzip (RFC 1952) over DEFLATE (RFC 1951), decoded in Swift so `.jsonl.gz` shards need no zlib
/// and no subprocess. Written for clarity over speed: a bit-at-a-time canonical Huffman decoder.
public enum Gzip {
    public struct Error: Swift.Error, CustomStringConvertible {
        public var description: String
    }

    public static func isGzip(_ data: Data) -> Bool {
        data.count >= 2 && data[data.startIndex] == 0x1F && data[data.startIndex + 1] == 0x8B
    }

    /// Decompresses every member (concatenated gzip files are one stream, as `gzip -d` treats them).
    public static func decompress(_ data: Data) throws -> Data {
        let bytes = [UInt8](data)
        var out: [UInt8] = []
        var pos = 0
        while pos < bytes.count {
            guard bytes.count - pos >= 18, bytes[pos] == 0x1F, bytes[pos + 1] == 0x8B else {
                if out.isEmpty { throw Error(description: "not a gzip stream") }
                break  // trailing garbage after a complete member: gzip -d warns and ignores it
            }
            guard bytes[pos + 2] == 8 else { throw Error(description: "unsupported compression method \(bytes[pos + 2])") }
            let flags = bytes[pos + 3]
            var p = pos + 10
            if flags & 0x04 != 0 {  // FEXTRA
                guard p + 2 <= bytes.count else { throw Error(description: "truncated header") }
                p += 2 + (Int(bytes[p]) | Int(bytes[p + 1]) << 8)
            }
            if flags & 0x08 != 0 { while p < bytes.count && bytes[p] != 0 { p += 1 }; p += 1 }  // FNAME
            if flags & 0x10 != 0 { while p < bytes.count && bytes[p] != 0 { p += 1 }; p += 1 }  // FCOMMENT
            if flags & 0x02 != 0 { p += 2 }  // FHCRC
            guard p < bytes.count else { throw Error(description: "truncated header") }
            let start = out.count
            var inflater = Inflater(bytes, start: p)
            try inflater.run(into: &out)
            p = inflater.bytePositionAfterStream
            guard p + 8 <= bytes.count else { throw Error(description: "truncated trailer") }
            let crc = UInt32(bytes[p]) | UInt32(bytes[p + 1]) << 8 | UInt32(bytes[p + 2]) << 16 | UInt32(bytes[p + 3]) << 24
            let size = UInt32(bytes[p + 4]) | UInt32(bytes[p + 5]) << 8 | UInt32(bytes[p + 6]) << 16 | UInt32(bytes[p + 7]) << 24
            guard UInt32(truncatingIfNeeded: out.count - start) == size else { throw Error(description: "length mismatch") }
            guard crc32(out[start...]) == crc else { throw Error(description: "CRC mismatch") }
            pos = p + 8
        }
        return Data(out)
    }

    static let crcTable: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    public static func crc32<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }
}

/// Canonical Huffman table: symbol counts per length and symbols sorted by code (RFC 1951 §3.2.2).
struct Huffman {
    var counts = [Int](repeating: 0, count: 16)
    var symbols: [Int] = []
    init(lengths: [Int]) throws {
        for l in lengths { counts[l] += 1 }
        counts[0] = 0
        var offs = [Int](repeating: 0, count: 16)
        for l in 1..<16 { offs[l] = offs[l - 1] + counts[l - 1] }
        symbols = [Int](repeating: 0, count: lengths.count)
        for (s, l) in lengths.enumerated() where l != 0 { symbols[offs[l]] = s; offs[l] += 1 }
        // Over-subscribed code sets are invalid; incomplete ones are legal (a single-code distance tree).
        var left = 1
        for l in 1..<16 { left <<= 1; left -= counts[l]; if left < 0 { throw Gzip.Error(description: "over-subscribed Huffman code") } }
    }
}

struct Inflater {
    let bytes: [UInt8]
    var pos: Int
    var bitBuffer = 0
    var bitCount = 0

    init(_ bytes: [UInt8], start: Int) { self.bytes = bytes; pos = start }

    var bytePositionAfterStream: Int { pos }  // bits left in the buffer belong to the last byte read; discarded

    mutating func bits(_ n: Int) throws -> Int {
        while bitCount < n {
            guard pos < bytes.count else { throw Gzip.Error(description: "unexpected end of deflate data") }
            bitBuffer |= Int(bytes[pos]) << bitCount
            pos += 1; bitCount += 8
        }
        let v = bitBuffer & ((1 << n) - 1)
        bitBuffer >>= n; bitCount -= n
        return v
    }

    mutating func decode(_ h: Huffman) throws -> Int {
        var code = 0, first = 0, index = 0
        for len in 1..<16 {
            code |= try bits(1)
            let count = h.counts[len]
            if code - count < first { return h.symbols[index + (code - first)] }
            index += count; first += count
            first <<= 1; code <<= 1
        }
        throw Gzip.Error(description: "invalid Huffman code")
    }

    static let lengthBase = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258]
    static let lengthExtra = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
    static let distBase = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]
    static let distExtra = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]

    mutating func run(into out: inout [UInt8]) throws {
        let streamStart = out.count
        var last = 0
        repeat {
            last = try bits(1)
            let type = try bits(2)
            switch type {
            case 0:
                bitBuffer = 0; bitCount = 0  // stored blocks start on a byte boundary
                guard pos + 4 <= bytes.count else { throw Gzip.Error(description: "truncated stored block") }
                let len = Int(bytes[pos]) | Int(bytes[pos + 1]) << 8
                let nlen = Int(bytes[pos + 2]) | Int(bytes[pos + 3]) << 8
                guard len == (~nlen & 0xFFFF) else { throw Gzip.Error(description: "stored block length check failed") }
                pos += 4
                guard pos + len <= bytes.count else { throw Gzip.Error(description: "truncated stored block") }
                out.append(contentsOf: bytes[pos..<pos + len]); pos += len
            case 1:
                var lengths = [Int](repeating: 8, count: 288)
                for i in 144..<256 { lengths[i] = 9 }
                for i in 256..<280 { lengths[i] = 7 }
                try block(lit: try Huffman(lengths: lengths), dist: try Huffman(lengths: [Int](repeating: 5, count: 30)),
                          out: &out, streamStart: streamStart)
            case 2:
                let hlit = try bits(5) + 257, hdist = try bits(5) + 1, hclen = try bits(4) + 4
                let order = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]
                var cl = [Int](repeating: 0, count: 19)
                for i in 0..<hclen { cl[order[i]] = try bits(3) }
                let clh = try Huffman(lengths: cl)
                var lengths: [Int] = []
                while lengths.count < hlit + hdist {
                    let sym = try decode(clh)
                    switch sym {
                    case 0...15: lengths.append(sym)
                    case 16:
                        guard let prev = lengths.last else { throw Gzip.Error(description: "repeat with no previous length") }
                        lengths += [Int](repeating: prev, count: 3 + (try bits(2)))
                    case 17: lengths += [Int](repeating: 0, count: 3 + (try bits(3)))
                    default: lengths += [Int](repeating: 0, count: 11 + (try bits(7)))
                    }
                }
                guard lengths.count == hlit + hdist else { throw Gzip.Error(description: "code lengths overrun") }
                try block(lit: try Huffman(lengths: Array(lengths[0..<hlit])),
                          dist: try Huffman(lengths: Array(lengths[hlit...])), out: &out, streamStart: streamStart)
            default:
                throw Gzip.Error(description: "invalid block type 3")
            }
        } while last == 0
    }

    mutating func block(lit: Huffman, dist: Huffman, out: inout [UInt8], streamStart: Int) throws {
        while true {
            let sym = try decode(lit)
            if sym < 256 { out.append(UInt8(sym)); continue }
            if sym == 256 { return }
            let li = sym - 257
            guard li < 29 else { throw Gzip.Error(description: "invalid length symbol") }
            let length = Inflater.lengthBase[li] + (try bits(Inflater.lengthExtra[li]))
            let ds = try decode(dist)
            guard ds < 30 else { throw Gzip.Error(description: "invalid distance symbol") }
            let distance = Inflater.distBase[ds] + (try bits(Inflater.distExtra[ds]))
            guard distance <= out.count - streamStart else { throw Gzip.Error(description: "distance too far back") }
            let from = out.count - distance
            for k in 0..<length { out.append(out[from + k]) }  // byte by byte: overlapping copies repeat
        }
    }
}
