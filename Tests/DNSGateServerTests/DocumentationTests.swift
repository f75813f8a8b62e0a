import DNSGateCore
import DNSGateServer
import Foundation
import XCTest

/// The docs are tested like code (CoreDNS's readme_test.go): every fenced example loads through the real
/// loader, the shipped config and presets load together, and the config reference keeps its order.
final class DocumentationTests: XCTestCase {
    private func blocks(_ file: String, tag: String) throws -> [(line: Int, text: String)] {
        let text = try String(contentsOf: TestPaths.packageRoot.appendingPathComponent(file), encoding: .utf8)
        var out: [(Int, String)] = [], current: [String]? = nil, start = 0
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if current == nil, line == "```\(tag)" { current = []; start = i + 2; continue }
            if current != nil, line == "```" { out.append((start, current!.joined(separator: "\n"))); current = nil; continue }
            current?.append(String(line))
        }
        return out
    }

    private var suffixes: PublicSuffixList? {
        PublicSuffixList(contentsOfFile: PublicSuffixList.debianPath)
    }

    func testEveryConfigExampleLoads() throws {
        let examples = try blocks("config/README.md", tag: "yaml")
        XCTAssertGreaterThanOrEqual(examples.count, 8)
        let configDir = TestPaths.packageRoot.appendingPathComponent("config").path
        for (line, yaml) in examples {
            do {
                let c = try ConfigLoader.parse(text: yaml, file: configDir + "/README.md")
                if !c.allowFiles.isEmpty { _ = try PolicyBuilder.build(c, suffixes: suffixes) }
            } catch { XCTFail("config/README.md:\(line): \(error)") }
        }
    }

    func testConfigReferenceSectionsFollowTheQueryPath() throws {
        let text = try String(contentsOf: TestPaths.packageRoot.appendingPathComponent("config/README.md"), encoding: .utf8)
        let headings = text.split(separator: "\n").filter { $0.hasPrefix("## ") }.map { String($0.dropFirst(3)) }
        XCTAssertEqual(headings, ["listen", "allow, mode and policy", "profiles and exceptions", "sinkhole", "cache", "upstreams and upstream",
                                  "tcp", "udp", "detector", "control", "metrics", "log"])
    }

    func testEveryAllowListAndRPZExampleInZonesReadmeLoads() throws {
        let plain = try blocks("zones/README.md", tag: "allowlist"), rpz = try blocks("zones/README.md", tag: "rpz")
        XCTAssertFalse(plain.isEmpty); XCTAssertFalse(rpz.isEmpty)
        var all = AllowList()
        for (line, text) in plain {
            for e in try PlainListLoader.load(text: text, file: "zones/README.md@\(line)", suffixes: suffixes) { try all.add(e) }
        }
        for (line, text) in rpz {
            for e in try RPZLoader.load(text: text, file: "zones/README.md@\(line)", suffixes: suffixes) { try all.add(e) }
        }
        XCTAssertGreaterThan(all.count, 10)
    }

    func testShippedConfigAndAllPresetsLoadTogether() throws {
        let root = TestPaths.packageRoot.path
        var c = try ConfigLoader.load(path: root + "/config/dnsgate.yaml")
        XCTAssertEqual(c.mode, .enforce)
        XCTAssertEqual(c.listen.map(\.description), ["127.0.0.1:53", "[::1]:53"])
        let presets = try FileManager.default.contentsOfDirectory(atPath: root + "/zones/presets").sorted().map { root + "/zones/presets/" + $0 }
        c.allowFiles += presets + [root + "/zones/local-test.rpz"]
        let policy = try PolicyBuilder.build(c, suffixes: suffixes).base
        XCTAssertTrue(policy.allowList.entries.allSatisfy { $0.reason?.isEmpty == false }, "every shipped entry carries a reason")
        let github = try DNSName("github.com")
        guard case .forward = PolicyDecision.decide(policy, name: github, type: .a).action else { return XCTFail("github.com allowed by its preset") }
    }

    func testUDPCoalescingSettingsLoadAndAreBounded() throws {
        let c = try ConfigLoader.parse(text: "udp:\n  coalesce_us: 0\n  coalesce_forwarding_us: 0\n  coalesce_min_qps: 5000\n", file: "x.yaml")
        XCTAssertEqual(c.udpCoalesceMicros, 0)
        XCTAssertEqual(c.udpCoalesceForwardingMicros, 0)
        XCTAssertEqual(c.udpCoalesceMinRate, 5000)
        XCTAssertEqual(ServerConfig().udpCoalesceMicros, 200, "on by default")
        XCTAssertEqual(ServerConfig().udpCoalesceForwardingMicros, 0, "off by default")
        XCTAssertThrowsError(try ConfigLoader.parse(text: "udp:\n  coalesce_us: 5000\n", file: "x.yaml")) { e in
            XCTAssertTrue("\(e)".hasPrefix("x.yaml:2:"), "\(e)")
        }
        XCTAssertThrowsError(try ConfigLoader.parse(text: "udp:\n  coalesce_us: 100\n  coalesce_forwarding_us: -1\n", file: "x.yaml")) { e in
            XCTAssertTrue("\(e)".hasPrefix("x.yaml:3:"), "\(e)")
        }
    }

    func testUnknownConfigKeyIsAnErrorWithItsLine() {
        XCTAssertThrowsError(try ConfigLoader.parse(text: "mode: enforce\nsinkhole:\n  mdoe: nodata\n", file: "x.yaml")) { e in
            XCTAssertEqual("\(e)".prefix(9), "x.yaml:3:", "\(e)")
            XCTAssertTrue("\(e)".contains("unknown key 'mdoe'"))
        }
        XCTAssertThrowsError(try ConfigLoader.parse(text: "mode: enforcing\n", file: "x.yaml")) { e in
            XCTAssertTrue("\(e)".hasPrefix("x.yaml:1:"), "\(e)")
        }
        XCTAssertThrowsError(try ConfigLoader.parse(text: "listen: [\"127.0.0.1:99999\"]\n", file: "x.yaml"))
        XCTAssertThrowsError(try ConfigLoader.parse(text: "sinkhole: { mode: redirect }\n", file: "x.yaml"))
        XCTAssertThrowsError(try ConfigLoader.parse(text: "cache: {min_ttl: 10, max_ttl: 5}\n", file: "x.yaml"))
    }

    /// A client command reads the control socket from `--config`; a file it cannot read is its error,
    /// with the file and line (QA pass 10, F9: it fell back to the default socket, so a typo sent
    /// `allow add` to whichever server listened there).
    func testControlCommandsUseTheConfigsSocketAndRefuseAConfigTheyCannotRead() throws {
        let g = try DNSGateProcess(allow: "*.allowed.test\n", upstreams: ["127.0.0.1:9"])
        let dir = TestPaths.tempDir("control-config")
        let good = dir.appendingPathComponent("good.yaml").path, broken = dir.appendingPathComponent("broken.yaml").path
        try "control: { socket: \"\(g.controlSocket)\" }\n".write(toFile: good, atomically: true, encoding: .utf8)
        try "control: { socket: \"\(g.controlSocket)\" }\nmdoe: enforce\n".write(toFile: broken, atomically: true, encoding: .utf8)

        let stats = try runCommand(TestPaths.dnsgateBinary, ["stats", "--json", "--config", good])
        XCTAssertEqual(stats.status, 0, stats.stderr)
        XCTAssertTrue(stats.stdout.contains("\"queries\""), stats.stdout)
        for command in [["stats"], ["reload"], ["allow", "add", "x.example.com", "--for", "1h", "--reason", "qa"]] {
            let r = try runCommand(TestPaths.dnsgateBinary, command + ["--config", broken])
            XCTAssertTrue(r.stderr.contains("broken.yaml:2:") && r.stderr.contains("unknown key 'mdoe'"), "\(command): \(r.stderr)")
            if command == ["reload"] {
                // Only reload asks all the same, at the socket the file names, so that a server running that
                // file refuses it, logs it and reopens its log (QA pass 11, F2); this one runs no file.
                XCTAssertEqual(r.status, 0, r.stderr)
                XCTAssertTrue(r.stderr.contains("asking the server at \(g.controlSocket) to reload all the same"), r.stderr)
            } else {
                XCTAssertNotEqual(r.status, 0, "\(command)")
            }
            let missing = try runCommand(TestPaths.dnsgateBinary, command + ["--config", dir.appendingPathComponent("none.yaml").path])
            XCTAssertNotEqual(missing.status, 0, "\(command)")
            XCTAssertTrue(missing.stderr.contains("none.yaml"), "\(command): \(missing.stderr)")
        }
        let list = try g.cli(["allow", "list"])
        XCTAssertEqual(list.status, 0, list.stderr)
        XCTAssertFalse(list.stdout.contains("x.example.com"), "nothing was added: \(list.stdout)")
    }

    func testValidateCommandReportsFileAndLine() throws {
        let dir = TestPaths.tempDir("validate")
        let allow = dir.appendingPathComponent("bad.allow").path
        try "good.example.com  # fine\n*.com  # too broad\n".write(toFile: allow, atomically: true, encoding: .utf8)
        let bad = try runCommand(TestPaths.dnsgateBinary, ["validate", "--no-config", "--allow", allow])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("bad.allow:2"), bad.stderr)
        let good = try runCommand(TestPaths.dnsgateBinary, ["validate", "--config", TestPaths.packageRoot.path + "/config/dnsgate.yaml"])
        XCTAssertEqual(good.status, 0, good.stderr)
        XCTAssertTrue(good.stdout.hasPrefix("ok:"), good.stdout)
    }

    /// A path that is not a text file says what it is (QA pass 5, F12: Foundation said "you don't have
    /// permission" for /dev/null and /dev/zero, as root). Only a regular file is read, and opening
    /// one never waits: a FIFO hung the server's event loop on reload or `suggest --diff` (QA pass 6,
    /// F1). `analyze` also reads a pipe or device, up to 256 MiB. An editor's byte-order mark is
    /// dropped, and an allow file that cannot be read is named at the config line that lists it.
    func testAFileThatIsNotTextSaysWhatItIs() throws {
        let dir = TestPaths.tempDir("not-text")
        try Data([0xFF, 0xFE, 0x0A]).write(to: dir.appendingPathComponent("latin1.allow"))
        try Data([0xEF, 0xBB, 0xBF] + Array("www.example.com  # with a BOM\n".utf8)).write(to: dir.appendingPathComponent("bom.allow"))
        let fifo = dir.appendingPathComponent("fifo").path
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        try "allow:\n  - latin1.allow\n".write(toFile: dir.path + "/latin1.yaml", atomically: true, encoding: .utf8)
        let cases: [(args: [String], status: Int32, says: String)] = [
            (["validate", "--config", "/dev/null"], 1, "/dev/null: cannot read: not a regular file"),
            (["validate", "--config", fifo], 1, "fifo: cannot read: not a regular file (a FIFO, socket or device)"),
            (["validate", "--config", dir.path], 1, "\(dir.path): cannot read: is a directory"),
            (["validate", "--config", dir.path + "/latin1.yaml"], 1, "latin1.yaml:2: cannot read allow-list \(dir.path)/latin1.allow: not UTF-8 text"),
            (["validate", "--no-config", "--allow", fifo], 1, "fifo: cannot read allow-list: not a regular file"),
            (["validate", "--no-config", "--allow", dir.path + "/bom.allow"], 0, "1 entries"),
            (["analyze", "/dev/zero"], 2, "/dev/zero: cannot read: larger than 256 MiB"),
            (["analyze", "/dev/null"], 0, "0 queries"),
        ]
        for c in cases {
            let r = try runCommand(TestPaths.dnsgateBinary, c.args, timeout: 20)
            XCTAssertEqual(r.status, c.status, "\(c.args): \(r.stdout)\(r.stderr)")
            XCTAssertTrue((r.stdout + r.stderr).contains(c.says), "\(c.args): \(r.stdout)\(r.stderr)")
        }
    }

    /// QA pass 11: a command that could not do its job says so with a status of its own, never the one
    /// that means an answer (`check`'s 1 is "denied", `verdict`'s 1 "the job egressed"), and a flag's
    /// help lists only what the flag takes (F6, F7).
    func testCommandsThatCannotAnswerSayItWithTheirOwnStatus() throws {
        let dir = TestPaths.tempDir("no-answer")
        let missing = dir.path + "/missing.yaml"
        try "mode: enforse\n".write(toFile: dir.path + "/broken.yaml", atomically: true, encoding: .utf8)
        let cases: [(args: [String], status: Int32, says: String)] = [
            (["check", "www.example.com", "--config", missing], 2, "missing.yaml: cannot read"),
            (["check", "www.example.com", "--config", dir.path + "/broken.yaml"], 2, "broken.yaml:1: "),
            (["verdict", "--client", "192.0.2.7", "--control", dir.path + "/none.sock"], 3, "dnsgate: error: "),
            (["verdict", "--client", "192.0.2.7", "--config", missing], 3, "missing.yaml: cannot read"),
            (["validate", "--no-config", "--sinkhole", "redirect"], 64, "for redirect set sinkhole.mode: redirect with redirect_v4/redirect_v6"),
        ]
        for c in cases {
            let r = try runCommand(TestPaths.dnsgateBinary, c.args, timeout: 20)
            XCTAssertEqual(r.status, c.status, "\(c.args): \(r.stdout)\(r.stderr)")
            XCTAssertTrue((r.stdout + r.stderr).contains(c.says), "\(c.args): \(r.stdout)\(r.stderr)")
        }
        let help = try runCommand(TestPaths.dnsgateBinary, ["serve", "--help"]).stdout
        let flag = help.components(separatedBy: "--sinkhole <mode>").last?.components(separatedBy: "--mode <mode>").first ?? ""
        XCTAssertTrue(flag.contains("drop") && flag.contains("config file only"), help)
        XCTAssertEqual(flag.components(separatedBy: "redirect").count, 2, "redirect only as the config's: \(flag)")
    }

    /// QA pass 11's notes: a negative number or duration is the option's own range error, not the
    /// parser's "Missing value"; a timestamp that names no real date says so; `check --help` lists
    /// only the flags that change its answer, and still takes serve's (scripts pass them along).
    func testOptionMistakesAreSaidAsSuchAndCheckHelpListsOnlyItsFlags() throws {
        let cases: [(args: [String], says: String)] = [
            (["allow", "add", "x.example.com", "--for", "-5m", "--reason", "r"], "--for -5m: a lifetime must be longer than 0"),
            (["allow", "add", "x.example.com", "--for", "0m", "--reason", "r"], "--for 0m: a lifetime must be longer than 0"),
            (["allow", "add", "x.example.com", "--for", "5w", "--reason", "r"], "--for 5w: expected a duration like 90s, 30m, 2h or 1d"),
            (["serve", "--no-config", "--threads", "-1"], "--threads -1: expected 0...64"),
            (["verdict", "--client", "192.0.2.7", "--since", "2026-02-30T00:00:00Z"], "--since 2026-02-30T00:00:00Z: no such date or time"),
            (["verdict", "--client", "192.0.2.7", "--since", "2026-03-01T24:30:00Z"], "no such date or time"),
            (["suggest", "--since", "-30m"], "--since -30m: give a duration ago without a sign, like 30m"),
            (["suggest", "--since", "yesterday"], "--since yesterday: expected epoch seconds, ISO 8601 or a duration like 30m"),
        ]
        for c in cases {
            let r = try runCommand(TestPaths.dnsgateBinary, c.args, timeout: 20)
            XCTAssertEqual(r.status, 64, "\(c.args): \(r.stdout)\(r.stderr)")
            XCTAssertTrue(r.stderr.contains(c.says), "\(c.args): \(r.stderr)")
        }
        let check = try runCommand(TestPaths.dnsgateBinary, ["check", "--help"]).stdout
        for serveOnly in ["--upstream", "--threads", "--query-log", "--dnstap", "--control"] {
            XCTAssertFalse(check.contains(serveOnly), "\(serveOnly) in check --help:\n\(check)")
        }
        for its in ["--config", "--allow", "--listen", "--mode", "--sinkhole", "--listener", "--client"] {
            XCTAssertTrue(check.contains(its), "\(its) missing from check --help:\n\(check)")
        }
        XCTAssertTrue(try runCommand(TestPaths.dnsgateBinary, ["serve", "--help"]).stdout.contains("--upstream <addr:port>"))
        let list = TestPaths.tempDir("check-help").path + "/a.allow"
        try "allowed.test\n".write(toFile: list, atomically: true, encoding: .utf8)
        let passed = try runCommand(TestPaths.dnsgateBinary, ["check", "www.example.com", "--no-config", "--allow", list,
                                                               "--upstream", "127.0.0.1:5399", "--threads", "1"])
        XCTAssertEqual(passed.status, 1, "serve's flags taken, and the name denied: \(passed.stdout)\(passed.stderr)")
    }

    /// Mistakes Yams or the loaders would report without a place, or not at all, name the config line.
    func testValidateNamesTheConfigLineOfEachMistake() throws {
        let dir = TestPaths.tempDir("validate-lines")
        try "www.example.com  # fine\n".write(toFile: dir.path + "/a.allow", atomically: true, encoding: .utf8)
        let cases: [(yaml: String, flags: [String], error: String)] = [
            ("allow: [a.allow]\nmode: audit\nallow: [a.allow]\n", [], "dnsgate.yaml:3: duplicate key 'allow' (first at line 1)"),
            ("mode: audit\nallow:\n  - a.allow\n  - nope.allow\n", [], "dnsgate.yaml:4: cannot read allow-list \(dir.path)/nope.allow: No such file"),
            ("", ["--allow", dir.path + "/nope.allow"], "error: \(dir.path)/nope.allow: cannot read allow-list: No such file"),
            ("listen: [\"127.0.0.1:5353\"]\nprofiles:\n  - name: p\n    listeners:\n      - 127.0.0.1:5353\n      - 127.0.0.2:5353\n",
             [], "dnsgate.yaml:6: profile 'p' listener 127.0.0.2:5353 is not under listen:"),
            ("policy:\n  default_types: [A,\n    OPT]\n", [], "dnsgate.yaml:3: unknown query type 'OPT'"),
            ("policy:\n  default_types: [A, AAAA,\n    A]\n", [], "dnsgate.yaml:3: query type A is listed twice"),
            ("policy:\n  default_types: []\n", [], "dnsgate.yaml:2: default_types must name at least one type"),
            ("policy:\n  default_types: [A]\n  cname_targets: listed\n", [], "dnsgate.yaml:3: policy.cname_targets must be any or allowed, not 'listed'"),
            ("control:\n  mode: \"0666\"\n", [], "dnsgate.yaml:2: control.mode 0666 lets every local user"),
            ("detector:\n  domains:\n    - volume_budget_bytes: 9000\n", [], "dnsgate.yaml:3: a detector domain needs `domain: NAME`"),
            ("detector:\n  domains:\n    - domain: example.com\n", [], "dnsgate.yaml:3: domain example.com sets no limit"),
            ("detector:\n  domains:\n    - domain: example.com\n      volume_budget_bytes: 9000\n    - domain: EXAMPLE.com.\n      volume_budget_bytes: 9000\n",
             [], "dnsgate.yaml:5: domain example.com is given twice (first at line 3)"),
            ("detector:\n  domains:\n    - domain: co.uk\n      volume_budget_bytes: 9000\n", [], "dnsgate.yaml:3: detector domain co.uk is a public suffix"),
            ("detector:\n  domains:\n    - domain: www.example.com\n      volume_budget_bytes: 9000\n", [],
             "dnsgate.yaml:3: detector domain www.example.com is not a registered domain, and the detector counts per registered domain: write example.com"),
            ("detector:\n  rate_spike_names_per_minute: 1\n", [], "dnsgate.yaml:2: 1 is outside 2...10000000"),
            ("detector:\n  domains:\n    - domain: bücher.example\n      volume_budget_bytes: 9000\n", [],
             "dnsgate.yaml:3: 'bücher.example' is not ASCII; write an internationalized name in its xn-- form"),
            ("detector:\n  domains:\n    - domain: exa mple.com\n      volume_budget_bytes: 9000\n", [], "dnsgate.yaml:3: 'exa\\032mple.com' contains a space or control character"),
            ("detector:\n  domains:\n    - domain: 192.0.2.1\n      volume_budget_bytes: 9000\n", [], "dnsgate.yaml:3: 192.0.2.1 is an IP address"),
            // QA pass 11, F9 and F10: nothing to serve, a port nobody knows, the DNS port for metrics, a loop.
            ("listen: []\n", [], "dnsgate.yaml:1: listen: [] would serve nothing"),
            ("listen: [\"127.0.0.1:0\"]\n", [], "dnsgate.yaml:1: expected ADDRESS[:PORT] or [IPV6]:PORT, not '127.0.0.1:0'"),
            ("metrics:\n  listen: 127.0.0.1\n", [], "dnsgate.yaml:2: expected ADDRESS:PORT or [IPV6]:PORT, not '127.0.0.1'"),
            ("listen: [\"127.0.0.1:5353\"]\nupstreams:\n  - 192.0.2.53\n  - 127.0.0.1:5353\n", [],
             "dnsgate.yaml:4: upstream 127.0.0.1:5353 is dnsgate's own listen address 127.0.0.1:5353"),
            ("listen: [\"[::]:5353\"]\nupstreams: [\"[::1]:5353\"]\n", [], "dnsgate.yaml:2: upstream [::1]:5353 is dnsgate's own listen address [::]:5353"),
            // A list the configuration names must be there: without it `*.co.uk` would load (QA pass 11, F1).
            ("allow: [a.allow]\npublic_suffix_list: /nonexistent/psl.dat\n", [], "dnsgate.yaml:2: public_suffix_list /nonexistent/psl.dat: cannot read it"),
        ]
        for (yaml, flags, error) in cases {
            try yaml.write(toFile: dir.path + "/dnsgate.yaml", atomically: true, encoding: .utf8)
            let r = try runCommand(TestPaths.dnsgateBinary, ["validate", "--config", dir.path + "/dnsgate.yaml"] + flags)
            XCTAssertEqual(r.status, 1, yaml + r.stdout)
            XCTAssertTrue(r.stderr.contains(error), "\(yaml)\nwanted: \(error)\ngot: \(r.stderr)")
        }
        // The listener check applies to the addresses actually served, command-line ones included.
        try cases[3].yaml.write(toFile: dir.path + "/dnsgate.yaml", atomically: true, encoding: .utf8)
        let served = try runCommand(TestPaths.dnsgateBinary, ["validate", "--config", dir.path + "/dnsgate.yaml",
                                                              "--listen", "127.0.0.1:5353", "--listen", "127.0.0.2:5353"])
        XCTAssertEqual(served.status, 0, served.stderr)
    }

    func testCheckCommandNamesTheDecidingEntry() throws {
        let cfg = TestPaths.packageRoot.path + "/config/dnsgate.yaml"
        let allowed = try runCommand(TestPaths.dnsgateBinary, ["check", "www.example.org", "--config", cfg])
        XCTAssertEqual(allowed.status, 0, allowed.stderr)
        XCTAssertTrue(allowed.stdout.contains("*.example.org. at "), allowed.stdout)
        XCTAssertTrue(allowed.stdout.contains("default.allow:"), allowed.stdout)
        let denied = try runCommand(TestPaths.dnsgateBinary, ["check", "exfil.example.net", "TXT", "--json", "--config", cfg])
        XCTAssertEqual(denied.status, 1)
        XCTAssertTrue(denied.stdout.contains("\"action\":\"sinkhole nxdomain\""), denied.stdout)
        // A bad argument is check's usage error (64, check's usage line), not 1 and not the root's usage.
        for args in [["a..b.example.com"], ["www.example.org", "NOSUCHTYPE"], ["www.example.org", "--client", "runner-1"]] {
            let bad = try runCommand(TestPaths.dnsgateBinary, ["check"] + args + ["--config", cfg])
            XCTAssertEqual(bad.status, 64, "\(args): \(bad.stderr)")
            XCTAssertTrue(bad.stderr.contains("Usage: dnsgate check "), "\(args): \(bad.stderr)")
        }
    }
}
