import Foundation

/// A 5×7 bitmap font for printable ASCII (U+0020…U+007E), drawn for this project, used to label
/// boxes on images without a font library. Each glyph is 7 rows of 5 bits (bit 4 the leftmost
/// column), stored as 14 hex digits per glyph in ASCII order.
public enum BitmapFont {
    public static let glyphWidth = 5
    public static let glyphHeight = 7
    /// Horizontal step per character at scale 1 (one blank column between glyphs).
    public static let advance = 6

    private static let hex: [String] = [
        "00000000000000040404040400040A0A0A000000000A0A1F0A1F0A0A040F140E051E04181902040813030C12140815120D04040400000000",  //   ! " # $ % & '
        "02040808080402080402020204080004150E1504000004041F040400000000000C04080000001F00000000000000000C0C00010204081000",  // ( ) * + , - . /
        "0E11131519110E040C040404040E0E11010204081F1F02040201110E02060A121F02021F101E0101110E0608101E11110E1F010204080808",  // 0 1 2 3 4 5 6 7
        "0E11110E11110E0E11110F01020C000C0C000C0C00000C0C000C04080204081008040200001F001F0000080402010204080E110102040004",  // 8 9 : ; < = > ?
        "0E11010D15150E0E11111F1111111E11111E11111E0E11101010110E1C12111111121C1F10101E10101F1F10101E1010100E11101711110F",  // @ A B C D E F G
        "1111111F1111110E04040404040E0702020202120C111214181412111010101010101F111B1515111111111119151311110E11111111110E",  // H I J K L M N O
        "1E11111E1010100E11111115120D1E11111E1412110F10100E01011E1F0404040404041111111111110E11111111110A041111111515150A",  // P Q R S T U V W
        "11110A040A111111110A040404041F01020408101F0E08080808080E001008040201000E02020202020E040A11000000000000000000001F",  // X Y Z [ \\ ] ^ _
        "0804000000000000000E010F110F1010161911111E00000E1010110E01010D1311110F00000E111F100E0609081C080808000F11110F010E",  // ` a b c d e f g
        "1010161911111104000C0404040E0200060202120C101012141814120C04040404040E00001A151511110000161911111100000E1111110E",  // h i j k l m n o
        "00001E111E101000000D130F01010000161910101000000E100E011E08081C080809060000111111130D00001111110A040000111115150A",  // p q r s t u v w
        "0000110A040A11000011110F010E00001F0204081F02040408040402040404040404040804040204040800000815020000",  // x y z { | } ~
    ]

    private static let table: [UInt8] = {
        let digits = Array(hex.joined().utf8)
        func value(_ c: UInt8) -> UInt8 { c <= UInt8(ascii: "9") ? c - UInt8(ascii: "0") : c - UInt8(ascii: "A") + 10 }
        return stride(from: 0, to: digits.count, by: 2).map { value(digits[$0]) << 4 | value(digits[$0 + 1]) }
    }()

    /// The text as the font can draw it: accents and width variants folded away, anything still
    /// outside printable ASCII shown as `?`.
    public static func printable(_ text: String) -> [UInt8] {
        let folded = text.folding(options: [.diacriticInsensitive, .widthInsensitive], locale: nil)
        return folded.unicodeScalars.map { $0.value >= 0x20 && $0.value <= 0x7E ? UInt8($0.value) : UInt8(ascii: "?") }
    }

    /// The 7 rows of an ASCII code (bit 4 is the leftmost column); codes outside 0x20…0x7E give `?`.
    public static func rows(of code: UInt8) -> ArraySlice<UInt8> {
        let index = Int(code >= 0x20 && code <= 0x7E ? code : UInt8(ascii: "?")) - 0x20
        return table[(index * glyphHeight)..<((index + 1) * glyphHeight)]
    }

    /// Whether the pixel (column, row) of a glyph is ink.
    public static func isInk(_ code: UInt8, column: Int, row: Int) -> Bool {
        guard column >= 0, column < glyphWidth, row >= 0, row < glyphHeight else { return false }
        return rows(of: code)[rows(of: code).startIndex + row] & (1 << (glyphWidth - 1 - column)) != 0
    }

    /// Width in pixels of `count` characters at `scale` (no trailing gap).
    public static func width(characters count: Int, scale: Int) -> Int {
        count == 0 ? 0 : (count * advance - 1) * scale
    }
}
