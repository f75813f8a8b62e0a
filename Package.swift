// swift-tools-version:6.1
import PackageDescription

// Module boundaries (README.md, "Layout"; Sources/DNSGateCore/README.md for the core):
//   CLDNS          system library over ldns: zone files and the differential oracle for the wire codec
//   DNSGateCore    pure logic: wire, policy, cache, telemetry, detector. No sockets, no clock reads.
//   DNSGateServer  I/O: UDP listener threads (recvmmsg/sendmmsg), SwiftNIO for TCP, upstreams, control socket
//   CDNSGateSockets  C declarations of recvmmsg/sendmmsg for the UDP listener
//   dnsgate        the command line
let package = Package(
    name: "dnsgate",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "dnsgate", targets: ["dnsgate"]),
        // For bench/micro, a separate package, so the root package carries no benchmark dependency.
        .library(name: "DNSGateCore", targets: ["DNSGateCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),   // NIOHTTPDecoderLimitConfiguration
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),   // dnstap messages
    ],
    targets: [
        .systemLibrary(
            name: "CLDNS",
            pkgConfig: "ldns",
            providers: [.apt(["libldns-dev"]), .brew(["ldns"])]
        ),
        .target(
            name: "DNSGateCore",
            dependencies: ["CLDNS"],
            exclude: ["README.md"],
            swiftSettings: [
                // The server uses the core's generic sketches (SpaceSaving<DNSName>…) per query; without
                // this they run unspecialized across the module boundary, through metadata lookups.
                .unsafeFlags(["-cross-module-optimization"]),
                // Release builds skip the run-time exclusivity checks of class properties: in the
                // detector's per-query update they were an eighth of its time (bench/micro, "detector").
                // Debug builds, which the tests run, keep them, and the compile-time checks stay on.
                .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
            ]
        ),
        // recvmmsg/sendmmsg for the UDP listener, which Swift's Glibc module does not declare.
        .target(name: "CDNSGateSockets"),
        .target(
            name: "DNSGateServer",
            dependencies: [
                "DNSGateCore",
                "CDNSGateSockets",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                // NIOLock: a lock with lock()/unlock(), so BoundedBatch moves a record in, not copies it.
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            exclude: ["Dnstap/dnstap.proto"],   // the schema Dnstap.pb.swift is generated from
            // As for DNSGateCore: no run-time exclusivity checks in release builds (the listener and
            // the telemetry hub touch class properties per query).
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
        ),
        .executableTarget(
            name: "dnsgate",
            dependencies: [
                "DNSGateServer",
                "DNSGateCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // libFuzzer entry point over the decoder and the policy path; built by .ci/fuzz with -sanitize=fuzzer.
        .executableTarget(
            name: "DNSGateFuzz",
            dependencies: ["DNSGateCore"]
        ),
        // Helpers both test targets share (a seeded generator), kept out of the shipped modules.
        .target(
            name: "DNSGateTestSupport",
            dependencies: ["DNSGateCore"],
            path: "Tests/Support"
        ),
        .testTarget(
            name: "DNSGateCoreTests",
            dependencies: ["DNSGateCore", "CLDNS", "DNSGateTestSupport"]
        ),
        .testTarget(
            name: "DNSGateServerTests",
            dependencies: [
                "DNSGateServer", "DNSGateCore", "DNSGateTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                // LatencyHistogramTests compares the exposition with swift-prometheus's own histogram.
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
    ],
    swiftLanguageModes: [.v5]
)
