import Foundation
import XCTest

/// Paths the end-to-end tests need: the package root, its fixtures and the built `dnsgate` binary.
enum TestPaths {
    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = packageRoot.appendingPathComponent("Tests/Fixtures")

    /// `DNSGATE_BIN`, else `dnsgate` beside the test bundle (SwiftPM builds every product for `swift test`).
    static var dnsgateBinary: String {
        if let env = ProcessInfo.processInfo.environment["DNSGATE_BIN"] { return env }
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        if dir.path.hasSuffix(".xctest/Contents/MacOS") { dir = dir.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent() }
        return dir.appendingPathComponent("dnsgate").path
    }

    static func tempDir(_ tag: String) -> URL {
        let d = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("dnsgate-test-\(tag)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try! FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }
}

/// A wall clock of its own for one dnsgate process: Tests/Fixtures/clockshift, built and preloaded
/// through `environment`, adds the seconds `step(to:)` writes (reread every 100 ms) to
/// CLOCK_REALTIME, as NTP or a resumed VM would step it; the machine's clock is left alone.
struct ClockShift {
    let environment: [String: String]
    private let offsetFile: String

    init() throws {
        let dir = TestPaths.tempDir("clock")
        offsetFile = dir.appendingPathComponent("offset").path
        environment = ["LD_PRELOAD": try buildPreloadShim("clockshift", in: dir), "CLOCKSHIFT_FILE": offsetFile]
        try step(to: 0)
    }

    /// Sets the offset from the real clock, in seconds.
    func step(to seconds: Int) throws { try "\(seconds)".write(toFile: offsetFile, atomically: true, encoding: .utf8) }
}

/// Builds the LD_PRELOAD shim Tests/Fixtures/NAME/NAME.c into `dir` and returns its path; a
/// compiler error is thrown with its output.
func buildPreloadShim(_ name: String, in dir: URL) throws -> String {
    let shim = dir.appendingPathComponent("\(name).so").path
    let source = TestPaths.fixtures.appendingPathComponent("\(name)/\(name).c").path
    let cc = try runCommand("clang", ["-shared", "-fPIC", "-O2", "-o", shim, source, "-ldl"])
    guard cc.status == 0 else { throw NSError(domain: "buildPreloadShim", code: Int(cc.status), userInfo: [NSLocalizedDescriptionKey: cc.stderr]) }
    return shim
}

/// Result of running a command to completion.
struct CommandResult {
    let status: Int32
    let stdout: String
    let stderr: String
}

/// Runs a program, bounded in time; kills it (by PID) if it overruns.
@discardableResult
func runCommand(_ path: String, _ args: [String], timeout: Double = 30, stdin: String? = nil) throws -> CommandResult {
    try runCommand(path, args, timeout: timeout, stdinBytes: stdin.map { Data($0.utf8) })
}

func runCommand(_ path: String, _ args: [String], timeout: Double = 30, stdinBytes stdin: Data?) throws -> CommandResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path.hasPrefix("/") ? path : "/usr/bin/env")
    p.arguments = path.hasPrefix("/") ? args : [path] + args
    let out = Pipe(), err = Pipe()
    p.standardOutput = out; p.standardError = err
    let inPipe = Pipe()
    p.standardInput = inPipe
    try p.run()
    if let stdin { inPipe.fileHandleForWriting.write(stdin) }
    try? inPipe.fileHandleForWriting.close()
    // Read both pipes concurrently so a chatty program cannot block on a full pipe.
    final class Sink: @unchecked Sendable { var data = Data() }   // each written by one reader, read after g.wait()
    let outSink = Sink(), errSink = Sink()
    let g = DispatchGroup()
    g.enter(); DispatchQueue.global().async { outSink.data = out.fileHandleForReading.readDataToEndOfFile(); g.leave() }
    g.enter(); DispatchQueue.global().async { errSink.data = err.fileHandleForReading.readDataToEndOfFile(); g.leave() }
    let deadline = Date().addingTimeInterval(timeout)
    while p.isRunning && Date() < deadline { usleep(5_000) }
    if p.isRunning { kill(p.processIdentifier, SIGKILL) }
    p.waitUntilExit()
    g.wait()
    return CommandResult(status: p.terminationStatus, stdout: String(decoding: outSink.data, as: UTF8.self),
                         stderr: String(decoding: errSink.data, as: UTF8.self))
}

/// A long-running server process started by a test and stopped by its PID.
final class Daemon {
    let process = Process()
    let logFile: URL
    let name: String

    /// - Parameter standardOutput: where standard output goes instead of `logFile` (a `Pipe`, say).
    init(_ name: String, _ path: String, _ args: [String], logFile: URL, environment: [String: String] = [:],
         standardOutput: Any? = nil) throws {
        self.name = name
        self.logFile = logFile
        _ = FileManager.default.createFile(atPath: logFile.path, contents: nil)   // opening it below reports a failure
        let h = try FileHandle(forWritingTo: logFile)
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = args
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        process.standardOutput = standardOutput ?? h
        process.standardError = h
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var log: String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }

    func signal(_ sig: Int32) { if process.isRunning { kill(pid, sig) } }

    func stop() {
        guard process.isRunning else { return }
        kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { kill(pid, SIGKILL) }
        process.waitUntilExit()
    }

    /// Waits until the log contains `text`, bounded.
    func waitForLog(_ text: String, timeout: Double = 15) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if log.contains(text) { return true }
            if !process.isRunning { return log.contains(text) }
            usleep(20_000)
        }
        return false
    }
}

/// A port that is free for both UDP and TCP on 127.0.0.1 right now.
func freePort() -> Int { freePortRange(count: 1) }

/// The first of `count` consecutive ports that are all free for UDP and TCP on 127.0.0.1 right now.
func freePortRange(count: Int) -> Int {
    for _ in 0..<200 {
        let base = Int.random(in: 20_000...(60_000 - count))
        if (base..<base + count).allSatisfy({ canBind($0, Int32(SOCK_DGRAM.rawValue)) && canBind($0, Int32(SOCK_STREAM.rawValue)) }) {
            return base
        }
    }
    fatalError("no free port range found")
}

private func canBind(_ port: Int, _ type: Int32) -> Bool {
    let fd = socket(AF_INET, type, 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    return withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
}

func requireTool(_ name: String) throws {
    let r = try runCommand("/bin/sh", ["-c", "command -v \(name)"])
    if r.status != 0 {
        // CI installs every tool (.ci/run); a missing one there is a failure, not a skip.
        if ProcessInfo.processInfo.environment["CI"] != nil { XCTFail("\(name) is not installed"); throw XCTSkip("\(name) missing") }
        throw XCTSkip("\(name) is not installed (bash .ci/setup installs it)")
    }
}

/// Polls `cond` every 20 ms until it holds or `timeout` seconds have passed; its last answer.
func waitFor(_ cond: () -> Bool, timeout: Double = 5) -> Bool {
    let end = Date().addingTimeInterval(timeout)
    while Date() < end { if cond() { return true }; usleep(20_000) }
    return cond()
}

/// Resident memory of process `pid`, in kB (VmRSS).
func residentKB(_ pid: Int32) throws -> Int {
    let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
    guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
          let kb = Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) else { throw XCTSkip("no VmRSS") }
    return kb
}
