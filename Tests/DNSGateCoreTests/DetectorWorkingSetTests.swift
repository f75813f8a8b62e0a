import Foundation
import XCTest
@testable import DNSGateCore
import DNSGateTestSupport

/// A client that looks up the same few hundred names under one domain again and again (a test suite
/// talking to its service hosts in a loop) repeats itself: the repeats are neither new names nor new
/// information, however many names the working set has, while ever-new names still are.
final class DetectorWorkingSetTests: XCTestCase {
    private let suffixes = DetectorFixtures.suffixes
    private let client = "192.0.2.40"
    private let wildcard = "*.pkgs.test"
    private let domain = try! DNSName("pkgs.test")

    private func name(_ i: Int) -> DNSName { try! DNSName(String(format: "host-%03d.m45.pkgs.test", i)) }

    /// `rounds` passes over `names` distinct names at `rate` queries a second; the alerts raised and
    /// the last query's time.
    private func loop(_ d: TunnelDetector, names: Int, rounds: Int, rate: Double = 300) -> (alerts: [DetectorAlert], end: Double) {
        var alerts: [DetectorAlert] = [], t = 1_800_000_000.0
        for q in 0..<(names * rounds) {
            t = 1_800_000_000 + Double(q) / rate
            alerts += d.observe(QueryEvent(time: t, client: client, name: name(q % names), type: .a, rcode: .noError), budgetKey: wildcard)
        }
        return (alerts, t)
    }

    /// QA's reproductions: 129 names × 4 rounds raised `rate-spike` (300 "new" names in a minute) and
    /// quarantined the client, 200 × 10 `rate-spike` and `volume` (4,098 bytes of "information"),
    /// where 127 × 4 and 100 × 20 raised nothing: past 128 names every repeat counted as new.
    func testRepeatedWorkingSetsOfQAsReproductionsRaiseNothing() {
        for (names, rounds) in [(127, 4), (129, 4), (200, 10), (100, 20), (450, 10)] {
            let d = TunnelDetector(config: .default, suffixes: suffixes)
            // 450 new names at 300 a second would be a rate spike of their own: 4 a second.
            let run = loop(d, names: names, rounds: rounds, rate: names > 300 ? 4 : 300)
            XCTAssertEqual(run.alerts.map(\.kind), [], "\(names) names × \(rounds) rounds")
            XCTAssertEqual(d.features(client: client, registeredDomain: domain, at: run.end)?.distinctNames, names, "\(names) names × \(rounds) rounds")
        }
    }

    /// The same number of queries with a name never seen before each time is still a flood and still
    /// spends the wildcard budget.
    func testEverNewNamesStillRaise() {
        for (queries, rate) in [(129 * 4, 300.0), (200 * 10, 300.0)] {
            let d = TunnelDetector(config: .default, suffixes: suffixes)
            let alerts = loop(d, names: queries, rounds: 1, rate: rate).alerts
            XCTAssertTrue(alerts.contains { $0.kind == .rateSpike }, "\(queries) new names: \(alerts.map(\.kind))")
            XCTAssertTrue(alerts.contains { $0.kind == .wildcardBudget }, "\(queries) new names: \(alerts.map(\.kind))")
        }
    }

    /// Larger working sets, read from the features: repeats add neither names nor information, up to
    /// a few thousand names (two hashes each the first time: the name and its first label; a repeat
    /// looks up the name only).
    func testRepeatsOfAFewThousandNamesAddNothing() throws {
        for names in [500, 1000, 2000, 3000] {
            let d = TunnelDetector(config: .default, suffixes: suffixes)
            var t = 1_800_000_000.0
            func round() throws -> TunnelDetector.PairFeatures {
                for i in 0..<names {
                    d.observe(QueryEvent(time: t, client: client, name: name(i), type: .a, rcode: .noError))
                    t += 0.3   // three rounds of 3,000 inside the hour-long window
                }
                return try XCTUnwrap(d.features(client: client, registeredDomain: domain, at: t))
            }
            let first = try round()
            XCTAssertEqual(first.distinctNames, names)
            for r in 2...3 {
                let again = try round()
                XCTAssertEqual(again.distinctNames, names, "\(names) names, round \(r)")
                XCTAssertEqual(again.informationBytes, first.informationBytes, accuracy: 0.001, "\(names) names, round \(r)")
            }
        }
    }

    /// A working set stays while new names come and go around it (a build fetching fresh blobs
    /// between lookups of its service hosts): a repeat found in the older generation moves to the newer.
    func testAWorkingSetStaysAmongAStreamOfNewNames() throws {
        let d = TunnelDetector(config: .default, suffixes: suffixes)
        // 6,000 fresh names, two hashes each: the per-pair memory turns over more than once.
        var t = 1_800_000_000.0, fresh = 0
        for round in 0..<20 {
            for i in 0..<300 {
                d.observe(QueryEvent(time: t, client: client, name: name(i), type: .a, rcode: .noError)); t += 0.2
                d.observe(QueryEvent(time: t, client: client, name: try DNSName("blob\(fresh).m46.pkgs.test"), type: .a, rcode: .noError))
                fresh += 1; t += 0.2
            }
            if round == 0 { continue }
            let f = try XCTUnwrap(d.features(client: client, registeredDomain: domain, at: t))
            XCTAssertEqual(f.distinctNames, 300 + fresh, "round \(round): only the fresh names are new")
        }
    }
}
