import XCTest
@testable import DNSGateCore

/// Presentation and wire parsing of `DNSName`, the only name type policy compares (DESIGN: Policy semantics).
final class DNSNameTests: XCTestCase {
    private func label(_ n: Int, _ ch: Character = "a") -> String { String(repeating: ch, count: n) }

    /// Table of presentation inputs and the wire bytes they must become; what an attacker tries included.
    /// The eight-at-a-time fold that reading a name uses must agree with `asciiLower` for every byte
    /// in every position, next to any neighbour (no carry may cross a byte).
    func testWordLowerCasingAgreesWithByteLowerCasingForEveryByte() {
        for b in 0...255 {
            for neighbour in [0x00, 0x40, 0x41, 0x5A, 0x5B, 0x7F, 0x80, 0xC1, 0xFF] as [UInt8] {
                for pos in 0..<8 {
                    var bytes = [UInt8](repeating: neighbour, count: 8); bytes[pos] = UInt8(b)
                    let folded = withUnsafeBytes(of: lowerCased(bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })) { Array($0) }
                    XCTAssertEqual(folded, bytes.map(asciiLower), "byte \(b) at \(pos) next to \(neighbour)")
                }
            }
        }
        // Through readName: labels longer and shorter than a word, mixed case, and non-ASCII octets.
        let wire: [UInt8] = [11] + Array("AbCdEfGhIjK".utf8) + [3, 0xC1, 0x5A, 0x7B] + [1, 0x40] + [0]
        XCTAssertEqual(try readName(wire, at: 0).0.wire, [11] + Array("abcdefghijk".utf8) + [3, 0xC1, 0x7A, 0x7B] + [1, 0x40] + [0])
    }

    func testPresentationParsingTable() throws {
        let cases: [(name: String, text: String, wire: [UInt8])] = [
            ("plain", "www.example.com", WireFixtures.name("www.example.com")),
            ("trailing dot is the same name", "www.example.com.", WireFixtures.name("www.example.com")),
            ("upper case folds to lower", "WWW.Example.COM", WireFixtures.name("www.example.com")),
            ("escaped dot stays inside the label", #"a\.b.example.com"#, [3, 0x61, 0x2E, 0x62] + WireFixtures.name("example.com")),
            ("decimal escape of a dot stays inside the label", #"a\046b.example.com"#, [3, 0x61, 0x2E, 0x62] + WireFixtures.name("example.com")),
            ("decimal escape of a letter is folded", #"\087ww.example.com"#, WireFixtures.name("www.example.com")),
            ("escaped backslash", #"a\\b.example.org"#, [3, 0x61, 0x5C, 0x62] + WireFixtures.name("example.org")),
            ("escaped ordinary character", #"\www.example.org"#, WireFixtures.name("www.example.org")),
            ("zero octet by escape", #"\000.example.net"#, [1, 0] + WireFixtures.name("example.net")),
            ("octet 255 by escape", #"\255.example.net"#, [1, 0xFF] + WireFixtures.name("example.net")),
            ("root as dot", ".", [0]),
            ("root as empty string", "", [0]),
            ("single label", "test", WireFixtures.name("test")),
        ]
        for c in cases {
            XCTAssertEqual(try DNSName(c.text).wire, c.wire, c.name)
        }
    }

    func testEscapedDotIsNotTheSameNameAsTwoLabels() throws {
        let escaped = try DNSName(#"www\.example.com"#)
        let plain = try DNSName("www.example.com")
        XCTAssertNotEqual(escaped, plain)
        XCTAssertEqual(escaped.labelCount, 2)
        XCTAssertEqual(plain.labelCount, 3)
        XCTAssertEqual(try DNSName(#"www\046example.com"#), escaped)
    }

    func testMalformedPresentationIsRejectedWithTheRightError() {
        let cases: [(name: String, text: String, error: WireError)] = [
            ("decimal escape above 255", #"\256.example.com"#, .badEscape(#"\256.example.com"#)),
            ("decimal escape 999", #"a\999.example.com"#, .badEscape(#"a\999.example.com"#)),
            ("two-digit escape", #"a\04.example.com"#, .badEscape(#"a\04.example.com"#)),
            ("two-digit escape at the end", #"example.com\04"#, .badEscape(#"example.com\04"#)),
            ("lone backslash at the end", #"example.com\"#, .badEscape(#"example.com\"#)),
            ("empty label in the middle", "www..example.com", .emptyLabel),
            ("leading dot", ".example.com", .emptyLabel),
            ("two trailing dots", "example.com..", .emptyLabel),
            ("64-octet label", label(64) + ".example.com", .labelTooLong(octets: 64)),
        ]
        for c in cases {
            XCTAssertThrowsError(try DNSName(c.text), c.name) { XCTAssertEqual($0 as? WireError, c.error, c.name) }
        }
    }

    func testSixtyThreeOctetLabelIsAccepted() throws {
        let n = try DNSName(label(63) + ".example.com")
        XCTAssertEqual(n.wire[0], 63)
        XCTAssertEqual(n.labels.first?.count, 63)
    }

    /// 255 octets of wire form is the limit (RFC 1035 §2.3.4): labels of 63, 63, 63 and 61 octets take
    /// 4 length octets + 250 + the root octet = 255; one more octet in the last label is 256.
    func testNameOf255OctetsIsAcceptedAnd256Rejected() throws {
        let ok = [label(63), label(63), label(63), label(61, "b")].joined(separator: ".")
        XCTAssertEqual(try DNSName(ok).wire.count, 255)
        let tooLong = [label(63), label(63), label(63), label(62, "b")].joined(separator: ".")
        XCTAssertThrowsError(try DNSName(tooLong)) { XCTAssertEqual($0 as? WireError, .nameTooLong(octets: 256)) }
        XCTAssertThrowsError(try DNSName(tooLong + ".")) { XCTAssertEqual($0 as? WireError, .nameTooLong(octets: 256)) }
    }

    func testWireInitLowerCasesAndValidates() throws {
        XCTAssertEqual(try DNSName(wire: WireFixtures.name("WwW.ExAmPlE.OrG")).wire, WireFixtures.name("www.example.org"))
        XCTAssertThrowsError(try DNSName(wire: [3, 0x61, 0x62])) { XCTAssertEqual($0 as? WireError, .truncated(at: 0)) }
        XCTAssertThrowsError(try DNSName(wire: [64] + Array(repeating: 0x61, count: 64) + [0])) {
            XCTAssertEqual($0 as? WireError, .labelTooLong(octets: 64))
        }
        XCTAssertThrowsError(try DNSName(wire: WireFixtures.name("example.com") + [0])) {
            XCTAssertEqual($0 as? WireError, .trailingBytes(count: 1))
        }
        // A compression pointer is a "label" of 0xC0 octets: not a name in uncompressed form.
        XCTAssertThrowsError(try DNSName(wire: [0xC0, 0x0C]))
    }

    func testWireInitEnforcesThe255OctetLimitIncludingTheRoot() throws {
        let ok = try DNSName([label(63), label(63), label(63), label(61)].joined(separator: "."))
        XCTAssertEqual(try DNSName(wire: ok.wire).wire.count, 255)
        var long: [UInt8] = []
        for n in [63, 63, 63, 62] { long.append(UInt8(n)); long += Array(repeating: 0x61, count: n) }
        long.append(0)
        XCTAssertEqual(long.count, 256)
        XCTAssertThrowsError(try DNSName(wire: long)) { XCTAssertEqual($0 as? WireError, .nameTooLong(octets: 256)) }
    }

    func testDescriptionIsFullyQualifiedAndEscapesSpecialOctets() throws {
        let cases: [(text: String, description: String)] = [
            ("www.example.com", "www.example.com."),
            ("WWW.EXAMPLE.COM.", "www.example.com."),
            (".", "."),
            (#"a\.b.example.com"#, #"a\.b.example.com."#),
            (#"a\046b.example.com"#, #"a\.b.example.com."#),
            (#"a\032b.example.org"#, #"a\032b.example.org."#),      // space
            (#"\000\255.example.org"#, #"\000\255.example.org."#),
            (#"a\\b\"c\;d.example.net"#, #"a\\b\"c\;d.example.net."#),
            (#"\$\@\(\).example.net"#, #"\$\@\(\).example.net."#),
        ]
        for c in cases { XCTAssertEqual(try DNSName(c.text).description, c.description, c.text) }
    }

    func testDescriptionRoundTripsForEveryOctet() throws {
        for b in 0...255 {
            let n = DNSName(uncheckedWire: [1, UInt8(b)] + WireFixtures.name("example.com"))
            let lowered = try DNSName(wire: n.wire)
            XCTAssertEqual(try DNSName(lowered.description), lowered, "octet \(b) as \(lowered.description)")
        }
    }

    func testIsSubdomain() throws {
        let cases: [(String, String, Bool)] = [
            ("www.example.com", "example.com", true),
            ("example.com", "example.com", true),
            ("a.b.example.com", "example.com", true),
            ("EXAMPLE.com", "example.COM", true),
            ("anything.example.net", ".", true),
            ("example.com", "www.example.com", false),
            ("badexample.com", "example.com", false),          // a suffix of the string, not of the labels
            ("example.com.example.net", "example.com", false),
            (#"www\.example.com"#, "www.example.com", false),
            ("example.org", "example.com", false),
        ]
        for (child, parent, want) in cases {
            XCTAssertEqual(try DNSName(child).isSubdomain(of: DNSName(parent)), want, "\(child) under \(parent)")
        }
    }

    func testOrderingIsCanonicalFromTheRightmostLabel() throws {
        let sorted = try ["example.com", "a.example.com", "Z.a.example.com", "zABC.a.example.com", "z.example.com",
                          "\\001.z.example.com", "*.z.example.com", "example.net", "a.example.net"].map(DNSName.init)
        // RFC 4034 §6.1 example order: owner names sort label by label from the right, shorter first.
        let want = try ["example.com", "a.example.com", "z.a.example.com", "zabc.a.example.com", "z.example.com",
                        "\\001.z.example.com", "*.z.example.com", "example.net", "a.example.net"].map(DNSName.init)
        XCTAssertEqual(sorted.sorted(), want)
        XCTAssertEqual(want.shuffled().sorted(), want)
        XCTAssertFalse(try DNSName("example.com") < DNSName("EXAMPLE.COM"))
        XCTAssertTrue(try DNSName("example.com") < DNSName("a.example.com"))
    }

    func testLabelsParentAndWildcard() throws {
        let n = try DNSName("*.Example.COM")
        XCTAssertTrue(n.isWildcard)
        XCTAssertFalse(try DNSName(#"\*x.example.com"#).isWildcard)
        XCTAssertEqual(n.labels.map { String(decoding: $0, as: UTF8.self) }, ["*", "example", "com"])
        XCTAssertEqual(n.parent, try DNSName("example.com"))
        XCTAssertEqual(n.parent?.parent?.parent, .root)
        XCTAssertNil(DNSName.root.parent)
        XCTAssertEqual(DNSName.root.labelCount, 0)
    }
}
