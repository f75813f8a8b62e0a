import Foundation
import XCTest

/// A CI-runner topology built from network namespaces, all created by the test and all deleted by it:
///
/// ```
///  ns "host"  (dg<pid>-<n>h)                      ns "runner a" (dg<pid>-<n>a)   ns "runner b" (dg<pid>-<n>b)
///  lo 127.0.0.1: nsd (the upstream)               eth0 192.0.2.20/24            eth0 192.0.2.40/24
///  br0 192.0.2.1/24: dnsgate :53, HTTP server     /etc/netns/…/resolv.conf      /etc/netns/…/resolv.conf
///    ├── va ─────── veth ───────────────────────────┘                              │
///    └── vb ─────── veth ──────────────────────────────────────────────────────────┘
/// ```
///
/// Every link is created inside a namespace (`ip -n`), so nothing appears in the root namespace and
/// deleting the namespaces deletes the links. Addresses come from 192.0.2.0/24 (TEST-NET-1) and exist
/// only inside these namespaces; no namespace has a default route. Programs started inside a
/// namespace run as `ip netns exec NS PROGRAM …`: `ip` execs the program without forking, so the PID
/// the test holds is the program's own (checked by `NetnsDaemon`), and it is stopped by that PID.
final class RunnerTopology {
    static let hostAddress = "192.0.2.1"
    static let prefixLength = 24
    /// Runner namespaces and their addresses: `a` is in the `build` profile's 192.0.2.16/28,
    /// `b` in the `release` profile's 192.0.2.32/28.
    static let runnerAddresses = ["a": "192.0.2.20", "b": "192.0.2.40"]

    private static var counter = 0
    let host: String
    let runners: [String: String]          // role ("a", "b") -> namespace name
    private(set) var created: [String] = []
    private var etcDirs: [String] = []
    private var daemons: [NetnsDaemon] = []
    let linkPrefix: String

    /// Only names the topology; `build()` creates it. Register `destroy()` for teardown before `build()`.
    init() {
        Self.counter += 1
        let base = "dg\(getpid())-\(Self.counter)"
        host = base + "h"
        runners = ["a": base + "a", "b": base + "b"]
        linkPrefix = "dg\(getpid())"
    }

    /// Skips when namespaces cannot be created here (not root, no CAP_SYS_ADMIN, no iproute2); in CI
    /// (`CI` set) that is a failure instead.
    static func requireNetns() throws {
        let inCI = ProcessInfo.processInfo.environment["CI"] != nil
        func unavailable(_ why: String) throws -> Never {
            if inCI { XCTFail("network namespaces are required in CI: \(why)") }
            throw XCTSkip("network namespaces not available: \(why)")
        }
        guard FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") else { try unavailable("/usr/sbin/ip missing (iproute2)") }
        guard geteuid() == 0 else { try unavailable("not root") }
        let probe = "dgprobe\(getpid())"
        let add = try runCommand("/usr/sbin/ip", ["netns", "add", probe])
        defer { _ = try? runCommand("/usr/sbin/ip", ["netns", "del", probe]) }
        guard add.status == 0 else { try unavailable("ip netns add: \(add.stderr)") }
    }

    /// Runs `ip ARGS`, throwing with its stderr when it fails.
    @discardableResult
    func ip(_ args: [String]) throws -> CommandResult {
        let r = try runCommand("/usr/sbin/ip", args)
        if r.status != 0 { throw TopologyError("ip \(args.joined(separator: " ")): \(r.stderr)") }
        return r
    }

    func build() throws {
        for ns in [host] + runners.values.sorted() {
            try ip(["netns", "add", ns]); created.append(ns)
            try ip(["-n", ns, "link", "set", "lo", "up"])
        }
        try ip(["-n", host, "link", "add", "br0", "type", "bridge"])
        try ip(["-n", host, "addr", "add", "\(Self.hostAddress)/\(Self.prefixLength)", "dev", "br0"])
        try ip(["-n", host, "link", "set", "br0", "up"])
        for (role, ns) in runners.sorted(by: { $0.key < $1.key }) {
            let hostEnd = "v" + role
            // Both ends are created inside namespaces: the root namespace never sees them.
            try ip(["-n", host, "link", "add", hostEnd, "type", "veth", "peer", "name", "eth0", "netns", ns])
            try ip(["-n", host, "link", "set", hostEnd, "master", "br0"])
            try ip(["-n", host, "link", "set", hostEnd, "up"])
            try ip(["-n", ns, "addr", "add", "\(Self.runnerAddresses[role]!)/\(Self.prefixLength)", "dev", "eth0"])
            try ip(["-n", ns, "link", "set", "eth0", "up"])
            // The runner's resolver: `ip netns exec` bind-mounts /etc/netns/NS/resolv.conf over /etc/resolv.conf.
            let dir = "/etc/netns/\(ns)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            etcDirs.append(dir)
            try "nameserver \(Self.hostAddress)\n".write(toFile: dir + "/resolv.conf", atomically: true, encoding: .utf8)
        }
        // A fresh bridge has STP off, so its ports forward as soon as they are up.
    }

    /// Runs a program to completion inside a namespace.
    func exec(_ ns: String, _ args: [String], timeout: Double = 20) throws -> CommandResult {
        try runCommand("/usr/sbin/ip", ["netns", "exec", ns] + args, timeout: timeout)
    }

    /// Starts a long-running program inside a namespace; stopped by `destroy()` if the test does not.
    func start(_ name: String, in ns: String, _ binary: String, _ args: [String], logFile: URL) throws -> NetnsDaemon {
        let d = try NetnsDaemon(name, ns: ns, binary: binary, args, logFile: logFile)
        daemons.append(d)
        return d
    }

    /// Stops every program started here (by PID), deletes the namespaces, their /etc/netns
    /// directories and any link a failed run may have left in the root namespace. Safe to call twice.
    func destroy() {
        for d in daemons.reversed() { d.stop() }
        daemons.removeAll()
        // Children of those servers (nsd's server processes) exit after their parent; wait for the
        // namespaces to be empty, and SIGKILL whatever is left: only programs this test started run there.
        for ns in created {
            func pids() -> [Int32] {
                ((try? runCommand("/usr/sbin/ip", ["netns", "pids", ns]).stdout) ?? "").split(separator: "\n").compactMap { Int32($0) }
            }
            if !pollUntil(timeout: 5, { pids().isEmpty }) {
                for pid in pids() { NSLog("killing leftover process \(pid) in \(ns)"); kill(pid, SIGKILL) }
            }
        }
        for ns in created.reversed() {
            let r = try? runCommand("/usr/sbin/ip", ["netns", "del", ns])
            if r?.status != 0 { NSLog("could not delete netns \(ns): \(r?.stderr ?? "")") }
        }
        created.removeAll()
        for dir in etcDirs { try? FileManager.default.removeItem(atPath: dir) }
        etcDirs.removeAll()
        rmdir("/etc/netns")    // only succeeds when empty: other users' entries stay
        if let links = try? runCommand("/usr/sbin/ip", ["-o", "link", "show"]) {
            for line in links.stdout.split(separator: "\n") {
                let f = line.split(separator: ":")
                guard f.count > 1 else { continue }
                let name = f[1].trimmingCharacters(in: .whitespaces).split(separator: "@").first.map(String.init) ?? ""
                if name.hasPrefix(linkPrefix) { _ = try? runCommand("/usr/sbin/ip", ["link", "del", name]) }
            }
        }
    }

    /// The namespaces of this topology that still exist (for the tests' own clean-up assertions).
    func existingNamespaces() -> [String] {
        let out = (try? runCommand("/usr/sbin/ip", ["netns", "list"]).stdout) ?? ""
        let all = Set(out.split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) })
        return ([host] + runners.values).filter(all.contains)
    }

    deinit { destroy() }
}

struct TopologyError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// A server started with `ip netns exec NS BINARY ARGS`, whose PID is verified to be BINARY's own
/// (ip execs without forking), so `stop()` signals the real server and nothing else.
final class NetnsDaemon {
    let daemon: Daemon
    let binary: String

    init(_ name: String, ns: String, binary: String, _ args: [String], logFile: URL) throws {
        self.binary = binary
        daemon = try Daemon(name, "/usr/sbin/ip", ["netns", "exec", ns, binary] + args, logFile: logFile)
        // Until the exec, /proc/PID/exe is ip; after it, the binary. Never a different PID.
        let target = URL(fileURLWithPath: binary).resolvingSymlinksInPath().path
        let execd = pollUntil(timeout: 5) { self.exePath == target || !self.daemon.process.isRunning }
        guard execd, daemon.process.isRunning else {
            let log = daemon.log
            daemon.stop()
            throw TopologyError("\(name) did not start in \(ns) (exe \(exePath ?? "gone")): \(log)")
        }
    }

    var pid: Int32 { daemon.pid }
    var log: String { daemon.log }
    var isRunning: Bool { daemon.process.isRunning }
    var exePath: String? { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe") }
    func waitForLog(_ s: String, timeout: Double = 15) -> Bool { daemon.waitForLog(s, timeout: timeout) }
    func signal(_ sig: Int32) { daemon.signal(sig) }
    func stop() { daemon.stop() }
}

/// Polls `cond` until it holds, bounded.
func pollUntil(timeout: Double, _ cond: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if cond() { return true }
        usleep(50_000)
    }
    return cond()
}
