import CLDNS
import XCTest
@testable import DNSGateCore

/// A local CNAME chain joined to its target's answer: the result is read back by ldns, the codec of
/// record, and must hold the client's question, the chain, and every record of the target's answer
/// with its names intact (each compression pointer moved to where its name now is).
final class ChainSpliceTests: XCTestCase {
    private typealias W = WireFixtures
    private typealias RR = WireFixtures.RR
    private let target = try! DNSName("cdn.example.net")

    /// ldns's reading of a message: question, then each section's records as presentation text.
    private func ldnsText(_ bytes: [UInt8]) -> [String]? {
        var pkt: UnsafeMutablePointer<ldns_pkt>? = nil
        let status = bytes.withUnsafeBufferPointer { ldns_wire2pkt(&pkt, $0.baseAddress, $0.count) }
        guard status == LDNS_STATUS_OK, let pkt else { return nil }
        defer { ldns_pkt_free(pkt) }
        var out: [String] = []
        for list in [ldns_pkt_question(pkt), ldns_pkt_answer(pkt), ldns_pkt_authority(pkt), ldns_pkt_additional(pkt)] {
            guard let list else { continue }
            for i in 0..<ldns_rr_list_rr_count(list) {
                guard let text = ldns_rr2str(ldns_rr_list_rr(list, i)) else { return nil }
                out.append(String(cString: text).trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: "\t", with: " "))
                free(text)
            }
        }
        return out
    }

    /// The target's answer as `render` writes it for a client: pointers into the question (at 12)
    /// and into earlier records, the OPT last.
    private func renderedTargetAnswer(edns: Bool, extra: [RR] = []) throws -> [UInt8] {
        let edgeOwner = Array(W.name("edge").dropLast()) + [0xC0, 0x0C]                                   // edge.<question>
        let cname = RR(owner: W.questionPointer, type: 5, ttl: 300, rdata: edgeOwner)
        let msg = W.response(name: "cdn.example.net", answers: [cname], authority: [], additional: [])
        let edgeAt = msg.count - edgeOwner.count                                        // the CNAME's RDATA
        let address = RR(owner: [0xC0 | UInt8(edgeAt >> 8), UInt8(edgeAt & 0xFF)], type: 1, ttl: 200, rdata: [192, 0, 2, 7])
        let ns = RR(owner: [0xC0, 0x10], type: 2, ttl: 900, rdata: Array(W.name("ns1").dropLast()) + [0xC0, 0x10])   // example.net, in the question
        let full = W.response(name: "cdn.example.net", answers: [cname, address] + extra, authority: [ns])
        let answer = try UpstreamAnswer(full, id: 0x4242, name: target, type: .a)
        let asked = W.view(W.query(id: 0x5151, name: "cdn.example.net", opt: edns ? .init(payload: 1232) : nil))
        return answer.render(for: asked, age: 0)
    }

    private func client(_ name: String, edns: Bool) -> QueryView {
        W.view(W.query(id: 0x5151, name: name, opt: edns ? .init(payload: 1232) : nil))
    }

    func testTheChainGoesFirstAndTheTargetsRecordsKeepTheirNames() throws {
        for edns in [false, true] {
            let reply = try renderedTargetAnswer(edns: edns)
            let q = client("pkgs.ci.test", edns: edns)
            let chain = [LocalRecord(type: .cname, rdata: W.name("mid.ci.test")),
                         LocalRecord(owner: try DNSName("mid.ci.test"), type: .cname, rdata: target.wire)]
            let joined = try XCTUnwrap(ChainSplice.splice(reply, chain: chain, ttl: 60, question: q.rawQuestion))
            XCTAssertEqual(ldnsText(joined), [
                "pkgs.ci.test. IN A",
                "pkgs.ci.test. 60 IN CNAME mid.ci.test.",
                "mid.ci.test. 60 IN CNAME cdn.example.net.",
                "cdn.example.net. 300 IN CNAME edge.cdn.example.net.",
                "edge.cdn.example.net. 200 IN A 192.0.2.7",
                "example.net. 900 IN NS ns1.example.net.",
            ])
            let parsed = ParsedReply(bytes: joined)
            XCTAssertEqual(parsed.id, 0x5151)
            XCTAssertEqual([parsed.qd, parsed.an, parsed.ns, parsed.ar], [1, 4, 1, edns ? 1 : 0])
            XCTAssertEqual(parsed.opt != nil, edns, "the OPT comes along")
        }
    }

    /// QA pass 14: a target the zone spells in capitals still meets the canonical question asked
    /// upstream (F1); and the joined answer never says AD, its chain being dnsgate's own unsigned data (F2).
    func testATargetInCapitalsJoinsAndTheAnswerIsNotAuthenticated() throws {
        var reply = try renderedTargetAnswer(edns: true)
        reply.put16(reply.u16(at: 2) | 0x0020, at: 2)                                   // AD from upstream
        let q = client("pkgs.ci.test", edns: true)
        let chain = [LocalRecord(type: .cname, rdata: W.name("CDN.Example.NET"))]
        let joined = try XCTUnwrap(ChainSplice.splice(reply, chain: chain, ttl: 60, question: q.rawQuestion))
        XCTAssertEqual(ldnsText(joined)?.prefix(3), ["pkgs.ci.test. IN A", "pkgs.ci.test. 60 IN CNAME cdn.example.net.",
                                                    "cdn.example.net. 300 IN CNAME edge.cdn.example.net."], "in the spelling asked upstream")
        XCTAssertFalse(ParsedReply(bytes: joined).ad)
        XCTAssertTrue(ParsedReply(bytes: joined).rd, "the other flags as the reply had them")
    }

    /// What cannot be moved faithfully is refused, and the caller answers with the chain alone.
    func testWhatItCannotMoveIsRefused() throws {
        let q = client("pkgs.ci.test", edns: false)
        let chain = [LocalRecord(type: .cname, rdata: target.wire)]
        let naptr = RR(owner: W.questionPointer, type: 35, ttl: 60, rdata: [0, 1, 0, 1, 0, 0, 0, 0xC0, 0x0C])
        XCTAssertNil(ChainSplice.splice(try renderedTargetAnswer(edns: false, extra: [naptr]), chain: chain, ttl: 60, question: q.rawQuestion),
                     "NAPTR: its name sits behind strings")
        let other = [LocalRecord(type: .cname, rdata: W.name("elsewhere.example.net"))]
        XCTAssertNil(ChainSplice.splice(try renderedTargetAnswer(edns: false), chain: other, ttl: 60, question: q.rawQuestion),
                     "the chain must end at the reply's question")
        XCTAssertNotNil(ChainSplice.splice(try renderedTargetAnswer(edns: false), chain: chain, ttl: 60, question: q.rawQuestion))
    }
}
