import Foundation

public struct TarMember: Equatable, Sendable {
    public var name: String
    /// Byte range of the member's contents in the archive.
    public var range: Range<Int>
    public var typeflag: UInt8
    public var isFile: Bool { typeflag == 0x30 || typeflag == 0 || typeflag == 0x37 }
}

/// A ustar / GNU tar reader over bytes in memory: 512-byte headers, octal (or GNU base-256) sizes,
/// header checksums, GNU long names ('L') and pax `path=` records ('x'). A bad header or a member
/// running past the end stops reading: what came before is kept and `corrupt` is set, because
/// after a bad header there is no reliable way to find the next one.
public enum TarReader {
    public struct Archive { public var members: [TarMember]; public var corrupt: Bool }

    public static func read(_ data: Data) -> Archive {
        data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> Archive in
            let b = raw.bindMemory(to: UInt8.self)
            var members: [TarMember] = []
            var pos = 0
            var longName: String?
            while true {
                if pos == b.count { return Archive(members: members, corrupt: false) }  // no end blocks: tolerated
                guard pos + 512 <= b.count else { return Archive(members: members, corrupt: true) }
                let header = UnsafeBufferPointer(rebasing: b[pos..<pos + 512])
                if header.allSatisfy({ $0 == 0 }) { return Archive(members: members, corrupt: false) }
                guard checksumMatches(header), let size = number(header, 124, 12), size >= 0 else {
                    return Archive(members: members, corrupt: true)
                }
                let start = pos + 512
                guard size <= b.count - start else { return Archive(members: members, corrupt: true) }
                let type = header[156]
                var name = string(header, 0, 100)
                if header[257..<262].elementsEqual("ustar".utf8) {
                    let prefix = string(header, 345, 155)
                    if !prefix.isEmpty { name = prefix + "/" + name }
                }
                let contents = UnsafeBufferPointer(rebasing: b[start..<start + size])
                switch type {
                case UInt8(ascii: "L"):  // GNU long name for the next member
                    longName = String(decoding: contents.prefix { $0 != 0 }, as: UTF8.self)
                case UInt8(ascii: "x"):  // pax extended header: only the path matters here
                    longName = paxPath(contents) ?? longName
                case UInt8(ascii: "g"):
                    break
                default:
                    members.append(TarMember(name: longName ?? name, range: start..<start + size, typeflag: type))
                    longName = nil
                }
                pos = start + (size + 511) / 512 * 512
                if pos > b.count { pos = b.count }  // last member's padding cut off: the data itself is whole
            }
        }
    }

    static func string(_ h: UnsafeBufferPointer<UInt8>, _ offset: Int, _ length: Int) -> String {
        String(decoding: h[offset..<offset + length].prefix { $0 != 0 }, as: UTF8.self)
    }

    /// Octal, space/NUL terminated; or GNU base-256 when the high bit of the first byte is set.
    static func number(_ h: UnsafeBufferPointer<UInt8>, _ offset: Int, _ length: Int) -> Int? {
        let field = h[offset..<offset + length]
        if let first = field.first, first & 0x80 != 0 {
            var v = Int(first & 0x7F)
            for byte in field.dropFirst() {
                guard v < (Int.max >> 8) else { return nil }
                v = v << 8 | Int(byte)
            }
            return v
        }
        var v = 0, seen = false
        for c in field {
            if c == 0x20 || c == 0 { if seen { break } else { continue } }
            guard c >= 0x30, c <= 0x37, v < (Int.max >> 3) else { return nil }
            v = v * 8 + Int(c - 0x30); seen = true
        }
        return seen ? v : nil
    }

    /// The checksum field counts as eight spaces; old tars summed signed bytes, so accept either.
    static func checksumMatches(_ h: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let stored = number(h, 148, 8) else { return false }
        var unsigned = 0, signed = 0
        for i in 0..<512 {
            let c: UInt8 = (148..<156).contains(i) ? 0x20 : h[i]
            unsigned += Int(c); signed += Int(Int8(bitPattern: c))
        }
        return stored == unsigned || stored == signed
    }

    static func paxPath(_ contents: UnsafeBufferPointer<UInt8>) -> String? {
        // Records are "LEN key=value\n".
        let text = String(decoding: contents, as: UTF8.self)
        for line in text.split(separator: "\n") {
            guard let space = line.firstIndex(of: " ") else { continue }
            let kv = line[line.index(after: space)...]
            if kv.hasPrefix("path=") { return String(kv.dropFirst(5)) }
        }
        return nil
    }
}
