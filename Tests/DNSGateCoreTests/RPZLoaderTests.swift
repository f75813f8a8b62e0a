import Foundation
import XCTest
@testable import DNSGateCore

/// The RPZ subset dnsgate reads through ldns: QNAME triggers with passthru, NXDOMAIN, NODATA, drop and
/// local data; everything else refused with file:line.
final class RPZLoaderTests: XCTestCase {
    private let soa = """
        $TTL 300
        $ORIGIN rpz.example.org.
        @   SOA ns.example.org. hostmaster.example.org. 1 3600 600 86400 60
        @   NS  ns.example.org.
        ; triggers start on line 6

        """

    private func load(_ body: String, file: String = "policy.rpz") throws -> [PolicyEntry] {
        try RPZLoader.load(text: soa + body, file: file)
    }

    private func entry(_ entries: [PolicyEntry], _ name: String, wildcard: Bool = false) throws -> PolicyEntry {
        let n = try DNSName(name)
        return try XCTUnwrap(entries.first { $0.name == n && $0.isWildcard == wildcard }, "no entry for \(name)")
    }

    func testActionsTable() throws {
        let entries = try load("""
            allowed.example.com      CNAME rpz-passthru.
            blocked.example.com      CNAME .
            nodata.example.com       CNAME *.
            dropped.example.com      CNAME rpz-drop.
            local.example.com        A     192.0.2.10
            local.example.com        AAAA  2001:db8::10
            alias.example.com        CNAME www.example.net.
            *.example.net            CNAME rpz-passthru.
            *.bad.example.net        CNAME .
            """)
        XCTAssertEqual(entries.count, 8)
        let cases: [(String, Bool, EntryAction)] = [
            ("allowed.example.com", false, .allow),
            ("blocked.example.com", false, .deny(.nxdomain)),
            ("nodata.example.com", false, .deny(.nodata)),
            ("dropped.example.com", false, .deny(.drop)),
            ("example.net", true, .allow),
            ("bad.example.net", true, .deny(.nxdomain)),
        ]
        for (name, wildcard, action) in cases {
            XCTAssertEqual(try entry(entries, name, wildcard: wildcard).action, action, name)
        }
        XCTAssertTrue(entries.allSatisfy { $0.types == nil && $0.reason == "rpz" })
    }

    func testLocalDataBecomesRecordsInOrder() throws {
        let entries = try load("""
            local.example.com   A     192.0.2.10
            local.example.com   AAAA  2001:db8::10
            """)
        let e = try entry(entries, "local.example.com")
        XCTAssertEqual(e.action, .localData([
            LocalRecord(type: .a, rdata: [192, 0, 2, 10]),
            LocalRecord(type: .aaaa, rdata: [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [0x10]),
        ]))
        XCTAssertEqual(e.source, SourceLocation(file: "policy.rpz", line: 6), "the first record's line")
    }

    func testCNAMEToAnotherNameIsLocalData() throws {
        let e = try entry(try load("alias.example.com CNAME www.example.net.\n"), "alias.example.com")
        XCTAssertEqual(e.action, .localData([LocalRecord(type: .cname, rdata: WireFixtures.name("www.example.net"))]))
    }

    func testRelativeTriggerNamesAreTakenBelowTheOrigin() throws {
        let entries = try load("""
            WWW.Example.COM     CNAME .
            www.example.org.rpz.example.org.  CNAME rpz-passthru.
            """)
        XCTAssertEqual(try entry(entries, "www.example.com").action, .deny(.nxdomain))
        XCTAssertEqual(try entry(entries, "www.example.org").action, .allow)
    }

    func testCRLFZoneLoadsWithTheSameLines() throws {
        let crlf = (soa + "blocked.example.com CNAME .\nallowed.example.com CNAME rpz-passthru.\n")
            .replacingOccurrences(of: "\n", with: "\r\n")
        let entries = try RPZLoader.load(text: crlf, file: "crlf.rpz")
        XCTAssertEqual(entries.map(\.source.line), [6, 7])
        XCTAssertEqual(try entry(entries, "blocked.example.com").action, .deny(.nxdomain))
        XCTAssertEqual(try entry(entries, "allowed.example.com").action, .allow)
    }

    func testWildcardTriggerDoesNotCoverTheApex() throws {
        let entries = try load("*.example.com CNAME .\n")
        XCTAssertEqual(entries.count, 1)
        XCTAssertTrue(entries[0].isWildcard)
        XCTAssertEqual(entries[0].name, try DNSName("example.com"))
        let list = try AllowList(entries)
        XCTAssertNotNil(list.match(try DNSName("a.example.com")))
        XCTAssertNil(list.match(try DNSName("example.com")))
    }

    func testMissingSOAIsAnError() {
        let cases: [(name: String, text: String)] = [
            ("records without SOA", "$ORIGIN rpz.example.org.\nwww.example.com CNAME .\n"),
            ("only directives", "$TTL 60\n$ORIGIN rpz.example.org.\n"),
            ("empty", ""),
        ]
        for c in cases {
            XCTAssertThrowsError(try RPZLoader.load(text: c.text, file: "z.rpz"), c.name) { error in
                let e = error as? PolicyLoadError
                XCTAssertEqual(e?.location.file, "z.rpz", c.name)
                XCTAssertTrue(e.map { $0.message.contains("SOA") } ?? false, "\(c.name): \(error)")
            }
        }
    }

    func testUnsupportedTriggersAndActionsAreRefusedWithTheirLine() {
        let cases: [(name: String, body: String, line: Int, mentions: String)] = [
            ("rpz-ip trigger", "32.10.2.0.192.rpz-ip CNAME .\n", 6, "rpz-ip"),
            ("rpz-nsdname trigger", "ok.example.com CNAME .\nns.example.com.rpz-nsdname CNAME .\n", 7, "rpz-nsdname"),
            ("rpz-client-ip trigger", "32.1.2.0.192.rpz-client-ip CNAME rpz-passthru.\n", 6, "rpz-client-ip"),
            ("owner outside the zone", "www.example.com. CNAME .\n", 6, "outside the zone"),
            ("mid-name wildcard trigger", "a.*.example.com CNAME .\n", 6, "'*'"),
            ("wildcard rewrite", "x.example.com CNAME *.example.net.\n", 6, "wildcard rewrite"),
            ("action mixed with data", "x.example.com CNAME .\nx.example.com A 192.0.2.1\n", 6, "cannot be mixed"),
            ("tcp-only", "x.example.com CNAME rpz-tcp-only.\n", 6, "rpz-tcp-only"),
            ("include", "$INCLUDE other.zone\n", 6, "$INCLUDE"),
            ("raw UTF-8 owner: never matches the xn-- form clients send", "ok.example.com CNAME .\nb\u{FC}cher.example.com CNAME .\n", 7, "xn--"),
            ("non-breaking space after the owner", "x.example.com\u{A0} CNAME .\n", 6, "non-breaking space"),
            ("non-breaking space inside a wildcard owner", "*.x\u{A0}y.example.com CNAME rpz-passthru.\n", 6, "non-breaking space"),
            ("non-breaking space after the action: would read as local data", "nb.example.com CNAME rpz-passthru.\u{A0}\n", 6, "non-breaking space"),
            ("control character in an owner", "ok.example.com CNAME .\nctl\u{1}.example.com CNAME rpz-passthru.\n", 7, "control character"),
            ("DEL in an owner", "del\u{7F}.example.com CNAME .\n", 6, "control character"),
        ]
        for c in cases {
            XCTAssertThrowsError(try load(c.body, file: "p.rpz"), c.name) { error in
                guard let e = error as? PolicyLoadError else { return XCTFail("\(c.name): \(error)") }
                XCTAssertEqual(e.location, SourceLocation(file: "p.rpz", line: c.line), "\(c.name): \(e)")
                XCTAssertTrue(e.message.contains(c.mentions), "\(c.name): \(e.message)")
            }
        }
    }

    func testWildcardTriggerUnderAPublicSuffixIsRefused() {
        let psl = PublicSuffixList(text: "com\nnet\n")
        XCTAssertThrowsError(try RPZLoader.load(text: soa + "ok.example.com CNAME .\n*.com CNAME rpz-passthru.\n",
                                                file: "p.rpz", suffixes: psl)) { error in
            XCTAssertEqual((error as? PolicyLoadError)?.location.line, 7)
            XCTAssertTrue((error as? PolicyLoadError)?.message.contains("public suffix") ?? false)
        }
    }

    func testSyntaxErrorReportsTheLineItIsOn() {
        let cases: [(name: String, body: String, line: Int)] = [
            ("bad IPv4 address", "ok.example.com CNAME .\n\n; comment\nbad.example.com A 192.0.2.999\nlater.example.com CNAME .\n", 9),
            ("unknown type", "ok.example.com CNAME .\nbad.example.com BOGUS 1\n", 7),
            ("bad IPv6 address", "bad.example.com AAAA 2001:db8::zz\n", 6),
        ]
        for c in cases {
            XCTAssertThrowsError(try load(c.body, file: "s.rpz"), c.name) { error in
                guard let e = error as? PolicyLoadError else { return XCTFail("\(c.name): \(error)") }
                XCTAssertEqual(e.location, SourceLocation(file: "s.rpz", line: c.line), "\(c.name): \(e)")
                XCTAssertTrue(e.message.hasPrefix("zone syntax"), "\(c.name): \(e.message)")
            }
        }
    }

    func testPolicyFileLoaderDetectsTheFormat() {
        XCTAssertEqual(PolicyFileLoader.detectFormat(path: "x.rpz", text: "example.com"), .rpz)
        XCTAssertEqual(PolicyFileLoader.detectFormat(path: "x.zone", text: ""), .rpz)
        XCTAssertEqual(PolicyFileLoader.detectFormat(path: "x.txt", text: "# c\n\n$ORIGIN rpz.example.org.\n"), .rpz)
        XCTAssertEqual(PolicyFileLoader.detectFormat(path: "x.txt", text: "; c\n@ IN SOA ns hm 1 2 3 4 5\n"), .rpz)
        XCTAssertEqual(PolicyFileLoader.detectFormat(path: "x.txt", text: "# c\nexample.com A,AAAA # r\n"), .plain)
        XCTAssertEqual(PolicyFileLoader.detectFormat(path: "x.allow", text: ""), .plain)
        XCTAssertEqual(PolicyFileLoader.detectFormat(path: "x.txt", text: "# c\r\n$ORIGIN rpz.example.org.\r\n"), .rpz, "CRLF")
        XCTAssertEqual(PolicyFileLoader.detectFormat(path: "x.txt", text: "; c\r\n\r\nexample.com\r\nx SOA\r\n"), .plain, "CRLF")
    }
}
