import Foundation
import XCTest
import KosmosModels
import KosmosTensor
import KosmosTokenizers
import KosmosVision

/// Runs the built `kosmos` executable (next to the test bundle; `swift build --build-tests` builds
/// it) on tiny model directories and checks its output against the library calls it stands for.
///
/// - Kosmos-1: a tiny configuration (vocabulary 902: the 900-piece SentencePiece fixture plus
///   `<image>`, `</image>`; 64 positions) written in-test with `KosmosModel.save(directory:)`.
/// - Kosmos-2: Tests/Fixtures/kosmos2_scripted, whose greedy output after "… of" is a known
///   grounding (scripts/reference/kosmos2_scripted_reference.py), with the Kosmos-2 tokenizer
///   fixture as tokenizer.json or as sentencepiece.bpe.model.
final class CLITests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")
    static let image = fixtures.appendingPathComponent("images/inputs/rgb8_224x224.png")
    static let secondImage = fixtures.appendingPathComponent("images/inputs/palette_63x41.png")
    static let kosmos1Tokenizer = fixtures.appendingPathComponent("tokenizers/uni_nmt_nfkc.model")

    static var root: URL!
    static var kosmos1: URL!
    static var kosmos2: URL!
    static var kosmos2SentencePiece: URL!

    static var executable: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("kosmos")
    }

    /// The one tiny configuration (Tests/Fixtures/kosmos_tiny_config.json) with this test's
    /// vocabulary (the 900-piece tokenizer plus `<image>`, `</image>`) and 64 positions.
    static func kosmos1Configuration() throws -> KosmosConfiguration {
        let url = fixtures.appendingPathComponent("kosmos_tiny_config.json")
        var c = try ModelDirectory.decode(KosmosConfiguration.self, from: Data(contentsOf: url), file: url)
        c.vocabSize = 902
        c.decoder.vocabSize = 902
        c.decoder.maxTargetPositions = 64
        c.imageTokenId = 900
        c.imageEndTokenId = 901
        return c
    }

    override class func setUp() {
        super.setUp()
        let fm = FileManager.default
        root = fm.temporaryDirectory.appendingPathComponent("kosmos-cli-\(UUID().uuidString)")
        kosmos1 = root.appendingPathComponent("kosmos1")
        kosmos2 = root.appendingPathComponent("kosmos2")
        kosmos2SentencePiece = root.appendingPathComponent("kosmos2-sp")
        do {
            let model = try KosmosModel(configuration: try kosmos1Configuration(), generator: RandomGenerator(seed: 7))
            try model.save(directory: kosmos1)
            try fm.copyItem(at: kosmos1Tokenizer, to: kosmos1.appendingPathComponent("tokenizer.model"))
            for (dir, tokenizer, name) in [(kosmos2!, "hf_kosmos2_bpe.tokenizer.json", "tokenizer.json"),
                                           (kosmos2SentencePiece!, "bpe_nmt_nfkc.model", "sentencepiece.bpe.model")] {
                try fm.createDirectory(at: dir, withIntermediateDirectories: true)
                for file in ["config.json", "model.safetensors"] {
                    try fm.copyItem(at: fixtures.appendingPathComponent("kosmos2_scripted/\(file)"), to: dir.appendingPathComponent(file))
                }
                try fm.copyItem(at: fixtures.appendingPathComponent("tokenizers/\(tokenizer)"), to: dir.appendingPathComponent(name))
            }
        } catch {
            XCTFail("setting up the model directories: \(error)")
        }
    }

    override class func tearDown() {
        if let root { try? FileManager.default.removeItem(at: root) }
        super.tearDown()
    }

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.executable.path) else {
            XCTFail("\(Self.executable.path) not built; run `swift build --build-tests` first")
            throw CocoaError(.fileNoSuchFile)
        }
    }

    struct Run {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    /// Runs `kosmos` with `arguments`, feeding `input` on stdin. The weights default to float32
    /// (KOSMOS_DTYPE), so outputs compare with the float32 library on every CPU; `environment` adds
    /// or replaces variables.
    func kosmos(_ arguments: [String], input: String? = nil, environment: [String: String] = [:]) throws -> Run {
        let process = Process()
        process.executableURL = Self.executable
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(["KOSMOS_DTYPE": "float32"]) { _, new in new }
            .merging(environment) { _, new in new }
        let out = Pipe(), err = Pipe(), stdin = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = stdin
        try process.run()
        if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
        try stdin.fileHandleForWriting.close()
        // Read both pipes while the process runs, so neither can fill up and block it.
        final class Box: @unchecked Sendable { var data = Data() }
        let errorData = Box()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async {
            errorData.data = err.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        let outputData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, stdout: String(decoding: outputData, as: UTF8.self),
                   stderr: String(decoding: errorData.data, as: UTF8.self))
    }

    func succeed(_ arguments: [String], input: String? = nil, file: StaticString = #filePath, line: UInt = #line) throws -> Run {
        let run = try kosmos(arguments, input: input)
        XCTAssertEqual(run.status, 0, "kosmos \(arguments.joined(separator: " ")): \(run.stderr)", file: file, line: line)
        return run
    }

    func jsonObject(_ text: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], text)
    }

    // MARK: - Kosmos-1

    struct Kosmos1 {
        let model: KosmosModel
        let tokenizer: Tokenizer
        let images: ImageInput

        init(_ directory: URL, dtype: DType = .float32) throws {
            model = try KosmosModel.load(directory: directory, dtype: dtype)
            tokenizer = try TokenizerLoader.load(directory.appendingPathComponent("tokenizer.model"))
            images = try ImageInput(modelDirectory: directory, imageSize: model.configuration.vision.imageSize)
        }

        func sequence(_ prompt: String, _ paths: [URL]) throws -> KosmosSequence {
            let loaded = try paths.map { try images.load($0) }
            return KosmosSequence(tokens: try model.promptTokens(prompt, imageCount: loaded.count, encode: tokenizer.encode), images: loaded)
        }

        func text(_ ids: [Int]) -> String { tokenizer.decode(ids.filter { $0 != model.configuration.eosTokenId }) }
    }

    func testKosmos1GenerateJSONEqualsTheLibrary() throws {
        let library = try Kosmos1(Self.kosmos1)
        let cases: [([String], (inout GenerationOptions) -> Void)] = [
            ([], { _ in }),
            (["--temperature", "0.9", "--top-k", "20", "--top-p", "0.95", "--seed", "3"],
             { $0.temperature = 0.9; $0.topK = 20; $0.topP = 0.95; $0.seed = 3 }),
            (["--beams", "3"], { $0.numBeams = 3 }),
            (["--repetition-penalty", "1.3", "--no-repeat-ngram-size", "2"], { $0.repetitionPenalty = 1.3; $0.noRepeatNgramSize = 2 }),
        ]
        for (flags, configure) in cases {
            let run = try succeed(["generate", "--model", Self.kosmos1.path, "--image", Self.image.path,
                                   "--prompt", "<image>An image of", "--max-tokens", "8", "--json"] + flags)
            let output = try jsonObject(run.stdout)
            var options = GenerationOptions()
            options.maxNewTokens = 8
            configure(&options)
            let expected = try library.model.generate(try library.sequence("<image>An image of", [Self.image]), options: options)
            XCTAssertEqual(output["ids"] as? [Int], expected, "\(flags)")
            XCTAssertEqual(output["text"] as? String, library.text(expected), "\(flags)")
            XCTAssertFalse(expected.isEmpty)
        }
    }

    /// `--dtype bfloat16`: the same tokens as the library with bfloat16 weights (both paths are
    /// one code path), and every bad dtype refused with the flag or variable named.
    func testBFloat16GenerateEqualsTheLibraryInBFloat16() throws {
        let run = try succeed(["generate", "--model", Self.kosmos1.path, "--image", Self.image.path,
                               "--prompt", "<image>An image of", "--max-tokens", "8", "--json", "--dtype", "bfloat16"])
        let library = try Kosmos1(Self.kosmos1, dtype: .bfloat16)
        XCTAssertEqual(library.model.decoder.embedTokens.weight.dtype, .bfloat16)
        var options = GenerationOptions()
        options.maxNewTokens = 8
        let expected = try library.model.generate(try library.sequence("<image>An image of", [Self.image]), options: options)
        XCTAssertEqual(try jsonObject(run.stdout)["ids"] as? [Int], expected)

        // The bench takes the same options; --threads sets the one budget it reports.
        let bench = try succeed(["bench", "gemm", "--sizes", "32", "--repeats", "1", "--dtype", "bf16", "--threads", "1"])
        XCTAssertTrue(bench.stdout.contains("bfloat16 weights") && bench.stdout.contains("threads: 1"), bench.stdout)

        // init --dtype stores every tensor in that dtype; the directory loads with its weights in
        // place (bit for bit the file's) and generates.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kosmos-init-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        _ = try succeed(["init", "--preset", "kosmos-tiny", "--out", directory.path, "--dtype", "bfloat16"])
        let file = try SafeTensorsFile(url: directory.appendingPathComponent("model.safetensors"))
        XCTAssertTrue(file.names.allSatisfy { file.entry($0)?.dtype == .bf16 }, "\(file.names.map { "\($0): \(file.entry($0)!.dtype)" })")
        let loaded = try KosmosModel.load(directory: directory, dtype: .bfloat16)
        let fc1 = loaded.decoder.layers.items[0].ffn.fc1.weight
        XCTAssertTrue(fc1.storage.isBorrowed)
        try file.withRawBytes("decoder.layers.0.ffn.fc1.weight") { bytes in
            fc1.withUnsafeMutableRawBytes { XCTAssertEqual(Array(UnsafeRawBufferPointer($0)), Array(bytes)) }
        }
        let info = try succeed(["info", "--model", directory.path])
        XCTAssertTrue(info.stdout.contains("decoder: 8,591,904 [BF16]") && !info.stdout.contains("F32"), info.stdout)
        XCTAssertNotEqual(try kosmos(["init", "--preset", "kosmos-tiny", "--out", directory.path + "-x", "--dtype", "int4"]).status, 0)

        // train --dtype is train.dtype (mixed precision); float16 training is refused by name.
        let base = ["train", "--set", "tokenizer=\"/t\"", "--set", "data.sources=[{\"path\": \"a\"}]", "--dry-run"]
        let mixed = try succeed(base + ["--dtype", "bfloat16"])
        XCTAssertTrue(mixed.stdout.contains("\"dtype\" : \"bfloat16\""), mixed.stdout)
        let half = try kosmos(base + ["--dtype", "float16"])
        XCTAssertNotEqual(half.status, 0)
        XCTAssertTrue(half.stderr.contains("train.dtype: float16 training is not supported"), half.stderr)

        let unknown = try kosmos(["generate", "--model", Self.kosmos1.path, "--prompt", "x", "--dtype", "float8"])
        XCTAssertNotEqual(unknown.status, 0)
        XCTAssertTrue(unknown.stderr.contains("--dtype 'float8' is not a dtype"), unknown.stderr)
        let variable = try kosmos(["generate", "--model", Self.kosmos1.path, "--prompt", "x"], environment: ["KOSMOS_DTYPE": "int3"])
        XCTAssertNotEqual(variable.status, 0)
        XCTAssertTrue(variable.stderr.contains("KOSMOS_DTYPE 'int3' is not a dtype"), variable.stderr)
    }

    /// `kosmos quantize`: the quantized directory generates through the CLI what the library
    /// computes with it, `info` says what it is, and quantizing it again is refused.
    func testQuantizedDirectoryGeneratesAsTheLibrary() throws {
        let out = Self.root.appendingPathComponent("kosmos1-q4")
        let run = try succeed(["quantize", "--model", Self.kosmos1.path, "--to", "q4", "--out", out.path])
        XCTAssertTrue(run.stdout.contains("Linear weights in q4"), run.stdout)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("tokenizer.model").path))
        let generated = try succeed(["generate", "--model", out.path, "--image", Self.image.path,
                                     "--prompt", "<image>An image of", "--max-tokens", "8", "--json", "--dtype", "bfloat16"])
        let library = try Kosmos1(out, dtype: .bfloat16)
        XCTAssertFalse(library.model.quantizedLinears.isEmpty)
        var options = GenerationOptions()
        options.maxNewTokens = 8
        let expected = try library.model.generate(try library.sequence("<image>An image of", [Self.image]), options: options)
        XCTAssertEqual(try jsonObject(generated.stdout)["ids"] as? [Int], expected)
        let info = try succeed(["info", "--model", out.path])
        XCTAssertTrue(info.stdout.contains("quantized: format q4, group_size 32"), info.stdout)
        let again = try kosmos(["quantize", "--model", out.path, "--to", "q8", "--out", out.path + "-again"])
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.stderr.contains("is already quantized (q4, group 32)"), again.stderr)
        let unknown = try kosmos(["quantize", "--model", Self.kosmos1.path, "--to", "q3", "--out", out.path + "-x"])
        XCTAssertTrue(unknown.stderr.contains("--to 'q3' is not a format: use q8 or q4"), unknown.stderr)
    }

    func testKosmos1GenerateStreamsTheLibrarysText() throws {
        let library = try Kosmos1(Self.kosmos1)
        let run = try succeed(["generate", "--model", Self.kosmos1.path, "--image", Self.image.path, "--image", Self.secondImage.path,
                               "--prompt", "<image> and <image> show", "--max-tokens", "10"])
        var options = GenerationOptions()
        options.maxNewTokens = 10
        let ids = try library.model.generate(try library.sequence("<image> and <image> show", [Self.image, Self.secondImage]), options: options)
        XCTAssertEqual(run.stdout, library.text(ids) + "\n")
    }

    func testKosmos1CaptionEqualsTheLibrary() throws {
        let library = try Kosmos1(Self.kosmos1)
        let run = try succeed(["caption", "--model", Self.kosmos1.path, Self.image.path, Self.secondImage.path, "--max-tokens", "6"])
        var options = GenerationOptions()
        options.numBeams = 5
        options.maxNewTokens = 6
        var expected = ""
        for image in [Self.image, Self.secondImage] {
            let ids = try library.model.generate(try library.sequence("<image>An image of", [image]), options: options)
            expected += "\(image.path)\tAn image of \(library.text(ids).trimmingCharacters(in: .whitespaces))\n"
        }
        XCTAssertEqual(run.stdout, expected)
    }

    /// The reply `kosmos chat` streams: greedy, cut at (and stopped by) the first newline.
    func chatReply(_ generate: ((Int) -> Bool) throws -> Void, decode: @escaping ([Int]) -> String, eos: Int?) rethrows -> String {
        var ids: [Int] = [], text = ""
        try generate { id in
            ids.append(id)
            text = decode(ids.filter { $0 != eos })
            if let cut = text.range(of: "\n") { text = String(text[..<cut.lowerBound]); return false }
            return true
        }
        return text
    }

    func testKosmos1ChatEqualsTheLibrary() throws {
        let library = try Kosmos1(Self.kosmos1)
        let input = "hello there\n/image \(Self.image.path)\nwhat is this\n/reset\nhi again\n/quit\n"
        let run = try succeed(["chat", "--model", Self.kosmos1.path, "--max-tokens", "5"], input: input)
        var options = GenerationOptions()
        options.maxNewTokens = 5
        func reply(_ transcript: String, _ images: [URL]) throws -> String {
            let sequence = try library.sequence(transcript, images)
            return try chatReply({ try library.model.generate(sequence, options: options, onToken: $0) },
                                 decode: library.tokenizer.decode, eos: library.model.configuration.eosTokenId)
        }
        let first = try reply("hello there\n", [])
        let second = try reply("hello there\n" + first + "\n<image>what is this\n", [Self.image])
        let third = try reply("hi again\n", [])
        let expected = "kosmos chat — /image PATH, /reset, /quit\n"
            + "> " + first + "\n"
            + "> (image attached to your next message)\n"
            + "> " + second + "\n"
            + "> (conversation cleared)\n"
            + "> " + third + "\n"
            + "> "
        XCTAssertEqual(run.stdout, expected)
    }

    // MARK: - Kosmos-2

    struct Kosmos2 {
        let model: Kosmos2Model
        let tokenizer: Tokenizer
        let images: ImageInput

        init(_ directory: URL) throws {
            model = try Kosmos2Model.load(directory: directory)
            tokenizer = try TokenizerLoader.loadKosmos2(try XCTUnwrap(TokenizerLoader.kosmos2TokenizerFile(in: directory)))
            images = try ImageInput(modelDirectory: directory, imageSize: model.configuration.vision.imageSize)
        }

        func generate(_ image: URL, _ prompt: String, _ options: GenerationOptions, onToken: (Int) -> Bool = { _ in true }) throws -> [Int] {
            let pixels = try images.load(image).unsqueezed(0)
            var ids = tokenizer.encode(model.promptText(prompt))
            let positions = try model.imageSlots(in: &ids, imageTokenId: tokenizer.id(of: "<image>")!, unknownTokenId: tokenizer.specialIds.unk!)
            return try model.generate(tokens: ids, imagePositions: positions, pixels: pixels, options: options, onToken: onToken)
        }

        func text(_ ids: [Int]) -> String { tokenizer.decode(ids.filter { $0 != model.configuration.text.eosTokenId }) }
    }

    struct ScriptedExpectation: Decodable {
        struct Entity: Decodable { let phrase: String; let start: Int; let end: Int; let boxes: [[Double]] }
        let ids: [Int]
        let decoded: String
        let text: String
        let entities: [Entity]
    }

    func scripted() throws -> ScriptedExpectation {
        try JSONDecoder().decode(ScriptedExpectation.self,
                                 from: Data(contentsOf: Self.fixtures.appendingPathComponent("kosmos2_scripted_expected.json")))
    }

    /// Both tokenizer routes: the same ids from the CLI, equal to transformers' generate() and to the library.
    func testKosmos2GenerateJSONEqualsTransformersAndTheLibrary() throws {
        let expected = try scripted()
        for directory in [Self.kosmos2!, Self.kosmos2SentencePiece!] {
            let run = try succeed(["generate", "--model", directory.path, "--image", Self.image.path,
                                   "--prompt", "<grounding> An image of", "--max-tokens", "20", "--json"])
            let output = try jsonObject(run.stdout)
            XCTAssertEqual(output["ids"] as? [Int], expected.ids, directory.lastPathComponent)
            let library = try Kosmos2(directory)
            var options = GenerationOptions()
            options.maxNewTokens = 20
            let ids = try library.generate(Self.image, "<grounding> An image of", options)
            XCTAssertEqual(ids, expected.ids)
            XCTAssertEqual(output["text"] as? String, library.text(ids))
            XCTAssertEqual(library.text(ids), expected.decoded)
        }
    }

    func testKosmos2GroundPrintsTransformersEntities() throws {
        let expected = try scripted()
        let run = try succeed(["ground", "--model", Self.kosmos2SentencePiece.path, Self.image.path])
        let output = try jsonObject(run.stdout)
        XCTAssertEqual(output["text"] as? String, expected.text)
        let entities = try XCTUnwrap(output["entities"] as? [[String: Any]])
        XCTAssertEqual(entities.count, expected.entities.count)
        XCTAssertEqual(expected.entities.first?.boxes.count, 2)
        let size = try ImageDecoder.decode(contentsOf: Self.image)
        for (got, want) in zip(entities, expected.entities) {
            XCTAssertEqual(got["phrase"] as? String, want.phrase)
            XCTAssertEqual(got["start"] as? Int, want.start)
            XCTAssertEqual(got["end"] as? Int, want.end)
            XCTAssertEqual(got["boxes"] as? [[Double]], want.boxes)
            XCTAssertEqual(got["pixelBoxes"] as? [[Int]], want.boxes.map { b in
                [Int((b[0] * Double(size.width)).rounded()), Int((b[1] * Double(size.height)).rounded()),
                 Int((b[2] * Double(size.width)).rounded()), Int((b[3] * Double(size.height)).rounded())]
            })
        }
    }

    func testKosmos2GroundDrawsTheBoxes() throws {
        let expected = try scripted()
        for name in ["grounded.png", "grounded.jpg"] {
            let out = Self.root.appendingPathComponent(name)
            let run = try succeed(["ground", "--model", Self.kosmos2.path, Self.image.path, "--draw", out.path])
            XCTAssertTrue(run.stderr.contains("drawn → \(out.path)"), run.stderr)
            let drawn = try ImageDecoder.decode(contentsOf: out)
            let original = try ImageDecoder.decode(contentsOf: Self.image)
            XCTAssertEqual(drawn.width, original.width)
            XCTAssertEqual(drawn.height, original.height)
            guard name.hasSuffix(".png") else { continue }  // JPEG is lossy: size checked only
            let boxes = expected.entities.map { entity in
                LabeledBoxes(label: entity.phrase, boxes: entity.boxes.map { b in
                    PixelBox(x1: Int((b[0] * 224).rounded()), y1: Int((b[1] * 224).rounded()),
                             x2: Int((b[2] * 224).rounded()), y2: Int((b[3] * 224).rounded()))
                })
            }
            XCTAssertEqual(drawn, BoxDrawing.draw(boxes, on: original))
            XCTAssertNotEqual(drawn, original)
            // The first box's top-left corner carries its colour; the centre of the image keeps its own.
            let first = boxes[0].boxes[0]
            let o = (first.y1 * 224 + first.x1) * 3
            XCTAssertEqual(Array(drawn.pixels[o..<(o + 3)]), [BoxDrawing.palette[0].r, BoxDrawing.palette[0].g, BoxDrawing.palette[0].b])
        }
    }

    /// With tokenizer.json and with only sentencepiece.bpe.model.
    func testKosmos2CaptionAndChatEqualTheLibrary() throws {
        for directory in [Self.kosmos2!, Self.kosmos2SentencePiece!] { try captionAndChat(directory) }
    }

    func captionAndChat(_ directory: URL) throws {
        let library = try Kosmos2(directory)
        let caption = try succeed(["caption", "--model", directory.path, Self.image.path])
        var options = GenerationOptions()
        options.numBeams = 5
        options.maxNewTokens = 30
        let ids = try library.generate(Self.image, "An image of", options)
        let text = Grounding.postProcess(library.text(ids)).text.trimmingCharacters(in: .whitespaces)
        XCTAssertEqual(text, "dog")
        XCTAssertEqual(caption.stdout, "\(Self.image.path)\tAn image of \(text)\n")

        let input = "hello\n/image \(Self.image.path)\n<grounding> An image of\n/reset\n/quit\n"
        let chat = try succeed(["chat", "--model", directory.path, "--max-tokens", "6"], input: input)
        var chatOptions = GenerationOptions()
        chatOptions.maxNewTokens = 6
        let reply = try chatReply({ _ = try library.generate(Self.image, "<grounding> An image of\n", chatOptions, onToken: $0) },
                                  decode: library.tokenizer.decode, eos: library.model.configuration.text.eosTokenId)
        let expected = "kosmos chat — /image PATH, /reset, /quit\n"
            + "> error: Kosmos-2 needs an image first: /image PATH\n"
            + "> (image attached to your next message)\n"
            + "> " + reply + "\n"
            + "> (conversation cleared)\n"
            + "> "
        XCTAssertEqual(chat.stdout, expected)
    }

    // MARK: - Bad inputs

    func assertFails(_ arguments: [String], saying phrases: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let run = try kosmos(arguments)
        XCTAssertNotEqual(run.status, 0, "kosmos \(arguments.joined(separator: " ")) succeeded: \(run.stdout)", file: file, line: line)
        for phrase in phrases {
            XCTAssertTrue(run.stderr.contains(phrase), "kosmos \(arguments.joined(separator: " ")): \(run.stderr.debugDescription) lacks \(phrase.debugDescription)",
                          file: file, line: line)
        }
        XCTAssertFalse(run.stderr.contains("Fatal error"), run.stderr, file: file, line: line)
    }

    /// `bench serve --soak`: a short soak with every kind of client, misbehaving ones included,
    /// ends with no unexpected outcome and every greedy answer equal to the same request alone.
    func testServeSoakRunsCleanly() throws {
        let run = try succeed(["bench", "serve", "--model", Self.kosmos1.path, "--soak", "3", "--clients", "6", "--max-tokens", "4"])
        XCTAssertTrue(run.stdout.contains("unexpected outcomes: 0"), run.stdout)
        XCTAssertTrue(run.stdout.contains("wrong answers (greedy answers unequal to the same request alone): 0"), run.stdout)
        XCTAssertTrue(run.stdout.contains("RSS: "), run.stdout)
        let served = run.stdout.split(separator: "\n").first { $0.hasPrefix("served ") } ?? ""
        XCTAssertFalse(served.contains("chat 0,"), String(served))
    }

    /// A model larger than the memory left fails before loading, with both sizes (the available
    /// memory lowered here by KOSMOS_MEMORY_AVAILABLE).
    func testModelTooLargeForMemoryIsRefusedWithBothSizes() throws {
        for arguments in [["generate", "--model", Self.kosmos1.path, "--prompt", "x"], ["forward", "--model", Self.kosmos1.path, "--prompt", "x",
                                                                                      "--out", Self.root.appendingPathComponent("m.safetensors").path]] {
            let run = try kosmos(arguments, environment: ["KOSMOS_MEMORY_AVAILABLE": "100000"])
            XCTAssertNotEqual(run.status, 0, "\(arguments)")
            XCTAssertTrue(run.stderr.contains("the model needs about") && run.stderr.contains("is available (KOSMOS_MEMORY_AVAILABLE)"), run.stderr)
            XCTAssertTrue(run.stderr.contains("kosmos quantize"), run.stderr)
            XCTAssertFalse(run.stderr.contains("Fatal error"), run.stderr)
        }
    }

    /// A command that does not exist is an error listing the commands, whatever follows it
    /// (ArgumentParser alone printed the root help for `kosmos frobnicate --help` and exited 0).
    func testUnknownCommandIsAnErrorListingTheCommands() throws {
        for arguments in [["frobnicate", "--help"], ["frobnicate"], ["frobnicate", "--model", "x"]] {
            let run = try kosmos(arguments)
            XCTAssertEqual(run.status, 64, "\(arguments)")
            XCTAssertTrue(run.stderr.contains("'frobnicate' is not a command of 'kosmos'"), run.stderr)
            XCTAssertTrue(run.stderr.contains("generate, caption"), run.stderr)
            XCTAssertTrue(run.stdout.isEmpty)
        }
        let nested = try kosmos(["eval", "nope", "--help"])
        XCTAssertEqual(nested.status, 64)
        XCTAssertTrue(nested.stderr.contains("'nope' is not a command of 'kosmos eval'"), nested.stderr)
        XCTAssertTrue(nested.stderr.contains("suite"), nested.stderr)
        // Real commands and help still work.
        XCTAssertTrue(try succeed(["--help"]).stdout.contains("SUBCOMMANDS"))
        XCTAssertTrue(try succeed(["eval", "task", "--help"]).stdout.contains("USAGE"))
        XCTAssertTrue(try succeed(["help", "pull"]).stdout.contains("ORG/NAME"))
    }

    func testMissingModelFilesAreNamedWithWhatToDo() throws {
        let fm = FileManager.default
        let noWeights = Self.root.appendingPathComponent("no-weights")
        let noTokenizer = Self.root.appendingPathComponent("no-tokenizer")
        let noTokenizer2 = Self.root.appendingPathComponent("no-tokenizer-2")
        for (dir, source, files) in [(noWeights, Self.kosmos1!, ["config.json", "tokenizer.model"]),
                                     (noTokenizer, Self.kosmos1!, ["config.json", "model.safetensors"]),
                                     (noTokenizer2, Self.kosmos2!, ["config.json", "model.safetensors"])] {
            try fm.createDirectory(at: dir, withIntermediateDirectories: true)
            for file in files { try fm.copyItem(at: source.appendingPathComponent(file), to: dir.appendingPathComponent(file)) }
        }
        try assertFails(["generate", "--model", noWeights.path, "--prompt", "hi"],
                        saying: ["model.safetensors: not found", "check the path"])
        try assertFails(["caption", "--model", Self.root.appendingPathComponent("nowhere").path, Self.image.path],
                        saying: ["config.json: not found", "check the path"])
        try assertFails(["generate", "--model", noTokenizer.path, "--prompt", "hi"],
                        saying: ["no tokenizer in", "pass --tokenizer"])
        try assertFails(["ground", "--model", noTokenizer2.path, Self.image.path],
                        saying: ["no tokenizer in", "sentencepiece.bpe.model", "pass --tokenizer"])
    }

    func testImagesThatDoNotDecodeAreNamed() throws {
        let notImage = Self.fixtures.appendingPathComponent("images/bad/notimage.txt").path
        let truncated = Self.fixtures.appendingPathComponent("images/bad/truncated.png").path
        try assertFails(["generate", "--model", Self.kosmos1.path, "--image", notImage, "--prompt", "<image>x"],
                        saying: ["notimage.txt", "not a JPEG, PNG, WebP, BMP, GIF or TIFF", "convert it"])
        try assertFails(["ground", "--model", Self.kosmos2.path, truncated], saying: ["truncated.png", "truncated", "re-download"])
        try assertFails(["caption", "--model", Self.kosmos2.path, Self.root.appendingPathComponent("missing.jpg").path],
                        saying: ["missing.jpg: no such file"])
    }

    func testPromptsLongerThanTheContextAreRefused() throws {
        let long = String(repeating: "the quick brown fox ", count: 40)
        try assertFails(["generate", "--model", Self.kosmos1.path, "--prompt", long], saying: ["model's context is 64 positions", "shorten the prompt"])
        try assertFails(["generate", "--model", Self.kosmos2.path, "--image", Self.image.path, "--prompt", long],
                        saying: ["model's context is 96 positions", "shorten the prompt"])
        // A prompt that fits but leaves less room than --max-tokens: generation is cut to the context.
        let run = try succeed(["generate", "--model", Self.kosmos1.path, "--prompt", "hello", "--max-tokens", "500", "--json"])
        XCTAssertTrue(run.stderr.contains("--max-tokens 500 lowered to"), run.stderr)
        let library = try Kosmos1(Self.kosmos1)
        let prompt = try library.sequence("hello", []).tokens.count
        var options = GenerationOptions()
        options.maxNewTokens = 64 - prompt
        let expected = try library.model.generate(try library.sequence("hello", []), options: options)
        XCTAssertEqual(try jsonObject(run.stdout)["ids"] as? [Int], expected)
        // Truncation only when asked: the prompt's last tokens (BOS kept) that leave --max-tokens.
        let cut = try succeed(["generate", "--model", Self.kosmos1.path, "--prompt", long, "--max-tokens", "8", "--truncate-prompt", "--json"])
        XCTAssertTrue(cut.stderr.contains("--truncate-prompt: the prompt's first"), cut.stderr)
        let full = try library.sequence(long, []).tokens
        let bos = library.tokenizer.specialIds.bos
        let head = bos != nil && full.first == bos ? [full[0]] : []
        let kept = head + full.suffix(56 - head.count)
        var eight = GenerationOptions()
        eight.maxNewTokens = 8
        XCTAssertEqual(try jsonObject(cut.stdout)["ids"] as? [Int], try library.model.generate(KosmosSequence(tokens: kept), options: eight))
        try assertFails(["generate", "--model", Self.kosmos1.path, "--image", Self.image.path, "--prompt", "<image>" + long, "--truncate-prompt"],
                        saying: ["prompts with images are not truncated"])
    }

    /// `--image-backend torchvision` preprocesses as transformers 5's default CLIPImageProcessor: the
    /// pixel values `forward` writes are the library's with that backend, and not the pil ones.
    func testImageBackendFlag() throws {
        let dir = Self.root.appendingPathComponent("backend-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var written: [String: [Float]] = [:]
        for backend in ["pil", "torchvision"] {
            let out = dir.appendingPathComponent("\(backend).safetensors")
            _ = try succeed(["forward", "--model", Self.kosmos1.path, "--image", Self.secondImage.path, "--prompt", "<image>An image of",
                             "--out", out.path, "--image-backend", backend])
            written[backend] = try SafeTensorsFile(url: out).tensor("pixel_values").scalars
            let size = try Self.kosmos1Configuration().vision.imageSize
            let library = try ImageInput(modelDirectory: Self.kosmos1, imageSize: size).with(backend: ImageBackend(name: backend))
            XCTAssertEqual(written[backend], try library.load(Self.secondImage).scalars, backend)
        }
        XCTAssertNotEqual(written["pil"], written["torchvision"])
        try assertFails(["forward", "--model", Self.kosmos1.path, "--prompt", "x", "--out", dir.appendingPathComponent("x").path,
                         "--image-backend", "opencv"], saying: ["'opencv' is not an image backend: use pil or torchvision"])
    }

    /// `forward --input-ids` runs the ids as given: the same logits as the prompt they came from;
    /// `generate --prompt-file` is `--prompt` with the file's text, and `--prefill-chunk` changes
    /// nothing of the output.
    func testInputIdsPromptFilesAndPrefillChunks() throws {
        let dir = Self.root.appendingPathComponent("long-input-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let fromPrompt = dir.appendingPathComponent("prompt.safetensors"), fromIds = dir.appendingPathComponent("ids.safetensors")
        _ = try succeed(["forward", "--model", Self.kosmos1.path, "--image", Self.image.path, "--prompt", "<image>An image of",
                         "--out", fromPrompt.path])
        let reference = try SafeTensorsFile(url: fromPrompt)
        let ids = try reference.int64s("input_ids").map { Int($0) }
        let idsFile = dir.appendingPathComponent("ids.json")
        try JSONEncoder().encode(ids).write(to: idsFile)
        _ = try succeed(["forward", "--model", Self.kosmos1.path, "--image", Self.image.path, "--input-ids", idsFile.path,
                         "--out", fromIds.path])
        let given = try SafeTensorsFile(url: fromIds)
        XCTAssertEqual(try given.int64s("input_ids").map { Int($0) }, ids)
        XCTAssertEqual(try given.tensor("logits").scalars, try reference.tensor("logits").scalars)

        let text = "<image>An image of"
        let promptFile = dir.appendingPathComponent("prompt.txt")
        try Data((text + "\n").utf8).write(to: promptFile)
        let direct = try jsonObject(try succeed(["generate", "--model", Self.kosmos1.path, "--image", Self.image.path,
                                                 "--prompt", text, "--max-tokens", "6", "--json"]).stdout)
        for flags in [["--prompt-file", promptFile.path], ["--prompt-file", promptFile.path, "--prefill-chunk", "2"],
                      ["--prompt", text, "--prefill-chunk", "1"]] {
            let run = try succeed(["generate", "--model", Self.kosmos1.path, "--image", Self.image.path, "--max-tokens", "6", "--json"] + flags)
            XCTAssertEqual(try jsonObject(run.stdout)["ids"] as? [Int], direct["ids"] as? [Int], "\(flags)")
        }

        try Data("[1, 2, oops]".utf8).write(to: idsFile)
        try assertFails(["forward", "--model", Self.kosmos1.path, "--input-ids", idsFile.path, "--out", fromIds.path],
                        saying: ["--input-ids", "not a JSON array of integer token ids"])
        try assertFails(["forward", "--model", Self.kosmos1.path, "--input-ids", idsFile.path, "--prompt", "hi", "--out", fromIds.path],
                        saying: ["--input-ids or a prompt, not both"])
        try assertFails(["generate", "--model", Self.kosmos1.path, "--prompt", "hi", "--prefill-chunk", "0"],
                        saying: ["--prefill-chunk 0"])
        try assertFails(["generate", "--model", Self.kosmos1.path, "--prompt-file", dir.appendingPathComponent("absent.txt").path],
                        saying: ["--prompt-file", "cannot read it"])
        try assertFails(["generate", "--model", Self.kosmos1.path], saying: ["--prompt or a --prompt-file"])
    }

    /// `init` takes the long-context and attention options into config.json, and the directory it
    /// writes loads with them; positions beyond xPos's range and a key/value head count that does
    /// not divide the heads are refused.
    func testInitSetsPositionsKeyValueHeadsAndQKNorm() throws {
        let directory = Self.root.appendingPathComponent("init-long-\(UUID().uuidString)")
        _ = try succeed(["init", "--preset", "kosmos-tiny", "--out", directory.path, "--max-positions", "65536", "--kv-heads", "1", "--qk-norm"])
        let model = try KosmosModel.load(directory: directory)
        XCTAssertEqual(model.configuration.decoder.maxTargetPositions, 65_536)
        XCTAssertEqual(model.configuration.decoder.kvAttentionHeads, 1)
        XCTAssertTrue(model.configuration.decoder.qkNorm)
        XCTAssertNotNil(model.decoder.layers[0].selfAttn.qNorm)
        try assertFails(["init", "--preset", "kosmos-tiny", "--out", directory.path + "-far", "--max-positions", "100000"],
                        saying: ["max_target_positions", "at most 66855 positions"])
        try assertFails(["init", "--preset", "kosmos-tiny", "--out", directory.path + "-odd", "--kv-heads", "3"],
                        saying: ["decoder_kv_attention_heads", "do not divide"])
    }

    func testBeamCountsOutsideTheLimitAreRefused() throws {
        try assertFails(["generate", "--model", Self.kosmos1.path, "--prompt", "hi", "--beams", "65"], saying: ["--beams 65", "1 to 64"])
        try assertFails(["caption", "--model", Self.kosmos2.path, Self.image.path, "--beams", "0"], saying: ["--beams 0", "1 to 64"])
    }

    func testBadDrawDestinationsAreRefusedBeforeTheModelRuns() throws {
        try assertFails(["ground", "--model", Self.kosmos2.path, Self.image.path, "--draw", Self.root.appendingPathComponent("no/dir/out.png").path],
                        saying: ["--draw", "does not exist", "create it or choose another path"])
        try assertFails(["ground", "--model", Self.kosmos2.path, Self.image.path, "--draw", Self.root.appendingPathComponent("out.gif").path],
                        saying: ["name the output .png or .jpg"])
    }
}

extension CLITests {
    /// `data passkey` writes documents that end with their key; `eval passkey` runs every length ×
    /// depth and writes the table, JSON and heat map; a length past the model's positions is refused.
    func testPasskeyDataAndEvaluation() throws {
        let dir = Self.root.appendingPathComponent("passkey-\(UUID().uuidString)")
        let model = dir.appendingPathComponent("model")
        _ = try succeed(["init", "--preset", "kosmos-tiny", "--out", model.path, "--max-positions", "1024", "--tokenizer", Self.kosmos1Tokenizer.path])
        let data = dir.appendingPathComponent("train.jsonl")
        _ = try succeed(["data", "passkey", "--out", data.path, "--tokenizer", Self.kosmos1Tokenizer.path, "--documents", "20",
                         "--min-tokens", "200", "--max-tokens", "400"])
        let lines = try String(contentsOf: data, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 20)
        for line in lines {
            let text = try XCTUnwrap(try jsonObject(String(line))["text"] as? String)
            let key = try XCTUnwrap(text.components(separatedBy: "The pass key is ").dropFirst().first?.prefix(5))
            XCTAssertTrue(text.hasSuffix("The pass key is \(key)."), text)
        }
        let json = dir.appendingPathComponent("passkey.json"), svg = dir.appendingPathComponent("passkey.svg")
        let run = try succeed(["eval", "passkey", "--model", model.path, "--lengths", "300,600", "--depths", "3", "--max-tokens", "4",
                               "--json", json.path, "--svg", svg.path])
        XCTAssertTrue(run.stdout.contains("tokens"), run.stdout)
        let report = try jsonObject(try String(contentsOf: json, encoding: .utf8))
        XCTAssertEqual(report["lengths"] as? [Int], [300, 600])
        XCTAssertEqual(report["depths"] as? [Double], [0, 0.5, 1])
        let accuracy = try XCTUnwrap(report["accuracy"] as? [[Double]])
        XCTAssertEqual(accuracy.map(\.count), [3, 3])
        XCTAssertTrue(accuracy.joined().allSatisfy { $0 == 0 || $0 == 1 })
        let tokens = try XCTUnwrap(report["prompt_tokens"] as? [Int])
        XCTAssertTrue(tokens[0] <= 300 && tokens[0] > 200 && tokens[1] <= 600 && tokens[1] > 500, "\(tokens)")
        XCTAssertEqual(try String(contentsOf: svg, encoding: .utf8).components(separatedBy: "class=\"cell\"").count - 1, 6)
        try assertFails(["eval", "passkey", "--model", model.path, "--lengths", "4096"], saying: ["4104 positions", "the model has 1024"])
    }
}
