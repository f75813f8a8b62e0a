import Foundation
import XCTest
@testable import DNSGateCore
import DNSGateTestSupport

/// Synthetic sequences the public corpora lack: low-and-slow exfiltration under one domain, and a
/// build that fetches content-addressed blobs from a CDN-shaped wildcard. Seeded, so deterministic.
final class DetectorScenarioTests: XCTestCase {
    private let suffixes = DetectorFixtures.suffixes

    /// `labelLength`-character chunks of `encoded`, one query every 5 s (± 2 %), under `zone`.
    private func lowAndSlow(_ encoded: String, labelLength: Int, zone: String, start: Double) throws -> [QueryEvent] {
        var rng = SeededRandom(seed: 7)
        let chars = Array(encoded)
        var t = start, out: [QueryEvent] = []
        for (seq, from) in stride(from: 0, to: chars.count, by: labelLength).enumerated() {
            let chunk = String(chars[from..<min(from + labelLength, chars.count)])
            out.append(QueryEvent(time: t, client: "192.0.2.10", name: try DNSName("\(chunk).\(seq).\(zone)"),
                                  type: .a, rcode: .noError))
            t += 5 * Double.random(in: 0.98...1.02, using: &rng)
        }
        return out
    }

    /// Feeds `events` and returns the index of the first alert of `kind` with the features just
    /// before and at it, and the payload sent up to it.
    private func firstAlert(_ kind: DetectorAlert.Kind, in events: [QueryEvent], config: DetectorConfig = .default)
        -> (index: Int, before: TunnelDetector.PairFeatures?, at: TunnelDetector.PairFeatures, payload: Int, alert: DetectorAlert)? {
        let detector = TunnelDetector(config: config, suffixes: suffixes)
        var previous: TunnelDetector.PairFeatures? = nil, payload = 0
        for (i, e) in events.enumerated() {
            payload += DetectorFixtures.payload(e)
            let alerts = detector.observe(e)
            let domain = suffixes.registeredDomain(e.name)
            let now = detector.features(client: e.client, registeredDomain: domain, at: e.time)!
            if let a = alerts.first(where: { $0.kind == kind }) { return (i, previous, now, payload, a) }
            previous = now
        }
        return nil
    }

    func testLowAndSlowBase32SecretIsFlaggedWhenItPassesTheBudget() throws {
        var rng = SeededRandom(seed: 1)
        let secret = rng.bytes(2048)
        let events = try lowAndSlow(DetectorFixtures.base32(secret), labelLength: 52, zone: "ls.example.net", start: 1_800_000_000)
        let hit = try XCTUnwrap(firstAlert(.tunnel, in: events))
        let budget = DetectorConfig.default.tunnelBudgetBytes
        XCTAssertGreaterThanOrEqual(hit.at.informationBytes, budget)
        XCTAssertLessThan(try XCTUnwrap(hit.before).informationBytes, budget, "fires on the query that crosses the budget")
        XCTAssertEqual(hit.alert.registeredDomain, "example.net.")
        XCTAssertTrue(hit.alert.features.contains { $0.name == "charEntropyBits" })
        print("| low-and-slow base32, 52-char labels, 1 q / 5 s | \(events.count) | \(hit.index + 1) | \(hit.payload) | \(Int(hit.at.informationBytes)) | \(Int(events.last!.time - events.first!.time)) s total, alert after \(Int(events[hit.index].time - events[0].time)) s |")
    }

    func testLowAndSlowHexSecretIsFlaggedWhenItPassesTheBudget() throws {
        var rng = SeededRandom(seed: 2)
        let events = try lowAndSlow(DetectorFixtures.hex(rng.bytes(2048)), labelLength: 60, zone: "ls.example.org", start: 1_800_000_000)
        let hit = try XCTUnwrap(firstAlert(.tunnel, in: events))
        XCTAssertGreaterThanOrEqual(hit.at.informationBytes, DetectorConfig.default.tunnelBudgetBytes)
        XCTAssertLessThan(try XCTUnwrap(hit.before).informationBytes, DetectorConfig.default.tunnelBudgetBytes)
        XCTAssertNotNil(firstAlert(.beacon, in: events), "fixed period with a fresh name each time")
        print("| low-and-slow hex, 60-char labels, 1 q / 5 s | \(events.count) | \(hit.index + 1) | \(hit.payload) | \(Int(hit.at.informationBytes)) | \(Int(events.last!.time - events.first!.time)) s total, alert after \(Int(events[hit.index].time - events[0].time)) s |")
    }

    /// With shape scoring off, the plain Paxson budget still catches the secret, exactly when its
    /// information passes the configured number.
    func testConfiguredVolumeBudgetAloneFiresAtTheCrossing() throws {
        var rng = SeededRandom(seed: 3)
        let events = try lowAndSlow(DetectorFixtures.base32(rng.bytes(2048)), labelLength: 40, zone: "ls.example.com", start: 1_800_000_000)
        var config = DetectorConfig.default
        config.tunnelBudgetBytes = .infinity
        config.beaconIntervals = 1_000_000
        config.volumeBudgetBytes = 1536
        let hit = try XCTUnwrap(firstAlert(.volume, in: events, config: config))
        XCTAssertGreaterThanOrEqual(hit.at.informationBytes, 1536)
        XCTAssertLessThan(try XCTUnwrap(hit.before).informationBytes, 1536)
        XCTAssertEqual(hit.alert.features, [.init(name: "informationBytes", value: hit.at.informationBytes, threshold: 1536)])
    }

    /// One build: ~100 content-addressed blobs (40-hex labels) under a CDN wildcard, A and AAAA for
    /// each, between registry and source-host lookups, Poisson-like arrivals: no alert of any kind.
    func testBuildLikeHashLabelsUnderACDNWildcardAreNotFlagged() throws {
        let events = buildLikeSequence(blobs: 100, seed: 4)
        let detector = TunnelDetector(config: .default, suffixes: suffixes)
        var alerts: [DetectorAlert] = []
        for e in events {
            let key = e.name.isSubdomain(of: try DNSName("example-cdn.test")) ? "*.example-cdn.test" : nil
            alerts += detector.observe(e, budgetKey: key)
        }
        XCTAssertEqual(alerts, [])
        let f = try XCTUnwrap(detector.features(client: "192.0.2.20", registeredDomain: try DNSName("example-cdn.test"),
                                                at: events.last!.time))
        XCTAssertEqual(f.distinctNames, 100)
        XCTAssertLessThanOrEqual(f.entropyBits, 4.1, "hex tops out at 4 bits/char")
        print("| build-like: 100 × 40-hex blobs under example-cdn.test, A+AAAA, mean gap 1.5 s | \(events.count) | – | \(f.payloadBytes) | \(Int(f.informationBytes)) | 0 alerts (entropy \(String(format: "%.2f", f.entropyBits)), mean subdomain \(String(format: "%.1f", f.meanSubdomainLength))) |")
    }

    func buildLikeSequence(blobs: Int, seed: UInt64) -> [QueryEvent] {
        var rng = SeededRandom(seed: seed)
        var t = 1_800_000_000.0, out: [QueryEvent] = []
        let fixed = ["registry.example.org", "source.example.com", "api.source.example.com", "objects.example.net"]
        func add(_ name: String, _ type: RecordType) {
            out.append(QueryEvent(time: t, client: "192.0.2.20", name: try! DNSName(name), type: type, rcode: .noError))
            t += -1.5 * log(Double.random(in: 0.0001...1, using: &rng))   // exponential gaps, mean 1.5 s
        }
        for i in 0..<blobs {
            let blob = DetectorFixtures.hex(rng.bytes(20))
            add("\(blob).objects.example-cdn.test", .a)
            add("\(blob).objects.example-cdn.test", .aaaa)
            if i % 3 == 0 { add(fixed[i % fixed.count], .a); add(fixed[i % fixed.count], .https) }
        }
        return out
    }
}
