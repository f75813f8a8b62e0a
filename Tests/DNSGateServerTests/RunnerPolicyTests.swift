import DNSGateCore
import DNSGateServer
import Foundation
import XCTest

/// Issue 4 end to end on loopback: profiles chosen by source address (dig -b 127.0.0.x), expiring
/// exceptions that survive a restart, job verdicts, and audit mode feeding `dnsgate suggest`.
final class RunnerPolicyTests: XCTestCase {
    static var nsd: NSDUpstream!
    override class func setUp() { super.setUp(); nsd = try? NSDUpstream() }
    override class func tearDown() { nsd?.stop(); nsd = nil; super.tearDown() }

    private func upstream() throws -> String {
        guard let nsd = Self.nsd else { try requireTool("nsd"); throw XCTSkip("nsd did not start") }
        return nsd.address
    }

    private func digFrom(_ source: String, _ port: Int, _ args: [String]) throws -> DigAnswer {
        try dig(port, ["-b", source] + args)
    }

    func testProfilesGiveDifferentClientsDifferentAnswers() throws {
        let up = try upstream()
        let dir = TestPaths.tempDir("profiles")
        try "www.allowed.test  # everyone\n".write(toFile: dir.path + "/base.allow", atomically: true, encoding: .utf8)
        try "www.allowed.test  # everyone\npkg.allowed.test  # build stage fetches packages\n".write(toFile: dir.path + "/build.allow", atomically: true, encoding: .utf8)
        try "www.allowed.test  # everyone\n".write(toFile: dir.path + "/release.allow", atomically: true, encoding: .utf8)
        let g = try DNSGateProcess(allow: nil, upstreams: [up], configYAML: """
            allow: [\(dir.path)/base.allow]
            state_file: "@DIR@/state.json"
            profiles:
              - name: build
                clients: [127.0.0.16/28]
                allow: [\(dir.path)/build.allow]
              - name: release
                clients: [127.0.0.32/28, "2001:db8::/32"]
                allow: [\(dir.path)/release.allow]
                sinkhole: { mode: refused }
            """)
        XCTAssertEqual(try digFrom("127.0.0.17", g.port, ["pkg.allowed.test"]).status, "NXDOMAIN", "nsd has no pkg: upstream NXDOMAIN, no EDE")
        XCTAssertNil(try digFrom("127.0.0.17", g.port, ["pkg.allowed.test"]).edeCode, "build profile forwards it")
        let release = try digFrom("127.0.0.33", g.port, ["pkg.allowed.test"])
        XCTAssertEqual(release.status, "REFUSED", "release profile denies it with its own sinkhole")
        XCTAssertEqual(release.edeCode, 15)
        let other = try digFrom("127.0.0.1", g.port, ["pkg.allowed.test"])
        XCTAssertEqual(other.status, "NXDOMAIN"); XCTAssertEqual(other.edeCode, 15, "default profile denies it")
        XCTAssertEqual(try digFrom("127.0.0.33", g.port, ["www.allowed.test"]).status, "NOERROR")
        let logged = g.queryLogLines.filter { $0.contains("pkg.allowed.test") }
        XCTAssertTrue(logged.contains { $0.contains("\"profile\":\"release\"") }, logged.joined(separator: "\n"))

        let check = try runCommand(TestPaths.dnsgateBinary, ["check", "pkg.allowed.test", "--client", "127.0.0.20", "--config", g.dir.path + "/dnsgate.yaml"])
        XCTAssertEqual(check.status, 0, check.stdout + check.stderr)
        XCTAssertTrue(check.stdout.contains("profile: build"), check.stdout)

        // One count per meaning (QA pass 11, F5): 1 + 2 + 1 entries in all, as `validate` and `reload` say;
        // `stats` said 1 without saying it was the default policy's.
        let validated = try runCommand(TestPaths.dnsgateBinary, ["validate", "--config", g.dir.path + "/dnsgate.yaml"])
        XCTAssertTrue(validated.stdout.contains(", 4 entries, 2 profile(s)"), validated.stdout + validated.stderr)
        XCTAssertTrue(try g.cli(["stats"]).stdout.contains(", 1 entries in the default policy, 4 with its profiles, "))
        let json = try JSONSerialization.jsonObject(with: Data(try g.cli(["stats", "--json"]).stdout.utf8)) as? [String: Any]
        XCTAssertEqual(json?["entries"] as? Int, 1)
        XCTAssertEqual(json?["entries_all_profiles"] as? Int, 4)
        XCTAssertTrue(g.log.contains("\"entries_all_profiles\":\"4\""), g.log)
    }

    /// `check --listener` asks as a query arriving on that listener would (QA pass 10, F17: only
    /// `--client` could name a profile, so one selected by listener could not be checked).
    func testCheckTakesTheListenerAProfileSelects() throws {
        let dir = TestPaths.tempDir("check-listener")
        try "www.allowed.test\n".write(toFile: dir.path + "/base.allow", atomically: true, encoding: .utf8)
        try "pkg.allowed.test\n".write(toFile: dir.path + "/ci.allow", atomically: true, encoding: .utf8)
        let config = dir.path + "/dnsgate.yaml"
        try """
            listen: ["127.0.0.1:5301", "127.0.0.3:5302"]
            allow: [\(dir.path)/base.allow]
            profiles:
              - name: ci
                listeners: ["127.0.0.3:5302"]
                allow: [\(dir.path)/ci.allow]
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let check = { (args: [String]) in try runCommand(TestPaths.dnsgateBinary, ["check", "pkg.allowed.test"] + args + ["--config", config]) }
        let onCI = try check(["--listener", "127.0.0.3:5302"])
        XCTAssertEqual(onCI.status, 0, onCI.stdout + onCI.stderr)
        XCTAssertTrue(onCI.stdout.contains("profile: ci"), onCI.stdout)
        let elsewhere = try check(["--listener", "127.0.0.1:5301"])
        XCTAssertEqual(elsewhere.status, 1, elsewhere.stdout + elsewhere.stderr)
        XCTAssertTrue(elsewhere.stdout.contains("profile: default"), elsewhere.stdout)
        XCTAssertFalse(elsewhere.stderr.contains("warning"), elsewhere.stderr)
        // A listener the server does not have is answered for, with a warning (QA pass 11).
        let unserved = try check(["--listener", "127.0.0.9:5309"])
        XCTAssertTrue(unserved.stderr.contains("warning: --listener 127.0.0.9:5309 is not under listen: (127.0.0.1:5301, 127.0.0.3:5302)"),
                      unserved.stderr)
        XCTAssertNotEqual(try check(["--listener", "not-an-address"]).status, 0)
    }

    /// `stats --entries` after a reload that changed nothing still shows what each entry was used
    /// for (QA pass 10, F2: hits and last use started afresh, so the nightly SIGHUP of log rotation
    /// made every entry of a server up a week read "never used, candidate for removal").
    func testAReloadKeepsEachEntrysHitsAndLastUse() throws {
        let g = try DNSGateProcess(allow: "www.allowed.test  # the registry\n*.cdn.allowed.test  # its CDN\n", upstreams: [try upstream()])
        XCTAssertEqual(try dig(g.port, ["www.allowed.test"]).status, "NOERROR")
        func entries() throws -> [String: [String: Any]] {
            let r = try g.cli(["stats", "--entries", "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
            let rows = try XCTUnwrap(obj?["entry_hits"] as? [[String: Any]], r.stdout)
            return Dictionary(uniqueKeysWithValues: rows.map { ($0["pattern"] as? String ?? "", $0) })
        }
        let before = try entries()
        XCTAssertEqual(before["www.allowed.test."]?["hits"] as? Int, 1)
        let reload = try g.cli(["reload"])
        XCTAssertEqual(reload.status, 0, reload.stderr)
        let after = try entries()
        XCTAssertEqual(after["www.allowed.test."]?["hits"] as? Int, 1, "\(after)")
        XCTAssertEqual(after["www.allowed.test."]?["last_use"] as? Int, before["www.allowed.test."]?["last_use"] as? Int)
        XCTAssertGreaterThan(after["www.allowed.test."]?["last_use"] as? Int ?? 0, 0)
        XCTAssertEqual(after["*.cdn.allowed.test."]?["hits"] as? Int, 0)
        XCTAssertEqual(after["*.cdn.allowed.test."]?["unused"] as? Bool, false, "not loaded long enough ago to be judged")
    }

    func testExceptionsAllowUntilTheyExpireAndSurviveARestart() throws {
        let up = try upstream()
        let yaml = "state_file: \"@DIR@/state.json\"\n"
        var g: DNSGateProcess? = try DNSGateProcess(allow: "www.allowed.test  # base\n", upstreams: [up], configYAML: yaml)
        let port = g!.port
        XCTAssertEqual(try dig(port, ["api.cdn.allowed.test"]).edeCode, 15)
        let add = try g!.cli(["allow", "add", "*.cdn.allowed.test", "--for", "30m", "--reason", "incident 42: vendor migration", "--client", "127.0.0.0/8"])
        XCTAssertEqual(add.status, 0, add.stderr)
        let id = try XCTUnwrap(add.stdout.split(separator: " ").dropFirst().first?.dropLast()).description
        XCTAssertEqual(try dig(port, ["api.cdn.allowed.test"]).status, "NOERROR")
        let txt = try dig(port, ["api.cdn.allowed.test", "TXT"])
        XCTAssertEqual(txt.edeCode, 17, "exceptions allow the default types only: \(txt.raw)")
        XCTAssertEqual(txt.status, "NOERROR", "a type denial: the name exists (RFC 8020)")
        // An exception for one type: that type is forwarded, the name's other types are type denials.
        XCTAssertEqual(try g!.cli(["allow", "add", "txt.allowed.test", "--types", "TXT", "--for", "5m", "--reason", "TXT only"]).status, 0)
        XCTAssertEqual(try dig(port, ["txt.allowed.test", "TXT"]).answers, [#"txt.allowed.test. 300 IN TXT "v=verification-token""#])
        let a = try dig(port, ["txt.allowed.test", "A"])
        XCTAssertEqual(a.status, "NOERROR", a.raw)
        XCTAssertEqual(a.answers, [])
        XCTAssertEqual(a.edeCode, 17, a.raw)
        let check = try runCommand(TestPaths.dnsgateBinary, ["check", "txt.allowed.test", "A", "--config", g!.dir.path + "/dnsgate.yaml"])
        XCTAssertEqual(check.status, 1)
        XCTAssertTrue(check.stdout.contains("sinkhole nodata") && check.stdout.contains("not allowed by exception"), check.stdout)
        XCTAssertTrue(g!.queryLogLines.contains { $0.contains("api.cdn.allowed.test") && $0.contains("\"exception\":\"\(id)\"") })
        let listed = try g!.cli(["allow", "list"])
        XCTAssertTrue(listed.stdout.contains(id) && listed.stdout.contains("incident 42"), listed.stdout)
        let short = try g!.cli(["allow", "add", "short.allowed.test", "--for", "2s", "--reason", "two seconds"])
        XCTAssertEqual(short.status, 0, short.stderr)
        // The time left is rounded up (a live exception never reads "0s left"), and `stats` shows the
        // scope as `allow list` does (QA pass 11).
        let shortRow = try g!.cli(["allow", "list"]).stdout.split(separator: "\n").first { $0.contains("short.allowed.test") } ?? ""
        XCTAssertTrue(shortRow.contains("\t2s left\t0 hits\t"), String(shortRow))
        XCTAssertEqual(try dig(port, ["short.allowed.test"]).status, "NOERROR")
        let once = try g!.cli(["allow", "list"]).stdout.split(separator: "\n").first { $0.contains("short.allowed.test") } ?? ""
        XCTAssertTrue(once.contains("s left\t1 hit\t"), String(once))
        let stats = try g!.cli(["stats"]).stdout
        XCTAssertTrue(stats.contains("\t1 hit\tclient 127.0.0.0/8\tincident 42"), stats)

        // Restart on the same state file: the long exception is still there, with its hits (written
        // on the way down; they restarted at 0 before).
        func hits(_ p: DNSGateProcess) throws -> String {
            let row = try p.cli(["allow", "list"]).stdout.split(separator: "\n").first { $0.hasPrefix(id + "\t") } ?? ""
            return row.split(separator: "\t").first { $0.hasSuffix(" hits") || $0.hasSuffix(" hit") }.map(String.init) ?? "none"
        }
        let hitsBefore = try hits(g!)
        XCTAssertEqual(hitsBefore, "1 hit")
        let dir = g!.dir
        g!.stop(); g = nil
        let again = try DNSGateProcess(allow: "www.allowed.test  # base\n", upstreams: [up],
                                       configYAML: "state_file: \"\(dir.path)/state.json\"\n")
        XCTAssertEqual(try hits(again), hitsBefore, "hits kept across the restart")
        XCTAssertEqual(try dig(again.port, ["api.cdn.allowed.test"]).status, "NOERROR", "exception survived the restart")
        sleep(3)
        let expired = try dig(again.port, ["short.allowed.test"])
        XCTAssertEqual(expired.edeCode, 15, "expired exactly on time: \(expired.raw) \(again.log)")
        XCTAssertEqual(try again.cli(["allow", "revoke", id]).status, 0)
        XCTAssertEqual(try dig(again.port, ["other.cdn.allowed.test"]).edeCode, 15, "revoked")
        XCTAssertNotEqual(try again.cli(["allow", "add", "*.com", "--for", "1h", "--reason", "x"]).status, 0, "same rules as allow-lists")
        // A prefix or a profile, not both: a prefix outside the profile's clients made an exception that never applied (QA pass 11, F8).
        let both = try again.cli(["allow", "add", "both.allowed.test", "--for", "1h", "--reason", "x", "--client", "192.0.2.0/24", "--profile", "default"])
        XCTAssertEqual(both.status, 64, both.stdout)
        XCTAssertTrue(both.stderr.contains("give --client or --profile, not both"), both.stderr)
    }

    /// A state file the service user cannot read is named with its owner and mode and the user's uid,
    /// not Foundation's "you don't have permission": that is what the operator has to change.
    func testAnUnreadableStateFileSaysWhoOwnsItAndWhoAsked() throws {
        guard geteuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else {
            throw XCTSkip("needs root and setpriv to run dnsgate as another user")
        }
        let dir = TestPaths.tempDir("unreadable")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: dir.path)
        try "www.allowed.test\n".write(to: dir.appendingPathComponent("a.allow"), atomically: true, encoding: .utf8)
        let state = dir.appendingPathComponent("state.json").path
        try "allow: [a.allow]\nstate_file: \"\(state)\"\n".write(to: dir.appendingPathComponent("c.yaml"), atomically: true, encoding: .utf8)
        try "{\"version\": 1, \"exceptions\": []}".write(toFile: state, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: state)
        // A copy beside the files: the build directory may sit where that user cannot reach (/root).
        let bin = dir.appendingPathComponent("dnsgate").path
        try FileManager.default.copyItem(atPath: TestPaths.dnsgateBinary, toPath: bin)
        let r = try runCommand("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups",
                                                    bin, "validate", "--config", dir.appendingPathComponent("c.yaml").path])
        XCTAssertEqual(r.status, 1, r.stdout + r.stderr)
        XCTAssertTrue(r.stderr.contains("\(state): cannot read the state file: Permission denied (owner uid 0, mode 600; dnsgate runs as uid 65534)"),
                      r.stderr)
    }

    /// A revoke takes effect even when the state file cannot be written: it narrows the policy, and the
    /// error says the exception would come back after a restart.
    func testARevokeTakesEffectWhenTheStateFileCannotBeWritten() throws {
        let g = try DNSGateProcess(allow: "www.allowed.test  # base\n", upstreams: [try upstream()],
                                   configYAML: "state_file: \"@DIR@/state.json\"\n")
        let add = try g.cli(["allow", "add", "rv.denied.test", "--for", "1h", "--reason", "revoke test", "--json"])
        let id = try XCTUnwrap(((try JSONSerialization.jsonObject(with: Data(add.stdout.utf8)) as? [String: Any])?["exception"] as? [String: Any])?["id"] as? String)
        XCTAssertEqual(try dig(g.port, ["rv.denied.test"]).status, "NOERROR")
        // The temporary file the store writes first is in the way: every write of the state file fails.
        try FileManager.default.createDirectory(atPath: g.dir.appendingPathComponent("state.json.tmp").path, withIntermediateDirectories: false)
        let revoke = try g.cli(["allow", "revoke", id])
        XCTAssertEqual(revoke.status, 1, revoke.stdout)
        XCTAssertTrue(revoke.stderr.contains("is revoked, but the state file could not be written"), revoke.stderr)
        XCTAssertEqual(try dig(g.port, ["rv.denied.test"]).status, "NXDOMAIN", "revoked in memory")
    }

    /// A wall-clock step (NTP, a VM resync) changes no exception's real lifetime: a 5-minute exception
    /// is not alive for a day more after a step back, nor gone after a step forward. The server's clock
    /// is stepped by a preloaded shim (Tests/Fixtures/clockshift), the machine's is left alone.
    func testExceptionsKeepTheirRealLifetimeAcrossClockSteps() throws {
        let clock = try ClockShift()
        let g = try DNSGateProcess(allow: "www.allowed.test  # base\n", upstreams: [try upstream()],
                                   configYAML: "state_file: \"@DIR@/state.json\"\n", environment: clock.environment)
        XCTAssertEqual(try g.cli(["allow", "add", "e1.denied.test", "--for", "5m", "--reason", "clock test"]).status, 0)
        func remaining() throws -> Int {
            let list = try g.cli(["allow", "list", "--json"])
            let obj = try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [String: Any]
            return (obj?["exceptions"] as? [[String: Any]])?.first?["remaining_s"] as? Int ?? -1
        }
        try clock.step(to: -86400)   // a day back
        sleep(3)
        let afterBack = try remaining()
        XCTAssertTrue((1...300).contains(afterBack), "\(afterBack) s left after a step back: \(g.log)")
        XCTAssertTrue(g.log.contains("the wall clock stepped"), g.log)
        try clock.step(to: 3600)     // then 25 hours ahead
        sleep(3)
        let afterForward = try remaining()
        XCTAssertTrue((1...300).contains(afterForward), "\(afterForward) s left after a step forward")
        XCTAssertEqual(try dig(g.port, ["e1.denied.test"]).status, "NOERROR", "still allowed")
    }

    /// `validate` (systemd's ExecStartPre) reads the state file as `serve` does: a missing one is a first
    /// start, one the server wrote passes, a corrupt one fails both, naming the file and what to do.
    func testValidateChecksTheStateFileAsServeLoadsIt() throws {
        var g: DNSGateProcess? = try DNSGateProcess(allow: nil, upstreams: [try upstream()], configYAML: "state_file: \"@DIR@/state.json\"\n")
        let config = g!.dir.appendingPathComponent("dnsgate.yaml").path, state = g!.dir.appendingPathComponent("state.json").path
        func validate() throws -> CommandResult { try runCommand(TestPaths.dnsgateBinary, ["validate", "--config", config]) }
        XCTAssertEqual(try validate().status, 0, "no state file yet")
        XCTAssertEqual(try g!.cli(["allow", "add", "x.denied.test", "--for", "1h", "--reason", "saved"]).status, 0)
        g!.stop(); g = nil
        XCTAssertEqual(try validate().status, 0, "the state file the server wrote")

        // Saved by an older binary under looser rules: serve starts without it, and validate says so first.
        let now = Date().timeIntervalSince1970
        try """
            {"version": 1, "exceptions": [
              {"id": "xkept1", "pattern": "kept.denied.test", "reason": "r", "createdAt": \(now), "expiresAt": \(now + 3600)},
              {"id": "xold40", "pattern": "old.denied.test", "reason": "r", "createdAt": \(now), "expiresAt": \(now + 40 * 86_400)}]}
            """.write(toFile: state, atomically: true, encoding: .utf8)
        let warned = try validate()
        XCTAssertEqual(warned.status, 0, "serve starts with this file: \(warned.stderr)")
        XCTAssertTrue(warned.stderr.contains("warning: \(state): saved exception xold40 (old.denied.test) will be dropped at the next start: "
                                             + "an exception lasts at most 30 days"), warned.stderr)
        XCTAssertFalse(warned.stderr.contains("xkept1"), warned.stderr)

        try "{\"version\": 1, \"exceptions\": [".write(toFile: state, atomically: true, encoding: .utf8)
        let bad = try validate()
        XCTAssertEqual(bad.status, 1, bad.stdout)
        XCTAssertTrue(bad.stderr.contains("\(state): state file is not valid"), bad.stderr)
        XCTAssertTrue(bad.stderr.contains("move it aside"), bad.stderr)
        // `check` answers without it, and says so (QA pass 11: it left the exceptions out silently).
        let checked = try runCommand(TestPaths.dnsgateBinary, ["check", "x.denied.test", "--config", config])
        XCTAssertEqual(checked.status, 1, checked.stdout)
        XCTAssertTrue(checked.stderr.contains("warning: \(state): state file is not valid") && checked.stderr.contains("left out of this answer"),
                      checked.stderr)
        let serve = try runCommand(TestPaths.dnsgateBinary, ["serve", "--config", config, "--listen", "127.0.0.1:\(freePort())",
                                                             "--control", state + ".sock"], timeout: 10)
        XCTAssertEqual(serve.status, 1, "serve refuses the same file: \(serve.stderr)")
        XCTAssertTrue(serve.stderr.contains("\(state): state file is not valid"), serve.stderr)
    }

    func testVerdictFailsAJobWithViolationsSinceItsMark() throws {
        let g = try DNSGateProcess(allow: "www.allowed.test  # base\n", upstreams: [try upstream()])
        _ = try digFrom("127.0.0.5", g.port, ["evil.denied.test"])        // before the mark: not counted
        XCTAssertEqual(try g.cli(["mark", "job-7"]).stdout, "marked job-7\n")
        XCTAssertTrue(try g.cli(["mark", "job-7"]).stdout.hasPrefix("marked job-7 (moved: it was set before"), "a reused name is said (QA pass 11)")
        _ = try digFrom("127.0.0.5", g.port, ["www.allowed.test"])
        let clean = try g.cli(["verdict", "--client", "127.0.0.5", "--mark", "job-7"])
        XCTAssertEqual(clean.status, 0, clean.stdout + clean.stderr)
        _ = try digFrom("127.0.0.5", g.port, ["exfil.denied.test", "TXT"])
        _ = try digFrom("127.0.0.6", g.port, ["other-client.denied.test"])
        let bad = try g.cli(["verdict", "--client", "127.0.0.5", "--mark", "job-7"])
        XCTAssertEqual(bad.status, 1)
        let badJSON = try g.cli(["verdict", "--client", "127.0.0.5", "--mark", "job-7", "--json"])
        XCTAssertEqual(badJSON.status, 1)
        XCTAssertTrue(badJSON.stdout.contains("\"verdict\" : \"violations\""), badJSON.stdout)
        XCTAssertTrue(bad.stdout.contains("exfil.denied.test. TXT"), bad.stdout)
        XCTAssertFalse(bad.stdout.contains("evil.denied.test"), "before the mark")
        XCTAssertFalse(bad.stdout.contains("other-client"), "another client")
        XCTAssertEqual(try g.cli(["verdict", "--client", "127.0.0.5", "--since", "1h"]).status, 1)
        // ISO 8601 as dnsgate prints it, fractional seconds included.
        let iso = ISO8601DateFormatter(); iso.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let hourAgo = iso.string(from: Date().addingTimeInterval(-3600))
        XCTAssertEqual(try g.cli(["verdict", "--client", "127.0.0.5", "--since", hourAgo]).status, 1, hourAgo)
        // An impossible date is an error, not the day Foundation rolls it over to.
        for impossible in ["2026-02-30T00:00:00Z", "2026-11-28T24:30:00Z", "2026-13-01T00:00:00+01:00"] {
            XCTAssertEqual(try g.cli(["verdict", "--client", "127.0.0.5", "--since", impossible]).status, 64, impossible)
        }
        for offset in ["2026-11-28T20:59:00+01:00", "2026-11-28T20:59:00+0100", "2026-11-28T14:29:00-05:30"] {
            XCTAssertEqual(try g.cli(["verdict", "--client", "127.0.0.5", "--since", offset]).status, 1, offset)
        }
        let badSince = try g.cli(["suggest", "--since", "yesterday-ish"])
        XCTAssertEqual(badSince.status, 64, badSince.stderr)
        XCTAssertTrue(badSince.stderr.contains("Usage: dnsgate suggest"), "the subcommand's usage: \(badSince.stderr)")
    }

    /// A type audit mode saw for a listed pattern changes that entry (keeping its types) instead of
    /// repeating the pattern: the output appended to the real allow file passes the real `validate`.
    func testSuggestNeverRepeatsAListedPattern() throws {
        let allow = "www.allowed.test  A  # base\ntxt.allowed.test  A,TXT  # typed\n*.svc.allowed.test  A,AAAA  # services\n"
        let g = try DNSGateProcess(allow: allow, upstreams: [try upstream()], extraArgs: ["--mode", "audit"])
        for q in [["www.allowed.test", "AAAA"], ["txt.allowed.test", "AAAA"], ["api.svc.allowed.test", "HTTPS"], ["new.allowed.test", "A"],
                  ["www.allowed.test", "MX"]] {   // not a default type: denied in audit mode too, so not learnt
            _ = try dig(g.port, q)
        }
        let file = g.allowFile
        let diff = try g.cli(["suggest", "--diff", file])
        XCTAssertEqual(diff.status, 0, diff.stderr)
        XCTAssertTrue(diff.stdout.contains("# \(file):1\n- www.allowed.test  A  # base\n+ www.allowed.test.  A,AAAA  # audit: 1 query"),
                      diff.stdout)

        let s = try g.cli(["suggest"])
        XCTAssertEqual(s.status, 0, s.stderr)
        let lines = s.stdout.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains { $0.hasPrefix("# change \(file):1 to: www.allowed.test.  A,AAAA  # audit:") }, s.stdout)
        XCTAssertTrue(lines.contains { $0.hasPrefix("# change \(file):2 to: txt.allowed.test.  A,AAAA,TXT  # audit:") }, s.stdout)
        XCTAssertTrue(lines.contains { $0.hasPrefix("api.svc.allowed.test.  A,AAAA,HTTPS  # audit:") },
                      "more specific than the wildcard, so it keeps the wildcard's types: \(s.stdout)")
        XCTAssertFalse(s.stdout.contains("MX"), s.stdout)
        XCTAssertTrue(lines.contains { $0.hasPrefix("new.allowed.test.  # audit:") }, s.stdout)

        try (allow + s.stdout).write(toFile: file, atomically: true, encoding: .utf8)
        let v = try runCommand(TestPaths.dnsgateBinary, ["validate", "--no-config", "--allow", file])
        XCTAssertEqual(v.status, 0, v.stdout + v.stderr)
        let kept = try runCommand(TestPaths.dnsgateBinary, ["check", "api.svc.allowed.test", "AAAA", "--no-config", "--allow", file])
        XCTAssertEqual(kept.status, 0, "the new entry did not narrow what the wildcard allowed: \(kept.stdout)")
    }

    /// `--diff FILE` compares with the whole running policy, FILE as it is now in place of the version
    /// loaded: an entry in another file still decides its names, so its change is a comment, never a
    /// line that duplicates it.
    func testSuggestDiffKnowsTheOtherFilesOfThePolicy() throws {
        let other = TestPaths.tempDir("other").appendingPathComponent("team.allow").path
        try "shared.allowed.test  A  # another team's\n".write(toFile: other, atomically: true, encoding: .utf8)
        let g = try DNSGateProcess(allow: "www.allowed.test  # base\n", upstreams: [try upstream()],
                                   extraArgs: ["--mode", "audit", "--allow", other])
        _ = try dig(g.port, ["shared.allowed.test", "AAAA"])
        _ = try dig(g.port, ["new.allowed.test", "A"])
        let diff = try g.cli(["suggest", "--diff", g.allowFile])
        XCTAssertEqual(diff.status, 0, diff.stderr)
        let lines = diff.stdout.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains { $0.hasPrefix("# change \(other):1 to: shared.allowed.test.  A,AAAA  # audit") }, diff.stdout)
        XCTAssertFalse(lines.contains { $0.hasPrefix("+ shared.allowed.test") }, "a duplicate of the other file's entry: \(diff.stdout)")
        XCTAssertTrue(lines.contains { $0.hasPrefix("+ new.allowed.test.") }, diff.stdout)
    }

    /// After a restart the server cannot vouch for a period that began before it: a clean-looking
    /// verdict exits 2 and says why, a found violation still exits 1, and a lost mark exits 2.
    func testVerdictOverAPeriodBeforeTheServerStartedIsIncomplete() throws {
        let up = try upstream()
        var g: DNSGateProcess? = try DNSGateProcess(allow: "www.allowed.test  # base\n", upstreams: [up])
        XCTAssertEqual(try g!.cli(["mark", "job-1"]).status, 0)
        _ = try digFrom("127.0.0.5", g!.port, ["exfil.denied.test"])
        let found = try g!.cli(["verdict", "--client", "127.0.0.5", "--since", "10m"])
        XCTAssertEqual(found.status, 1, "a violation found beats a period that may miss others: \(found.stdout)\(found.stderr)")
        XCTAssertTrue(found.stderr.contains("incomplete: the server started at"), found.stderr)
        g!.stop(); g = nil

        let again = try DNSGateProcess(allow: "www.allowed.test  # base\n", upstreams: [up])
        let lost = try again.cli(["verdict", "--client", "127.0.0.5", "--since", "10m"])
        XCTAssertEqual(lost.status, 2, lost.stdout + lost.stderr)
        XCTAssertTrue(lost.stdout.contains("no egress violations found, but some may be missing"), lost.stdout)
        XCTAssertTrue(lost.stderr.contains("incomplete: the server started at "), lost.stderr)
        XCTAssertTrue(lost.stderr.contains(", after the period began"), lost.stderr)
        let json = try again.cli(["verdict", "--client", "127.0.0.5", "--since", "1d", "--json"])
        XCTAssertEqual(json.status, 2, json.stdout + json.stderr)
        XCTAssertTrue(json.stdout.contains("\"incomplete\" : true"), json.stdout)
        XCTAssertTrue(json.stdout.contains("\"verdict\" : \"incomplete\""), json.stdout)
        // A period that has not begun yet (a mistyped date) holds nothing, which is not a clean job.
        let future = try again.cli(["verdict", "--client", "127.0.0.5", "--since", "2099-01-01T00:00:00Z"])
        XCTAssertEqual(future.status, 2, future.stdout + future.stderr)
        XCTAssertTrue(future.stderr.contains("incomplete: the period begins at 2099-01-01T00:00:00"), future.stderr)
        let mark = try again.cli(["verdict", "--client", "127.0.0.5", "--mark", "job-1"])
        XCTAssertEqual(mark.status, 2, mark.stdout + mark.stderr)
        XCTAssertTrue(mark.stderr.contains("mark 'job-1' is unknown to this server"), mark.stderr)

        // A period this server saw whole is complete: a mark, an explicit time after it started, or none.
        XCTAssertEqual(try again.cli(["mark", "job-2"]).status, 0)
        let afterStart = String(Int(Date().timeIntervalSince1970) + 1)
        for period in [["--mark", "job-2"], ["--since", afterStart], []] {
            let r = try again.cli(["verdict", "--client", "127.0.0.5", "--json"] + period)
            XCTAssertEqual(r.status, 0, "\(period): \(r.stdout)\(r.stderr)")
            XCTAssertTrue(r.stdout.contains("\"verdict\" : \"clean\""), r.stdout)
            XCTAssertFalse(r.stderr.contains("incomplete"), r.stderr)
        }
    }

    /// An empty or misspelt runner address is a usage error, never a clean pass; an address spelt
    /// differently from the listener's record (mapped IPv4, uncompressed IPv6) is still that client.
    func testVerdictTakesOnlyAnAddressAndMatchesItHoweverSpelt() throws {
        let v6Port = freePort()
        let g = try DNSGateProcess(allow: "www.allowed.test  # base\n", upstreams: [try upstream()],
                                   extraArgs: ["--listen", "[::1]:\(v6Port)"])
        _ = try digFrom("127.0.0.5", g.port, ["exfil.denied.test"])
        _ = try dig(v6Port, ["-b", "::1", "exfil6.denied.test"], server: "::1")
        for bad in ["", "localhost", "notanip", "127.0.0.5:53", "127.0.0.0/8", "127.0.0.05"] {
            let r = try g.cli(["verdict", "--client", bad, "--since", "10m"])
            XCTAssertEqual(r.status, 64, "'\(bad)': \(r.stdout)\(r.stderr)")
            XCTAssertTrue(r.stderr.contains("expected one IPv4 or IPv6 address"), r.stderr)
        }
        for (spelling, name) in [("::ffff:127.0.0.5", "exfil.denied.test"), ("0:0:0:0:0:0:0:1", "exfil6.denied.test")] {
            let r = try g.cli(["verdict", "--client", spelling, "--since", "10m"])
            XCTAssertEqual(r.status, 1, "\(spelling): \(r.stdout)\(r.stderr)")
            XCTAssertTrue(r.stdout.contains(name), r.stdout)
        }
    }

    /// A `since` no calendar can write (QA pass 5, F1: `verdict --since 1e20` trapped in the time
    /// formatter and took DNS down) or a NaN (an empty period, so "clean") is refused, by the CLI
    /// and by the server for a request that bypasses the CLI; the server keeps answering.
    func testVerdictRefusesASinceOutsideTheCalendar() throws {
        let g = try DNSGateProcess(allow: "www.allowed.test  # base\n", upstreams: [try upstream()])
        _ = try digFrom("127.0.0.5", g.port, ["exfil.denied.test"])
        for bad in ["1e20", "inf", "1e300", "0x10", "1e3", "nan"] {   // decimal digits only (QA pass 6, F10)
            let r = try g.cli(["verdict", "--client", "127.0.0.5", "--since", bad])
            XCTAssertEqual(r.status, 64, "\(bad): \(r.stdout)\(r.stderr)")
        }
        for bad in ["1e20", "-1e20", "inf", "nan", "1e300"] {
            for command in ["verdict", "suggest"] {
                let answer = try DNSGateServerControl.send(command, ["client": "127.0.0.5", "since": bad], socket: g.controlSocket)
                XCTAssertEqual(answer["ok"] as? Bool, false, "\(command) \(bad): \(answer)")
                XCTAssertTrue((answer["error"] as? String)?.contains("since must be epoch seconds") == true, "\(answer)")
            }
        }
        XCTAssertTrue(g.isRunning, g.log)
        XCTAssertEqual(try g.cli(["verdict", "--client", "127.0.0.5", "--since", "10m"]).status, 1, "still serving, still counting")
        XCTAssertEqual(try dig(g.port, ["www.allowed.test"]).status, "NOERROR")
    }

    /// QA pass 6, F1: `suggest --diff FIFO` made the server open the FIFO on its event loop and wait
    /// for a writer: DNS over TCP, the control socket and metrics hung. The CLI now reads the file and
    /// sends its text, the server never opens a path a client names, and a reload refuses an allow
    /// file that is not a regular file at once.
    func testAFIFOHangsNeitherSuggestNorReload() throws {
        let g = try DNSGateProcess(allow: "www.allowed.test  # base\n", upstreams: [try upstream()], extraArgs: ["--mode", "audit"])
        let fifo = g.dir.appendingPathComponent("fifo").path
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let cli = try g.cli(["suggest", "--diff", fifo])
        XCTAssertNotEqual(cli.status, 0)
        XCTAssertTrue(cli.stderr.contains("not a regular file"), cli.stderr)
        let raw = try DNSGateServerControl.send("suggest", ["diff": fifo], socket: g.controlSocket)
        XCTAssertEqual(raw["ok"] as? Bool, false, "\(raw)")
        XCTAssertTrue((raw["error"] as? String)?.contains("needs the file's text") == true, "\(raw)")
        try FileManager.default.removeItem(atPath: g.allowFile)
        XCTAssertEqual(mkfifo(g.allowFile, 0o600), 0)
        let reload = try g.cli(["reload"])
        XCTAssertNotEqual(reload.status, 0)
        XCTAssertTrue(reload.stderr.contains("not a regular file"), reload.stderr)
        XCTAssertEqual(try dig(g.port, ["+tcp", "www.allowed.test"]).status, "NOERROR", "the event loop of DNS over TCP is free")
        XCTAssertEqual(try g.cli(["stats"]).status, 0)
    }

    func testAuditModeForwardsLogsAndSuggestsAnAllowList() throws {
        let g = try DNSGateProcess(allow: "www.allowed.test  # base\n", upstreams: [try upstream()], extraArgs: ["--mode", "audit"])
        let a = try dig(g.port, ["x.denied.test"])
        XCTAssertEqual(a.answers.first?.hasSuffix("192.0.2.66") ?? false, true, "audit forwards names enforce would deny")
        XCTAssertNil(a.edeCode)
        XCTAssertEqual(try dig(g.port, ["txt.allowed.test", "TXT"]).edeCode, 17, "the query-type policy still applies in audit mode")
        for n in ["a", "b", "c", "d", "e", "f"] { _ = try dig(g.port, ["\(n).cdn.allowed.test"]) }
        _ = try dig(g.port, ["registry.allowed.test", "AAAA"])
        XCTAssertTrue(g.queryLogLines.contains { $0.contains("x.denied.test") && $0.contains("\"audit\":true") })

        let s = try g.cli(["suggest"])
        XCTAssertEqual(s.status, 0, s.stderr)
        let lines = s.stdout.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains { $0.hasPrefix("*.cdn.allowed.test.  # audit: 6 queries") }, s.stdout)
        XCTAssertTrue(lines.contains { $0.hasPrefix("# wildcard proposed: 6 distinct names below cdn.allowed.test.") }, s.stdout)
        XCTAssertTrue(lines.contains { $0.hasPrefix("registry.allowed.test.  # audit: 1 query") }, s.stdout)
        XCTAssertFalse(lines.contains { $0.hasPrefix("www.allowed.test") }, "already allowed")
        // The suggestion is a valid allow-list as it stands.
        let entries = try PlainListLoader.load(text: s.stdout, file: "suggest")
        XCTAssertEqual(entries.count, 3, s.stdout)   // *.cdn, registry, x.denied

        let existing = g.dir.appendingPathComponent("existing.allow").path
        try "*.cdn.allowed.test  # reviewed\n".write(toFile: existing, atomically: true, encoding: .utf8)
        let diff = try g.cli(["suggest", "--diff", existing])
        XCTAssertFalse(diff.stdout.contains("cdn.allowed.test"), diff.stdout)
        XCTAssertTrue(diff.stdout.contains("+ registry.allowed.test."), diff.stdout)
    }

    /// Local data that CNAMEs to a name the client's policy forwards is answered with the chain and
    /// the target's answer, as unbound's RPZ answers it: glibc does not ask for a CNAME's target, so
    /// the CNAME alone (as before) left builds with no address. The target is asked only when the
    /// client could have asked for it: a target the policy does not allow never reaches the upstream
    /// (read off the upstream's own query log), and its chain is answered alone.
    func testLocalDataCNAMEToAForwardedNameComesWithTheTargetsAnswer() throws {
        guard let nsd = Self.nsd else { try requireTool("nsd"); throw XCTSkip("nsd did not start") }
        let logging = try LoggingUpstream(nsdPort: nsd.port)
        defer { logging.stop() }
        let files = TestPaths.tempDir("chase")
        try "www.allowed.test  # the mirror\nalias.allowed.test  # a CNAME upstream\n"
            .write(toFile: files.path + "/mirror.allow", atomically: true, encoding: .utf8)
        try """
            $TTL 300
            @ IN SOA ns.example.net. hostmaster.example.net. 1 3600 600 86400 300
            @ IN NS ns.example.net.
            pkgs.ci.test   IN CNAME www.allowed.test.
            first.ci.test  IN CNAME pkgs.ci.test.
            alias.ci.test  IN CNAME alias.allowed.test.
            away.ci.test   IN CNAME www.denied.test.

            """.write(toFile: files.path + "/local.rpz", atomically: true, encoding: .utf8)
        let yaml = "state_file: \"@DIR@/state.json\"\nallow: [\"\(files.path)/mirror.allow\", \"\(files.path)/local.rpz\"]\nsinkhole:\n  ttl: 60\n"
        let g = try DNSGateProcess(allow: nil, upstreams: [logging.address], configYAML: yaml)
        // Answers with the upstream's TTLs left out: unbound in between counts them down.
        func answers(_ args: [String]) throws -> [String] {
            try dig(g.port, args).answers.map { line in
                let f = line.split(separator: " ")
                return f.count > 2 && !f[0].hasSuffix("ci.test.") ? ([f[0]] + f[2...]).joined(separator: " ") : line
            }
        }
        for round in ["from the upstream", "from the cache"] {
            for transport in [[], ["+tcp"]] {
                XCTAssertEqual(try answers(transport + ["pkgs.ci.test", "A"]),
                               ["pkgs.ci.test. 60 IN CNAME www.allowed.test.", "www.allowed.test. IN A 192.0.2.1"], "\(round) \(transport)")
            }
        }
        XCTAssertEqual(try dig(g.port, ["pkgs.ci.test", "A"]).status, "NOERROR")
        XCTAssertEqual(try answers(["pkgs.ci.test", "AAAA"]).last, "www.allowed.test. IN AAAA 2001:db8::1")
        XCTAssertEqual(try answers(["first.ci.test", "A"]),
                       ["first.ci.test. 60 IN CNAME pkgs.ci.test.", "pkgs.ci.test. 60 IN CNAME www.allowed.test.", "www.allowed.test. IN A 192.0.2.1"])
        XCTAssertEqual(try answers(["alias.ci.test", "A"]),
                       ["alias.ci.test. 60 IN CNAME alias.allowed.test.", "alias.allowed.test. IN CNAME www.allowed.test.",
                        "www.allowed.test. IN A 192.0.2.1"], "the upstream's own chain comes along")
        XCTAssertEqual(try dig(g.port, ["pkgs.ci.test", "CNAME"]).answers, ["pkgs.ci.test. 60 IN CNAME www.allowed.test."],
                       "a CNAME question gets the CNAME")
        let away = try dig(g.port, ["away.ci.test", "A"])
        XCTAssertEqual(away.answers, ["away.ci.test. 60 IN CNAME www.denied.test."], "a target the policy denies: the chain alone")
        let asked = logging.loggedQueries().map { "\($0.name) \($0.type)" }
        XCTAssertFalse(asked.contains { $0.contains("denied.test") || $0.contains("ci.test") }, "\(asked)")
        XCTAssertEqual(asked.filter { $0 == "www.allowed.test. A" }.count, 1, "asked once, then cached: \(asked)")
        let logged = waitFor { g.queryLogLines.contains { $0.contains("\"qname\":\"pkgs.ci.test.\"") && $0.contains("\"action\":\"forwarded\"") } }
        XCTAssertTrue(logged, g.queryLogLines.joined(separator: "\n"))
    }

    /// `policy.cname_targets: allowed` end to end: nsd answers an allowed name with a CNAME to a
    /// denied one. The client gets the sinkhole answer naming the target, from the upstream and from
    /// the cache, while a chain inside the allow-list still resolves; without the setting the chain
    /// passes as resolved; in audit mode it passes, is logged, and `suggest` proposes the target.
    func testCNAMETargetsOutsideTheAllowListAreDeniedWhenAsked() throws {
        let up = try upstream()
        let allow = "*.allowed.test  # ours\n"
        let strict = "state_file: \"@DIR@/state.json\"\npolicy:\n  cname_targets: allowed\n"
        let g = try DNSGateProcess(allow: allow, upstreams: [up], configYAML: strict)
        for round in ["from the upstream", "from the cache"] {
            let a = try dig(g.port, ["away.allowed.test", "A"])
            XCTAssertEqual(a.status, "NXDOMAIN", "\(round): \(a.raw)")
            XCTAssertEqual(a.answers, [], round)
            XCTAssertEqual(a.edeCode, 15, round)
            XCTAssertTrue(a.edeText?.contains("CNAME target www.denied.test. not allowed") == true, a.raw)
        }
        XCTAssertEqual(try dig(g.port, ["chain.allowed.test", "A"]).answers.last, "www.allowed.test. 300 IN A 192.0.2.1")
        let cname = try dig(g.port, ["away.allowed.test", "CNAME"])
        XCTAssertEqual(cname.answers, ["away.allowed.test. 300 IN CNAME www.denied.test."],
                       "a CNAME question gets the CNAME; the target is decided when the client asks for it")
        XCTAssertEqual(try dig(g.port, ["www.denied.test", "A"]).edeCode, 15)
        let logged = waitFor { g.queryLogLines.contains { $0.contains("\"qname\":\"away.allowed.test.\"") && $0.contains("\"reason\":\"cname_target\"") } }
        XCTAssertTrue(logged, g.queryLogLines.joined(separator: "\n"))

        let loose = try DNSGateProcess(allow: allow, upstreams: [up], configYAML: "state_file: \"@DIR@/state.json\"\n")
        XCTAssertEqual(try dig(loose.port, ["away.allowed.test", "A"]).answers.first, "away.allowed.test. 300 IN CNAME www.denied.test.",
                       "the default passes the chain as the upstream resolved it")

        let audit = try DNSGateProcess(allow: allow, upstreams: [up], extraArgs: ["--mode", "audit"], configYAML: strict)
        let passed = try dig(audit.port, ["away.allowed.test", "A"])
        XCTAssertEqual(passed.answers.first, "away.allowed.test. 300 IN CNAME www.denied.test.", passed.raw)
        XCTAssertNil(passed.edeCode)
        let audited = waitFor { audit.queryLogLines.contains { $0.contains("away.allowed.test.") && $0.contains("\"audit\":true") && $0.contains("cname_target") } }
        XCTAssertTrue(audited, audit.queryLogLines.joined(separator: "\n"))
        let s = try audit.cli(["suggest"])
        XCTAssertEqual(s.status, 0, s.stderr)
        XCTAssertTrue(s.stdout.split(separator: "\n").contains { $0.hasPrefix("www.denied.test.  # audit: 1 query") }, s.stdout)
    }
}
