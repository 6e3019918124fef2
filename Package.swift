// swift-tools-version:6.2
import PackageDescription

// Module map and the reasons for each cut: Docs/Architecture.md.

/// swift-system's `FileDescriptor`, under `ParleyFiles` and the modules that open files through it.
let systemPackage = Target.Dependency.product(name: "SystemPackage", package: "swift-system")

let package = Package(
    name: "Parley",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "ParleyCrypto", targets: ["ParleyCrypto"]),
        .library(name: "ParleyWire", targets: ["ParleyWire"]),
        .library(name: "ParleyChannel", targets: ["ParleyChannel"]),
        .library(name: "ParleyJournal", targets: ["ParleyJournal"]),
        .library(name: "ParleyTransport", targets: ["ParleyTransport"]),
        .library(name: "ParleySettlement", targets: ["ParleySettlement"]),
        .library(name: "ParleyDevchain", targets: ["ParleyDevchain"]),
        .library(name: "ParleyEthereum", targets: ["ParleyEthereum"]),
        .library(name: "ParleyNode", targets: ["ParleyNode"]),
        .library(name: "ParleyGames", targets: ["ParleyGames"]),
        .library(name: "ParleyControl", targets: ["ParleyControl"]),
        .executable(name: "parley", targets: ["parley"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"])]
        ),
        .systemLibrary(
            name: "CLibUV",
            pkgConfig: "libuv",
            providers: [.apt(["libuv1-dev"])]
        ),
        // Ethereum's curve (with the recovery module) and the Keccak-f permutation under keccak-256.
        .systemLibrary(
            name: "CSecp256k1",
            pkgConfig: "libsecp256k1",
            providers: [.apt(["libsecp256k1-dev"])]
        ),
        .systemLibrary(
            name: "CNettle",
            pkgConfig: "nettle",
            providers: [.apt(["nettle-dev"])]
        ),
        .target(name: "ParleyLocks", dependencies: [.product(name: "DequeModule", package: "swift-collections")]),
        // The one durable-file layer (Docs/Architecture.md): every file the library keeps goes through it.
        .target(name: "ParleyFiles", dependencies: ["ParleyLocks", systemPackage]),
        .target(name: "ParleyCrypto", dependencies: ["CSodium", "CSecp256k1", "CNettle", "ParleyLocks", "ParleyFiles", systemPackage]),
        .target(name: "ParleyWire", dependencies: ["ParleyCrypto"]),
        .target(name: "ParleyChannel", dependencies: ["ParleyCrypto", "ParleyWire", .product(name: "DequeModule", package: "swift-collections")]),
        .target(name: "ParleyJournal", dependencies: ["ParleyChannel", "ParleyWire", "ParleyCrypto", "ParleyFiles", "ParleyLocks", systemPackage, .product(name: "Metrics", package: "swift-metrics")]),
        .target(
            name: "ParleyTransport",
            dependencies: [
                "CLibUV", "ParleyLocks", "ParleyCrypto", "ParleyWire", .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "DequeModule", package: "swift-collections"),
            ]
        ),
        .target(
            name: "ParleySettlement",
            dependencies: ["ParleyLocks", "ParleyChannel", "ParleyCrypto", "ParleyWire", .product(name: "Metrics", package: "swift-metrics")]
        ),
        .target(
            name: "ParleyDevchain",
            dependencies: [
                "ParleySettlement", "ParleyTransport", "ParleyLocks", "ParleyFiles", "ParleyChannel", "ParleyCrypto", "ParleyWire",
                systemPackage, .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        .target(
            name: "ParleyNode",
            dependencies: [
                "ParleySettlement", "ParleyJournal", "ParleyTransport", "ParleyLocks", "ParleyFiles", "ParleyChannel", "ParleyCrypto",
                "ParleyWire", .product(name: "Logging", package: "swift-log"), .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        // The whole-node simulator (Docs/Simulation.md): the real node against an adversary,
        // on an in-memory network, a simulated disk and virtual time, from one seed.
        .target(
            name: "ParleySim",
            dependencies: [
                "ParleyNode", "ParleyJournal", "ParleySettlement", "ParleyTransport", "ParleyChannel", "ParleyCrypto",
                "ParleyWire", "ParleyLocks", "ParleyGames", .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HeapModule", package: "swift-collections"),
            ]
        ),
        // `parley bench`, `parley journal bench` and `parley transport bench`: the runs and
        // their reports (Docs/Performance.md); the CLI only parses and prints.
        .target(
            name: "ParleyBench",
            dependencies: [
                "ParleyNode", "ParleyDevchain", "ParleyJournal", "ParleySettlement", "ParleyTransport", "ParleyChannel",
                "ParleyCrypto", "ParleyWire", "ParleyLocks", "ParleyFiles", "ParleySubprocess", systemPackage,
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // `parley demo`: two nodes, one channel, thousands of payments, settled on chain
        // (optionally through a dispute); the CLI only parses and prints.
        .target(
            name: "ParleyDemo",
            dependencies: [
                "ParleyNode", "ParleyDevchain", "ParleyEthereum", "ParleyJournal", "ParleySettlement", "ParleyTransport",
                "ParleyChannel", "ParleyCrypto", "ParleyWire", "ParleyLocks", "ParleySubprocess",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // posix_spawn with closefrom, which Swift's Glibc module does not declare (SpawnedProcess).
        .target(name: "CParleySpawn"),
        .target(
            name: "ParleySubprocess",
            dependencies: ["CParleySpawn", "ParleyLocks", .product(name: "Histogram", package: "hdrhistogram-swift")]
        ),
        .target(name: "ParleyGames", dependencies: ["ParleyChannel", "ParleyCrypto", "ParleyWire"]),
        .target(name: "ParleyControl", dependencies: ["ParleyWire", "ParleyLocks"]),
        // The server side of the control protocol: a `Node` answering `ControlRequest`s
        // (Docs/Control.md); `parley node` serves it on stdin and on a Unix socket. Also a
        // daemon's life under swift-service-lifecycle (node, devchain, game server).
        .target(
            name: "ParleyDaemon",
            dependencies: [
                "ParleyNode", "ParleyControl", "ParleyGames", "ParleySettlement", "ParleyTransport", "ParleyChannel",
                "ParleyCrypto", "ParleyWire", "ParleyLocks", .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Ethereum transactions (RLP, EIP-1559) for the Ethereum settlement adapter (Docs/Architecture.md).
        .target(
            name: "ParleyEthereum",
            dependencies: [
                "ParleySettlement", "ParleyChannel", "ParleyCrypto", "ParleyWire", "ParleyLocks", "ParleySubprocess",
                .product(name: "Logging", package: "swift-log"), .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        .target(
            name: "ParleyDrill",
            dependencies: [
                "ParleyDevchain", "ParleySettlement", "ParleyChannel", "ParleyCrypto", "ParleySubprocess",
                "ParleyLocks", "ParleyEthereum", "ParleyWire", "ParleyControl", .product(name: "Yams", package: "Yams"),
            ]
        ),
        // `GET /metrics` in Prometheus text format for `--metrics HOST:PORT` (Docs/Metrics.md);
        // kept out of the libraries, which only record through swift-metrics. A small HTTP/1.1
        // responder on the node's libuv loop rather than FlyingFox: FlyingFox 0.27 puts no
        // deadline on reading a request and closes a malformed one without a 400.
        .target(
            name: "ParleyMetricsEndpoint",
            dependencies: [
                "ParleyTransport", .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // The fuzz targets' bodies, seeds and driver (Docs/Architecture.md, "Fuzzing"). Built
        // with everything else so the normal suite replays the committed corpora through the
        // same bodies; the libFuzzer executables that run them are added below, in fuzz builds only.
        .target(
            name: "ParleyFuzzing",
            dependencies: [
                "CLibFuzzer", "ParleyWire", "ParleyCrypto", "ParleyChannel", "ParleyTransport", "ParleyJournal",
                "ParleySettlement", "ParleyDevchain", "ParleyNode", "ParleyDrill", "ParleyEthereum", "ParleySubprocess",
            ]
        ),
        // Declares libFuzzer's `LLVMFuzzerRunDriver`; only fuzz builds link its definition.
        .target(name: "CLibFuzzer"),
        .executableTarget(
            name: "parley",
            dependencies: [
                "ParleyCrypto", "ParleyJournal", "ParleyChannel", "ParleyWire", "ParleyTransport",
                "ParleySettlement", "ParleyDevchain", "ParleyNode", "ParleyDrill", "ParleySubprocess", "ParleyLocks",
                "ParleySim", "ParleyEthereum", "ParleyControl", "ParleyGames", "ParleyDaemon", "ParleyBench", "ParleyDemo", "ParleyMetricsEndpoint",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
            ]
        ),
        .executableTarget(
            name: "offline-channel",
            dependencies: ["ParleyCrypto", "ParleyChannel", "ParleyJournal", .product(name: "DequeModule", package: "swift-collections")],
            path: "Examples/OfflineChannel"
        ),
        .executableTarget(
            name: "payment-demo",
            dependencies: [
                "ParleyNode", "ParleySettlement", "ParleyTransport", "ParleyChannel", "ParleyCrypto", "ParleyWire",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Examples/PaymentDemo"
        ),
        .executableTarget(
            name: "game-server",
            dependencies: [
                "ParleyNode", "ParleyGames", "ParleyDevchain", "ParleySettlement", "ParleyTransport", "ParleyChannel",
                "ParleyCrypto", "ParleySubprocess", "ParleyLocks", "ParleyWire", "ParleyEthereum", "ParleyDaemon",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Examples/GameServer"
        ),
        .testTarget(
            name: "ParleyCryptoTests",
            dependencies: ["ParleyCrypto", .product(name: "PropertyBased", package: "swift-property-based")]
        ),
        .testTarget(
            name: "DocSnippetTests",
            dependencies: ["ParleyNode", "ParleySettlement", "ParleyTransport", "ParleyCrypto", "ParleyControl", "ParleyWire"]
        ),
        .testTarget(
            name: "ParleyControlTests",
            dependencies: ["ParleyControl", "ParleyWire", .product(name: "PropertyBased", package: "swift-property-based")]
        ),
        .testTarget(
            name: "ParleyWireTests",
            dependencies: ["ParleyWire", "ParleyCrypto", .product(name: "PropertyBased", package: "swift-property-based")]
        ),
        .testTarget(
            name: "ParleyChannelTests",
            dependencies: [
                "ParleyChannel", "ParleyWire", "ParleyCrypto",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .testTarget(
            name: "ParleyJournalTests",
            dependencies: [
                "ParleyJournal", "ParleyChannel", "ParleyWire", "ParleyCrypto", "ParleyLocks", "ParleyTestSupport", "ParleySubprocess",
                "parley-crash-child",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .testTarget(
            name: "ParleyTransportTests",
            dependencies: [
                "ParleyTransport", "ParleyLocks", "ParleyChannel", "ParleyCrypto", "ParleyWire", "CLibUV", "ParleyTestSupport",
                .product(name: "DequeModule", package: "swift-collections"),
            ]
        ),
        // The victim of the journal's crash-recovery test (SIGKILLed at random moments); built
        // with the tests only.
        .executableTarget(
            name: "parley-crash-child",
            dependencies: [
                "ParleyJournal", "ParleyChannel", "ParleyCrypto", "ParleyWire",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            path: "Tests/CrashChild"
        ),
        // Test-only helpers for tests that run `parley` subprocesses; not a product.
        .target(
            name: "ParleyTestSupport",
            dependencies: [
                "ParleyDevchain", "ParleyTransport", "ParleyCrypto", "ParleySubprocess", "ParleyEthereum", "ParleyWire", "ParleyLocks",
            ],
            path: "Tests/ParleyTestSupport"
        ),
        .testTarget(
            name: "ParleySettlementTests",
            dependencies: [
                "ParleySettlement", "ParleyDevchain", "ParleyTransport", "ParleyLocks", "ParleyChannel", "ParleyCrypto",
                "ParleyWire", "ParleyTestSupport", "ParleyEthereum", "ParleyGames", "parley",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .testTarget(
            name: "ParleyNodeTests",
            dependencies: [
                "ParleyNode", "ParleySettlement", "ParleyJournal", "ParleyTransport", "ParleyChannel", "ParleyCrypto",
                "ParleyWire", "ParleyDevchain", "ParleyTestSupport", "ParleyGames", "ParleySubprocess", "ParleyMetricsEndpoint",
                "parley",
                .product(name: "PropertyBased", package: "swift-property-based"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ]
        ),
        .testTarget(
            name: "ParleyGamesTests",
            dependencies: ["ParleyGames", "ParleyChannel", "ParleyCrypto", .product(name: "PropertyBased", package: "swift-property-based")]
        ),
        .testTarget(
            name: "GameServerTests",
            dependencies: ["ParleyTestSupport", "ParleySubprocess", "game-server", "parley"]
        ),
        .testTarget(
            name: "ParleyDrillTests",
            dependencies: ["ParleyDrill", "ParleyNode", "ParleyTestSupport", "parley"]
        ),
        .testTarget(
            name: "ParleySimTests",
            dependencies: [
                "ParleySim", "ParleyNode", "ParleyJournal", "ParleySettlement", "ParleyChannel", "ParleyCrypto",
                "ParleyTestSupport", "ParleySubprocess", "parley",
            ]
        ),
        .testTarget(
            name: "ParleyEthereumTests",
            dependencies: [
                "ParleyEthereum", "ParleySettlement", "ParleyChannel", "ParleyCrypto", "ParleyWire", "ParleyTestSupport",
            ]
        ),
        .testTarget(name: "ParleyFilesTests", dependencies: ["ParleyFiles", "ParleyLocks", systemPackage]),
        .testTarget(name: "SystemLibraryTests", dependencies: ["CLibUV", "CSodium", "CSecp256k1", "CNettle"]),
        .testTarget(name: "ParleySubprocessTests", dependencies: ["ParleySubprocess"]),
        .testTarget(name: "ParleyFuzzingTests", dependencies: ["ParleyFuzzing"]),
    ],
    swiftLanguageModes: [.v6]
)

// One libFuzzer executable per decoder family, `fuzz-<name>` from Fuzz/Targets/<name>, only
// when PARLEY_FUZZ=1: Tools/fuzz/fuzz.py sets it and builds them with the sanitizers into
// .build-fuzz. The normal build and `make test`'s test build never see them.
if Context.environment["PARLEY_FUZZ"] == "1" {
    for name in ["frames", "handshake", "wire", "journal", "devchain", "keyfile", "peers", "drill", "ethereum"] {
        package.targets.append(.executableTarget(name: "fuzz-\(name)", dependencies: ["ParleyFuzzing"], path: "Fuzz/Targets/\(name)"))
    }
}
