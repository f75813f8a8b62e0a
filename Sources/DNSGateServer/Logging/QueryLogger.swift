import DNSGateCore
import Dispatch
import Foundation
import Logging
import Synchronization

/// Writes the query log as JSON lines: one line per denied query by default, or per query of any kind.
///
/// Records are queued and written by one background thread in batches, so the event loops never wait
/// on the disk. If the writer falls behind by more than 100,000 lines, further lines are counted
/// as dropped rather than growing memory without bound. Lines that cannot be written (a full disk,
/// standard output closed) are counted as failed and said once in the operational log; DNS goes on.
public final class QueryLogger: Sendable {
    private let level: QueryLogLevel
    private let pending = BoundedBatch<QueryRecord>(capacity: 100_000)
    private let signal = DispatchSemaphore(value: 0)
    private let file: LogFile?
    private let logger: Logger?
    public var droppedLines: AtomicCounter { pending.dropped }
    public let written = AtomicCounter()
    public let failedLines = AtomicCounter()

    public init(level: QueryLogLevel, file path: String, logger: Logger? = nil) throws {
        self.level = level; self.logger = logger
        if level == .none { file = nil; return }
        if path == "-" { file = .standardOutput } else {
            do { file = try LogFile(path: path) } catch {
                throw ConfigError(file: path, line: nil, "cannot open the query log: \(String(cString: strerror(error.errno)))")
            }
        }
        let t = Thread { [self] in self.writerLoop() }
        t.name = "dnsgate-querylog"
        t.start()
    }

    public func record(_ r: QueryRecord) {
        guard level == .all || (level == .denied && (r.isDenied || r.action == .rejected)) else { return }
        if pending.push(r).wasEmpty { signal.signal() }    // the writer sleeps only when the queue was empty
    }

    private func writerLoop() {
        BackgroundThread.lowerPriority()
        var failing = 0   // lines lost since the last write that worked
        while true {
            signal.wait()
            let batch = pending.takeAll()
            guard !batch.isEmpty, let file else { continue }
            var out = ""
            for r in batch { out += Self.line(r); out += "\n" }
            if let e = file.write(Array(out.utf8)) {
                failedLines.add(batch.count)
                if failing == 0 {
                    logger?.error("cannot write the query log; its lines are lost (counted as failed) until a write works",
                                  metadata: ["concern": "log", "error": "\(e)"])
                }
                failing += batch.count
            } else {
                written.add(batch.count)
                if failing > 0 {
                    logger?.notice("the query log is written again", metadata: ["concern": "log", "lines_lost": "\(failing)"])
                    failing = 0
                }
            }
        }
    }

    /// Opens the log file again (after logrotate renamed it); standard output stays.
    public func reopen() throws(LogFileError) { try file?.reopen() }

    /// Waits until everything queued so far is written (tests, shutdown).
    public func flush(timeout: Double = 2) {
        let end = Date().addingTimeInterval(timeout)
        while !pending.isEmpty && Date() < end { signal.signal(); usleep(2000) }
    }

    /// One JSON object; keys in a fixed order so lines diff and grep well.
    public static func line(_ r: QueryRecord) -> String {
        var f: [(String, String)] = [
            ("ts", JSON.string(ISO8601.format(r.time))),
            ("client", JSON.string(r.client)),
            ("proto", JSON.string(r.overTCP ? "tcp" : "udp")),
        ]
        if let n = r.name { f.append(("qname", JSON.string(n.description))) }
        if let t = r.type { f.append(("qtype", JSON.string(t.mnemonic))) }
        f.append(("action", JSON.string(r.action.rawValue)))
        if let rc = r.rcode { f.append(("rcode", JSON.string(rc.mnemonic))) }
        if let d = r.denial { f.append(("reason", JSON.string(d.tag))); f.append(("detail", JSON.string(d.description))) }
        if let rule = r.rule { f.append(("rule", JSON.string(rule.description))) }
        if r.profile != PolicySet.defaultProfileName { f.append(("profile", JSON.string(r.profile))) }
        if let x = r.exception { f.append(("exception", JSON.string(x))) }
        if r.audited { f.append(("audit", "true")) }
        if let p = r.problem { f.append(("problem", JSON.string(p))) }
        return "{" + f.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
    }
}

/// Minimal JSON string escaping (RFC 8259 §7) for log lines built by hand.
enum JSON {
    static func string(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20: out += String(format: "\\u%04x", u.value)
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
}

/// RFC 3339 UTC timestamps with milliseconds.
public enum ISO8601 {
    /// The years 0001–9999, which RFC 3339 can write.
    public static let range: ClosedRange<Double> = -62_135_596_800 ... 253_402_300_799

    /// Total: a time outside `range` (a request's made-up `since`, a NaN) is written as the nearest
    /// one inside it, where converting it to `time_t` trapped and took the server down.
    public static func format(_ t: Double) -> String {
        let t = t.isNaN ? 0 : min(max(t, range.lowerBound), range.upperBound)
        var secs = time_t(t.rounded(.down))
        var tm = tm()
        gmtime_r(&secs, &tm)
        let ms = Int((t - Double(secs)) * 1000)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                      tm.tm_hour, tm.tm_min, tm.tm_sec, ms)
    }
}

/// Background threads (telemetry, query log) yield to the event loops: when they share a core, a batch
/// of bookkeeping must not delay answers (it showed as p99 latency in bench/RESULTS.md).
enum BackgroundThread {
    static func lowerPriority() {
        #if os(Linux)
        // On Linux a nice value applies to one thread when given its thread ID. gettid(2) is not exported
        // to Swift without _GNU_SOURCE; /proc/thread-self links to "PID/task/TID".
        var buf = [CChar](repeating: 0, count: 64)
        let n = readlink("/proc/thread-self", &buf, buf.count - 1)
        guard n > 0, let tid = Int32(String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                .split(separator: "/").last ?? "") else { return }
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(tid), 10)
        #endif
    }
}
