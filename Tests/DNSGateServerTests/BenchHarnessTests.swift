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

    /// While one target is measured the harness stops the others (and never the upstream), and
    /// continues them afterwards; a target left stopped would fail every later measurement, and one
    /// left running would take CPU from the measured one. Real processes, signalled by their PIDs.
    func testOnlyTheMeasuredTargetRuns() throws {
        let run = TestPaths.tempDir("bench-isolate")
        defer { try? FileManager.default.removeItem(at: run) }
        let lib = TestPaths.packageRoot.appendingPathComponent("bench/lib.sh").path
        // state NAME -> the process state letter of NAME's sleep (T: stopped, S: sleeping)
        let script = """
            set -u
            . "$1"; RUN=$2; mkdir -p "$RUN/pids" "$RUN/logs"
            for n in upstream dnsgate unbound dnsmasq; do spawn "$n" "" sleep 30; done
            state_of() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0; s=${s##*) }; echo "${s%% *}"; }
            state() { state_of "$(our_pids "$1")"; }
            sleep 0.2
            isolate dnsgate
            echo "isolated: $(state upstream) $(state dnsgate) $(state unbound) $(state dnsmasq)"
            resume_all
            echo "resumed: $(state upstream) $(state dnsgate) $(state unbound) $(state dnsmasq)"
            isolate unbound
            pids=$(for n in upstream dnsgate unbound dnsmasq; do our_pids "$n"; done)
            start=$(date +%s%N); stop_everything; took=$(( ($(date +%s%N) - start) / 1000000 ))
            left=0; for p in $pids; do [ -e "/proc/$p" ] && [ "$(state_of "$p")" != Z ] && left=$((left + 1)); done
            echo "left running: $left, $([ "$took" -lt 3000 ] && echo promptly || echo "after $took ms")"
            """
        let r = try runCommand("/bin/bash", ["-c", script, "isolate-test", lib, run.path], timeout: 60)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("isolated: S S T T\n"), r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("resumed: S S S S\n"), r.stdout + r.stderr)
        // Stopping a run with stopped targets still ends them all, at once rather than after the KILL.
        XCTAssertTrue(r.stdout.contains("left running: 0, promptly\n"), r.stdout + r.stderr)
    }
}
