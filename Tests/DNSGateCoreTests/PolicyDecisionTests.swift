import XCTest
@testable import DNSGateCore

/// `PolicyDecision.decide`: name first (most specific entry), then type; fail closed; audit forwards but records.
final class PolicyDecisionTests: XCTestCase {
    private let allowText = """
        example.com                  # apex only
        *.example.org                # mirrors
        api.example.org   A,TXT      # needs TXT
        example.net       AAAA       # v6 only
        """

    private let rpzText = """
        $ORIGIN rpz.example.org.
        @ SOA ns.example.org. hostmaster.example.org. 1 3600 600 86400 60
        bad.example.org          CNAME .
        sink.example.org         A 192.0.2.99
        nodata.example.org       CNAME *.
        """

    private func policy(_ mode: PolicyMode = .enforce, sinkhole: SinkholeMode = .nxdomain) throws -> Policy {
        let plain = try PlainListLoader.load(text: allowText, file: "build.allow")
        let rpz = try RPZLoader.load(text: rpzText, file: "block.rpz")
        return Policy(allowList: try AllowList(plain + rpz), mode: mode, sinkhole: sinkhole)
    }

    private enum Want: Equatable { case forward, sinkhole(SinkholeMode), local }

    private func action(_ v: PolicyVerdict) -> Want {
        switch v.action {
        case .forward: return .forward
        case .sinkhole(let m): return .sinkhole(m)
        case .local: return .local
        }
    }

    /// With the `refused` sinkhole, so that name denials (REFUSED) and type denials (always NODATA) differ.
    func testEnforceTable() throws {
        let p = try policy(sinkhole: .refused)
        let cases: [(name: String, qname: String, type: RecordType, want: Want, denial: String?)] = [
            ("listed apex, default type", "example.com", .a, .forward, nil),
            ("listed apex, HTTPS is a default", "EXAMPLE.COM.", .https, .forward, nil),
            ("not listed", "www.example.com", .a, .sinkhole(.refused), "not_listed"),
            ("unrelated name", "example.test", .aaaa, .sinkhole(.refused), "not_listed"),
            ("TXT under an allowed name", "example.com", .txt, .sinkhole(.nodata), "type_not_allowed"),
            ("NULL under an allowed name", "example.com", .null, .sinkhole(.nodata), "type_not_allowed"),
            ("ANY under an allowed name", "example.com", .any, .sinkhole(.nodata), "type_not_allowed"),
            ("AXFR under an allowed name", "example.com", .axfr, .sinkhole(.nodata), "type_not_allowed"),
            ("TXT under an allowed wildcard", "x.example.org", .txt, .sinkhole(.nodata), "type_not_allowed"),
            ("wildcard, default type", "x.example.org", .aaaa, .forward, nil),
            ("wildcard apex is not allowed", "example.org", .a, .sinkhole(.refused), "not_listed"),
            ("per-entry TXT allowed", "api.example.org", .txt, .forward, nil),
            ("per-entry list replaces the defaults", "api.example.org", .aaaa, .sinkhole(.nodata), "type_not_allowed"),
            ("per-entry AAAA only: A denied", "example.net", .a, .sinkhole(.nodata), "type_not_allowed"),
            ("per-entry AAAA only: AAAA allowed", "example.net", .aaaa, .forward, nil),
            ("RPZ NXDOMAIN beats the wildcard allow", "bad.example.org", .a, .sinkhole(.nxdomain), "rpz"),
            ("RPZ NODATA", "nodata.example.org", .https, .sinkhole(.nodata), "rpz"),
            ("RPZ local data", "sink.example.org", .a, .local, nil),
            ("escaped dot is not a subdomain", #"x\.example.org"#, .a, .sinkhole(.refused), "not_listed"),
        ]
        for c in cases {
            let v = PolicyDecision.decide(p, name: try DNSName(c.qname), type: c.type)
            XCTAssertEqual(action(v), c.want, c.name)
            XCTAssertEqual(v.denial?.tag, c.denial, c.name)
            XCTAssertFalse(v.audited, c.name)
        }
    }

    /// A denied name with allowed names below it exists: NODATA rather than NXDOMAIN, which says no
    /// name below it exists either (RFC 8020; QA pass 10, F5). Other sinkhole modes stay as set.
    func testADeniedNameAboveAllowedOnesIsNODATA() throws {
        let p = try policy()
        let cases: [(qname: String, want: Want)] = [
            ("example.org", .sinkhole(.nodata)),         // *.example.org allows names below it
            ("org", .sinkhole(.nodata)),
            ("", .sinkhole(.nodata)),                     // the root
            ("www.example.com", .sinkhole(.nxdomain)),   // below an exact entry: nothing listed there
            ("other.example.org.test", .sinkhole(.nxdomain)),
            ("rpz.example.org", .forward),               // covered by *.example.org
        ]
        for c in cases {
            let v = PolicyDecision.decide(p, name: c.qname.isEmpty ? .root : try DNSName(c.qname), type: .a)
            XCTAssertEqual(action(v), c.want, c.qname)
            if case .sinkhole = c.want { XCTAssertEqual(v.denial?.tag, "not_listed", c.qname) }
        }
        XCTAssertEqual(action(PolicyDecision.decide(try policy(sinkhole: .refused), name: try DNSName("example.org"), type: .a)),
                       .sinkhole(.refused))
        // A pattern listed after a name above another entry was marked is no duplicate, and vice versa.
        let list = try AllowList(PlainListLoader.load(text: "www.qa.test\nqa.test\n*.qa.test\n", file: "t.allow"))
        XCTAssertEqual(list.match(try DNSName("qa.test"))?.entry.pattern, "qa.test.")
        XCTAssertNil(list.entry(for: try DNSName("test"), wildcard: false))
    }

    func testAllowedVerdictNamesTheEntryAndItsIndex() throws {
        let p = try policy()
        let v = PolicyDecision.decide(p, name: try DNSName("mirror.example.org"), type: .a)
        XCTAssertEqual(v.entry?.source, SourceLocation(file: "build.allow", line: 2))
        XCTAssertEqual(v.entryIndex, 1)
        XCTAssertTrue(v.isForward)
        XCTAssertNil(v.denial)
    }

    func testTypeDenialNamesTheTypeAndTheEntry() throws {
        let v = PolicyDecision.decide(try policy(), name: try DNSName("example.com"), type: .txt)
        XCTAssertEqual(v.denial, .typeNotAllowed(.txt, SourceLocation(file: "build.allow", line: 1)))
        XCTAssertEqual(v.denial?.description, "type TXT not allowed by build.allow:1")
        XCTAssertEqual(v.entryIndex, 0)
    }

    func testPolicyDefaultTypesApplyToEntriesWithoutTypes() throws {
        var p = try policy()
        p.defaultTypes = [.a]
        XCTAssertEqual(action(PolicyDecision.decide(p, name: try DNSName("example.com"), type: .aaaa)), .sinkhole(.nodata))
        XCTAssertEqual(action(PolicyDecision.decide(p, name: try DNSName("example.com"), type: .a)), .forward)
    }

    func testAuditModeForwardsButRecordsTheDenial() throws {
        let p = try policy(.audit)
        let cases: [(String, RecordType, String)] = [
            ("www.example.com", .a, "not_listed"),
            ("example.net", .a, "type_not_allowed"),      // listed for AAAA only; A is a default type
        ]
        for (name, type, tag) in cases {
            let v = PolicyDecision.decide(p, name: try DNSName(name), type: type)
            XCTAssertTrue(v.isForward, name)
            XCTAssertTrue(v.audited, name)
            XCTAssertEqual(v.denial?.tag, tag, name)
        }
        let allowed = PolicyDecision.decide(p, name: try DNSName("example.com"), type: .a)
        XCTAssertTrue(allowed.isForward)
        XCTAssertFalse(allowed.audited)
    }

    /// Audit mode learns names, not carriers: an unlisted name asked for TXT is still denied.
    func testAuditModeStillDeniesNonDefaultTypesForUnlistedNames() throws {
        let p = try policy(.audit)
        let v = PolicyDecision.decide(p, name: try DNSName("tunnel.example.test"), type: .txt)
        XCTAssertEqual(action(v), .sinkhole(.nodata), "its A and AAAA are forwarded: NODATA, not NXDOMAIN (RFC 8020)")
        XCTAssertFalse(v.audited)
        XCTAssertEqual(v.denial?.tag, "type_not_allowed")
        XCTAssertTrue(PolicyDecision.decide(p, name: try DNSName("tunnel.example.test"), type: .aaaa).audited)
    }

    /// The same for listed names, and names under an allowed wildcard above all, where a tunnel runs:
    /// a type outside the defaults that the entry does not list is denied in audit mode too.
    func testAuditModeStillDeniesNonDefaultTypesForListedNames() throws {
        let p = try policy(.audit)
        for (name, type) in [("example.com", RecordType.txt), ("q1.example.org", .txt), ("q1.example.org", .null), ("api.example.org", .mx)] {
            let v = PolicyDecision.decide(p, name: try DNSName(name), type: type)
            XCTAssertEqual(action(v), .sinkhole(.nodata), "\(name) \(type.mnemonic)")
            XCTAssertFalse(v.audited)
            XCTAssertEqual(v.denial?.tag, "type_not_allowed")
        }
        XCTAssertEqual(action(PolicyDecision.decide(p, name: try DNSName("api.example.org"), type: .txt)), .forward, "listed for TXT")
    }

    func testRPZDenyIsEnforcedEvenInAuditMode() throws {
        let v = PolicyDecision.decide(try policy(.audit), name: try DNSName("bad.example.org"), type: .a)
        XCTAssertEqual(action(v), .sinkhole(.nxdomain))
        XCTAssertFalse(v.audited)
        XCTAssertEqual(v.denial, .rpzAction(.nxdomain, SourceLocation(file: "block.rpz", line: 3)))
    }

    func testEmptyPolicyDeniesEverything() throws {
        let v = PolicyDecision.decide(Policy(), name: try DNSName("example.com"), type: .a)
        XCTAssertEqual(action(v), .sinkhole(.nxdomain))
        XCTAssertEqual(v.denial, .notListed)
        XCTAssertNil(v.entry)
    }
}
