import Foundation
import XCTest

/// The benchmark harness (`bench/run.sh`) configures every peer with dnsgate's policy by hand-written
/// config generators that no benchmark run checks for drift: a peer whose config no longer loads, or
/// that forwards a denied name, would make the comparison meaningless. `--verify-only` starts the real
/// upstream and every target on loopback and runs the harness's own policy checks with dig, no load.
final class BenchHarnessTests: XCTestCase {
    /// Targets the harness must bring up and prove; the optional peers come from `.ci/setup`.
    private let targets = ["nullresp", "dnsgate", "dnsgate-100k", "unbound", "dnsmasq", "dnsdist", "pdns-recursor", "kresd"]

    func testEveryPeerEnforcesTheSamePolicyInTheHarness() throws {
        for tool in ["dnsperf", "nsd", "unbound", "dnsmasq", "dnsdist", "pdns_recursor", "kresd", "dig", "cc", "taskset"] {
            try requireTool(tool)
        }
        let out = TestPaths.tempDir("bench-verify")
        defer { try? FileManager.default.removeItem(at: out) }
        let script = TestPaths.packageRoot.appendingPathComponent("bench/run.sh").path
        let r = try runCommand("/bin/bash", [script, "--verify-only", "--unpinned", "--targets", targets.joined(separator: ","),
                                             "--dnsgate-bin", TestPaths.dnsgateBinary,
                                             "--base-port", String(freePortRange(count: 10)), "--out", out.path], timeout: 180)
        // The harness keeps its run directory (configs, logs) for inspection; this test does not need it.
        if let line = r.stderr.split(separator: "\n").first(where: { $0.contains("run dir /tmp/dnsgate-bench/run-") }),
           let dir = line.split(separator: " ").first(where: { $0.hasPrefix("/tmp/dnsgate-bench/run-") }) {
            try? FileManager.default.removeItem(atPath: String(dir.dropLast()))   // drop the trailing ';'
        }
        let verify = (try? String(contentsOf: out.appendingPathComponent("verify.txt"), encoding: .utf8)) ?? ""
        XCTAssertEqual(r.status, 0, "bench/run.sh --verify-only failed:\n\(r.stderr.suffix(3000))\n\(verify)")
        for t in targets {
            XCTAssertTrue(r.stdout.contains("\n\(t): ok\n") || r.stdout.hasPrefix("\(t): ok\n"), "\(t) not proven:\n\(r.stdout)")
            XCTAssertTrue(verify.contains("== \(t) (127.0.0.1:"), "no checks ran for \(t)")
        }
        XCTAssertFalse(verify.contains("FAIL"), verify)
        // Every resolver target ran the whole list of checks (nullresp has one); a shortened list would
        // prove less than it claims.
        let oks = verify.split(separator: "\n").filter { $0.hasPrefix("  ok") }.count
        XCTAssertGreaterThanOrEqual(oks, 1 + 18 * (targets.count - 1), verify)
    }
}
