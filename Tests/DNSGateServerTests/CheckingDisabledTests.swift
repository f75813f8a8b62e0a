import Foundation
import XCTest

/// The CD bit against a real validating resolver: nsd serves a zone signed with ldns-signzone, one
/// record altered after signing (bogus), and unbound validates it with the zone's key as trust
/// anchor. A client that sets CD asks to do the checking itself (RFC 4035 §3.2.2): dnsgate passes CD
/// on, so the client gets the data, and keeps that unchecked answer away from clients that did not
/// set CD (RFC 6840 §5.9), whichever was asked first and over either transport. And the AD bit of a
/// validated answer reaches a client that set AD.
final class CheckingDisabledTests: XCTestCase {
    func testCDReachesAValidatingUpstreamAndItsUncheckedAnswersStayApart() throws {
        for tool in ["nsd", "unbound", "ldns-keygen", "ldns-signzone"] { try requireTool(tool) }
        let dir = TestPaths.tempDir("dnssec")
        let zone = try Self.signedZone(in: dir)

        let nsd = try NSDUpstream(zones: [("signed.test", zone.signedFile)])
        defer { nsd.stop() }

        let unbound = try UnboundServer(dir: dir, server: """
                do-not-query-localhost: no
                module-config: "validator iterator"
                qname-minimisation: no
                trust-anchor-file: "\(zone.trustAnchorFile)"
                local-zone: "." refuse
                local-zone: "signed.test." transparent
            """, clauses: """
            stub-zone:
                name: "signed.test"
                stub-addr: 127.0.0.1@\(nsd.port)
            """)
        defer { unbound.stop() }
        let unboundPort = unbound.port

        // The setup is what the test needs: unbound validates the good name and fails the altered ones.
        let direct = try dig(unboundPort, ["good.signed.test"])
        XCTAssertEqual(direct.status, "NOERROR", direct.raw)
        XCTAssertTrue(direct.flags.split(separator: " ").contains("ad"), direct.raw)
        XCTAssertEqual(try dig(unboundPort, ["bogus0.signed.test"]).status, "SERVFAIL")

        let g = try DNSGateProcess(allow: "*.signed.test\n", upstreams: ["127.0.0.1:\(unboundPort)"])
        defer { g.stop() }
        // A client that sets AD without DO gets the validator's AD (RFC 6840 §5.7): dnsgate asks
        // with AD, or the upstream would not say it. One that sets neither does not get it.
        let validated = try dig(g.port, ["+adflag", "+nodnssec", "good.signed.test"])
        XCTAssertEqual(validated.answers.last?.hasSuffix("A 192.0.2.10"), true, validated.raw)
        XCTAssertTrue(validated.flags.split(separator: " ").contains("ad"), validated.raw)
        XCTAssertFalse(try dig(g.port, ["+noadflag", "good.signed.test"]).flags.split(separator: " ").contains("ad"))

        for (name, transport) in [("bogus1", "+notcp"), ("bogus2", "+tcp")] {
            // CD first: the client that checks for itself gets the (bogus) data; one that did not
            // set CD, asking next, must not get that answer from the cache.
            let checked = try dig(g.port, [transport, "+cd", "\(name).signed.test"])
            XCTAssertEqual(checked.status, "NOERROR", "\(name) \(transport): \(checked.raw)")
            XCTAssertEqual(checked.answers.last?.hasSuffix("A 192.0.2.99"), true, checked.raw)
            XCTAssertTrue(checked.flags.split(separator: " ").contains("cd"), checked.raw)
            let plain = try dig(g.port, [transport, "\(name).signed.test"])
            XCTAssertEqual(plain.status, "SERVFAIL", "\(name) \(transport), after a CD query: \(plain.raw)")
            XCTAssertTrue(plain.answers.isEmpty, plain.raw)
        }
        // The other order: a failure for a client without CD leaves a CD query its answer.
        XCTAssertEqual(try dig(g.port, ["bogus3.signed.test"]).status, "SERVFAIL")
        let after = try dig(g.port, ["+cd", "bogus3.signed.test"])
        XCTAssertEqual(after.answers.last?.hasSuffix("A 192.0.2.99"), true, "CD after a failure: \(after.raw)")
        // And the cached CD answer is still given to CD clients, the validated one to the others.
        XCTAssertEqual(try dig(g.port, ["+cd", "bogus1.signed.test"]).answers.last?.hasSuffix("A 192.0.2.99"), true)
        XCTAssertEqual(try dig(g.port, ["+cd", "good.signed.test"]).answers.last?.hasSuffix("A 192.0.2.10"), true)
    }

    /// `signed.test`, signed with one ECDSA key (ldns-keygen, ldns-signzone), then the A records of
    /// `bogus0`…`bogus3` changed from 192.0.2.20 to 192.0.2.99 under their old signatures.
    private static func signedZone(in dir: URL) throws -> (signedFile: String, trustAnchorFile: String) {
        let zoneFile = dir.appendingPathComponent("signed.test.zone").path
        try """
            $ORIGIN signed.test.
            $TTL 300
            @ IN SOA ns.signed.test. hostmaster.signed.test. 1 3600 600 86400 300
            @ IN NS ns
            ns IN A 192.0.2.53
            good IN A 192.0.2.10
            bogus0 IN A 192.0.2.20
            bogus1 IN A 192.0.2.20
            bogus2 IN A 192.0.2.20
            bogus3 IN A 192.0.2.20

            """.write(toFile: zoneFile, atomically: true, encoding: .utf8)
        // ldns-keygen writes its files into the working directory and prints their base name.
        let keygen = try runCommand("/bin/sh", ["-c", "cd '\(dir.path)' && ldns-keygen -a ECDSAP256SHA256 -k signed.test"])
        XCTAssertEqual(keygen.status, 0, keygen.stderr)
        let key = dir.appendingPathComponent(keygen.stdout.trimmingCharacters(in: .whitespacesAndNewlines)).path
        let sign = try runCommand("ldns-signzone", [zoneFile, key])
        XCTAssertEqual(sign.status, 0, sign.stderr)
        let signedFile = zoneFile + ".signed"
        let signed = try String(contentsOfFile: signedFile, encoding: .utf8)
        let altered = signed.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard f.count == 5, f[0].hasPrefix("bogus"), f[3] == "A", f[4] == "192.0.2.20" else { return String(line) }
            return line.replacingOccurrences(of: "192.0.2.20", with: "192.0.2.99")
        }
        XCTAssertEqual(altered.filter { $0.contains("192.0.2.99") }.count, 4, signed)
        try altered.joined(separator: "\n").write(toFile: signedFile, atomically: true, encoding: .utf8)
        return (signedFile, key + ".ds")
    }
}
