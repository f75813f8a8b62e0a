import XCTest
@testable import DNSGateCore

/// The answer cache's recency order: at its size limit the least recently used answer goes, where
/// both a hit and a re-insert count as a use.
final class AnswerCacheTests: XCTestCase {
    private func key(_ name: String) throws -> CacheKey { CacheKey(name: try DNSName(name), type: .a, dnssecOK: false) }

    private func answer(_ name: String) throws -> UpstreamAnswer {
        let reply = WireFixtures.response(id: 7, name: name, answers: [.init(owner: [0xC0, 0x0C], type: 1, ttl: 300, rdata: [192, 0, 2, 1])])
        return try UpstreamAnswer(reply, id: 7, name: try DNSName(name), type: .a)
    }

    private func cached(_ cache: AnswerCache, _ names: [String]) throws -> [String] {
        try names.filter { if case .hit = cache.lookup(try key($0), now: 101) { return true }; return false }
    }

    func testEvictsTheLeastRecentlyUsedAnswer() throws {
        var limits = CacheLimits(); limits.maxEntries = 3
        let cache = AnswerCache(limits: limits)
        let names = ["a.example.com", "b.example.com", "c.example.com", "d.example.com", "e.example.com"]
        for n in names[0..<3] { cache.insert(try key(n), try answer(n), now: 100) }
        // Use order, most recent first: c b a. A hit on a makes it a c b; d then evicts b.
        XCTAssertEqual(try cached(cache, ["a.example.com"]), ["a.example.com"])
        cache.insert(try key("d.example.com"), try answer("d.example.com"), now: 100)
        XCTAssertEqual(try cached(cache, ["b.example.com"]), [])
        XCTAssertEqual(cache.counters.evictions, 1)
        // d a c. Inserting c again makes it c d a; e then evicts a.
        cache.insert(try key("c.example.com"), try answer("c.example.com"), now: 100)
        cache.insert(try key("e.example.com"), try answer("e.example.com"), now: 100)
        XCTAssertEqual(try cached(cache, names), ["c.example.com", "d.example.com", "e.example.com"])
        XCTAssertEqual(cache.counters.evictions, 2)
        XCTAssertEqual(cache.counters.entries, 3)
        // A hit on the most recent answer leaves the order alone; the oldest still goes first.
        // (The lookups above made the order e d c.)
        XCTAssertEqual(try cached(cache, ["e.example.com"]), ["e.example.com"])
        cache.insert(try key("a.example.com"), try answer("a.example.com"), now: 100)
        XCTAssertEqual(try cached(cache, names), ["a.example.com", "d.example.com", "e.example.com"])
    }

    /// RFC 8767 §5: once a refresh of an expired answer failed, the stale answer is served at once for
    /// `staleRecheck` seconds instead of asking the failed upstream again; then the next query asks.
    func testAStaleAnswerIsServedAtOnceForAWhileAfterItsRefreshFailed() throws {
        var limits = CacheLimits(); limits.maxTTL = 10
        let cache = AnswerCache(limits: limits)
        let k = try key("a.example.com")
        cache.insert(k, try answer("a.example.com"), now: 100)
        func servable(at now: Double) -> String {
            cache.withServable(k, now: now) { _, age, stale in stale ? "stale" : "fresh \(age)" } ?? "miss"
        }
        XCTAssertEqual(servable(at: 105), "fresh 5")
        XCTAssertEqual(servable(at: 111), "miss", "expired, and no refresh has failed yet: ask upstream")
        XCTAssertNotNil(cache.stale(k, now: 112), "upstream failed: served stale, and noted")
        XCTAssertEqual(servable(at: 113), "stale")
        XCTAssertNil(cache.withFresh(k, now: 113) { _, _ in 1 }, "withFresh never serves stale")
        XCTAssertEqual(servable(at: 141.9), "stale")
        XCTAssertEqual(servable(at: 142), "miss", "30 s after the failure: ask again")
        cache.insert(k, try answer("a.example.com"), now: 150)
        XCTAssertEqual(servable(at: 151), "fresh 1", "a refreshed answer is fresh again")
    }
}
