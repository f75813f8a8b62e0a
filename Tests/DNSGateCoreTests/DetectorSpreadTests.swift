import Foundation
import XCTest
@testable import DNSGateCore
import DNSGateTestSupport

/// `domain-spread`: one client asking for names under more registered domains in a window than a
/// build needs. It is what stops a tunnel from hiding by flooding new registered domains (sinkholed
/// ones do: the detector sees denied queries too) until its own pair is pushed out of the table and
/// its counts start again from nothing.
final class DetectorSpreadTests: XCTestCase {
    private let suffixes = DetectorFixtures.suffixes
    private let start = 1_800_000_000.0

    func testAClientAskingUnderManyRegisteredDomainsIsFlaggedOnce() throws {
        let d = TunnelDetector(suffixes: suffixes)
        var fired: [DetectorAlert] = []
        for i in 0..<1_500 {
            // twice each, as a resolver retrying would; a build's few domains asked all along
            for name in ["x.spread\(i).test", "x.spread\(i).test", "registry.example.com"] {
                fired += d.observe(QueryEvent(time: start + Double(i), client: "192.0.2.30", name: try DNSName(name), type: .a, rcode: .nxDomain))
            }
        }
        XCTAssertEqual(fired.map(\.kind), [.domainSpread], "one episode")
        let a = try XCTUnwrap(fired.first)
        XCTAssertEqual(a.registeredDomain, ".")
        let f = try XCTUnwrap(d.alertsSnapshot().first { $0.kind == .domainSpread }?.features.first)
        XCTAssertEqual(f.name, "distinctRegisteredDomains")
        XCTAssertEqual(f.threshold, 1000)
        XCTAssertGreaterThanOrEqual(f.value, 1000)
        XCTAssertLessThan(a.firstTime - start, 1_150, "fires near the 1,000th domain (HyperLogLog: a few per cent)")
    }

    func testABuildsHandfulOfDomainsAndAnotherClientAreLeftAlone() throws {
        let d = TunnelDetector(suffixes: suffixes)
        var fired: [DetectorAlert] = []
        for i in 0..<3_000 {
            let name = ["registry.example.com", "git.example.org", "cdn\(i % 40).example.net", "mirror\(i % 7).test"][i % 4]
            fired += d.observe(QueryEvent(time: start + Double(i), client: "192.0.2.31", name: try DNSName(name), type: .a, rcode: .noError))
            fired += d.observe(QueryEvent(time: start + Double(i), client: "192.0.2.\(32 + i % 200)", name: try DNSName("x.c\(i).test"),
                                          type: .a, rcode: .noError))   // 200 clients, 15 domains each
        }
        XCTAssertFalse(fired.contains { $0.kind == .domainSpread }, "\(fired.map(\.kind))")   // (the clockwork timing here is a beacon)
    }

    func testTheCountSlidesWithTheWindow() throws {
        var config = DetectorConfig.default
        config.windowSeconds = 600
        let d = TunnelDetector(config: config, suffixes: suffixes)
        var fired: [DetectorAlert] = []
        // 1,800 domains over three hours: 100 per 10-minute window, never 1,000 in one
        for i in 0..<1_800 {
            for _ in 0..<2 {
                fired += d.observe(QueryEvent(time: start + Double(i) * 6, client: "192.0.2.30", name: try DNSName("x.slow\(i).test"), type: .a, rcode: .nxDomain))
            }
        }
        XCTAssertEqual(fired.map(\.kind), [])
    }

    /// The evasion: between two queries of a base32 tunnel, the client asks for names under more new
    /// registered domains than the pair table holds (each twice, so each gets a pair). The tunnel's
    /// pair is pushed out every time and never gathers enough to alert: without `domainSpread`,
    /// nothing at all fires. The table is shrunk to 64 pairs to keep the test fast; the real one
    /// holds 2,048, twice the spread limit, so the same holds there.
    func testFloodingNewDomainsToEvictATunnelsStateIsCaught() throws {
        var config = DetectorConfig.default
        config.maxPairs = 64
        let (events, encoded) = try tunnelBehindAFlood(seed: 5, flooders: ["192.0.2.40"], repeats: 2)
        func kinds(_ c: DetectorConfig) -> [DetectorAlert.Kind] {
            let d = TunnelDetector(config: c, suffixes: suffixes)
            return events.flatMap { d.observe($0) }.map(\.kind)
        }
        var off = config
        off.spreadDistinctDomains = 0
        XCTAssertEqual(kinds(off), [], "the evasion works without domain-spread: \(encoded.count) encoded characters and no alert")
        XCTAssertEqual(kinds(config), [.domainSpread])
        var roomy = config
        roomy.maxPairs = 2048
        XCTAssertTrue(kinds(roomy).contains(.tunnel), "with room for the tunnel's pair, the tunnel itself is caught")
    }

    /// A flood of new registered domains from one container, or from several taking turns, no
    /// longer pushes another container's tunnel out: while a client holds a quarter of the table,
    /// new pairs make room from such clients' pairs, and a client past a quarter of the table's
    /// worth of domains no longer pushes out first queries others asked. Before, the tunnel's pair
    /// (or its held first query, under a flood of one-off names) was gone between any two of its
    /// queries and the tunnel was never caught; the flooders alone were flagged. With room made
    /// from the inserting client's own pairs only, two flooders taking turns still hid it (QA
    /// pass 8): the second one's first pairs pushed out the oldest, the tunnel's among them.
    func testAFloodFromOtherClientsDoesNotHideATunnel() throws {
        var config = DetectorConfig.default
        config.maxPairs = 64
        for flooders in [["192.0.2.41"], ["192.0.2.41", "192.0.2.42"], ["192.0.2.41", "192.0.2.42", "192.0.2.43"]] {
            for repeats in [1, 2] {   // one-off names (held first queries), or pairs
                let (events, _) = try tunnelBehindAFlood(seed: 6, flooders: flooders, repeats: repeats)
                let d = TunnelDetector(config: config, suffixes: suffixes)
                let alerts = events.flatMap { d.observe($0) }
                let what = "\(flooders.count) flooder(s), names asked \(repeats)×"
                for f in flooders { XCTAssertEqual(alerts.filter { $0.client == f }.map(\.kind), [.domainSpread], "\(what): \(f)") }
                XCTAssertTrue(alerts.contains { $0.client == "192.0.2.40" && $0.kind == .tunnel },
                              "\(what): the tunnel behind them: \(alerts.map(\.kind))")
                XCTAssertLessThanOrEqual(d.stateCounts.pairs, 64)
                XCTAssertLessThanOrEqual(d.stateCounts.heldFirstQueries, 64)
            }
        }
    }

    /// QA pass 8's case at the real table size (2,048 pairs, of which the oldest 64 are looked at
    /// for a heavy client's): two flooders taking turns, 1,100 new registered domains each between
    /// two of a slow tunnel's queries. With room made from the inserting client's own pairs only,
    /// the second flooder's first pairs pushed out the oldest, the tunnel's among them, every time.
    func testTwoFloodersTakingTurnsDoNotHideATunnelAtTheRealTableSize() throws {
        var rng = SeededRandom(seed: 8)
        let encoded = Array(DetectorFixtures.base32(rng.bytes(1600)))
        var events: [QueryEvent] = [], t = start
        for (seq, from) in stride(from: 0, to: encoded.count, by: 52).enumerated() {
            let chunk = String(encoded[from..<min(from + 52, encoded.count)])
            events.append(QueryEvent(time: t, client: "192.0.2.40", name: try DNSName("\(chunk).\(seq).t.exfil.test"), type: .txt, rcode: .nxDomain))
            for flooder in 1...2 {
                for j in 0..<1100 {
                    let junk = try DNSName("w.d\(seq)-\(flooder)-\(j).test")
                    for _ in 0..<2 { t += 0.005; events.append(QueryEvent(time: t, client: "192.0.2.4\(flooder)", name: junk, type: .a, rcode: .nxDomain)) }
                }
            }
            t += 8
        }
        let d = TunnelDetector(config: .default, suffixes: suffixes)
        let alerts = events.flatMap { d.observe($0) }
        XCTAssertTrue(alerts.contains { $0.client == "192.0.2.40" && $0.kind == .tunnel }, "\(alerts.map { "\($0.client) \($0.kind)" })")
        XCTAssertEqual(Set(alerts.filter { $0.kind == .domainSpread }.map(\.client)), ["192.0.2.41", "192.0.2.42"])
    }

    /// 3 KB of base32 from 192.0.2.40 under exfil.test, one query every half second, and between two
    /// of them 70 new registered domains (more than the test's 64-pair table) from each of
    /// `flooders` in turn, each asked `repeats` times. Returns the events and the encoded text.
    private func tunnelBehindAFlood(seed: UInt64, flooders: [String], repeats: Int) throws -> ([QueryEvent], [Character]) {
        var rng = SeededRandom(seed: seed)
        let encoded = Array(DetectorFixtures.base32(rng.bytes(3000)))
        var events: [QueryEvent] = [], t = start
        for (seq, from) in stride(from: 0, to: encoded.count, by: 52).enumerated() {
            let chunk = String(encoded[from..<min(from + 52, encoded.count)])
            events.append(QueryEvent(time: t, client: "192.0.2.40", name: try DNSName("\(chunk).\(seq).t.exfil.test"), type: .txt, rcode: .nxDomain))
            for (k, flooder) in flooders.enumerated() {
                for j in 0..<70 {
                    let junk = try DNSName("a.j\(seq)-\(k)-\(j).test")
                    for _ in 0..<repeats { t += 0.001; events.append(QueryEvent(time: t, client: flooder, name: junk, type: .a, rcode: .nxDomain)) }
                }
            }
            t += 0.5
        }
        return (events, encoded)
    }
}
