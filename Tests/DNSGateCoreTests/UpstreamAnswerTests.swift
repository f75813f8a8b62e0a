import XCTest
@testable import DNSGateCore

/// Checking upstream replies (spoofing defence), cache TTLs (RFC 2308) and rendering for a client.
final class UpstreamAnswerTests: XCTestCase {
    private typealias W = WireFixtures
    private typealias RR = WireFixtures.RR
    private let id: UInt16 = 0x4242
    private let qname = try! DNSName("www.example.com")

    private func answer(_ bytes: [UInt8], type: RecordType = .a) throws -> UpstreamAnswer {
        try UpstreamAnswer(bytes, id: id, name: qname, type: type)
    }

    private func a(_ ttl: UInt32, _ last: UInt8) -> RR { RR(owner: W.questionPointer, type: 1, ttl: ttl, rdata: [192, 0, 2, last]) }
    private func soa(ttl: UInt32, minimum: UInt32) -> RR {
        RR(owner: W.name("example.com"), type: 6, ttl: ttl, rdata: W.soaRData(minimum: minimum))
    }

    func testAcceptsAProperReply() throws {
        let cname = RR(owner: W.questionPointer, type: 5, ttl: 300, rdata: W.name("cdn.example.net"))
        let target = RR(owner: W.name("cdn.example.net"), type: 1, ttl: 200, rdata: [192, 0, 2, 1])
        let ans = try answer(W.response(answers: [cname, target], opt: .init()))
        XCTAssertEqual(ans.rcode, .noError)
        XCTAssertFalse(ans.truncated)
        XCTAssertEqual(ans.answerCount, 2)
        XCTAssertEqual(ans.cnameTargets, [try DNSName("cdn.example.net")])
        XCTAssertEqual(ans.ttls, [300, 200])
        XCTAssertEqual(ans.questionLength, W.question().count)
        XCTAssertEqual(ans.body.u16(at: 0), 0, "ID zeroed in the stored body")
    }

    /// Every reply that must be thrown away rather than passed on (RFC 5452 §9.1).
    func testRejectsRepliesThatDoNotAnswerOurQuestion() {
        let ok = [a(60, 1)]
        let cases: [(name: String, bytes: [UInt8])] = [
            ("wrong ID", W.response(id: 0x4243, answers: ok)),
            ("not a response", Array(W.query(id: 0x4242))),
            ("wrong name", W.response(name: "www.example.org", answers: ok)),
            ("parent name", W.response(name: "example.com", answers: ok)),
            ("wrong type", W.response(type: 28, answers: ok)),
            ("wrong class", W.response(qclass: 3, answers: ok)),
            ("no question", W.response(qdcount: 0)),
            ("OPCODE STATUS", W.response(extraFlags: 2 << 11, answers: ok)),
            ("answer count larger than the records", Array(W.response(answers: ok).dropLast(14))),
            ("RDATA beyond the end", Array(W.response(answers: ok).dropLast(1))),
            ("OPT in the answer section", W.response(answers: [RR(owner: [0], type: 41, rclass: 1232, ttl: 0, rdata: [])])),
            ("two OPT records", W.response(answers: ok, additional: [RR(owner: [0], type: 41, rclass: 1232, ttl: 0, rdata: [])], opt: .init())),
            ("compression loop in the question", W.response(nameWire: [3] + Array("www".utf8) + [0xC0, 0x0C])),
            ("question name read from the header", W.response(nameWire: [0xC0, 0x04])),
            ("shorter than a header", [0x42, 0x42, 0x81]),
            ("compression loop in an answer owner", W.response(answers: [RR(owner: [0xC0, 0x2D], type: 1, ttl: 1, rdata: [1, 2, 3, 4])])),
        ]
        for c in cases {
            XCTAssertThrowsError(try answer(c.bytes), c.name)
        }
    }

    func testMixedCaseQuestionFromUpstreamIsAccepted() throws {
        XCTAssertNoThrow(try answer(W.response(name: "WWW.example.COM", answers: [a(60, 1)])))
    }

    /// QA pass 13: what unbound takes and dnsgate refused, each refusal costing the client a timeout.
    /// Octets after the last record are dropped (F7); an OPT before other additional records goes,
    /// with those after it (F2: RFC 6891 §6.1.1 lets it sit anywhere in the section).
    func testTrailingOctetsAndAnOPTBeforeOtherAdditionalRecordsAreDropped() throws {
        var expected = W.response(answers: [a(60, 1)]); expected.put16(0, at: 0)
        XCTAssertEqual(try answer(W.response(answers: [a(60, 1)], trailing: [0])).body, expected)
        XCTAssertEqual(try answer(W.response(answers: [a(60, 1)], opt: .init(), trailing: [0, 0])).body, expected)
        let glue = RR(owner: W.name("ns.example.com"), type: 1, ttl: 60, rdata: [192, 0, 2, 53])
        let optFirst = W.response(answers: [a(60, 1)]).withAdditional([glue, RR(owner: [0], type: 41, rclass: 1232, ttl: 0, rdata: []), a(5, 9)])
        let ans = try answer(optFirst)
        var kept = W.response(answers: [a(60, 1)], additional: [glue]); kept.put16(0, at: 0)
        XCTAssertEqual(ans.body, kept, "the glue before the OPT stays, the record after it goes")
        XCTAssertEqual(ans.ttls, [60, 60])
    }

    /// F11: an RRset's TTLs become its smallest (RFC 2181 §5.2), so no address goes out with another's
    /// TTL when they turn; a run at the end of the answer section too, and nothing outside a run.
    func testTheAddressesOfAnRRsetShareItsSmallestTTL() throws {
        let ns = RR(owner: W.name("example.com"), type: 2, ttl: 900, rdata: W.name("ns.example.com"))
        let mixed = try answer(W.response(answers: [a(300, 1), a(5, 2)], authority: [ns]))
        XCTAssertEqual(mixed.addressRuns.first?.count, 2)
        XCTAssertEqual(mixed.ttls, [5, 5, 900])
        XCTAssertEqual(try answer(W.response(answers: [a(300, 1)], authority: [ns])).ttls, [300, 900])
    }

    /// F8, F9: records but none of the type asked, no CNAME and no SOA (a DNAME alone, an AAAA for an A
    /// question) are passed on and never cached, as a negative answer without SOA is not.
    func testAnAnswerWithNothingOfTheTypeAskedIsNotCached() throws {
        let aaaa = RR(owner: W.questionPointer, type: 28, ttl: 300, rdata: [UInt8](repeating: 1, count: 16))
        XCTAssertNil(try answer(W.response(answers: [aaaa])).cacheTTL)
        let dname = RR(owner: W.name("example.com"), type: 39, ttl: 300, rdata: W.name("example.net"))
        XCTAssertNil(try answer(W.response(answers: [dname])).cacheTTL)
        XCTAssertEqual(try answer(W.response(answers: [a(300, 1)])).cacheTTL, 300)
        let cname = RR(owner: W.questionPointer, type: 5, ttl: 120, rdata: W.name("cdn.example.net"))
        XCTAssertEqual(try answer(W.response(answers: [cname])).cacheTTL, 120, "a chain the upstream left unfinished, as before")
    }

    func testOPTIsStrippedAndARCOUNTAdjusted() throws {
        let glue = RR(owner: W.name("ns.example.com"), type: 1, ttl: 60, rdata: [192, 0, 2, 53])
        let plain = W.response(answers: [a(60, 1)], additional: [glue])
        let withOPT = W.response(answers: [a(60, 1)], additional: [glue], opt: .init(payload: 4096, dnssecOK: true))
        let ans = try answer(withOPT)
        var expected = plain; expected.put16(0, at: 0)
        XCTAssertEqual(ans.body, expected)
        XCTAssertEqual(ParsedReply(bytes: ans.body).ar, 1)
        XCTAssertEqual(ans.ttls, [60, 60])
    }

    func testCacheTTLTable() throws {
        let cases: [(name: String, bytes: [UInt8], want: UInt32?)] = [
            ("minimum of the answer TTLs", W.response(answers: [a(300, 1), a(30, 2), a(120, 3)]), 30),
            ("authority and additional TTLs do not count",
             W.response(answers: [a(300, 1)], authority: [soa(ttl: 10, minimum: 5)]), 300),
            ("NXDOMAIN: SOA TTL below MINIMUM", W.response(rcode: 3, authority: [soa(ttl: 40, minimum: 900)]), 40),
            ("NXDOMAIN: MINIMUM below SOA TTL", W.response(rcode: 3, authority: [soa(ttl: 3600, minimum: 90)]), 90),
            ("NODATA uses the SOA too", W.response(rcode: 0, authority: [soa(ttl: 3600, minimum: 75)]), 75),
            ("NXDOMAIN without SOA is not cached", W.response(rcode: 3), nil),
            ("NODATA without SOA is not cached", W.response(rcode: 0), nil),
            ("SERVFAIL is not cached", W.response(rcode: 2, authority: [soa(ttl: 60, minimum: 60)]), nil),
            ("REFUSED is not cached", W.response(rcode: 5), nil),
            ("TTL with the top bit set counts as zero (RFC 2181 §8)", W.response(answers: [a(0x8000_0001, 1), a(60, 2)]), 0),
            // QA pass 5, F6: a chain before a negative answer made it positive, kept for the CNAME's TTL.
            ("NXDOMAIN after a CNAME: negative, and the chain's TTL counts",
             W.response(rcode: 3, answers: [cname(5000)], authority: [soa(ttl: 5000, minimum: 60)]), 60),
            ("NODATA after a CNAME: negative too", W.response(rcode: 0, answers: [cname(40)], authority: [soa(ttl: 3600, minimum: 75)]), 40),
            // QA pass 5, F7: the extended RCODE's low bits alone read as NXDOMAIN or NOERROR.
            ("extended RCODE (BADVERS): an error, not cached", W.response(rcode: 0, answers: [a(60, 1)], opt: .init(extendedRCode: 1)), nil),
            ("extended RCODE 19 with NXDOMAIN's low bits", W.response(rcode: 3, authority: [soa(ttl: 60, minimum: 60)], opt: .init(extendedRCode: 1)), nil),
        ]
        for c in cases {
            XCTAssertEqual(try answer(c.bytes).cacheTTL, c.want, c.name)
        }
    }

    private func cname(_ ttl: UInt32) -> RR { RR(owner: W.questionPointer, type: 5, ttl: ttl, rdata: W.name("gone.example.net")) }

    func testNegativeAnswersAreToldFromPositiveOnes() throws {
        XCTAssertFalse(try answer(W.response(answers: [a(60, 1)])).isNegative)
        XCTAssertFalse(try answer(W.response(answers: [cname(60)])).isNegative, "a chain without a SOA is an answer, if incomplete")
        XCTAssertTrue(try answer(W.response(rcode: 3, answers: [cname(60)], authority: [soa(ttl: 60, minimum: 60)])).isNegative)
        XCTAssertTrue(try answer(W.response(rcode: 0, answers: [cname(60)], authority: [soa(ttl: 60, minimum: 60)])).isNegative)
        XCTAssertTrue(try answer(W.response(rcode: 0, authority: [soa(ttl: 60, minimum: 60)])).isNegative)
        let asked = try UpstreamAnswer(W.response(id: id, type: 5, answers: [cname(60)], authority: [soa(ttl: 60, minimum: 60)]),
                                       id: id, name: qname, type: .cname)
        XCTAssertFalse(asked.isNegative, "the CNAME is the record asked for")
    }

    func testAnExtendedRCODEIsReadAsTheUpstreamFailing() throws {
        let badvers = try answer(W.response(rcode: 0, answers: [a(60, 1)], opt: .init(extendedRCode: 1)))
        XCTAssertEqual(badvers.rcode, .servFail, "so the exchange fails over instead of passing on NOERROR")
        XCTAssertEqual(badvers.upstreamRCODE.mnemonic, "BADVERS", "and the error says what the upstream sent (QA pass 6, F7)")
    }

    func testRenderAgesTTLsEchoesClientCaseAndID() throws {
        let ns = RR(owner: W.name("example.com"), type: 2, ttl: 86400, rdata: W.name("ns.example.com"))
        let ans = try answer(W.response(extraFlags: 0x0400 | 0x0020, answers: [a(300, 1), RR(owner: W.questionPointer, type: 16, ttl: 10, rdata: [1, 0x61])], authority: [ns]))
        let client = W.view(W.query(id: 0xCAFE, name: "wWw.EXAMPLE.cOm", flags: 0x0100))
        let reply = ParsedReply(bytes: ans.render(for: client, age: 25))
        XCTAssertEqual(reply.id, 0xCAFE)
        XCTAssertTrue(reply.qr && reply.ra && reply.rd)
        XCTAssertFalse(reply.aa, "AA never passes through")
        XCTAssertFalse(reply.ad, "AD only to a client that set AD or DO (RFC 6840 §5.8)")
        let asking = W.view(W.query(id: 0xCAFE, name: "wWw.EXAMPLE.cOm", flags: 0x0120))
        XCTAssertTrue(ParsedReply(bytes: ans.render(for: asking, age: 25)).ad, "AD passes through to a client that set AD")
        XCTAssertEqual(Array(reply.question), W.question(name: "wWw.EXAMPLE.cOm"))
        XCTAssertEqual(reply.records.map(\.ttl), [275, 0, 86375], "aged, never below zero")
        XCTAssertEqual(reply.ar, 0, "no OPT: the client sent none")
        XCTAssertNil(reply.opt)
    }

    /// The UDP listener renders into one buffer reused from query to query: what an earlier, longer
    /// reply left there must not survive, on the usual path and on the one that writes the client's
    /// question over a stored question of another length.
    func testRenderIntoAReusedBufferWritesOverWhatItHeld() throws {
        let ans = try answer(W.response(answers: [a(300, 1), a(10, 2)], opt: .init()))
        let client = W.view(W.query(id: 0xCAFE, name: "wWw.EXAMPLE.cOm", opt: .init()))
        let stored = client.rawQuestion
        let longer = ArraySlice(W.question(name: "a-longer-name.example.com"))
        let odd = QueryView(header: client.header, name: client.name, nameHash: client.nameHash, type: client.type,
                            qclass: client.qclass, rawQuestion: longer, edns: client.edns)
        for (what, q) in [("same question length", client), ("another question length", odd)] {
            var reused = [UInt8](repeating: 0xEE, count: 700)
            ans.render(into: &reused, for: q, age: 25)
            XCTAssertEqual(reused, ans.render(for: q, age: 25), what)
            XCTAssertEqual(Array(ParsedReply(bytes: reused).question), Array(q.rawQuestion), what)
        }
        XCTAssertEqual(stored.count + 10, longer.count, "the second case does take the other path")
    }

    func testRenderServesStaleTTLAndAppendsOPTOnlyForEDNSClients() throws {
        let ans = try answer(W.response(answers: [a(300, 1)], opt: .init()))
        let client = W.view(W.query(id: 1, opt: .init(payload: 1400, dnssecOK: true)))
        let stale = ExtendedError(.staleAnswer, "upstream unreachable")
        let reply = ParsedReply(bytes: ans.render(for: client, age: 10_000, staleTTL: 30, ede: stale))
        XCTAssertEqual(reply.records.first?.ttl, 30)
        XCTAssertEqual(reply.ar, 1)
        let opt = try XCTUnwrap(reply.opt)
        XCTAssertEqual(opt.ttl & 0x8000, 0x8000, "DO echoed")
        XCTAssertEqual(reply.ednsOptions.first?.code, 15)
        XCTAssertEqual(reply.ednsOptions.first?.data.prefix(2), [0, 3])

        let again = ParsedReply(bytes: ans.render(for: W.view(W.query(id: 2)), age: 0))
        XCTAssertEqual(again.ar, 0)
        XCTAssertEqual(again.records.count, 1)
    }

    /// The addresses of an RRset come in another order for each query ID (QA pass 10, F3: one order
    /// for the entry's whole life sent every runner to the same mirror), the RRset's TTL with them;
    /// runs under other owners, and other types, stay as they are.
    func testAddressRRsetsTurnWithTheQueryID() throws {
        let aaaa = { (last: UInt8) in RR(owner: W.questionPointer, type: 28, ttl: 60, rdata: [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [last]) }
        let other = RR(owner: W.name("other.example.com"), type: 1, ttl: 60, rdata: [192, 0, 2, 9])
        let txt = RR(owner: W.questionPointer, type: 16, ttl: 60, rdata: [3] + Array("v=1".utf8))
        let ans = try answer(W.response(answers: [a(300, 1), a(200, 2), a(100, 3), txt, aaaa(1), aaaa(2), other,
                                                  RR(owner: W.name("other.example.com"), type: 1, ttl: 60, rdata: [192, 0, 2, 10])]))
        func order(_ id: UInt16) -> [[UInt8]] {
            ParsedReply(bytes: ans.render(for: W.view(W.query(id: id)), age: 0)).records.map(\.rdata)
        }
        let original = order(0)
        XCTAssertEqual(original.prefix(3), [[192, 0, 2, 1], [192, 0, 2, 2], [192, 0, 2, 3]])
        XCTAssertEqual(order(1).prefix(3), [[192, 0, 2, 2], [192, 0, 2, 3], [192, 0, 2, 1]])
        XCTAssertEqual(order(2).prefix(3), [[192, 0, 2, 3], [192, 0, 2, 1], [192, 0, 2, 2]])
        XCTAssertEqual(order(6), original, "6 turns every run full circle")
        XCTAssertEqual(order(1)[3], original[3], "the TXT record stays")
        XCTAssertEqual(Array(order(1)[4...5]), Array(original[4...5].reversed()), "the AAAA pair turns too")
        XCTAssertEqual(Array(order(1)[6...7]), [[192, 0, 2, 10], [192, 0, 2, 9]], "another owner: a run of its own")
        XCTAssertEqual(Array(order(2)[6...7]), [[192, 0, 2, 9], [192, 0, 2, 10]])
        XCTAssertEqual(ParsedReply(bytes: ans.render(for: W.view(W.query(id: 1)), age: 0)).records.map(\.ttl),
                       [100, 100, 100, 60, 60, 60, 60, 60], "one TTL for the RRset, its smallest (QA pass 13, F11)")
    }

    /// A negative answer's SOA goes out with the TTL the denial is cached for, min(TTL, MINIMUM),
    /// counting down (RFC 2308 §3, §5; QA pass 10, F4: the SOA's own 3600 was passed on).
    func testANegativeAnswersSOACarriesItsNegativeTTL() throws {
        let ans = try answer(W.response(rcode: 3, authority: [soa(ttl: 3600, minimum: 30)]))
        XCTAssertEqual(ans.cacheTTL, 30)
        XCTAssertEqual(ParsedReply(bytes: ans.render(for: W.view(W.query(id: 3)), age: 1)).records.first?.ttl, 29)
        let low = try answer(W.response(rcode: 3, authority: [soa(ttl: 20, minimum: 300)]))
        XCTAssertEqual(ParsedReply(bytes: low.render(for: W.view(W.query(id: 3)), age: 0)).records.first?.ttl, 20)
    }

    func testRenderKeepsTheRcode() throws {
        let ans = try answer(W.response(rcode: 3, authority: [soa(ttl: 60, minimum: 60)]))
        let reply = ParsedReply(bytes: ans.render(for: W.view(W.query(id: 3, opt: .init())), age: 0))
        XCTAssertEqual(reply.rcodeLow, 3)
        XCTAssertEqual(reply.records.first?.type, 6)
    }
}

private extension Array where Element == UInt8 {
    /// Appends raw records to the additional section and bumps ARCOUNT, for orders `response` cannot make.
    func withAdditional(_ rrs: [WireFixtures.RR]) -> [UInt8] {
        var out = self
        for r in rrs { out += r.bytes }
        out.put16(out.u16(at: 10) + UInt16(rrs.count), at: 10)
        return out
    }
}
