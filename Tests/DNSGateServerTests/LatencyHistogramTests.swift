@testable import DNSGateServer
import Prometheus
import XCTest
import DNSGateTestSupport

/// `LatencyHistogram` replaced swift-prometheus's histogram on the query path; a scrape must read
/// the same. The same samples go into both, and the series lines are compared: buckets and count
/// exactly, the sum to the nanosecond the atomic sum keeps.
final class LatencyHistogramTests: XCTestCase {
    private let bounds = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]

    private func lines(_ bytes: [UInt8]) -> [String] {
        String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init).filter { !$0.hasPrefix("#") }
    }

    func testTheExpositionMatchesSwiftPrometheus() {
        let registry = PrometheusCollectorRegistry()
        let theirs = registry.makeValueHistogram(descriptor: .init("x_seconds", help: "x"), labels: [("upstream", "127.0.0.1:53")], buckets: bounds)
        let ours = LatencyHistogram(bounds: bounds, labels: "upstream=\"127.0.0.1:53\"")
        var rng = SeededRandom(seed: 3)
        // Every bucket, the bounds themselves (`le` is inclusive), beyond the last, and zero.
        var samples = bounds + [0, 3, 10] + bounds.map { $0 * 0.999 }
        for _ in 0..<500 { samples.append(Double(UInt64.random(in: 0...3_000_000, using: &rng)) / 1e6) }
        for s in samples { theirs.record(s); ours.record(s) }
        var mine: [UInt8] = []
        ours.emit(name: "x_seconds", into: &mine)
        let expected = lines(registry.emitToBuffer()), got = lines(mine)
        XCTAssertEqual(got.filter { !$0.contains("_sum") }, expected.filter { !$0.contains("_sum") })
        func sum(_ l: [String]) -> Double? { l.first { $0.contains("_sum") }.flatMap { Double($0.split(separator: " ").last!) } }
        XCTAssertEqual(try XCTUnwrap(sum(got)), try XCTUnwrap(sum(expected)), accuracy: Double(samples.count) * 1e-9)
    }

    /// Durations measured across a step of the wall clock: none may trap, each is counted once.
    func testDurationsAcrossAClockStepAreCountedWithoutTrapping() {
        let h = LatencyHistogram(bounds: [0.5, 1])
        for s in [-3600, 1e12, .infinity, -.infinity, .nan, 0.25] { h.record(s) }
        var out: [UInt8] = []
        h.emit(name: "z", into: &out)
        XCTAssertTrue(lines(out).contains("z_count 6"), "\(lines(out))")
    }

    func testAnEmptyHistogramWithoutLabels() {
        var out: [UInt8] = []
        LatencyHistogram(bounds: [0.5, 1]).emit(name: "y", into: &out)
        XCTAssertEqual(lines(out), ["y_bucket{le=\"0.5\"} 0", "y_bucket{le=\"1.0\"} 0", "y_bucket{le=\"+Inf\"} 0", "y_sum 0.0", "y_count 0"])
    }
}
