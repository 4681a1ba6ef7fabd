import Foundation
@testable import KosmosHub
import XCTest

final class HubPartsTests: XCTestCase {
    func testSHA256KnownDigests() {
        // FIPS 180-4's examples (one block, two blocks) and the empty message.
        XCTAssertEqual(SHA256.hex(of: [UInt8]()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex(of: Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex(of: Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(SHA256.hex(of: [UInt8](repeating: 0x61, count: 1_000_000)),
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    func testSHA256InPiecesEqualsWhole() {
        let bytes = (0 ..< 1000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let whole = SHA256.hex(of: bytes)
        for cut in [1, 55, 56, 63, 64, 65, 200, 999] {
            var hasher = SHA256()
            bytes[..<cut].withUnsafeBytes { hasher.update($0) }
            bytes[cut...].withUnsafeBytes { hasher.update($0) }
            XCTAssertEqual(hasher.finalizeHex(), whole, "cut at \(cut)")
        }
    }

    func testGlobMatchesAsFnmatchcase() {
        // Python: fnmatch.fnmatchcase(name, pattern); `*` crosses "/".
        let cases: [(String, String, Bool)] = [
            ("*.json", "config.json", true), ("*.json", "sub/config.json", true), ("*.json", "config.jsonl", false),
            ("model-*.safetensors", "model-00001-of-00002.safetensors", true), ("model-*.safetensors", "model.safetensors", false),
            ("*.JSON", "config.json", false), ("?.txt", "a.txt", true), ("?.txt", "ab.txt", false),
            ("[!a]bc", "xbc", true), ("[!a]bc", "abc", false), ("[a-c]x", "bx", true), ("[a-c]x", "dx", false),
            ("[]]x", "]x", true), ("[x", "[x", true), ("sub/", "sub/a.bin", true), ("sub/", "subway", false),
            ("*", "", true), ("a*b*c", "aXXbYYc", true), ("a*b*c", "aXXbYY", false), ("tokenizer*", "tokenizer.model", true),
        ]
        for (pattern, name, expected) in cases {
            XCTAssertEqual(Glob(pattern).matches(name), expected, "\(pattern) ~ \(name)")
        }
    }

    func testRepositoryNames() {
        XCTAssertEqual(HubRepository("microsoft/kosmos-2-patch14-224"), HubRepository(id: "microsoft/kosmos-2-patch14-224"))
        XCTAssertEqual(HubRepository("org/name@v1.0")?.revision, "v1.0")
        XCTAssertEqual(HubRepository("org/name")?.folderName, "models--org--name")
        for path in ["/data/model", "./model", "model", "runs/demo/latest", "a/b/", "org/na me", "org/name@", "-org/name",
                     "org--x/name", "../x", "org/name@a/b", "org/.name"] {
            XCTAssertNil(HubRepository(path), path)
        }
        XCTAssertTrue(HubRepository("o/n@" + String(repeating: "a", count: 40))!.revisionIsCommit)
        XCTAssertFalse(HubRepository("o/n@" + String(repeating: "A", count: 40))!.revisionIsCommit)
    }

    func testSettingsFromEnvironment() throws {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("hubenv-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: home) }
        try Data("hf_from_file\n".utf8).write(to: home.appendingPathComponent("token"))

        let fromHome = try HubSettings(environment: ["HF_HOME": home.path, "HF_ENDPOINT": "http://127.0.0.1:9/"])
        XCTAssertEqual(fromHome.endpoint.absoluteString, "http://127.0.0.1:9")
        XCTAssertEqual(fromHome.token, "hf_from_file")
        XCTAssertEqual(fromHome.cache.root.path, home.appendingPathComponent("hub").path)
        XCTAssertFalse(fromHome.offline)

        let explicit = try HubSettings(environment: ["HF_HOME": home.path, "HF_TOKEN": "hf_env", "HF_HUB_CACHE": "/tmp/elsewhere",
                                                     "HF_HUB_OFFLINE": "1"])
        XCTAssertEqual(explicit.token, "hf_env")
        XCTAssertEqual(explicit.cache.root.path, "/tmp/elsewhere")
        XCTAssertEqual(explicit.endpoint.absoluteString, "https://huggingface.co")
        XCTAssertTrue(explicit.offline)

        let xdg = try HubSettings(environment: ["XDG_CACHE_HOME": "/tmp/xdg", "TRANSFORMERS_OFFLINE": "true"])
        XCTAssertEqual(xdg.cache.root.path, "/tmp/xdg/huggingface/hub")
        XCTAssertTrue(xdg.offline)
        XCTAssertNil(xdg.token)

        XCTAssertThrowsError(try HubSettings(environment: ["HF_ENDPOINT": "ftp://x"]))
    }
}
