import Foundation
import XCTest

/// nsd serving the test zones (allowed.test, denied.test) on a free loopback port: the real upstream.
final class NSDUpstream {
    let port: Int
    let dir: URL
    private let daemon: Daemon

    /// - Parameter zones: other zones to serve instead of the test zones (name, zone file).
    init(zones: [(name: String, file: String)]? = nil) throws {
        try requireTool("nsd")
        port = freePort()
        dir = TestPaths.tempDir("nsd")
        let fixtures = TestPaths.fixtures.appendingPathComponent("upstream").path
        var conf = try String(contentsOfFile: fixtures + "/nsd.conf.in", encoding: .utf8)
            .replacingOccurrences(of: "@DIR@", with: dir.path)
            .replacingOccurrences(of: "@PORT@", with: "\(port)")
            .replacingOccurrences(of: "@FIXTURES@", with: fixtures)
        if let zones, let firstZone = conf.range(of: "\nzone:") {
            conf = String(conf[..<firstZone.lowerBound]) + "\n" + zones.map { "zone:\n    name: \($0.name)\n    zonefile: \"\($0.file)\"\n" }.joined()
        }
        let confPath = dir.appendingPathComponent("nsd.conf").path
        try conf.write(toFile: confPath, atomically: true, encoding: .utf8)
        // -d: stay in the foreground so the PID we hold is nsd's own.
        daemon = try Daemon("nsd", "/usr/sbin/nsd", ["-d", "-c", confPath], logFile: dir.appendingPathComponent("stdout.log"))
        guard try waitUntilAnswering(port: port) else {
            daemon.stop()
            throw XCTSkip("nsd did not start: \(daemon.log) \((try? String(contentsOfFile: dir.path + "/nsd.log", encoding: .utf8)) ?? "")")
        }
    }

    var address: String { "127.0.0.1:\(port)" }
    func stop() { daemon.stop() }
    deinit { daemon.stop() }
}

/// unbound on a free loopback port, configured by the test on top of `unboundServerBasics`, and
/// answering before `init` returns; stopped by PID on `stop` or when let go.
final class UnboundServer {
    let port: Int
    let dir: URL
    private let daemon: Daemon
    /// unbound's own log (`logfile:`), and what it printed.
    var logPath: String { dir.appendingPathComponent("unbound.log").path }
    var log: String { daemon.log }

    /// - Parameters:
    ///   - dir: where its configuration and logs go (a fresh directory when nil).
    ///   - server: more lines of the `server:` clause, each indented by four spaces.
    ///   - clauses: more top-level clauses (`stub-zone:`, `dnstap:`); remote control is off.
    ///   - ipv6: on ::1 and IPv6 only, instead of 127.0.0.1.
    init(dir: URL? = nil, server: String, clauses: String = "", ipv6: Bool = false) throws {
        try requireTool("unbound")
        port = freePort()
        self.dir = dir ?? TestPaths.tempDir("unbound")
        let confPath = self.dir.appendingPathComponent("unbound.conf").path
        try "server:\n\(unboundServerBasics(port: port, dir: self.dir, ipv6: ipv6))\n\(server)\n\(clauses)\nremote-control:\n    control-enable: no\n"
            .write(toFile: confPath, atomically: true, encoding: .utf8)
        daemon = try Daemon("unbound", "/usr/sbin/unbound", ["-d", "-c", confPath], logFile: self.dir.appendingPathComponent("stdout.log"))
        guard try waitUntilAnswering(port: port, server: ipv6 ? "::1" : "127.0.0.1") else {
            daemon.stop()
            throw HarnessFailure("unbound did not start: \(daemon.log) \((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "")")
        }
    }

    var address: String { "127.0.0.1:\(port)" }
    func stop() { daemon.stop() }
    deinit { daemon.stop() }
}

/// A setup step of a test that went wrong: a failure, not a skip, since CI installs every tool.
struct HarnessFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// unbound in front of nsd with `log-queries: yes`: every question that reaches the upstream side is
/// written down, so the security-invariant test can read exactly what dnsgate let through.
/// Everything but the two test zones is refused locally, so nothing leaves the machine.
final class LoggingUpstream {
    private let unbound: UnboundServer
    var port: Int { unbound.port }
    var logPath: String { unbound.logPath }

    init(nsdPort: Int) throws {
        unbound = try UnboundServer(server: """
                verbosity: 1
                log-queries: yes
                do-not-query-localhost: no
                module-config: "iterator"
                qname-minimisation: no
                harden-glue: no
                num-threads: 1
                local-zone: "." refuse
                local-zone: "allowed.test." transparent
                local-zone: "denied.test." transparent
            """, clauses: """
            stub-zone:
                name: "allowed.test"
                stub-addr: 127.0.0.1@\(nsdPort)
            stub-zone:
                name: "denied.test"
                stub-addr: 127.0.0.1@\(nsdPort)
            """)
    }

    var address: String { unbound.address }

    /// Every (name, type) unbound logged as received. Lines look like
    /// `[time] unbound[pid:0] info: 127.0.0.1 www.allowed.test. A IN`.
    func loggedQueries() -> [(name: String, type: String)] {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            guard let r = line.range(of: " info: ") else { return nil }
            let f = line[r.upperBound...].split(separator: " ")
            guard f.count == 4, f[3] == "IN" || f[3].hasPrefix("CLASS") || f[3] == "CH" else { return nil }
            return (String(f[1]), String(f[2]))
        }
    }

    func stop() { unbound.stop() }
}

/// The name the readiness probe asks for; any answer (even REFUSED) means the server is up.
/// The invariant test ignores it: the probe goes to the upstream directly, not through dnsgate.
let readinessProbeName = "readiness-probe.invalid"

/// Polls a server with dig until it answers, bounded.
func waitUntilAnswering(port: Int, server: String = "127.0.0.1", timeout: Double = 10) throws -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        let r = try runCommand("dig", ["@\(server)", "-p", "\(port)", "+time=1", "+tries=1", readinessProbeName, "A"], timeout: 3)
        if r.stdout.contains("status:") { return true }
        usleep(100_000)
    }
    return false
}

/// The first lines of a test unbound's `server:` clause: loopback and IPv4 only (IPv6 only with
/// `ipv6`), everything it writes in `dir`, no privilege drop, queries from loopback allowed.
func unboundServerBasics(port: Int, dir: URL, ipv6: Bool = false) -> String {
    """
        interface: \(ipv6 ? "::1" : "127.0.0.1")
        port: \(port)
        \(ipv6 ? "do-ip4" : "do-ip6"): no
        username: ""
        chroot: ""
        directory: "\(dir.path)"
        pidfile: "\(dir.path)/unbound.pid"
        logfile: "\(dir.path)/unbound.log"
        use-syslog: no
        access-control: \(ipv6 ? "::1/128" : "127.0.0.0/8") allow
    """
}
