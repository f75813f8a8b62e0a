import CLDNS
import XCTest
@testable import DNSGateCore

/// Local data (RPZ records other than actions) answered by the pipeline: a CNAME is followed through
/// the policy's own local data to the records the client asked for (QA pass 10, F1: given the CNAME
/// alone, glibc's resolver reported no address), then to a forwarded target's answer when the policy
/// allows the target, and ends where neither does.
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
            self.ci.test       CNAME self.ci.test.
            out.ci.test        CNAME www.allowed.test.
            gone.ci.test       CNAME www.denied.test.
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
        return answerSection(bytes)
    }

    private func answerSection(_ bytes: [UInt8]) -> [String] {
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

    /// A target the policy forwards is asked upstream, and its answer goes behind the chain; the
    /// client's question, ID and record stay the client's. A target the policy denies ends the chain.
    func testAForwardedTargetIsAskedAndItsAnswerJoinsTheChain() throws {
        let p = try pipeline()
        guard case .forward(let job) = p.process(W.query(id: 0x7777, name: "out.ci.test"), client: "192.0.2.1", overTCP: false, now: 100) else {
            return XCTFail("out.ci.test: not forwarded")
        }
        XCTAssertEqual(job.key.name, try DNSName("www.allowed.test"), "the target is asked")
        XCTAssertEqual(job.record.name, try DNSName("out.ci.test"), "the record is the client's question")
        let upstream = W.response(id: 0x0101, name: "www.allowed.test", answers: [.init(owner: W.questionPointer, type: 1, ttl: 300, rdata: [192, 0, 2, 1])])
        let (bytes, rec) = p.complete(job, answer: try UpstreamAnswer(upstream, id: 0x0101, name: job.key.name, type: .a), now: 101)
        XCTAssertEqual(answerSection(bytes), ["out.ci.test. CNAME www.allowed.test.", "www.allowed.test. A 192.0.2.1"])
        XCTAssertEqual(ParsedReply(bytes: bytes).id, 0x7777)
        XCTAssertEqual(rec.action, .forwarded)
        guard case .reply(let cached, let again) = p.process(W.query(name: "out.ci.test"), client: "192.0.2.1", overTCP: false, now: 102) else {
            return XCTFail("out.ci.test: not answered from the cache")
        }
        XCTAssertEqual(answerSection(cached), ["out.ci.test. CNAME www.allowed.test.", "www.allowed.test. A 192.0.2.1"])
        XCTAssertEqual(again.action, .cached)
        XCTAssertEqual(try answers(p, "gone.ci.test"), ["gone.ci.test. CNAME www.denied.test."], "a denied target: the chain alone")
    }

    func testTheChainEndsWhereTheLocalDataDoes() throws {
        let p = try pipeline()
        XCTAssertEqual(try answers(p, "to-txt.ci.test"), ["to-txt.ci.test. CNAME txt-only.ci.test."], "no A at the target: NODATA there")
        // A loop stops where it comes back, each record once (QA pass 14, F4: the question's own name
        // was not in the chain's names, so its record came twice).
        XCTAssertEqual(try answers(p, "loop-a.ci.test"), ["loop-a.ci.test. CNAME loop-b.ci.test.", "loop-b.ci.test. CNAME loop-a.ci.test."])
        XCTAssertEqual(try answers(p, "self.ci.test"), ["self.ci.test. CNAME self.ci.test."])
    }
}
