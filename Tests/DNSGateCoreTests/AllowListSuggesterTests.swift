import XCTest
@testable import DNSGateCore

/// What `dnsgate suggest` proposes must do what it says once applied: every line loads, and each
/// name audit mode saw is then allowed for the types it was seen with.
final class AllowListSuggesterTests: XCTestCase {
    private let defaults = RecordType.buildDefaults

    private func seen(_ name: String, _ types: [RecordType], count: Int = 1) throws -> SuggestionInput {
        var s = SuggestionInput(name: try DNSName(name))
        for i in 0..<count { s.record(client: "192.0.2.7", type: types[i % types.count], at: 1_800_000_000 + Double(i)) }
        for t in types { s.record(client: "192.0.2.7", type: t, at: 1_800_000_100) }
        return s
    }

    private func suggest(_ inputs: [SuggestionInput], existing: AllowList?) -> [SuggestedLine] {
        AllowListSuggester.suggest(inputs, existing: existing, defaultTypes: defaults, suffixes: nil)
    }

    /// Applies the suggestion: `.add` lines are appended, `.change` lines replace their entry.
    private func apply(_ lines: [SuggestedLine], to file: String) throws -> Policy {
        var text = file.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        for l in lines {
            switch l {
            case .add(let line): text.append(line)
            case .change(let at, let line): text[at.line - 1] = line
            case .comment: break
            }
        }
        var p = Policy(defaultTypes: defaults)
        p.allowList = try AllowList(PlainListLoader.load(text: text.joined(separator: "\n"), file: "deps.allow"))
        return p
    }

    private func allowed(_ p: Policy, _ name: String, _ type: RecordType) throws -> Bool {
        if case .forward = PolicyDecision.decide(p, name: try DNSName(name), type: type).action { return true }
        return false
    }

    /// Five names under one parent make a wildcard, but the one with an entry of its own keeps it: the
    /// exact entry decides that name, so its new type must land there.
    func testANameWithItsOwnEntryIsNotFoldedIntoAWildcard() throws {
        let file = "a.cdn.example.com  # listed\n"
        let existing = try AllowList(PlainListLoader.load(text: file, file: "deps.allow"))
        let inputs = try [seen("a.cdn.example.com", [.txt])] + (1...5).map { try seen("n\($0).cdn.example.com", [.a]) }
        let lines = suggest(inputs, existing: existing)
        XCTAssertTrue(lines.contains { if case .change(let at, let l) = $0 { return at.line == 1 && l.hasPrefix("a.cdn.example.com.  A,AAAA,CNAME,HTTPS,SVCB,TXT") }; return false },
                      "\(lines)")
        XCTAssertTrue(lines.contains(where: { $0.plain.hasPrefix("*.cdn.example.com.  # audit") }), "\(lines)")
        let after = try apply(lines, to: file)
        XCTAssertTrue(try allowed(after, "a.cdn.example.com", .txt))
        XCTAssertTrue(try allowed(after, "n3.cdn.example.com", .a))
    }

    /// A proposed wildcard speaks for names audit mode never saw: it keeps the default types and adds
    /// the ones seen, rather than narrowing to what a few names happened to ask.
    func testAWildcardKeepsTheDefaultTypes() throws {
        let inputs = try (1...5).map { try seen("h\($0).svc.example.com", $0 == 1 ? [.a, .txt] : [.a]) }
        let lines = suggest(inputs, existing: nil)
        XCTAssertTrue(lines.contains(where: { $0.plain.hasPrefix("*.svc.example.com.  A,AAAA,CNAME,HTTPS,SVCB,TXT  # audit") }), "\(lines)")
        let after = try apply(lines, to: "")
        XCTAssertTrue(try allowed(after, "unseen.svc.example.com", .aaaa))
        XCTAssertTrue(try allowed(after, "h1.svc.example.com", .txt))
    }

    /// An RPZ zone cannot write a type list, so a new type for a name it lists is advice, not a change
    /// of a zone line into plain syntax (nor a second entry, which would not load).
    func testANameListedInAnRPZZoneGetsAdviceNotAChange() throws {
        let zone = "$ORIGIN rpz.example.org.\n@ SOA ns.example.org. h.example.org. 1 3600 600 86400 60\nreg.example.com CNAME rpz-passthru.\n"
        let existing = try AllowList(RPZLoader.load(text: zone, file: "policy.rpz"))
        let lines = suggest([try seen("reg.example.com", [.txt])], existing: existing)
        XCTAssertEqual(lines.count, 1, "\(lines)")
        guard case .comment(let advice) = lines[0] else { return XCTFail("\(lines)") }
        XCTAssertTrue(advice.hasPrefix("# policy.rpz:3 lists reg.example.com. in an RPZ zone, which cannot list query types"), advice)
        XCTAssertTrue(advice.contains("as: reg.example.com.  A,AAAA,CNAME,HTTPS,SVCB,TXT  # audit"), advice)
        XCTAssertEqual(lines[0].diff(oldLine: { _ in "reg.example.com CNAME rpz-passthru." }), [advice], "no -/+ pair for a zone line")
    }

    /// A label that is a literal '*' cannot be written: proposing it would open a wildcard on one query.
    func testANameWithAStarLabelIsNotProposed() throws {
        let lines = suggest([try seen(#"\*.p1.example.org"#, [.a]), try seen(#"x.\*.p99.example.org"#, [.a]), try seen("ok.example.org", [.a])],
                            existing: nil)
        XCTAssertEqual(lines.filter { if case .add = $0 { return true }; return false }.map(\.plain).map { String($0.prefix(16)) },
                       ["ok.example.org. "], "\(lines)")
        XCTAssertEqual(lines.filter { $0.plain.hasPrefix("# not proposed: ") }.count, 2, "\(lines)")
        _ = try apply(lines, to: "")
    }

    /// A deeper name that a longer wildcard already decides keeps its own line when a wildcard is
    /// proposed above it: the proposal would not decide it.
    func testADeeperNameUnderALongerWildcardIsNotFoldedAway() throws {
        let file = "*.rp.example.net  A  # rp\n"
        let existing = try AllowList(PlainListLoader.load(text: file, file: "deps.allow"))
        let inputs = try (1...5).map { try seen("h\($0).example.net", [.a]) } + [try seen("z.rp.example.net", [.aaaa])]
        let lines = suggest(inputs, existing: existing)
        XCTAssertTrue(lines.contains { $0.plain.hasPrefix("*.example.net.  # audit") }, "\(lines)")
        let after = try apply(lines, to: file)
        XCTAssertTrue(try allowed(after, "z.rp.example.net", .aaaa), "\(lines)")
    }

    /// A '#' inside a label is escaped, or the line would load as a shorter name with a comment.
    func testAHashInALabelIsEscaped() throws {
        let lines = suggest([try seen(##"odd\#name.example.com"##, [.a])], existing: nil)
        XCTAssertEqual(lines.map(\.plain).first?.hasPrefix(##"odd\#name.example.com.  # audit"##), true, "\(lines)")
        XCTAssertTrue(try allowed(apply(lines, to: ""), ##"odd\#name.example.com"##, .a))
    }
}
