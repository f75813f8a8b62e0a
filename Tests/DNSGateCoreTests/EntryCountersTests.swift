import XCTest
@testable import DNSGateCore

/// An allow entry's hits, last use and load time survive a reload that keeps it (QA pass 10, F2:
/// they started afresh, so after a nightly SIGHUP every entry read "never used").
final class EntryCountersTests: XCTestCase {
    private typealias W = WireFixtures

    private func policy(_ text: String) throws -> Policy {
        Policy(allowList: try AllowList(PlainListLoader.load(text: text, file: "t.allow")))
    }

    func testAReloadKeepsTheCountersOfTheEntriesItKeeps() throws {
        let p = QueryPipeline(policy: try policy("kept.example.com\ngone.example.com\n"), cache: AnswerCache())
        for (name, t) in [("kept.example.com", 100.0), ("kept.example.com", 120), ("gone.example.com", 130)] {
            _ = p.process(W.query(name: name), client: "192.0.2.1", overTCP: false, now: t)
        }
        // Moved to another line, with a new entry before it and the other one gone.
        p.swapPolicy(PolicySet(base: try policy("new.example.com\n*.other.example.com\nkept.example.com\n")), now: 500)
        let s = p.snapshot
        XCTAssertEqual(s.policy.allowList.entries.map(\.pattern), ["new.example.com.", "*.other.example.com.", "kept.example.com."])
        XCTAssertEqual(s.entryHits[0][2], 2)
        XCTAssertEqual(s.entryLastUse[0][2], 120)
        XCTAssertEqual(s.entryLoadedAt[0][2], 0, "loaded with the server's first policy")
        XCTAssertEqual([s.entryHits[0][0], s.entryLastUse[0][0], s.entryLoadedAt[0][0]], [0, 0, 500], "new: counted from the reload")

        // The next reload keeps the new entry's load time too; a pattern of another profile is another entry.
        let profile = Profile(name: "release", clients: [], listeners: ["127.0.0.1:53"], policy: try policy("kept.example.com\n"))
        p.swapPolicy(PolicySet(base: try policy("new.example.com\nkept.example.com\n"), profiles: [profile]), now: 900)
        XCTAssertEqual(p.snapshot.entryLoadedAt[0], [500, 0])
        XCTAssertEqual(p.snapshot.entryHits[0][1], 2)
        XCTAssertEqual([p.snapshot.entryHits[1][0], p.snapshot.entryLoadedAt[1][0]], [0, 900])
    }
}
