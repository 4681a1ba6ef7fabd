import Foundation

/// A phrase of a Kosmos-2 grounded caption with its boxes, as transformers'
/// clean_text_and_extract_entities_with_bboxes returns it: the phrase, its span in the cleaned text
/// (Unicode scalar offsets, as Python string indices), and boxes (x1, y1, x2, y2) normalised to [0, 1].
public struct GroundedEntity: Equatable, Codable, Sendable {
    public var phrase: String
    public var start: Int
    public var end: Int
    public var boxes: [[Double]]
}

/// Kosmos-2's grounding markup: `<phrase>text</phrase><object><patch_index_i><patch_index_j></object>`,
/// several boxes joined by `</delimiter_of_multi_objects/>`, and objects without a phrase. Mirrors
/// transformers' processing_kosmos2.py (post_process_generation and the functions it calls).
public enum Grounding {
    private static let entityPattern = try? NSRegularExpression(
        pattern: "(?:(<phrase>([^<]+)</phrase>))?<object>((?:<patch_index_\\d+><patch_index_\\d+></delimiter_of_multi_objects/>)*<patch_index_\\d+><patch_index_\\d+>)</object>")
    private static let tagPattern = try? NSRegularExpression(pattern: "<.*?>")
    private static let patchPattern = try? NSRegularExpression(pattern: "<patch_index_(\\d+)>")

    /// The text after the last `</image>`, cleaned of tags, with its entities.
    public static func postProcess(_ generated: String, patchesPerSide: Int = 32) -> (text: String, entities: [GroundedEntity]) {
        let caption = generated.components(separatedBy: "</image>").last ?? generated
        return cleanTextAndExtractEntities(caption, patchesPerSide: patchesPerSide)
    }

    /// Removes every `<…>` tag and returns the entities with spans in the cleaned text.
    public static func cleanTextAndExtractEntities(_ text: String, patchesPerSide: Int = 32) -> (text: String, entities: [GroundedEntity]) {
        let processed = removeTags(text)
        var entities: [GroundedEntity] = []
        for (phrase, span, pairs) in extractEntities(text) {
            // Span offsets in the text with tags removed, counted in Unicode scalars like Python.
            let start = removeTags(prefix(text, utf16: span.lowerBound)).unicodeScalars.count
            let end = removeTags(prefix(text, utf16: span.upperBound)).unicodeScalars.count
            let boxes = pairs.map { coordinates(upperLeft: $0.0, lowerRight: $0.1, patchesPerSide: patchesPerSide) }
            entities.append(GroundedEntity(phrase: phrase, start: start, end: end, boxes: boxes))
        }
        return cleanupSpaces(processed, entities)
    }

    /// The box of two grid cells: their outer corners when they share a row or column (or are one
    /// cell), else their centres (transformers' patch_index_to_coordinate).
    public static func coordinates(upperLeft: Int, lowerRight: Int, patchesPerSide n: Int) -> [Double] {
        let cell = 1.0 / Double(n)
        let ulX = Double(upperLeft % n), ulY = Double(upperLeft / n)
        let lrX = Double(lowerRight % n), lrY = Double(lowerRight / n)
        if upperLeft == lowerRight || ulX == lrX || ulY == lrY {
            return [ulX * cell, ulY * cell, lrX * cell + cell, lrY * cell + cell]
        }
        return [ulX * cell + cell / 2, ulY * cell + cell / 2, lrX * cell + cell / 2, lrY * cell + cell / 2]
    }

    static func removeTags(_ text: String) -> String {
        guard let tagPattern else { return text }
        let range = NSRange(text.startIndex..., in: text)
        return tagPattern.stringByReplacingMatches(in: text, range: range, withTemplate: "")
    }

    static func prefix(_ text: String, utf16 offset: Int) -> String {
        let utf16 = text.utf16
        let index = utf16.index(utf16.startIndex, offsetBy: offset)
        return String(text[..<index])
    }

    /// (phrase, UTF-16 span of the phrase (or the empty span at `<object>`), patch-index pairs).
    static func extractEntities(_ text: String) -> [(String, Range<Int>, [(Int, Int)])] {
        guard let entityPattern, let patchPattern else { return [] }
        let ns = text as NSString
        var result: [(String, Range<Int>, [(Int, Int)])] = []
        for match in entityPattern.matches(in: text, range: NSRange(location: 0, length: ns.length)) {
            let phraseRange = match.range(at: 2)
            let hasPhrase = match.range(at: 1).location != NSNotFound
            let content = ns.substring(with: match.range(at: 3))
            var pairs: [(Int, Int)] = []
            for piece in content.components(separatedBy: "</delimiter_of_multi_objects/>") {
                // The reference searches the pair, then the pair without its first character.
                let p = piece as NSString
                let first = patchPattern.firstMatch(in: piece, range: NSRange(location: 0, length: p.length))
                let second = patchPattern.firstMatch(in: piece, range: NSRange(location: Swift.min(1, p.length), length: Swift.max(0, p.length - 1)))
                if let first, let second, let x = Int(p.substring(with: first.range(at: 1))), let y = Int(p.substring(with: second.range(at: 1))) {
                    pairs.append((x, y))
                }
            }
            if hasPhrase {
                let phrase = ns.substring(with: phraseRange)
                result.append((phrase, phraseRange.location..<(phraseRange.location + phraseRange.length), pairs))
            } else {
                let at = match.range.location
                for pair in pairs {
                    result.append(("<patch_index_\(pair.0)><patch_index_\(pair.1)>", at..<at, [pair]))
                }
            }
        }
        return result
    }

    /// Strips the text and each phrase, moving spans as transformers' _cleanup_spaces does.
    static func cleanupSpaces(_ text: String, _ entities: [GroundedEntity]) -> (text: String, entities: [GroundedEntity]) {
        let scalars = Array(text.unicodeScalars)
        func isSpace(_ s: Unicode.Scalar) -> Bool { s.properties.isWhitespace }
        let leading = scalars.prefix { isSpace($0) }.count
        let stripped = strip(text)
        let cleaned = entities.map { e -> GroundedEntity in
            let name = Array(e.phrase.unicodeScalars)
            let nameLeading = name.prefix { isSpace($0) }.count
            let nameTrailing = name.reversed().prefix { isSpace($0) }.count
            return GroundedEntity(phrase: strip(e.phrase), start: e.start - leading + nameLeading,
                                  end: e.end - leading - nameTrailing, boxes: e.boxes)
        }
        return (stripped, cleaned)
    }

    static func strip(_ text: String) -> String {
        var scalars = Substring(text).unicodeScalars[...]
        while let first = scalars.first, first.properties.isWhitespace { scalars = scalars.dropFirst() }
        while let last = scalars.last, last.properties.isWhitespace { scalars = scalars.dropLast() }
        return String(String.UnicodeScalarView(scalars))
    }
}
