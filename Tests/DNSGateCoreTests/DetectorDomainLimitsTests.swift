import Foundation
import XCTest
@testable import DNSGateCore
import DNSGateTestSupport

/// Limits of their own for a registered domain (`DetectorConfig.domainLimits`). The traffic is the
/// third QA pass's registry-like build: 400 distinct package-and-version names under one registered
/// domain, each asked A then AAAA as getaddrinfo does, 200 names a second. At the defaults it is
/// flagged; with the domain's limits raised it is not, every other domain keeps the defaults, and
/// encoded data under the raised domain is still a `tunnel`.
final class DetectorDomainLimitsTests: XCTestCase {
    private let suffixes = DetectorFixtures.suffixes
    private let client = "192.0.2.20"
    private let raised = DetectorConfig.VolumeLimits(volumeBudgetBytes: 65_536, rateSpikeMinNames: 5_000, wildcardDistinctNames: 20_000)

    /// Names like `libxml-utils-2-13.reg.pkgs.test`, all distinct.
    private func registryBuild(under zone: String, names: Int = 400, start: Double = 1_800_000_000) throws -> [QueryEvent] {
        let stems = ["pam", "ssl", "xml", "curl", "zstd", "gtk", "python3", "perl", "ruby", "node", "ffi", "uuid", "icu", "lzma"]
        let parts = ["modules", "dev", "common", "utils", "data", "bin", "doc", "tools", "runtime", "headers"]
        var out: [QueryEvent] = []
        for i in 0..<names {
            let name = "lib\(stems[i % stems.count])-\(parts[(i / stems.count) % parts.count])-\(i / 140 + 1)-\(i % 7).\(zone)"
            let t = start + Double(i) / 200
            out.append(QueryEvent(time: t, client: client, name: try DNSName(name), type: .a, rcode: .noError))
            out.append(QueryEvent(time: t + 0.001, client: client, name: try DNSName(name), type: .aaaa, rcode: .noError))
        }
        return out
    }

    private func alerts(_ events: [QueryEvent], config: DetectorConfig, budgetKey: String? = nil) -> [DetectorAlert] {
        let detector = TunnelDetector(config: config, suffixes: suffixes)
        return events.flatMap { detector.observe($0, budgetKey: budgetKey) }
    }

    func testTheDefaultsFlagARegistryLikeBuild() throws {
        let kinds = Set(alerts(try registryBuild(under: "reg.pkgs.test"), config: .default).map(\.kind))
        XCTAssertTrue(kinds.contains(.rateSpike), "the fixture must cross a default limit, or the tests below prove nothing: \(kinds)")
        XCTAssertFalse(kinds.contains(.tunnel), "package names carry no encoded data")
    }

    func testLimitsSetForTheDomainSilenceItAndOnlyIt() throws {
        var config = DetectorConfig.default
        config.domainLimits = ["pkgs.test": raised]
        let events = try registryBuild(under: "reg.pkgs.test") + registryBuild(under: "mirror.other.test", start: 1_800_000_100)
        let fired = alerts(events, config: config)
        XCTAssertEqual(fired.filter { $0.registeredDomain == "pkgs.test." }.map(\.kind), [], "raised for pkgs.test")
        let other = fired.filter { $0.registeredDomain == "other.test." }
        XCTAssertTrue(other.contains { $0.kind == .rateSpike }, "other.test keeps the defaults: \(other.map(\.kind))")
        XCTAssertEqual(other.first { $0.kind == .rateSpike }?.features.first?.threshold, 300, "and shows them")
    }

    func testAnAlertShowsTheLimitOfItsDomain() throws {
        var config = DetectorConfig.default
        config.domainLimits = ["pkgs.test": DetectorConfig.VolumeLimits(volumeBudgetBytes: 65_536, rateSpikeMinNames: 350, wildcardDistinctNames: 20_000)]
        let spike = try XCTUnwrap(alerts(try registryBuild(under: "reg.pkgs.test"), config: config).first { $0.kind == .rateSpike })
        XCTAssertEqual(spike.features.first?.threshold, 350)
    }

    func testTheWildcardBudgetOfARaisedDomainIsItsOwn() throws {
        let start = 1_800_000_000.0   // slowed to 2 names a second: under the rate spike, over the 500-name wildcard budget
        let events = try registryBuild(under: "reg.pkgs.test", names: 700, start: start).map { e in
            QueryEvent(time: start + (e.time - start) * 100, client: e.client, name: e.name, type: e.type, rcode: e.rcode)
        }
        XCTAssertTrue(alerts(events, config: .default, budgetKey: "*.reg.pkgs.test").contains { $0.kind == .wildcardBudget })
        var config = DetectorConfig.default
        config.domainLimits = ["pkgs.test": raised]
        XCTAssertEqual(alerts(events, config: config, budgetKey: "*.reg.pkgs.test").map(\.kind), [])
    }

    func testEncodedDataUnderARaisedDomainIsStillATunnel() throws {
        var config = DetectorConfig.default
        config.domainLimits = ["pkgs.test": raised]
        var rng = SeededRandom(seed: 11)
        let encoded = Array(DetectorFixtures.base32(rng.bytes(4096)))
        var events: [QueryEvent] = []
        for (seq, from) in stride(from: 0, to: encoded.count, by: 52).enumerated() {
            let chunk = String(encoded[from..<min(from + 52, encoded.count)])
            events.append(QueryEvent(time: 1_800_000_000 + Double(seq) / 20, client: client,
                                     name: try DNSName("\(chunk).\(seq).reg.pkgs.test"), type: .a, rcode: .noError))
        }
        let fired = alerts(events, config: config)
        XCTAssertTrue(fired.contains { $0.kind == .tunnel && $0.registeredDomain == "pkgs.test." }, "\(fired.map(\.kind))")
        XCTAssertFalse(fired.contains { $0.kind == .volume }, "the raised volume budget holds")
    }

    /// The fourth QA pass (F3): benign names first, then a tunnel, under one raised domain. The shape
    /// signals were averaged over all the pair's names, so 700 package names held entropy and mean
    /// length under their thresholds until about 58 KB of base32 had passed; measured over the recent
    /// names they cross after a few dozen tunnel names, as for a tunnel alone.
    func testATunnelAfterBenignNamesUnderARaisedDomainIsStillCaughtEarly() throws {
        var config = DetectorConfig.default
        config.domainLimits = ["pkgs.test": raised]
        let benign = try registryBuild(under: "reg.pkgs.test", names: 700)
        let start = benign.last!.time + 1
        var rng = SeededRandom(seed: 12)
        let encoded = Array(DetectorFixtures.base32(rng.bytes(16_384)))
        var tunnel: [QueryEvent] = []
        for (seq, from) in stride(from: 0, to: encoded.count, by: 56).enumerated() {
            let chunk = String(encoded[from..<min(from + 56, encoded.count)])
            tunnel.append(QueryEvent(time: start + Double(seq) / 20, client: client,
                                     name: try DNSName("\(chunk).\(seq).reg.pkgs.test"), type: .a, rcode: .noError))
        }
        let detector = TunnelDetector(config: config, suffixes: suffixes)
        XCTAssertEqual(benign.flatMap { detector.observe($0) }.map(\.kind), [], "the benign part alone raises nothing")
        var sent = 0
        var first: DetectorAlert?
        for e in tunnel where first == nil {
            sent += 56
            first = detector.observe(e).first { $0.kind == .tunnel }
        }
        let alert = try XCTUnwrap(first, "a tunnel of \(encoded.count) base32 characters after benign names was never flagged")
        XCTAssertLessThanOrEqual(sent, 2_048, "flagged only after \(sent) characters of the tunnel: \(alert.features)")
    }
}
