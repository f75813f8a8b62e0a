import Foundation
import XCTest
import DNSGateTestSupport

/// A flood of random names must not grow the running server beyond its configured bounds: every
/// per-name structure (cache, top-k sketches, detector state, audit and violation logs, telemetry
/// queue) is capped. Reports resident memory before and after.
final class MemoryBoundTests: XCTestCase {
    func testAMillionRandomNamesStayWithinTheMemoryBudget() throws {
        let nsd = try NSDUpstream()
        let g = try DNSGateProcess(allow: "*.allowed.test  # builds\n", upstreams: [nsd.address],
                                   extraArgs: ["--query-log", "none"],
                                   configYAML: "cache: { max_entries: 20000 }\ncontrol: { socket: \"@DIR@/c.sock\" }\nstate_file: \"@DIR@/s.json\"\n")
        let total = Int(ProcessInfo.processInfo.environment["DNSGATE_FLOOD_NAMES"] ?? "") ?? 1_000_000
        var rng = SeededRandom(seed: 42)
        func flood(_ n: Int) -> Int {
            // Half denied random names, half random names under the allowed wildcard (cache misses).
            let queries = (0..<n).map { i -> [UInt8] in
                let label = String(rng.next(), radix: 36)
                return RawQuery.make(id: UInt16(truncatingIfNeeded: i), name: i % 2 == 0 ? "\(label).flood.example.net" : "\(label).cdn.allowed.test")
            }
            return UDPClient.burst(port: g.port, queries, batch: 500, drainMs: 5, finalDrainMs: 1000)   // one socket for all
        }
        _ = flood(20_000)                          // warm up: loops, pools, caches reach their working size
        usleep(500_000)
        let before = try residentKB(g.pid)
        let answered = flood(total)
        usleep(1_000_000)                          // let the telemetry thread drain its queue
        let after = try residentKB(g.pid)
        print("dnsgate RSS before \(before) kB, after \(total) random names \(after) kB (+\((after - before) / 1024) MB); \(answered) replies")
        XCTAssertGreaterThan(answered, total / 10, "the server kept answering (a debug build drops some of a flood)")
        XCTAssertLessThan(after - before, 128 * 1024, "growth stays under 128 MB: cache ≤ 20000 entries, every other table capped")
        XCTAssertEqual(try dig(g.port, ["www.allowed.test"]).status, "NOERROR", "still serving")
    }
}
