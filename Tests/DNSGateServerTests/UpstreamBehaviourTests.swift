import DNSGateCore
@testable import DNSGateServer
import NIOCore
import Logging
import Foundation
import XCTest

/// How dnsgate treats its upstreams and its own listeners under failure: failover, coalescing,
/// connection limits, a taken port. Real nsd/unbound on loopback; dead and silent upstreams are real
/// sockets too (a closed port answers ICMP unreachable; a bound socket that never reads is a black hole).
final class UpstreamBehaviourTests: XCTestCase {
    static let allow = "allowed.test  # apex\n*.allowed.test  # below\n"

    func testFailsOverFromDeadAndSilentUpstreamsToALiveOne() throws {
        let nsd = try NSDUpstream()
        let deadPort = freePort()                       // nothing listens: ICMP port unreachable
        let silent = BlackHoleSocket()                   // bound, never answers: a timeout
        let g = try DNSGateProcess(allow: Self.allow, upstreams: ["127.0.0.1:\(deadPort)", "127.0.0.1:\(silent.port)", nsd.address],
                                   configYAML: "upstream: { timeout_ms: 300, deadline_ms: 3000 }\ncontrol: { socket: \"@DIR@/x.sock\" }\n")
        let started = Date()
        let a = try dig(g.port, ["+time=4", "www.allowed.test"])
        XCTAssertEqual(a.status, "NOERROR", a.raw)
        XCTAssertLessThan(Date().timeIntervalSince(started), 2.5, "one timeout (300 ms) plus a fast failure, not the deadline")
        let stats = try g.cli(["stats", "--json"])
        XCTAssertTrue(stats.stdout.contains("\"timeouts\" : 1"), stats.stdout)
    }

    /// The EDE text of a failure names the upstream by its place in the list, over UDP and for TCP
    /// clients, and never by its address (QA pass 10, F16: a job could then try to reach it directly);
    /// `stats` names it as configured (SwiftNIO's own address format once leaked into it).
    func testFailureTextNamesTheUpstreamByItsPlaceNotItsAddress() throws {
        let silent = BlackHoleSocket()
        let g = try DNSGateProcess(allow: Self.allow, upstreams: ["127.0.0.1:\(silent.port)"],
                                   configYAML: "upstream: { timeout_ms: 200, deadline_ms: 1000 }\ncontrol: { socket: \"@DIR@/x.sock\" }\n")
        for transport in ["+notcp", "+tcp"] {
            let a = try dig(g.port, ["+time=4", transport, "www.allowed.test"])
            XCTAssertEqual(a.status, "SERVFAIL", a.raw)
            XCTAssertEqual(a.edeCode, 22, a.raw)
            XCTAssertTrue(a.edeText?.contains("answered (upstream 1 timed out)") ?? false, "\(transport): \(a.raw)")
            XCTAssertFalse(a.raw.contains("\(silent.port)"), "\(transport): \(a.raw)")
        }
        // An upstream that did reply, with replies that failed the checks, is said to have done so.
        let garbled = ScriptedUpstream { _, _, _ in .init(flags: 0x9180, answers: [ScriptedUpstream.addressRecord(1)]) }   // OPCODE 2
        let h = try DNSGateProcess(allow: Self.allow, upstreams: [garbled.address],
                                   configYAML: "upstream: { timeout_ms: 200, deadline_ms: 1000 }\ncontrol: { socket: \"@DIR@/y.sock\" }\n")
        for transport in ["+notcp", "+tcp"] {
            let a = try dig(h.port, ["+time=4", transport, "\(transport.dropFirst()).allowed.test"])
            XCTAssertEqual(a.status, "SERVFAIL", a.raw)
            XCTAssertTrue(a.edeText?.contains("upstream 1 sent a reply that failed the checks (OPCODE 2 in reply to a QUERY)") ?? false,
                          "\(transport): \(a.raw)")
        }
        // The query log says why too (QA pass 13, F5).
        let logged = waitFor { g.queryLogLines.contains { $0.contains("\"action\":\"servfail\"") && $0.contains("\"problem\":\"upstream 1 timed out\"") } }
        XCTAssertTrue(logged, g.queryLogLines.joined(separator: "\n"))
        let stats = try g.cli(["stats"])
        XCTAssertTrue(stats.stdout.contains("127.0.0.1:\(silent.port)"), stats.stdout)
    }

    /// A failure's text for clients names each upstream by its place in the list and holds no
    /// address anywhere: not the upstream's, in either spelling, and not one inside an error's own
    /// text (SwiftNIO's connection errors list the addresses they tried; QA pass 10, F16).
    func testClientTextNamesUpstreamsByPlaceAndHoldsNoAddress() throws {
        let client = try UpstreamClient(upstreams: [HostPort(host: "127.0.0.1", port: 53), HostPort(host: "127.0.0.1", port: 530)],
                                        timeoutMs: 200, deadlineMs: 400, logger: Logger(label: "test"))
        XCTAssertEqual(client.clientText(UpstreamError.transport("127.0.0.1:530", "connection refused")), "upstream 2: connection refused")
        XCTAssertEqual(client.clientText(UpstreamError.timeout("127.0.0.1:53")), "upstream 1 timed out")
        XCTAssertEqual(client.clientText(UpstreamError.timeout("192.0.2.53:53")), "an upstream timed out", "not one of the list")
        struct PeerNamingError: Error, CustomStringConvertible { var description: String { "could not reach 127.0.0.1:53 (host: 127.0.0.1)" } }
        XCTAssertEqual(client.clientText(PeerNamingError()), "upstream failure")
        let wrapped = client.clientText(UpstreamError.transport("127.0.0.1:53", socketFailureText(PeerNamingError())))
        XCTAssertEqual(wrapped, "upstream 1: PeerNamingError")
        let refused = socketFailureText(IOError(errnoCode: ECONNREFUSED, reason: "connect"))
        XCTAssertTrue(refused.hasPrefix("connect: ") && refused.contains("(errno: \(ECONNREFUSED))"), refused)
    }

    /// The listener's own upstream exchanges accept only the genuine answer: forgeries with the right
    /// question but the wrong ID, the right ID but another question, from another address, or garbage,
    /// all sent before it, are ignored, and none of them ends the exchange.
    func testForgedUpstreamAnswersAreIgnored() throws {
        let upstream = ForgingUpstream()
        let g = try DNSGateProcess(allow: Self.allow, upstreams: ["127.0.0.1:\(upstream.port)"])
        let a = try dig(g.port, ["+time=4", "www.allowed.test"])
        XCTAssertEqual(a.status, "NOERROR", a.raw)
        XCTAssertEqual(a.answers.filter { $0.contains(" A ") }, ["www.allowed.test. 60 IN A 192.0.2.1"], a.raw)
        XCTAssertEqual(upstream.forgeriesSent, 4)
    }

    /// QA pass 5: an upstream's FORMERR (or NOTIMP, YXDOMAIN…) reached the client, who had sent a
    /// well-formed query. Any RCODE but NOERROR and NXDOMAIN now fails over, as SERVFAIL does.
    func testAnUpstreamErrorOtherThanServfailFailsOverToo() throws {
        let broken = ScriptedUpstream { _, _, _ in .init(flags: 0x8181) }      // FORMERR
        let good = ScriptedUpstream { _, _, _ in .init(flags: 0x8180, answers: [ScriptedUpstream.addressRecord(1)]) }
        let g = try DNSGateProcess(allow: Self.allow, upstreams: [broken.address, good.address])
        for i in 0..<4 {   // questions start at each upstream in turn
            let a = try dig(g.port, ["+time=4", "q\(i).allowed.test"])
            XCTAssertEqual(a.status, "NOERROR", a.raw)
            XCTAssertEqual(a.answers, ["q\(i).allowed.test. 60 IN A 192.0.2.1"], a.raw)
        }
        XCTAssertGreaterThan(broken.asked.udp, 0, "the broken upstream was asked, and passed over")
    }

    /// A reply from the upstream asked, with the ID in flight, that fails the checks is discarded and
    /// the attempt ends at its timeout; `stats` counts the reply as `rejected` for that upstream and
    /// the attempt as a failure, not a timeout, so it is not read as a network fault (QA pass 5, F10;
    /// QA pass 13, F5).
    func testMalformedRepliesFromTheUpstreamAreCountedAsRejected() throws {
        let garbled = ScriptedUpstream { _, _, _ in .init(flags: 0x8180, answers: [[0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 60, 0, 9, 1]]) }  // RDLENGTH past the end
        let g = try DNSGateProcess(allow: Self.allow, upstreams: [garbled.address],
                                   configYAML: "state_file: \"@DIR@/state.json\"\nupstream:\n  timeout_ms: 300\n  deadline_ms: 600\n")
        XCTAssertEqual(try dig(g.port, ["+time=3", "www.allowed.test"]).status, "SERVFAIL")
        let n = try upstreamCounts(g, garbled.address)
        XCTAssertTrue(n.count == 5 && n[0] == 0 && n[1] == 0 && n[2] >= 1 && n[3] == n[2], "each failed attempt had a rejected reply: \(n)")
    }

    /// `stats`'s numbers for one upstream: answered, timeouts, failures, rejected, last round trip.
    private func upstreamCounts(_ g: DNSGateProcess, _ address: String, file: StaticString = #filePath, line: UInt = #line) throws -> [Int] {
        let stats = try g.cli(["stats"]).stdout
        let row = stats.split(separator: "\n").first { $0.contains("\(address): ") } ?? ""
        let n = row.split(separator: " ").compactMap { Int($0) }
        XCTAssertEqual(n.count, 5, stats, file: file, line: line)
        return n
    }

    /// A truncated UDP answer is asked again over TCP at once: one UDP and one TCP query (QA pass 5:
    /// the event loop asked over UDP again first, three queries a miss). An answer truncated over
    /// TCP as well is no answer: SERVFAIL, where a partial answer was passed on as whole.
    func testATruncatedAnswerIsAskedOverTCPOnceAndTruncatedOverTCPIsAFailure() throws {
        let upstream = ScriptedUpstream { _, question, overTCP in
            let firstLabel = String(decoding: question[1..<(1 + Int(question[0]))], as: UTF8.self)
            guard overTCP else { return .init(flags: 0x8380) }                   // TC
            return .init(flags: firstLabel == "cut" ? 0x8380 : 0x8180, answers: [ScriptedUpstream.addressRecord(1)], half: firstLabel == "half")
        }
        let g = try DNSGateProcess(allow: Self.allow, upstreams: [upstream.address])
        let a = try dig(g.port, ["+time=4", "big.allowed.test"])
        XCTAssertEqual(a.answers, ["big.allowed.test. 60 IN A 192.0.2.1"], a.raw)
        XCTAssertEqual(upstream.asked.udp, 1)
        XCTAssertEqual(upstream.asked.tcp, 1)
        let cut = try dig(g.port, ["+time=6", "cut.allowed.test"])
        XCTAssertEqual(cut.status, "SERVFAIL", cut.raw)
        XCTAssertTrue(cut.edeText?.contains("truncated over TCP") == true, cut.raw)
        // A connection closed mid-frame is said in words, not as SwiftNIO's type name (QA pass 13, F5).
        let half = try dig(g.port, ["+time=6", "half.allowed.test"])
        XCTAssertEqual(half.status, "SERVFAIL", half.raw)
        XCTAssertTrue(half.edeText?.contains("upstream 1: connection closed in the middle of a message") == true, half.raw)
    }

    /// A question no upstream could answer is answered SERVFAIL from memory for 5 s (RFC 9520 §3.2):
    /// twenty CI jobs retrying it sent forty upstream queries (QA pass 13, F3). Then it is asked again.
    func testAFailureIsRememberedForAFewSeconds() throws {
        let upstream = ScriptedUpstream { _, question, _ in
            question.starts(with: [4] + Array("fine".utf8)) ? .init(flags: 0x8180, answers: [ScriptedUpstream.addressRecord(3)]) : .init(flags: 0x8182)
        }
        let g = try DNSGateProcess(allow: Self.allow, upstreams: [upstream.address])
        let first = try dig(g.port, ["+time=4", "+tries=1", "down.allowed.test"])
        XCTAssertEqual(first.status, "SERVFAIL", first.raw)
        let asked = upstream.asked.udp
        XCTAssertEqual(asked, 2, "one upstream, two passes")
        for transport in ["+notcp", "+tcp", "+notcp"] {
            let again = try dig(g.port, ["+time=4", "+tries=1", transport, "down.allowed.test"])
            XCTAssertEqual(again.status, "SERVFAIL", again.raw)
            XCTAssertTrue(again.edeText?.contains("no upstream answered (upstream 1 answered SERVFAIL) moments ago") == true, again.raw)
        }
        XCTAssertEqual(upstream.asked.udp + upstream.asked.tcp, asked, "answered from memory")
        XCTAssertEqual(try dig(g.port, ["+time=4", "fine.allowed.test"]).answers, ["fine.allowed.test. 60 IN A 192.0.2.3"], "other names are asked")
        Thread.sleep(forTimeInterval: 5.2)
        XCTAssertEqual(try dig(g.port, ["+time=4", "+tries=1", "down.allowed.test"]).status, "SERVFAIL")
        XCTAssertEqual(upstream.asked.udp, asked + 1 + 2, "asked again once the 5 s are over")
    }

    /// An upstream that does not know EDNS answers FORMERR (or NOTIMP), without OPT, to a query with
    /// one, with or without the question: dnsgate asks it again without OPT at once, and keeps doing
    /// so (RFC 6891 §7), from a UDP client's exchange and a TCP client's. Before, every name got
    /// SERVFAIL, after the timeout when the FORMERR came without its question (QA pass 13, F1).
    func testAnUpstreamWithoutEDNSIsAskedWithoutOPT() throws {
        for (rcode, noQuestion) in [(UInt16(1), false), (1, true), (4, false)] {
            let withOPT = Counter()
            let upstream = ScriptedUpstream(ednsAware: { _, _, _, hasOPT in
                guard hasOPT else { return .init(flags: 0x8180, answers: [ScriptedUpstream.addressRecord(7)]) }
                withOPT.add()
                return .init(flags: 0x8100 | rcode, noQuestion: noQuestion)
            })
            let g = try DNSGateProcess(allow: Self.allow, upstreams: [upstream.address],
                                       configYAML: "state_file: \"@DIR@/state.json\"\nupstream:\n  timeout_ms: 4000\n  deadline_ms: 8000\n")
            let start = Date()
            for (name, transport) in [("one.allowed.test", []), ("two.allowed.test", ["+tcp"]), ("three.allowed.test", [])] {
                let a = try dig(g.port, transport + ["+time=6", "+tries=1", name])
                XCTAssertEqual(a.answers, ["\(name). 60 IN A 192.0.2.7"], "RCODE \(rcode), question \(!noQuestion): \(a.raw)")
            }
            XCTAssertLessThan(Date().timeIntervalSince(start), 3, "no timeout waited out")
            XCTAssertEqual(withOPT.value, 1, "once refused, asked without OPT")
        }
    }

    /// The fallback is kept for upstreams that need it (QA pass 14, F3): one that answers with an OPT
    /// of its own, or whose reply without OPT fails too, keeps getting OPT, and so DO; and an answer
    /// got without OPT (so without DO) is not cached under a DO client's question.
    func testEDNSStaysOnForUpstreamsThatKnowIt() throws {
        // Knows EDNS, and answers one name FORMERR without OPT (a bug about that name, not EDNS).
        let sent = Counter(), withOPT = Counter()
        let knows = ScriptedUpstream(ednsAware: { _, question, _, hasOPT in
            sent.add(); if hasOPT { withOPT.add() }
            if question.starts(with: [3] + Array("odd".utf8)) { return .init(flags: 0x8181) }
            return .init(flags: 0x8180, answers: [ScriptedUpstream.addressRecord(8)], opt: hasOPT)
        })
        let g = try DNSGateProcess(allow: Self.allow, upstreams: [knows.address])
        XCTAssertEqual(try dig(g.port, ["+time=4", "first.allowed.test"]).answers, ["first.allowed.test. 60 IN A 192.0.2.8"])
        XCTAssertEqual(try dig(g.port, ["+time=4", "+tries=1", "odd.allowed.test"]).status, "SERVFAIL")
        XCTAssertEqual(try dig(g.port, ["+time=4", "after.allowed.test"]).answers, ["after.allowed.test. 60 IN A 192.0.2.8"])
        XCTAssertEqual(withOPT.value, sent.value, "every query carried OPT: \(withOPT.value) of \(sent.value)")

        // FORMERR to everything, OPT or not: the retry without OPT fails too, so OPT stays.
        let broken = Counter(), brokenWithOPT = Counter()
        let formerr = ScriptedUpstream(ednsAware: { _, _, _, hasOPT in
            broken.add(); if hasOPT { brokenWithOPT.add() }
            return .init(flags: 0x8181)
        })
        let h = try DNSGateProcess(allow: Self.allow, upstreams: [formerr.address])
        for name in ["a.allowed.test", "b.allowed.test"] { XCTAssertEqual(try dig(h.port, ["+time=4", "+tries=1", name]).status, "SERVFAIL") }
        XCTAssertEqual(brokenWithOPT.value, 4, "each question's two passes began with OPT: \(brokenWithOPT.value) of \(broken.value)")

        // Without EDNS, a DO client's answer comes without signatures: answered, not cached for DO.
        let asked = Counter()
        let old = ScriptedUpstream(ednsAware: { _, _, _, hasOPT in
            asked.add()
            return hasOPT ? .init(flags: 0x8101) : .init(flags: 0x8180, answers: [ScriptedUpstream.addressRecord(9)])
        })
        let k = try DNSGateProcess(allow: Self.allow, upstreams: [old.address])
        for _ in 0..<2 { XCTAssertEqual(try dig(k.port, ["+time=4", "+dnssec", "do.allowed.test"]).answers.first, "do.allowed.test. 60 IN A 192.0.2.9") }
        XCTAssertEqual(asked.value, 3, "the DO answer asked again (one refused query, two without OPT)")
        for _ in 0..<2 { XCTAssertEqual(try dig(k.port, ["+time=4", "plain.allowed.test"]).answers.first, "plain.allowed.test. 60 IN A 192.0.2.9") }
        XCTAssertEqual(asked.value, 4, "a client without DO gets the cached answer")
    }

    /// An upstream that sends more over UDP than dnsgate advertised (300 addresses, 4.8 KB, where
    /// 1,232 octets were offered) has its datagram cut by the read; that is taken as TC and asked again
    /// over TCP at once, from a UDP client's exchange and a TCP client's. Before, the cut reply was
    /// refused and the client got SERVFAIL after the timeout (QA pass 13, F4).
    func testADatagramLongerThanTheReadIsAskedAgainOverTCP() throws {
        let records = (0..<300).map { i in [0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 51, UInt8(100 + i / 256), UInt8(i % 256)] as [UInt8] }
        let upstream = ScriptedUpstream { _, _, _ in .init(flags: 0x8180, answers: records) }
        let g = try DNSGateProcess(allow: Self.allow, upstreams: [upstream.address],
                                   configYAML: "state_file: \"@DIR@/state.json\"\nupstream:\n  timeout_ms: 5000\n  deadline_ms: 10000\n")
        let start = Date()
        let udp = try dig(g.port, ["+time=8", "+tries=1", "+ignore", "udp.allowed.test"])
        XCTAssertEqual(udp.status, "NOERROR", udp.raw)
        XCTAssertTrue(udp.flags.contains("tc"), "too long for the client's UDP: TC, from the whole answer: \(udp.raw)")
        let tcp = try dig(g.port, ["+time=8", "+tries=1", "+tcp", "tcp.allowed.test"])
        XCTAssertEqual(tcp.answers.count, 300, tcp.raw.prefix(400).description)
        XCTAssertLessThan(Date().timeIntervalSince(start), 4, "no timeout waited out")
        XCTAssertEqual(upstream.asked.tcp, 2, "each asked again over TCP")
    }

    /// An answer of 65,535 octets from upstream reaches a TCP client that sent EDNS whole, without
    /// dnsgate's OPT, for which there is no room: before, the client got an empty TC reply, which
    /// over TCP it has nowhere to retry (QA pass 12, F5). From the cache too.
    func testAnAnswerFillingATCPMessageReachesAnEDNSClientWithoutOurOPT() throws {
        // 12 header + 22 question ("big.allowed.test" TXT) + 244 TXT records of 268 + one of 109 = 65,535.
        @Sendable func txt(_ text: Int) -> [UInt8] {
            [0xC0, 0x0C, 0, 16, 0, 1, 0, 0, 0, 60, UInt8((text + 1) >> 8), UInt8((text + 1) & 0xFF), UInt8(text)]
                + [UInt8](repeating: 0x61, count: text)
        }
        let records = Array(repeating: txt(255), count: 244) + [txt(96)]
        XCTAssertEqual(12 + 22 + records.map(\.count).reduce(0, +), 65535)
        let upstream = ScriptedUpstream { _, question, overTCP in
            guard question.starts(with: [3] + Array("big".utf8)) else { return .init(flags: 0x8180, answers: [txt(5)]) }
            return overTCP ? .init(flags: 0x8180, answers: records) : .init(flags: 0x8380)
        }
        let g = try DNSGateProcess(allow: "*.allowed.test TXT\n", upstreams: [upstream.address])
        for round in ["upstream", "cache"] {
            let a = try dig(g.port, ["+time=6", "+tries=1", "+tcp", "+edns=0", "big.allowed.test", "TXT"])
            XCTAssertEqual(a.status, "NOERROR", "\(round): \(a.raw.prefix(600))")
            XCTAssertEqual(a.answers.count, 245, "\(round): \(a.raw.prefix(600))")
            XCTAssertFalse(a.raw.contains("flags: qr tc"), "\(round): \(a.raw.prefix(600))")
        }
        XCTAssertEqual(upstream.asked.tcp, 1, "the second from the cache")
        let small = try dig(g.port, ["+time=6", "+tries=1", "+tcp", "+edns=0", "other.allowed.test", "TXT"])
        XCTAssertTrue(small.raw.contains("OPT PSEUDOSECTION"), "an answer with room keeps its OPT: \(small.raw.prefix(600))")
    }

    /// Over TCP, a reply with another ID on the connection that carries the one query means no answer will come on it: the next upstream is asked at once, a failure,
    /// not a timeout, for the first (it waited the whole timeout with the connection held open).
    func testAWrongTCPReplyFailsOverAtOnceInsteadOfTimingOut() throws {
        let wrong = ScriptedUpstream { id, _, overTCP in
            overTCP ? .init(flags: 0x8180, answers: [ScriptedUpstream.addressRecord(9)], id: id &+ 1, holdOpen: true) : .init(flags: 0x8380)
        }
        let good = ScriptedUpstream { _, _, overTCP in
            overTCP ? .init(flags: 0x8180, answers: [ScriptedUpstream.addressRecord(1)]) : .init(flags: 0x8380)
        }
        let g = try DNSGateProcess(allow: Self.allow, upstreams: [wrong.address, good.address],
                                   configYAML: "state_file: \"@DIR@/state.json\"\nupstream:\n  timeout_ms: 8000\n  deadline_ms: 16000\n")
        let a = try dig(g.port, ["+time=6", "+tries=1", "id.allowed.test"])
        XCTAssertEqual(a.answers, ["id.allowed.test. 60 IN A 192.0.2.1"], a.raw)
        XCTAssertEqual(wrong.asked.tcp, 1, "the first upstream was asked over TCP")
        XCTAssertEqual(good.asked.tcp, 1)
        let n = try upstreamCounts(g, wrong.address)
        XCTAssertTrue(n.count == 5 && n[1] == 0 && n[2] == 1, "a failure, no timeout: \(n)")
        let json = try JSONSerialization.jsonObject(with: Data(try g.cli(["stats", "--json"]).stdout.utf8)) as? [String: Any]
        XCTAssertEqual(json?["unwanted_replies"] as? Int, 1, "the frame with another ID")
    }

    /// An upstream on IPv6 answers UDP clients' misses (asked from the listener's own sockets) and
    /// TCP clients' (asked through the event loops' pool, whose sockets were bound to 0.0.0.0 only:
    /// every TCP client's miss to an IPv6 upstream timed out, SERVFAIL).
    func testAnIPv6UpstreamAnswersUDPAndTCPClientsMisses() throws {
        try requireTool("unbound")
        let inet6 = (try? String(contentsOfFile: "/proc/net/if_inet6", encoding: .utf8)) ?? ""
        guard inet6.split(separator: "\n").contains(where: { $0.hasSuffix(" lo") }) else { throw XCTSkip("no IPv6 on loopback") }
        let unbound = try UnboundServer(server: """
                local-zone: "allowed.test." static
                local-data: "udp.allowed.test. 300 IN A 192.0.2.66"
                local-data: "tcp.allowed.test. 300 IN A 192.0.2.67"
            """, ipv6: true)
        defer { unbound.stop() }

        let g = try DNSGateProcess(allow: Self.allow, upstreams: ["[::1]:\(unbound.port)"])
        let udp = try dig(g.port, ["udp.allowed.test"])
        XCTAssertEqual(udp.answers.last, "udp.allowed.test. 300 IN A 192.0.2.66", udp.raw)
        let tcp = try dig(g.port, ["+tcp", "tcp.allowed.test"])
        XCTAssertEqual(tcp.answers.last, "tcp.allowed.test. 300 IN A 192.0.2.67", tcp.raw)
    }

    /// The upstream's AD bit reaches only a client that set AD or DO (RFC 6840 §5.8).
    func testTheADBitGoesOnlyToClientsThatAskForIt() throws {
        let upstream = ScriptedUpstream { _, _, _ in .init(flags: 0x81A0, answers: [ScriptedUpstream.addressRecord(1)]) }
        let g = try DNSGateProcess(allow: Self.allow, upstreams: [upstream.address])
        XCTAssertFalse(try dig(g.port, ["+noadflag", "www.allowed.test"]).flags.split(separator: " ").contains("ad"))
        XCTAssertTrue(try dig(g.port, ["+adflag", "www.allowed.test"]).flags.split(separator: " ").contains("ad"))
        XCTAssertTrue(try dig(g.port, ["+noadflag", "+dnssec", "dnssec.allowed.test"]).flags.split(separator: " ").contains("ad"))
    }

    func testIdenticalQuestionsInFlightShareOneUpstreamExchange() throws {
        let nsd = try NSDUpstream()
        let unbound = try LoggingUpstream(nsdPort: nsd.port)
        let g = try DNSGateProcess(allow: Self.allow, upstreams: [unbound.address])
        // 40 identical questions in one burst, from one socket, before the first answer can come back.
        let q = (0..<40).map { RawQuery.make(id: UInt16($0), name: "same.cdn.allowed.test") }
        let replies = UDPClient.burst(port: g.port, q, batch: 40)
        XCTAssertEqual(replies, 40)
        let upstreamSaw = unbound.loggedQueries().filter { $0.name == "same.cdn.allowed.test." }.count
        XCTAssertEqual(upstreamSaw, 1, "coalesced in flight or answered from cache: the upstream is asked once")
    }

    /// The ports a forger must guess: an unloaded server picks one of its four sockets per query; under
    /// load it keeps one while its exchanges are in flight (for up to 64 queries), so their answers come
    /// back on one socket and `poll` watches two, not five.
    func testQueriesSpreadOverSocketsWhenIdleAndShareOneUnderLoad() throws {
        let idle = PortRecordingUpstream(expecting: 40)
        let g = try DNSGateProcess(allow: Self.allow, upstreams: ["127.0.0.1:\(idle.port)"])
        for i in 0..<40 {
            let reply = try UDPClient.exchange(port: g.port, RawQuery.make(id: UInt16(i), name: "idle\(i).allowed.test"))
            XCTAssertEqual(reply.map { $0[3] & 0x0F }, 0, "NOERROR for idle\(i)")
        }
        let idlePorts = idle.sourcePorts
        XCTAssertEqual(idlePorts.count, 40)
        // Drawn at random from four: fewer than three distinct in 40 draws has odds below 1e-10.
        XCTAssertGreaterThanOrEqual(Set(idlePorts).count, 3, "one query at a time: a socket drawn for each, \(idlePorts)")

        // 48 misses the upstream answers only once all have come: all are in flight together.
        let busy = PortRecordingUpstream(answerAfter: 48, expecting: 48)
        let h = try DNSGateProcess(allow: Self.allow, upstreams: ["127.0.0.1:\(busy.port)"])
        let burst = (0..<48).map { RawQuery.make(id: UInt16($0), name: "busy\($0).allowed.test") }
        XCTAssertEqual(UDPClient.burst(port: h.port, burst, batch: 48), 48)
        let busyPorts = busy.sourcePorts
        XCTAssertEqual(busyPorts.count, 48)
        XCTAssertEqual(Set(busyPorts).count, 1, "exchanges in flight: their socket is kept, \(busyPorts)")
    }

    func testIdleTCPConnectionsAreClosedAndTheLimitIsEnforced() throws {
        let nsd = try NSDUpstream()
        let g = try DNSGateProcess(allow: Self.allow, upstreams: [nsd.address],
                                   configYAML: "tcp: { idle_timeout_ms: 300, max_connections: 2 }\ncontrol: { socket: \"@DIR@/x.sock\" }\n")
        let a = try TCPConnection(port: g.port), b = try TCPConnection(port: g.port)
        usleep(100_000)
        let c = try TCPConnection(port: g.port)
        XCTAssertTrue(c.waitClosed(timeout: 1), "third connection over the limit of 2 is closed at once")
        XCTAssertTrue(a.waitClosed(timeout: 2) && b.waitClosed(timeout: 2), "idle connections closed after 300 ms")
        XCTAssertEqual(try dig(g.port, ["+tcp", "www.allowed.test"]).status, "NOERROR", "slots free again")
        // A 255-octet query announced, then a byte of it every 100 ms: the idle timeout counts queries,
        // not bytes.
        let slow = try TCPConnection(port: g.port)
        let started = Date()
        var closed = false
        slow.send([0, 255])
        for _ in 0..<20 where !closed {   // 2 s at most
            slow.send([0x41])
            closed = slow.waitClosed(timeout: 0.1)
        }
        XCTAssertTrue(closed, "a trickling client is closed like an idle one")
        XCTAssertLessThan(Date().timeIntervalSince(started), 1.0)
    }

    func testATakenPortIsReportedWithTheAddressAndTheLikelyCulprit() throws {
        let nsd = try NSDUpstream()
        // nsd holds its port on UDP and TCP: point dnsgate's listener at it.
        let r = try runCommand(TestPaths.dnsgateBinary, ["serve", "--no-config", "--listen", nsd.address, "--upstream", "127.0.0.1:9",
                                                        "--control", TestPaths.tempDir("taken").path + "/c.sock"], timeout: 10)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("cannot listen on \(nsd.address) (udp)"), r.stderr)
        XCTAssertTrue(r.stderr.contains("Another DNS server already uses this address"), r.stderr)
        XCTAssertTrue(r.stderr.contains("bind: Address already in use (errno: 98)"), "the system's words, no stray ')': \(r.stderr)")
    }

    /// On a kernel without IPv6 (booted with ipv6.disable=1; here a preloaded shim, Tests/Fixtures/noipv6,
    /// refuses IPv6 sockets as such a kernel does) an IPv6 listen address is skipped with a warning naming
    /// it and the others serve, so the default list and the container's `[::]:53` beside `0.0.0.0:53`
    /// start there. With nothing but IPv6 addresses there is nothing to serve, and the start fails.
    func testIPv6ListenAddressesAreSkippedOnAKernelWithoutIPv6() throws {
        let nsd = try NSDUpstream()
        let dir = TestPaths.tempDir("noipv6")
        defer { try? FileManager.default.removeItem(at: dir) }
        let shim = try buildPreloadShim("noipv6", in: dir)
        let port = freePort(), metricsPort = freePort()
        // The metrics listener and an IPv6 upstream too (QA pass 4): skipped and warned about, as the
        // DNS listeners are, where the metrics listener once failed the whole start.
        let g = try DNSGateProcess(allow: Self.allow, upstreams: ["[::1]:\(freePort())", nsd.address],
                                   extraArgs: ["--listen", "[::1]:\(port)", "--listen", "[::]:\(port)"],
                                   configYAML: "metrics: { listen: \"[::1]:\(metricsPort)\" }\nstate_file: \"@DIR@/state.json\"\n",
                                   listenPort: port, environment: ["LD_PRELOAD": shim])
        for skipped in ["[::1]:\(port)", "[::]:\(port)", "[::1]:\(metricsPort)"] {
            XCTAssertTrue(g.log.split(separator: "\n").contains { $0.contains("this kernel has no IPv6") && $0.contains(skipped) }, g.log)
        }
        XCTAssertTrue(g.log.split(separator: "\n").contains { $0.contains("this upstream cannot be asked") && $0.contains("[::1]:") }, g.log)
        XCTAssertTrue(g.log.contains("udp://127.0.0.1:\(port)") && !g.log.contains("udp://[::"), g.log)
        XCTAssertEqual(try dig(g.port, ["www.allowed.test"]).status, "NOERROR")

        let onlyV6 = try runCommand("/usr/bin/env", ["LD_PRELOAD=\(shim)", TestPaths.dnsgateBinary, "serve", "--no-config", "--listen", "[::1]:\(port)",
                                                    "--upstream", nsd.address, "--control", dir.path + "/c.sock"], timeout: 10)
        XCTAssertNotEqual(onlyV6.status, 0)
        XCTAssertTrue(onlyV6.stderr.contains("no listen address can be served"), onlyV6.stderr)
    }

    /// A stranger's UDP socket on the address, even one that allows sharing, is a taken port: with
    /// SO_REUSEPORT (or SO_REUSEADDR) on both sides the kernel would split the queries between them.
    func testAUDPSocketThatAllowsSharingStillCountsAsTaken() throws {
        for option in [SO_REUSEPORT, SO_REUSEADDR] {
            let port = freePort()
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            defer { close(fd) }
            var one: CInt = 1
            setsockopt(fd, SOL_SOCKET, option, &one, socklen_t(MemoryLayout<CInt>.size))
            XCTAssertEqual(bindIPv4(fd, host: "127.0.0.1", port: port), 0)
            let r = try runCommand(TestPaths.dnsgateBinary, ["serve", "--no-config", "--listen", "127.0.0.1:\(port)", "--upstream", "127.0.0.1:9",
                                                            "--control", TestPaths.tempDir("shared").path + "/c.sock"], timeout: 10)
            XCTAssertNotEqual(r.status, 0, "option \(option): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("cannot listen on 127.0.0.1:\(port) (udp)"), r.stderr)
        }
    }

    func testResolvConfNameserversAreUsedMinusOurOwnAddress() throws {
        let dir = TestPaths.tempDir("resolv")
        let path = dir.appendingPathComponent("resolv.conf").path
        try "# comment\nnameserver 127.0.0.1\nnameserver 192.0.2.53\nnameserver fe80::1%eth0\nsearch example.com\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        let ups = ResolvConf.nameservers(path: path, excluding: [HostPort(host: "127.0.0.1", port: 53)])
        XCTAssertEqual(ups.map(\.description), ["192.0.2.53:53", "[fe80::1]:53"])
    }

    /// QA pass 4, F2: a wildcard listener on port 53 made every nameserver look like dnsgate itself,
    /// another host's included, and the start failed. Only this host's addresses of the wildcard's
    /// family are ours (here 192.0.2.10 stands for an interface address).
    func testAWildcardListenerSkipsOnlyThisHostsAddresses() throws {
        let dir = TestPaths.tempDir("resolv")
        let path = dir.appendingPathComponent("resolv.conf").path
        try "nameserver 127.0.0.1\nnameserver 192.0.2.10\nnameserver 192.0.2.53\nnameserver ::1\nnameserver 2001:db8::53\nnameserver ::ffff:127.0.0.53\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        let local: Set<[UInt8]> = [[192, 0, 2, 10]]
        func kept(_ listen: [String]) -> [String] {
            ResolvConf.nameservers(path: path, excluding: listen.map { HostPort(parsing: $0)! }, localAddresses: local).map(\.description)
        }
        XCTAssertEqual(kept(["0.0.0.0:53"]), ["192.0.2.53:53", "[::1]:53", "[2001:db8::53]:53"])
        XCTAssertEqual(kept(["[::]:53"]), ["127.0.0.1:53", "192.0.2.10:53", "192.0.2.53:53", "[2001:db8::53]:53", "[::ffff:127.0.0.53]:53"])
        XCTAssertEqual(kept(["0.0.0.0:53", "[::]:53"]), ["192.0.2.53:53", "[2001:db8::53]:53"])
        XCTAssertEqual(kept(["0.0.0.0:5300"]).count, 6, "another port: nothing is ours")
        XCTAssertTrue(ResolvConf.localAddresses().contains([127, 0, 0, 1]), "getifaddrs sees loopback")
    }

    /// An upstream that is one of this host's own addresses, on the port of a wildcard listener, is
    /// dnsgate itself: refused as loopback is. In a namespace of the test's own, whose one other
    /// address is 192.0.2.77 (one end of a veth pair inside it: `validate` sends nothing).
    func testAnUpstreamOnThisHostsAddressUnderAWildcardListenerIsRefused() throws {
        try RunnerTopology.requireNetns()
        let ns = "dgself\(getpid())"
        func ip(_ args: [String]) throws { XCTAssertEqual(try runCommand("/usr/sbin/ip", args).status, 0, "ip \(args)") }
        try ip(["netns", "add", ns])
        defer { _ = try? runCommand("/usr/sbin/ip", ["netns", "del", ns]) }
        try ip(["-n", ns, "link", "add", "d0", "type", "veth", "peer", "name", "d1"])
        try ip(["-n", ns, "addr", "add", "192.0.2.77/24", "dev", "d0"])
        try ip(["-n", ns, "link", "set", "d0", "up"])
        func validate(_ listen: String, _ upstream: String) throws -> CommandResult {
            try runCommand("/usr/sbin/ip", ["netns", "exec", ns, TestPaths.dnsgateBinary, "validate", "--no-config",
                                            "--listen", listen, "--upstream", upstream], timeout: 20)
        }
        let loop = try validate("0.0.0.0:5353", "192.0.2.77:5353")
        XCTAssertEqual(loop.status, 1, loop.stdout + loop.stderr)
        XCTAssertTrue(loop.stderr.contains("upstream 192.0.2.77:5353 is dnsgate's own listen address 0.0.0.0:5353"), loop.stderr)
        for (listen, upstream) in [("0.0.0.0:5353", "192.0.2.78:5353"), ("0.0.0.0:5353", "192.0.2.77:53"), ("127.0.0.1:5353", "192.0.2.77:5353")] {
            let ok = try validate(listen, upstream)
            XCTAssertEqual(ok.status, 0, "\(listen) \(upstream): \(ok.stdout)\(ok.stderr)")
        }
    }
}

/// An upstream that answers the first query it gets with four forgeries (from 127.0.0.9, with the
/// wrong ID, for another name, and garbage), then the genuine answer, 192.0.2.1.
final class ForgingUpstream {
    let port: Int
    private let fd: Int32
    private let forger: Int32
    private let done = DispatchSemaphore(value: 0)
    private(set) var forgeriesSent = 0

    init() {
        port = freePort()
        fd = boundUDPSocket(host: "127.0.0.1", port: port)
        forger = boundUDPSocket(host: "127.0.0.9", port: 0)
        var wait = timeval(tv_sec: 10, tv_usec: 0)   // bounded: the test never hangs on it
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        let t = Thread { [self] in serveOnce(); done.signal() }
        t.start()
    }
    deinit { done.wait(); close(fd); close(forger) }

    private func serveOnce() {
        guard let (buf, source, fromLen) = receiveDatagram(fd) else { return }
        var from = source
        let (id, question) = idAndQuestion(buf, buf.count)
        let otherName = try! DNSName("evil.allowed.test").wire + [0, 1, 0, 1]
        func send(_ bytes: [UInt8], on socket: Int32) { sendDatagram(bytes, on: socket, to: &from, length: fromLen) }
        send(oneAddressAnswer(id: id, question: question, address: [192, 0, 2, 66]), on: forger)          // another source
        send(oneAddressAnswer(id: id ^ 0x5A5A, question: question, address: [192, 0, 2, 66]), on: fd)      // wrong ID
        send(oneAddressAnswer(id: id, question: otherName, address: [192, 0, 2, 66]), on: fd)              // another question
        send([buf[0], buf[1], 0x81], on: fd)                                                      // garbage
        forgeriesSent = 4
        usleep(50_000)
        send(oneAddressAnswer(id: id, question: question, address: [192, 0, 2, 1]), on: fd)
    }
}

/// An upstream that notes the source port of each query and answers it with 192.0.2.1; with
/// `answerAfter` n, it holds every answer until n queries have come (or 5 s have passed), so those
/// are all in flight at once. It stops after `expecting` queries, or 5 s without one.
final class PortRecordingUpstream: @unchecked Sendable {   // `ports` is guarded by `lock`
    let port: Int
    private let fd: Int32
    private let done = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var ports: [UInt16] = []
    var sourcePorts: [UInt16] { lock.withLock { ports } }

    init(answerAfter hold: Int = 1, expecting total: Int) {
        port = freePort()
        fd = boundUDPSocket(host: "127.0.0.1", port: port)
        var wait = timeval(tv_sec: 5, tv_usec: 0)   // bounded: the test never hangs on it
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        let t = Thread { [self] in serve(hold: hold, total: total); done.signal() }
        t.start()
    }
    deinit { done.wait(); close(fd) }

    private func serve(hold: Int, total: Int) {
        var held: [(reply: [UInt8], to: sockaddr_storage, length: socklen_t)] = []
        func flush() { for var h in held { sendDatagram(h.reply, on: fd, to: &h.to, length: h.length) }; held.removeAll() }
        for _ in 0..<total {
            guard let (buf, source, fromLen) = receiveDatagram(fd) else { break }
            var from = source
            let sourcePort = withUnsafeBytes(of: &from) { UInt16($0[2]) << 8 | UInt16($0[3]) }   // sin_port, network order
            let count = lock.withLock { ports.append(sourcePort); return ports.count }
            let (id, question) = idAndQuestion(buf, buf.count)
            held.append((oneAddressAnswer(id: id, question: question, address: [192, 0, 2, 1]), from, fromLen))
            if count >= hold { flush() }
        }
        flush()
    }
}

/// The ID and the question section (name, type, class) of a query of `n` octets in `buf`.
func idAndQuestion(_ buf: [UInt8], _ n: Int) -> (UInt16, [UInt8]) {
    var end = 12
    while end < n && buf[end] != 0 { end += Int(buf[end]) + 1 }
    return (UInt16(buf[0]) << 8 | UInt16(buf[1]), Array(buf[12..<(end + 5)]))
}

/// An answer to `question` with one A record, `address`, TTL 60.
func oneAddressAnswer(id: UInt16, question: [UInt8], address: [UInt8]) -> [UInt8] {
    [UInt8(id >> 8), UInt8(id & 0xFF), 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0] + question
        + [0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4] + address
}

/// One datagram longer than a DNS header from `socket`, with its source; nil on a timeout or a runt.
func receiveDatagram(_ socket: Int32) -> (bytes: [UInt8], from: sockaddr_storage, length: socklen_t)? {
    var buf = [UInt8](repeating: 0, count: 4096)
    var from = sockaddr_storage(), fromLen = socklen_t(MemoryLayout<sockaddr_storage>.size)
    let n = withUnsafeMutablePointer(to: &from) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(socket, &buf, buf.count, 0, $0, &fromLen) }
    }
    guard n > 12 else { return nil }
    return (Array(buf[0..<n]), from, fromLen)
}

/// Sends one datagram from `socket` to a `sockaddr_storage` as `recvfrom` filled it.
func sendDatagram(_ bytes: [UInt8], on socket: Int32, to address: inout sockaddr_storage, length: socklen_t) {
    _ = withUnsafePointer(to: &address) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(socket, bytes, bytes.count, 0, $0, length) }
    }
}

/// A UDP socket bound to `host`:`port` (0: any free port).
func boundUDPSocket(host: String, port: Int) -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    _ = bindIPv4(fd, host: host, port: port)
    return fd
}

/// bind(2) of `fd` to an IPv4 `host`:`port`; its result.
func bindIPv4(_ fd: Int32, host: String, port: Int) -> Int32 {
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr.s_addr = inet_addr(host)
    return withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
}

/// A UDP socket on a free loopback port that never reads: queries sent to it time out.
final class BlackHoleSocket {
    let port: Int
    private let fd: Int32
    init() {
        port = freePort()
        fd = boundUDPSocket(host: "127.0.0.1", port: port)
    }
    deinit { close(fd) }
}

/// A raw TCP connection that sends nothing, to watch the server close it.
final class TCPConnection {
    private let fd: Int32
    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else { throw XCTSkip("connect failed") }
    }
    func send(_ bytes: [UInt8]) { _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } }
    /// True when the peer closes (recv returns 0 or an error) within `timeout`.
    func waitClosed(timeout: Double) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, Int32(timeout * 1000)) > 0 else { return false }
        var b = [UInt8](repeating: 0, count: 16)
        return recv(fd, &b, b.count, Int32(MSG_DONTWAIT)) <= 0
    }
    deinit { close(fd) }
}

/// A count shared with an upstream's reply closure.
final class Counter: @unchecked Sendable {   // guarded by `lock`
    private let lock = NSLock()
    private var n = 0
    func add() { lock.withLock { n += 1 } }
    var value: Int { lock.withLock { n } }
}
