import XCTest
@testable import DNSGateCore

/// `RequestSanity.decode`: Unbound's fixed order of header checks, then the question and the OPT record.
final class RequestSanityTests: XCTestCase {
    private typealias W = WireFixtures

    private enum Outcome: Equatable, CustomStringConvertible {
        case drop
        case reject(ResponseCode)
        case query
        var description: String {
            switch self {
            case .drop: return "drop"
            case .reject(let r): return "reject \(r)"
            case .query: return "query"
            }
        }
    }

    private func outcome(_ d: QueryDecoding) -> Outcome {
        switch d {
        case .drop: return .drop
        case .reject(let r): return .reject(r.rcode)
        case .query: return .query
        }
    }

    func testDecodeTable() {
        let cases: [(name: String, bytes: [UInt8], want: Outcome)] = [
            ("good query", W.query(), .query),
            ("good query with OPT", W.query(opt: .init()), .query),
            ("good query with OPT carrying an option", W.query(opt: .init(options: [(10, [1, 2, 3, 4, 5, 6, 7, 8])])), .query),
            ("empty packet", [], .drop),
            ("11 octets", Array(W.query().prefix(11)), .drop),
            ("bare header", W.header(id: 1, flags: 0x0100, qd: 1, an: 0, ns: 0, ar: 0), .reject(.formErr)),
            ("QR set", W.query(flags: 0x8100), .drop),
            ("QR and TC set: QR decides first", W.query(flags: 0x8300), .drop),
            ("TC set", W.query(flags: 0x0300), .reject(.formErr)),
            ("TC and opcode 2: TC decides first", W.query(flags: 0x1300), .reject(.formErr)),
            ("opcode 2 (STATUS)", W.query(flags: 0x1100), .reject(.notImp)),
            ("opcode 4 (NOTIFY)", W.query(flags: 0x2000), .reject(.notImp)),
            ("opcode 5 (UPDATE)", W.query(flags: 0x2800), .reject(.notImp)),
            ("opcode 1 with QDCOUNT 0: opcode decides first", W.query(flags: 0x0800, qdcount: 0), .reject(.notImp)),
            ("QDCOUNT 0", W.query(qdcount: 0), .reject(.formErr)),
            ("QDCOUNT 2", W.query(qdcount: 2), .reject(.formErr)),
            ("QDCOUNT 2 with two questions", W.query(qdcount: 2, trailing: W.question(name: "example.org")), .reject(.formErr)),
            ("ANCOUNT 1", W.query(ancount: 1), .reject(.formErr)),
            ("NSCOUNT 1", W.query(nscount: 1), .reject(.formErr)),
            ("ARCOUNT 2 (two OPT records)", W.query(opt: .init(), additional: [WireFixtures.OPT().bytes]), .reject(.formErr)),
            ("ARCOUNT 2 without records", W.query(arcount: 2), .reject(.formErr)),
            ("additional record is an A record",
             W.query(additional: [WireFixtures.RR(owner: W.name("example.com"), type: 1, ttl: 60, rdata: [192, 0, 2, 1]).bytes]),
             .reject(.formErr)),
            ("OPT with a non-root owner",
             W.query(additional: [W.name("example.com") + Array(WireFixtures.OPT().bytes.dropFirst())]), .reject(.formErr)),
            ("ARCOUNT 1 but no record", W.query(arcount: 1), .reject(.formErr)),
            ("OPT cut short", W.query(additional: [Array(WireFixtures.OPT().bytes.prefix(8))]), .reject(.formErr)),
            ("OPT RDLEN beyond the packet", W.query(additional: [[0, 0, 41, 4, 0xD0, 0, 0, 0, 0, 0, 8, 0, 10, 0, 4]]), .reject(.formErr)),
            ("OPT option overruns RDATA", W.query(additional: [[0, 0, 41, 4, 0xD0, 0, 0, 0, 0, 0, 6, 0, 10, 0, 8, 1, 2]]), .reject(.formErr)),
            ("OPT option header cut", W.query(additional: [[0, 0, 41, 4, 0xD0, 0, 0, 0, 0, 0, 2, 0, 10]]), .reject(.formErr)),
            ("EDNS version 1", W.query(opt: .init(version: 1)), .reject(.badVers)),
            ("class CH", W.query(type: 16, qclass: 3), .reject(.refused)),
            ("class ANY", W.query(qclass: 255), .reject(.refused)),
            ("class CH with EDNS version 1: BADVERS first", W.query(qclass: 3, opt: .init(version: 1)), .reject(.badVers)),
            ("compression pointer as the question name", W.query(nameWire: [0xC0, 0x0C]), .reject(.formErr)),
            ("compression pointer after a label", W.query(nameWire: [3] + Array("www".utf8) + [0xC0, 0x0C]), .reject(.formErr)),
            ("trailing octet", W.query(trailing: [0]), .reject(.formErr)),
            ("trailing octets after OPT", W.query(opt: .init(), trailing: [1, 2, 3]), .reject(.formErr)),
            ("label type 0x40", W.query(nameWire: [0x41, 0x61, 0]), .reject(.formErr)),
            ("label type 0x80", W.query(nameWire: [0x81, 0x61, 0]), .reject(.formErr)),
            ("name without its root octet", Array(W.header(id: 1, flags: 0, qd: 1, an: 0, ns: 0, ar: 0) + [3] + Array("www".utf8)), .reject(.formErr)),
            ("question missing type and class", W.header(id: 1, flags: 0, qd: 1, an: 0, ns: 0, ar: 0) + W.name("example.com"), .reject(.formErr)),
            ("question missing half the class", Array(W.query().dropLast()), .reject(.formErr)),
            ("name of 256 octets", W.query(nameWire: longName(256)), .reject(.formErr)),
            ("name of 255 octets", W.query(nameWire: longName(255)), .query),
            ("root name", W.query(nameWire: [0], type: 2), .query),
            ("RD clear", W.query(flags: 0), .query),
            ("AD and CD set", W.query(flags: 0x0130), .query),
            ("ANY type is decoded (policy refuses it)", W.query(type: 255), .query),
            ("OPT with DO and a small payload", W.query(opt: .init(payload: 100, dnssecOK: true)), .query),
        ]
        for c in cases {
            XCTAssertEqual(outcome(RequestSanity.decode(c.bytes)), c.want, c.name)
        }
    }

    /// Uncompressed name of exactly `octets` wire octets (labels of up to 63).
    private func longName(_ octets: Int) -> [UInt8] {
        var out: [UInt8] = [], left = octets - 1
        while left > 0 {
            let l = min(63, left - 1)
            out.append(UInt8(l)); out += Array(repeating: UInt8(ascii: "a"), count: l)
            left -= l + 1
        }
        out.append(0)
        precondition(out.count == octets)
        return out
    }

    func testGoodQueryFieldsAreDecoded() throws {
        let bytes = W.query(id: 0xBEEF, name: "WwW.ExAmple.COM", type: 28, flags: 0x0110,
                            opt: .init(payload: 4096, dnssecOK: true))
        guard case .query(let q) = RequestSanity.decode(bytes) else { return XCTFail("not a query") }
        XCTAssertEqual(q.header.id, 0xBEEF)
        XCTAssertTrue(q.header.recursionDesired)
        XCTAssertTrue(q.header.checkingDisabled)
        XCTAssertEqual(q.name, try DNSName("www.example.com"))
        XCTAssertEqual(q.type, .aaaa)
        XCTAssertEqual(q.qclass, DNSClass.in)
        XCTAssertEqual(Array(q.rawQuestion), W.question(name: "WwW.ExAmple.COM", type: 28), "client case is kept")
        XCTAssertEqual(q.edns, EDNSInfo(udpPayloadSize: 4096, version: 0, dnssecOK: true))
    }

    func testQueryWithoutOPTHasNoEDNS() {
        guard case .query(let q) = RequestSanity.decode(W.query()) else { return XCTFail("not a query") }
        XCTAssertNil(q.edns)
    }

    func testRejectionCarriesQuestionAndEDNSWhenReadable() {
        guard case .reject(let r) = RequestSanity.decode(W.query(qclass: 3, opt: .init(dnssecOK: true))) else {
            return XCTFail("not rejected")
        }
        XCTAssertEqual(r.rcode, .refused)
        XCTAssertEqual(r.rawQuestion.map(Array.init), W.question(qclass: 3))
        XCTAssertEqual(r.edns?.dnssecOK, true)
        XCTAssertTrue(r.reason.contains("class 3"), r.reason)

        guard case .reject(let early) = RequestSanity.decode(W.query(qdcount: 2)) else { return XCTFail("not rejected") }
        XCTAssertNil(early.rawQuestion, "header-stage rejections have no question to echo")
        XCTAssertEqual(early.header.id, 0x1234)
    }

    func testBadVersRejectionKeepsTheClientsOPT() {
        guard case .reject(let r) = RequestSanity.decode(W.query(opt: .init(version: 3))) else { return XCTFail("not rejected") }
        XCTAssertEqual(r.rcode, .badVers)
        XCTAssertEqual(r.edns?.version, 3)
        XCTAssertNotNil(r.rawQuestion)
    }

    /// Hand-written hex, as a packet capture would show it: an ID, RD, one question for example.com A.
    func testHexFixtureDecodes() throws {
        let bytes = W.hex("""
            ab cd 01 00 00 01 00 00 00 00 00 00
            07 65 78 61 6d 70 6c 65 03 63 6f 6d 00 00 01 00 01
            """)
        guard case .query(let q) = RequestSanity.decode(bytes) else { return XCTFail("not a query") }
        XCTAssertEqual(q.header.id, 0xABCD)
        XCTAssertEqual(q.name, try DNSName("example.com"))
        XCTAssertEqual(q.type, .a)
    }

    /// A name asked once does not take an occupied slot; one asked twice in a row there does. So a
    /// flood of one-off names leaves a held name in place.
    func testAFloodOfOneOffNamesLeavesAHeldNameInPlace() {
        var names = NameInterner(capacity: 1)   // one slot: every name competes for it
        func decoded(_ name: String) -> DNSName {
            guard case .query(let q) = RequestSanity.decode(W.query(name: name), names: &names) else { fatalError("not a query: \(name)") }
            return q.name
        }
        func storage(_ n: DNSName) -> UnsafePointer<UInt8>? { n.wire.withUnsafeBufferPointer { $0.baseAddress } }
        let held = decoded("www.example.com")
        for i in 0..<100 { _ = decoded("x\(i).tunnel.test") }
        XCTAssertEqual(storage(decoded("www.example.com")), storage(held), "the flood evicted the held name")
        _ = decoded("mail.example.com")
        let second = decoded("mail.example.com")   // twice in a row: takes the slot
        XCTAssertEqual(storage(decoded("mail.example.com")), storage(second))
        XCTAssertNotEqual(storage(decoded("www.example.com")), storage(held))
    }

    func testInternedNamesShareStorageAcrossSpellings() {
        var names = NameInterner(capacity: 64)
        guard case .query(let a) = RequestSanity.decode(W.query(name: "WWW.Example.COM"), names: &names),
              case .query(let b) = RequestSanity.decode(W.query(id: 7, name: "www.example.com", type: 28), names: &names),
              case .query(let c) = RequestSanity.decode(W.query(name: "mail.example.com"), names: &names)
        else { return XCTFail("not queries") }
        XCTAssertEqual(a.name, try DNSName("www.example.com"))
        XCTAssertEqual(a.name, b.name)
        func storage(_ n: DNSName) -> UnsafePointer<UInt8>? { n.wire.withUnsafeBufferPointer { $0.baseAddress } }
        XCTAssertEqual(storage(a.name), storage(b.name), "the second spelling reuses the first's canonical bytes")
        XCTAssertNotEqual(storage(a.name), storage(c.name))
        XCTAssertEqual(Array(b.rawQuestion.prefix(4)), [3] + Array("www".utf8), "the client's spelling stays in rawQuestion")
        guard case .reject(let r) = RequestSanity.decode(W.query(nameWire: [0xC0, 0x0C]), names: &names) else { return XCTFail("not rejected") }
        XCTAssertEqual(r.rcode, .formErr, "the interner reads names with the same checks")
    }

    func testDropsAndRejectionsSayWhy() {
        guard case .drop(let why) = RequestSanity.decode(W.query(flags: 0x8000)) else { return XCTFail("not dropped") }
        XCTAssertEqual(why, "QR set")
        guard case .reject(let r) = RequestSanity.decode(W.query(trailing: [9, 9])) else { return XCTFail("not rejected") }
        XCTAssertTrue(r.reason.contains("2 trailing"), r.reason)
    }
}
