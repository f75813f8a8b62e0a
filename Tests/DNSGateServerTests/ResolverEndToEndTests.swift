import Foundation
import XCTest

/// dnsgate end to end: the real binary between real clients (dig, kdig) and a real upstream (nsd),
/// all on loopback.
final class ResolverEndToEndTests: XCTestCase {
    static var nsd: NSDUpstream!
    static let allow = """
    allowed.test                    # apex
    *.allowed.test                  # everything below
    verify.allowed.test  A,TXT      # a TXT record builds need
    """

    override class func setUp() {
        super.setUp()
        nsd = try? NSDUpstream()
    }
    override class func tearDown() { nsd?.stop(); nsd = nil; super.tearDown() }

    private func gate(_ extra: [String] = [], allow: String = allow, config: String? = nil) throws -> DNSGateProcess {
        guard let nsd = Self.nsd else { try requireTool("nsd"); throw XCTSkip("nsd did not start") }
        return try DNSGateProcess(allow: allow, upstreams: [nsd.address], extraArgs: extra, configYAML: config)
    }

    func testAllowedNamesAreAnsweredByTheUpstream() throws {
        let g = try gate()
        let a = try dig(g.port, ["www.allowed.test", "A"])
        XCTAssertEqual(a.status, "NOERROR")
        XCTAssertEqual(a.answers, ["www.allowed.test. 300 IN A 192.0.2.1"])
        XCTAssertTrue(a.flags.contains("ra") && !a.flags.contains("aa"), a.flags)
        let aaaa = try dig(g.port, ["www.allowed.test", "AAAA"])
        XCTAssertEqual(aaaa.answers.last, "www.allowed.test. 300 IN AAAA 2001:db8::1")
        let apex = try dig(g.port, ["allowed.test", "A"])
        XCTAssertEqual(apex.answers, ["allowed.test. 300 IN A 192.0.2.1"])
    }

    func testCNAMEChainIsReturnedWhole() throws {
        let g = try gate()
        let a = try dig(g.port, ["chain.allowed.test", "A"])
        XCTAssertEqual(a.answers, ["chain.allowed.test. 300 IN CNAME alias.allowed.test.",
                                   "alias.allowed.test. 300 IN CNAME www.allowed.test.",
                                   "www.allowed.test. 300 IN A 192.0.2.1"])
    }

    func testDeniedNameGetsNXDomainWithBlockedEDEAndIsLogged() throws {
        let g = try gate()
        let a = try dig(g.port, ["evil.denied.test", "A"])
        XCTAssertEqual(a.status, "NXDOMAIN")
        XCTAssertEqual(a.edeCode, 15)
        XCTAssertTrue(a.edeText?.contains("dnsgate policy") == true, a.raw)
        XCTAssertEqual(a.answers, [])
        XCTAssertTrue(a.authority.first?.contains("SOA dnsgate.invalid. policy.dnsgate.invalid.") == true, a.raw)
        XCTAssertTrue(a.authority.first?.hasPrefix("evil.denied.test. 60 IN SOA") == true, a.raw)
        let logged = waitFor { g.queryLogLines.contains { $0.contains("\"qname\":\"evil.denied.test.\"") && $0.contains("\"action\":\"sinkholed\"") } }
        XCTAssertTrue(logged, g.queryLogLines.joined(separator: "\n"))
    }

    func testDeniedNameWithoutEDNSGetsNoOPT() throws {
        let g = try gate()
        let a = try dig(g.port, ["+noedns", "evil.denied.test"])
        XCTAssertEqual(a.status, "NXDOMAIN")
        XCTAssertFalse(a.raw.contains("OPT PSEUDOSECTION"), "RFC 6891 §7: no OPT in a reply to a query without one")
    }

    func testTypeNotAllowedUnderAllowedNameIsNODATAWithFilteredEDE() throws {
        let g = try gate()
        let txt = try dig(g.port, ["txt.allowed.test", "TXT"])
        XCTAssertEqual(txt.status, "NOERROR")
        XCTAssertEqual(txt.answers, [])
        XCTAssertEqual(txt.edeCode, 17)
        let any = try dig(g.port, ["www.allowed.test", "ANY"])
        XCTAssertEqual(any.edeCode, 17)
        // Listed per entry: TXT for verify.allowed.test is forwarded (nsd has no such name: its own NXDOMAIN, no EDE).
        let verify = try dig(g.port, ["verify.allowed.test", "TXT"])
        XCTAssertEqual(verify.status, "NXDOMAIN")
        XCTAssertNil(verify.edeCode)
    }

    /// Name denials follow the mode; a type denial is NODATA with EDE 17 in every mode.
    func testEverySinkholeMode() throws {
        func assertTypeDenialIsNODATA(_ g: DNSGateProcess, _ mode: String) throws {
            let t = try dig(g.port, ["txt.allowed.test", "TXT"])
            XCTAssertEqual(t.status, "NOERROR", "type denial under \(mode): \(t.raw)")
            XCTAssertEqual(t.answers, [], mode)
            XCTAssertEqual(t.edeCode, 17, mode)
        }
        let cases: [(String, String?, String, [String])] = [
            ("nxdomain", nil, "NXDOMAIN", []),
            ("nodata", nil, "NOERROR", []),
            ("refused", nil, "REFUSED", []),
            ("null", nil, "NOERROR", ["evil.denied.test. 60 IN A 0.0.0.0"]),
        ]
        for (mode, _, status, answers) in cases {
            let g = try gate(["--sinkhole", mode])
            let a = try dig(g.port, ["evil.denied.test", "A"])
            XCTAssertEqual(a.status, status, mode)
            XCTAssertEqual(a.answers, answers, mode)
            XCTAssertEqual(a.edeCode, 15, mode)
            try assertTypeDenialIsNODATA(g, mode)
            g.stop()
        }
        let null6 = try gate(["--sinkhole", "null"])
        XCTAssertEqual(try dig(null6.port, ["evil.denied.test", "AAAA"]).answers, ["evil.denied.test. 60 IN AAAA ::"])
        null6.stop()

        let redirect = try gate(config: """
            sinkhole:
              mode: redirect
              redirect_v4: 192.0.2.53
              redirect_v6: 2001:db8::53
            control: { socket: "@DIR@/ignored.sock" }
            """)
        XCTAssertEqual(try dig(redirect.port, ["evil.denied.test", "A"]).answers, ["evil.denied.test. 60 IN A 192.0.2.53"])
        XCTAssertEqual(try dig(redirect.port, ["evil.denied.test", "AAAA"]).answers, ["evil.denied.test. 60 IN AAAA 2001:db8::53"])
        try assertTypeDenialIsNODATA(redirect, "redirect")
        redirect.stop()

        let drop = try gate(["--sinkhole", "drop"])
        XCTAssertTrue(try dig(drop.port, ["evil.denied.test", "A"]).timedOut)
        XCTAssertEqual(try dig(drop.port, ["www.allowed.test", "A"]).status, "NOERROR", "drop applies to denied names only")
        try assertTypeDenialIsNODATA(drop, "drop")
    }

    func testTCPAndPipelinedQueriesOnOneConnection() throws {
        try requireTool("kdig")
        let g = try gate()
        XCTAssertEqual(try dig(g.port, ["+tcp", "www.allowed.test"]).answers, ["www.allowed.test. 300 IN A 192.0.2.1"])
        // kdig +keepopen sends the queries one after another on one TCP connection.
        let r = try runCommand("kdig", ["@127.0.0.1", "-p", "\(g.port)", "+tcp", "+keepopen", "+timeout=3",
                                 "www.allowed.test", "A", "www.allowed.test", "AAAA", "evil.denied.test", "A", "alias.allowed.test", "A"])
        XCTAssertEqual(r.stdout.components(separatedBy: "status: NOERROR").count - 1, 3, r.stdout)
        XCTAssertEqual(r.stdout.components(separatedBy: "status: NXDOMAIN").count - 1, 1, r.stdout)
        XCTAssertEqual(r.stdout.components(separatedBy: "TCP session").count - 1, 0, r.stdout)
        // Pipelining proper: several framed queries written at once before reading any reply.
        let names = (0..<8).map { "p\($0).wild.allowed.test" }
        let replies = try TCPClient.pipelined(port: g.port, queries: names.enumerated().map { RawQuery.make(id: UInt16(100 + $0.offset), name: $0.element) })
        XCTAssertEqual(Set(replies.map { $0.u16(0) }), Set((0..<8).map { UInt16(100 + $0) }), "one reply per query, matched by ID")
        XCTAssertTrue(replies.allSatisfy { $0[3] & 0xF == 0 }, "all NOERROR")
    }

    /// A connection pipelining more misses than it may have waiting (128) is read again as its answers
    /// come back, and gets every one: the cap is flow control, not a limit on what it may ask.
    func testAConnectionPipeliningMoreMissesThanItsCapGetsEveryAnswer() throws {
        let g = try gate()
        let queries = (0..<1000).map { RawQuery.make(id: UInt16($0), name: "cap\($0).wild.allowed.test") }
        let replies = try TCPClient.pipelined(port: g.port, queries: queries, timeout: 20)
        XCTAssertEqual(Set(replies.map { $0.u16(0) }), Set((0..<1000).map { UInt16($0) }), "\(replies.count) of 1,000 answered")
    }

    /// A client may shut down its sending side once its queries are written: every answer still
    /// comes, the cache misses' too, and then the server closes.
    func testTCPClientThatHalfClosesGetsEveryAnswer() throws {
        let g = try gate()
        let queries = [RawQuery.make(id: 1, name: "evil.denied.test"), RawQuery.make(id: 2, name: "www.allowed.test"),
                       RawQuery.make(id: 3, name: "chain.allowed.test"), RawQuery.make(id: 4, name: "short.allowed.test", type: 28)]
        let replies = try TCPClient.pipelined(port: g.port, queries: queries, halfClose: true)
        XCTAssertEqual(Set(replies.map { $0.u16(0) }), [1, 2, 3, 4], "every query answered, misses included")
        // A client that half-closes in the middle of a frame: the complete queries before it still get their answers.
        let cut = RawQuery.make(id: 9, name: "cut.allowed.test")
        let partial = try TCPClient.pipelined(port: g.port, queries: [RawQuery.make(id: 5, name: "half1.allowed.test"),
                                                                      RawQuery.make(id: 6, name: "half2.allowed.test", type: 28)],
                                              trailing: [UInt8(cut.count >> 8), UInt8(cut.count & 0xFF)] + cut.prefix(7), halfClose: true)
        XCTAssertEqual(Set(partial.map { $0.u16(0) }), [5, 6], "the misses before the partial frame answered")
    }

    func testTruncatedOverUDPThenRetriedOverTCP() throws {
        let g = try gate()
        // 40 A records do not fit 512 octets: without EDNS the UDP reply is truncated, dig retries over TCP.
        let a = try dig(g.port, ["+noedns", "big.allowed.test"])
        XCTAssertTrue(a.raw.contains("Truncated, retrying in TCP mode"), a.raw)
        XCTAssertEqual(a.answers.count, 40)
        let udpOnly = try dig(g.port, ["+noedns", "+ignore", "big.allowed.test"])
        XCTAssertTrue(udpOnly.flags.contains("tc"), udpOnly.raw)
        XCTAssertEqual(udpOnly.answers, [])
        // With EDNS 1232 it fits.
        let edns = try dig(g.port, ["+bufsize=1232", "big.allowed.test"])
        XCTAssertEqual(edns.answers.count, 40)
        XCTAssertFalse(edns.flags.contains("tc"))
    }

    func testAnswersAreCachedAndTTLsCountDown() throws {
        let g = try gate()
        _ = try dig(g.port, ["short.allowed.test"])
        sleep(2)
        let again = try dig(g.port, ["short.allowed.test"])
        let ttl = Int(again.answers.first?.split(separator: " ")[1] ?? "") ?? -1
        XCTAssertTrue((25...28).contains(ttl), "TTL 30 aged by ~2 s, got \(ttl)")
        let stats = try g.cli(["stats", "--json"])
        XCTAssertEqual(stats.status, 0, stats.stderr)
        XCTAssertTrue(stats.stdout.contains("\"cached\" : 1"), stats.stdout)
    }

    /// A cached RRset of many addresses comes in another order to each query (QA pass 10, F3: the
    /// same first address for the entry's whole life sent every runner to one mirror); the set stays.
    func testCachedAddressesComeInTurns() throws {
        let g = try gate()
        let answers = try (0..<10).map { _ in try dig(g.port, ["big.allowed.test"]).answers.compactMap { $0.split(separator: " ").last } }
        XCTAssertEqual(Set(answers.map { Set($0) }).count, 1, "every answer holds the same addresses")
        XCTAssertEqual(answers[0].count, 40, "the zone's 40")
        XCTAssertGreaterThan(Set(answers.compactMap(\.first)).count, 1, "\(answers.compactMap(\.first))")
    }

    /// QA pass 5, F5: `max_ttl` and `negative_max_ttl` bound what clients are told, as unbound's
    /// cache-max-ttl does, not only how long dnsgate keeps the answer; `stats` shows the cache's bytes.
    func testClientsAreToldTTLsWithinTheCacheLimits() throws {
        let g = try gate(config: "state_file: \"@DIR@/state.json\"\ncache:\n  max_ttl: 100\n  negative_max_ttl: 10\n")
        XCTAssertEqual(try dig(g.port, ["www.allowed.test"]).answers, ["www.allowed.test. 100 IN A 192.0.2.1"], "zone TTL 300")
        let nx = try dig(g.port, ["nothing.allowed.test"])
        XCTAssertEqual(nx.status, "NXDOMAIN")
        XCTAssertTrue(nx.authority.first?.hasPrefix("allowed.test. 10 IN SOA") == true, nx.raw)
        let stats = try g.cli(["stats", "--json"])
        XCTAssertTrue(stats.stdout.contains("\"bytes\" : "), stats.stdout)
    }

    /// A cache miss counts once, over TCP as over UDP (QA pass 6: the event loop's second look at the
    /// cache counted a TCP miss twice).
    func testACacheMissCountsOnceOverEitherTransport() throws {
        let g = try gate()
        XCTAssertEqual(try dig(g.port, ["+tcp", "once-tcp.allowed.test"]).status, "NXDOMAIN")
        XCTAssertEqual(try dig(g.port, ["once-udp.allowed.test"]).status, "NXDOMAIN")
        let stats = try g.cli(["stats", "--json"])
        XCTAssertTrue(stats.stdout.contains("\"misses\" : 2"), stats.stdout)
    }

    func testCaseOfTheQuestionIsEchoed() throws {
        let g = try gate()
        let a = try dig(g.port, ["WwW.AlLoWeD.TeSt"])
        XCTAssertTrue(a.raw.contains(";WwW.AlLoWeD.TeSt."), "question echoed as sent (0x20)")
        XCTAssertEqual(a.status, "NOERROR")
    }

    /// An A query for `name` with EDNS padding (RFC 7830) making it `size` octets.
    static func padded(id: UInt16, name: String, to size: Int) -> [UInt8] {
        var q = RawQuery.make(id: id, name: name)
        q[11] = 1   // ARCOUNT
        let pad = size - q.count - 11 - 4
        q += [0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, UInt8((pad + 4) >> 8), UInt8((pad + 4) & 0xFF), 0, 12, UInt8(pad >> 8), UInt8(pad & 0xFF)]
        return q + [UInt8](repeating: 0, count: pad)
    }

    func testMalformedAndOddQueriesGetTheRightRcodes() throws {
        let g = try gate()
        XCTAssertEqual(try dig(g.port, ["version.bind", "CH", "TXT"]).status, "REFUSED")
        let two = try UDPClient.exchange(port: g.port, RawQuery.make(id: 7, name: "www.allowed.test", qdcount: 2, extraQuestion: true))
        XCTAssertEqual(two.map { $0[3] & 0xF }, 1, "QDCOUNT 2 → FORMERR")
        let notify = try UDPClient.exchange(port: g.port, RawQuery.make(id: 8, name: "www.allowed.test", opcode: 4))
        XCTAssertEqual(notify.map { $0[3] & 0xF }, 4, "opcode NOTIFY → NOTIMP")
        XCTAssertNil(try UDPClient.exchange(port: g.port, [1, 2, 3], timeout: 0.5), "shorter than a header: dropped")
        // Past 4 KB, as over TCP (QA pass 12, F1: the listener read the first 4,096 octets only, so junk
        // after a padded 4 KB query was answered, and a well-formed 5 KB one was FORMERR).
        let huge = try UDPClient.exchange(port: g.port, RawQuery.make(id: 9, name: "www.allowed.test") + [UInt8](repeating: 0xAB, count: 6000), timeout: 0.5)
        XCTAssertEqual(huge.map { $0[3] & 0xF }, 1, "6 KB datagram, junk after the question: FORMERR")
        let padded4K = Self.padded(id: 10, name: "www.allowed.test", to: 4096)
        XCTAssertEqual(try UDPClient.exchange(port: g.port, padded4K).map { $0[3] & 0xF }, 0, "a well-formed 4 KB query")
        let junkAfter = try UDPClient.exchange(port: g.port, padded4K + [UInt8](repeating: 0xAB, count: 2100), timeout: 0.5)
        XCTAssertEqual(junkAfter.map { $0[3] & 0xF }, 1, "junk after a whole 4 KB query: FORMERR, not an answer")
        let padded5K = try UDPClient.exchange(port: g.port, Self.padded(id: 11, name: "www.allowed.test", to: 5000))
        XCTAssertEqual(padded5K.map { $0[3] & 0xF }, 0, "a well-formed 5 KB query (EDNS padding) is answered")
        XCTAssertEqual(try dig(g.port, ["www.allowed.test"]).status, "NOERROR", "still serving after garbage")
    }

    func testUpstreamDownServesStaleThenSERVFAIL() throws {
        let local = try NSDUpstream()
        let g = try DNSGateProcess(allow: Self.allow, upstreams: [local.address],
                                   extraArgs: [], configYAML: """
            cache: { max_ttl: 1, serve_stale: 3600 }
            upstream: { timeout_ms: 300, deadline_ms: 600 }
            control: { socket: "@DIR@/ignored.sock" }
            """)
        XCTAssertEqual(try dig(g.port, ["www.allowed.test"]).status, "NOERROR")
        local.stop()
        // A silent upstream, not a closed port (whose ICMP error fails an exchange at once): every
        // attempt now waits for its timeout.
        let hole = boundUDPSocket(host: "127.0.0.1", port: local.port)
        defer { close(hole) }
        sleep(2)   // past max_ttl 1 s: the entry is expired but inside the serve-stale window
        let stale = try dig(g.port, ["www.allowed.test"])
        XCTAssertEqual(stale.status, "NOERROR", stale.raw)
        XCTAssertEqual(stale.answers, ["www.allowed.test. 30 IN A 192.0.2.1"], "RFC 8767: stale answers carry TTL 30")
        XCTAssertEqual(stale.edeCode, 3)
        // RFC 8767 §5: the refresh just failed, so for a while the stale answer comes at once, without
        // waiting for the upstream's timeouts (300 ms, twice) again.
        let started = Date()
        let again = try dig(g.port, ["www.allowed.test"])
        XCTAssertLessThan(Date().timeIntervalSince(started), 0.25, again.raw)
        XCTAssertEqual(again.answers, ["www.allowed.test. 30 IN A 192.0.2.1"], again.raw)
        XCTAssertEqual(again.edeCode, 3)
        let never = try dig(g.port, ["never-seen.allowed.test"])
        XCTAssertEqual(never.status, "SERVFAIL")
        XCTAssertEqual(never.edeCode, 22)
    }

    func testReloadSwapsInAGoodFileAndRefusesABrokenOne() throws {
        let g = try gate()
        XCTAssertEqual(try dig(g.port, ["new.example.com"]).status, "NXDOMAIN")
        try (Self.allow + "\nnew.example.com  # added\n").write(toFile: g.allowFile, atomically: true, encoding: .utf8)
        g.signal(SIGHUP)
        XCTAssertTrue(g.waitForLog("policy reloaded: 4 entries"), g.log)
        // nsd is not authoritative for example.com: REFUSED from upstream, so SERVFAIL, but no longer a policy denial.
        XCTAssertNotEqual(try dig(g.port, ["new.example.com"]).edeCode, 15)

        try (Self.allow + "\nbroken entry with too many fields\n").write(toFile: g.allowFile, atomically: true, encoding: .utf8)
        let r = try g.cli(["reload"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("test.allow:4"), r.stderr)
        XCTAssertEqual(try dig(g.port, ["www.allowed.test"]).status, "NOERROR", "previous policy keeps serving")
        XCTAssertNotEqual(try dig(g.port, ["new.example.com"]).edeCode, 15, "...including the entry the good reload added")
    }

    /// `stats --entries` shows each entry's last use next to its hits, "never" for one not used yet.
    func testStatsEntriesShowLastUse() throws {
        let g = try gate(allow: "www.allowed.test  # used\nidle.allowed.test  # not asked for\n")
        XCTAssertEqual(try dig(g.port, ["www.allowed.test"]).status, "NOERROR")
        let r = try g.cli(["stats", "--entries"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("entries (hits, last use, pattern, profile, where, reason"), r.stdout)
        let row = { (name: String) in r.stdout.split(separator: "\n").first { $0.contains("\t\(name)\t") }.map(String.init) ?? "" }
        XCTAssertTrue(row("www.allowed.test.").hasPrefix("  1\t0s ago\t") || row("www.allowed.test.").hasPrefix("  1\t1s ago\t"), r.stdout)
        XCTAssertTrue(row("idle.allowed.test.").hasPrefix("  0\tnever\t"), r.stdout)
    }

    /// A reload applies the policy only; what needs a restart is said to whoever ran `dnsgate reload`.
    func testReloadWarnsAboutSettingsThatNeedARestart() throws {
        guard let nsd = Self.nsd else { try requireTool("nsd"); throw XCTSkip("nsd did not start") }
        let yaml = "upstreams: [\"\(nsd.address)\"]\n"
        let g = try DNSGateProcess(allow: Self.allow, upstreams: [], configYAML: yaml)
        let config = g.dir.appendingPathComponent("dnsgate.yaml").path
        let same = try g.cli(["reload"])
        XCTAssertEqual(same.status, 0, same.stderr)
        XCTAssertFalse(same.stderr.contains("warning"), "nothing changed: \(same.stderr)")

        try ("upstreams: [\"127.0.0.1:\(freePort())\"]\nthreads: 2\nmax_udp_payload: 512\ntcp: { idle_timeout_ms: 1000 }\ncontrol: { max_connections: 32 }\nupstream: { timeout_ms: 200, deadline_ms: 400 }\n"
             + "detector: { quarantine: true }\nentry_unused_after: 3600\npublic_suffix_list: /nonexistent/public_suffix_list.dat\n")
            .write(toFile: config, atomically: true, encoding: .utf8)
        try (Self.allow + "\nnew.example.com  # added\n").write(toFile: g.allowFile, atomically: true, encoding: .utf8)
        let r = try g.cli(["reload"])
        XCTAssertEqual(r.status, 0, "the policy part applied: \(r.stderr)")
        XCTAssertTrue(r.stdout.contains("policy reloaded: 4 entries"), r.stdout)
        XCTAssertTrue(r.stderr.contains("warning: upstreams changed; restart dnsgate to apply"), r.stderr)
        XCTAssertTrue(r.stderr.contains("warning: threads changed; restart dnsgate to apply"), r.stderr)
        for key in ["max_udp_payload", "tcp", "control.max_connections", "upstream", "detector", "entry_unused_after", "public_suffix_list"] {
            XCTAssertTrue(r.stderr.contains("warning: \(key) changed; restart dnsgate to apply"), "\(key): \(r.stderr)")
        }
        XCTAssertEqual(try dig(g.port, ["www.allowed.test"]).status, "NOERROR", "the old upstream still answers, as warned")
    }
}
