import Foundation
import XCTest

/// The real `dnsgate serve` binary on a free loopback port, stopped by PID.
final class DNSGateProcess {
    let port: Int
    let host: String
    let dir: URL
    let controlSocket: String
    let queryLog: String
    private let daemon: Daemon

    /// - Parameters:
    ///   - allow: allow-list text (plain format) written to a file in the test's directory, or nil when
    ///     `extraArgs`/`configYAML` supply the policy.
    ///   - configYAML: a config file to pass with `--config`; `@DIR@` is replaced with the test directory.
    init(allow: String?, upstreams: [String], extraArgs: [String] = [], configYAML: String? = nil,
         listenHost: String = "127.0.0.1", listenPort: Int? = nil, environment: [String: String] = [:],
         standardOutput: Any? = nil) throws {
        let bin = TestPaths.dnsgateBinary
        guard FileManager.default.isExecutableFile(atPath: bin) else {
            throw XCTSkip("dnsgate binary not found at \(bin); run `swift build` first or set DNSGATE_BIN")
        }
        port = listenPort ?? freePort()
        host = listenHost
        dir = TestPaths.tempDir("dnsgate")
        controlSocket = dir.appendingPathComponent("control.sock").path
        queryLog = dir.appendingPathComponent("queries.jsonl").path
        var args = ["serve", "--listen", "\(listenHost):\(port)", "--control", controlSocket,
                    "--query-log", "all", "--query-log-file", queryLog]
        if let configYAML {
            let path = dir.appendingPathComponent("dnsgate.yaml").path
            try configYAML.replacingOccurrences(of: "@DIR@", with: dir.path).write(toFile: path, atomically: true, encoding: .utf8)
            args += ["--config", path]
        } else {
            args += ["--no-config"]
        }
        if let allow {
            let path = dir.appendingPathComponent("test.allow").path
            try allow.write(toFile: path, atomically: true, encoding: .utf8)
            args += ["--allow", path]
        }
        for u in upstreams { args += ["--upstream", u] }
        daemon = try Daemon("dnsgate", bin, args + extraArgs, logFile: dir.appendingPathComponent("dnsgate.log"), environment: environment,
                            standardOutput: standardOutput)
        guard daemon.waitForLog("dnsgate started") else {
            let log = daemon.log
            daemon.stop()
            XCTFail("dnsgate did not start: \(log)")
            throw XCTSkip("dnsgate did not start")
        }
    }

    var allowFile: String { dir.appendingPathComponent("test.allow").path }
    var log: String { daemon.log }
    var pid: Int32 { daemon.pid }
    var isRunning: Bool { daemon.process.isRunning }
    var queryLogLines: [String] {
        ((try? String(contentsOfFile: queryLog, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    func signal(_ sig: Int32) { daemon.signal(sig) }
    func waitForLog(_ s: String, timeout: Double = 10) -> Bool { daemon.waitForLog(s, timeout: timeout) }
    func stop() { daemon.stop() }
    deinit { daemon.stop() }

    /// Runs `dnsgate ARGS` (a client command) against this server's control socket.
    func cli(_ args: [String]) throws -> CommandResult {
        try runCommand(TestPaths.dnsgateBinary, args + ["--control", controlSocket], timeout: 20)
    }
}

/// One answer from dig, parsed just enough for assertions.
struct DigAnswer {
    let raw: String
    var status: String? { field(after: "status: ", until: ",") }
    var flags: String { field(after: ";; flags: ", until: ";") ?? "" }
    /// Extended DNS Error info-code, from dig's `; EDE: 15 (Blocked): (text)` line.
    var edeCode: Int? { field(after: "; EDE: ", until: " ").flatMap { Int($0.trimmingCharacters(in: CharacterSet(charactersIn: ":"))) } }
    var edeText: String? { field(after: "; EDE: ", until: "\n") }
    var answers: [String] {
        section(";; ANSWER SECTION:")
    }
    var authority: [String] { section(";; AUTHORITY SECTION:") }
    var timedOut: Bool { raw.contains("timed out") || raw.contains("no servers could be reached") }

    private func section(_ header: String) -> [String] {
        guard let r = raw.range(of: header + "\n") else { return [] }
        return raw[r.upperBound...].split(separator: "\n", omittingEmptySubsequences: false)
            .prefix(while: { !$0.isEmpty }).map { $0.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ") }
    }
    private func field(after: String, until: Character) -> String? {
        guard let r = raw.range(of: after) else { return nil }
        let rest = raw[r.upperBound...]
        return String(rest.prefix(while: { $0 != until }))
    }
}

func dig(_ port: Int, _ args: [String], server: String = "127.0.0.1") throws -> DigAnswer {
    let r = try runCommand("dig", ["@\(server)", "-p", "\(port)", "+time=2", "+tries=1"] + args, timeout: 15)
    return DigAnswer(raw: r.stdout + r.stderr)
}
