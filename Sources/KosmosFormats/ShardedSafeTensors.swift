import Foundation

/// A checkpoint split over several safetensors files, in the Hugging Face layout: a directory with
/// `model.safetensors.index.json` (`{"metadata": {...}, "weight_map": {tensor: shard file}}`) and
/// the shards beside it; or a directory holding a single `model.safetensors`.
///
/// All shards named by the index must exist when this is created. Each shard is opened (mapped and
/// validated) the first time one of its tensors is needed, once; at that point every tensor the
/// index assigns to it must be present. `validate()` does this for all shards up front.
public final class ShardedSafeTensors: SafeTensorsReadable, @unchecked Sendable {
    /// The index file, or nil for a single-file checkpoint.
    public let indexURL: URL?
    /// Shard paths, in the order of their first appearance in the weight map.
    public let shardURLs: [URL]
    /// The index's "metadata" with scalar values as text (HF writes {"total_size": <int>}), or the
    /// single file's `__metadata__`.
    public let metadata: [String: String]
    public let names: [String]

    private let shardOfTensor: [String: Int]
    private let tensorsOfShard: [[String]]
    private let lock = NSLock()
    // Guarded by `lock`; nil until the shard is first needed.
    private var openShards: [SafeTensorsFile?]

    /// Index files larger than this are rejected before reading; real ones are a few hundred KB.
    private static let maximumIndexSize = 100_000_000

    /// Opens `directory/model.safetensors.index.json` if it exists, else `directory/model.safetensors`.
    /// Failing both, a directory with exactly one `*.safetensors.index.json` or exactly one
    /// `*.safetensors` file is opened the same way.
    public convenience init(directory: URL) throws {
        let manager = FileManager.default
        let index = directory.appendingPathComponent("model.safetensors.index.json")
        if manager.fileExists(atPath: index.path) {
            try self.init(indexURL: index)
            return
        }
        let single = directory.appendingPathComponent("model.safetensors")
        if manager.fileExists(atPath: single.path) {
            try self.init(singleFile: single)
            return
        }
        var isDirectory: ObjCBool = false
        guard manager.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw SafeTensorsError(file: directory.path, reason: "checkpoint directory does not exist")
        }
        let contents = (try? manager.contentsOfDirectory(atPath: directory.path)) ?? []
        let indexes = contents.filter { $0.hasSuffix(".safetensors.index.json") }
        let files = contents.filter { $0.hasSuffix(".safetensors") }
        if indexes.count == 1 {
            try self.init(indexURL: directory.appendingPathComponent(indexes[0]))
        } else if indexes.isEmpty && files.count == 1 {
            try self.init(singleFile: directory.appendingPathComponent(files[0]))
        } else {
            throw SafeTensorsError(file: directory.path, reason: "found neither model.safetensors.index.json nor "
                + "model.safetensors (\(indexes.count) other index files, \(files.count) other .safetensors files)")
        }
    }

    /// Opens a checkpoint from its index file; shards are looked up beside it.
    public init(indexURL: URL) throws {
        let path = indexURL.path
        func failure(_ reason: String, tensor: String? = nil) -> SafeTensorsError {
            SafeTensorsError(file: path, tensor: tensor, reason: reason)
        }
        let data = try ShardedSafeTensors.readIndex(indexURL)
        let document: SafeTensorsJSONScanner.Value
        do {
            document = try data.withUnsafeBytes { try SafeTensorsJSONScanner.parseDocument($0) }
        } catch let syntax as SafeTensorsJSONScanner.SyntaxError {
            var reason = "index is not valid JSON: \(syntax.message) at byte \(syntax.offset)"
            if let hint = data.withUnsafeBytes({ SafeTensorsHeaderParser.contentHint($0) }),
               !hint.contains("JSON") {
                reason += "; it \(hint)"
            }
            throw failure(reason)
        }
        guard case .object(let members) = document else {
            throw failure("index must be a JSON object with a \"weight_map\"")
        }
        var weightMap: [(key: String, value: SafeTensorsJSONScanner.Value)]?
        var metadata: [String: String] = [:]
        for (key, value) in members {
            switch key {
            case "weight_map":
                guard weightMap == nil else { throw failure("\"weight_map\" appears twice") }
                guard case .object(let map) = value else { throw failure("\"weight_map\" must be an object") }
                weightMap = map
            case "metadata":
                guard case .object(let entries) = value else {
                    if case .null = value { continue }
                    throw failure("\"metadata\" must be an object")
                }
                for (metadataKey, metadataValue) in entries {
                    // Only scalars are kept: the map is [String: String] like a file's __metadata__.
                    switch metadataValue {
                    case .string(let text): metadata[metadataKey] = text
                    case .number(let text): metadata[metadataKey] = text
                    case .bool(let flag): metadata[metadataKey] = flag ? "true" : "false"
                    case .object, .array, .null: break
                    }
                }
            default:
                break  // Other top-level keys carry no meaning for loading.
            }
        }
        guard let weightMap = weightMap else { throw failure("index has no \"weight_map\"") }

        let directory = indexURL.deletingLastPathComponent()
        var shardIndexByName: [String: Int] = [:]
        var shardNames: [String] = []
        var shardOfTensor: [String: Int] = [:]
        for (tensor, value) in weightMap {
            guard case .string(let shardName) = value else {
                throw failure("weight_map value must be a shard file name string", tensor: tensor)
            }
            try ShardedSafeTensors.checkShardName(shardName, tensor: tensor, failure: failure)
            let shard: Int
            if let known = shardIndexByName[shardName] {
                shard = known
            } else {
                shard = shardNames.count
                shardIndexByName[shardName] = shard
                shardNames.append(shardName)
            }
            // Two shard assignments for one name would make the loaded weight depend on which wins.
            guard shardOfTensor.updateValue(shard, forKey: tensor) == nil else {
                throw failure("appears twice in weight_map", tensor: tensor)
            }
        }
        var tensorsOfShard = [[String]](repeating: [], count: shardNames.count)
        for (tensor, shard) in shardOfTensor {
            tensorsOfShard[shard].append(tensor)
        }
        let shardURLs = shardNames.map { directory.appendingPathComponent($0) }
        for (shard, url) in shardURLs.enumerated() {
            var isDirectory: ObjCBool = false
            if !FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) || isDirectory.boolValue {
                let example = tensorsOfShard[shard].min() ?? "?"
                throw failure("shard \(shardNames[shard]) is missing (expected at \(url.path)); it holds "
                    + "\(tensorsOfShard[shard].count) tensors, e.g. \(example). Download it too")
            }
        }
        self.indexURL = indexURL
        self.shardURLs = shardURLs
        self.metadata = metadata
        self.shardOfTensor = shardOfTensor
        self.tensorsOfShard = tensorsOfShard.map { $0.sorted() }
        names = shardOfTensor.keys.sorted()
        openShards = [SafeTensorsFile?](repeating: nil, count: shardNames.count)
    }

    /// A single safetensors file presented through the same interface.
    public init(singleFile url: URL) throws {
        let file = try SafeTensorsFile(url: url)
        indexURL = nil
        shardURLs = [url]
        metadata = file.metadata
        names = file.names
        var map = [String: Int](minimumCapacity: file.names.count)
        for name in file.names { map[name] = 0 }
        shardOfTensor = map
        tensorsOfShard = [file.names]
        openShards = [file]
    }

    /// Opens every shard now and checks each holds all the tensors the index assigns to it.
    public func validate() throws {
        for shard in shardURLs.indices {
            _ = try openShard(shard)
        }
    }

    /// The shard file that holds `name` (opening it if needed), or nil if no shard does.
    public func shard(containing name: String) throws -> SafeTensorsFile? {
        guard let shard = shardOfTensor[name] else { return nil }
        return try openShard(shard)
    }

    /// nil for unknown names, and also when the tensor's shard cannot be opened; reading the tensor
    /// (`floats`, `copyFloats`...) then throws the reason.
    public func entry(_ name: String) -> SafeTensorsEntry? {
        guard let shard = shardOfTensor[name], let file = try? openShard(shard) else { return nil }
        return file.entry(name)
    }

    public func copyFloats(_ name: String, into destination: UnsafeMutableBufferPointer<Float>) throws {
        try file(for: name).copyFloats(name, into: destination)
    }

    public func floats(_ name: String) throws -> [Float] {
        try file(for: name).floats(name)
    }

    public func int64s(_ name: String) throws -> [Int64] {
        try file(for: name).int64s(name)
    }

    public func withRawBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try file(for: name).withRawBytes(name, body)
    }

    public func mappedBytes(_ name: String) -> (bytes: UnsafeMutableRawBufferPointer, owner: AnyObject)? {
        (try? file(for: name))?.mappedBytes(name)
    }

    public func releaseResidentPages(_ name: String) {
        (try? file(for: name))?.releaseResidentPages(name)
    }

    private var displayName: String { (indexURL ?? shardURLs[0]).path }

    private func file(for name: String) throws -> SafeTensorsFile {
        guard let shard = shardOfTensor[name] else {
            throw SafeTensorsFile.missingTensorError(file: displayName, name: name, names: names)
        }
        return try openShard(shard)
    }

    private func openShard(_ shard: Int) throws -> SafeTensorsFile {
        lock.lock()
        defer { lock.unlock() }
        if let file = openShards[shard] { return file }
        // Opened under the lock so concurrent loaders map each shard once. A failure is not cached:
        // the next call retries, which is what a user fixing the file would expect.
        let file = try SafeTensorsFile(url: shardURLs[shard])
        for tensor in tensorsOfShard[shard] where file.entry(tensor) == nil {
            throw SafeTensorsError(file: shardURLs[shard].path, tensor: tensor, reason:
                "the index \(indexURL?.lastPathComponent ?? "") says this shard holds the tensor, but it does not")
        }
        openShards[shard] = file
        return file
    }

    private static func readIndex(_ url: URL) throws -> Data {
        let path = url.path
        let attributes: [FileAttributeKey: Any]
        do {
            attributes = try FileManager.default.attributesOfItem(atPath: path)
        } catch {
            throw SafeTensorsError(file: path, reason: "cannot read index: \(error.localizedDescription)")
        }
        if let size = attributes[.size] as? NSNumber, size.int64Value > Int64(maximumIndexSize) {
            throw SafeTensorsError(file: path, reason: "index is \(size) bytes, over the \(maximumIndexSize)-byte limit")
        }
        do {
            return try Data(contentsOf: url)
        } catch {
            throw SafeTensorsError(file: path, reason: "cannot read index: \(error.localizedDescription)")
        }
    }

    /// Shard names must stay inside the checkpoint directory (an index from the internet must not
    /// make us open arbitrary files) and be safetensors files (a `.bin` index is a PyTorch checkpoint).
    private static func checkShardName(
        _ name: String, tensor: String, failure: (String, String?) -> SafeTensorsError
    ) throws {
        let components = name.split(separator: "/", omittingEmptySubsequences: false)
        guard !name.isEmpty, !name.hasPrefix("/"), !name.contains("\0"), !name.contains("\\"),
              !components.contains(where: { $0 == ".." || $0.isEmpty })
        else {
            throw failure("shard name \"\(name)\" must be a relative path inside the checkpoint directory", tensor)
        }
        guard name.hasSuffix(".safetensors") else {
            throw failure("shard \"\(name)\" is not a .safetensors file (a PyTorch .bin checkpoint?)", tensor)
        }
    }
}
