import XCTest
@testable import DNSGateCore

/// Profile selection, client prefixes, expiring exceptions and quarantines: the runtime parts of policy.
final class ProfilesAndExceptionsTests: XCTestCase {
    private func policy(_ text: String) throws -> Policy {
        Policy(allowList: try AllowList(PlainListLoader.load(text: text, file: "t.allow")))
    }
    private func ip(_ s: String) -> [UInt8] { ClientPrefix.addressBytes(s)! }

    func testClientPrefixesMatchByBitsAndMapIPv4InIPv6() {
        let p = ClientPrefix("192.0.2.16/28")!
        XCTAssertTrue(p.contains(ip("192.0.2.17")))
        XCTAssertTrue(p.contains(ip("192.0.2.31")))
        XCTAssertFalse(p.contains(ip("192.0.2.32")))
        XCTAssertTrue(p.contains(ip("::ffff:192.0.2.20")), "a dual-stack socket's mapped address is the IPv4 client")
        XCTAssertEqual(ClientPrefix("192.0.2.99/24")?.description, "192.0.2.0/24", "host bits cleared")
        XCTAssertTrue(ClientPrefix("2001:db8::/32")!.contains(ip("2001:db8:1::5")))
        XCTAssertFalse(ClientPrefix("2001:db8::/32")!.contains(ip("192.0.2.1")))
        XCTAssertNil(ClientPrefix("192.0.2.0/33"))
        XCTAssertNil(ClientPrefix("example.com/24"))
    }

    /// One spelling per client, so a verdict finds a runner however its address was typed or recorded.
    func testClientAddressesHaveOneSpelling() {
        XCTAssertEqual(IPAddressText.canonical("2001:DB8:0::0:7"), "2001:db8::7")
        XCTAssertEqual(IPAddressText.canonical("::ffff:192.0.2.7"), "192.0.2.7", "a dual-stack socket's mapped address is the IPv4 client")
        XCTAssertTrue(IPAddressText.same(recorded: "::ffff:192.0.2.7", canonical: "192.0.2.7"))
        XCTAssertFalse(IPAddressText.same(recorded: "192.0.2.8", canonical: "192.0.2.7"))
        XCTAssertFalse(IPAddressText.same(recorded: "::ffff:192.0.2.70", canonical: "192.0.2.7"))
        XCTAssertFalse(IPAddressText.same(recorded: "::ffff:1:2", canonical: "1:2"), "only an IPv4 client is mapped")
        XCTAssertTrue(IPAddressText.same(recorded: "2001:db8::7", canonical: "2001:db8::7"))
        for bad in ["", "localhost", "192.0.2.7:53", "192.0.2.0/24", "192.0.2.07", "[2001:db8::7]"] {
            XCTAssertNil(IPAddressText.canonical(bad), bad)
        }
    }

    func testLongestPrefixWinsThenListenerThenDefault() throws {
        let set = PolicySet(base: try policy("a.example.com # base\n"), profiles: [
            Profile(name: "wide", clients: [ClientPrefix("192.0.2.0/24")!], listeners: [], policy: try policy("b.example.com # wide\n")),
            Profile(name: "narrow", clients: [ClientPrefix("192.0.2.16/28")!], listeners: [], policy: try policy("c.example.com # narrow\n")),
            Profile(name: "bylistener", clients: [], listeners: ["198.51.100.1:53"], policy: try policy("d.example.com # listener\n")),
        ])
        XCTAssertEqual(set.name(set.select(clientAddress: ip("192.0.2.17"), listener: nil)), "narrow")
        XCTAssertEqual(set.name(set.select(clientAddress: ip("192.0.2.100"), listener: nil)), "wide")
        XCTAssertEqual(set.name(set.select(clientAddress: ip("203.0.113.5"), listener: "198.51.100.1:53")), "bylistener")
        XCTAssertEqual(set.name(set.select(clientAddress: ip("192.0.2.17"), listener: "198.51.100.1:53")), "narrow", "source prefix first")
        XCTAssertEqual(set.name(set.select(clientAddress: ip("203.0.113.5"), listener: "127.0.0.1:53")), "default")
    }

    func testExceptionsMatchOnlyTheirScopeAndOnlyUntilExpiry() throws {
        var x = ExceptionSet()
        try x.add(PolicyException(id: "x1", pattern: "*.cdn.example.net", client: "192.0.2.0/24", profile: nil, types: nil,
                                  reason: "incident", createdAt: 0, expiresAt: 100), suffixes: nil, now: 0)
        let name = try DNSName("a.cdn.example.net")
        func match(_ n: DNSName, _ t: RecordType = .a, client: String = "192.0.2.9", profile: String = "default", at now: Double = 50) -> String? {
            guard case .allows(let e) = x.match(name: n, type: t, clientAddress: ip(client), profile: profile,
                                                 defaultTypes: RecordType.buildDefaults, now: now) else { return nil }
            return e.id
        }
        XCTAssertEqual(match(name), "x1")
        XCTAssertNil(match(try DNSName("cdn.example.net")), "wildcard does not cover its apex")
        XCTAssertNil(match(name, .txt), "default types only")
        XCTAssertEqual(x.match(name: name, type: .txt, clientAddress: ip("192.0.2.9"), profile: "default",
                               defaultTypes: RecordType.buildDefaults, now: 50), .nameOnly(x.all[0]),
                       "the name is covered, for other types: a type denial, not an unknown name")
        XCTAssertNil(match(name, client: "198.51.100.1"), "other client")
        XCTAssertNil(match(name, at: 100), "expired exactly at expiresAt")
        XCTAssertEqual(x.prune(now: 100).map(\.id), ["x1"])
        XCTAssertTrue(x.isEmpty)
        XCTAssertThrowsError(try x.add(PolicyException(id: "x2", pattern: "*.com", client: nil, profile: nil, types: nil, reason: "r",
                                                       createdAt: 0, expiresAt: 10), suffixes: PublicSuffixList(text: "com\n"), now: 0))
        XCTAssertThrowsError(try x.add(PolicyException(id: "x3", pattern: "a.example.com", client: nil, profile: nil, types: nil, reason: " ",
                                                       createdAt: 0, expiresAt: 10), suffixes: nil, now: 0), "a reason is required")
        XCTAssertThrowsError(try x.add(PolicyException(id: "x4", pattern: "a.example.com", client: nil, profile: nil, types: nil, reason: "r",
                                                       createdAt: 0, expiresAt: 10), suffixes: nil, now: 10), "lifetime in the past")
    }

    /// What `allow add` must refuse, as an allow-list file would, so no exception silently never matches
    /// or never ends.
    func testExceptionsRefuseBadNamesMetaTypesEndlessLifetimesAndDuplicates() throws {
        var x = ExceptionSet()
        func add(_ id: String, _ pattern: String, types: [String]? = nil, client: String? = nil, days: Double = 1,
                 reason: String = "r") throws {
            try x.add(PolicyException(id: id, pattern: pattern, client: client, profile: nil, types: types, reason: reason,
                                      createdAt: 0, expiresAt: days * 86_400), suffixes: nil, now: 0)
        }
        XCTAssertThrowsError(try add("s", "bad name with space.example.com"), "unescaped spaces")
        XCTAssertThrowsError(try add("u", "b\u{FC}cher.example.com"), "raw UTF-8")
        XCTAssertThrowsError(try add("o", "o.example.com", types: ["OPT"]), "OPT is not a query type")
        XCTAssertThrowsError(try add("t2", "t.example.com", types: ["A", "A"]), "a type twice: a typo for A,AAAA") { e in
            XCTAssertTrue("\(e)".contains("listed twice"), "\(e)")
        }
        XCTAssertThrowsError(try add("t0", "t.example.com", types: ["A", "", "AAAA"]), "an empty item")
        XCTAssertThrowsError(try add("n", "n.example.com", reason: "ok\nx1\tforged.example.com\t1h left"), "a newline forges a row") { e in
            XCTAssertTrue("\(e)".contains("one line"), "\(e)")
        }
        XCTAssertThrowsError(try add("c", "c.example.com", reason: "bell\u{7}"), "a control character")
        for (what, c) in [("NEL, a C1 control", "\u{85}"), ("CSI", "\u{9B}"), ("line separator", "\u{2028}"),
                          ("right-to-left override", "\u{202E}"), ("zero-width space", "\u{200B}")] {
            XCTAssertThrowsError(try add("c", "c.example.com", reason: "ok \(c)terces done"), what)
        }
        XCTAssertThrowsError(try add("r", "r.example.com", reason: String(repeating: "x", count: 501)), "a reason past 500 bytes")
        try add("r", "r.example.com", reason: "CVE-2026-0001 — " + String(repeating: "x", count: 480))
        XCTAssertThrowsError(try add("l", "l.example.com", days: 31), "longer than 30 days")
        try add("m", "m.example.com", days: 30)
        try add("d1", "dup.example.com")
        XCTAssertThrowsError(try add("d2", "DUP.example.com."), "same name, same scope") { e in
            XCTAssertTrue("\(e)".contains("d1"), "\(e)")
        }
        try add("d3", "dup.example.com", types: ["TXT"])
        try add("d4", "dup.example.com", client: "192.0.2.0/24", days: 2)   // outlives d1
        XCTAssertEqual(x.all.map(\.id), ["r", "m", "d1", "d3", "d4"])
        // QA pass 12, F6: a scope inside a live one's, for no longer, is a second ID for one permission.
        XCTAssertThrowsError(try add("d5", "dup.example.com", client: "0.0.0.0/0"), "everyone already has it") { e in
            XCTAssertTrue("\(e)".contains("d1") && "\(e)".contains("everyone"), "\(e)")
        }
        XCTAssertThrowsError(try add("d6", "dup.example.com", client: "2001:db8::1"), "everyone already has it")
        try add("w1", "w.example.com", client: "192.0.2.0/24")
        XCTAssertThrowsError(try add("w2", "w.example.com", client: "192.0.2.128/25"), "inside 192.0.2.0/24") { e in
            XCTAssertTrue("\(e)".contains("w1") && "\(e)".contains("client 192.0.2.0/24"), "\(e)")
        }
        try add("w3", "w.example.com", client: "192.0.2.128/25", days: 2)        // outlives w1: a permission of its own
        try add("w4", "w.example.com", client: "198.51.100.0/24")                // beside it, not inside
        try add("w5", "w.example.com", client: "::/0")                           // another family
        try add("w6", "w.example.com")                                           // wider, not narrower
        try add("w7", "*.w.example.com", client: "192.0.2.7")                    // another pattern
        XCTAssertThrowsError(try add("w8", "w.example.com", client: "192.0.2.9"), "w1 and w6 allow it")
        XCTAssertEqual(x.all.map(\.id), ["r", "m", "d1", "d3", "d4", "w1", "w3", "w4", "w5", "w6", "w7"])
    }

    func testAClientPrefixCoversOnlyThePrefixesInsideIt() throws {
        func p(_ s: String) -> ClientPrefix { ClientPrefix(s)! }
        XCTAssertTrue(p("192.0.2.0/24").covers(p("192.0.2.128/25")))
        XCTAssertTrue(p("192.0.2.0/24").covers(p("192.0.2.0/24")))
        XCTAssertTrue(p("0.0.0.0/0").covers(p("192.0.2.7")))
        XCTAssertFalse(p("192.0.2.128/25").covers(p("192.0.2.0/24")), "wider")
        XCTAssertFalse(p("192.0.2.0/25").covers(p("192.0.2.128/25")), "beside")
        XCTAssertFalse(p("0.0.0.0/0").covers(p("2001:db8::/32")), "another family")
        XCTAssertTrue(p("2001:db8::/32").covers(p("2001:db8:1::/48")))
        XCTAssertFalse(p("2001:db8::/48").covers(p("2001:db8::/32")))
    }

    /// A type the rule does not allow is NODATA (EDE 17) whatever the sinkhole mode, also when the rule is an
    /// exception listing other types: NXDOMAIN or REFUSED would make resolvers drop the allowed types of the
    /// name too (RFC 8020), and a dropped AAAA query stalls `getaddrinfo` for its timeout.
    func testTypeDenialsAreNODATAInEveryModeAndUnderTypedExceptions() throws {
        let list = try AllowList(PlainListLoader.load(text: "www.allowed.test  A\n", file: "t.allow"))
        for mode: SinkholeMode in [.nxdomain, .nodata, .refused, .null, .drop, .redirect(v4: [192, 0, 2, 1], v6: nil)] {
            let p = Policy(allowList: list, mode: .enforce, sinkhole: mode)
            let v = PolicyDecision.decide(p, name: try DNSName("www.allowed.test"), type: .aaaa)
            guard case .sinkhole(.nodata) = v.action else { return XCTFail("\(mode): \(v.action)") }
            guard case .sinkhole(let m) = PolicyDecision.decide(p, name: try DNSName("other.test"), type: .a).action, m == mode
            else { return XCTFail("\(mode): a name denial keeps the mode") }
        }
        let pipeline = QueryPipeline(policies: PolicySet(base: Policy(allowList: list, mode: .enforce, sinkhole: .drop)), cache: AnswerCache())
        var x = ExceptionSet()
        try x.add(PolicyException(id: "t1", pattern: "txt.example.net", client: nil, profile: nil, types: ["TXT"], reason: "r",
                                  createdAt: 0, expiresAt: 100), suffixes: nil, now: 0)
        pipeline.setExceptions(x)
        let txt = pipeline.explain(name: try DNSName("txt.example.net"), type: .txt, clientAddress: nil, now: 50)
        XCTAssertTrue(txt.verdict.isForward && !txt.verdict.isDenied)
        XCTAssertEqual(txt.exception?.id, "t1")
        let a = pipeline.explain(name: try DNSName("txt.example.net"), type: .a, clientAddress: nil, now: 50)
        guard case .sinkhole(.nodata) = a.verdict.action else { return XCTFail("\(a.verdict.action)") }
        XCTAssertEqual(a.verdict.denial, .typeNotAllowed(.a, SourceLocation(file: "exception t1", line: 0)))
        XCTAssertNil(a.exception, "the exception did not allow this query")
        guard case .sinkhole(.drop) = pipeline.explain(name: try DNSName("nothing.example.net"), type: .a, clientAddress: nil, now: 50).verdict.action
        else { return XCTFail("a name no exception covers keeps the mode") }
    }

    func testQuarantineSinkholesAPipelineQueryForThatClientOnly() throws {
        let pipeline = QueryPipeline(policy: try policy("*.example.net # all\n"), cache: AnswerCache())
        _ = pipeline.updateQuarantines { $0.add(client: "192.0.2.7", domain: try! DNSName("example.net"), until: 100, reason: "alert 1", id: "q1") }
        let query: [UInt8] = [0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0] + (try DNSName("x.example.net")).wire + [0, 1, 0, 1]
        guard case .reply(_, let rec) = pipeline.process(query, client: "192.0.2.7", overTCP: false, now: 50) else { return XCTFail("sinkholed") }
        XCTAssertEqual(rec.action, .quarantined)
        guard case .forward = pipeline.process(query, client: "192.0.2.8", overTCP: false, now: 50) else { return XCTFail("other client forwarded") }
        guard case .forward = pipeline.process(query, client: "192.0.2.7", overTCP: false, now: 100) else { return XCTFail("expired") }
        let counted = pipeline.counters.snapshot
        XCTAssertEqual(counted[.quarantined], 1)
        XCTAssertEqual(counted.values.reduce(0, +), 1, "forwarded queries count when they complete, not here")
    }

    /// QA pass 5, F5: an answer an exception allowed carried the upstream's TTL (300 s for a 12-second
    /// exception), so downstream caches kept the name after the exception was gone. Its TTLs are
    /// capped at the time the exception has left, fresh and from the cache.
    func testAnAnswerAnExceptionAllowedNeverOutlivesIt() throws {
        let pipeline = QueryPipeline(policy: try policy("*.example.net # all\n"), cache: AnswerCache())
        var x = ExceptionSet()
        try x.add(PolicyException(id: "e1", pattern: "www.example.com", client: nil, profile: nil, types: nil, reason: "r",
                                  createdAt: 0, expiresAt: 112), suffixes: nil, now: 0)
        pipeline.setExceptions(x)
        let query = WireFixtures.query(id: 9)
        guard case .forward(let job) = pipeline.process(query, client: "192.0.2.7", overTCP: false, now: 100) else { return XCTFail("forwarded") }
        let rrs = [WireFixtures.RR(owner: [0xC0, 0x0C], type: 1, ttl: 300, rdata: [192, 0, 2, 1])]
        let answer = try UpstreamAnswer(WireFixtures.response(id: 7, answers: rrs), id: 7, name: try DNSName("www.example.com"), type: .a)
        let (fresh, _) = pipeline.complete(job, answer: answer, now: 100)
        XCTAssertEqual(ParsedReply(bytes: fresh).records.map(\.ttl), [12])
        guard case .reply(let cached, _) = pipeline.process(query, client: "192.0.2.7", overTCP: false, now: 109.5) else { return XCTFail("cached") }
        XCTAssertEqual(ParsedReply(bytes: cached).records.map(\.ttl), [3], "2.5 s left, rounded up")
        guard case .reply(_, let after) = pipeline.process(query, client: "192.0.2.7", overTCP: false, now: 113) else { return XCTFail("denied") }
        XCTAssertEqual(after.action, .sinkholed, "the exception is gone")
    }

    func testActionOrdinalsArePositionsInAllCases() {
        // Counters (here and in the metrics) are arrays indexed by `ordinal`.
        for (i, a) in QueryRecord.Action.allCases.enumerated() { XCTAssertEqual(a.ordinal, i, "\(a)") }
    }
}

/// Wall-clock steps: the server shifts exceptions and quarantines by the step (ClockStepWatcher), so
/// they keep their remaining real time; and an exception made while the clock was far ahead is refused.
final class ClockStepTests: XCTestCase {
    private func allows(_ x: ExceptionSet, at now: Double) throws -> Bool {
        if case .allows = x.match(name: try DNSName("e1.example.com"), type: .a, clientAddress: nil, profile: "default",
                                  defaultTypes: RecordType.buildDefaults, now: now) { return true }
        return false
    }

    func testShiftedExceptionsAndQuarantinesKeepTheirRemainingTime() throws {
        var x = ExceptionSet()
        let t0 = 1_800_000_000.0
        try x.add(PolicyException(id: "x1", pattern: "e1.example.com", client: nil, profile: nil, types: nil, reason: "r",
                                  createdAt: t0, expiresAt: t0 + 300), suffixes: nil, now: t0)
        // The clock steps back a day 60 s later: unshifted, the exception would live a day longer.
        let back = t0 + 60 - 86_400
        XCTAssertTrue(try allows(x, at: back + 241))
        let kept = x.shifted(by: -86_400)
        XCTAssertTrue(try allows(kept, at: back + 239))
        XCTAssertFalse(try allows(kept, at: back + 241),
                     "ends 300 s of real time after it began")

        var q = QuarantineSet()
        _ = q.add(client: "192.0.2.7", domain: try DNSName("tun.example.com"), until: t0 + 600, reason: "alert", id: "q1")
        q.shift(by: 3600)   // a step forward of an hour
        XCTAssertNotNil(q.match(client: "192.0.2.7", name: try DNSName("a.tun.example.com"), now: t0 + 3600 + 599))
        XCTAssertNil(q.match(client: "192.0.2.7", name: try DNSName("a.tun.example.com"), now: t0 + 3600 + 601))
    }

    func testAnExceptionMadeWhileTheClockWasFarAheadIsRefused() {
        var x = ExceptionSet()
        let now = 1_800_000_000.0, ahead = now + 100 * 365 * 86_400
        XCTAssertThrowsError(try x.add(PolicyException(id: "f", pattern: "f.example.com", client: nil, profile: nil, types: nil, reason: "r",
                                                       createdAt: ahead, expiresAt: ahead + 60), suffixes: nil, now: now))
    }
}
