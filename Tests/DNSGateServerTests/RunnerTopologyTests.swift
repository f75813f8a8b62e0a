import Foundation
import XCTest

/// The runner topology, for real: dnsgate on port 53 of a "host" network namespace, runners in their own
/// namespaces whose /etc/resolv.conf names it, and ordinary programs (glibc's `getent`, `curl`) resolving
/// through it. Everything lives in namespaces the test creates (addresses from 192.0.2.0/24 exist only
/// there, no default routes) and is deleted in teardown, failed test or not. See Harness/Netns.swift.
final class RunnerTopologyTests: XCTestCase {
    static let httpPort = 8080
    static let nsdPort = 5353
    /// A fast answer is a few milliseconds; glibc's resolver timeout (the failure mode we rule out) is 5 s.
    static let fastLimit = 1.5

    /// The servers of one topology: nsd and dnsgate inside the host namespace, an HTTP server on the
    /// host-side address.
    struct Running {
        let topo: RunnerTopology
        let dir: URL
        let configPath: String
        let dnsgate: NetnsDaemon
        let nsd: NetnsDaemon
        let http: NetnsDaemon
        let token: String
        var queryLog: [String] {
            ((try? String(contentsOfFile: dir.appendingPathComponent("queries.jsonl").path, encoding: .utf8)) ?? "")
                .split(separator: "\n").map(String.init)
        }
    }

    /// - Parameters:
    ///   - prepare: runs once the namespaces exist, before any server starts.
    ///   - editConfig: rewrites the filled-in config before dnsgate reads it.
    private func startTopology(configTemplate: String, prepare: (RunnerTopology) throws -> Void = { _ in },
                               editConfig: (String) -> String = { $0 }) throws -> Running {
        try RunnerTopology.requireNetns()
        for tool in ["nsd", "dig", "curl", "getent", "python3"] { try requireTool(tool) }
        let bin = TestPaths.dnsgateBinary
        guard FileManager.default.isExecutableFile(atPath: bin) else {
            XCTFail("dnsgate binary not found at \(bin); run `swift build` first or set DNSGATE_BIN")
            throw XCTSkip("no dnsgate binary")
        }
        let topo = RunnerTopology()
        addTeardownBlock {
            topo.destroy()
            XCTAssertEqual(topo.existingNamespaces(), [], "teardown left namespaces behind")
        }
        try topo.build()
        try prepare(topo)

        let fixtures = TestPaths.fixtures.appendingPathComponent("topology")
        let dir = TestPaths.tempDir("topology")
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }

        // nsd on the host namespace's loopback.
        let nsdConf = try String(contentsOf: fixtures.appendingPathComponent("nsd.conf.in"), encoding: .utf8)
            .replacingOccurrences(of: "@DIR@", with: dir.path)
            .replacingOccurrences(of: "@PORT@", with: "\(Self.nsdPort)")
            .replacingOccurrences(of: "@FIXTURES@", with: fixtures.path)
        let nsdConfPath = dir.appendingPathComponent("nsd.conf").path
        try nsdConf.write(toFile: nsdConfPath, atomically: true, encoding: .utf8)
        let nsd = try topo.start("nsd", in: topo.host, "/usr/sbin/nsd", ["-d", "-c", nsdConfPath],
                                 logFile: dir.appendingPathComponent("nsd.stdout"))
        let nsdUp = pollUntil(timeout: 10) {
            let r = try? topo.exec(topo.host, ["dig", "@127.0.0.1", "-p", "\(Self.nsdPort)", "+time=1", "+tries=1", "www.allowed.test"], timeout: 4)
            return r?.stdout.contains("status: NOERROR") == true
        }
        guard nsdUp else { throw TopologyError("nsd did not answer in \(topo.host): \(nsd.log)") }

        // dnsgate on 192.0.2.1:53, its allow-lists beside its config.
        for f in ["default.allow", "build.allow", "release.allow", "local.rpz"] {
            try FileManager.default.copyItem(at: fixtures.appendingPathComponent(f), to: dir.appendingPathComponent(f))
        }
        let config = editConfig(try String(contentsOf: fixtures.appendingPathComponent(configTemplate), encoding: .utf8)
            .replacingOccurrences(of: "@DIR@", with: dir.path)
            .replacingOccurrences(of: "@NSDPORT@", with: "\(Self.nsdPort)"))
        let configPath = dir.appendingPathComponent("dnsgate.yaml").path
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        let gate = try topo.start("dnsgate", in: topo.host, bin, ["serve", "--config", configPath],
                                  logFile: dir.appendingPathComponent("dnsgate.log"))
        guard gate.waitForLog("dnsgate started") else { throw TopologyError("dnsgate did not start: \(gate.log)") }

        // A tiny HTTP server on the host-side address, serving one file with a per-run token.
        let www = dir.appendingPathComponent("www")
        try FileManager.default.createDirectory(at: www, withIntermediateDirectories: true)
        let token = "dnsgate-topology-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try (token + "\n").write(to: www.appendingPathComponent("hello.txt"), atomically: true, encoding: .utf8)
        // The interpreter itself, not a wrapper script (pyenv shims): its PID is what we stop.
        let python = try runCommand("python3", ["-c", "import sys; print(sys.executable)"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let http = try topo.start("http", in: topo.host, python,
                                  ["-m", "http.server", "\(Self.httpPort)", "--bind", RunnerTopology.hostAddress, "--directory", www.path],
                                  logFile: dir.appendingPathComponent("http.log"))
        let httpUp = pollUntil(timeout: 10) {
            (try? topo.exec(topo.host, ["curl", "-sf", "--max-time", "2", "http://\(RunnerTopology.hostAddress):\(Self.httpPort)/hello.txt"], timeout: 4))?.status == 0
        }
        guard httpUp else { throw TopologyError("HTTP server did not start: \(http.log)") }

        // The PIDs we hold are the servers themselves, not `ip`: stopping them by PID stops the servers.
        XCTAssertEqual(gate.exePath, URL(fileURLWithPath: bin).resolvingSymlinksInPath().path)
        XCTAssertEqual(nsd.exePath, "/usr/sbin/nsd")
        XCTAssertEqual(http.exePath, URL(fileURLWithPath: python).resolvingSymlinksInPath().path)
        return Running(topo: topo, dir: dir, configPath: configPath, dnsgate: gate, nsd: nsd, http: http, token: token)
    }

    /// Runs `cmd` inside a namespace and measures it.
    private func timed(_ t: RunnerTopology, _ ns: String, _ cmd: [String]) throws -> (CommandResult, Double) {
        let start = Date()
        let r = try t.exec(ns, cmd, timeout: 20)
        return (r, Date().timeIntervalSince(start))
    }

    private func digIn(_ t: RunnerTopology, _ ns: String, _ args: [String]) throws -> DigAnswer {
        let r = try t.exec(ns, ["dig", "@\(RunnerTopology.hostAddress)", "+time=2", "+tries=1"] + args, timeout: 10)
        return DigAnswer(raw: r.stdout + r.stderr)
    }

    // MARK: - glibc and curl through dnsgate

    func testRunnersResolveThroughDNSGateWithGlibcAndFetchOverHTTP() throws {
        let run = try startTopology(configTemplate: "dnsgate.yaml.in")
        let t = run.topo
        let url = { (name: String) in "http://\(name):\(Self.httpPort)/hello.txt" }

        for role in ["a", "b"] {
            let ns = t.runners[role]!
            let resolv = try t.exec(ns, ["cat", "/etc/resolv.conf"])
            XCTAssertEqual(resolv.stdout, "nameserver \(RunnerTopology.hostAddress)\n", "runner \(role) must see its own resolv.conf")

            // The ordinary glibc path: nsswitch "files dns", resolv.conf, dnsgate, nsd.
            let (ok, okTime) = try timed(t, ns, ["getent", "hosts", "www.allowed.test"])
            XCTAssertEqual(ok.status, 0, "runner \(role): \(ok.stderr)")
            XCTAssertEqual(ok.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init),
                           ["192.0.2.1", "www.allowed.test"], "runner \(role)")
            XCTAssertLessThan(okTime, Self.fastLimit)

            // A denied name fails, and fast: dnsgate answers NXDOMAIN at once, glibc does not wait 5 s.
            let (denied, deniedTime) = try timed(t, ns, ["getent", "hosts", "evil.denied.test"])
            XCTAssertNotEqual(denied.status, 0, "runner \(role): a denied name must not resolve: \(denied.stdout)")
            XCTAssertFalse(denied.stdout.contains("192.0.2.66"), "the denied query reached the upstream")
            XCTAssertLessThan(deniedTime, Self.fastLimit, "runner \(role): denied lookup took \(deniedTime) s")

            // curl: getaddrinfo, then HTTP to the host-side address the allowed name resolves to.
            let fetch = try t.exec(ns, ["curl", "-sS", "--max-time", "10", url("www.allowed.test")])
            XCTAssertEqual(fetch.status, 0, "runner \(role): \(fetch.stderr)")
            XCTAssertEqual(fetch.stdout, run.token + "\n")

            // Local data behind a CNAME (local.rpz): glibc does not ask for the target itself, so the
            // address must come with the CNAME (QA pass 10, F1).
            let (aliased, _) = try timed(t, ns, ["getent", "hosts", "pkgs.ci.test"])
            XCTAssertEqual(aliased.status, 0, "runner \(role): \(aliased.stderr)")
            XCTAssertEqual(aliased.stdout.split(separator: " ").first, "192.0.2.1", "runner \(role): \(aliased.stdout)")
            XCTAssertEqual(try t.exec(ns, ["curl", "-sS", "--max-time", "10", url("pkgs.ci.test")]).stdout, run.token + "\n")
            // And behind a CNAME to an allowed name the upstream answers: its answer comes with the CNAME
            // (it came alone before, and glibc found no address).
            let (mirrored, _) = try timed(t, ns, ["getent", "hosts", "mirror.ci.test"])
            XCTAssertEqual(mirrored.status, 0, "runner \(role): \(mirrored.stderr)")
            XCTAssertEqual(mirrored.stdout.split(separator: " ").first, "192.0.2.1", "runner \(role): \(mirrored.stdout)")
            XCTAssertEqual(try t.exec(ns, ["curl", "-sS", "--max-time", "10", url("mirror.ci.test")]).stdout, run.token + "\n")
            let (blocked, blockedTime) = try timed(t, ns, ["curl", "-sS", "--max-time", "10", url("evil.denied.test")])
            XCTAssertEqual(blocked.status, 6, "curl exit 6 is 'could not resolve host': \(blocked.stderr)")
            XCTAssertTrue(blocked.stderr.contains("Could not resolve host"), blocked.stderr)
            XCTAssertLessThan(blockedTime, Self.fastLimit, "runner \(role): curl to a denied name took \(blockedTime) s")
        }

        // The answers came from dnsgate, which logged who asked.
        let sinkholed = pollUntil(timeout: 5) {
            run.queryLog.contains { $0.contains("\"client\":\"192.0.2.20") && $0.contains("evil.denied.test.") && $0.contains("\"action\":\"sinkholed\"") }
        }
        XCTAssertTrue(sinkholed, run.queryLog.joined(separator: "\n"))
        XCTAssertTrue(run.queryLog.contains { $0.contains("\"client\":\"192.0.2.40") && $0.contains("www.allowed.test.") },
                      run.queryLog.joined(separator: "\n"))
        XCTAssertTrue(run.http.log.contains("192.0.2.20") && run.http.log.contains("192.0.2.40"), run.http.log)

        // The runner has no other way out: no route beyond the bridge's /24.
        let routes = try t.exec(t.runners["a"]!, ["ip", "route", "show"])
        XCTAssertFalse(routes.stdout.contains("default"), routes.stdout)
    }

    // MARK: - wildcard listeners

    /// Listening on 0.0.0.0 and [::], as the shipped container config does, a reply leaves from the
    /// address its query was sent to. The host has two addresses of each family on one interface; the
    /// kernel would answer every query from the one it prefers, which the client drops (dig: "reply
    /// from unexpected source"), so without IP_PKTINFO the queries to the other address fail, whichever
    /// it is. Each address gets a denied name, a cache miss (answered later, from the listener's
    /// upstream wait), the same name again (a cache hit), and a miss whose upstream answer comes back
    /// truncated (asked again over TCP and answered from the event loop).
    func testAWildcardListenerAnswersFromTheAddressAsked() throws {
        let r = try startTopology(configTemplate: "wildcard.yaml.in")
        let t = r.topo, runner = t.runners["a"]!
        try t.ip(["-n", t.host, "addr", "add", "192.0.2.2/24", "dev", "br0"])
        try t.ip(["-n", t.host, "addr", "add", "2001:db8::1/64", "dev", "br0", "nodad"])
        try t.ip(["-n", t.host, "addr", "add", "2001:db8::2/64", "dev", "br0", "nodad"])
        try t.ip(["-n", runner, "addr", "add", "2001:db8::20/64", "dev", "eth0", "nodad"])
        // Link-local too: the reply must leave from fe80::1 on the interface the query came in on.
        try t.ip(["-n", t.host, "addr", "add", "fe80::1/64", "dev", "br0", "nodad"])
        try t.ip(["-n", t.host, "addr", "add", "fe80::2/64", "dev", "br0", "nodad"])
        try t.ip(["-n", runner, "addr", "add", "fe80::20/64", "dev", "eth0", "nodad"])
        let servers = ["192.0.2.2", "2001:db8::2", RunnerTopology.hostAddress, "2001:db8::1", "fe80::1%eth0", "fe80::2%eth0"]
        for (i, server) in servers.enumerated() {
            let queries = [("\(i).miss.allowed.test", "NOERROR", 1), ("\(i).miss.allowed.test", "NOERROR", 1),
                           ("evil.denied.test", "NXDOMAIN", 0), ("\(i).big.allowed.test", "NOERROR", 100)]
            for (name, status, answers) in queries {
                let q = try t.exec(runner, ["dig", "@\(server)", "+time=2", "+tries=1", "+bufsize=4096", "+ignore", name], timeout: 10)
                let a = DigAnswer(raw: q.stdout + q.stderr)
                XCTAssertEqual(a.status, status, "\(name) via \(server): \(a.raw)")
                XCTAssertEqual(a.answers.count, answers, "\(name) via \(server): \(a.raw)")
                XCTAssertTrue(q.stdout.contains("#53(\(server))"), "answered from \(server): \(a.raw)")   // ";; SERVER: fe80::1%2#53(fe80::1%eth0)"
            }
        }
        // Each path named above was taken: the second query of each miss name came from the cache.
        let served = pollUntil(timeout: 5) {
            let log = r.queryLog
            return servers.indices.allSatisfy { i in
                ["forwarded", "cached"].allSatisfy { action in
                    log.contains { $0.contains("\"\(i).miss.allowed.test.\"") && $0.contains("\"action\":\"\(action)\"") }
                }
            }
        }
        XCTAssertTrue(served, r.queryLog.joined(separator: "\n"))
    }

    /// The shipped container config's listeners, `0.0.0.0:53` beside `[::]:53`, start on a network
    /// without IPv6 (Docker disables it on a container's interfaces on an IPv4-only network; here on
    /// every interface of the namespace) and serve IPv4 there.
    func testTheContainerConfigsListenersStartWhereIPv6IsDisabled() throws {
        let shipped = try String(contentsOf: TestPaths.packageRoot.appendingPathComponent("config/container/dnsgate.yaml"), encoding: .utf8)
        let listen = shipped.split(separator: "\n").drop { $0 != "listen:" }.dropFirst().prefix { $0.hasPrefix("  - ") }
            .map { $0.dropFirst(4).split(separator: "#")[0].trimmingCharacters(in: .whitespaces) }
        XCTAssertEqual(listen, ["0.0.0.0:53", "\"[::]:53\""])
        let r = try startTopology(configTemplate: "dnsgate.yaml.in", prepare: { t in
            for iface in ["all", "default", "lo", "br0"] {
                let set = try t.exec(t.host, ["sysctl", "-qw", "net.ipv6.conf.\(iface).disable_ipv6=1"])
                if set.status != 0 { throw TopologyError("sysctl in \(t.host): \(set.stderr)") }
            }
        }, editConfig: {   // the metrics listener too: it once went through getaddrinfo, which refuses `::` here
            $0.replacingOccurrences(of: "listen: [192.0.2.1:53]", with: "listen: [\(listen.joined(separator: ", "))]")
                + "metrics: { listen: \"[::]:9153\" }\n"
        })
        let t = r.topo
        XCTAssertEqual(try t.exec(t.host, ["ip", "-6", "addr", "show"]).stdout, "", "no IPv6 address left in the namespace")
        for bound in ["udp://0.0.0.0:53", "udp://[::]:53", "tcp://[::]:53", "http://[::]:9153"] {
            XCTAssertTrue(r.dnsgate.log.contains(bound), "\(bound) in \(r.dnsgate.log)")
        }
        // `[::]` is IPv6 only, as for DNS: it does not open the metrics on every IPv4 address too.
        let v4 = try t.exec(t.host, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3", "http://127.0.0.1:9153/metrics"], timeout: 10)
        XCTAssertEqual(v4.stdout, "000", "refused over IPv4")
        XCTAssertEqual(try digIn(t, t.runners["a"]!, ["www.allowed.test"]).status, "NOERROR")
    }

    /// A listen address no interface has yet (docker0 before docker starts) does not stop the start:
    /// the other addresses serve, a warning names it, and it answers, UDP and TCP, once it appears.
    /// IPv4 and IPv6 (the kernel honours IP_FREEBIND on IPv6 sockets too).
    func testAListenAddressThatAppearsLaterIsServedOnceItDoes() throws {
        let r = try startTopology(configTemplate: "later.yaml.in")
        let t = r.topo, runner = t.runners["a"]!
        for later in ["192.0.2.3:53", "[2001:db8::3]:53"] {
            XCTAssertTrue(r.dnsgate.log.split(separator: "\n").contains { $0.contains("listen address is on no interface yet") && $0.contains(later) }, r.dnsgate.log)
        }
        XCTAssertTrue(r.dnsgate.log.contains("metrics address is on no interface yet"), r.dnsgate.log)
        XCTAssertTrue(try digIn(t, runner, ["www.allowed.test"]).raw.contains("status: NOERROR"))
        try t.ip(["-n", t.host, "addr", "add", "192.0.2.3/24", "dev", "br0"])
        try t.ip(["-n", t.host, "addr", "add", "2001:db8::3/64", "dev", "br0", "nodad"])
        try t.ip(["-n", runner, "addr", "add", "2001:db8::20/64", "dev", "eth0", "nodad"])
        for server in ["192.0.2.3", "2001:db8::3"] {
            for proto in ["+notcp", "+tcp"] {
                let q = try t.exec(runner, ["dig", "@\(server)", proto, "+time=2", "+tries=1", "www.allowed.test"], timeout: 10)
                XCTAssertTrue(q.stdout.contains("status: NOERROR"), "\(proto) to \(server), added later: \(q.stdout)\(q.stderr)")
            }
        }
        let scrape = try t.exec(runner, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3", "http://192.0.2.3:9153/metrics"], timeout: 10)
        XCTAssertEqual(scrape.stdout, "200", "metrics on the address added later")
    }

    // MARK: - per-stage profiles

    func testTwoRunnersWithDifferentProfilesGetDifferentAnswers() throws {
        let run = try startTopology(configTemplate: "profiles.yaml.in")
        let t = run.topo
        let build = t.runners["a"]!, release = t.runners["b"]!

        // Offline, `check` names the profile it chose for each runner's address.
        let bin = TestPaths.dnsgateBinary
        let checkBuild = try runCommand(bin, ["check", "pkg.allowed.test", "--client", "192.0.2.20", "--config", run.configPath])
        XCTAssertEqual(checkBuild.status, 0, checkBuild.stdout + checkBuild.stderr)
        XCTAssertTrue(checkBuild.stdout.contains("profile: build"), checkBuild.stdout)
        let checkRelease = try runCommand(bin, ["check", "pkg.allowed.test", "--client", "192.0.2.40", "--config", run.configPath])
        XCTAssertEqual(checkRelease.status, 1, checkRelease.stdout + checkRelease.stderr)
        XCTAssertTrue(checkRelease.stdout.contains("profile: release"), checkRelease.stdout)

        // The same name, two runners, two answers, through glibc.
        let (b, _) = try timed(t, build, ["getent", "hosts", "pkg.allowed.test"])
        XCTAssertEqual(b.status, 0, b.stderr)
        XCTAssertTrue(b.stdout.hasPrefix("192.0.2.1 "), b.stdout)
        let (r, rTime) = try timed(t, release, ["getent", "hosts", "pkg.allowed.test"])
        XCTAssertNotEqual(r.status, 0, "the release profile does not list pkg.allowed.test: \(r.stdout)")
        XCTAssertLessThan(rTime, Self.fastLimit, "REFUSED must fail fast too (\(rTime) s)")

        // Each profile's sinkhole: release answers REFUSED, build the top-level NXDOMAIN; both say why.
        let relDig = try digIn(t, release, ["pkg.allowed.test", "A"])
        XCTAssertEqual(relDig.status, "REFUSED", relDig.raw)
        XCTAssertEqual(relDig.edeCode, 15, relDig.raw)
        let buildDenied = try digIn(t, build, ["evil.denied.test", "A"])
        XCTAssertEqual(buildDenied.status, "NXDOMAIN", buildDenied.raw)
        // Names both profiles list are answered for both.
        XCTAssertEqual(try digIn(t, release, ["www.allowed.test", "A"]).answers, ["www.allowed.test. 300 IN A 192.0.2.1"])

        // A client no profile selects (the host namespace, 192.0.2.1) gets the top-level policy.
        XCTAssertEqual(try digIn(t, t.host, ["pkg.allowed.test", "A"]).status, "NXDOMAIN")
        XCTAssertEqual(try digIn(t, t.host, ["www.allowed.test", "A"]).status, "NOERROR")

        // And what a build does with it: the build runner downloads, the release runner fails fast.
        let url = "http://pkg.allowed.test:\(Self.httpPort)/hello.txt"
        let fetched = try t.exec(build, ["curl", "-sS", "--max-time", "10", url])
        XCTAssertEqual(fetched.stdout, run.token + "\n", fetched.stderr)
        let (refused, refusedTime) = try timed(t, release, ["curl", "-sS", "--max-time", "10", url])
        XCTAssertEqual(refused.status, 6, refused.stderr)
        XCTAssertLessThan(refusedTime, Self.fastLimit)
    }

    // MARK: - the harness cleans up after itself

    func testTeardownStopsServersAndDeletesNamespaces() throws {
        try RunnerTopology.requireNetns()
        let topo = RunnerTopology()
        addTeardownBlock { topo.destroy() }
        try topo.build()
        XCTAssertEqual(Set(topo.existingNamespaces()), Set([topo.host] + topo.runners.values))
        let sleeper = try topo.start("sleep", in: topo.host, "/bin/sleep", ["600"], logFile: TestPaths.tempDir("sleep").appendingPathComponent("log"))
        XCTAssertEqual(sleeper.exePath.map { URL(fileURLWithPath: $0).lastPathComponent }, "sleep", "the PID must be the program's, not ip's")
        let pid = sleeper.pid
        topo.destroy()
        XCTAssertFalse(sleeper.isRunning)
        XCTAssertNotEqual(kill(pid, 0), 0, "process \(pid) survived teardown")
        XCTAssertEqual(topo.existingNamespaces(), [])
        for ns in topo.runners.values { XCTAssertFalse(FileManager.default.fileExists(atPath: "/etc/netns/\(ns)")) }
        let links = try runCommand("/usr/sbin/ip", ["-o", "link", "show"]).stdout
        XCTAssertFalse(links.contains(topo.linkPrefix), links)
    }
}

// MARK: - packaging: Dockerfile, compose, container config, systemd unit

/// No container engine runs on the test machines: the namespace tests above prove the topology; these
/// check that the packaging files are well-formed and agree with the README and the shipped config.
final class RunnerTopologyPackagingTests: XCTestCase {
    let root = TestPaths.packageRoot
    var containerDir: URL { root.appendingPathComponent("config/container") }

    struct Instruction { let keyword: String; let args: String; let line: Int }

    /// Dockerfile instructions with continuations joined; fails on an unknown instruction.
    func parseDockerfile(_ text: String) -> [Instruction] {
        let known: Set<String> = ["FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
                                  "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL", "MAINTAINER"]
        var out: [Instruction] = []
        var pending: (String, Int)? = nil
        for (i, raw) in text.components(separatedBy: "\n").enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if pending == nil && (line.isEmpty || line.hasPrefix("#")) { continue }
            if pending != nil && line.hasPrefix("#") { continue }          // comments inside a continuation
            let continues = line.hasSuffix("\\")
            let body = continues ? String(line.dropLast()) : line
            if var p = pending {
                p.0 += " " + body
                pending = p
            } else {
                pending = (body, i + 1)
            }
            if !continues, let (full, start) = pending {
                pending = nil
                let kw = String(full.prefix { !$0.isWhitespace })
                XCTAssertTrue(known.contains(kw.uppercased()) && kw == kw.uppercased(), "Dockerfile:\(start): unknown instruction '\(kw)'")
                out.append(Instruction(keyword: kw, args: full.dropFirst(kw.count).trimmingCharacters(in: .whitespaces), line: start))
            }
        }
        XCTAssertNil(pending, "Dockerfile ends inside a continuation")
        return out
    }

    func testDockerfileIsWellFormedAndBuildsLikeTheQuickStart() throws {
        let text = try String(contentsOf: containerDir.appendingPathComponent("Dockerfile"), encoding: .utf8)
        let ins = parseDockerfile(text)
        XCTAssertEqual(ins.first?.keyword, "FROM", "a Dockerfile starts with FROM (ARG aside)")

        // Stages: every FROM is named, names are unique, COPY --from names an earlier stage.
        var stages: [(name: String, image: String, body: [Instruction])] = []
        for i in ins {
            if i.keyword == "FROM" {
                let f = i.args.split(separator: " ").map(String.init)
                XCTAssertTrue(f.count == 3 && f[1].uppercased() == "AS", "Dockerfile:\(i.line): name every stage (FROM image AS name)")
                guard f.count == 3 else { continue }
                XCTAssertFalse(stages.contains { $0.name == f[2] }, "Dockerfile:\(i.line): stage \(f[2]) named twice")
                stages.append((f[2], f[0], []))
            } else if !stages.isEmpty {
                stages[stages.count - 1].body.append(i)
                if i.keyword == "COPY", let r = i.args.range(of: "--from=") {
                    let from = i.args[r.upperBound...].prefix { !$0.isWhitespace }
                    XCTAssertTrue(stages.dropLast().contains { $0.name == from }, "Dockerfile:\(i.line): COPY --from=\(from) is no earlier stage")
                }
            }
        }
        XCTAssertGreaterThanOrEqual(stages.count, 2, "multi-stage: a builder and a runtime image")
        guard stages.count >= 2, let builder = stages.first, let runtime = stages.last else { return }
        XCTAssertEqual(builder.image, "swift:6.1-bookworm")
        XCTAssertEqual(runtime.image, "debian:bookworm-slim")

        // The builder does what the README's quick start does: libldns-dev (as .ci/setup installs it),
        // then `swift build -c release`.
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        let setup = try String(contentsOf: root.appendingPathComponent(".ci/setup"), encoding: .utf8)
        XCTAssertTrue(readme.contains("swift build -c release"), "README quick start changed: update the Dockerfile and this test")
        XCTAssertTrue(setup.contains("libldns-dev"), ".ci/setup no longer installs libldns-dev")
        let builderRuns = builder.body.filter { $0.keyword == "RUN" }.map(\.args).joined(separator: "\n")
        XCTAssertTrue(builderRuns.contains("apt-get install") && builderRuns.contains("libldns-dev"), builderRuns)
        XCTAssertTrue(builderRuns.contains("swift build -c release"), builderRuns)

        // The runtime image: libldns and the Public Suffix List, the binary from the builder, zones and
        // config, a non-root user allowed to bind port 53, the ports, and `serve` as the entry point.
        let runtimeRuns = runtime.body.filter { $0.keyword == "RUN" }.map(\.args).joined(separator: "\n")
        for pkg in ["libldns3", "publicsuffix"] { XCTAssertTrue(runtimeRuns.contains(pkg), "runtime lacks \(pkg)") }
        XCTAssertFalse(runtimeRuns.contains("libldns-dev"), "the runtime image needs the library, not its headers")
        XCTAssertTrue(runtimeRuns.contains("setcap cap_net_bind_service=+ep"), runtimeRuns)
        let copies = runtime.body.filter { $0.keyword == "COPY" }.map(\.args)
        XCTAssertTrue(copies.contains { $0.contains("--from=\(builder.name)") && $0.contains(".build/release/dnsgate") }, "\(copies)")
        XCTAssertTrue(copies.contains { $0.hasPrefix("zones/") || $0.contains(" zones/ ") }, "\(copies)")
        XCTAssertTrue(copies.contains { $0.contains("config/container/dnsgate.yaml") }, "\(copies)")
        let user = runtime.body.last { $0.keyword == "USER" }?.args
        XCTAssertNotNil(user)
        XCTAssertFalse(["root", "0", "0:0"].contains(user ?? "root"), "the runtime must not run as root")
        let exposed = Set(runtime.body.filter { $0.keyword == "EXPOSE" }.flatMap { $0.args.split(separator: " ").map(String.init) })
        XCTAssertTrue(exposed.isSuperset(of: ["53/udp", "53/tcp"]), "\(exposed)")
        let entry = runtime.body.last { $0.keyword == "ENTRYPOINT" }?.args ?? ""
        let entryArgs = try JSONSerialization.jsonObject(with: Data(entry.utf8)) as? [String]
        XCTAssertEqual(entryArgs?.suffix(3), ["serve", "--config", "/etc/dnsgate/dnsgate.yaml"], "exec-form ENTRYPOINT: \(entry)")
    }

    /// Stages the runtime image's files as its COPY lines place them (build-context sources only) and
    /// loads the container config there with `dnsgate validate`.
    func testContainerConfigValidatesInTheImageLayout() throws {
        let bin = TestPaths.dnsgateBinary
        guard FileManager.default.isExecutableFile(atPath: bin) else { throw XCTSkip("dnsgate binary not found at \(bin)") }
        let text = try String(contentsOf: containerDir.appendingPathComponent("Dockerfile"), encoding: .utf8)
        let image = TestPaths.tempDir("image")
        defer { try? FileManager.default.removeItem(at: image) }
        var staged = 0
        let lastFrom = parseDockerfile(text).lastIndex { $0.keyword == "FROM" } ?? 0
        for i in parseDockerfile(text)[lastFrom...] where i.keyword == "COPY" && !i.args.contains("--from=") {
            let f = i.args.split(separator: " ").filter { !$0.hasPrefix("--") }.map(String.init)
            guard f.count == 2 else { XCTFail("Dockerfile:\(i.line): expected COPY SRC DEST"); continue }
            let src = root.appendingPathComponent(f[0])
            let dest = image.appendingPathComponent(f[1])
            try FileManager.default.createDirectory(at: f[1].hasSuffix("/") ? dest : dest.deletingLastPathComponent(), withIntermediateDirectories: true)
            if f[0].hasSuffix("/") {
                for item in try FileManager.default.contentsOfDirectory(atPath: src.path) {
                    try FileManager.default.copyItem(at: src.appendingPathComponent(item), to: dest.appendingPathComponent(item))
                }
            } else {
                try FileManager.default.copyItem(at: src, to: f[1].hasSuffix("/") ? dest.appendingPathComponent(src.lastPathComponent) : dest)
            }
            staged += 1
        }
        XCTAssertGreaterThanOrEqual(staged, 2, "zones/ and the container config")
        let config = image.appendingPathComponent("etc/dnsgate/dnsgate.yaml").path
        XCTAssertTrue(FileManager.default.fileExists(atPath: config), "the image has no /etc/dnsgate/dnsgate.yaml")
        let r = try runCommand(bin, ["validate", "--config", config])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)

        // It listens on every address of the container, port 53, and names its upstreams explicitly
        // (the container's resolv.conf would name Docker's embedded resolver or dnsgate itself).
        let yaml = try String(contentsOfFile: config, encoding: .utf8)
        XCTAssertTrue(yaml.contains("0.0.0.0:53"), yaml)
        XCTAssertTrue(yaml.contains("upstreams:"), yaml)
        // Exceptions are kept in a directory the image creates for the dnsgate user, where a volume can
        // keep them; the non-root default (/tmp/dnsgate-UID) would lose them with the container.
        let stateLine = yaml.split(separator: "\n").first { $0.hasPrefix("state_file:") }
        let stateDir = stateLine.map { ($0.dropFirst("state_file:".count).trimmingCharacters(in: .whitespaces) as NSString).deletingLastPathComponent }
        XCTAssertEqual(stateDir, "/var/lib/dnsgate", yaml)
        let makesDir = text.split(separator: "\n").contains { $0.contains("install -d") && $0.contains("-o dnsgate") && $0.contains(stateDir ?? "?") }
        XCTAssertTrue(makesDir, "the Dockerfile creates \(stateDir ?? "?") for the dnsgate user")
        let compose = try String(contentsOf: containerDir.appendingPathComponent("compose.yaml"), encoding: .utf8)
        XCTAssertTrue(compose.contains(":\(stateDir ?? "?")"), "the compose example mounts a volume there")
    }

    func testComposeExampleUsesAFixedAddressOnAUserDefinedNetwork() throws {
        let text = try String(contentsOf: containerDir.appendingPathComponent("compose.yaml"), encoding: .utf8)
        XCTAssertFalse(text.contains("\t"), "YAML forbids tabs")
        // The subnet, dnsgate's fixed address inside it, and a runner whose DNS is that address.
        let subnet = text.range(of: #"subnet:\s*([0-9.]+)/(\d+)"#, options: .regularExpression).map { String(text[$0]) }
        XCTAssertNotNil(subnet, text)
        let addr = text.range(of: #"ipv4_address:\s*[0-9.]+"#, options: .regularExpression)
            .map { String(text[$0]).split(separator: ":").last!.trimmingCharacters(in: .whitespaces) }
        XCTAssertEqual(addr, "192.0.2.10")
        XCTAssertFalse(try String(contentsOf: containerDir.appendingPathComponent("dnsgate.yaml"), encoding: .utf8).contains("- \(addr ?? "?")"),
                       "dnsgate must not name its own address as upstream")
        XCTAssertTrue(subnet?.contains("192.0.2.0/24") == true, subnet ?? "")
        XCTAssertTrue(text.contains("dns: [\(addr ?? "?")]") || text.contains("- \(addr ?? "?")"), "a runner service with dns: [\(addr ?? "?")]")
        XCTAssertTrue(text.contains("dockerfile: config/container/Dockerfile"), text)
    }

    func testSystemdUnitIsHardenedAndParses() throws {
        let path = root.appendingPathComponent("config/systemd/dnsgate.service")
        let text = try String(contentsOf: path, encoding: .utf8)
        var sections: [String: [String: [String]]] = [:]
        var current: String? = nil
        for (n, raw) in text.components(separatedBy: "\n").enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") {
                XCTAssertTrue(line.hasSuffix("]"), "dnsgate.service:\(n + 1): bad section header")
                current = String(line.dropFirst().dropLast()); sections[current!, default: [:]] = [:]
                continue
            }
            guard let c = current, let eq = line.firstIndex(of: "=") else { XCTFail("dnsgate.service:\(n + 1): not KEY=VALUE: \(line)"); continue }
            sections[c, default: [:]][String(line[..<eq]), default: []].append(String(line[line.index(after: eq)...]))
        }
        XCTAssertEqual(Set(sections.keys), ["Unit", "Service", "Install"])
        let s = sections["Service"] ?? [:]
        func one(_ k: String) -> String? { s[k]?.last }
        XCTAssertEqual(one("AmbientCapabilities"), "CAP_NET_BIND_SERVICE")
        XCTAssertEqual(one("CapabilityBoundingSet"), "CAP_NET_BIND_SERVICE")
        XCTAssertTrue(one("DynamicUser") == "yes" || one("User") == "dnsgate")
        XCTAssertEqual(one("ExecReload"), "/bin/kill -HUP $MAINPID")
        XCTAssertEqual(one("RuntimeDirectory"), "dnsgate")
        XCTAssertEqual(one("ProtectSystem"), "strict")
        XCTAssertEqual(one("NoNewPrivileges"), "yes")
        XCTAssertTrue(one("ExecStart")?.contains("serve --config /etc/dnsgate/dnsgate.yaml") == true)
        XCTAssertTrue(one("ExecStart")?.contains("--control /run/dnsgate/control.sock") == true,
                      "a dynamic user is not root: the control socket goes in the RuntimeDirectory")
        XCTAssertTrue(one("ExecStartPre")?.contains("validate --config /etc/dnsgate/dnsgate.yaml") == true)
        // Restarts never stop for good, and the start waits for no network: listen addresses are bound
        // before they exist (IP_FREEBIND), and names must resolve as early as possible.
        let unitKeys = sections["Unit"] ?? [:]
        XCTAssertEqual(unitKeys["StartLimitIntervalSec"]?.last, "0")
        XCTAssertEqual(one("Restart"), "on-failure")
        XCTAssertFalse((unitKeys["After"] ?? []).joined(separator: " ").contains("network-online"), "\(unitKeys)")
        XCTAssertTrue((unitKeys["Before"] ?? []).joined(separator: " ").contains("nss-lookup.target"), "\(unitKeys)")

        // systemd's own parser, when there is one: the unit with ExecStart pointing at the built binary.
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze") else { return }
        let bin = TestPaths.dnsgateBinary
        guard FileManager.default.isExecutableFile(atPath: bin) else { return }
        let dir = TestPaths.tempDir("unit")
        defer { try? FileManager.default.removeItem(at: dir) }
        let unit = dir.appendingPathComponent("dnsgate.service")
        try text.replacingOccurrences(of: "/usr/local/bin/dnsgate", with: bin).write(to: unit, atomically: true, encoding: .utf8)
        let r = try runCommand("/usr/bin/systemd-analyze", ["verify", "--man=no", unit.path], timeout: 60)
        let problems = (r.stdout + r.stderr).split(separator: "\n").filter { $0.contains("dnsgate.service") }
        XCTAssertEqual(problems, [], r.stdout + r.stderr)
    }
}
