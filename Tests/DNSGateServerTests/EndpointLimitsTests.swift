import Foundation
import XCTest

/// The metrics endpoint and the control socket against clients that hold on to them (QA pass 5, F2–F4):
/// a pipeline of scrapes never read, idle and half-sent connections, more connections than the cap,
/// an endless control line and marks without bound. Each runs the real binary with its default limits.
final class EndpointLimitsTests: XCTestCase {
    private let scrapeRequest = Array("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".utf8)

    private func start(_ extraYAML: String = "") throws -> (DNSGateProcess, metricsPort: Int) {
        let mport = freePort()
        let g = try DNSGateProcess(allow: "*.allowed.test\n", upstreams: ["127.0.0.1:\(freePort())"],   // no query here is forwarded
                                   configYAML: "metrics: { listen: \"127.0.0.1:\(mport)\" }\nstate_file: \"@DIR@/state.json\"\n" + extraYAML)
        return (g, mport)
    }

    /// One scrape on its own connection: the status line and the body, or nil when it was closed unanswered.
    private func scrape(_ port: Int) -> String? {
        guard let s = StreamSocket(tcpPort: port) else { return nil }
        s.send(scrapeRequest)
        let r = s.readUntilClosed(timeout: 5)
        return r.bytes.isEmpty ? nil : String(decoding: r.bytes, as: UTF8.self)
    }

    private func deniedOverTCPAnswers(_ g: DNSGateProcess) throws -> Bool {
        try TCPClient.pipelined(port: g.port, queries: [RawQuery.make(id: 7, name: "x.denied.test")], timeout: 2).count == 1
    }

    /// A DNS-over-TCP client that sends and never reads is not read from either (QA pass 12, F2): each
    /// 36-octet query of it had its kilobyte answer queued in the server, which grew by 100 MB in 25 s.
    /// Its queries now wait in its own socket. A client that pipelines and reads still gets every
    /// answer, those held while its socket was full included.
    func testATCPClientThatDoesNotReadIsNotReadFromEither() throws {
        let upstream = ScriptedUpstream { _, _, _ in .init(flags: 0x8180, answers: (1...60).map { ScriptedUpstream.addressRecord(UInt8($0)) }) }
        let g = try DNSGateProcess(allow: "*.allowed.test\n", upstreams: [upstream.address])
        XCTAssertEqual(try dig(g.port, ["big.allowed.test"]).answers.count, 60, "cached: every answer below is a hit")
        let query = RawQuery.make(id: 9, name: "big.allowed.test")
        let framed = [UInt8(query.count >> 8), UInt8(query.count & 0xFF)] + query
        var flood: [UInt8] = []   // 3.4 MB of queries, 100 MB of answers
        flood.reserveCapacity(framed.count * 100_000)
        for _ in 0..<100_000 { flood.append(contentsOf: framed) }
        let before = try residentKB(g.pid)
        let deaf = try XCTUnwrap(StreamSocket(tcpPort: g.port, buffers: 4096))
        let taken = deaf.send(flood, timeout: 3)   // the build before took all of it in under 2 s
        XCTAssertLessThan(taken, 1_000_000, "the server stopped reading a client that does not read")
        XCTAssertLessThan(try residentKB(g.pid) - before, 20_000, "no answers piled up for it")
        let answered = try TCPClient.pipelined(port: g.port, queries: (0..<300).map { RawQuery.make(id: UInt16($0), name: "big.allowed.test") }, timeout: 10)
        XCTAssertEqual(answered.count, 300, "a client that reads gets every answer")
        XCTAssertEqual(Set(answered.map { $0.u16(0) }), Set(0..<300), "one answer per query")
    }

    func testPipelinedScrapesGetOneAnswerAndTheConnectionCloses() throws {
        let (g, mport) = try start()
        let before = try residentKB(g.pid)
        let s = try XCTUnwrap(StreamSocket(tcpPort: mport))
        // 20,000 requests (700 KB) in one go, none of the answers read meanwhile.
        let sent = s.send(Array([[UInt8]](repeating: scrapeRequest, count: 20_000).joined()), timeout: 3)
        XCTAssertTrue(try deniedOverTCPAnswers(g), "DNS over TCP, on the same event loop, answers while the pipeline is open")
        let r = s.readUntilClosed(timeout: 3)
        let text = String(decoding: r.bytes, as: UTF8.self)
        XCTAssertTrue(r.closed, "closed after its answer (\(sent) bytes sent)")
        XCTAssertEqual(text.components(separatedBy: "HTTP/1.1 ").count - 1, 1, "one answer: " + text.prefix(300))
        XCTAssertTrue(text.hasPrefix("HTTP/1.1 200"), String(text.prefix(300)))
        XCTAssertTrue(text.lowercased().contains("connection: close"), String(text.prefix(300)))
        let grown = try residentKB(g.pid) - before
        XCTAssertLessThan(grown, 32 * 1024, "the server grew by \(grown) kB")
        XCTAssertTrue(scrape(mport)?.hasPrefix("HTTP/1.1 200") ?? false, "the next scrape is answered")
    }

    func testIdleAndHalfSentConnectionsAreClosedAfterTheIdleTimeout() throws {
        let (g, mport) = try start()
        let silent = try XCTUnwrap(StreamSocket(tcpPort: mport))
        let half = try XCTUnwrap(StreamSocket(tcpPort: mport))
        half.send(Array("GET /metr".utf8))
        // A byte of an endless header every 250 ms: bytes that never make a request head are no activity.
        let trickle = try XCTUnwrap(StreamSocket(tcpPort: mport))
        trickle.send(Array("GET /metrics HTTP/1.1\r\nX-Slow: ".utf8))
        let controlSilent = try XCTUnwrap(StreamSocket(unixPath: g.controlSocket))
        let controlHalf = try XCTUnwrap(StreamSocket(unixPath: g.controlSocket))
        controlHalf.send(Array("{\"comm".utf8))
        let started = Date()
        var open: [String: StreamSocket] = ["silent metrics": silent, "half-sent metrics": half, "trickling metrics": trickle,
                                            "silent control": controlSilent, "half-sent control": controlHalf]
        var closedAfter: [String: Double] = [:]
        while !open.isEmpty && Date().timeIntervalSince(started) < 14 {
            trickle.send([0x61], timeout: 0.05)
            for (name, s) in open where s.readUntilClosed(timeout: 0.05).closed {
                closedAfter[name] = Date().timeIntervalSince(started)
                open[name] = nil
            }
            usleep(150_000)
        }
        XCTAssertEqual(open.keys.sorted(), [], "still open after 14 s; the idle timeout is 10 s")
        for (name, t) in closedAfter { XCTAssertGreaterThan(t, 8, "\(name) closed by the timeout, not at once") }
        XCTAssertTrue(scrape(mport)?.hasPrefix("HTTP/1.1 200") ?? false)
    }

    func testConnectionsPastTheCapAreClosedAtOnceAndServiceResumesWhenOthersClose() throws {
        let (g, mport) = try start()
        var held = (0..<64).compactMap { _ in StreamSocket(tcpPort: mport) } + (0..<64).compactMap { _ in StreamSocket(unixPath: g.controlSocket) }
        XCTAssertEqual(held.count, 128)
        for _ in 0..<3 {
            let extra = try XCTUnwrap(StreamSocket(tcpPort: mport))
            extra.send(scrapeRequest)
            let r = extra.readUntilClosed(timeout: 3)
            XCTAssertTrue(r.closed && r.bytes.isEmpty, "the 65th metrics connection is closed unanswered: \(String(decoding: r.bytes.prefix(80), as: UTF8.self))")
        }
        let refusedStats = try g.cli(["stats"])
        XCTAssertNotEqual(refusedStats.status, 0, "the 65th control connection is closed unanswered: \(refusedStats.stdout)")
        XCTAssertTrue(try deniedOverTCPAnswers(g), "DNS over TCP has a cap of its own")

        held.removeAll()   // closed: their slots free up
        XCTAssertTrue(waitFor({ self.scrape(mport)?.hasPrefix("HTTP/1.1 200") ?? false }, timeout: 5), "a scrape once the others closed")
        XCTAssertTrue(waitFor({ (try? g.cli(["stats"]).status) == 0 }, timeout: 5), "`dnsgate stats` once the others closed")
        let metrics = scrape(mport) ?? ""
        XCTAssertTrue(metrics.contains("dnsgate_connections_refused{listener=\"metrics\"} 3"), metrics)
        XCTAssertTrue(metrics.contains("dnsgate_connections_refused{listener=\"control\"} 1"), metrics)
        XCTAssertEqual(g.log.components(separatedBy: "connection limit reached").count - 1, 2, "one warning per listener for the burst: \(g.log)")
    }

    func testAnOverlongControlLineIsAnsweredWithAnErrorAndNotBuffered() throws {
        let (g, _) = try start()
        let before = try residentKB(g.pid)
        let s = try XCTUnwrap(StreamSocket(unixPath: g.controlSocket))
        let megabyte = [UInt8](repeating: UInt8(ascii: "x"), count: 1 << 20)
        var sent = 0
        for _ in 0..<64 {   // 64 MB without a newline, while the server reads it (it stops at 8 MiB)
            let n = s.send(megabyte, timeout: 2)
            sent += n
            if n < megabyte.count { break }
        }
        let grown = try residentKB(g.pid) - before   // measured with the connection still open
        let r = s.readUntilClosed(timeout: 3)
        let answer = String(decoding: r.bytes, as: UTF8.self)
        XCTAssertTrue(answer.contains("\"ok\":false") && answer.contains("longer than 8388608 bytes"), "answer: \(answer.prefix(200))")
        XCTAssertTrue(r.closed)
        XCTAssertLessThan(sent, 24 << 20, "the server stopped reading the line")
        XCTAssertLessThan(grown, 32 * 1024, "the server grew by \(grown) kB")
        XCTAssertEqual(try g.cli(["stats"]).status, 0)
    }

    func testMarkNamesAreShortVisibleTextAndOnlyTheNewestMarksAreKept() throws {
        let (g, _) = try start()
        let long = try g.cli(["mark", String(repeating: "m", count: 201)])
        XCTAssertNotEqual(long.status, 0)
        XCTAssertTrue(long.stderr.contains("at most 200 bytes"), long.stderr)
        let accents = "m" + String(repeating: "\u{0301}", count: 150)   // one character, 301 bytes
        XCTAssertNotEqual(try g.cli(["mark", accents]).status, 0, "counted in bytes, not characters (QA pass 6, F4)")
        XCTAssertEqual(try g.cli(["verdict", "--client", "127.0.0.1", "--mark", String(repeating: "m", count: 201)]).status, 2, "never set: unknown")
        XCTAssertNotEqual(try g.cli(["mark", "job\u{202E}1"]).status, 0, "a bidi override is refused")
        XCTAssertEqual(try g.cli(["mark", String(repeating: "m", count: 200)]).status, 0)
        XCTAssertEqual(try g.cli(["mark", "first"]).status, 0)
        for i in 0..<10_000 {   // straight on the socket: 10,000 CLI processes would take minutes
            guard let s = StreamSocket(unixPath: g.controlSocket) else { XCTFail("control socket gone at mark \(i)"); return }
            s.send(Array("{\"command\":\"mark\",\"arguments\":{\"name\":\"job-\(i)\"}}\n".utf8))
            let r = s.readUntilClosed(timeout: 5)
            guard String(decoding: r.bytes, as: UTF8.self).contains("\"ok\":true") else { XCTFail("mark \(i) failed"); return }
        }
        let dropped = try g.cli(["verdict", "--client", "127.0.0.1", "--mark", "first"])
        XCTAssertEqual(dropped.status, 2, "10,000 newer marks: the first is forgotten, and said to be unknown: \(dropped.stdout)\(dropped.stderr)")
        XCTAssertTrue(dropped.stderr.contains("unknown"), dropped.stderr)
        XCTAssertEqual(try g.cli(["verdict", "--client", "127.0.0.1", "--mark", "job-0"]).status, 0, "the newest 10,000 are kept")
    }

    /// `metrics` and `control` take the keys `tcp` has.
    func testLimitsAreConfigurable() throws {
        let (g, mport) = try start("control: { max_connections: 1, idle_timeout_ms: 300 }\n")
        let held = try XCTUnwrap(StreamSocket(unixPath: g.controlSocket))
        XCTAssertNotEqual(try g.cli(["stats"]).status, 0, "one connection is the cap")
        XCTAssertTrue(held.readUntilClosed(timeout: 3).closed, "closed after 300 ms idle")
        XCTAssertTrue(waitFor({ (try? g.cli(["stats"]).status) == 0 }, timeout: 3))
        XCTAssertTrue(scrape(mport)?.hasPrefix("HTTP/1.1 200") ?? false)
    }

    /// QA pass 6, F5: `dnsgate alerts --follow` ended at the first poll the control socket's cap
    /// refused; it now says so once and retries, and goes on once the server answers again.
    func testAlertsFollowOutlastsAFullControlSocket() throws {
        let (g, _) = try start("control: { max_connections: 1, idle_timeout_ms: 2000 }\n")
        let follower = try Daemon("alerts-follow", TestPaths.dnsgateBinary, ["alerts", "--follow", "--control", g.controlSocket],
                                  logFile: g.dir.appendingPathComponent("follow.log"))
        defer { follower.stop() }
        usleep(700_000)                                               // its first poll answered
        let held = try XCTUnwrap(StreamSocket(unixPath: g.controlSocket))   // the cap's one connection, idle
        XCTAssertTrue(follower.waitForLog("no answer from the server; retrying", timeout: 5), follower.log)
        XCTAssertTrue(held.readUntilClosed(timeout: 4).closed, "the idle connection is closed after 2 s")
        usleep(1_500_000)
        XCTAssertTrue(follower.process.isRunning, "still following: \(follower.log)")
    }
}
