import XCTest
@testable import DNSGateCore

/// Matching rules of `AllowList` (DESIGN: Policy semantics): exact names, `*.` wildcards strictly below
/// their suffix, the most specific entry wins, duplicates are load errors.
final class AllowListTests: XCTestCase {
    private func entry(_ pattern: String, line: Int, types: Set<RecordType>? = nil) throws -> PolicyEntry {
        let wildcard = pattern.hasPrefix("*.")
        return PolicyEntry(name: try DNSName(wildcard ? String(pattern.dropFirst(2)) : pattern), isWildcard: wildcard,
                           types: types, reason: "test", source: SourceLocation(file: "allow.txt", line: line))
    }

    private func list(_ patterns: [String]) throws -> AllowList {
        try AllowList(patterns.enumerated().map { try entry($0.element, line: $0.offset + 1) })
    }

    /// Which line (1-based, in the order given to `list`) matches each query, or nil for no match.
    func testMatchTable() throws {
        let l = try list(["example.com", "*.example.org", "example.net", "*.example.net", "*.a.example.net", "b.a.example.net"])
        let cases: [(name: String, query: String, line: Int?)] = [
            ("exact entry matches its name", "example.com", 1),
            ("exact entry matches regardless of case", "EXAMPLE.Com.", 1),
            ("exact entry does not cover children", "www.example.com", nil),
            ("exact entry does not cover look-alikes", "badexample.com", nil),
            ("escaped dot is one label, not a child", #"www\.example.com"#, nil),
            ("wildcard covers a child", "www.example.org", 2),
            ("wildcard covers a deep descendant", "a.b.c.example.org", 2),
            ("wildcard does not match its apex", "example.org", nil),
            ("wildcard does not match a sibling suffix", "example.org.example.com", nil),
            ("apex and wildcard listed: apex", "example.net", 3),
            ("apex and wildcard listed: child", "www.example.net", 4),
            ("longer wildcard beats shorter", "x.a.example.net", 5),
            ("longer wildcard covers deep names", "y.x.a.example.net", 5),
            ("shorter wildcard covers the longer one's apex", "a.example.net", 4),
            ("exact entry beats a wildcard", "b.a.example.net", 6),
            ("below an exact entry the wildcard applies", "c.b.a.example.net", 5),
            ("unlisted name", "example.test", nil),
            ("root", ".", nil),
        ]
        for c in cases {
            XCTAssertEqual(l.match(try DNSName(c.query))?.entry.source.line, c.line, c.name)
        }
    }

    func testMatchReturnsTheIndexOfTheEntry() throws {
        let l = try list(["example.com", "*.example.org"])
        let hit = try XCTUnwrap(l.match(DNSName("www.example.org")))
        XCTAssertEqual(hit.index, 1)
        XCTAssertEqual(l.entries[hit.index], hit.entry)
        XCTAssertEqual(l.count, 2)
    }

    func testEmptyListMatchesNothing() throws {
        XCTAssertNil(AllowList().match(try DNSName("example.com")))
        XCTAssertNil(AllowList().match(.root))
    }

    func testDuplicateEntryErrorNamesBothLocations() throws {
        var l = AllowList()
        try l.add(entry("example.com", line: 3))
        try l.add(entry("*.example.com", line: 4))   // not a duplicate: a different pattern
        XCTAssertThrowsError(try l.add(entry("EXAMPLE.com.", line: 9))) { error in
            let e = error as? PolicyLoadError
            XCTAssertEqual(e?.location, SourceLocation(file: "allow.txt", line: 9))
            XCTAssertTrue(e?.message.contains("allow.txt:3") ?? false, e?.message ?? "")
            XCTAssertTrue(e?.description.hasPrefix("allow.txt:9:") ?? false, e?.description ?? "")
        }
        XCTAssertThrowsError(try l.add(entry("*.example.com", line: 12))) { error in
            XCTAssertTrue((error as? PolicyLoadError)?.message.contains("allow.txt:4") ?? false)
        }
        XCTAssertEqual(l.count, 2, "a refused duplicate must not be added")
    }
}
