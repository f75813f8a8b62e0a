import Foundation
import XCTest
@testable import DNSGateCore
import DNSGateTestSupport

/// Alert kinds one at a time, deduplication by episode, JSON form, and determinism.
final class DetectorBehaviourTests: XCTestCase {
    private let suffixes = PublicSuffixList(text: "com\nnet\norg\ntest\ngoogle\n")

    private func event(_ t: Double, _ name: String, client: String = "192.0.2.1",
                       _ type: RecordType = .a, _ rcode: ResponseCode = .noError) -> QueryEvent {
        QueryEvent(time: t, client: client, name: try! DNSName(name), type: type, rcode: rcode)
    }

    func testEncryptedResolverLookupsAreBypassAlertsOncePerEpisode() {
        let d = TunnelDetector(config: .default, suffixes: suffixes)
        let first = d.observe(event(100, "dns.google"))
        XCTAssertEqual(first.map(\.kind), [.bypass])
        XCTAssertEqual(first.first?.registeredDomain, "dns.google.")
        XCTAssertEqual(first.first?.sampleNames, ["dns.google."])
        XCTAssertEqual(d.observe(event(101, "DNS.Google.")), [], "same episode")
        XCTAssertEqual(d.observe(event(102, "mozilla.cloudflare-dns.com")).map(\.kind), [.bypass], "below an entry")
        XCTAssertEqual(d.observe(event(103, "use-application-dns.net", .aaaa)).map(\.kind), [.bypass], "Firefox canary")
        XCTAssertEqual(d.observe(event(104, "notcloudflare-dns.com")), [], "look-alike is not an entry")
        XCTAssertEqual(d.observe(event(105, "quad9.net")), [], "the operator's web site is not its resolver")
        let other = d.observe(event(106, "dns.google", client: "192.0.2.2"))
        XCTAssertEqual(other.count, 1, "per client: \(other)")
        let snapshot = d.alertsSnapshot().filter { $0.registeredDomain == "dns.google." && $0.client == "192.0.2.1" }
        XCTAssertEqual(snapshot.first?.observations, 2)
        XCTAssertEqual(snapshot.first?.lastTime, 101)
        let later = 106 + DetectorConfig.default.episodeGapSeconds + 1
        let again = d.observe(event(later, "dns.google"))
        XCTAssertEqual(again.map(\.kind), [.bypass], "a new episode after the gap: \(again)")
        XCTAssertEqual(d.alertsSnapshot(activeAt: later).filter { $0.kind == .bypass }.count, 1)
    }

    func testAlertEntropyOfALongTunnelTracksTheExactValue() {
        // Past 4,096 characters a pair's entropy is recomputed only after 1/64 more characters:
        // the alert's evidence must still follow the exact figure when the alphabet shifts.
        let d = TunnelDetector(config: .default, suffixes: suffixes)
        var rng = SeededRandom(seed: 7)
        func label(_ alphabet: [Character], _ n: Int) -> String { String((0..<n).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }) }
        let base32 = Array("abcdefghijklmnopqrstuvwxyz234567"), narrow = Array("abcdef234567")
        var t = 1000.0
        func alertEntropy() -> Double? {
            d.alertsSnapshot().first { $0.kind == .tunnel && $0.registeredDomain == "tunnel.test." }?
                .features.first { $0.name == "charEntropyBits" }?.value
        }
        func exact() -> Double { d.features(client: "192.0.2.1", registeredDomain: try! DNSName("tunnel.test"), at: t)!.entropyBits }
        for i in 0..<400 { t += 0.05; d.observe(event(t, "\(label(base32, 40)).q\(i).tunnel.test", .txt)) }
        let first = exact()
        XCTAssertEqual(alertEntropy() ?? 0, first, accuracy: 0.02, "base32: \(first) bits")
        // Twelve of the 32 letters now: the character distribution narrows and the entropy falls, still above the
        // alert's 4.5-bit threshold for a while.
        for i in 0..<150 { t += 0.05; d.observe(event(t, "\(label(narrow, 40)).r\(i).tunnel.test", .txt)) }
        let later = exact()
        XCTAssertLessThan(later, first - 0.05, "the alphabet narrowed: \(first) → \(later)")
        XCTAssertEqual(alertEntropy() ?? 0, later, accuracy: 0.02, "after the shift: \(later) bits")
    }

    func testBypassKindCanBeTurnedOff() {
        var config = DetectorConfig.default
        config.bypassNames = []
        XCTAssertEqual(TunnelDetector(config: config, suffixes: suffixes).observe(event(1, "dns.google")), [])
    }

    func testAlertIsOneJSONObjectThatRoundTrips() throws {
        let alert = DetectorAlert(client: "192.0.2.1", registeredDomain: "example.com.", kind: .wildcardBudget,
                                  features: [.init(name: "distinctNames", value: 512, threshold: 500)],
                                  sampleNames: ["a.example.com.", "b.example.com."], firstTime: 1, lastTime: 2,
                                  budgetKey: "*.example.com")
        let encoder = JSONEncoder(); encoder.outputFormatting = [.sortedKeys]
        let json = String(decoding: try encoder.encode(alert), as: UTF8.self)
        XCTAssertTrue(json.contains("\"kind\":\"wildcard-budget\""), json)
        XCTAssertTrue(json.contains("\"features\":[{\"name\":\"distinctNames\",\"threshold\":500,\"value\":512}]"), json)
        XCTAssertEqual(try JSONDecoder().decode(DetectorAlert.self, from: Data(json.utf8)), alert)
        let long = DetectorAlert(client: "c", registeredDomain: "d.", kind: .tunnel, features: [],
                                 sampleNames: (0..<9).map { "n\($0)." }, firstTime: 0, lastTime: 0)
        XCTAssertEqual(long.sampleNames.count, 5)
    }

    func testWildcardBudgetCountsDistinctNamesPerClientAndKey() {
        var config = DetectorConfig.default
        config.wildcardDistinctNames = 50
        let d = TunnelDetector(config: config, suffixes: suffixes)
        var alerts: [DetectorAlert] = []
        // Irregular gaps, so the timing test stays quiet and only the budget is exercised.
        func t(_ i: Int) -> Double { Double(i) * 1.7 + Double(i % 3) * 0.9 }
        for i in 0..<45 { alerts += d.observe(event(t(i), "w\(i).example-cdn.test"), budgetKey: "*.example-cdn.test") }
        for _ in 0..<20 { alerts += d.observe(event(t(45), "w1.example-cdn.test"), budgetKey: "*.example-cdn.test") }
        XCTAssertEqual(alerts, [], "repeats of one name do not spend the budget")
        for i in 45..<80 { alerts += d.observe(event(t(i), "w\(i).example-cdn.test"), budgetKey: "*.example-cdn.test") }
        XCTAssertEqual(alerts.map(\.kind), [.wildcardBudget])
        XCTAssertEqual(alerts.first?.budgetKey, "*.example-cdn.test")
        XCTAssertEqual(alerts.first?.registeredDomain, "example-cdn.test.")
        let other = TunnelDetector(config: config, suffixes: suffixes)
        let unkeyed = (0..<80).flatMap { other.observe(event(t($0), "w\($0).example-cdn.test")) }
        XCTAssertEqual(unkeyed, [], "no key, no budget")

        // 80 names, 40 under each of two keys for one client, then 40 for each of two clients
        // under one key, taking turns: four budgets, none spent past its 50.
        let split = TunnelDetector(config: config, suffixes: suffixes)
        var quiet: [DetectorAlert] = []
        for i in 0..<80 {
            quiet += split.observe(event(t(i), "k\(i).example-cdn.test"), budgetKey: i % 2 == 0 ? "*.example-cdn.test" : "default#7")
        }
        for i in 0..<80 {
            quiet += split.observe(event(t(80 + i), "c\(i).example-cdn.test", client: i % 2 == 0 ? "192.0.2.2" : "192.0.2.3"),
                                   budgetKey: "*.example-cdn.test")
        }
        XCTAssertEqual(quiet.filter { $0.kind == .wildcardBudget }, [], "a budget per client and key")
    }

    func testFloodOfDistinctNamesUnderOneDomainIsARateSpike() {
        let d = TunnelDetector(config: .default, suffixes: suffixes)
        var alerts: [DetectorAlert] = []
        for m in 0..<10 { alerts += d.observe(event(Double(m * 60), "www.example.org")) }   // baseline ≈ 1/min
        let start = 600.0
        for i in 0..<400 { alerts += d.observe(event(start + Double(i) * 0.1, "n\(i).example.com")) }
        XCTAssertEqual(alerts.map(\.kind), [.rateSpike])
        XCTAssertEqual(alerts.first?.features.first?.name, "newNamesLastMinute")
    }

    func testARefreshedEpisodeShowsItsLatestFeaturesWhenRead() {
        // Refreshes keep evidence as values and build the feature list when the snapshot is read:
        // the snapshot must show the last evaluation's numbers, not the opening ones. A pair in alert
        // is evaluated on every `evaluationStride`th query (`countInOpenEpisodes`), so those may be
        // that many queries old; the count of observations is exact.
        var config = DetectorConfig.default
        config.wildcardDistinctNames = 50
        let d = TunnelDetector(config: config, suffixes: suffixes)
        var opened: [DetectorAlert] = []
        for i in 0..<400 { opened += d.observe(event(600 + Double(i) * 0.1, "n\(i).example.com")) }
        for i in 0..<80 { opened += d.observe(event(700 + Double(i) * 1.3, "w\(i).example-cdn.test"), budgetKey: "*.example-cdn.test") }
        let spike = try? XCTUnwrap(opened.first { $0.kind == .rateSpike })
        let budget = try? XCTUnwrap(opened.first { $0.kind == .wildcardBudget })
        let snap = d.alertsSnapshot()
        let spikeNow = snap.first { $0.kind == .rateSpike }, budgetNow = snap.first { $0.kind == .wildcardBudget }
        XCTAssertEqual(spikeNow?.features.map(\.name), ["newNamesLastMinute"])
        XCTAssertGreaterThan(spikeNow?.features.first?.value ?? 0, spike?.features.first?.value ?? .infinity)
        XCTAssertEqual(spikeNow?.observations, 1 + 400 - Int(spike?.features.first?.value ?? 0), "opened once, refreshed by every later query")
        XCTAssertGreaterThan(spikeNow?.features.first?.value ?? 0, Double(400 - TunnelDetector.evaluationStride))
        XCTAssertLessThanOrEqual(spikeNow?.features.first?.value ?? .infinity, 400)
        XCTAssertEqual(budgetNow?.features.map(\.name), ["distinctNames"])
        XCTAssertGreaterThan(budgetNow?.features.first?.value ?? 0, budget?.features.first?.value ?? .infinity)
        XCTAssertEqual(budgetNow?.sampleNames.last, "w79.example-cdn.test.")
    }

    func testRegularQueriesWithFreshNamesAreABeaconAndRepeatsAreNot() {
        let d = TunnelDetector(config: .default, suffixes: suffixes)
        var alerts: [DetectorAlert] = []
        for i in 0..<20 { alerts += d.observe(event(Double(i) * 30, "c\(i)x.poll.example.com")) }
        XCTAssertEqual(alerts.map(\.kind), [.beacon])
        let keepalive = TunnelDetector(config: .default, suffixes: suffixes)
        let repeats = (0..<40).flatMap { keepalive.observe(event(Double($0) * 30, "status.example.com")) }
        XCTAssertEqual(repeats, [], "one name at its TTL is a keepalive")
    }

    func testTXTAndNXDOMAINHeavyEncodedNamesAreATunnel() throws {
        var rng = SeededRandom(seed: 11)
        let d = TunnelDetector(config: .default, suffixes: suffixes)
        var alerts: [DetectorAlert] = []
        for i in 0..<80 {
            let label = DetectorFixtures.base32(rng.bytes(20))   // 32 chars, short names: no length signal
            alerts += d.observe(event(Double(i) * 0.37, "\(label).t.example.net", .txt, .nxDomain))
        }
        let tunnel = try XCTUnwrap(alerts.first { $0.kind == .tunnel })
        XCTAssertEqual(Set(tunnel.features.map(\.name)),
                       ["informationBytes", "charEntropyBits", "tunnelTypeShare", "nxDomainRatio"])
        XCTAssertLessThanOrEqual(tunnel.sampleNames.count, 5)
    }

    func testSameInputGivesSameAlerts() {
        func run() -> [DetectorAlert] {
            var rng = SeededRandom(seed: 5)
            let d = TunnelDetector(config: .default, suffixes: suffixes)
            return (0..<3000).flatMap { i -> [DetectorAlert] in
                let label = DetectorFixtures.base32(rng.bytes(30))
                return d.observe(event(Double(i) * 0.2, "\(label).x\(i % 7).example.com",
                                       client: "192.0.2.\(i % 3)", i % 2 == 0 ? .txt : .a))
            }
        }
        let a = run()
        XCTAssertFalse(a.isEmpty)
        XCTAssertEqual(a, run())
    }

    func testEventsOutOfOrderAndNamesAtTheRegisteredDomainAreHarmless() {
        let d = TunnelDetector(config: .default, suffixes: suffixes)
        XCTAssertEqual(d.observe(event(1000, "example.com")), [])
        XCTAssertEqual(d.observe(event(10, "a.example.com")), [])
        XCTAssertEqual(d.observe(event(-5, "com")), [])
        XCTAssertEqual(d.observe(event(1000, ".")), [])
        let f = d.features(client: "192.0.2.1", registeredDomain: try! DNSName("example.com"), at: 1000)
        XCTAssertEqual(f?.queries, 2)
        XCTAssertEqual(f?.distinctNames, 1)
    }

    /// A detector that tracks one pair at most, example.com's, with 20 queries a second apart from `start`.
    private func detectorWithOnePair(from start: Double) -> TunnelDetector {
        var config = DetectorConfig.default
        config.maxPairs = 1
        let d = TunnelDetector(config: config, suffixes: suffixes)
        for i in 0..<20 { _ = d.observe(event(start + Double(i), "n\(i).example.com")) }
        return d
    }

    /// At the pair cap the least recently seen pair's state is recycled for the new pair: none of the
    /// old pair's counts may show, neither in the bucket both share nor once the window moves on.
    func testARecycledPairStartsEmpty() {
        let b = DetectorConfig.default.bucketSeconds
        let d = detectorWithOnePair(from: 10 * b)
        for i in 0..<30 { _ = d.observe(event(12 * b + Double(i), "m\(i).example.com")) }   // an older bucket of the window
        _ = d.observe(event(12 * b + 40, "a.example.net"))   // held: a pair is tracked from its second query
        _ = d.observe(event(12 * b + 41, "b.example.net"))   // takes over example.com's state
        let net = try! DNSName("example.net")
        XCTAssertNil(d.features(client: "192.0.2.1", registeredDomain: try! DNSName("example.com"), at: 12 * b + 41))
        XCTAssertEqual(d.features(client: "192.0.2.1", registeredDomain: net, at: 12 * b + 41)?.queries, 2)
        _ = d.observe(event(13 * b, "c.example.net"))        // the window moves: older buckets are summed
        let f = d.features(client: "192.0.2.1", registeredDomain: net, at: 13 * b)
        XCTAssertEqual(f?.queries, 3)
        XCTAssertEqual(f?.distinctNames, 3)
    }

    /// Registered domains looked up once wait in `FirstQueries`: a flood of them leaves a tracked
    /// pair in place, and a domain's second query starts its pair with both queries counted.
    func testOneOffDomainsNeitherTakeAPairNorPushOneOut() {
        let d = detectorWithOnePair(from: 0)
        for i in 0..<500 { _ = d.observe(event(100 + Double(i), "www.site\(i).example")) }
        XCTAssertEqual(d.features(client: "192.0.2.1", registeredDomain: try! DNSName("example.com"), at: 600)?.queries, 20)
        XCTAssertEqual(d.stateCounts.pairs, 1)
        XCTAssertGreaterThan(d.stateCounts.heldFirstQueries, 0)
        XCTAssertLessThanOrEqual(d.stateCounts.heldFirstQueries, 1)   // the table's size: maxPairs, rounded up to a power of two
        // A one-off's features are those of its lone query.
        let once = d.features(client: "192.0.2.1", registeredDomain: try! DNSName("site499.example"), at: 600)
        XCTAssertEqual(once?.queries, 1)
        XCTAssertEqual(once?.distinctNames, 1)
        XCTAssertNil(d.features(client: "192.0.2.1", registeredDomain: try! DNSName("site0.example"), at: 600), "its slot went to a later one-off")
        _ = d.observe(event(601, "api.site499.example"))
        let twice = d.features(client: "192.0.2.1", registeredDomain: try! DNSName("site499.example"), at: 601)
        XCTAssertEqual(twice?.queries, 2)
        XCTAssertEqual(twice?.distinctNames, 2)
        XCTAssertEqual(twice?.payloadBytes, 6)   // "www" and "api"
        XCTAssertNil(d.features(client: "192.0.2.1", registeredDomain: try! DNSName("example.com"), at: 601), "the cap is one pair")
    }

    /// Where one query can cross a threshold, no query is held: with a rate spike at one new name a
    /// minute, the first query of every registered domain raises it.
    func testNoFirstQueryIsHeldWhenOneQueryCanAlert() {
        var config = DetectorConfig.default
        config.rateSpikeMinNames = 1
        let d = TunnelDetector(config: config, suffixes: suffixes)
        XCTAssertEqual(d.observe(event(1000, "a.example.com")).map(\.kind), [.rateSpike])
        XCTAssertEqual(d.stateCounts.pairs, 1)
        XCTAssertEqual(d.stateCounts.heldFirstQueries, 0)
    }

    func testExpireDropsIdleState() {
        let d = TunnelDetector(config: .default, suffixes: suffixes)
        _ = d.observe(event(0, "a.example.com"))
        _ = d.observe(event(0, "dns.google"))
        d.expire(now: 2 * DetectorConfig.default.windowSeconds + 1)
        XCTAssertEqual(d.stateCounts, .init(pairs: 0, heldFirstQueries: 0, clients: 0, budgetKeys: 0, episodes: 0, largestLabelSet: 0, totalLabels: 0,
                                            sharedLabelSlots: 0))
    }

    /// Expiry walks from the least recently used end and stops at the first live state: a pair used
    /// again stays, one idle for the window goes, and one whose (out-of-order) time is old but that
    /// arrived after a live pair waits until that pair expires too.
    func testExpireDropsTheIdleEndOnly() {
        let w = DetectorConfig.default.windowSeconds
        let d = TunnelDetector(config: .default, suffixes: suffixes)
        // Two queries a pair: a pair is tracked from its second.
        for domain in ["example.com", "example.net"] { for n in ["a", "b"] { _ = d.observe(event(0, "\(n).\(domain)")) } }
        _ = d.observe(event(w - 100, "c.example.com"))   // example.com used again
        for n in ["a", "b"] { _ = d.observe(event(0, "\(n).example.org")) }   // late arrivals with an old time
        _ = d.observe(event(0, "a.example.info"))        // seen once: held, and dropped by time alone
        XCTAssertEqual(d.stateCounts.heldFirstQueries, 1)
        d.expire(now: w + 50)
        XCTAssertEqual(d.stateCounts.heldFirstQueries, 0)
        XCTAssertEqual(d.stateCounts.pairs, 2, "example.net went; example.com is live; example.org waits behind it")
        XCTAssertNotNil(d.features(client: "192.0.2.1", registeredDomain: try! DNSName("example.com"), at: w + 50))
        XCTAssertNil(d.features(client: "192.0.2.1", registeredDomain: try! DNSName("example.net"), at: w + 50))
        d.expire(now: 2 * w)
        XCTAssertEqual(d.stateCounts.pairs, 0)
    }
}
