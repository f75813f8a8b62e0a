import XCTest
@testable import DNSGateCore

/// The UDP listener runs the pipeline with a `QueryScratch` (interned names, a reused reply buffer).
/// Whatever the path, it must answer byte for byte what the pipeline answers without one, and the
/// reply it returns must stay intact when the next query reuses the buffer.
final class QueryScratchTests: XCTestCase {
    private typealias W = WireFixtures

    private func pipeline() throws -> QueryPipeline {
        let allow = "allowed.test\n*.allowed.test\nonly-a.example.com a\n"
        let p = QueryPipeline(policy: Policy(allowList: try AllowList(PlainListLoader.load(text: allow, file: "t.allow"))), cache: AnswerCache())
        let reply = W.response(id: 7, name: "www.allowed.test",
                               answers: [.init(owner: [0xC0, 0x0C], type: 1, ttl: 300, rdata: [192, 0, 2, 1])])
        p.cache.insert(CacheKey(name: try DNSName("www.allowed.test"), type: .a, dnssecOK: false),
                       try UpstreamAnswer(reply, id: 7, name: try DNSName("www.allowed.test"), type: .a), now: 100)
        return p
    }

    private func run(_ p: QueryPipeline, _ q: [UInt8], _ scratch: QueryScratch?) -> String {
        switch p.process(q, client: "192.0.2.1", overTCP: false, now: 110, scratch: scratch) {
        case .reply(let bytes, let r): return "reply \(bytes) \(r.action) \(String(describing: r.rcode)) \(String(describing: r.name))"
        case .drop(let r): return "drop \(r.action)"
        case .forward(let job): return "forward \(job.key.name)"
        }
    }

    /// The name's hash is computed once, as it is read, and the telemetry's tables take it in place
    /// of their own: whichever path read the name, it must be the name's `hashValue`, or a top-k
    /// table would file the name under one hash and look it up under another.
    func testTheRecordCarriesTheHashTheTablesUse() throws {
        let p = try pipeline()
        let scratch = QueryScratch(names: NameInterner(capacity: 4))
        let table = SpaceSaving<HashedName>(capacity: 8)
        for (q, s) in [(W.query(name: "X1.Denied.test"), nil), (W.query(name: "x1.denied.TEST"), scratch),
                       (W.query(name: "x1.denied.test"), scratch), (W.query(name: "new.allowed.test"), scratch)] as [([UInt8], QueryScratch?)] {
            let r: QueryRecord
            switch p.process(q, client: "192.0.2.1", overTCP: false, now: 110, scratch: s) {
            case .reply(_, let rec), .drop(let rec): r = rec
            case .forward(let job): r = job.record
            }
            let name = try XCTUnwrap(r.name)
            XCTAssertEqual(Int(truncatingIfNeeded: r.nameHash), name.hashValue, "\(name)")
            XCTAssertEqual(HashedName(name).hash, r.nameHash)
            table.add(HashedName(name, hash: r.nameHash))
        }
        // Looked up with hashes computed afresh: the keys filed under the query path's hashes must match.
        XCTAssertEqual(table.entry(for: HashedName(try DNSName("x1.denied.test")))?.count, 3)
        XCTAssertEqual(table.entry(for: HashedName(try DNSName("new.allowed.test")))?.count, 1)
    }

    func testScratchRepliesMatchPlainReplies() throws {
        let queries: [(String, [UInt8])] = [
            ("denied", W.query(name: "x1.denied.test")),
            ("denied, OPT (EDE text)", W.query(name: "x1.denied.test", opt: .init())),
            ("denied type, OPT", W.query(name: "only-a.example.com", type: 16, opt: .init())),
            ("cache hit, mixed case", W.query(id: 9, name: "WwW.Allowed.TEST")),
            ("cache hit, OPT with DO", W.query(name: "www.allowed.test", opt: .init(dnssecOK: false))),
            ("miss", W.query(name: "new.allowed.test")),
            ("malformed", W.query(name: "www.allowed.test", trailing: [1])),
        ]
        let plain = try pipeline(), withScratch = try pipeline()
        let scratch = QueryScratch(names: NameInterner(capacity: 4))
        for round in 0..<3 {   // later rounds reuse interned names and the grown buffer
            for (label, q) in queries {
                XCTAssertEqual(run(withScratch, q, scratch), run(plain, q, nil), "\(label), round \(round)")
            }
        }
    }

    func testAScratchPicksUpAReloadedPolicyAtOnce() throws {
        let p = try pipeline()
        let scratch = QueryScratch()
        let q = W.query(name: "late.example.com")
        XCTAssertTrue(run(p, q, scratch).hasPrefix("reply"), "denied before the reload")
        p.swapPolicy(PolicySet(base: Policy(allowList: try AllowList(PlainListLoader.load(text: "late.example.com\n", file: "t2.allow")))), now: 200)
        XCTAssertEqual(run(p, q, scratch), "forward late.example.com.", "the scratch's cached snapshot is from the old generation")
    }

    func testAReturnedReplySurvivesTheNextQuery() throws {
        let p = try pipeline()
        let scratch = QueryScratch()
        guard case .reply(let first, _) = p.process(W.query(id: 1, name: "www.allowed.test"), client: "c", overTCP: false, now: 110, scratch: scratch),
              case .reply(let second, _) = p.process(W.query(id: 2, name: "x.denied.test"), client: "c", overTCP: false, now: 110, scratch: scratch)
        else { return XCTFail("not answered") }
        XCTAssertEqual(Array(first.prefix(2)), [0, 1], "the first reply kept its bytes")
        XCTAssertEqual(first[3] & 0xF, 0, "NOERROR")
        XCTAssertEqual(Array(second.prefix(2)), [0, 2])
        XCTAssertEqual(second[3] & 0xF, 3, "NXDOMAIN")
    }

    func testAHandedBackReplyIsTheNextOnesBuffer() throws {
        let p = try pipeline()
        let scratch = QueryScratch()
        var lent: [UInt8] = []
        lent.reserveCapacity(2048)
        let storage = lent.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
        scratch.reclaim(consume lent)   // as the UDP listener does with each reply it has sent
        guard case .reply(let reply, _) = p.process(W.query(id: 2, name: "www.allowed.test"), client: "c", overTCP: false, now: 110, scratch: scratch)
        else { return XCTFail("not answered") }
        XCTAssertEqual(reply.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }, storage, "the reply was written into the buffer handed back")
        XCTAssertEqual(Array(reply.prefix(2)), [0, 2])
        XCTAssertEqual(reply[3] & 0xF, 0, "NOERROR")
    }

    /// A UDP listener's misses are answered on its own thread, with its scratch: the upstream's answer
    /// is written into the buffer handed back, and reads as it does without a scratch.
    func testAnUpstreamAnswerIsWrittenIntoTheHandedBackBuffer() throws {
        let answer = try UpstreamAnswer(W.response(id: 5, name: "new.allowed.test",
                                                   answers: [.init(owner: [0xC0, 0x0C], type: 1, ttl: 60, rdata: [192, 0, 2, 9])]),
                                        id: 5, name: try DNSName("new.allowed.test"), type: .a)
        func job(_ p: QueryPipeline) throws -> ForwardJob {
            var job: ForwardJob?
            if case .forward(let j) = p.process(W.query(id: 3, name: "New.Allowed.test"), client: "c", overTCP: false, now: 110) { job = j }
            return try XCTUnwrap(job, "a miss")
        }
        let plain = try pipeline(), withScratch = try pipeline()
        let scratch = QueryScratch()
        var lent: [UInt8] = []
        lent.reserveCapacity(2048)
        let storage = lent.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
        scratch.reclaim(consume lent)
        let (reply, record) = withScratch.complete(try job(withScratch), answer: answer, now: 111, scratch: scratch)
        XCTAssertEqual(reply.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }, storage, "the reply was written into the buffer handed back")
        XCTAssertEqual(reply, plain.complete(try job(plain), answer: answer, now: 111).0)
        XCTAssertEqual(Array(reply.prefix(2)), [0, 3])
        XCTAssertEqual(record.action, .forwarded)
    }
}
