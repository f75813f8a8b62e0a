import CLDNS
import XCTest
@testable import DNSGateCore
import DNSGateTestSupport

/// Differential test of the query decoder against ldns, the wire codec of record.
///
/// A few thousand queries, valid and mutated, come from a seeded generator (same seed, same packets, so
/// a failure reproduces). Each goes through `RequestSanity.decode` and `ldns_wire2pkt`. The invariant is
/// one-way: whenever dnsgate accepts a packet as a query, ldns must parse it too and agree on the question
/// (owner name compared as lower-cased wire bytes, type, class). Where ldns accepts and dnsgate refuses,
/// dnsgate is deliberately stricter; those cases are counted, not failed:
///
/// - a compression pointer in the question name: a query has nothing earlier to point at, and a name
///   read from the header is a spoofing or parser-confusion trick (ldns follows the pointer);
/// - trailing octets after the last counted record (ldns ignores them);
/// - TC, QR, opcodes other than QUERY, QDCOUNT ≠ 1, ANCOUNT/NSCOUNT ≠ 0, ARCOUNT > 1 (ldns parses any
///   header; these are rejected before the question is read);
/// - an additional record that is not an OPT owned by the root, OPT options that do not tile the RDATA
///   exactly, EDNS versions other than 0, classes other than IN (ldns only checks lengths);
/// - the reserved label types 0x40 and 0x80 are refused by both.
///
/// Each accepted name must also survive `DNSName(description)`: the log and `dnsgate check` print names
/// in that form and the loaders read them back.
final class LdnsDifferentialTests: XCTestCase {
    private struct LdnsQuestion: Equatable { let owner: [UInt8]; let type: UInt16; let qclass: UInt16 }

    /// ldns's reading of the first question, or nil when it refuses the packet.
    private func ldnsQuestion(_ bytes: [UInt8]) -> LdnsQuestion? {
        var pkt: UnsafeMutablePointer<ldns_pkt>? = nil
        let status = bytes.withUnsafeBufferPointer { ldns_wire2pkt(&pkt, $0.baseAddress, $0.count) }
        guard status == LDNS_STATUS_OK, let pkt else { return nil }
        defer { ldns_pkt_free(pkt) }
        guard ldns_pkt_qdcount(pkt) == 1, let list = ldns_pkt_question(pkt), let rr = ldns_rr_list_rr(list, 0),
              let owner = ldns_rr_owner(rr), let data = ldns_rdf_data(owner) else { return nil }
        let wire = UnsafeBufferPointer(start: data, count: ldns_rdf_size(owner)).map(asciiLower)
        return LdnsQuestion(owner: wire, type: UInt16(ldns_rr_get_type(rr).rawValue),
                            qclass: UInt16(ldns_rr_get_class(rr).rawValue))
    }

    // MARK: generator

    private func randomLabel(_ rng: inout SeededRandom) -> [UInt8] {
        let len = Int.random(in: 1...(Bool.random(using: &rng) ? 12 : 63), using: &rng)
        switch Int.random(in: 0..<4, using: &rng) {
        case 0:   // any octet at all: dots, backslashes, zero, high bytes
            return (0..<len).map { _ in UInt8.random(in: 0...255, using: &rng) }
        default:  // host-name-like, mixed case (0x20 randomisation)
            let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_*".utf8)
            return (0..<len).map { _ in alphabet.randomElement(using: &rng)! }
        }
    }

    private func randomName(_ rng: inout SeededRandom) -> [UInt8] {
        let suffixes = ["example.com", "example.org", "example.net", "a.test", ""]
        var out: [UInt8] = []
        for _ in 0..<Int.random(in: 0...(Bool.random(using: &rng) ? 3 : 8), using: &rng) {
            let l = randomLabel(&rng)
            guard out.count + l.count + 1 < 250 else { break }
            out.append(UInt8(l.count)); out += l
        }
        let tail = WireFixtures.name(suffixes.randomElement(using: &rng)!)
        return out.count + tail.count <= 255 ? out + tail : out + [0]
    }

    private func randomQuery(_ rng: inout SeededRandom) -> [UInt8] {
        let types: [UInt16] = [1, 28, 5, 16, 10, 255, 252, 65, 64, 41, 0, UInt16.random(in: 0...UInt16.max, using: &rng)]
        var opt: WireFixtures.OPT?
        if Bool.random(using: &rng) {
            var o = WireFixtures.OPT(payload: UInt16.random(in: 0...UInt16.max, using: &rng),
                                     version: Int.random(in: 0..<8, using: &rng) == 0 ? 1 : 0,
                                     dnssecOK: Bool.random(using: &rng))
            for _ in 0..<Int.random(in: 0...2, using: &rng) {
                let data = (0..<Int.random(in: 0...12, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                o.options.append((UInt16.random(in: 0...20, using: &rng), data))
            }
            opt = o
        }
        let flagChoices: [UInt16] = [0x0100, 0x0000, 0x0110, 0x0120, 0x0300, 0x8100, 0x1100, UInt16.random(in: 0...UInt16.max, using: &rng)]
        return WireFixtures.query(id: UInt16.random(in: 0...UInt16.max, using: &rng), nameWire: randomName(&rng),
                                  type: types.randomElement(using: &rng)!,
                                  qclass: Int.random(in: 0..<10, using: &rng) == 0 ? 3 : 1,
                                  flags: Int.random(in: 0..<4, using: &rng) == 0 ? flagChoices.randomElement(using: &rng)! : 0x0100,
                                  opt: opt)
    }

    private func mutate(_ input: [UInt8], _ rng: inout SeededRandom) -> [UInt8] {
        var b = input
        for _ in 0..<Int.random(in: 1...3, using: &rng) {
            switch Int.random(in: 0..<7, using: &rng) {
            case 0 where !b.isEmpty:   // flip one bit
                let i = Int.random(in: 0..<b.count, using: &rng); b[i] ^= 1 << UInt8.random(in: 0...7, using: &rng)
            case 1 where !b.isEmpty:   // replace an octet, often inside the question
                let i = Int.random(in: min(12, b.count - 1)..<b.count, using: &rng); b[i] = UInt8.random(in: 0...255, using: &rng)
            case 2 where !b.isEmpty:   // truncate
                b.removeLast(Int.random(in: 1...b.count, using: &rng))
            case 3:                    // trailing junk
                b += (0..<Int.random(in: 1...4, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            case 4 where b.count > 13: // plant a compression pointer in the question
                let i = Int.random(in: 12..<(b.count - 1), using: &rng); b[i] = 0xC0 | UInt8.random(in: 0...0x3F, using: &rng)
                b[i + 1] = UInt8.random(in: 0...255, using: &rng)
            case 5 where b.count >= 12: // lie in a count
                let at = [4, 6, 8, 10].randomElement(using: &rng)!; b[at] = 0; b[at + 1] = UInt8.random(in: 0...3, using: &rng)
            case 6 where b.count > 12: // insert an octet
                b.insert(UInt8.random(in: 0...255, using: &rng), at: Int.random(in: 12...b.count, using: &rng))
            default:
                break
            }
        }
        return b
    }

    // MARK: tests

    func testAcceptedQueriesAgreeWithLdns() throws {
        var rng = SeededRandom(seed: 0x646E_7367_6174_6501)
        var accepted = 0, stricterThanLdns = 0, refusedByBoth = 0
        var names = NameInterner(capacity: 16)   // small: its slots are hit, missed and overwritten
        for n in 0..<4000 {
            let base = randomQuery(&rng)
            let packet = n % 2 == 0 ? base : mutate(base, &rng)
            let ours = RequestSanity.decode(packet)
            // The server's decode goes through a name interner: it must agree exactly, twice (miss, then hit).
            for pass in 0..<2 {
                XCTAssertEqual(summary(RequestSanity.decode(packet, names: &names)), summary(ours), "case \(n) pass \(pass): \(hex(packet))")
            }
            let theirs = ldnsQuestion(packet)
            guard case .query(let q) = ours else {
                if theirs == nil { refusedByBoth += 1 } else { stricterThanLdns += 1 }
                continue
            }
            accepted += 1
            guard let theirs else {
                XCTFail("case \(n): dnsgate accepted what ldns refuses: \(hex(packet))")
                continue
            }
            XCTAssertEqual(theirs, LdnsQuestion(owner: q.name.wire, type: q.type.rawValue, qclass: q.qclass),
                           "case \(n): \(hex(packet))")
            XCTAssertEqual(try DNSName(q.name.description), q.name, "case \(n): \(q.name.description) does not round-trip")
        }
        // Guards against a generator that stops producing the cases this test is about.
        XCTAssertGreaterThan(accepted, 1000, "too few accepted queries to compare")
        XCTAssertGreaterThan(stricterThanLdns, 100, "no packets where dnsgate is stricter: generator too tame")
        XCTAssertGreaterThan(refusedByBoth, 10, "no packets both refuse: mutations too tame")
    }

    /// Hand-picked packets where the two differ on purpose; each must still be refused by dnsgate.
    func testDeliberatelyStricterCases() {
        let W = WireFixtures.self
        let cases: [(name: String, bytes: [UInt8])] = [
            ("compression pointer into the header", W.query(nameWire: [0xC0, 0x04])),
            ("trailing octets", W.query(trailing: [0, 0, 0])),
            ("TC set", W.query(flags: 0x0300)),
            ("EDNS version 1", W.query(opt: .init(version: 1))),
            ("class CH", W.query(qclass: 3)),
            ("OPT options that do not tile the RDATA", W.query(additional: [[0, 0, 41, 4, 0xD0, 0, 0, 0, 0, 0, 3, 0, 10, 0]])),
        ]
        for c in cases {
            XCTAssertNotNil(ldnsQuestion(c.bytes), "\(c.name): ldns is expected to parse this")
            if case .query = RequestSanity.decode(c.bytes) { XCTFail("\(c.name): dnsgate must refuse this") }
        }
    }

    func testReservedLabelTypesAreRefusedByBoth() {
        for first: UInt8 in [0x41, 0x81] {
            let bytes = WireFixtures.query(nameWire: [first, 0x61, 0])
            XCTAssertNil(ldnsQuestion(bytes), "label type 0x\(String(first & 0xC0, radix: 16))")
            if case .query = RequestSanity.decode(bytes) { XCTFail("label type 0x\(String(first & 0xC0, radix: 16))") }
        }
    }

    func testGeneratorIsReproducible() {
        var a = SeededRandom(seed: 42), b = SeededRandom(seed: 42)
        XCTAssertEqual((0..<5).map { _ in randomQuery(&a) }, (0..<5).map { _ in randomQuery(&b) })
    }

    private func summary(_ d: QueryDecoding) -> String {
        switch d {
        case .query(let q): return "query \(q.name.wire) \(q.type) \(q.qclass) \(Array(q.rawQuestion)) \(String(describing: q.edns))"
        case .reject(let r): return "reject \(r.rcode) \(r.reason)"
        case .drop(let why): return "drop \(why)"
        }
    }

    private func hex(_ b: [UInt8]) -> String { b.map { String(format2($0)) }.joined(separator: " ") }
    private func format2(_ v: UInt8) -> String { let s = String(v, radix: 16); return s.count == 1 ? "0" + s : s }
}
