import Foundation
@testable import KosmosHub
import XCTest

/// `HubClient.pull` against the loopback FakeHub: the cache layout huggingface_hub reads, what is
/// asked of the server, and every failure the issue lists.
final class PullTests: XCTestCase {
    var hub: FakeHub!
    var cacheRoot: URL!

    let commit = "0123456789abcdef0123456789abcdef01234567"
    let weights = Data((0 ..< 300_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 / 251) })
    let tokenizer = Data((0 ..< 5_000).map { UInt8(truncatingIfNeeded: $0 &* 13) })
    let config = Data(#"{"model_type": "kosmos-2"}"#.utf8)
    let nested = Data("a file in a folder\n".utf8)

    override func setUpWithError() throws {
        hub = try FakeHub()
        cacheRoot = FileManager.default.temporaryDirectory.appendingPathComponent("hubcache-\(UUID().uuidString)")
        hub.add("org/model", .init(commit: commit, files: ["config.json": config, "model.safetensors": weights,
                                                           "tokenizer.model": tokenizer, "extra/notes.txt": nested],
                                   lfs: ["model.safetensors", "tokenizer.model"],
                                   refs: ["v1": "fedcba9876543210fedcba9876543210fedcba98"]))
    }

    override func tearDown() {
        hub.stop()
        try? FileManager.default.removeItem(at: cacheRoot)
    }

    func client(token: String? = nil, offline: Bool = false, attempts: Int = 3) -> HubClient {
        var settings = HubSettings(endpoint: hub.endpoint, token: token, offline: offline, cache: HubCache(root: cacheRoot))
        settings.attempts = attempts
        return HubClient(settings: settings)
    }

    var repoFolder: URL { cacheRoot.appendingPathComponent("models--org--model") }

    func blobNames() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: repoFolder.appendingPathComponent("blobs").path)) ?? []).sorted()
    }

    func snapshotFiles(_ commit: String) -> [String] {
        let folder = repoFolder.appendingPathComponent("snapshots/\(commit)")
        guard let walker = FileManager.default.enumerator(atPath: folder.path) else { return [] }
        return walker.compactMap { $0 as? String }.filter { !$0.hasSuffix("extra") }.sorted()
    }

    func testPullWritesHuggingFaceHubLayout() throws {
        let snapshot = try client().pull(HubRepository("org/model")!)
        XCTAssertEqual(snapshot.path, repoFolder.appendingPathComponent("snapshots/\(commit)").path)
        XCTAssertEqual(try String(contentsOf: repoFolder.appendingPathComponent("refs/main"), encoding: .utf8), commit)
        let weightsSHA = SHA256.hex(of: weights), tokenizerSHA = SHA256.hex(of: tokenizer)
        let configEtag = String(SHA256.hex(of: Data("blob \(config.count)\0".utf8) + config).prefix(40))
        XCTAssertTrue(blobNames().contains(weightsSHA) && blobNames().contains(tokenizerSHA) && blobNames().contains(configEtag), "\(blobNames())")
        XCTAssertEqual(blobNames().count, 4)
        XCTAssertFalse(blobNames().contains { $0.hasSuffix(".incomplete") })
        // Relative links, one ".." per level, as huggingface_hub makes them.
        let manager = FileManager.default
        XCTAssertEqual(try manager.destinationOfSymbolicLink(atPath: snapshot.appendingPathComponent("model.safetensors").path),
                       "../../blobs/\(weightsSHA)")
        XCTAssertEqual(try manager.destinationOfSymbolicLink(atPath: snapshot.appendingPathComponent("config.json").path),
                       "../../blobs/\(configEtag)")
        XCTAssertTrue(try manager.destinationOfSymbolicLink(atPath: snapshot.appendingPathComponent("extra/notes.txt").path)
            .hasPrefix("../../../blobs/"))
        XCTAssertEqual(try Data(contentsOf: snapshot.appendingPathComponent("model.safetensors")), weights)
        XCTAssertEqual(try Data(contentsOf: snapshot.appendingPathComponent("tokenizer.model")), tokenizer)
        XCTAssertEqual(try Data(contentsOf: snapshot.appendingPathComponent("config.json")), config)
        XCTAssertEqual(try Data(contentsOf: snapshot.appendingPathComponent("extra/notes.txt")), nested)
        // Resolvable from the cache alone afterwards.
        XCTAssertEqual(HubCache(root: cacheRoot).cachedSnapshot(HubRepository("org/model")!)?.path, snapshot.path)
    }

    func testSecondPullAsksOnlyForTheFileList() throws {
        _ = try client().pull(HubRepository("org/model")!)
        let before = hub.requests.count
        _ = try client().pull(HubRepository("org/model")!)
        let after = hub.requests.dropFirst(before)
        XCTAssertEqual(after.map(\.path), ["/api/models/org/model/revision/main"])
    }

    func testBlobsAlreadyInTheCacheAreLinkedNotDownloaded() throws {
        _ = try client().pull(HubRepository("org/model")!)
        // Another revision with the same files (another commit): only HEADs, no storage downloads.
        let before = hub.requests.count
        let tagged = try client().pull(HubRepository("org/model@v1")!)
        XCTAssertEqual(tagged.lastPathComponent, "fedcba9876543210fedcba9876543210fedcba98")
        XCTAssertEqual(try String(contentsOf: repoFolder.appendingPathComponent("refs/v1"), encoding: .utf8), tagged.lastPathComponent)
        let later = hub.requests.dropFirst(before)
        XCTAssertFalse(later.contains { $0.path.hasPrefix("/cdn/") || $0.method == "GET" && $0.path.contains("/resolve/") }, "\(later.map(\.path))")
        XCTAssertEqual(try Data(contentsOf: tagged.appendingPathComponent("model.safetensors")), weights)
    }

    func testTwoPullsAtOnceDownloadEachBlobOnce() throws {
        let clients = [client(), client()]
        let failures = EventLog()
        DispatchQueue.concurrentPerform(iterations: 2) { index in
            do { _ = try clients[index].pull(HubRepository("org/model")!) } catch { failures.record(.retrying(path: "", reason: "\(error)")) }
        }
        XCTAssertEqual(failures.retries, 0)
        let sha = SHA256.hex(of: weights)
        XCTAssertEqual(hub.requests.filter { $0.path.hasPrefix("/cdn/\(sha)") }.count, 1)
        XCTAssertEqual(try Data(contentsOf: repoFolder.appendingPathComponent("snapshots/\(commit)/model.safetensors")), weights)
        XCTAssertFalse(blobNames().contains { $0.hasSuffix(".incomplete") })
    }

    func testIncludePatternsChooseFiles() throws {
        let snapshot = try client().pull(HubRepository("org/model")!, include: [Glob("*.json"), Glob("tokenizer*")])
        XCTAssertEqual(snapshotFiles(commit), ["config.json", "tokenizer.model"])
        XCTAssertEqual(try Data(contentsOf: snapshot.appendingPathComponent("tokenizer.model")), tokenizer)
        XCTAssertThrowsError(try client().pull(HubRepository("org/model")!, include: [Glob("*.bin")])) { error in
            XCTAssertEqual(error as? HubError, .noFilesMatched(repository: "org/model", patterns: ["*.bin"]))
        }
    }

    func testDroppedConnectionIsResumedWithRange() throws {
        let sha = SHA256.hex(of: weights)
        hub.dropConnection(sha256: sha, times: 1)
        let events = EventLog()
        let snapshot = try client().pull(HubRepository("org/model")!, include: [Glob("model.safetensors")], progress: events.record)
        XCTAssertEqual(try Data(contentsOf: snapshot.appendingPathComponent("model.safetensors")), weights)
        let downloads = hub.requests.filter { $0.path.hasPrefix("/cdn/\(sha)") }
        XCTAssertEqual(downloads.count, 2)
        XCTAssertNil(downloads[0].headers["range"])
        XCTAssertEqual(downloads[1].headers["range"], "bytes=\(weights.count / 2)-")
        XCTAssertTrue(events.retries == 1 && events.received == Int64(weights.count), "\(events.retries) \(events.received)")
    }

    func testAPullThatFailsLeavesNothingInSnapshotsAndResumesLater() throws {
        let sha = SHA256.hex(of: weights)
        hub.dropConnection(sha256: sha, times: 2)
        XCTAssertThrowsError(try client(attempts: 2).pull(HubRepository("org/model")!)) { error in
            guard case .network = error as? HubError else { return XCTFail("\(error)") }
        }
        XCTAssertFalse(snapshotFiles(commit).contains("model.safetensors"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: repoFolder.appendingPathComponent("refs/main").path))
        let partial = repoFolder.appendingPathComponent("blobs/\(sha).incomplete")
        let partialSize = try XCTUnwrap((try FileManager.default.attributesOfItem(atPath: partial.path))[.size] as? NSNumber).intValue
        XCTAssertEqual(partialSize, weights.count / 2 + (weights.count - weights.count / 2) / 2)
        XCTAssertNil(HubCache(root: cacheRoot).cachedSnapshot(HubRepository("org/model")!))

        let before = hub.requests.count
        let snapshot = try client().pull(HubRepository("org/model")!)
        XCTAssertEqual(try Data(contentsOf: snapshot.appendingPathComponent("model.safetensors")), weights)
        let resumed = hub.requests.dropFirst(before).filter { $0.path.hasPrefix("/cdn/\(sha)") }
        XCTAssertEqual(resumed.map { $0.headers["range"] }, ["bytes=\(partialSize)-"])
        XCTAssertFalse(blobNames().contains { $0.hasSuffix(".incomplete") })
    }

    func testGatedRepositoryNeedsTheTokenAndTheTokenStaysWithTheHub() throws {
        hub.add("org/gated", .init(commit: commit, files: ["config.json": config, "model.safetensors": weights], lfs: ["model.safetensors"], gated: true))
        XCTAssertThrowsError(try client().pull(HubRepository("org/gated")!)) { error in
            XCTAssertEqual(error as? HubError, .unauthorized(repository: "org/gated", path: (error as? HubError).flatMap {
                if case .unauthorized(_, let path, _) = $0 { return path } else { return nil }
            }, tokenGiven: false))
        }
        let gatedSnapshot = cacheRoot.appendingPathComponent("models--org--gated/snapshots/\(commit)")
        XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: gatedSnapshot.path)) ?? [], [])
        let snapshot = try client(token: hub.token).pull(HubRepository("org/gated")!)
        XCTAssertEqual(try Data(contentsOf: snapshot.appendingPathComponent("model.safetensors")), weights)
        let withToken = hub.requests.filter { $0.headers["authorization"] == "Bearer \(hub.token)" }
        XCTAssertFalse(withToken.isEmpty)
        XCTAssertTrue(withToken.allSatisfy { $0.headers["host"]?.hasPrefix("127.0.0.1") == true }, "\(withToken.map(\.path))")
        XCTAssertFalse(hub.requests.contains { $0.path.hasPrefix("/cdn/") && $0.headers["authorization"] != nil })
    }

    func testMissingRepositoryRevisionAndFile() throws {
        XCTAssertThrowsError(try client().pull(HubRepository("org/nothing")!)) { error in
            XCTAssertEqual(error as? HubError, .repositoryNotFound("org/nothing"))
            XCTAssertTrue("\(error)".contains("not found"))
        }
        XCTAssertThrowsError(try client().pull(HubRepository("org/model@v9")!)) { error in
            XCTAssertEqual(error as? HubError, .revisionNotFound(repository: "org/model", revision: "v9"))
        }
        XCTAssertThrowsError(try client().fileMetadata(HubRepository("org/model")!, revision: "main", path: "nope.bin")) { error in
            XCTAssertEqual(error as? HubError, .fileNotFound(repository: "org/model", path: "nope.bin"))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: cacheRoot.appendingPathComponent("models--org--nothing").path))
    }

    func testChecksumMismatchRemovesTheFile() throws {
        let sha = SHA256.hex(of: weights)
        hub.corruptBlob(sha256: sha)
        XCTAssertThrowsError(try client().pull(HubRepository("org/model")!, include: [Glob("model.safetensors")])) { error in
            guard case .checksumMismatch(let path, let expected, _) = error as? HubError else { return XCTFail("\(error)") }
            XCTAssertEqual(path, "model.safetensors")
            XCTAssertEqual(expected, sha)
        }
        XCTAssertEqual(blobNames(), [])
        XCTAssertEqual(snapshotFiles(commit), [])
    }

    func testFullDiskIsRefusedBeforeWriting() throws {
        var settings = HubSettings(endpoint: hub.endpoint, token: nil, offline: false, cache: HubCache(root: cacheRoot))
        settings.freeBytes = { _ in 1000 }
        XCTAssertThrowsError(try HubClient(settings: settings).pull(HubRepository("org/model")!, include: [Glob("model.safetensors")])) { error in
            guard case .diskFull(_, let needed, let available) = error as? HubError else { return XCTFail("\(error)") }
            XCTAssertEqual(needed, Int64(weights.count))
            XCTAssertEqual(available, 1000)
        }
        XCTAssertEqual(blobNames(), [])
        XCTAssertFalse(hub.requests.contains { $0.path.hasPrefix("/cdn/") })
    }

    func testRenamedRepositoryFollowsTheHubsRedirect() throws {
        hub.rename("old/model", to: "org/model")
        let metadata = try client().fileMetadata(HubRepository("old/model")!, revision: "main", path: "config.json")
        XCTAssertEqual(metadata.commit, commit)
        XCTAssertEqual(metadata.size, Int64(config.count))
        XCTAssertTrue(metadata.location.path.hasPrefix("/org/model/resolve/"))
        let lfs = try client().fileMetadata(HubRepository("old/model")!, revision: "main", path: "model.safetensors")
        XCTAssertEqual(lfs.etag, SHA256.hex(of: weights))
        XCTAssertTrue(lfs.isLFS)
        XCTAssertEqual(lfs.location.host, "localhost")
    }

    func testOfflineUsesTheCacheAndMakesNoRequest() throws {
        XCTAssertThrowsError(try client(offline: true).pull(HubRepository("org/model")!)) { error in
            guard case .offline = error as? HubError else { return XCTFail("\(error)") }
        }
        XCTAssertTrue(hub.requests.isEmpty)
        let snapshot = try client().pull(HubRepository("org/model")!)
        let before = hub.requests.count
        XCTAssertEqual(try client(offline: true).pull(HubRepository("org/model")!), snapshot)
        XCTAssertEqual(hub.requests.count, before)
    }
}

/// Pull events counted across the worker threads: each file's bytes as a progress bar shows
/// them (an attempt starts at what the partial file already holds).
final class EventLog: @unchecked Sendable {
    private let lock = NSLock()
    private var retryCount = 0
    private var bytes: [String: Int64] = [:]

    var record: @Sendable (PullEvent) -> Void {
        { [self] event in
            lock.withLock {
                switch event {
                case .retrying: retryCount += 1
                case .received(let path, let count): bytes[path, default: 0] += Int64(count)
                case .started(let path, _, let resumedAt): bytes[path] = resumedAt
                default: break
                }
            }
        }
    }

    var retries: Int { lock.withLock { retryCount } }
    var received: Int64 { lock.withLock { bytes.values.reduce(0, +) } }
}
