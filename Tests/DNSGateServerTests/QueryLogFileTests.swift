import Foundation
import XCTest

/// The query log's file is the operator's, and its troubles must cost log lines, never DNS: a full
/// disk or a log reader that went away once ended the process (Foundation's `FileHandle.write`
/// traps on any error), and logrotate's rename left the server writing to the old file.
final class QueryLogFileTests: XCTestCase {
    private static let allow = "*.allowed.test  # builds\n"

    private func failedLines(_ g: DNSGateProcess) throws -> Int {
        let stats = try g.cli(["stats", "--json"])
        let obj = try JSONSerialization.jsonObject(with: Data(stats.stdout.utf8)) as? [String: Any]
        return ((obj?["query_log"] as? [String: Any])?["failed"] as? Int) ?? -1
    }

    func testAFullDiskCostsLogLinesNotTheServer() throws {
        let nsd = try NSDUpstream()
        let g = try DNSGateProcess(allow: Self.allow, upstreams: [nsd.address], extraArgs: ["--query-log-file", "/dev/full"])
        for i in 0..<5 { XCTAssertEqual(try dig(g.port, ["q\(i).allowed.test"]).status, "NXDOMAIN", "answered while the log fails") }
        XCTAssertTrue(g.waitForLog("cannot write the query log"), g.log)
        XCTAssertTrue(g.log.contains("No space left on device"), g.log)
        XCTAssertTrue(g.isRunning)
        XCTAssertGreaterThanOrEqual(try failedLines(g), 5)
        XCTAssertEqual(g.log.components(separatedBy: "cannot write the query log").count, 2, "said once, not per batch")
    }

    func testAQueryLogReaderThatGoesAwayCostsLinesNotTheServer() throws {
        let nsd = try NSDUpstream()
        let pipe = Pipe()
        let g = try DNSGateProcess(allow: Self.allow, upstreams: [nsd.address], extraArgs: ["--query-log-file", "-"], standardOutput: pipe)
        pipe.fileHandleForReading.closeFile()   // the shipper reading standard output exits
        for i in 0..<5 { XCTAssertEqual(try dig(g.port, ["p\(i).allowed.test"]).status, "NXDOMAIN") }
        XCTAssertTrue(g.waitForLog("cannot write the query log"), g.log)
        XCTAssertTrue(g.log.contains("Broken pipe"), g.log)
        XCTAssertTrue(g.isRunning, "SIGPIPE ignored")
    }

    /// logrotate renames the file, then sends SIGHUP (or runs `dnsgate reload`): the server opens the
    /// path again, also when the config being edited at that moment does not load.
    func testReloadReopensTheQueryLogAfterRotation() throws {
        try assertReloadReopensTheLog(broken: "allow: [\n") { g, _ in try g.cli(["reload"]) }   // mid-edit
    }

    /// `dnsgate reload --config F` with a mistake in F still reaches the server, which refuses the
    /// file with its line and opens the log again; the command stopped at the mistake itself and the
    /// server went on writing to the rotated file (QA pass 11, F2).
    func testReloadByConfigReachesTheServerWhenTheConfigHasAMistake() throws {
        let refused = try assertReloadReopensTheLog(broken: "mode: enforse\ncontrol: { socket: control.sock }\n") { _, config in
            try runCommand(TestPaths.dnsgateBinary, ["reload", "--config", config], timeout: 20)
        }
        XCTAssertTrue(refused.stderr.contains("reload refused: ") && refused.stderr.contains("dnsgate.yaml:1: "), refused.stderr)
    }

    /// Rotates the query log, writes `broken` over the config, reloads with `reload`, and checks that
    /// the reload was refused, the old policy serves and the log is open again at its path.
    @discardableResult
    private func assertReloadReopensTheLog(broken: String, reload: (DNSGateProcess, String) throws -> CommandResult,
                                           file: StaticString = #filePath, line: UInt = #line) throws -> CommandResult {
        let nsd = try NSDUpstream()
        let g = try DNSGateProcess(allow: Self.allow, upstreams: [nsd.address], configYAML: "mode: enforce\n")
        let rotated = g.queryLog + ".1"
        XCTAssertEqual(try dig(g.port, ["before.allowed.test"]).status, "NXDOMAIN", file: file, line: line)
        XCTAssertTrue(waitFor { g.queryLogLines.contains { $0.contains("before.allowed.test") } }, file: file, line: line)
        try FileManager.default.moveItem(atPath: g.queryLog, toPath: rotated)
        let config = g.dir.appendingPathComponent("dnsgate.yaml").path
        try broken.write(toFile: config, atomically: true, encoding: .utf8)
        let refused = try reload(g, config)
        XCTAssertNotEqual(refused.status, 0, refused.stdout, file: file, line: line)
        XCTAssertTrue(g.waitForLog("reload refused"), g.log, file: file, line: line)
        XCTAssertEqual(try dig(g.port, ["after.allowed.test"]).status, "NXDOMAIN", "the old policy serves", file: file, line: line)
        XCTAssertTrue(waitFor { g.queryLogLines.contains { $0.contains("after.allowed.test") } }, "a new file at the path", file: file, line: line)
        let old = try String(contentsOfFile: rotated, encoding: .utf8)
        XCTAssertTrue(old.contains("before.allowed.test") && !old.contains("after.allowed.test"), old, file: file, line: line)
        return refused
    }
}
