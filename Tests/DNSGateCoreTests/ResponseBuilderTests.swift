import XCTest
@testable import DNSGateCore

/// Replies dnsgate writes itself: errors, synthesized denials, truncated replies, and the size limit.
final class ResponseBuilderTests: XCTestCase {
    private typealias W = WireFixtures
    private let blocked = ExtendedError(.blocked, "blocked by dnsgate policy (deps.allow)")

    private func rejection(_ bytes: [UInt8]) -> Rejection {
        guard case .reject(let r) = RequestSanity.decode(bytes) else { fatalError("fixture is not rejected") }
        return r
    }

    func testErrorReplyCopiesIDRDCDAndQuestionAndSetsQRRA() {
        let query = W.query(id: 0x5151, name: "Www.Example.Com", type: 16, qclass: 3, flags: 0x0110)
        let reply = ParsedReply(bytes: ResponseBuilder.error(rejection(query)))
        XCTAssertEqual(reply.id, 0x5151)
        XCTAssertTrue(reply.qr)
        XCTAssertTrue(reply.ra)
        XCTAssertTrue(reply.rd)
        XCTAssertTrue(reply.cd)
        XCTAssertFalse(reply.aa)
        XCTAssertFalse(reply.tc)
        XCTAssertEqual(reply.rcodeLow, ResponseCode.refused.rawValue)
        XCTAssertEqual(reply.qd, 1)
        XCTAssertEqual(reply.an, 0)
        XCTAssertEqual(reply.ns, 0)
        XCTAssertEqual(reply.ar, 0, "no OPT when the query had none")
        XCTAssertEqual(Array(reply.question), W.question(name: "Www.Example.Com", type: 16, qclass: 3))
        XCTAssertEqual(reply.bytes.count, 12 + reply.question.count)
    }

    func testErrorReplyWithoutRDOrCDLeavesThemClear() {
        let reply = ParsedReply(bytes: ResponseBuilder.error(rejection(W.query(qclass: 3, flags: 0))))
        XCTAssertFalse(reply.rd)
        XCTAssertFalse(reply.cd)
        XCTAssertTrue(reply.qr)
    }

    func testHeaderOnlyRejectionHasNoQuestion() {
        let reply = ParsedReply(bytes: ResponseBuilder.error(rejection(W.query(id: 7, qdcount: 2))))
        XCTAssertEqual(reply.id, 7)
        XCTAssertEqual(reply.qd, 0)
        XCTAssertEqual(reply.rcodeLow, ResponseCode.formErr.rawValue)
        XCTAssertEqual(reply.bytes.count, 12)
    }

    func testNotImpReplyKeepsTheOpcode() {
        let reply = ParsedReply(bytes: ResponseBuilder.error(rejection(W.query(flags: 0x1100))))
        XCTAssertEqual(reply.opcode, 2)
        XCTAssertEqual(reply.rcodeLow, ResponseCode.notImp.rawValue)
    }

    /// RFC 6891 §6.1.3: BADVERS is 16, so the header holds 0 and the OPT's extended RCODE holds 1; OPT version 0.
    func testBadVersPutsTheUpperRcodeBitsInOPT() throws {
        let reply = ParsedReply(bytes: ResponseBuilder.error(rejection(W.query(opt: .init(version: 1, dnssecOK: true)))))
        XCTAssertEqual(reply.rcodeLow, 0)
        XCTAssertEqual(reply.ar, 1)
        let opt = try XCTUnwrap(reply.opt)
        XCTAssertEqual(opt.ttl >> 24, 1, "extended RCODE")
        XCTAssertEqual((opt.ttl >> 16) & 0xFF, 0, "version 0")
        XCTAssertEqual(opt.ttl & 0x8000, 0x8000, "DO echoed")
        XCTAssertEqual(opt.rclass, ResponseBuilder.defaultUDPPayload)
    }

    func testSynthesizedNXDomainHasSOAWithMinimumEqualToTTLAndBlockedEDE() throws {
        let q = W.view(W.query(id: 0x0102, name: "Tunnel.Example.NET", type: 1, flags: 0x0100, opt: .init()))
        let reply = ParsedReply(bytes: ResponseBuilder.synthesized(q, rcode: .nxDomain, answers: [], ttl: 45, ede: blocked))
        XCTAssertEqual(reply.id, 0x0102)
        XCTAssertEqual(reply.rcodeLow, ResponseCode.nxDomain.rawValue)
        XCTAssertTrue(reply.qr && reply.ra && reply.rd)
        XCTAssertFalse(reply.aa)
        XCTAssertEqual([reply.qd, reply.an, reply.ns, reply.ar], [1, 0, 1, 1])
        XCTAssertEqual(Array(reply.question), Array(q.rawQuestion))

        let soa = reply.records[0]
        XCTAssertEqual(soa.type, RecordType.soa.rawValue)
        XCTAssertEqual(soa.rclass, DNSClass.in)
        XCTAssertEqual(soa.ttl, 45)
        let minimum = soa.rdata.suffix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        XCTAssertEqual(minimum, 45, "RFC 2308 §5: SOA MINIMUM is the negative TTL")
        let mname = try DNSName(wire: Array(soa.rdata.prefix(while: { $0 != 0 })) + [0])
        XCTAssertTrue(mname.isSubdomain(of: try DNSName("invalid")), "\(mname)")

        let options = reply.ednsOptions
        XCTAssertEqual(options.count, 1)
        XCTAssertEqual(options.first?.code, 15, "RFC 8914 option code")
        let data = try XCTUnwrap(options.first?.data)
        XCTAssertEqual(UInt16(data[0]) << 8 | UInt16(data[1]), 15, "EDE info-code 15 Blocked")
        XCTAssertEqual(String(decoding: data.dropFirst(2), as: UTF8.self), blocked.text)
    }

    func testSynthesizedReplyHasNoOPTWhenTheQueryHadNone() {
        let q = W.view(W.query(name: "example.org"))
        let reply = ParsedReply(bytes: ResponseBuilder.synthesized(q, rcode: .nxDomain, answers: [], ttl: 60, ede: blocked))
        XCTAssertEqual(reply.ar, 0)
        XCTAssertNil(reply.opt)
        XCTAssertEqual(reply.records.count, 1)
    }

    func testSynthesizedNoDataIsNoErrorWithSOA() {
        let q = W.view(W.query(type: 16, opt: .init()))
        let reply = ParsedReply(bytes: ResponseBuilder.synthesized(q, rcode: .noError, answers: [], ttl: 30, ede: nil))
        XCTAssertEqual(reply.rcodeLow, 0)
        XCTAssertEqual([reply.an, reply.ns, reply.ar], [0, 1, 1])
        XCTAssertTrue(reply.ednsOptions.isEmpty, "no EDE asked for, none written")
    }

    func testSynthesizedRefusedHasNoSOA() {
        let q = W.view(W.query())
        let reply = ParsedReply(bytes: ResponseBuilder.synthesized(q, rcode: .refused, answers: [], ttl: 30, ede: nil))
        XCTAssertEqual(reply.rcodeLow, ResponseCode.refused.rawValue)
        XCTAssertEqual([reply.an, reply.ns, reply.ar], [0, 0, 0])
    }

    func testSynthesizedAnswerPointsAtTheQuestionName() throws {
        let q = W.view(W.query(name: "www.example.com", type: 1))
        let bytes = ResponseBuilder.synthesized(q, rcode: .noError, answers: [LocalRecord(type: .a, rdata: [192, 0, 2, 7])],
                                                ttl: 120, ede: nil)
        let reply = ParsedReply(bytes: bytes)
        XCTAssertEqual([reply.an, reply.ns], [1, 0])
        let a = reply.records[0]
        XCTAssertEqual(Array(bytes[a.ownerStart..<(a.ownerStart + 2)]), W.questionPointer)
        XCTAssertEqual(a.type, 1)
        XCTAssertEqual(a.ttl, 120)
        XCTAssertEqual(a.rdata, [192, 0, 2, 7])

        let owned = ResponseBuilder.synthesized(q, rcode: .noError,
            answers: [LocalRecord(owner: try DNSName("other.example.org"), type: .aaaa, rdata: Array(repeating: 0, count: 16))],
            ttl: 5, ede: nil)
        let r2 = ParsedReply(bytes: owned)
        XCTAssertEqual(Array(owned[r2.records[0].ownerStart...].prefix(19)), W.name("other.example.org"))
    }

    /// The OPT dnsgate wrote last comes off whole, with or without EDE, and ARCOUNT with it; a reply
    /// that does not end in one, or whose extended RCODE only the OPT can carry, is left alone.
    func testDroppingTheTrailingOPT() throws {
        let q = W.view(W.query(id: 7, name: "big.example.com", type: 16, opt: .init(payload: 1232)))
        for ede in [nil, blocked] {
            let reply = ResponseBuilder.synthesized(q, rcode: .nxDomain, answers: [], ttl: 60, ede: ede)
            let bare = try XCTUnwrap(ResponseBuilder.droppingTrailingOPT(reply))
            XCTAssertEqual(bare.count, reply.count - ResponseBuilder.optLength(ede))
            let parsed = ParsedReply(bytes: bare)
            XCTAssertEqual([parsed.qd, parsed.an, parsed.ns, parsed.ar], [1, 0, 1, 0])
            XCTAssertNil(parsed.opt)
            XCTAssertEqual(Array(bare[12...]), Array(reply[12..<bare.count]), "all but the OPT, as it was")
            XCTAssertNil(ResponseBuilder.droppingTrailingOPT(bare), "no OPT left")
        }
        XCTAssertNil(ResponseBuilder.droppingTrailingOPT(ResponseBuilder.error(rejection(W.query(opt: .init(version: 1))))),
                     "BADVERS needs the OPT's upper RCODE bits")
    }

    func testTruncatedSetsTCAndKeepsOnlyTheQuestion() {
        let q = W.view(W.query(id: 99, name: "big.example.com", type: 16, flags: 0x0100, opt: .init(payload: 512)))
        let reply = ParsedReply(bytes: ResponseBuilder.truncated(q))
        XCTAssertTrue(reply.tc)
        XCTAssertTrue(reply.qr)
        XCTAssertTrue(reply.rd)
        XCTAssertEqual(reply.id, 99)
        XCTAssertEqual(reply.rcodeLow, 0)
        XCTAssertEqual([reply.qd, reply.an, reply.ns, reply.ar], [1, 0, 0, 1])
        XCTAssertEqual(Array(reply.question), Array(q.rawQuestion))

        let plain = ParsedReply(bytes: ResponseBuilder.truncated(W.view(W.query())))
        XCTAssertTrue(plain.tc)
        XCTAssertEqual(plain.ar, 0)
    }

    func testSizeLimitRules() {
        typealias E = EDNSInfo
        let cases: [(name: String, edns: EDNSInfo?, tcp: Bool, maxUDP: UInt16, want: Int)] = [
            ("no EDNS over UDP: RFC 1035 512", nil, false, 1232, 512),
            ("TCP ignores EDNS", E(udpPayloadSize: 512, version: 0, dnssecOK: false), true, 1232, 65535),
            ("TCP without EDNS", nil, true, 1232, 65535),
            ("client smaller than ours", E(udpPayloadSize: 1000, version: 0, dnssecOK: false), false, 1232, 1000),
            ("client larger than ours", E(udpPayloadSize: 4096, version: 0, dnssecOK: false), false, 1232, 1232),
            ("below 512 is taken as 512 (RFC 6891 §6.2.5)", E(udpPayloadSize: 100, version: 0, dnssecOK: false), false, 1232, 512),
            ("our own limit raised", E(udpPayloadSize: 4096, version: 0, dnssecOK: false), false, 4000, 4000),
        ]
        for c in cases {
            XCTAssertEqual(ResponseBuilder.sizeLimit(edns: c.edns, overTCP: c.tcp, maxUDP: c.maxUDP), c.want, c.name)
        }
        XCTAssertEqual(ResponseBuilder.sizeLimit(edns: E(udpPayloadSize: 65000, version: 0, dnssecOK: false), overTCP: false),
                       Int(ResponseBuilder.defaultUDPPayload))
    }

    func testUpstreamQueryIsCanonicalWithOPT() throws {
        let bytes = UpstreamQuery.make(id: 0x7777, name: try DNSName("WWW.Example.ORG"), type: .https, dnssecOK: true)
        guard case .query(let q) = RequestSanity.decode(bytes) else { return XCTFail("our own query does not decode") }
        XCTAssertEqual(q.header.id, 0x7777)
        XCTAssertTrue(q.header.recursionDesired)
        XCTAssertEqual(Array(q.rawQuestion), W.question(name: "www.example.org", type: 65))
        XCTAssertEqual(q.edns, EDNSInfo(udpPayloadSize: ResponseBuilder.defaultUDPPayload, version: 0, dnssecOK: true))
        XCTAssertFalse(q.header.checkingDisabled)
        XCTAssertTrue(q.header.authenticData, "AD: dnsgate reads the answer's AD bit (RFC 6840 §5.7)")
        // CD only when the client set it; the two are different questions to the cache too.
        let cd = UpstreamQuery.make(id: 1, name: try DNSName("www.example.org"), type: .a, dnssecOK: false, checkingDisabled: true)
        guard case .query(let c) = RequestSanity.decode(cd) else { return XCTFail("our own CD query does not decode") }
        XCTAssertTrue(c.header.checkingDisabled && c.header.recursionDesired)
        let name = try DNSName("www.example.org")
        XCTAssertNotEqual(CacheKey(name: name, type: .a, dnssecOK: false), CacheKey(name: name, type: .a, dnssecOK: false, checkingDisabled: true))
        XCTAssertNotEqual(CacheKey(name: name, type: .a, dnssecOK: true), CacheKey(name: name, type: .a, dnssecOK: false, checkingDisabled: true))
    }
}
