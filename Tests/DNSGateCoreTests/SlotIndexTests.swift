@testable import DNSGateCore
import DNSGateTestSupport
import XCTest

/// The cache's index against a plain dictionary, under the patterns that break open addressing: runs
/// that collide, wrap around the end of the table, and lose members from the middle.
final class SlotIndexTests: XCTestCase {
    /// Every live position is found under its hash, and nothing else is.
    private func assertAgrees(_ index: SlotIndex, _ model: [Int: UInt64], _ removed: [Int: UInt64],
                              file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(index.count, model.count, file: file, line: line)
        for (p, h) in model {
            XCTAssertEqual(index.find(h) { $0 == p }, p, "position \(p) lost", file: file, line: line)
        }
        for (p, h) in removed where model[p] == nil {
            XCTAssertNil(index.find(h) { $0 == p }, "removed position \(p) still found", file: file, line: line)
        }
    }

    func testRandomInsertsAndRemovalsMatchADictionary() {
        var rng = SeededRandom(seed: 5)
        for bits in [2, 5, 64] {   // 4 or 32 distinct homes: long colliding runs; 64: spread
            var index = SlotIndex(), model: [Int: UInt64] = [:], removed: [Int: UInt64] = [:]
            var next = 0
            for step in 0..<4000 {
                if model.isEmpty || (model.count < 300 && rng.next() % 3 != 0) {
                    // Low bits pick the home slot; the high bits make hashes of one home differ.
                    let h = bits == 64 ? rng.next() : (rng.next() % (1 << UInt64(bits))) | (rng.next() << 40)
                    index.insert(h, position: next)
                    model[next] = h; next += 1
                } else {
                    let p = model.keys.randomElement(using: &rng)!
                    index.remove(model[p]!, position: p)
                    removed[p] = model.removeValue(forKey: p)
                }
                if step % 97 == 0 { assertAgrees(index, model, removed) }
            }
            assertAgrees(index, model, removed)
        }
    }

    /// Equal hashes: `matches` tells the entries apart, and removing one leaves the others findable.
    func testEntriesWithTheSameHashAreToldApartByTheCaller() {
        var index = SlotIndex()
        for p in 0..<10 { index.insert(42, position: p) }
        XCTAssertEqual(index.find(42) { $0 == 7 }, 7)
        index.remove(42, position: 3)
        XCTAssertNil(index.find(42) { $0 == 3 })
        for p in [0, 1, 2, 4, 5, 6, 7, 8, 9] { XCTAssertEqual(index.find(42) { $0 == p }, p) }
        XCTAssertNil(index.find(43) { _ in true })
        index.remove(43, position: 1)   // absent: nothing changes
        XCTAssertEqual(index.count, 9)
    }

    /// A key built from a query's own hash and one built from the name alone are the same key.
    func testCacheKeyFromTheQueryHashEqualsTheKeyFromTheName() throws {
        let q = try RequestSanity.view([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
                                        3, 0x57, 0x77, 0x57, 7] + Array("example".utf8) + [3] + Array("COM".utf8) + [0, 0, 28, 0, 1])
        let fromQuery = CacheKey(name: q.name, nameHash: q.nameHash, type: q.type, dnssecOK: false)
        let fromName = CacheKey(name: try DNSName("www.example.com"), type: .aaaa, dnssecOK: false)
        XCTAssertEqual(fromQuery, fromName)
        XCTAssertEqual(fromQuery.hashValue, fromName.hashValue)
        XCTAssertNotEqual(fromName, CacheKey(name: try DNSName("www.example.com"), type: .a, dnssecOK: false))
        XCTAssertNotEqual(fromName, CacheKey(name: try DNSName("www.example.com"), type: .aaaa, dnssecOK: true))
    }
}
