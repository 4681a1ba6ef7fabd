// swift-tools-version:6.1
import PackageDescription

// Layering: docs/design.md. Arrows only point down
// (CBLAS, CKosmosKernels <- KosmosTensor <- KosmosNN <- KosmosModels <- KosmosTraining / KosmosServer <- kosmos;
// KosmosModels also uses KosmosTokenizers and KosmosVision: a family owns its input processor).
//
// KosmosTensor and KosmosNN stay in Swift 5 language mode: their kernels hand raw pointers to
// `DispatchQueue.concurrentPerform` workers and keep process-wide settings (grad mode, thread
// counts), which Swift 6's strict concurrency checking rejects without adding any safety here.
//
// The `MPI` trait (`swift build --traits MPI`) links the `kosmos` executable with MPI for
// distributed training (docs/distributed.md); the default build needs no MPI installed.
let package = Package(
    name: "Kosmos",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "KosmosFormats", targets: ["KosmosFormats"]),
        .library(name: "KosmosHub", targets: ["KosmosHub"]),
        .library(name: "KosmosTensor", targets: ["KosmosTensor"]),
        .library(name: "KosmosNN", targets: ["KosmosNN"]),
        .library(name: "KosmosTokenizers", targets: ["KosmosTokenizers"]),
        .library(name: "KosmosVision", targets: ["KosmosVision"]),
        .library(name: "KosmosAudio", targets: ["KosmosAudio"]),
        .library(name: "KosmosModels", targets: ["KosmosModels"]),
        .library(name: "KosmosEval", targets: ["KosmosEval"]),
        .library(name: "KosmosEvalRuns", targets: ["KosmosEvalRuns"]),
        .library(name: "KosmosTraining", targets: ["KosmosTraining"]),
        .library(name: "KosmosServer", targets: ["KosmosServer"]),
        .library(name: "KosmosPlot", targets: ["KosmosPlot"]),
        .executable(name: "kosmos", targets: ["kosmos"]),
    ],
    traits: [
        .trait(name: "MPI", description: "Distributed training with mpirun: links MPI (Debian: libopenmpi-dev) into kosmos; docs/distributed.md"),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // The HTTP server (KosmosServer) and its request log.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // NIOCore's ByteBuffer and errors, which the server uses directly (Hummingbird brings the package).
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        // The server's graceful shutdown (SIGTERM/SIGINT): a ServiceGroup of the HTTP application
        // and the scheduler's drain (Hummingbird brings the package).
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // OpenBLAS on Linux (Debian: libopenblas-dev). On macOS the code uses Accelerate instead.
        .systemLibrary(
            name: "CBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        // Kernels that need the CPU's own instructions (AVX-512 BF16, F16C), chosen at run time from
        // cpuid with a scalar twin, and oneDNN's matrix products (Debian: libdnnl-dev) on Linux; the
        // C compiles to stubs where dnnl.h is absent (macOS: Accelerate does the products).
        // Optimised in debug builds too: the tests run long inputs through these loops (a 12,000-
        // token attention), which unoptimised code would take minutes over.
        .target(
            name: "CKosmosKernels",
            cSettings: [.unsafeFlags(["-O2"], .when(configuration: .debug))],
            linkerSettings: [.linkedLibrary("dnnl", .when(platforms: [.linux]))]
        ),
        // File formats and atomic files: safetensors (single and sharded), AtomicFile, F16/BF16.
        .target(name: "KosmosFormats", swiftSettings: [.swiftLanguageMode(.v5)]),
        // The Hugging Face Hub: `kosmos pull` into huggingface_hub's cache layout, and `--model
        // ORG/NAME` resolved through it. Foundation (URLSession over libcurl) only.
        .target(name: "KosmosHub"),
        .target(
            name: "KosmosTensor",
            dependencies: ["KosmosFormats", "CKosmosKernels", .target(name: "CBLAS", condition: .when(platforms: [.linux]))],
            swiftSettings: [.swiftLanguageMode(.v5), .unsafeFlags(["-O"], .when(configuration: .debug))]
        ),
        .target(
            name: "KosmosNN",
            dependencies: ["KosmosTensor"],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        // SentencePiece and HF tokenizer.json; Foundation only.
        .target(name: "KosmosTokenizers"),
        // libjpeg-turbo, libpng, libwebp and libtiff (Debian: libjpeg62-turbo-dev, libpng-dev, libwebp-dev, libtiff-dev). Their error handlers
        // longjmp, which Swift cannot cross, so a small C target catches errors and returns status.
        .systemLibrary(
            name: "CImageCodecs",
            providers: [.apt(["libjpeg62-turbo-dev", "libpng-dev"])]
        ),
        .target(
            name: "CImageCodecsSupport",
            dependencies: ["CImageCodecs"],
            linkerSettings: [.linkedLibrary("jpeg"), .linkedLibrary("png16"), .linkedLibrary("webp", .when(platforms: [.linux])),
                             .linkedLibrary("tiff", .when(platforms: [.linux]))]
        ),
        // FFmpeg's libavformat/libavcodec/libswscale (Debian: libswscale-dev too) read video frames
        // and write the demo's clips; like the audio layer, a C target runs the whole loop and
        // returns status codes, and compiles to stubs without FFmpeg's headers.
        .target(
            name: "CVideoCodecsSupport",
            linkerSettings: [.linkedLibrary("avformat", .when(platforms: [.linux])), .linkedLibrary("avcodec", .when(platforms: [.linux])),
                             .linkedLibrary("swscale", .when(platforms: [.linux])), .linkedLibrary("avutil", .when(platforms: [.linux]))]
        ),
        .target(
            name: "KosmosVision",
            dependencies: ["CImageCodecs", "CImageCodecsSupport", "CVideoCodecsSupport", "KosmosFormats"],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        // FFmpeg (Debian: libavformat-dev libavcodec-dev libswresample-dev) decodes and resamples
        // compressed audio; its API is macros and structs that change between releases, so a small
        // C layer runs the whole decode loop and returns status codes. Without FFmpeg's headers it
        // compiles to stubs (WAV still reads natively).
        .target(
            name: "CAudioCodecsSupport",
            linkerSettings: [.linkedLibrary("avformat", .when(platforms: [.linux])), .linkedLibrary("avcodec", .when(platforms: [.linux])),
                             .linkedLibrary("swresample", .when(platforms: [.linux])), .linkedLibrary("avutil", .when(platforms: [.linux]))]
        ),
        // Audio files → mono clips → Whisper log-mel features (plain arrays; no tensor engine).
        // Optimised in debug builds too: the tests take 45-second clips through the FFT.
        .target(
            name: "KosmosAudio",
            dependencies: ["CAudioCodecsSupport"],
            swiftSettings: [.swiftLanguageMode(.v5), .unsafeFlags(["-O"], .when(configuration: .debug))]
        ),
        .target(
            name: "KosmosModels",
            dependencies: ["KosmosNN", "KosmosTensor", "KosmosTokenizers", "KosmosVision", "KosmosAudio"],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        .target(name: "KosmosData", dependencies: ["KosmosTokenizers", "KosmosVision", "KosmosAudio"], swiftSettings: [.swiftLanguageMode(.v5)]),
        // The trainer: configuration, optimizer steps, checkpoints, metrics (above models and data).
        .target(
            name: "KosmosTraining",
            dependencies: ["KosmosModels", "KosmosData", "KosmosNN", "KosmosTensor", "KosmosTokenizers", "KosmosVision"],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        // MPI for distributed training, only with the MPI trait. Debian's libopenmpi-dev (or
        // an MPICH dev package) provides mpi.h and the mpi-c pkg-config file. MPI's handles are
        // implementation-specific macros, so a small C layer wraps the collectives; it compiles to
        // stubs where mpi.h is absent, so building every target still needs no MPI.
        .systemLibrary(
            name: "CMPI",
            pkgConfig: "mpi-c",
            providers: [.apt(["libopenmpi-dev"])]
        ),
        .target(name: "CMPISupport", dependencies: ["CMPI"]),
        .target(
            name: "KosmosMPI",
            dependencies: ["CMPISupport", "KosmosTraining"],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        // Caption and VQA metrics equal to pycocoevalcap and the official VQA evaluation; Foundation only.
        .target(name: "KosmosEval"),
        // The evaluation loops on the model interface: KosmosEval's tasks and metrics driven by a
        // ModelSession (VQA, VizWiz, captions, classification, Raven, multiple choice, the suite).
        .target(
            name: "KosmosEvalRuns",
            dependencies: ["KosmosEval", "KosmosModels"],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        // The OpenAI-compatible HTTP server (`kosmos serve`): one scheduler loop owns the model and
        // batches decoding steps across requests. Swift 5 mode: the model types it drives are
        // non-Sendable classes from Swift 5 targets, confined to the scheduler's thread.
        .target(
            name: "KosmosServer",
            dependencies: [
                "KosmosModels", "KosmosTensor", "KosmosTokenizers", "KosmosVision", "KosmosAudio",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        // The SVG loss/learning-rate plot of a metrics.jsonl (`kosmos plot`): no model code.
        .target(name: "KosmosPlot"),
        // `kosmos bench`: timings of every layer, and the loopback HTTP client the server's tests use.
        .target(
            name: "KosmosBenchmarks",
            dependencies: [
                "KosmosTensor", "KosmosNN", "KosmosTokenizers", "KosmosVision", "KosmosAudio", "KosmosData", "KosmosModels",
                "KosmosTraining", "KosmosServer", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        .executableTarget(
            name: "kosmos",
            dependencies: [
                "KosmosBenchmarks",
                "KosmosPlot",
                "KosmosTensor",
                "KosmosNN",
                "KosmosModels",
                "KosmosVision",
                "KosmosAudio",
                "KosmosTokenizers",
                "KosmosData",
                "KosmosEval",
                "KosmosEvalRuns",
                "KosmosTraining",
                "KosmosServer",
                "KosmosHub",
                .target(name: "KosmosMPI", condition: .when(traits: ["MPI"])),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "KosmosPlotTests", dependencies: ["KosmosPlot"]),
        .testTarget(name: "KosmosHubTests", dependencies: ["KosmosHub"]),
        .testTarget(
            name: "KosmosTensorTests",
            dependencies: ["KosmosTensor", "KosmosFormats"],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        .testTarget(
            name: "KosmosModelsTests",
            dependencies: ["KosmosModels", "KosmosNN", "KosmosTensor", "KosmosTokenizers", "KosmosVision"],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        .testTarget(
            name: "KosmosTokenizersTests",
            dependencies: ["KosmosTokenizers", "KosmosTensor", "KosmosBenchmarks"]
        ),
        .testTarget(
            name: "KosmosVisionTests",
            dependencies: ["KosmosVision", "KosmosFormats"],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        .testTarget(
            name: "KosmosAudioTests",
            dependencies: ["KosmosAudio", "CAudioCodecsSupport", "KosmosFormats"],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        .testTarget(name: "KosmosDataTests", dependencies: ["KosmosData", "KosmosTokenizers", "KosmosVision", "KosmosAudio"], swiftSettings: [.swiftLanguageMode(.v5)]),
        .testTarget(
            name: "KosmosEvalTests",
            dependencies: ["KosmosEval"]
        ),
        .testTarget(
            name: "KosmosTrainingTests",
            dependencies: ["KosmosTraining", "KosmosModels", "KosmosData", "KosmosNN", "KosmosTensor", "KosmosTokenizers", "KosmosVision"],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        // Runs the built `kosmos` executable as a child process (it must be built first:
        // `swift build --build-tests` builds it) and compares its output with the library calls.
        .testTarget(
            name: "KosmosCLITests",
            dependencies: ["KosmosModels", "KosmosEval", "KosmosEvalRuns", "KosmosTensor", "KosmosTokenizers", "KosmosVision", "KosmosAudio"],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        .testTarget(
            name: "KosmosServerTests",
            dependencies: ["KosmosServer", "KosmosBenchmarks", "KosmosModels", "KosmosTensor", "KosmosTokenizers", "KosmosVision",
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        .testTarget(
            name: "KosmosNNTests",
            dependencies: ["KosmosNN", "KosmosTensor"],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
    ]
)
