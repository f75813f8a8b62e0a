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

    /// QA pass 5, F8: answers of 64 KB took 96 KB an entry, so `max_entries` alone let the cache grow
    /// to gigabytes. Past `max_bytes` the least recently used go, whatever the count; each answer
    /// still there is found at its own key (the eviction moves nodes).
    func testEvictsPastItsByteBudgetAndKeepsEveryOtherAnswerFindable() throws {
        var limits = CacheLimits(); limits.maxEntries = 1_000; limits.maxBytes = 65_536
        let cache = AnswerCache(limits: limits)
        func big(_ name: String, records: Int) throws -> UpstreamAnswer {
            let rrs = (0..<records).map { WireFixtures.RR(owner: [0xC0, 0x0C], type: 1, ttl: 300, rdata: [192, 0, 2, UInt8($0 % 256)]) }
            return try UpstreamAnswer(WireFixtures.response(id: 7, name: name, answers: rrs), id: 7, name: try DNSName(name), type: .a)
        }
        let names = (0..<40).map { "n\($0).example.com" }
        for (i, n) in names.enumerated() {
            cache.insert(try key(n), try big(n, records: i % 3 == 0 ? 200 : 2), now: 100)
            XCTAssertLessThanOrEqual(cache.counters.bytes, limits.maxBytes)
        }
        let held = try cached(cache, names)
        XCTAssertEqual(cache.counters.entries, held.count, "every entry counted is found at its key")
        XCTAssertEqual(held.last, names.last, "the newest stays")
        XCTAssertGreaterThan(cache.counters.evictions, 0)
        XCTAssertLessThan(held.count, names.count)
        var sum = 0
        for n in held { if case .hit(let a, _) = cache.lookup(try key(n), now: 101) { sum += AnswerCache.cost(try key(n), a) } }
        XCTAssertEqual(cache.counters.bytes, sum, "the running total is the entries' cost")
        let oversized = try big("huge.example.com", records: 5_000)
        cache.insert(try key("huge.example.com"), oversized, now: 100)
        XCTAssertEqual(try cached(cache, ["huge.example.com"]), [], "an answer over the whole budget is not cached")
    }

    /// QA pass 5, F5: the cache kept an answer for `max_ttl` but told clients the upstream's TTL, so a
    /// downstream cache kept the name for as long as the upstream said.
    func testClientsAreToldTheClampedTTLs() throws {
        var limits = CacheLimits(); limits.maxTTL = 100; limits.maxNegativeTTL = 10; limits.minTTL = 5
        let cache = AnswerCache(limits: limits)
        let rrs = [WireFixtures.RR(owner: [0xC0, 0x0C], type: 1, ttl: 200_000, rdata: [192, 0, 2, 1]),
                   WireFixtures.RR(owner: [0xC0, 0x0C], type: 16, ttl: 1, rdata: [1, 0x61])]   // not the A RRset: TTLs of their own
        let positive = try UpstreamAnswer(WireFixtures.response(id: 7, answers: rrs), id: 7, name: try DNSName("www.example.com"), type: .a)
        XCTAssertEqual(cache.clamped(positive).ttls, [100, 5])
        let soa = WireFixtures.RR(owner: WireFixtures.name("example.com"), type: 6, ttl: 3_600, rdata: WireFixtures.soaRData(minimum: 3_600))
        let negative = try UpstreamAnswer(WireFixtures.response(id: 7, rcode: 3, authority: [soa]), id: 7, name: try DNSName("www.example.com"), type: .a)
        XCTAssertEqual(cache.clamped(negative).ttls, [10])
        XCTAssertEqual(cache.clampedTTL(negative), 10)
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

    /// The query path looks a question up by its fields (`isKey(of:)` and `CacheKey.hash`) instead of
    /// making its key: both must agree with the key's own hash and `==`, or a question could be
    /// answered with another's answer (another type, or with or without DNSSEC records or checking).
    func testAQuestionMatchesExactlyTheKeyItWouldMake() throws {
        let names = ["www.example.com", "WWW.Example.COM", "example.com", "www.example.org"]
        var questions: [QueryView] = []
        for name in names {
            for type: UInt16 in [1, 28] {
                for opt: WireFixtures.OPT? in [nil, .init(dnssecOK: false), .init(dnssecOK: true)] {
                    for flags: UInt16 in [0x0100, 0x0110] {   // RD, RD+CD
                        questions.append(try RequestSanity.view(WireFixtures.query(name: name, type: type, flags: flags, opt: opt)))
                    }
                }
            }
        }
        for q in questions {
            let own = CacheKey(question: q)
            XCTAssertEqual(own, CacheKey(name: q.name, nameHash: q.nameHash, type: q.type, dnssecOK: q.edns?.dnssecOK ?? false,
                                         checkingDisabled: q.header.checkingDisabled))
            XCTAssertEqual(CacheKey.hash(of: q), own.hash)
            for other in questions {
                let key = CacheKey(question: other)
                XCTAssertEqual(key.isKey(of: q), key == own, "\(key) against the question \(q.name) \(q.type)")
            }
        }
    }
}

/// RFC 9520 §3.2: a failure is remembered for a few seconds, and the memory stays bounded.
final class RecentFailuresTests: XCTestCase {
    func testAFailureIsKeptForItsHoldAndTheTableStaysBounded() throws {
        var f = RecentFailures()
        let key = CacheKey(name: try DNSName("down.example.com"), type: .a, dnssecOK: false)
        f.failed(key, detail: "upstream 1 timed out", now: 100)
        XCTAssertEqual(f.failure(key, now: 100 + RecentFailures.holdSeconds - 0.1), "upstream 1 timed out")
        XCTAssertNil(f.failure(key, now: 100 + RecentFailures.holdSeconds))
        XCTAssertNil(f.failure(CacheKey(name: key.name, type: .aaaa, dnssecOK: false), now: 100), "per question")
        f.answered(key)
        XCTAssertNil(f.failure(key, now: 101))
        for i in 0..<RecentFailures.capacity { f.failed(CacheKey(name: try DNSName("n\(i).example.com"), type: .a, dnssecOK: false), detail: "x", now: 200) }
        XCTAssertEqual(f.count, RecentFailures.capacity)
        f.failed(key, detail: "y", now: 200)
        XCTAssertEqual(f.count, 1, "full of live entries: emptied, then the new one")
        f.failed(CacheKey(name: try DNSName("late.example.com"), type: .a, dnssecOK: false), detail: "z", now: 300)
        XCTAssertEqual(f.count, 2)
    }
}
