// swift-tools-version:6.1
import PackageDescription

// Microbenchmarks of dnsgate's pure core, with allocation counts (ordo-one/benchmark).
//
// A package of its own so the root package, which CI builds, carries no benchmark dependency.
// Run from the repository root with `bash bench/micro.sh` (see bench/README.md, "Microbenchmarks").
let package = Package(
    name: "dnsgate-micro",
    platforms: [.macOS(.v15)],
    dependencies: [
        // Named, because a path dependency's identity is its folder's name, which differs between clones.
        .package(name: "dnsgate", path: "../.."),
        // MallocInterposer gives the malloc counters; naming the traits also leaves out the default
        // RuntimeInterposer trait, whose package is not among the ones this machine serves.
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "DNSGateMicro",
            dependencies: [
                .product(name: "DNSGateCore", package: "dnsgate"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/DNSGateMicro",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ],
    swiftLanguageModes: [.v5]
)
