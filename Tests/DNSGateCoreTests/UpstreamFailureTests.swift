import XCTest
@testable import DNSGateCore

/// What a client gets when its exchange with the upstreams fails (`QueryPipeline.upstreamFailed`).
final class UpstreamFailureTests: XCTestCase {
    private typealias W = WireFixtures

    /// An exchange that fails after another filled the cache serves that fresh answer as cached, not
    /// as stale with TTL 30 and an EDE (QA pass 6, seen once under concurrent UDP and TCP misses).
    func testAFailedExchangeServesAnAnswerAnotherOneCachedMeanwhileAsFresh() throws {
        let p = QueryPipeline(policy: Policy(allowList: try AllowList(PlainListLoader.load(text: "www.example.com # registry\n", file: "t.allow"))),
                              cache: AnswerCache())
        func job() throws -> ForwardJob {
            guard case .forward(let j) = p.process(W.query(opt: .init()), client: "192.0.2.7", overTCP: false, now: 100) else {
                XCTFail("allowed and not cached: forwarded"); throw XCTSkip()
            }
            return j
        }
        let failing = try job(), other = try job()
        let answer = try UpstreamAnswer(W.response(id: 7, answers: [.init(owner: W.questionPointer, type: 1, ttl: 300, rdata: [192, 0, 2, 1])]),
                                        id: 7, name: try DNSName("www.example.com"), type: .a)
        _ = p.complete(other, answer: answer, now: 100)
        let (reply, rec) = p.upstreamFailed(failing, now: 101, detail: "timeout")
        XCTAssertEqual(rec.action, .cached)
        XCTAssertEqual(ParsedReply(bytes: reply).records.filter { $0.type != 41 }.map(\.ttl), [299])
        XCTAssertNil(ParsedReply(bytes: reply).ednsOptions.first { $0.code == 15 || $0.code == 3 }, "no EDE: nothing failed for this client")
    }
}
