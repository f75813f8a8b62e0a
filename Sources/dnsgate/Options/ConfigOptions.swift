import ArgumentParser
import DNSGateCore
import DNSGateServer
import Foundation

/// Where the configuration comes from, and the flags that override what decides a query: serve,
/// check, validate. The flags that only a running server uses are `ServingOptions`.
///
/// With no `--config`, `config/dnsgate.yaml` under the current directory is used if present, then
/// `/etc/dnsgate/dnsgate.yaml`; with neither, built-in defaults plus the flags.
struct ConfigOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Configuration file (YAML).", valueName: "file"))
    var config: String?

    @Flag(name: .long, help: "Ignore configuration files; use built-in defaults and the flags only.")
    var noConfig = false

    @Option(name: .long, help: ArgumentHelp("Address to serve UDP and TCP on, ADDR[:PORT] or [IPV6]:PORT (repeatable; replaces the config's list).", valueName: "addr:port"))
    var listen: [String] = []

    @Option(name: .long, help: ArgumentHelp("Allow-list file, plain list or RPZ zone (repeatable; replaces the config's list).", valueName: "file"))
    var allow: [String] = []

    @Option(name: .long, help: ArgumentHelp("Answer for denied names: \(Self.sinkholeFlagModes) (redirect: in the config file only).",
                                            valueName: "mode"))
    var sinkhole: String?

    @Option(name: .long, help: ArgumentHelp("enforce (deny what is not listed) or audit (forward everything, log what would be denied).", valueName: "mode"))
    var mode: String?

    var configPath: String? { noConfig ? nil : config ?? Self.defaultConfigPath }

    /// `config/dnsgate.yaml` under the current directory if present, then `/etc/dnsgate/dnsgate.yaml`.
    static var defaultConfigPath: String? {
        ["config/dnsgate.yaml", "/etc/dnsgate/dnsgate.yaml"].first { FileManager.default.fileExists(atPath: $0) }
    }

    func validate() throws {
        for l in listen where HostPort(parsing: l) == nil { throw ValidationError("--listen \(l): expected ADDR[:PORT] or [IPV6]:PORT") }
        if let s = sinkhole, s == "redirect" || SinkholeMode(name: s) == nil {
            // A flag cannot carry redirect's addresses, and taking them from the file would split one setting over two places.
            throw ValidationError("--sinkhole \(s): expected \(Self.sinkholeFlagModes); for redirect set sinkhole.mode: redirect "
                                  + "with redirect_v4/redirect_v6 in the config file")
        }
        if let m = mode, PolicyMode(rawValue: m) == nil { throw ValidationError("--mode \(m): expected enforce or audit") }
    }

    /// Applies the flags (these and `serving`'s) on top of a loaded configuration; also used again on every reload.
    func overrides(_ serving: ServingOptions) -> @Sendable (inout ServerConfig) -> Void {
        let listen = listen.compactMap { HostPort(parsing: $0) }
        let cwd = FileManager.default.currentDirectoryPath
        let allow = allow.map { $0.hasPrefix("/") ? $0 : cwd + "/" + $0 }
        let sinkhole = sinkhole.flatMap { SinkholeMode(name: $0) }, mode = mode.flatMap(PolicyMode.init(rawValue:))
        let serve = serving.overrides
        return { c in
            if !listen.isEmpty { c.listen = listen }
            if !allow.isEmpty { c.allowFiles = allow }
            if let sinkhole { c.sinkhole = sinkhole }
            if let mode { c.mode = mode }
            serve(&c)
        }
    }

    /// The sinkhole modes `--sinkhole` takes: all but redirect, whose addresses only the config file holds.
    static let sinkholeFlagModes = SinkholeMode.allNames.filter { $0 != "redirect" }.joined(separator: ", ")

    /// The effective configuration: file (if any) then flags.
    func load(_ serving: ServingOptions) throws -> ServerConfig {
        var c = try configPath.map { try ConfigLoader.load(path: $0) } ?? ServerConfig()
        overrides(serving)(&c)
        return c
    }
}

/// The flags only a running server uses: serve and validate show them; check takes them (scripts
/// pass serve's flags along) without listing them, since none changes its answer (QA pass 11).
struct ServingOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Upstream resolver, ADDR[:PORT] (repeatable; replaces the config's list).", valueName: "addr:port"))
    var upstream: [String] = []

    @Option(name: .long, help: ArgumentHelp("Path of the control socket.", valueName: "path"))
    var control: String?

    // Unconditional: `--threads -1` is then a range error, not the parser's "Missing value".
    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("UDP listener threads and event loops (0: one per core).", valueName: "n"))
    var threads: Int?

    @Option(name: .long, help: ArgumentHelp("Query log: none, denied or all.", valueName: "level"))
    var queryLog: String?

    @Option(name: .long, help: ArgumentHelp("Query log file ('-' for standard output).", valueName: "file"))
    var queryLogFile: String?

    @Option(name: .long, help: ArgumentHelp("Send every query and reply as dnstap to this collector: a Unix socket path, or ADDR:PORT (replaces the config's log.dnstap destination).", valueName: "socket"))
    var dnstap: String?

    /// `--dnstap`, a relative socket path taken from the current directory.
    private var dnstapDestination: DnstapWriter.Destination? {
        guard let d = dnstap else { return nil }
        let cwd = FileManager.default.currentDirectoryPath
        return DnstapConfig.destination(parsing: d.hasPrefix("/") || !d.contains("/") ? d : cwd + "/" + d)
    }

    func validate() throws {
        for u in upstream where HostPort(parsing: u) == nil { throw ValidationError("--upstream \(u): expected ADDR[:PORT] or [IPV6]:PORT") }
        if let q = queryLog, QueryLogLevel(rawValue: q) == nil { throw ValidationError("--query-log \(q): expected none, denied or all") }
        if let t = threads, !(0...64).contains(t) { throw ValidationError("--threads \(t): expected 0...64") }
        if let d = dnstap, dnstapDestination == nil {
            throw ValidationError("--dnstap \(d): expected a Unix socket path of at most \(DnstapConfig.maxSocketPath) bytes, or ADDR:PORT")
        }
    }

    fileprivate var overrides: @Sendable (inout ServerConfig) -> Void {
        let upstream = upstream.compactMap { HostPort(parsing: $0) }
        let control = control, threads = threads, queryLog = queryLog.flatMap(QueryLogLevel.init(rawValue:)), logFile = queryLogFile
        let dnstap = dnstapDestination
        return { c in
            if !upstream.isEmpty { c.upstreams = upstream }
            if let control { c.controlSocket = control }
            if let threads { c.threads = threads }
            if let queryLog { c.queryLog = queryLog }
            if let logFile { c.queryLogFile = logFile }
            if let dnstap { c.dnstap = DnstapConfig(destination: dnstap, identity: c.dnstap?.identity ?? DnstapConfig.hostName) }
        }
    }
}

/// Options for commands that talk to a running server: stats, reload.
struct ControlOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Control socket of the running server (default: the one in the config).", valueName: "path"))
    var control: String?

    @Option(name: .long, help: ArgumentHelp("Configuration file to read the socket path from.", valueName: "file"))
    var config: String?

    /// `--control`, else the socket of the configuration `serve` would read (`ConfigOptions`). A
    /// configuration that cannot be read is the command's error: falling back to the default socket
    /// sent the command to whichever server listens there, which may not be the one meant.
    /// - Parameter despiteMistakes: for `reload`, a configuration with a mistake that still names its
    ///   socket (or names none, so the default) is said in a warning and the server is asked anyway:
    ///   the server then refuses its file with the line, logs it and reopens its log, as on SIGHUP.
    ///   Stopping at the mistake left the log unopened after a rotation (QA pass 11, F2).
    func socketPath(despiteMistakes: Bool = false) throws -> String {
        if let control { return control }
        guard let path = config ?? ConfigOptions.defaultConfigPath else { return ServerConfig.defaultControlSocket }
        do { return try ConfigLoader.load(path: path).controlSocket } catch {
            guard despiteMistakes, let socket = ConfigLoader.controlSocket(path: path) else { throw error }
            warn("\(error); asking the server at \(socket) to reload all the same")
            return socket
        }
    }
}

/// Prints a configuration error the way compilers do, and fails (with `status` where 1 means something else).
func fail(_ error: Error, status: Int32 = 1) -> ExitCode {
    FileHandle.standardError.write(Data("dnsgate: error: \(error)\n".utf8))
    return ExitCode(status)
}

/// Prints a warning on standard error; the command goes on.
func warn(_ text: String) {
    FileHandle.standardError.write(Data("dnsgate: warning: \(text)\n".utf8))
}

/// `--client` of the commands that read what a client did (`verdict`, `suggest`, `alerts`): one
/// address, in the form the server records (`::ffff:192.0.2.7` is 192.0.2.7). Anything else, a
/// prefix, a name or a port, would match no record and read as "nothing" (QA pass 11, F4).
enum ClientOption {
    static func canonical(_ text: String) throws -> String {
        guard let c = IPAddressText.canonical(text) else {
            throw ValidationError("--client '\(text)': expected one IPv4 or IPv6 address, e.g. 192.0.2.7 or 2001:db8::7")
        }
        return c
    }
}
