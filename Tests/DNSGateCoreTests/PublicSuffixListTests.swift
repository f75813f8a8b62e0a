import Foundation
import XCTest
@testable import DNSGateCore
import DNSGateTestSupport

/// Registered domains ("eTLD+1") from the Public Suffix List algorithm: normal, wildcard and exception rules.
final class PublicSuffixListTests: XCTestCase {
    /// Rules in the list's own format, with the comment and section lines a real file has.
    private let psl = PublicSuffixList(text: """
        // ===BEGIN ICANN DOMAINS===
        com
        net
        uk
        co.uk
        // wildcard and exception, as the real list writes them for .ck
        *.test
        !www.city.test
        // ===BEGIN PRIVATE DOMAINS===
        Pages.Example.NET   trailing text after whitespace is ignored
        """)

    func testRegisteredDomainTable() throws {
        let cases: [(name: String, query: String, registered: String)] = [
            ("normal rule", "a.b.example.com", "example.com"),
            ("name is the registered domain", "example.com", "example.com"),
            ("mixed case", "WWW.Example.COM.", "example.com"),
            ("two-label suffix", "www.example.co.uk", "example.co.uk"),
            ("one-label suffix under a two-label rule", "example.uk", "example.uk"),
            ("public suffix itself", "co.uk", "co.uk"),
            ("unlisted TLD uses the implicit * rule", "a.b.example.org", "example.org"),
            ("wildcard rule", "a.b.city.test", "b.city.test"),
            ("wildcard rule, registered domain itself", "b.city.test", "b.city.test"),
            ("exception rule", "a.www.city.test", "www.city.test"),
            ("exception rule, the name itself", "www.city.test", "www.city.test"),
            ("private rule, case-folded when read", "x.y.pages.example.net", "y.pages.example.net"),
            ("private rule does not cover a look-alike", "a.xpages.example.net", "example.net"),
            ("single label", "com", "com"),
            ("root", ".", "."),
        ]
        for c in cases {
            XCTAssertEqual(psl.registeredDomain(try DNSName(c.query)), try DNSName(c.registered), c.name)
        }
    }

    func testIsPublicSuffix() throws {
        let cases: [(String, Bool)] = [
            ("com", true), ("co.uk", true), ("uk", true), ("example.co.uk", false), ("example.com", false),
            ("city.test", true), ("test", true), ("www.city.test", false), ("pages.example.net", true),
            ("example.org", false), ("org", true), (".", false),
        ]
        for (name, want) in cases {
            XCTAssertEqual(psl.isPublicSuffix(try DNSName(name)), want, name)
        }
    }

    /// "\r\n" is a single Character in Swift; a list saved with CRLF must still be read line by line.
    func testCRLFListIsReadLineByLine() throws {
        let crlf = PublicSuffixList(text: "// c\r\ncom\r\nco.uk\r\n*.test\r\n")
        XCTAssertTrue(crlf.isPublicSuffix(try DNSName("co.uk")))
        XCTAssertTrue(crlf.isPublicSuffix(try DNSName("city.test")))
        XCTAssertEqual(crlf.registeredDomain(try DNSName("www.example.co.uk")), try DNSName("example.co.uk"))
    }

    func testSystemListGivesPrivateSuffixesTheirOwnRegisteredDomain() throws {
        let path = PublicSuffixList.debianPath
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("\(path) not installed") }
        let real = PublicSuffixList(text: try String(contentsOfFile: path, encoding: .utf8))
        XCTAssertEqual(real.registeredDomain(try DNSName("x.y.github.io")), try DNSName("y.github.io"))
        XCTAssertEqual(real.registeredDomain(try DNSName("www.example.co.uk")), try DNSName("example.co.uk"))
        XCTAssertEqual(real.registeredDomain(try DNSName("a.b.example.com")), try DNSName("example.com"))
        XCTAssertTrue(real.isPublicSuffix(try DNSName("github.io")))
        XCTAssertFalse(real.isPublicSuffix(try DNSName("example.com")))
    }

    /// The memo by parent name must give exactly what the list gives, whatever order names come in:
    /// under normal, wildcard and exception rules, the implicit `*` rule, public suffixes themselves,
    /// and with a memo so small that parents keep replacing each other.
    func testMemoByParentAgreesWithTheList() throws {
        let stems = ["com", "example.com", "co.uk", "example.co.uk", "uk", "test", "city.test", "www.city.test",
                     "other.test", "org", "example.org", "pages.example.net", "example.net", "net"]
        var names: [DNSName] = []
        for stem in stems {
            names.append(try DNSName(stem))
            for child in ["www", "a", "a.b", "www.www"] { names.append(try DNSName("\(child).\(stem)")) }
        }
        for capacity in [1, 4, 4096] {
            var memo = RegisteredDomainMemo(capacity: capacity)
            var rng = SeededRandom(seed: UInt64(capacity))
            for _ in 0..<3 {                                   // several passes, in a different order each
                for n in names.shuffled(using: &rng) {
                    XCTAssertEqual(memo.registeredDomain(of: n, in: psl), psl.registeredDomain(n), "\(n), capacity \(capacity)")
                }
            }
        }
        var fresh = RegisteredDomainMemo()
        XCTAssertEqual(fresh.registeredDomain(of: .root, in: psl), .root)
    }
}
