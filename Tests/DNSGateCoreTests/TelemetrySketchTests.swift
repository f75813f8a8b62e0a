import XCTest
@testable import DNSGateCore
import DNSGateTestSupport

/// HyperLogLog and Space-Saving: accuracy within their stated bounds, fixed memory, determinism.
final class TelemetrySketchTests: XCTestCase {
    func testHyperLogLogEstimatesWithinFourStandardErrors() {
        for (precision, n) in [(8, 100), (10, 5_000), (12, 50_000)] {
            var h = HyperLogLog(precision: precision)
            for i in 0..<n { h.insert(bytes: Array("name-\(i).example.com".utf8)) }
            for i in 0..<n { h.insert(bytes: Array("name-\(i).example.com".utf8)) }   // repeats change nothing
            let error = abs(h.estimate - Double(n)) / Double(n)
            let standardError = 1.04 / Double(1 << precision).squareRoot()
            XCTAssertLessThan(error, 4 * standardError, "p=\(precision) n=\(n) estimate \(h.estimate)")
            XCTAssertEqual(h.memoryBytes, 1 << precision)
        }
        XCTAssertEqual(HyperLogLog().estimate, 0)
    }

    func testHyperLogLogMergeIsUnionAndResetEmpties() {
        var a = HyperLogLog(precision: 10), b = HyperLogLog(precision: 10)
        for i in 0..<3000 { a.insert(hash: StableHash.hash("a\(i)")) }
        for i in 1500..<4500 { b.insert(hash: StableHash.hash("a\(i)")) }
        a.merge(b)
        XCTAssertEqual(a.estimate, 4500, accuracy: 4500 * 0.13)
        a.reset()
        XCTAssertEqual(a.estimate, 0)
        XCTAssertEqual(a, HyperLogLog(precision: 10))
    }

    func testStableHashIsFixedAcrossRuns() {
        // Pinned: replays of a log must give the same sketches and alerts in every build.
        XCTAssertEqual(StableHash.hash(""), 11_370_041_273_741_523_468)
        XCTAssertEqual(StableHash.hash("example.com"), 153_387_859_298_080_198)
        XCTAssertEqual(StableHash.hash(String(repeating: "a", count: 40), seed: 2), 17_933_788_624_767_598_545)
        XCTAssertEqual(StableHash.hash("example.com"), StableHash.hash(Array("example.com".utf8)))
        XCTAssertEqual(StableHash.hash("example.com"), StableHash.hash(Array("example.com".utf8)[...]))
        XCTAssertNotEqual(StableHash.hash("example.com"), StableHash.hash("example.com", seed: 1))
    }

    /// Sets and dictionaries of names hash with `TableHash` (`_rawHashValue(seed:)`): equal names must
    /// agree however they were built, and the table's seed must change the value.
    func testTableHashAgreesWithEqualityAndDependsOnTheSeed() throws {
        let a = try DNSName("WWW.Example.COM."), b = try DNSName(wire: [3, 119, 119, 119, 7] + Array("example".utf8) + [3, 99, 111, 109, 0])
        XCTAssertEqual(a, b)
        XCTAssertEqual(a._rawHashValue(seed: 7), b._rawHashValue(seed: 7))
        XCTAssertNotEqual(a._rawHashValue(seed: 7), a._rawHashValue(seed: 8))
        var set = Set<DNSName>()
        for i in 0..<5_000 { set.insert(try DNSName("n\(i).example.com")) }
        XCTAssertEqual(set.count, 5_000)
        XCTAssertTrue(set.contains(try DNSName("N4999.EXAMPLE.com")))
        XCTAssertFalse(set.contains(try DNSName("n5000.example.com")))
    }

    /// Every length takes a different path through the word reads (1–3, 4–7, 8–16, then 16 at a time);
    /// each must see every byte, and a word that zeroes one factor of the multiply must not erase the other.
    func testStableHashSeesEveryByteOfEveryLength() {
        var seen = Set<UInt64>()
        for n in 0...70 {
            let base = [UInt8](repeating: 0x61, count: n)
            XCTAssertTrue(seen.insert(StableHash.hash(base)).inserted, "length \(n) collides")
            for i in 0..<n {
                var flipped = base; flipped[i] ^= 0x01
                XCTAssertTrue(seen.insert(StableHash.hash(flipped)).inserted, "length \(n), byte \(i) not seen")
            }
        }
        // 0xe7037ed1a0b428db is the constant the first word is xored with: such a word makes that factor 0.
        let zeroing: [UInt8] = [0xdb, 0x28, 0xb4, 0xa0, 0xd1, 0x7e, 0x03, 0xe7]
        XCTAssertNotEqual(StableHash.hash(zeroing + Array("a.example.com.....".utf8)), StableHash.hash(zeroing + Array("b.example.com.....".utf8)))
        var counts = [Int](repeating: 0, count: 16)
        for i in 0..<16_000 { counts[Int(StableHash.hash("n\(i).example.com") & 15)] += 1 }
        XCTAssertLessThan(counts.max()! - counts.min()!, 300, "low bits unevenly spread: \(counts)")
    }

    func testSpaceSavingKeepsTheHeavyHittersOfASkewedStream() {
        let top = SpaceSaving<String>(capacity: 20)
        var rng = SeededRandom(seed: 9)
        var truth: [String: UInt64] = [:]
        for _ in 0..<20_000 {
            // Heavy keys h0…h4 take ~60 % of the stream; the rest is spread over 2 000 light keys.
            let key = Double.random(in: 0..<1, using: &rng) < 0.6 ? "h\(Int.random(in: 0..<5, using: &rng))"
                                                                : "l\(Int.random(in: 0..<2000, using: &rng))"
            top.add(key); truth[key, default: 0] += 1
        }
        XCTAssertEqual(top.count, 20)
        XCTAssertEqual(top.total, 20_000)
        XCTAssertEqual(Set(top.top(5).map(\.key)), ["h0", "h1", "h2", "h3", "h4"])
        for e in top.top(20) {
            XCTAssertLessThanOrEqual(e.guaranteed, truth[e.key]!, e.key)
            XCTAssertGreaterThanOrEqual(e.count, truth[e.key]!, e.key)
        }
    }

    /// A heavy key inside a flood of one-off names is found, and the one-off names rarely reach
    /// the table: that is what the filter is for.
    func testFilteredSpaceSavingFindsAHeavyKeyInAFloodOfUniqueNames() {
        let top = SpaceSaving<String>(capacity: 64)
        for i in 0..<100_000 { top.add(i % 10 == 0 ? "heavy" : "once\(i)") }
        let heavy = top.entry(for: "heavy")
        XCTAssertNotNil(heavy)
        XCTAssertGreaterThanOrEqual(heavy?.count ?? 0, 10_000)
        XCTAssertLessThanOrEqual(heavy?.guaranteed ?? .max, 10_000)
        XCTAssertEqual(top.top(1).first?.key, "heavy")
        XCTAssertLessThan(top.replacements, 9_000, "unfiltered, each of the 90,000 one-off names would replace a counter")
    }

    /// Thousands of replacements shuffle the key index (backward-shift deletion): every tracked key
    /// must still be found, with the entry `top` reports, and an evicted key must not be.
    func testSpaceSavingIndexStaysConsistentThroughReplacements() {
        let s = SpaceSaving<String>(capacity: 50)
        var rng = SeededRandom(seed: 5)
        for i in 0..<30_000 {
            // Skewed, so tracked keys are replaced at every count, not only the one-off names.
            let u = Double.random(in: 0..<1, using: &rng)
            let k = Int(2000 * u * u * u)
            s.add("k\(k)", weight: UInt64(1 + i % 3))
            if i % 997 == 996 || i == 29_999 {
                let tracked = s.top(50)
                XCTAssertEqual(tracked.count, 50)
                for e in tracked {
                    XCTAssertEqual(s.entry(for: e.key)?.count, e.count, "tracked key \(e.key) lost from the index at step \(i)")
                }
                let trackedKeys = Set(tracked.map(\.key))
                for k in 0..<2000 where !trackedKeys.contains("k\(k)") {
                    XCTAssertNil(s.entry(for: "k\(k)"), "untracked key k\(k) still indexed at step \(i)")
                }
            }
        }
        XCTAssertGreaterThan(s.replacements, 500, "the test must exercise replacement")
    }

    func testSpaceSavingWeightsAndReplacement() {
        let s = SpaceSaving<String>(capacity: 2)
        s.add("a", weight: 5); s.add("b", weight: 2); s.add("c"); s.add("c")
        XCTAssertNil(s.entry(for: "c"), "two sightings do not exceed the smallest counter: only the filter counts them")
        XCTAssertEqual(s.entry(for: "b")?.count, 2)
        s.add("c")
        XCTAssertNil(s.entry(for: "b"), "c's filter count passed the smallest counter, which is replaced")
        XCTAssertEqual(s.entry(for: "c")?.count, 3)
        XCTAssertEqual(s.entry(for: "c")?.error, 2)
        s.add("b"); s.add("b")
        XCTAssertEqual(s.entry(for: "b")?.count, 4, "b left its count in the filter: its bound includes it")
        XCTAssertEqual(s.entry(for: "b")?.error, 3)
        XCTAssertEqual(s.total, 12)
        XCTAssertEqual(s.replacements, 2)
        XCTAssertEqual(s.top(1).map(\.key), ["a"])
        XCTAssertEqual(s.top(0).count, 0)
    }

    func testRecencyListEvictsLeastRecentlyUsedAndReusesSlots() {
        var l = RecencyList<String>()
        var h: [String: Int] = [:]
        for k in ["a", "b", "c", "d"] { h[k] = l.insert(k) }
        l.touch(h["a"]!)                       // order, oldest first: b c d a
        l.remove(h["c"]!)                      // b d a
        XCTAssertEqual(l.count, 3)
        XCTAssertEqual(l.popOldest(), "b")
        h["e"] = l.insert("e")                 // d a e, in b's slot (the last freed)
        XCTAssertEqual(h["e"], h["b"], "freed slots are reused: the list never grows past its peak")
        l.touch(h["d"]!)                       // a e d
        XCTAssertEqual([l.popOldest(), l.popOldest(), l.popOldest(), l.popOldest()], ["a", "e", "d", nil])
        XCTAssertEqual(l.count, 0)
        // A long run of touches on a full list costs no more memory and keeps the order exact.
        var handles = (0..<100).map { l.insert("k\($0)") }
        for i in 0..<100_000 { l.touch(handles[(i * 7) % 100]) }
        handles = []
        XCTAssertEqual(l.count, 100)
        var popped: [String] = []
        while let k = l.popOldest() { popped.append(k) }
        XCTAssertEqual(popped.count, 100)
        XCTAssertEqual(popped.last, "k\((99_999 * 7) % 100)", "the last one touched is the newest")
    }
}
