@testable import DNSGateServer
import XCTest

/// The UDP listener's interrupt moderation: it waits only under a sustained flood, never after a full
/// batch, and stops waiting as soon as a period runs below the rate.
final class ReadCoalescingTests: XCTestCase {
    private let ms: UInt64 = 1_000_000

    /// `perPeriod` datagrams in each 10 ms period, read in reads of `perRead`, for `periods` periods
    /// from `start`, the listener busy answering for `busy` of the time.
    private func feed(_ g: inout ReadCoalescing, perPeriod: Int, perRead: Int = 2, periods: Int, from start: UInt64 = 0,
                      busy: Double = 0.1) -> UInt64 {
        var t = start
        for _ in 0..<periods {
            let reads = max(1, perPeriod / perRead)
            let gap = 10 * ms / UInt64(reads)
            for _ in 0..<reads {
                g.received(perRead, at: t)
                g.answered(at: t + UInt64(busy * Double(gap)))
                t += gap
            }
        }
        return t
    }

    func testWaitsOnlyOnceTheRateReachesTheThreshold() {
        var g = ReadCoalescing(windowMicros: 200, minRate: 20_000)
        XCTAssertEqual(g.wait(batchWasFull: false), 0, "nothing measured yet")
        // 100 a period = 10,000 a second: below 20,000.
        var t = feed(&g, perPeriod: 100, periods: 5)
        XCTAssertFalse(g.isActive)
        XCTAssertEqual(g.wait(batchWasFull: false), 0)
        // 500 a period = 50,000 a second.
        t = feed(&g, perPeriod: 500, periods: 3, from: t)
        XCTAssertTrue(g.isActive)
        XCTAssertEqual(g.wait(batchWasFull: false), 200)
        XCTAssertEqual(g.wait(batchWasFull: true), 0, "a full batch means queries are waiting already")
        // Back to 10,000 a second: the next period ends the waiting.
        _ = feed(&g, perPeriod: 100, periods: 2, from: t)
        XCTAssertFalse(g.isActive)
    }

    /// A listener busy for most of the time has queries queued whenever it reads: waiting then only
    /// delays them. It waits again once it has time to spare.
    func testABusyListenerDoesNotWaitUntilItHasTimeToSpare() {
        var g = ReadCoalescing(windowMicros: 200, minRate: 20_000)
        var t = feed(&g, perPeriod: 500, periods: 3, busy: 0.5)
        XCTAssertEqual(g.wait(batchWasFull: false), 200, "50,000 a second, busy half the time")
        t = feed(&g, perPeriod: 1500, perRead: 20, periods: 2, from: t, busy: 0.9)
        XCTAssertFalse(g.isActive)
        XCTAssertEqual(g.wait(batchWasFull: false), 0, "busy 90 % of the time: no wait")
        _ = feed(&g, perPeriod: 1000, periods: 2, from: t, busy: 0.6)
        XCTAssertEqual(g.wait(batchWasFull: false), 200, "busy 60 %: the waits are back")
    }

    /// With clients that wait for their answers, a listener that waits looks idle because it waits:
    /// every `probeEvery` waiting periods it goes one period without waits, and how busy it is then
    /// decides whether it waits again.
    func testAWaitingListenerProbesAPeriodWithoutWaits() {
        var g = ReadCoalescing(windowMicros: 200, minRate: 20_000)
        var t: UInt64 = 0
        /// One 10 ms period of 50,000 datagrams/s (or 300,000 when busy), closed at its end.
        func period(busy: Double) {
            t = feed(&g, perPeriod: busy > 0.7 ? 3000 : 500, perRead: busy > 0.7 ? 20 : 2, periods: 1, from: t, busy: busy)
            g.received(0, at: t)
        }
        period(busy: 0.3)
        XCTAssertEqual(g.wait(batchWasFull: false), 200)
        for _ in 1..<ReadCoalescing.probeEvery {
            period(busy: 0.3)
            XCTAssertEqual(g.wait(batchWasFull: false), 200)
        }
        period(busy: 0.3)
        XCTAssertEqual(g.wait(batchWasFull: false), 0, "after \(ReadCoalescing.probeEvery) waiting periods, one without")
        period(busy: 0.3)
        XCTAssertEqual(g.wait(batchWasFull: false), 200, "that period was not busy: the waits are back")
        for _ in 0..<ReadCoalescing.probeEvery { period(busy: 0.3) }
        XCTAssertEqual(g.wait(batchWasFull: false), 0, "the next probe")
        period(busy: 0.95)
        XCTAssertEqual(g.wait(batchWasFull: false), 0, "without waits it is busy: it stays without")
        for _ in 0..<3 { period(busy: 0.95) }
        XCTAssertFalse(g.isActive)
    }

    func testAnIdleGapEndsTheWaitingAtTheFirstRead() {
        var g = ReadCoalescing(windowMicros: 200, minRate: 20_000)
        let t = feed(&g, perPeriod: 1000, periods: 3)
        XCTAssertTrue(g.isActive)
        // One query a second later: the period that ends with it held 1 datagram over a second.
        g.received(1, at: t + 1000 * ms)
        XCTAssertEqual(g.wait(batchWasFull: false), 0)
    }

    func testWhileAnswersAreInFlightTheForwardingWindowApplies() {
        var g = ReadCoalescing(windowMicros: 200, forwardingMicros: 30, minRate: 20_000)
        XCTAssertEqual(g.wait(batchWasFull: false, forwarding: true), 0, "nothing measured yet")
        _ = feed(&g, perPeriod: 500, periods: 3)
        XCTAssertEqual(g.wait(batchWasFull: false, forwarding: false), 200)
        XCTAssertEqual(g.wait(batchWasFull: false, forwarding: true), 30)
        XCTAssertEqual(g.wait(batchWasFull: true, forwarding: true), 0, "a full batch means queries are waiting already")

        // Either window alone keeps the moderation on for its own case only.
        var forwardingOnly = ReadCoalescing(windowMicros: 0, forwardingMicros: 30, minRate: 20_000)
        _ = feed(&forwardingOnly, perPeriod: 500, periods: 3)
        XCTAssertTrue(forwardingOnly.isActive)
        XCTAssertEqual(forwardingOnly.wait(batchWasFull: false, forwarding: false), 0)
        XCTAssertEqual(forwardingOnly.wait(batchWasFull: false, forwarding: true), 30)
        var idleOnly = ReadCoalescing(windowMicros: 200, forwardingMicros: 0, minRate: 20_000)
        _ = feed(&idleOnly, perPeriod: 500, periods: 3)
        XCTAssertEqual(idleOnly.wait(batchWasFull: false, forwarding: true), 0)
        XCTAssertEqual(idleOnly.wait(batchWasFull: false, forwarding: false), 200)
    }

    func testAZeroWindowNeverWaits() {
        var g = ReadCoalescing(windowMicros: 0, minRate: 1_000)
        _ = feed(&g, perPeriod: 5000, periods: 3)
        XCTAssertFalse(g.isActive)
        XCTAssertEqual(g.wait(batchWasFull: false), 0)
    }
}

/// The moderation in the running server, with dnsperf as the client: a flood is answered in full,
/// later (the listener waits for batches to gather) and with waits counted; a trickle never waits;
/// `udp.coalesce_us: 0` never waits even under the flood.
final class ReadCoalescingEndToEndTests: XCTestCase {
    private func waits(_ g: DNSGateProcess) throws -> Int {
        let stats = try g.cli(["stats", "--json"])
        XCTAssertEqual(stats.status, 0, stats.stderr)
        let obj = try JSONSerialization.jsonObject(with: Data(stats.stdout.utf8)) as? [String: Any]
        return try XCTUnwrap(obj?["udp_coalesced_waits"] as? Int, stats.stdout)
    }

    /// Sends `names` (by default denied names, answered locally: no upstream needed) at `rate`
    /// queries/s for 2 s, each once (`-n 1`: the list must hold 2 s of queries); returns how many were
    /// answered and their mean latency in seconds, as dnsperf measured them.
    private func flood(_ g: DNSGateProcess, rate: Int, names: [String] = (0..<1000).map { "x\($0).denied.test" }) throws -> (answered: Int, latency: Double) {
        let file = g.dir.appendingPathComponent("names.txt").path
        try names.map { "\($0) A\n" }.joined().write(toFile: file, atomically: true, encoding: .utf8)
        let r = try runCommand("dnsperf", ["-s", "127.0.0.1", "-p", "\(g.port)", "-d", file, "-l", "2", "-Q", "\(rate)",
                                           "-c", "4", "-q", "100", "-t", "2"], timeout: 30)
        XCTAssertEqual(r.status, 0, r.stderr)
        func field(_ label: String, _ index: Int) -> Substring? {
            r.stdout.split(separator: "\n").first { $0.contains(label) }?.split(separator: " ").dropFirst(index).first
        }
        return (Int(field("Queries completed:", 2) ?? "") ?? 0, Double(field("Average Latency", 3) ?? "") ?? 0)
    }

    private func gate(_ yaml: String, upstream: String = "127.0.0.1:9") throws -> DNSGateProcess {
        try DNSGateProcess(allow: "*.allowed.test\n", upstreams: [upstream], extraArgs: ["--query-log", "none"],
                           configYAML: yaml + "control: { socket: \"@DIR@/c.sock\" }\nstate_file: \"@DIR@/s.json\"\n")
    }

    // The tests run the debug build, which answers about 60,000 queries/s on the CI machine: the
    // threshold is lowered so that the flood (5,000 queries/s) stays well inside that. A 1 ms window,
    // so that the wait stands out of the latency whatever else the machine is doing.
    func testAFloodIsModeratedAndATrickleIsNot() throws {
        let on = try gate("udp: { coalesce_us: 1000, coalesce_min_qps: 2000 }\n")
        XCTAssertGreaterThanOrEqual(try flood(on, rate: 200).answered, 396, "a trickle is answered")
        XCTAssertEqual(try waits(on), 0, "200 queries/s never wait")
        let moderated = try flood(on, rate: 5000)
        XCTAssertGreaterThanOrEqual(moderated.answered, 9_900, "the flood is answered in full")
        XCTAssertGreaterThan(try waits(on), 100, "5,000 queries/s are gathered into batches")
        on.stop()

        let off = try gate("udp: { coalesce_us: 0, coalesce_min_qps: 2000 }\n")
        let trickle = try flood(off, rate: 200)
        XCTAssertGreaterThanOrEqual(trickle.answered, 396)
        XCTAssertGreaterThanOrEqual(try flood(off, rate: 5000).answered, 9_900)
        XCTAssertEqual(try waits(off), 0, "coalesce_us: 0 never waits")
        // A query that arrives while the listener waits is read when the window ends: about 1 ms,
        // against 0.1 ms for a query nothing holds back. The yardstick is the trickle, not the same
        // flood without the wait: in CI a fresh debug server without it answered that flood 2.3 and
        // 3 ms late on average (its stalls hit every query; the batches ride them out), later than
        // the server that waits.
        XCTAssertGreaterThan(moderated.latency, trickle.latency + 0.0002, "moderated \(moderated), unmoderated trickle \(trickle)")
    }

    /// Cache misses under a flood: while their exchanges are in flight the listener waits
    /// `coalesce_forwarding_us` (the idle window is off here, so every wait counted is one of those),
    /// every query is still answered, and with the window at 0 nothing waits.
    func testMissesUnderAFloodWaitTheForwardingWindowOnly() throws {
        let nsd = try NSDUpstream()
        let names = (0..<12_000).map { "m\($0).allowed.test" }   // each a miss: nsd answers NXDOMAIN

        let on = try gate("udp: { coalesce_us: 0, coalesce_forwarding_us: 50, coalesce_min_qps: 2000 }\n", upstream: nsd.address)
        let moderated = try flood(on, rate: 5000, names: names)
        XCTAssertGreaterThanOrEqual(moderated.answered, 9_900, "the flood of misses is answered in full")
        XCTAssertGreaterThan(try waits(on), 100, "5,000 misses/s wait for their batches while answers are in flight")
        on.stop()

        let off = try gate("udp: { coalesce_us: 0, coalesce_forwarding_us: 0, coalesce_min_qps: 2000 }\n", upstream: nsd.address)
        XCTAssertGreaterThanOrEqual(try flood(off, rate: 5000, names: names).answered, 9_900)
        XCTAssertEqual(try waits(off), 0, "coalesce_forwarding_us: 0 never waits")
    }
}
