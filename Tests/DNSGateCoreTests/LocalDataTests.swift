import CLDNS
import XCTest
@testable import DNSGateCore

/// Local data (RPZ records other than actions) answered by the pipeline: a CNAME is followed through
/// the policy's own local data to the records the client asked for (QA pass 10, F1: given the CNAME
/// alone, glibc's resolver reported no address), and ends where the local data does.
final class LocalDataTests: XCTestCase {
    private typealias W = WireFixtures

    private func pipeline() throws -> QueryPipeline {
        let rpz = try RPZLoader.load(text: """
            $ORIGIN rpz.ci.test.
            @ SOA ns.ci.test. hostmaster.ci.test. 1 3600 600 86400 60
            registry.ci.test   A     192.0.2.20
            registry.ci.test   AAAA  2001:db8::20
            pkgs.ci.test       CNAME registry.ci.test.
            mirror.ci.test     CNAME pkgs.ci.test.
            loop-a.ci.test     CNAME loop-b.ci.test.
            loop-b.ci.test     CNAME loop-a.ci.test.
            out.ci.test        CNAME www.allowed.test.
            txt-only.ci.test   TXT   "v=1"
            to-txt.ci.test     CNAME txt-only.ci.test.
            """, file: "local.rpz")
        let plain = try PlainListLoader.load(text: "www.allowed.test\n", file: "t.allow")
        return QueryPipeline(policy: Policy(allowList: try AllowList(plain + rpz)), cache: AnswerCache())
    }

    /// The answer section as text, by ldns (the codec of record): owner, type and data of each record.
    private func answers(_ p: QueryPipeline, _ name: String, type: UInt16 = 1) throws -> [String] {
        guard case .reply(let bytes, let rec) = p.process(W.query(name: name, type: type), client: "192.0.2.1", overTCP: false, now: 100) else {
            XCTFail("\(name): no reply"); return []
        }
        XCTAssertEqual(rec.action, .local, name)
        var pkt: UnsafeMutablePointer<ldns_pkt>?
        XCTAssertEqual(bytes.withUnsafeBufferPointer { ldns_wire2pkt(&pkt, $0.baseAddress, $0.count) }, LDNS_STATUS_OK)
        defer { ldns_pkt_free(pkt) }
        let list = ldns_pkt_answer(pkt)
        return (0..<ldns_rr_list_rr_count(list)).map { i in
            let rr = ldns_rr_list_rr(list, i)
            let text = ldns_rr2str(rr).map { s in defer { free(s) }; return String(cString: s) } ?? ""
            let f = text.split(whereSeparator: { $0 == "\t" || $0 == " " || $0 == "\n" })
            return ([f[0], f[3]] + f[4...]).joined(separator: " ")
        }
    }

    func testACNAMEIsFollowedToTheTargetsLocalRecords() throws {
        let p = try pipeline()
        XCTAssertEqual(try answers(p, "pkgs.ci.test"), ["pkgs.ci.test. CNAME registry.ci.test.", "registry.ci.test. A 192.0.2.20"])
        XCTAssertEqual(try answers(p, "PKGS.ci.test", type: 28), ["PKGS.ci.test. CNAME registry.ci.test.", "registry.ci.test. AAAA 2001:db8::20"])
        XCTAssertEqual(try answers(p, "mirror.ci.test"), ["mirror.ci.test. CNAME pkgs.ci.test.", "pkgs.ci.test. CNAME registry.ci.test.",
                                                          "registry.ci.test. A 192.0.2.20"], "two links")
        XCTAssertEqual(try answers(p, "pkgs.ci.test", type: 5), ["pkgs.ci.test. CNAME registry.ci.test."], "a CNAME question gets the CNAME")
    }

    func testTheChainEndsWhereTheLocalDataDoes() throws {
        let p = try pipeline()
        XCTAssertEqual(try answers(p, "out.ci.test"), ["out.ci.test. CNAME www.allowed.test."], "a forwarded target is the client's to ask")
        XCTAssertEqual(try answers(p, "to-txt.ci.test"), ["to-txt.ci.test. CNAME txt-only.ci.test."], "no A at the target: NODATA there")
        let loop = try answers(p, "loop-a.ci.test")
        XCTAssertEqual(loop.first, "loop-a.ci.test. CNAME loop-b.ci.test.")
        XCTAssertLessThanOrEqual(loop.count, 3, "a loop stops: \(loop)")
    }
}
