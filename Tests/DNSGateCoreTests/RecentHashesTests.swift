import XCTest
@testable import DNSGateCore
import DNSGateTestSupport

/// The detector's per-pair memory of names and labels, and the reused state behind it.
final class RecentHashesTests: XCTestCase {
    /// A memory of `cap` hashes a pair with nothing shared beyond `guaranteed`.
    private func memory(cap: Int, guaranteed: Int? = nil, shared: Int = 1 << 20) -> LabelMemory {
        LabelMemory(labelsPerPair: cap, guaranteedLabelsPerPair: guaranteed ?? cap, sharedLabels: shared)
    }

    func testRemembersTheLatestTimeAndGrowsPastItsFirstTable() {
        var r = RecentHashes(memory: memory(cap: 512))
        XCTAssertNil(r.lastSeen(42))
        for h in 0..<200 as Range<UInt64> { r.remember(StableHash.mix(h), at: Double(h)) }
        XCTAssertEqual(r.count, 200)
        r.remember(StableHash.mix(7), at: 500)
        r.remember(StableHash.mix(7), at: 300)   // older: ignored
        XCTAssertEqual(r.lastSeen(StableHash.mix(7)), 500)
        XCTAssertEqual(r.lastSeen(StableHash.mix(199)), 199)
        XCTAssertNil(r.lastSeen(StableHash.mix(200)))
        r.remember(0, at: 1)                     // 0 marks empty slots
        XCTAssertEqual(r.lastSeen(0), 1)
        r.removeAll()
        XCTAssertEqual(r.count, 0)
        XCTAssertNil(r.lastSeen(StableHash.mix(7)))
    }

    /// At the cap the older generation goes; a hash remembered again in the meantime moved to the
    /// newer one with its latest time, and stays.
    func testAtTheCapTheOlderGenerationGoes() {
        var r = RecentHashes(memory: memory(cap: 8))
        for h in 0..<8 as Range<UInt64> { r.remember(StableHash.mix(h), at: Double(h)) }
        XCTAssertEqual(r.count, 8)
        r.remember(StableHash.mix(8), at: 8)      // 0…3 go, 4…7 are the older generation
        XCTAssertEqual(r.count, 5)
        for gone in 0..<4 as Range<UInt64> { XCTAssertNil(r.lastSeen(StableHash.mix(gone)), "\(gone)") }
        XCTAssertEqual(r.lastSeen(StableHash.mix(4)), 4)
        r.remember(StableHash.mix(5), at: 20)     // seen again: into the newer generation
        XCTAssertEqual(r.lastSeen(StableHash.mix(5)), 20)
        for h in 9..<12 as Range<UInt64> { r.remember(StableHash.mix(h), at: Double(h)) }
        for gone in [4, 6, 7] as [UInt64] { XCTAssertNil(r.lastSeen(StableHash.mix(gone)), "\(gone)") }
        XCTAssertEqual(r.lastSeen(StableHash.mix(5)), 20)
        XCTAssertEqual(r.lastSeen(StableHash.mix(8)), 8)
        XCTAssertEqual(r.count, 5)
        XCTAssertLessThanOrEqual(r.count, 8)
    }

    /// `noteIfNew` is `recall` then, unless that found the hash within the window, `remember`: the
    /// same answers and the same memory afterwards, over a stream of repeats old and new that turns
    /// the generations over many times.
    func testNoteIfNewIsRecallThenRemember() {
        var a = RecentHashes(memory: memory(cap: 16)), b = RecentHashes(memory: memory(cap: 16))
        var rng = SeededRandom(seed: 11)
        let window = 30.0
        for step in 0..<5_000 {
            let h = StableHash.mix(UInt64(rng.next() % 40)), t = Double(step) / 10
            let old: Bool
            if let last = a.recall(h), t - last <= window { old = true } else { a.remember(h, at: t); old = false }
            XCTAssertEqual(b.noteIfNew(h, at: t, window: window), !old, "step \(step)")
            for probe in 0..<40 as Range<UInt64> {
                XCTAssertEqual(a.lastSeen(StableHash.mix(probe)), b.lastSeen(StableHash.mix(probe)), "step \(step), hash \(probe)")
            }
            XCTAssertEqual(a.count, b.count, "step \(step)")
        }
    }

    /// The two generations as two dictionaries: what `RecentHashes` must hold while the shared budget
    /// does not bind (the generations then turn over at the cap only).
    private struct TwoGenerations {
        var newer: [UInt64: Double] = [:], older: [UInt64: Double] = [:]
        let cap: Int
        var count: Int { newer.count + older.count }
        func lastSeen(_ h: UInt64) -> Double? { newer[h] ?? older[h] }
        mutating func noteIfNew(_ h: UInt64, at t: Double, window: Double) -> Bool {
            if let last = newer[h] {
                if t - last <= window { return false }
                newer[h] = max(last, t)
                return true
            }
            guard let last = older[h] else { add(h, t); return true }
            let isNew = t - last > window
            add(h, isNew ? max(last, t) : last)
            return isNew
        }
        private mutating func add(_ h: UInt64, _ t: Double) {
            if newer.count >= cap { older = newer; newer = [:] }
            newer[h] = t
        }
    }

    /// Over a long stream of repeats and new hashes, with tables of every size from the first to the
    /// cap's and the generations turning over many times, every hash reads back as the
    /// two-dictionary model says, and so does the count.
    func testHoldsWhatTwoGenerationsWould() {
        for cap in [8, 64, 1_000] {
            var r = RecentHashes(memory: memory(cap: cap, guaranteed: 8)), model = TwoGenerations(cap: cap / 2)
            var rng = SeededRandom(seed: UInt64(cap))
            let pool = (0..<(3 * cap)).map { _ in rng.next() }   // random low bits: keys share probe runs
            let window = 20.0
            for step in 0..<(40 * cap) {
                let h = pool[Int(rng.next() % UInt64(pool.count))], t = Double(step) / 10
                XCTAssertEqual(r.noteIfNew(h, at: t, window: window), model.noteIfNew(h, at: t, window: window), "cap \(cap), step \(step)")
                XCTAssertEqual(r.count, model.count, "cap \(cap), step \(step)")
                if step % (cap / 4) == 0 {
                    for p in pool where r.lastSeen(p) != model.lastSeen(p) {
                        XCTFail("cap \(cap), step \(step): \(p) reads \(String(describing: r.lastSeen(p))), not \(String(describing: model.lastSeen(p)))")
                        return
                    }
                }
            }
        }
    }

    /// A hash looked up in the older generation moves into the newer one with its own time: the
    /// names a client keeps asking for survive the turnover that new names cause.
    func testARecalledHashOutlivesItsGeneration() {
        var r = RecentHashes(memory: memory(cap: 8))
        for h in 0..<9 as Range<UInt64> { r.remember(StableHash.mix(h), at: Double(h)) }   // older 4…7, newer 8
        XCTAssertEqual(r.recall(StableHash.mix(6)), 6)
        XCTAssertNil(r.recall(StableHash.mix(2)), "gone already")
        for h in 9..<12 as Range<UInt64> { r.remember(StableHash.mix(h), at: Double(h)) }   // 4…7 go
        XCTAssertEqual(r.lastSeen(StableHash.mix(6)), 6, "recalled, with the time it was remembered")
        for gone in [4, 5, 7] as [UInt64] { XCTAssertNil(r.lastSeen(StableHash.mix(gone)), "\(gone)") }
    }

    /// Beyond the guaranteed tables pairs draw on one budget: a pair that finds it spent turns its
    /// generations over at the size it has, and what a pair drew comes back when it is emptied.
    func testPairsShareTheSlotsBeyondTheirGuaranteedOnes() {
        // 8 hashes guaranteed (16-slot tables), 16 more shared (32 slots), up to 64 a pair.
        let m = memory(cap: 64, guaranteed: 8, shared: 16)
        var first = RecentHashes(memory: m), second = RecentHashes(memory: m)
        for h in 0..<40 as Range<UInt64> { first.remember(StableHash.mix(h), at: Double(h)) }
        XCTAssertEqual(first.sharedSlots, 32)
        XCTAssertEqual(m.freeSharedSlots, 0)
        XCTAssertEqual(first.count, 16 + 8, "two 32-slot tables, the newer one half full")
        for h in 100..<120 as Range<UInt64> { second.remember(StableHash.mix(h), at: Double(h)) }
        XCTAssertEqual(second.sharedSlots, 0)
        XCTAssertLessThanOrEqual(second.count, 16, "the guaranteed 8 a generation")
        XCTAssertNotNil(second.lastSeen(StableHash.mix(119)))
        first.removeAll()
        XCTAssertEqual(m.freeSharedSlots, 32)
        for h in 200..<220 as Range<UInt64> { second.remember(StableHash.mix(h), at: Double(h)) }
        XCTAssertEqual(second.sharedSlots, 16)
        second.releaseSharedSlots()
        XCTAssertEqual(m.freeSharedSlots, 32)
    }

    /// Held first queries go in arrival order, whatever their keys hash to, so a replay holds and
    /// drops the same ones in every process; a taken query leaves its place free.
    func testFirstQueriesMakeRoomOldestFirst() throws {
        var held = FirstQueries(capacity: 3)
        func event(_ t: Double) throws -> QueryEvent {
            QueryEvent(time: t, client: "192.0.2.1", name: try DNSName("n\(Int(t)).example.com"), type: .a, rcode: .noError)
        }
        // Keys chosen to share index positions: probing and backward shifts are exercised too.
        let keys: [UInt64] = [0x10, 0x20, 0x30, 0x40, 0x50]
        for (i, k) in keys.prefix(3).enumerated() { held.hold(k, try event(Double(i)), client: 1) }
        XCTAssertEqual(held.count, 3)
        XCTAssertEqual(held.take(keys[1], client: "192.0.2.1")?.time, 1)
        XCTAssertNil(held.take(keys[1], client: "192.0.2.1"))
        XCTAssertTrue(held.holdingWouldDropAnother(than: 2), "full, and the oldest is client 1's")
        XCTAssertFalse(held.holdingWouldDropAnother(than: 1))
        held.hold(keys[3], try event(3), client: 1)     // into the oldest place: keys[0] goes
        XCTAssertNil(held.peek(keys[0], client: "192.0.2.1"))
        XCTAssertEqual(held.peek(keys[2], client: "192.0.2.1")?.name, try DNSName("n2.example.com"))
        XCTAssertEqual(held.peek(keys[3], client: "192.0.2.1")?.time, 3)
        XCTAssertFalse(held.holdingWouldDropAnother(than: 2), "the place keys[1] left is free")
        held.hold(keys[4], try event(4), client: 1)     // into the place keys[1] left
        XCTAssertEqual(held.count, 3)
        XCTAssertEqual(held.peek(keys[2], client: "192.0.2.1")?.time, 2)
        held.removeExpired(olderThan: 3.5)   // 2 and 3 go; 4 stays
        XCTAssertEqual(held.count, 1)
        XCTAssertNil(held.peek(keys[3], client: "192.0.2.1"))
        XCTAssertEqual(held.take(keys[4], client: "192.0.2.1")?.time, 4)
        XCTAssertEqual(held.count, 0)
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
        _ = observe(1001, "a.second.test")            // held: a pair is tracked from its second query
        _ = observe(1001.5, "b.second.test")          // evicts first.test, reuses its state
        let second = try XCTUnwrap(d.features(client: "192.0.2.1", registeredDomain: try DNSName("second.test"), at: 1001.5))
        XCTAssertEqual(second.queries, 2)
        XCTAssertEqual(second.distinctNames, 2)
        XCTAssertEqual(second.entropySampleChars, 2)
        XCTAssertNil(second.timingVariation)
        XCTAssertNil(d.features(client: "192.0.2.1", registeredDomain: try DNSName("first.test"), at: 1001.5))
        _ = observe(1002, "c.second.test")
        let spike = try XCTUnwrap(d.alertsSnapshot().first { $0.kind == .rateSpike })
        XCTAssertEqual(spike.registeredDomain, "first.test.")
        XCTAssertEqual(spike.sampleNames, (35..<40).map { "x\($0).first.test." })
    }
}
