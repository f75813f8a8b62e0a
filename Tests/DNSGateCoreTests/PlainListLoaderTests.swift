import XCTest
@testable import DNSGateCore

/// The plain allow-list format: one entry per line, optional types, `#` reason, errors with file:line.
final class PlainListLoaderTests: XCTestCase {
    /// A few rules in the Public Suffix List format, enough for the wildcard checks.
    private let suffixes = PublicSuffixList(text: """
        // test list
        com
        org
        co.uk
        *.test
        """)

    func testGoodFileGivesEntriesWithReasonsTypesAndLines() throws {
        let text = """
            # build dependencies

            example.com                    # source tarballs
            *.example.org   A,AAAA,TXT     # mirrors, TXT for their ACME check
            \tWWW.Example.NET.\t\t# tabs and case
            mirror.example.net  https
            a\\#b.example.com               # escaped hash is part of the name
            """
        let entries = try PlainListLoader.load(text: text, file: "build.allow", suffixes: suffixes)
        XCTAssertEqual(entries.count, 5)

        XCTAssertEqual(entries[0].name, try DNSName("example.com"))
        XCTAssertFalse(entries[0].isWildcard)
        XCTAssertNil(entries[0].types)
        XCTAssertEqual(entries[0].reason, "source tarballs")
        XCTAssertEqual(entries[0].source, SourceLocation(file: "build.allow", line: 3))
        XCTAssertEqual(entries[0].action, .allow)

        XCTAssertEqual(entries[1].name, try DNSName("example.org"))
        XCTAssertTrue(entries[1].isWildcard)
        XCTAssertEqual(entries[1].types, [.a, .aaaa, .txt])
        XCTAssertEqual(entries[1].reason, "mirrors, TXT for their ACME check")
        XCTAssertEqual(entries[1].source.line, 4)
        XCTAssertEqual(entries[1].pattern, "*.example.org.")

        XCTAssertEqual(entries[2].name, try DNSName("www.example.net"))
        XCTAssertEqual(entries[2].reason, "tabs and case")
        XCTAssertEqual(entries[2].source.line, 5)

        XCTAssertEqual(entries[3].types, [.https])
        XCTAssertNil(entries[3].reason)

        XCTAssertEqual(entries[4].name.labels.first.map { Array($0) }, Array("a#b".utf8))
        XCTAssertEqual(entries[4].reason, "escaped hash is part of the name")
    }

    func testTypeListAcceptsMnemonicsInAnyCaseAndRFC3597Form() throws {
        let e = try PlainListLoader.load(text: "example.com a,Aaaa,TYPE65,type99,caa", file: "f")
        XCTAssertEqual(e.first?.types, [.a, .aaaa, .https, RecordType(99), .caa])
    }

    /// Every type ldns knows is a type an entry may name, and is named so in texts (QA pass 10, F18:
    /// NSEC3, CDS, OPENPGPKEY… were "unknown query type"); a name nobody registered is still refused.
    func testTypeListAcceptsEveryRegisteredMnemonic() throws {
        let e = try PlainListLoader.load(text: "example.com nsec3,NSEC3PARAM,cds,CDNSKEY,OPENPGPKEY,smimea,zonemd,eui48", file: "f")
        XCTAssertEqual(e.first?.types, Set([50, 51, 59, 60, 61, 53, 63, 108].map { RecordType($0) }))
        XCTAssertEqual(RecordType(51).description, "NSEC3PARAM")
        XCTAssertEqual(RecordType(65280).description, "TYPE65280")
        XCTAssertThrowsError(try PlainListLoader.load(text: "example.com A,NOSUCHTYPE", file: "f")) { error in
            XCTAssertTrue("\(error)".contains("NOSUCHTYPE"), "\(error)")
        }
        XCTAssertNil(RecordType(mnemonic: "A-AAA"))
        XCTAssertNil(RecordType(mnemonic: ""))
    }

    func testCRLFLineEndingsAreAccepted() throws {
        let e = try PlainListLoader.load(text: "example.com # one\r\nexample.org A\r\n", file: "f")
        XCTAssertEqual(e.map(\.name), [try DNSName("example.com"), try DNSName("example.org")])
        XCTAssertEqual(e.first?.reason, "one")
        XCTAssertEqual(e.last?.types, [.a])
        XCTAssertEqual(e.last?.source.line, 2)
        XCTAssertThrowsError(try PlainListLoader.load(text: "example.com\r\n\r\nexample.org BOGUS\r\n", file: "f")) {
            XCTAssertEqual(($0 as? PolicyLoadError)?.location.line, 3)
        }
    }

    /// Every refused line, with the line number the error must name.
    func testRefusedLinesReportFileAndLine() {
        let cases: [(name: String, text: String, line: Int, mentions: String)] = [
            ("unknown type", "example.com\nexample.org A,BOGUS # x", 2, "BOGUS"),
            ("empty type in the list", "\n\nexample.org A,,AAAA", 3, "unknown query type"),
            ("OPT is not a query type", "example.org OPT", 1, "OPT"),
            ("a type twice: a typo for A,AAAA", "example.org A,A", 1, "listed twice"),
            ("mid-name wildcard", "# c\nwww.*.example.com", 2, "'*'"),
            ("star glued to a label", "*www.example.com", 1, "'*'"),
            ("escaped star as a label", #"\*.example.com"#, 1, "'*'"),
            ("double wildcard", "*.*.example.com", 1, "'*'"),
            ("bare star", "*", 1, "'*'"),
            ("wildcard of the root", "example.com\n*.", 2, "every name"),
            ("the root itself", ".", 1, "every name"),
            ("wildcard under a public suffix", "*.com", 1, "public suffix"),
            ("wildcard under a two-label public suffix", "*.co.uk", 1, "public suffix"),
            ("wildcard under a wildcard public suffix", "*.foo.test", 1, "public suffix"),
            ("three fields", "example.com A extra", 1, "3 fields"),
            ("bad escape", #"example\999.com"#, 1, "bad name"),
            ("64-octet label", String(repeating: "a", count: 64) + ".example.com", 1, "bad name"),
            ("raw UTF-8: never matches the xn-- form clients send", "b\u{FC}cher.example.com", 1, "xn--"),
            ("non-breaking space before the types", "example.org\u{A0}A", 1, "non-breaking space"),
            ("control character in a name", "exa\u{7}mple.org", 1, "control character"),
            ("DEL, shown escaped in the message", "del\u{7F}.example.org", 1, "'del\\127.example.org' contains"),
        ]
        for c in cases {
            XCTAssertThrowsError(try PlainListLoader.load(text: c.text, file: "deps.allow", suffixes: suffixes), c.name) { error in
                guard let e = error as? PolicyLoadError else { return XCTFail("\(c.name): \(error)") }
                XCTAssertEqual(e.location, SourceLocation(file: "deps.allow", line: c.line), c.name)
                XCTAssertTrue(e.message.contains(c.mentions), "\(c.name): \(e.message)")
            }
        }
    }

    func testEscapedSpaceAndPunycodeAreNames() throws {
        let entries = try PlainListLoader.load(text: "xn--bcher-kva.example.com\nmy\\032host.example.com\n", file: "t.allow")
        XCTAssertEqual(entries.map(\.name.description), ["xn--bcher-kva.example.com.", "my\\032host.example.com."])
    }

    func testWildcardUnderARegisteredDomainIsAcceptedWithTheSuffixList() throws {
        let e = try PlainListLoader.load(text: "*.example.com\n*.example.co.uk\n*.a.foo.test", file: "f", suffixes: suffixes)
        XCTAssertEqual(e.count, 3)
        XCTAssertTrue(e.allSatisfy(\.isWildcard))
    }

    /// Without a list (the publicsuffix package missing) its implicit rule still holds: a single
    /// label is a public suffix, so `*.com` is refused; a two-label suffix cannot be known (QA pass
    /// 11, F1: every wildcard loaded unchecked).
    func testWithoutAListOnlyWildcardsUnderASingleLabelAreRefused() throws {
        XCTAssertThrowsError(try PlainListLoader.load(text: "www.example.com\n*.com", file: "f", suffixes: nil)) {
            XCTAssertTrue("\($0)".hasPrefix("f:2: '*.com' is a wildcard directly under the public suffix com."), "\($0)")
        }
        XCTAssertEqual(try PlainListLoader.load(text: "*.co.uk\n*.example.com", file: "f", suffixes: nil).count, 2)
    }
}
