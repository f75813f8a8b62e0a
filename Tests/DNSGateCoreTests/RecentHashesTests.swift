import XCTest
@testable import DNSGateCore
import DNSGateTestSupport

/// The detector's per-pair memory of names and labels, and the reused state behind it.
final class RecentHashesTests: XCTestCase {
    func testRemembersTheLatestTimeAndGrowsPastItsFirstTable() {
        var r = RecentHashes(), scratch = RecentHashes.Scratch()
        XCTAssertNil(r.lastSeen(42))
        for h in 0..<200 as Range<UInt64> { r.remember(StableHash.mix(h), at: Double(h), cap: 256, window: 1000, scratch: &scratch) }
        XCTAssertEqual(r.count, 200)
        r.remember(StableHash.mix(7), at: 500, cap: 256, window: 1000, scratch: &scratch)
        r.remember(StableHash.mix(7), at: 300, cap: 256, window: 1000, scratch: &scratch)   // older: ignored
        XCTAssertEqual(r.lastSeen(StableHash.mix(7)), 500)
        XCTAssertEqual(r.lastSeen(StableHash.mix(199)), 199)
        XCTAssertNil(r.lastSeen(StableHash.mix(200)))
        r.remember(0, at: 1, cap: 256, window: 1000, scratch: &scratch)                     // 0 marks empty slots
        XCTAssertEqual(r.lastSeen(0), 1)
        r.removeAll()
        XCTAssertEqual(r.count, 0)
        XCTAssertNil(r.lastSeen(StableHash.mix(7)))
    }

    func testAtTheCapForgetsExpiredThenTheOlderHalf() {
        var r = RecentHashes(), scratch = RecentHashes.Scratch()
        for h in 0..<8 as Range<UInt64> { r.remember(StableHash.mix(h), at: Double(h), cap: 8, window: 100, scratch: &scratch) }
        // At t = 104 the entries from 0…3 are out of the 100 s window: only they go.
        r.remember(StableHash.mix(100), at: 104, cap: 8, window: 100, scratch: &scratch)
        XCTAssertEqual(r.count, 5)
        XCTAssertNil(r.lastSeen(StableHash.mix(3)))
        XCTAssertEqual(r.lastSeen(StableHash.mix(4)), 4)
        // Full again, every entry inside a longer window: the older half goes (times up to the median,
        // 104, the time of hash 100).
        for h in 101..<104 as Range<UInt64> {
            r.remember(StableHash.mix(h), at: 104 + Double(h - 100) / 10, cap: 8, window: 1000, scratch: &scratch)
        }
        XCTAssertEqual(r.count, 8)
        r.remember(StableHash.mix(200), at: 105, cap: 8, window: 1000, scratch: &scratch)
        for gone in [4, 7, 100] as [UInt64] { XCTAssertNil(r.lastSeen(StableHash.mix(gone)), "\(gone)") }
        XCTAssertEqual(r.lastSeen(StableHash.mix(101)), 104.1)
        XCTAssertEqual(r.lastSeen(StableHash.mix(200)), 105)
        XCTAssertEqual(r.count, 4)
    }

    func testSelectionAgreesWithSorting() {
        var rng = SeededRandom(seed: 3)
        for n in 1...60 {
            let values = (0..<n).map { _ in Double(rng.next() % 20) }     // many ties
            for k in 0..<n {
                var a = values
                let kth = RecentHashes.select(k, in: &a) { $0 }
                XCTAssertEqual(kth, values.sorted()[k], "n \(n), k \(k)")
                XCTAssertTrue(a[..<k].allSatisfy { $0 <= kth } && a[(k + 1)...].allSatisfy { $0 >= kth },
                              "n \(n), k \(k): smaller left, larger right")
            }
        }
    }

    func testSampleRingKeepsTheLastFiveOldestFirst() throws {
        let ring = SampleRing()
        XCTAssertTrue(ring.isEmpty)
        let names = try (0..<7).map { try DNSName("n\($0).example.com") }
        for n in names.prefix(3) { ring.append(n) }
        XCTAssertEqual(ring.names, Array(names.prefix(3)))
        for n in names.dropFirst(3) { ring.append(n) }
        XCTAssertEqual(ring.names, Array(names.suffix(5)))
        ring.removeAll()
        XCTAssertTrue(ring.isEmpty)
    }

    /// At the pair cap an evicted pair's state is reused: nothing of the old pair may show in the new
    /// one, and an alert the old pair raised keeps its own sample names.
    func testARecycledPairStartsEmptyAndOldAlertsKeepTheirSamples() throws {
        var config = DetectorConfig.default
        config.maxPairs = 1
        config.rateSpikeMinNames = 20
        let d = TunnelDetector(config: config, suffixes: PublicSuffixList(text: "test\n"))
        func observe(_ t: Double, _ name: String) -> [DetectorAlert] {
            d.observe(QueryEvent(time: t, client: "192.0.2.1", name: try! DNSName(name), type: .txt, rcode: .nxDomain))
        }
        var raised: [DetectorAlert] = []
        for i in 0..<40 { raised += observe(1000 + Double(i) * 0.01, "x\(i).first.test") }
        XCTAssertTrue(raised.contains { $0.kind == .rateSpike }, "\(raised.map(\.kind))")
        _ = observe(1001, "a.second.test")            // evicts first.test, reuses its state
        let second = try XCTUnwrap(d.features(client: "192.0.2.1", registeredDomain: try DNSName("second.test"), at: 1001))
        XCTAssertEqual(second.queries, 1)
        XCTAssertEqual(second.distinctNames, 1)
        XCTAssertEqual(second.entropySampleChars, 1)
        XCTAssertNil(second.timingVariation)
        XCTAssertNil(d.features(client: "192.0.2.1", registeredDomain: try DNSName("first.test"), at: 1001))
        _ = observe(1002, "b.second.test")
        let spike = try XCTUnwrap(d.alertsSnapshot().first { $0.kind == .rateSpike })
        XCTAssertEqual(spike.registeredDomain, "first.test.")
        XCTAssertEqual(spike.sampleNames, (35..<40).map { "x\($0).first.test." })
    }
}
