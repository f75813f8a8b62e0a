import DNSGateCore
import Foundation
import XCTest
import DNSGateTestSupport

/// The invariant, tested adversarially: no query whose name or type policy does not allow ever reaches
/// an upstream, whatever its case, escapes, length, class, type or framing.
///
/// dnsgate forwards to unbound with `log-queries: yes`, which forwards to nsd; after thousands of
/// generated queries over UDP and TCP, every question unbound logged must be allowed by the policy.
/// The test also proves the log is live: the allowed names it sent must show up in it.
final class SecurityInvariantTests: XCTestCase {
    static let allow = """
    allowed.test                 # apex
    *.wild.allowed.test          # wildcard, strictly below wild.allowed.test
    www.allowed.test             # exact
    verify.allowed.test  TXT     # one extra type
    """

    func testNoDeniedNameOrTypeReachesTheUpstream() throws {
        try assertInvariant(configYAML: nil)
    }

    /// With `upstream.preserve_case` the client's own spelling of the question goes upstream: the one
    /// path where bytes from the client, not dnsgate's canonical form, leave the machine.
    func testNoDeniedNameOrTypeReachesTheUpstreamWhenCaseIsPreserved() throws {
        try assertInvariant(configYAML: "upstream: { preserve_case: true }\ncontrol: { socket: \"@DIR@/c.sock\" }\nstate_file: \"@DIR@/s.json\"\n")
    }

    private func assertInvariant(configYAML: String?) throws {
        let nsd = try NSDUpstream()
        let unbound = try LoggingUpstream(nsdPort: nsd.port)
        let g = try DNSGateProcess(allow: Self.allow, upstreams: [unbound.address], configYAML: configYAML)

        var rng = SeededRandom(seed: 0xD15EA5E)
        var queries: [[UInt8]] = []
        for i in 0..<3000 { queries.append(AdversarialQueries.make(i, &rng)) }
        // Known-allowed controls, so an empty log cannot pass the test.
        let controls = ["www.allowed.test", "a.wild.allowed.test", "allowed.test"]
        for (k, n) in controls.enumerated() { queries.append(RawQuery.make(id: UInt16(60000 + k), name: n)) }

        // UDP one by one with a short timeout (drops are expected for some), TCP in pipelined batches.
        let udpReplies = UDPClient.burst(port: g.port, queries.enumerated().filter { $0.offset % 3 != 2 }.map(\.element))
        XCTAssertGreaterThan(udpReplies, 1000, "most UDP queries are answered (dropped ones are the malformed kinds)")
        let tcpBatch = queries.enumerated().filter { $0.offset % 3 == 2 }.map(\.element)
        for chunk in stride(from: 0, to: tcpBatch.count, by: 50) {
            _ = try TCPClient.pipelined(port: g.port, queries: Array(tcpBatch[chunk..<min(chunk + 50, tcpBatch.count)]), timeout: 0.5)
        }
        usleep(500_000)

        var policy = Policy()
        policy.allowList = try AllowList(PlainListLoader.load(text: Self.allow, file: "test.allow"))
        let seen = unbound.loggedQueries().filter { $0.name != readinessProbeName + "." }
        XCTAssertGreaterThanOrEqual(seen.count, controls.count, "the upstream log is live")
        for c in controls { XCTAssertTrue(seen.contains { $0.name.lowercased() == c + "." }, "control \(c) reached the upstream") }
        var violations: [String] = []
        for (name, type) in seen {
            guard let n = try? DNSName(name), let t = RecordType(mnemonic: type) else { violations.append("unparseable \(name) \(type)"); continue }
            if case .forward = PolicyDecision.decide(policy, name: n, type: t).action { continue }
            violations.append("\(name) \(type)")
        }
        XCTAssertEqual(violations, [], "denied questions reached the upstream")
        XCTAssertFalse(seen.contains { $0.name.lowercased().contains("denied.test") })
    }
}

/// Deterministic generator of hostile queries: the tricks an attacker would try to get a denied name
/// or type past a filter that compares strings.
enum AdversarialQueries {
    static func make(_ i: Int, _ rng: inout SeededRandom) -> [UInt8] {
        let id = UInt16(truncatingIfNeeded: i)
        let allowedBases = ["allowed.test", "wild.allowed.test", "www.allowed.test", "verify.allowed.test"]
        let base = allowedBases[Int(rng.next() % UInt64(allowedBases.count))]
        switch i % 16 {
        case 0: // mixed case of a denied name
            return RawQuery.make(id: id, name: randomCase("exfil\(i).denied.test", &rng))
        case 1: // a dot inside a label: "wild.allowed.test" as one label under denied.test
            return RawQuery.make(id: id, wireName: label("a.wild.allowed.test") + RawQuery.encode("denied.test"))
        case 2: // allowed suffix as a label prefix: wild.allowed.test.denied.test
            return RawQuery.make(id: id, name: "x.wild.allowed.test.denied.test")
        case 3: // apex of the wildcard (not allowed) in random case
            return RawQuery.make(id: id, name: randomCase("wild.allowed.test", &rng))
        case 4: // TXT / NULL / ANY / AXFR / MX for allowed names
            let types: [UInt16] = [16, 10, 255, 252, 251, 15, 99, 65535]
            let t = types[Int(rng.next() % UInt64(types.count))]
            return RawQuery.make(id: id, name: base == "verify.allowed.test" ? "www.allowed.test" : base, type: t)
        case 5: // wrong class for an allowed name
            return RawQuery.make(id: id, name: "www.allowed.test", qclass: [3, 4, 254, 255][i % 4])
        case 6: // two questions: one allowed, one denied
            var m = RawQuery.make(id: id, name: "www.allowed.test", qdcount: 2)
            m += RawQuery.encode("evil.denied.test") + [0, 1, 0, 1]
            return m
        case 7: // binary label bytes, including NUL and 0x2E, under a denied zone
            var l: [UInt8] = (0..<Int(rng.next() % 62 + 1)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if i % 2 == 0 { l[0] = 0x2E }
            return RawQuery.make(id: id, wireName: [UInt8(l.count)] + l + RawQuery.encode("denied.test"))
        case 8: // 63-octet labels up to the 255 limit under an allowed wildcard (allowed) and denied zone (denied)
            var wire: [UInt8] = []
            for _ in 0..<3 { wire += [63] + (0..<63).map { _ in UInt8(ascii: "a") + UInt8(rng.next() % 26) } }
            let suffix = i % 2 == 0 ? RawQuery.encode("wild.allowed.test") : RawQuery.encode("denied.test")
            return RawQuery.make(id: id, wireName: Array((wire + suffix).suffix(255)))
        case 9: // over-long names and labels: must be FORMERR, never forwarded
            let long: [UInt8] = [64] + [UInt8](repeating: 0x61, count: 64) + RawQuery.encode("wild.allowed.test")
            let tooLong = (0..<5).flatMap { _ in [63] + [UInt8](repeating: 0x62, count: 63) } + RawQuery.encode("wild.allowed.test")
            return RawQuery.make(id: id, wireName: i % 2 == 0 ? long : tooLong)
        case 10: // compression pointer in the question pointing into the header
            return RawQuery.make(id: id, wireName: [3, 0x61, 0x62, 0x63, 0xC0, 0x00])
        case 11: // reserved label types 0x40 / 0x80
            return RawQuery.make(id: id, wireName: [0x41, 0x61] + RawQuery.encode("allowed.test"))
        case 12: // opcode games
            return RawQuery.make(id: id, name: "evil.denied.test", opcode: UInt8([1, 2, 4, 5, 15][i % 5]))
        case 13: // an escaped-looking name: literal backslashes in a label
            return RawQuery.make(id: id, wireName: label("wild\\.allowed\\.test") + RawQuery.encode("denied.test"))
        case 14: // EDNS query for a denied name under an allowed-looking prefix
            return RawQuery.make(id: id, name: "allowed.test.evil\(i).denied.test", edns: true)
        default: // truncated garbage
            let q = RawQuery.make(id: id, name: "www.allowed.test")
            return Array(q.prefix(Int(rng.next() % UInt64(q.count))))
        }
    }

    static func randomCase(_ s: String, _ rng: inout SeededRandom) -> String {
        String(s.map { rng.next() % 2 == 0 ? Character($0.uppercased()) : $0 })
    }
    static func label(_ s: String) -> [UInt8] { [UInt8(s.utf8.count)] + Array(s.utf8) }
}
