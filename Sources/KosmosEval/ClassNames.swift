import Foundation

/// Class names for zero-shot classification from the folders a data set ships its images in.
///
/// - ImageNet's folders are WordNet ids (`n01440764`): the names come from a mapping file in the
///   layout of ImageNet's `LOC_synset_mapping.txt` ("n01440764 tench, Tinca tinca": the folder,
///   a space, then synonyms separated by ", "), of which the first synonym is used.
/// - CUB-200-2011's folders are "001.Black_footed_Albatross": the number and its period go.
/// - Otherwise the folder name, `_` read as a space.
public enum ClassNames {
    /// The name of each folder, in the folders' order.
    public static func names(folders: [String], mapping: [String: String]? = nil, mappingPath: String = "--class-names") throws -> [String] {
        try folders.map { folder in
            if let mapping {
                guard let name = mapping[folder] else {
                    throw EvalError.malformed(path: mappingPath, location: folder, reason: "no name for this class folder")
                }
                return name
            }
            var name = Substring(folder)
            if let dot = name.firstIndex(of: "."), dot > name.startIndex, name[..<dot].allSatisfy(\.isNumber) {
                name = name[name.index(after: dot)...]
            }
            return name.replacingOccurrences(of: "_", with: " ")
        }
    }

    /// A `LOC_synset_mapping.txt`-style file: "folder first name, synonym, ..." per line.
    public static func loadMapping(_ url: URL) throws -> [String: String] {
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw EvalError.unreadable(path: url.path, reason: error.localizedDescription)
        }
        var mapping: [String: String] = [:]
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty { continue }
            guard let space = line.firstIndex(where: { $0 == " " || $0 == "\t" }) else {
                throw EvalError.malformed(path: url.path, location: "line \(n + 1)", reason: "expected a folder name, a space, then the class name")
            }
            let folder = String(line[..<space])
            let first = line[line.index(after: space)...].split(separator: ",", maxSplits: 1).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            guard !first.isEmpty else {
                throw EvalError.malformed(path: url.path, location: "line \(n + 1)", reason: "no class name after \(folder)")
            }
            guard mapping[folder] == nil else {
                throw EvalError.malformed(path: url.path, location: "line \(n + 1)", reason: "\(folder) is named twice")
            }
            mapping[folder] = first
        }
        return mapping
    }
}
