import DNSGateCore
import DNSGateTestSupport
import Foundation
import Logging
import XCTest
@testable import DNSGateServer

/// `log.dnstap`: every client query and reply, verbatim, to a real collector (`fstrm_capture`),
/// read back with a real decoder (`dnstap-ldns`), as operators collect BIND's and unbound's.
final class DnstapTests: XCTestCase {
    private static let allow = "*.allowed.test  # builds\n"

    private func dnstapStats(_ g: DNSGateProcess) throws -> [String: Any] {
        let stats = try g.cli(["stats", "--json"])
        let obj = try JSONSerialization.jsonObject(with: Data(stats.stdout.utf8)) as? [String: Any]
        return obj?["dnstap"] as? [String: Any] ?? [:]
    }

    /// A field's value in `dnstap-ldns -y` text.
    private func field(_ key: String, _ text: String) -> String? {
        text.split(separator: "\n").first { $0.trimmingCharacters(in: .whitespaces).hasPrefix(key + ": ") }.map(String.init)
    }

    private func sent(_ g: DNSGateProcess) -> Int { ((try? dnstapStats(g))?["sent"] as? Int) ?? -1 }

    /// The query ID dig used, from the reply's header line.
    private func queryID(_ a: DigAnswer) -> String? {
        guard let r = a.raw.range(of: ", id: ") else { return nil }
        return String(a.raw[r.upperBound...].prefix(while: \.isNumber))
    }

    /// Client messages for every query, forwarder messages only for what went upstream: the
    /// operator's own record that a denied name never left the machine.
    func testEveryQueryAndReplyReachesARealCollectorVerbatim() throws {
        let nsd = try NSDUpstream()
        let dir = TestPaths.tempDir("dnstap")
        let socket = dir.appendingPathComponent("tap.sock").path
        let collector = try DnstapCollector(socket: socket, output: dir.appendingPathComponent("tap.fstrm").path,
                                            logFile: dir.appendingPathComponent("fstrm.log"))
        let g = try DNSGateProcess(allow: Self.allow, upstreams: [nsd.address],
                                   configYAML: "log:\n  dnstap:\n    socket: \(socket)\n    identity: runner-7\n")
        XCTAssertTrue(g.waitForLog("dnstap collector connected"), g.log)

        let forwarded = try dig(g.port, ["www.allowed.test"])              // a miss, from the UDP listener
        XCTAssertEqual(forwarded.status, "NOERROR")
        let denied = try dig(g.port, ["+tcp", "www.denied.test"])
        XCTAssertEqual(denied.status, "NXDOMAIN")
        let cached = try dig(g.port, ["www.allowed.test"])
        XCTAssertEqual(cached.status, "NOERROR")
        let overTCP = try dig(g.port, ["+tcp", "short.allowed.test"])       // a miss asked by the event loop
        XCTAssertEqual(overTCP.status, "NOERROR")
        XCTAssertTrue(waitFor({ self.sent(g) == 12 }, timeout: 5), "sent \(sent(g))")
        let stats = try dnstapStats(g)
        XCTAssertEqual(stats["connected"] as? Bool, true)
        XCTAssertEqual(stats["dropped"] as? Int, 0)
        XCTAssertEqual(stats["destination"] as? String, socket)
        let text = try g.cli(["stats"]).stdout
        XCTAssertTrue(text.contains("dnstap: \(socket) connected, 12 sent, 0 dropped"), text)
        g.stop()   // ends the stream: STOP, then the collector's FINISH

        let m = try collector.stopAndRead()
        XCTAssertEqual(m.count, 12, m.map(\.text).joined(separator: "\n---\n"))
        guard m.count == 12 else { return }
        let (cq, cr, fq, fr) = ("CLIENT_QUERY", "CLIENT_RESPONSE", "FORWARDER_QUERY", "FORWARDER_RESPONSE")
        XCTAssertEqual(m.map(\.type), [cq, fq, fr, cr, cq, cr, cq, cr, cq, fq, fr, cr])
        XCTAssertEqual(m.map(\.proto), ["UDP", "UDP", "UDP", "UDP", "TCP", "TCP", "UDP", "UDP", "TCP", "UDP", "UDP", "TCP"])
        for x in m {
            XCTAssertEqual(x.identity, "runner-7")
            XCTAssertTrue(x.text.contains("version: \"dnsgate\""), x.text)
            if x.type.hasPrefix("CLIENT") {
                XCTAssertEqual(x.address, "127.0.0.1")
            } else {
                XCTAssertEqual([x.responseAddress, x.responsePort], ["127.0.0.1", "\(nsd.port)"], x.text)
            }
        }
        // Each reply went to the port its query came from, and each client message is the one on the
        // wire: dig's own query ID in both directions.
        let clients = m.filter { $0.type.hasPrefix("CLIENT") }
        for (i, answer) in [forwarded, denied, cached, overTCP].enumerated() {
            let (q, r) = (clients[2 * i], clients[2 * i + 1])
            XCTAssertEqual(q.port, r.port)
            let id = try XCTUnwrap(queryID(answer), answer.raw)
            XCTAssertEqual([q.id, r.id], [id, id], q.text + r.text)
            XCTAssertTrue(q.text.contains("query_time: ") && r.text.contains("response_time: "), q.text + r.text)
            // The reply carries its query's time too, as BIND's and unbound's do: collectors take latency from it.
            XCTAssertEqual(field("query_time", q.text), field("query_time", r.text), r.text)
        }
        XCTAssertTrue(m[0].dns.contains("www.allowed.test.\tIN\tA"), m[0].dns)
        XCTAssertTrue(m[3].dns.contains("rcode: NOERROR") && m[3].dns.contains("192.0.2.1"), m[3].dns)
        XCTAssertTrue(m[5].dns.contains("rcode: NXDOMAIN"), m[5].dns)
        // Upstream: dnsgate's own query (its own random ID) and nsd's answer as received, OPT and all.
        for (q, r, name) in [(m[1], m[2], "www.allowed.test."), (m[9], m[10], "short.allowed.test.")] {
            XCTAssertTrue(q.dns.contains(name + "\tIN\tA") && r.dns.contains(name), q.text + r.text)
            XCTAssertEqual(q.id, r.id)
            XCTAssertTrue(r.dns.contains("EDNS: version 0"), "verbatim, not the cache's copy without OPT: \(r.dns)")
        }
        XCTAssertFalse(m.contains { $0.type.hasPrefix("FORWARDER") && $0.dns.contains("denied.test") }, "the denied name never left")
    }

    /// Messages wait for a collector that is not there yet, and a collector's restart costs none
    /// sent after it: the writer finds the closed connection before it writes into it.
    func testACollectorThatStartsLateOrRestartsLosesNothing() throws {
        let nsd = try NSDUpstream()
        let dir = TestPaths.tempDir("dnstap")
        let port = freePort()
        let g = try DNSGateProcess(allow: Self.allow, upstreams: [nsd.address], extraArgs: ["--dnstap", "127.0.0.1:\(port)"])
        XCTAssertTrue(g.waitForLog("dnstap collector not reachable"), g.log)
        for i in 0..<3 { XCTAssertEqual(try dig(g.port, ["early\(i).denied.test"]).status, "NXDOMAIN", "DNS answers without a collector") }
        var stats = try dnstapStats(g)
        XCTAssertEqual(stats["connected"] as? Bool, false)
        XCTAssertEqual(stats["sent"] as? Int, 0)

        let first = try DnstapCollector(port: port, output: dir.appendingPathComponent("first.fstrm").path,
                                        logFile: dir.appendingPathComponent("first.log"))
        XCTAssertTrue(waitFor({ self.sent(g) == 6 }, timeout: 5), "the waiting messages are delivered: sent \(sent(g))")
        // What a collector has not read from its socket when it stops is lost with it (no dnstap
        // sender can know); fstrm_capture shows nothing until it closes its file, so give it time.
        usleep(500_000)
        let early = try first.stopAndRead()
        XCTAssertEqual(early.filter(\.isQuery).map { $0.dns.contains("early") }, [true, true, true], early.map(\.dns).joined())

        let second = try DnstapCollector(port: port, output: dir.appendingPathComponent("second.fstrm").path,
                                         logFile: dir.appendingPathComponent("second.log"))
        XCTAssertEqual(try dig(g.port, ["late.denied.test"]).status, "NXDOMAIN")
        XCTAssertTrue(waitFor({ self.sent(g) == 8 }, timeout: 5), "sent \(sent(g))\n\(g.log)")
        stats = try dnstapStats(g)
        XCTAssertEqual(stats["dropped"] as? Int, 0, g.log)
        XCTAssertTrue(g.log.contains("dnstap collector closed the connection"), g.log)
        let late = try second.stopAndRead()
        XCTAssertEqual(late.count, 2)
        XCTAssertTrue(late.first?.dns.contains("late.denied.test.") ?? false, late.first?.text ?? "")
    }

    /// A collector that is not one (it accepts the connection and says nothing, or says something
    /// else) gets nothing and stops nothing.
    func testAPeerThatIsNotACollectorIsRefused() throws {
        let nsd = try NSDUpstream()
        let port = freePort()
        // Listening, so connections complete, but never reading: no ACCEPT ever comes.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        XCTAssertEqual(bindIPv4(fd, host: "127.0.0.1", port: port), 0)
        XCTAssertEqual(listen(fd, 16), 0)
        let g = try DNSGateProcess(allow: Self.allow, upstreams: [nsd.address],
                                   configYAML: "log:\n  dnstap:\n    address: 127.0.0.1:\(port)\n")
        XCTAssertTrue(g.waitForLog("dnstap collector not reachable", timeout: 10), g.log)
        XCTAssertTrue(g.log.contains("no handshake from the collector"), g.log)
        XCTAssertEqual(try dig(g.port, ["www.denied.test"]).status, "NXDOMAIN")
        XCTAssertEqual(try dnstapStats(g)["connected"] as? Bool, false)
    }

    func testDnstapSettingsLoadAndBadOnesNameTheirLine() throws {
        var c = try ConfigLoader.parse(text: "log:\n  dnstap:\n    socket: run/tap.sock\n    identity: runner-7\n", file: "/etc/dnsgate/x.yaml")
        XCTAssertEqual(c.dnstap, DnstapConfig(destination: .unix("/etc/dnsgate/run/tap.sock"), identity: "runner-7"), "relative to the config file")
        c = try ConfigLoader.parse(text: "log: {dnstap: {address: \"[::1]:6000\"}}\n", file: "x.yaml")
        XCTAssertEqual(c.dnstap?.destination, .tcp(HostPort(host: "::1", port: 6000)))
        XCTAssertEqual(c.dnstap?.identity, DnstapConfig.hostName)
        XCTAssertNil(ServerConfig().dnstap, "off by default")
        let long = "/tmp/" + String(repeating: "d", count: 110)
        for (yaml, line, text) in [
            ("log:\n  dnstap:\n    socket: \(long)\n", 3, "at most 107 bytes"),
            ("log:\n  dnstap:\n    address: 127.0.0.1\n", 3, "ADDRESS:PORT"),
            ("log:\n  dnstap:\n    socket: /run/t.sock\n    address: 127.0.0.1:6000\n", 4, "not both"),
            ("log:\n  dnstap:\n    identity: x\n", 3, "needs socket"),
            ("log:\n  dnstap:\n    sokcet: /run/t.sock\n", 3, "unknown key 'sokcet'"),
            ("log:\n  dnstap:\n    socket: \"\"\n", 3, "must name a socket"),
            ("log:\n  dnstap:\n    socket: /tmp\n", 3, "is a directory"),
        ] {
            XCTAssertThrowsError(try ConfigLoader.parse(text: yaml, file: "x.yaml"), yaml) { e in
                XCTAssertTrue("\(e)".hasPrefix("x.yaml:\(line):") && "\(e)".contains(text), "\(yaml): \(e)")
            }
        }
        // Where dnstap goes is fixed at start, as the query log's file is; a reload says so.
        XCTAssertEqual(ServerConfig().restartOnlyChanges(to: c), ["log.dnstap"])
        for bad in ["127.0.0.1", long, "/tmp"] {
            let r = try runCommand(TestPaths.dnsgateBinary, ["validate", "--no-config", "--dnstap", bad])
            XCTAssertEqual(r.status, 64, r.stderr)
            XCTAssertTrue(r.stderr.contains("--dnstap"), r.stderr)
        }
    }

    // MARK: collectors that misbehave (QA pass 7)

    /// Seconds `g` takes to stop on SIGTERM.
    /// dnsgate sending dnstap to a collector that misbehaves as asked, with nsd upstream.
    private func serving(with behaviour: HostileCollector.Behaviour) throws -> (DNSGateProcess, HostileCollector, NSDUpstream) {
        let nsd = try NSDUpstream()
        let collector = HostileCollector(behaviour, path: TestPaths.tempDir("dnstap").appendingPathComponent("tap.sock").path)
        let g = try DNSGateProcess(allow: Self.allow, upstreams: [nsd.address], extraArgs: ["--dnstap", collector.path])
        return (g, collector, nsd)
    }

    private func secondsToStop(_ g: DNSGateProcess) -> Double {
        let t = Date()
        g.stop()
        return Date().timeIntervalSince(t)
    }

    /// A collector that never accepts (its backlog full) stalled the dnstap thread in `connect` for
    /// good: no more attempts, no more log, a 7-s shutdown that lost the queue without a word.
    func testACollectorThatNeverAcceptsStallsNothing() throws {
        let (g, collector, nsd) = try serving(with: .neverAccepts)
        defer { collector.stop(); nsd.stop() }
        XCTAssertTrue(g.waitForLog("the collector is not accepting connections", timeout: 10), g.log)
        XCTAssertEqual(try dig(g.port, ["+tcp", "www.denied.test"]).status, "NXDOMAIN")
        XCTAssertLessThan(secondsToStop(g), 3)
        XCTAssertTrue(g.log.contains("stopping without a dnstap collector; 2 messages lost"), g.log)
    }

    /// A collector trickling its handshake a byte at a time kept every read under its 2-s timeout
    /// and the thread waiting for minutes, silently. The handshake has one deadline now.
    func testAHandshakeTrickledAByteAtATimeTimesOut() throws {
        let (g, collector, nsd) = try serving(with: .tricklesItsHandshake)
        defer { collector.stop(); nsd.stop() }
        XCTAssertTrue(g.waitForLog("no handshake from the collector within 2 s", timeout: 6), g.log)
        XCTAssertLessThan(secondsToStop(g), 3)
    }

    /// A collector that closes every connection after its handshake is said once, not twice a second.
    func testACollectorThatKeepsClosingIsSaidOnce() throws {
        let (g, collector, nsd) = try serving(with: .closesAfterHandshake)
        defer { collector.stop(); nsd.stop() }
        for i in 0..<8 {
            XCTAssertEqual(try dig(g.port, ["flap\(i).denied.test"]).status, "NXDOMAIN")
            usleep(500_000)
        }
        let lines = g.log.split(separator: "\n").filter { $0.contains("\"dnstap\"") }
        XCTAssertLessThanOrEqual(lines.count, 3, lines.joined(separator: "\n"))
        XCTAssertLessThan(secondsToStop(g), 3)
    }

    /// The queue is bounded by bytes too: 100,000 large replies were 1–3 GB (QA pass 7).
    func testTheQueueIsBoundedByBytes() throws {
        let writer = DnstapWriter(destination: .unix("/nonexistent/tap.sock"), identity: "t", logger: Logger(label: "test"),
                                  maxQueuedBytes: 1 << 20)
        defer { writer.stop() }
        var peer = sockaddr_storage()
        withUnsafeMutableBytes(of: &peer) { $0.storeBytes(of: sa_family_t(AF_INET), toByteOffset: 0, as: sa_family_t.self) }
        let reply = [UInt8](repeating: 0, count: 16_000)
        for _ in 0..<100 { withUnsafePointer(to: &peer) { writer.message(.clientResponse, reply, peer: $0, overTCP: true) } }
        let fit = (1 << 20) / reply.capacity
        XCTAssertEqual(writer.dropped, 100 - fit, "\(fit) replies of 16 KB fill 1 MiB")
        XCTAssertEqual(writer.sent.value, 0)
        // Bytes are what a message holds, not what it says: a 50-octet reply in a 4-KB buffer is
        // copied to its size rather than holding the buffer (each pinned a listener's reusable one).
        var roomy = [UInt8](repeating: 1, count: 50)
        roomy.reserveCapacity(4096)
        let small = DnstapWriter(destination: .unix("/nonexistent/tap.sock"), identity: "t", logger: Logger(label: "test"),
                                 maxQueuedBytes: 100 * 128)
        defer { small.stop() }
        for _ in 0..<100 { withUnsafePointer(to: &peer) { small.message(.clientResponse, roomy, peer: $0, overTCP: false) } }
        XCTAssertEqual(small.dropped, 0)
    }

    // MARK: dnsgate analyze over dnstap captures

    /// 60 base32 names under t.allowed.test, the shape of a DNS tunnel.
    private func tunnelQueries(seed: UInt64) -> [[UInt8]] {
        var rng = SeededRandom(seed: seed)
        let base32 = Array("abcdefghijklmnopqrstuvwxyz234567")
        return (0..<60).map { i in
            RawQuery.make(id: UInt16(i), name: String((0..<56).map { _ in base32.randomElement(using: &rng)! }) + ".q\(i).t.allowed.test")
        }
    }

    private func analyze(_ files: [String]) throws -> CommandResult {
        try runCommand(TestPaths.dnsgateBinary, ["analyze"] + files)
    }

    /// What dnsgate recorded as dnstap, read back offline: the tunnel is found again, and an
    /// ordinary capture is clean.
    func testAnalyzeFindsATunnelInADnstapCapture() throws {
        let nsd = try NSDUpstream()
        let dir = TestPaths.tempDir("dnstap")
        let socket = dir.appendingPathComponent("tap.sock").path
        let collector = try DnstapCollector(socket: socket, output: dir.appendingPathComponent("tap.fstrm").path,
                                            logFile: dir.appendingPathComponent("fstrm.log"))
        let g = try DNSGateProcess(allow: Self.allow, upstreams: [nsd.address], extraArgs: ["--dnstap", socket])
        XCTAssertTrue(g.waitForLog("dnstap collector connected"), g.log)
        XCTAssertEqual(try dig(g.port, ["www.allowed.test"]).status, "NOERROR")
        XCTAssertGreaterThan(UDPClient.burst(port: g.port, tunnelQueries(seed: 51), batch: 5, drainMs: 30), 50)
        g.stop()
        _ = try collector.stopAndRead()

        let r = try analyze([collector.output])
        XCTAssertEqual(r.status, 1, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("tunnel client 127.0.0.1 domain allowed.test."), r.stdout)
        XCTAssertTrue(r.stderr.contains(" queries, "), r.stderr)
        XCTAssertFalse(r.stdout.contains("www.allowed.test"), "the ordinary name is in no alert")
    }

    /// Another server's capture: unbound writes the dnstap, dnsgate analyze finds the tunnel in it.
    func testAnalyzeReadsUnboundsDnstap() throws {
        try requireTool("unbound")
        let dir = TestPaths.tempDir("dnstap")
        let socket = dir.appendingPathComponent("tap.sock").path
        let collector = try DnstapCollector(socket: socket, output: dir.appendingPathComponent("unbound.fstrm").path,
                                            logFile: dir.appendingPathComponent("fstrm.log"))
        let unbound = try UnboundServer(dir: dir, server: """
                local-zone: "." refuse
                local-zone: "allowed.test." always_nxdomain
            """, clauses: """
            dnstap:
                dnstap-enable: yes
                dnstap-socket-path: "\(socket)"
                dnstap-log-client-query-messages: yes
                dnstap-log-client-response-messages: yes
            """)
        defer { unbound.stop() }
        XCTAssertGreaterThan(UDPClient.burst(port: unbound.port, tunnelQueries(seed: 52), batch: 5, drainMs: 30), 50)
        sleep(3)   // unbound's dnstap thread sends on its own schedule; nothing shows how far it got
        unbound.stop()
        _ = try collector.stopAndRead()

        let r = try analyze([collector.output])
        XCTAssertEqual(r.status, 1, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("tunnel client 127.0.0.1 domain allowed.test."), r.stdout + r.stderr)
    }

    /// A file that is not a dnstap capture, or is cut short, is exit 2 with the reason; a capture of
    /// client queries only is read from them, and says so.
    func testCapturesAreCheckedAndQueryOnlyOnesRead() throws {
        let dir = TestPaths.tempDir("dnstap")
        func message(_ type: Dnstap_Message.TypeEnum, _ name: String, at t: UInt64) -> [UInt8] {
            var m = Dnstap_Message()
            m.type = type
            m.queryAddress = Data([192, 0, 2, 7])
            m.queryTimeSec = t
            m.queryMessage = Data(RawQuery.make(id: 1, name: name))
            var d = Dnstap_Dnstap()
            d.type = .message
            d.message = m
            return try! d.serializedBytes()
        }
        func file(_ name: String, contentType: String = "protobuf:dnstap.Dnstap", first: FrameStreams.Control = .start, frames: [[UInt8]],
                  cut: Int = 0) throws -> String {
            var bytes = FrameStreams.control(first, contentType: contentType)
            for f in frames { FrameStreams.appendData(f, to: &bytes) }
            bytes += FrameStreams.control(.stop)
            let path = dir.appendingPathComponent(name).path
            try Data(bytes.dropLast(cut)).write(to: URL(fileURLWithPath: path))
            return path
        }
        let queries = (0..<3).map { message(.clientQuery, "q\($0).example.com", at: 1_800_000_000 + UInt64($0)) }
        let queriesFile = try file("queries.fstrm", frames: queries)
        let good = try analyze([queriesFile])
        XCTAssertEqual(good.status, 0, good.stderr)
        XCTAssertTrue(good.stderr.contains("holds client queries only") && good.stderr.contains("3 queries, 0 alert(s)"), good.stderr)
        // The same capture through a pipe (`fstrm_capture -w - | dnsgate analyze /dev/stdin`) is told from text by its bytes.
        let piped = try runCommand(TestPaths.dnsgateBinary, ["analyze", "/dev/stdin"],
                                   stdinBytes: try Data(contentsOf: URL(fileURLWithPath: queriesFile)))
        XCTAssertEqual(piped.status, 0, piped.stderr)
        XCTAssertTrue(piped.stderr.contains("/dev/stdin holds client queries only") && piped.stderr.contains("3 queries, 0 alert(s)"), piped.stderr)
        let forwarded = (0..<3).map { message(.forwarderQuery, "f\($0).example.com", at: 1_800_000_000) }
        let timeless = [message(.clientResponse, "r.example.com", at: 0)]
        for (name, path, why) in [
            ("forwarder only", try file("forwarded.fstrm", frames: forwarded), "no client query or response to analyze in 3 messages"),
            ("no time", try file("timeless.fstrm", frames: timeless), "no client query or response to analyze in 1 messages"),
            ("other", try file("other.fstrm", contentType: "protobuf:other.Thing", frames: queries), "not dnstap"),
            ("cut", try file("cut.fstrm", frames: queries, cut: 14), "ends inside a frame"),
            ("no start", try file("nostart.fstrm", first: .ready, frames: queries), "data before the START frame"),
            ("garbage", try file("garbage.fstrm", frames: [[0xFF, 0xFF, 0xFF]]), "not a dnstap message"),
        ] {
            let r = try analyze([path])
            XCTAssertEqual(r.status, 2, name)
            XCTAssertTrue(r.stderr.contains(path + ": ") && r.stderr.contains(why), "\(name): \(r.stderr)")
            let piped = try runCommand(TestPaths.dnsgateBinary, ["analyze", "/dev/stdin"], stdinBytes: try Data(contentsOf: URL(fileURLWithPath: path)))
            XCTAssertEqual(piped.status, 2, "\(name), piped")
            XCTAssertTrue(piped.stderr.contains("/dev/stdin: ") && piped.stderr.contains(why), "\(name), piped: \(piped.stderr)")
        }
    }

    /// A FIFO whose writer comes a moment later is waited for, not read as an empty, clean log.
    func testAnalyzeWaitsForAFIFOsWriter() throws {
        let dir = TestPaths.tempDir("dnstap")
        let fifo = dir.appendingPathComponent("log.fifo").path
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let writer = Thread {
            usleep(500_000)
            let fd = open(fifo, O_WRONLY)
            let text = QueryLogTSV.header + "\n1800000000\t192.0.2.7\twww.example.com\tA\tNOERROR\n1800000001\t192.0.2.7\tapi.example.com\tA\tNOERROR\n"
            _ = text.withCString { write(fd, $0, strlen($0)) }
            close(fd)
        }
        writer.start()
        let r = try analyze([fifo])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("2 queries, 0 alert(s)"), r.stderr)
    }
}
