@testable import DNSGateServer
import Prometheus
import XCTest

/// A scrape's families and counter series come in one order, whatever order the registry's
/// dictionaries hold them in.
final class ExpositionOrderTests: XCTestCase {
    func testFamiliesAndSeriesAreSortedAndHistogramsKeepTheirLines() {
        let text = """
            # HELP b_total B.
            # TYPE b_total counter
            b_total{k="y"} 2
            b_total{k="x"} 1
            # TYPE h_seconds histogram
            h_seconds_bucket{le="0.5"} 1
            h_seconds_bucket{le="+Inf"} 2
            h_seconds_sum 3.0
            h_seconds_count 2
            # HELP a_total A.
            # TYPE a_total counter
            a_total 5

            """
        let sorted = String(decoding: ExpositionOrder.sorted(Array(text.utf8)), as: UTF8.self)
        XCTAssertEqual(sorted, """
            # HELP a_total A.
            # TYPE a_total counter
            a_total 5
            # HELP b_total B.
            # TYPE b_total counter
            b_total{k="x"} 1
            b_total{k="y"} 2
            # TYPE h_seconds histogram
            h_seconds_bucket{le="0.5"} 1
            h_seconds_bucket{le="+Inf"} 2
            h_seconds_sum 3.0
            h_seconds_count 2

            """)
    }

    func testARegistryScrapeComesOutTheSameEveryTime() {
        // Many series, so that the registry's dictionary order differs from the sorted one.
        let registry = PrometheusCollectorRegistry()
        for i in 0..<40 { registry.makeCounter(descriptor: .init("c\(i % 7)_total", help: "c"), labels: [("k", "v\(i)")]).increment() }
        let once = ExpositionOrder.sorted(registry.emitToBuffer())
        let lines = String(decoding: once, as: UTF8.self).split(separator: "\n").filter { !$0.hasPrefix("#") }
        XCTAssertEqual(lines.count, 40)
        XCTAssertEqual(lines, lines.sorted(), "counter families hold one series a line, so sorted lines mean sorted families and series")
        XCTAssertEqual(ExpositionOrder.sorted(registry.emitToBuffer()), once)
    }
}
