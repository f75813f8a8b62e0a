import XCTest
@testable import DNSGateCore

/// `policy.cname_targets: allowed`: an allowed name's answer that CNAMEs outside the allow-list is
/// denied as its target would be, whichever way the answer reaches the client (fresh from upstream,
/// from the cache, served stale), and audit mode records it instead.
final class CNAMETargetTests: XCTestCase {
    private typealias W = WireFixtures
    private let id: UInt16 = 0x4242

    private func pipeline(_ allow: String, rule: CNAMETargets = .allowed, mode: PolicyMode = .enforce,
                          sinkhole: SinkholeMode = .nxdomain) throws -> QueryPipeline {
        let list = try AllowList(PlainListLoader.load(text: allow, file: "t.allow"))
        return QueryPipeline(policy: Policy(allowList: list, mode: mode, sinkhole: sinkhole, cnameTargets: rule), cache: AnswerCache())
    }

    /// www.example.com → cdn.example.net → 192.0.2.1, as a resolver answers it.
    private func chainAnswer(type: RecordType = .a) throws -> UpstreamAnswer {
        let cname = W.RR(owner: W.questionPointer, type: 5, ttl: 300, rdata: W.name("cdn.example.net"))
        let target = W.RR(owner: W.name("cdn.example.net"), type: 1, ttl: 200, rdata: [192, 0, 2, 1])
        let bytes = W.response(id: id, type: type.rawValue, answers: type == .a ? [cname, target] : [cname])
        return try UpstreamAnswer(bytes, id: id, name: try DNSName("www.example.com"), type: type)
    }

    private func forwardJob(_ p: QueryPipeline, type: UInt16 = 1, client: UInt8 = 7,
                            now: Double = 100, file: StaticString = #filePath, line: UInt = #line) throws -> ForwardJob {
        guard case .forward(let job) = p.process(W.query(type: type, opt: .init()), client: "192.0.2.\(client)",
                                                 clientAddress: [192, 0, 2, client], overTCP: false, now: now)
        else { XCTFail("www.example.com is allowed: it must be forwarded", file: file, line: line); throw XCTSkip() }
        return job
    }

    private func cached(_ p: QueryPipeline, client: UInt8 = 7, now: Double = 110) throws -> ([UInt8], QueryRecord) {
        guard case .reply(let bytes, let rec) = p.process(W.query(opt: .init()), client: "192.0.2.\(client)",
                                                          clientAddress: [192, 0, 2, client], overTCP: false, now: now)
        else { XCTFail("the answer is cached"); throw XCTSkip() }
        return (bytes, rec)
    }

    private func edeText(_ bytes: [UInt8]) -> String {
        guard let o = ParsedReply(bytes: bytes).ednsOptions.first(where: { $0.code == 15 }) else { return "" }
        return String(decoding: o.data.dropFirst(2), as: UTF8.self)
    }

    func testAnAnswerThatLeavesTheAllowListIsDeniedFreshAndFromTheCache() throws {
        let p = try pipeline("www.example.com # the registry\n")
        let (fresh, rec) = p.complete(try forwardJob(p), answer: try chainAnswer(), now: 100)
        XCTAssertEqual(ParsedReply(bytes: fresh).rcodeLow, ResponseCode.nxDomain.rawValue)
        XCTAssertEqual(ParsedReply(bytes: fresh).an, 0, "neither the CNAME nor the target's address is passed on")
        XCTAssertTrue(edeText(fresh).contains("CNAME target cdn.example.net. not allowed"), edeText(fresh))
        XCTAssertEqual(rec.action, .sinkholed)
        XCTAssertEqual(rec.denial, .cnameTarget(try DNSName("cdn.example.net")))
        XCTAssertFalse(rec.audited)

        let (again, rec2) = try cached(p)
        XCTAssertEqual(ParsedReply(bytes: again).rcodeLow, ResponseCode.nxDomain.rawValue, "the cache keeps the answer, not the verdict")
        XCTAssertEqual(rec2.action, .sinkholed)
        XCTAssertEqual(p.counters.snapshot[.sinkholed], 2)
        XCTAssertEqual(p.counters.snapshot[.forwarded], 0, "counted once, as what the client got")
        XCTAssertEqual(p.counters.snapshot[.cached], 0)
    }

    func testAnAllowedTargetPassesAndCountsAHitOnItsEntry() throws {
        let p = try pipeline("www.example.com # the registry\ncdn.example.net # its CDN\n")
        let (fresh, rec) = p.complete(try forwardJob(p), answer: try chainAnswer(), now: 100)
        XCTAssertEqual(ParsedReply(bytes: fresh).an, 2)
        XCTAssertEqual(rec.action, .forwarded)
        XCTAssertNil(rec.denial)
        XCTAssertEqual(try cached(p).1.action, .cached)
        XCTAssertEqual(p.snapshot.entryHits[0][1], 2, "the CDN's entry is in use: one hit per answer that needed it")
    }

    func testTheTargetMustAllowTheQuestionsType() throws {
        let p = try pipeline("www.example.com # the registry\ncdn.example.net AAAA # v6 only\n")
        let (_, rec) = p.complete(try forwardJob(p), answer: try chainAnswer(), now: 100)
        XCTAssertEqual(rec.denial, .cnameTarget(try DNSName("cdn.example.net")))
    }

    func testTheDefaultPassesTheChainAsTheUpstreamResolvedIt() throws {
        let p = try pipeline("www.example.com # the registry\n", rule: .any)
        let (fresh, rec) = p.complete(try forwardJob(p), answer: try chainAnswer(), now: 100)
        XCTAssertEqual(ParsedReply(bytes: fresh).an, 2)
        XCTAssertNil(rec.denial)
    }

    func testACNAMEQuestionIsNotChecked() throws {
        // The client asks for the target next, and that question is decided on its own.
        let p = try pipeline("www.example.com # the registry\n")
        let (fresh, rec) = p.complete(try forwardJob(p, type: 5), answer: try chainAnswer(type: .cname), now: 100)
        XCTAssertEqual(ParsedReply(bytes: fresh).an, 1)
        XCTAssertEqual(rec.action, .forwarded)
    }

    /// QA pass 12, F4: what a CNAME question's answer holds beyond the CNAME is data the client gets,
    /// the denied target's address included: it is checked.
    func testACNAMEQuestionsAnswerWithTheTargetsRecordsIsChecked() throws {
        let p = try pipeline("www.example.com # the registry\n")
        let cname = W.RR(owner: W.questionPointer, type: 5, ttl: 300, rdata: W.name("cdn.example.net"))
        let target = W.RR(owner: W.name("cdn.example.net"), type: 1, ttl: 200, rdata: [192, 0, 2, 1])
        let answer = try UpstreamAnswer(W.response(id: id, type: 5, answers: [cname, target]), id: id, name: try DNSName("www.example.com"), type: .cname)
        let (fresh, rec) = p.complete(try forwardJob(p, type: 5), answer: answer, now: 100)
        XCTAssertEqual(ParsedReply(bytes: fresh).an, 0, "the target's address is not passed on")
        XCTAssertEqual(rec.denial, .cnameTarget(try DNSName("cdn.example.net")))
    }

    /// QA pass 12, F3: records no CNAME leads to are checked as targets are: a DNAME's substitution sent
    /// without its CNAME, and an address owned by another name. A stub that reads addresses without
    /// their owners (musl's) would use them.
    func testAnswerRecordsOfOtherNamesAreCheckedAsTargets() throws {
        let dname = W.RR(owner: W.name("example.com"), type: 39, ttl: 300, rdata: W.name("evil.test"))
        let cases: [(String, [W.RR], String?)] = [
            ("DNAME without its CNAME", [dname, W.RR(owner: W.name("www.evil.test"), type: 1, ttl: 60, rdata: [192, 0, 2, 66])], "www.evil.test."),
            ("an address owned by a denied name", [W.RR(owner: W.questionPointer, type: 1, ttl: 60, rdata: [192, 0, 2, 1]),
                                                   W.RR(owner: W.name("x.denied.test"), type: 1, ttl: 60, rdata: [192, 0, 2, 66])], "x.denied.test."),
            ("an address owned by an allowed name", [W.RR(owner: W.name("mirror.example.org"), type: 1, ttl: 60, rdata: [192, 0, 2, 7])], nil),
        ]
        for (why, records, denied) in cases {
            let p = try pipeline("www.example.com # the registry\n*.example.org # mirrors\n")   // each its own cache
            let answer = try UpstreamAnswer(W.response(id: id, answers: records), id: id, name: try DNSName("www.example.com"), type: .a)
            let (reply, rec) = p.complete(try forwardJob(p), answer: answer, now: 100)
            if let denied {
                XCTAssertEqual(rec.denial, .cnameTarget(try DNSName(denied)), why)
                XCTAssertEqual(ParsedReply(bytes: reply).an, 0, why)
            } else {
                XCTAssertNil(rec.denial, why)
                XCTAssertEqual(ParsedReply(bytes: reply).an, 1, why)
            }
        }
        // As resolvers answer, with every owner the question or a target: nothing more to check, no list made.
        XCTAssertTrue(try chainAnswer().strayOwners.isEmpty)
    }

    func testAuditModePassesTheAnswerAndRecordsWhatEnforceWouldHaveDone() throws {
        let p = try pipeline("www.example.com # the registry\n", mode: .audit)
        let (fresh, rec) = p.complete(try forwardJob(p), answer: try chainAnswer(), now: 100)
        XCTAssertEqual(ParsedReply(bytes: fresh).an, 2)
        XCTAssertEqual(rec.action, .forwarded)
        XCTAssertTrue(rec.audited)
        XCTAssertEqual(rec.denial, .cnameTarget(try DNSName("cdn.example.net")))
        // An unlisted question audit mode forwarded keeps its own reason: it is the name to learn first.
        let unlisted = try pipeline("other.example.org # something else\n", mode: .audit)
        let (_, first) = unlisted.complete(try forwardJob(unlisted), answer: try chainAnswer(), now: 100)
        XCTAssertEqual(first.denial, .notListed)
        XCTAssertTrue(first.audited)
    }

    func testAnExceptionForTheTargetLetsTheChainThrough() throws {
        let p = try pipeline("www.example.com # the registry\n")
        var x = ExceptionSet()
        try x.add(PolicyException(id: "e1", pattern: "cdn.example.net", client: "192.0.2.7", profile: nil, types: nil, reason: "r",
                                  createdAt: 0, expiresAt: 150), suffixes: nil, now: 0)
        p.setExceptions(x)
        let (fresh, rec) = p.complete(try forwardJob(p), answer: try chainAnswer(), now: 100)
        XCTAssertNil(rec.denial)
        // QA pass 6, F2: the chain carried the upstream's TTLs (300, 200) past the exception's end.
        XCTAssertEqual(ParsedReply(bytes: fresh).records.filter { $0.type != 41 }.map(\.ttl), [50, 50], "capped at the 50 s the exception has left")
        XCTAssertEqual(p.exceptionHits.withLock { $0["e1"] }, 1, "the exception's use is counted")
        XCTAssertEqual(ParsedReply(bytes: try cached(p, now: 130).0).records.filter { $0.type != 41 }.map(\.ttl), [20, 20], "from the cache too")
        let (_, other) = try cached(p, client: 8)
        XCTAssertEqual(other.denial, .cnameTarget(try DNSName("cdn.example.net")), "the exception is for 192.0.2.7 only")
        XCTAssertNil(try cached(p, now: 140).1.denial, "from the cache as well")
        XCTAssertEqual(try cached(p, now: 160).1.denial, .cnameTarget(try DNSName("cdn.example.net")),
                       "the exception has expired: the answer still cached is denied")
    }

    func testDropModeAnswersNXDOMAINAndAStaleAnswerIsCheckedToo() throws {
        let p = try pipeline("www.example.com # the registry\n", sinkhole: .drop)
        let (fresh, rec) = p.complete(try forwardJob(p), answer: try chainAnswer(), now: 100)
        XCTAssertEqual(ParsedReply(bytes: fresh).rcodeLow, ResponseCode.nxDomain.rawValue)
        XCTAssertEqual(rec.action, .sinkholed)
        // Past its TTL, the upstream down: the stale answer is the chain again.
        let (stale, srec) = p.upstreamFailed(try forwardJob(p, now: 400), now: 400, detail: "timeout")
        XCTAssertEqual(ParsedReply(bytes: stale).rcodeLow, ResponseCode.nxDomain.rawValue)
        XCTAssertEqual(srec.denial, .cnameTarget(try DNSName("cdn.example.net")))
    }

}
