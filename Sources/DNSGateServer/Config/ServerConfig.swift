import DNSGateCore
import Foundation

/// A host and port as written in config and flags: `127.0.0.1:53`, `[::1]:53`, or a bare address
/// (`defaultPort`, 53; pass 0 to require a port). Port 0 is refused: as a listen address the kernel
/// would pick a port nobody knows, as an upstream there is nothing there.
public struct HostPort: Hashable, Sendable, CustomStringConvertible {
    public let host: String
    public let port: Int

    public init(host: String, port: Int) { self.host = host; self.port = port }

    public init?(parsing text: String, defaultPort: Int = 53) {
        var t = text.trimmingCharacters(in: .whitespaces)
        var port = defaultPort
        if t.hasPrefix("[") {
            guard let close = t.firstIndex(of: "]") else { return nil }
            let rest = t[t.index(after: close)...]
            if rest.hasPrefix(":") { guard let p = Int(rest.dropFirst()) else { return nil }; port = p }
            else if !rest.isEmpty { return nil }
            t = String(t[t.index(after: t.startIndex)..<close])
        } else if t.filter({ $0 == ":" }).count == 1, let colon = t.lastIndex(of: ":") {
            guard let p = Int(t[t.index(after: colon)...]) else { return nil }
            port = p; t = String(t[..<colon])
        }
        guard (1...65535).contains(port), !t.isEmpty, IPAddressText.octets(t) != nil else { return nil }
        self.host = t; self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// Where dnstap goes and the identity its messages carry.
public struct DnstapConfig: Sendable, Equatable {
    public var destination: DnstapWriter.Destination
    /// The server's name in each message (dnstap's `identity`, as NSID would say); the host name by default.
    public var identity: String

    public init(destination: DnstapWriter.Destination, identity: String = DnstapConfig.hostName) {
        self.destination = destination; self.identity = identity
    }

    /// The longest Unix socket path: `sockaddr_un` holds 107 octets and a terminating zero.
    public static let maxSocketPath = 107

    /// A collector as `--dnstap` names it: a Unix socket path (it has a `/`), or ADDRESS:PORT.
    public static func destination(parsing text: String) -> DnstapWriter.Destination? {
        if text.contains("/") { return socketPathProblem(text) == nil ? .unix(text) : nil }
        guard let hp = HostPort(parsing: text, defaultPort: 0), hp.port != 0 else { return nil }
        return .tcp(hp)
    }

    /// Why `path` cannot be a collector's Unix socket (completing "log.dnstap.socket …"), or nil:
    /// it names a directory, or is longer than a socket address holds. For the config and `--dnstap` alike.
    public static func socketPathProblem(_ path: String) -> String? {
        if path.isEmpty || path.hasSuffix("/") { return "must name a socket, not '\(path)'" }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue { return "\(path) is a directory" }
        if path.utf8.count > maxSocketPath {
            return "must be a path of at most \(maxSocketPath) bytes (a Unix socket's limit), not \(path.utf8.count)"
        }
        return nil
    }

    public static var hostName: String {
        var buf = [CChar](repeating: 0, count: 256)
        return gethostname(&buf, buf.count - 1) == 0 ? String(cString: buf) : "dnsgate"
    }
}

/// A stream listener's idle timeout and cap on open connections (`ConnectionLimit`).
public struct ConnectionLimits: Sendable, Equatable {
    public var idleTimeoutMs: Int
    public var maxConnections: Int
}

/// How much of the query stream goes to the query log.
public enum QueryLogLevel: String, Sendable, CaseIterable { case none, denied, all }

/// Every setting dnsgate runs with. Defaults here are the documented ones (config/README.md).
public struct ServerConfig: Sendable {
    public var listen: [HostPort] = [HostPort(host: "127.0.0.1", port: 53), HostPort(host: "::1", port: 53)]
    /// Empty: use the nameservers of /etc/resolv.conf, minus dnsgate's own addresses.
    public var upstreams: [HostPort] = []
    public var allowFiles: [String] = []
    /// The config line naming each allow file (top level or profile), so a missing file is reported
    /// where it was written; files given on the command line have none.
    public var allowFileLines: [String: Int] = [:]
    /// The config line of each upstream, for errors about it.
    public var upstreamLines: [HostPort: Int] = [:]
    public var mode: PolicyMode = .enforce
    public var sinkhole: SinkholeMode = .nxdomain
    public var sinkholeTTL: UInt32 = 60
    public var defaultTypes: Set<RecordType> = RecordType.buildDefaults
    /// `policy.cname_targets`: whether an answer's CNAME targets must be allowed too.
    public var cnameTargets: CNAMETargets = .any
    public var cache = CacheLimits()
    public var upstreamTimeoutMs = 1500
    public var upstreamDeadlineMs = 4000
    /// Send names upstream as the client spelt them; off: lower-cased, which breaks case-encoded tunnels.
    public var upstreamPreserveCase = false
    public var tcp = ConnectionLimits(idleTimeoutMs: 10_000, maxConnections: 256)
    /// The metrics endpoint's and the control socket's: a scrape or a control request is one short
    /// exchange, so a connection quiet for seconds is stuck or hostile (QA pass 5).
    public var metricsConnections = ConnectionLimits(idleTimeoutMs: 10_000, maxConnections: 64)
    public var controlConnections = ConnectionLimits(idleTimeoutMs: 10_000, maxConnections: 64)
    /// Event loops; 0 means one per core.
    public var threads = 1
    public var maxUDPPayload: UInt16 = ResponseBuilder.defaultUDPPayload
    /// Under a flood of at least `udpCoalesceMinRate` datagrams a second, a UDP listener waits this
    /// long after its socket ran dry before reading again (`ReadCoalescing`); 0: never.
    public var udpCoalesceMicros: UInt32 = 200
    /// The same wait while upstream exchanges are in flight (their answers wait too); 0: never, the
    /// default (a wait costs the p99 of misses more than its CPU saving is worth; `ReadCoalescing`).
    public var udpCoalesceForwardingMicros: UInt32 = 0
    public var udpCoalesceMinRate = 20_000
    public var controlSocket: String = ServerConfig.defaultControlSocket
    /// Octal permissions of the control socket: owner and group only.
    public var controlSocketMode: UInt16 = 0o660
    public var queryLog: QueryLogLevel = .denied
    /// `-` is standard output.
    public var queryLogFile = "-"
    /// Every client query and reply as dnstap to a collector (`log.dnstap`); nil: off.
    public var dnstap: DnstapConfig?
    public var publicSuffixFile = PublicSuffixList.debianPath
    /// The line of `public_suffix_list` when the configuration sets it (0: line not known); nil for
    /// the default path, which may be missing (see `PolicyBuilder.suffixList`).
    public var publicSuffixLine: Int?
    public var profiles: [ProfileConfig] = []
    /// Where exceptions are kept across restarts (written atomically).
    public var stateFile: String = ServerConfig.defaultStateFile
    /// Allow entries with no hit for this long are reported as candidates for removal.
    public var entryUnusedAfter: Int = 7 * 86_400
    /// Prometheus text metrics listener (`GET /metrics`); nil: off.
    public var metricsListen: HostPort?
    public var detector = DetectorConfig()
    /// The config line naming each of `detector.domainLimits`, for the registered-domain check.
    public var detectorDomainLines: [String: Int] = [:]
    public var detectorEnabled = true
    /// Sinkhole a client's registered domain when the detector alerts on it.
    public var quarantineOnAlert = false
    public var quarantineSeconds = 3600
    /// The file this came from, if any: reload reads it again.
    public var sourceFile: String?

    public init() {}

    public static var defaultStateFile: String {
        getuid() == 0 ? "/var/lib/dnsgate/state.json" : "/tmp/dnsgate-\(getuid())/state.json"
    }

    public static var defaultControlSocket: String {
        getuid() == 0 ? "/run/dnsgate/control.sock" : "/tmp/dnsgate-\(getuid())/control.sock"
    }
}

extension ServerConfig {
    /// The settings of `next` that differ from these and that a reload cannot apply (only the policy is
    /// swapped: allow files, mode, sinkhole, default types, profiles), named as in the config file.
    /// Upstreams left empty mean resolv.conf's, which the running server resolved at start: not a change.
    func restartOnlyChanges(to next: ServerConfig) -> [String] {
        var changed: [String] = []
        func limits(_ key: String, _ now: ConnectionLimits, _ next: ConnectionLimits) {
            if next.idleTimeoutMs != now.idleTimeoutMs { changed.append("\(key).idle_timeout_ms") }
            if next.maxConnections != now.maxConnections { changed.append("\(key).max_connections") }
        }
        if next.listen != listen { changed.append("listen") }
        if !next.upstreams.isEmpty && next.upstreams != upstreams { changed.append("upstreams") }
        if next.threads != threads { changed.append("threads") }
        if next.metricsListen != metricsListen { changed.append("metrics.listen") }
        limits("metrics", metricsConnections, next.metricsConnections)
        if next.controlSocket != controlSocket { changed.append("control.socket") }
        limits("control", controlConnections, next.controlConnections)
        if next.queryLog != queryLog || next.queryLogFile != queryLogFile { changed.append("log") }
        if next.dnstap != dnstap { changed.append("log.dnstap") }
        if next.stateFile != stateFile { changed.append("state_file") }
        if next.maxUDPPayload != maxUDPPayload { changed.append("max_udp_payload") }
        if next.cache != cache { changed.append("cache") }
        if next.upstreamTimeoutMs != upstreamTimeoutMs || next.upstreamDeadlineMs != upstreamDeadlineMs
            || next.upstreamPreserveCase != upstreamPreserveCase { changed.append("upstream") }
        if next.tcp != tcp { changed.append("tcp") }
        if next.udpCoalesceMicros != udpCoalesceMicros || next.udpCoalesceForwardingMicros != udpCoalesceForwardingMicros
            || next.udpCoalesceMinRate != udpCoalesceMinRate { changed.append("udp") }
        if next.controlSocketMode != controlSocketMode { changed.append("control.mode") }
        // The detector keeps its state and thresholds from the start; a reload swaps the policy only.
        if next.detector != detector || next.detectorEnabled != detectorEnabled || next.quarantineOnAlert != quarantineOnAlert
            || next.quarantineSeconds != quarantineSeconds { changed.append("detector") }
        if next.publicSuffixFile != publicSuffixFile { changed.append("public_suffix_list") }
        if next.entryUnusedAfter != entryUnusedAfter { changed.append("entry_unused_after") }
        return changed
    }
}

/// One `profiles:` item: a named policy for the clients it selects.
public struct ProfileConfig: Sendable {
    public var name: String
    public var clients: [ClientPrefix] = []
    public var listeners: [HostPort] = []
    /// The config line of each listener, for the check that `listen` has it.
    public var listenerLines: [HostPort: Int] = [:]
    public var allowFiles: [String] = []
    public var mode: PolicyMode?
    public var sinkhole: SinkholeMode?
    public var sinkholeTTL: UInt32?
    public init(name: String) { self.name = name }
}

/// A configuration the server refuses, with the place to fix it.
public struct ConfigError: Error, CustomStringConvertible {
    public let file: String
    public let line: Int?
    public let message: String
    public init(file: String, line: Int?, _ message: String) { self.file = file; self.line = line; self.message = message }
    public var description: String { line.map { "\(file):\($0): \(message)" } ?? "\(file): \(message)" }
}
