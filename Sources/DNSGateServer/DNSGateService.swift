import DNSGateCore
import Dispatch
import Foundation
import Logging
import NIOCore
import NIOExtras
import NIOPosix
import Synchronization

/// A listener that is up, for the start-up log and for tests that bind port 0.
public struct BoundListener: Sendable, CustomStringConvertible {
    public let transport: String      // "udp" or "tcp"
    public let address: HostPort
    public var description: String { "\(transport)://\(address)" }
}

/// The running server: listeners, upstream client, control socket, reload, shutdown.
///
/// Policy comes from the config file plus command-line overrides; `reload()` re-reads both the file and
/// every allow file and swaps the new policy in whole. A reload that fails changes nothing.
public final class DNSGateService: @unchecked Sendable {
    public let logger: Logger
    public internal(set) var config: ServerConfig
    private let overrides: @Sendable (inout ServerConfig) -> Void
    let pipeline: QueryPipeline
    let upstream: UpstreamClient
    let queryLog: QueryLogger
    let dnstap: DnstapWriter?
    private let group: MultiThreadedEventLoopGroup
    private var channels: [Channel] = []
    private var datagramListeners: [DatagramListener] = []
    /// Times a UDP listener waited for a flood's next batch to gather (`ReadCoalescing`).
    let udpCoalescedWaits = AtomicCounter()
    private var control: ControlServer?
    /// Open connections and their caps, per stream listener.
    let tcpLimit, metricsLimit, controlLimit: ConnectionLimit
    var connectionLimits: [ConnectionLimit] { [tcpLimit, metricsLimit, controlLimit] }
    public private(set) var listeners: [BoundListener] = []
    let startedAtEpoch = WallClock.now()
    private let reloadLock = Mutex(0)   // reload count; serialises reloads
    private var signalSources: [DispatchSourceSignal] = []
    private let stopped = DispatchSemaphore(value: 0)
    var suffixes: PublicSuffixList?
    let violations = ViolationLog()
    let audit = AuditRecorder()
    private(set) var exceptionStore: ExceptionStore!
    private var pruneTask: RepeatedTask?
    private(set) var telemetry: TelemetryHub!
    private var metrics: MetricsEndpoint?
    public var metricsPort: Int? { metrics?.port }

    /// Builds everything that can fail before a socket is opened: config checks, policy, upstreams.
    public init(config: ServerConfig, overrides: @escaping @Sendable (inout ServerConfig) -> Void = { _ in }, logger: Logger) throws {
        self.config = config
        self.overrides = overrides
        self.logger = logger
        // A log reader that goes away (standard output piped into a shipper that restarts) must cost
        // lines, not the process: the write then fails with EPIPE, which `LogFile` reports.
        signal(SIGPIPE, SIG_IGN)
        suffixes = try PolicyBuilder.suffixList(config) { logger.warning("\($0)", metadata: ["concern": "policy", "file": "\(config.publicSuffixFile)"]) }
        let policy = try PolicyBuilder.build(config, suffixes: suffixes)
        var ups = config.upstreams
        if ups.isEmpty {
            ups = ResolvConf.nameservers(excluding: config.listen)
            guard !ups.isEmpty else {
                throw ConfigError(file: config.sourceFile ?? "command line", line: nil,
                                  "no upstreams configured and /etc/resolv.conf names none other than dnsgate itself; set `upstreams:` or --upstream")
            }
        }
        self.config.upstreams = ups
        // Said at start, not at the first miss: every query sent there would fail at once ("no socket").
        for u in ups where !((try? u.socketAddress(port: u.port)).map(DatagramListener.familyIsAvailable) ?? true) {
            logger.warning("this kernel has no IPv6; this upstream cannot be asked, and misses go to the others",
                           metadata: ["concern": "upstream", "upstream": "\(u)"])
        }
        let rttSink = RTTSink(upstreams: ups.map(\.description))
        let dnstap = config.dnstap.map { DnstapWriter(destination: $0.destination, identity: $0.identity, logger: logger) }
        self.dnstap = dnstap
        upstream = try UpstreamClient(upstreams: ups, timeoutMs: config.upstreamTimeoutMs, deadlineMs: config.upstreamDeadlineMs,
                                      dnstap: dnstap, logger: logger, onRTT: { rttSink.record($0, $1) })
        pipeline = QueryPipeline(policies: policy, cache: AnswerCache(limits: config.cache), maxUDPPayload: config.maxUDPPayload)
        queryLog = try QueryLogger(level: config.queryLog, file: config.queryLogFile, logger: logger)
        tcpLimit = ConnectionLimit("tcp", config.tcp, logger: logger)
        metricsLimit = ConnectionLimit("metrics", config.metricsConnections, logger: logger)
        controlLimit = ConnectionLimit("control", config.controlConnections, logger: logger)
        let threads = config.threads == 0 ? System.coreCount : config.threads
        group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        exceptionStore = try ExceptionStore(path: config.stateFile, pipeline: pipeline, suffixes: suffixes, logger: logger, now: WallClock.now())
        let runner = config.detectorEnabled
            ? DetectorRunner(config: config.detector, suffixes: suffixes ?? PublicSuffixList(text: ""), logger: logger,
                             quarantine: config.quarantineOnAlert ? self : nil, quarantineSeconds: Double(config.quarantineSeconds))
            : nil
        telemetry = TelemetryHub(suffixes: suffixes, detector: runner, violations: violations)
        rttSink.attach(telemetry)
    }

    /// Opens every listener and the control socket.
    /// - Throws: `ConfigError` naming the address and the likely culprit when a port is taken.
    public func start() throws {
        let hub = telemetry!
        let core = ServingCore(pipeline: pipeline, upstream: upstream, queryLog: queryLog, logger: logger, audit: audit,
                               telemetry: hub, preserveCase: config.upstreamPreserveCase, dnstap: dnstap)
        let store = exceptionStore!, pipeline = self.pipeline, logger = self.logger
        var clock = ClockStepWatcher()   // touched by this repeated task only, after this first reading
        _ = clock.step(wall: WallClock.now(), monotonicNanoseconds: ClockStepWatcher.bootNanoseconds())
        let unwanted = upstream.unwanted
        pruneTask = group.next().scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
            unwanted.sweep()
            let now = WallClock.now()
            if let step = clock.step(wall: now, monotonicNanoseconds: ClockStepWatcher.bootNanoseconds()) {
                store.shift(by: step)
                pipeline.updateQuarantines { $0.shift(by: step) }
                hub.clockStepped(by: step)
                logger.warning("the wall clock stepped; exception and quarantine lifetimes keep their remaining time",
                               metadata: ["concern": "exceptions", "step_s": "\(Int(step.rounded()))"])
            }
            store.prune(now: now)
            for q in pipeline.updateQuarantines({ $0.prune(now: now) }) {
                logger.notice("quarantine expired", metadata: ["concern": "detector", "id": "\(q.id)", "client": "\(q.client)", "domain": "\(q.domain)"])
            }
        }
        // Treated as the DNS listeners are (`bindableAddress`): an optional side endpoint must not
        // keep DNS from starting (QA pass 4).
        if let m = config.metricsListen {
            do {
                if let address = try bindableAddress(m, noun: "metrics address", skipped: "metrics are not served") {
                    metrics = try MetricsEndpoint(address: address, group: group, limit: metricsLimit,
                                                  scrape: { [gauges = MetricsGauges(service: self)] in gauges.refresh(); return hub.exposition() })
                    listeners.append(BoundListener(transport: "http", address: HostPort(host: m.host, port: metrics?.port ?? m.port)))
                }
            } catch {
                shutdown()
                throw bindError(error, m, "http metrics")
            }
        }
        do {
            var skipped = false
            for hp in config.listen {
                guard let address = try bindableAddress(hp, noun: "listen address", skipped: "not listening on this address") else {
                    skipped = true
                    continue
                }
                let port = try bindUDP(hp, at: address, core: core)
                try bindTCP(HostPort(host: hp.host, port: port), core: core)
            }
            if skipped && !listeners.contains(where: { $0.transport == "udp" }) {
                throw ConfigError(file: config.sourceFile ?? "command line", line: nil,
                                  "no listen address can be served: every one is IPv6, and this kernel has no IPv6")
            }
        } catch let e as ConfigError {
            shutdown(); throw e
        }
        do {
            control = try ControlServer(path: config.controlSocket, mode: config.controlSocketMode, group: group,
                                    limit: controlLimit, responder: self)
        } catch {
            shutdown()
            throw ConfigError(file: config.sourceFile ?? "command line", line: nil, "cannot open the control socket \(config.controlSocket): \(errorText(error))")
        }
        let snap = pipeline.snapshot
        logger.info("dnsgate started", metadata: [
            "profiles": "\(snap.policies.profiles.map(\.name).joined(separator: " "))",
            "exceptions": "\(pipeline.exceptions.all.count)",
            "concern": "lifecycle",
            "listeners": "\(listeners.map(\.description).joined(separator: " "))",
            "upstreams": "\(config.upstreams.map(\.description).joined(separator: " "))",
            "entries": "\(snap.policy.allowList.count)",
            "entries_all_profiles": "\(snap.policies.entriesInAllPolicies)",
            "allow_files": "\(config.allowFiles.joined(separator: " "))",
            "mode": "\(snap.policy.mode.rawValue)",
            "sinkhole": "\(snap.policy.sinkhole)",
            "control": "\(config.controlSocket)",
            "threads": "\(group.makeIterator().map { _ in 1 }.count)",
        ])
    }

    /// The address to bind `hp` on, or nil when this kernel has no IPv6 and it is an IPv6 address:
    /// skipped with a warning, as NSD and unbound do, so one config (`[::]:53` beside `0.0.0.0:53`)
    /// serves every host. An address on no interface yet is bound anyway (IP_FREEBIND) and said.
    private func bindableAddress(_ hp: HostPort, noun: String, skipped: String) throws -> SocketAddress? {
        let address = try hp.socketAddress(port: hp.port)
        guard DatagramListener.familyIsAvailable(address) else {
            logger.warning("this kernel has no IPv6; \(skipped)", metadata: ["concern": "listener", "address": "\(hp)"])
            return nil
        }
        if !DatagramListener.isPresent(address) {
            logger.warning("\(noun) is on no interface yet; bound anyway, it answers once the address appears",
                           metadata: ["concern": "listener", "address": "\(hp)"])
        }
        return address
    }

    /// One UDP listener thread (and socket) per event loop; each hands its cache misses to its loop.
    private func bindUDP(_ hp: HostPort, at address: SocketAddress, core: ServingCore) throws -> Int {
        var address = address
        if hp.port != 0 {
            do { try DatagramListener.assertUnused(address) }
            catch { throw bindError(error, hp, "udp") }
        }
        var port = hp.port
        for (i, loop) in group.makeIterator().enumerated() {
            let l: DatagramListener
            do {
                l = try DatagramListener(address: address, core: core, listener: hp.description, loop: loop,
                                         coalescing: ReadCoalescing(windowMicros: config.udpCoalesceMicros, forwardingMicros: config.udpCoalesceForwardingMicros,
                                                                   minRate: config.udpCoalesceMinRate),
                                         coalescedWaits: udpCoalescedWaits)
            } catch {
                throw bindError(error, HostPort(host: hp.host, port: port), "udp")
            }
            datagramListeners.append(l)
            l.start(name: "dnsgate-udp-\(datagramListeners.count)-\(i)")
            if port == 0 { port = l.port; address.port = port }   // the other loops join the port the kernel chose
        }
        listeners.append(BoundListener(transport: "udp", address: HostPort(host: hp.host, port: port)))
        return port
    }

    private func bindTCP(_ hp: HostPort, core: ServingCore) throws {
        let limit = tcpLimit
        var bootstrap = ServerBootstrap(group: group)
        if hp.host.contains(":") {   // IPv6 only, as the UDP sockets: `[::]` and `0.0.0.0` side by side
            bootstrap = bootstrap.serverChannelOption(ChannelOptions.Types.SocketOption(level: .ipv6, name: .ipv6_v6only), value: 1)
        }
        bootstrap = bootstrap.serverChannelOption(   // an address not there yet, as for UDP
            ChannelOptions.Types.SocketOption(level: .ip, name: NIOBSDSocket.Option(rawValue: DatagramListener.freebind)), value: 1)
        bootstrap = bootstrap
            .serverChannelOption(ChannelOptions.backlog, value: 256)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.allowRemoteHalfClosure, value: true)   // see StreamQueryHandler
            .childChannelInitializer { ch in
                guard limit.admit(ch) else { return ch.eventLoop.makeSucceededVoidFuture() }
                return ch.eventLoop.makeCompletedFuture {
                    let ops = ch.pipeline.syncOperations
                    try ops.addHandler(ByteToMessageHandler(LengthFieldBasedFrameDecoder(lengthFieldLength: .two)))
                    try limit.addIdleTimeout(to: ops)   // RFC 7766 §6.2.3: close idle connections
                    try ops.addHandler(LengthFieldPrepender(lengthFieldLength: .two))
                    try ops.addHandler(StreamQueryHandler(core: core, listener: hp.description))
                }
            }
        do { channels.append(try bootstrap.bind(to: hp.socketAddress(port: hp.port)).wait()) } catch {
            throw bindError(error, hp, "tcp")
        }
        listeners.append(BoundListener(transport: "tcp", address: hp))
    }

    private func bindError(_ error: Error, _ hp: HostPort, _ transport: String) -> ConfigError {
        let errno = (error as? IOError)?.errnoCode
        var msg = "cannot listen on \(hp) (\(transport)): \(errorText(error))"
        if errno == EADDRINUSE {
            msg += ". Another DNS server already uses this address (systemd-resolved, dnsmasq, unbound, a second dnsgate?); "
                + "`ss -ln\(transport == "tcp" ? "t" : "u")p 'sport = :\(hp.port)'` shows which. Stop it, or listen on another address."
        } else if errno == EACCES {
            msg += ". Ports below 1024 need root or CAP_NET_BIND_SERVICE (`setcap cap_net_bind_service=+ep $(which dnsgate)`)."
        } else if errno == EADDRNOTAVAIL {
            msg += ". No interface has this address."
        }
        return ConfigError(file: config.sourceFile ?? "command line", line: nil, msg)
    }

    /// Re-reads the config file (if any) and every allow file; installs the new policy only if all of it loads.
    /// Returns a summary of that policy, and warnings for changed settings that need a restart.
    @discardableResult
    public func reload() -> Result<(message: String, warnings: [String]), Error> {
        reloadLock.withLock { count in
            // First, and whatever becomes of the policy: logrotate's SIGHUP must reach the log even when
            // the config being edited at that moment does not load.
            do { try queryLog.reopen() } catch {
                logger.error("cannot reopen the query log; still writing to the file opened before", metadata: ["concern": "log", "error": "\(error)"])
            }
            do {
                var next = try config.sourceFile.map { try ConfigLoader.load(path: $0) } ?? config
                overrides(&next)
                let policy = try PolicyBuilder.build(next, suffixes: suffixes)
                // Said to the operator who ran `dnsgate reload`, not only to this log.
                let warnings = config.restartOnlyChanges(to: next).map { "\($0) changed; restart dnsgate to apply" }
                for w in warnings { logger.warning("\(w)", metadata: ["concern": "reload"]) }
                pipeline.swapPolicy(policy, now: WallClock.now())
                count += 1
                let entries = policy.entriesInAllPolicies
                let msg = "policy reloaded: \(entries) entries, \(policy.profiles.count) profiles, mode \(policy.base.mode.rawValue)"
                logger.info("\(msg)", metadata: ["concern": "reload", "generation": "\(pipeline.snapshot.generation)"])
                return .success((msg, warnings))
            } catch {
                logger.error("reload refused; the previous policy keeps serving", metadata: ["concern": "reload", "error": "\(error)"])
                return .failure(error)
            }
        }
    }

    /// Blocks until SIGINT or SIGTERM; SIGHUP reloads.
    public func runUntilSignalled() {
        for sig in [SIGHUP, SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let src = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            src.setEventHandler { [weak self] in
                guard let self else { return }
                if sig == SIGHUP { self.reload() } else {
                    self.logger.info("stopping", metadata: ["concern": "lifecycle", "signal": "\(sig)"])
                    self.stopped.signal()
                }
            }
            src.resume()
            signalSources.append(src)
        }
        stopped.wait()
        shutdown()
    }

    public func shutdown() {
        pruneTask?.cancel(); pruneTask = nil
        metrics?.close(); metrics = nil
        upstream.close()
        control?.close(); control = nil
        for l in datagramListeners { l.stop() }
        for ch in channels { try? ch.close().wait() }
        channels.removeAll()
        queryLog.flush()
        try? group.syncShutdownGracefully()
        dnstap?.stop()   // after the loops: the last replies are in its queue
        for l in datagramListeners { l.close() }   // after the loops: late upstream replies still send on them
        datagramListeners.removeAll()
        exceptionStore?.saveHits()   // after the last query: every hit counted
    }
}


extension DNSGateService: QuarantineControl {
    func quarantine(client: String, domain: DNSName, seconds: Double, reason: String, now: Double) {
        let e = pipeline.updateQuarantines { $0.add(client: client, domain: domain, until: now + seconds, reason: reason, id: ExceptionStore.newID()) }
        logger.warning("registered domain quarantined for client", metadata: ["concern": "detector", "id": "\(e.id)", "client": "\(client)",
                                                                           "domain": "\(e.domain)", "until": "\(Int(e.until))", "reason": "\(e.reason)"])
    }
}

extension HostPort {
    /// The address to bind, read as the IP literal it is (`HostPort` accepts no names). Not through
    /// getaddrinfo, as NIO's `bind(host:port:)` does: with its default AI_ADDRCONFIG it refuses `::`
    /// and `::1` on a host whose interfaces have no IPv6 (a container on an IPv4-only Docker network),
    /// where binding them works.
    func socketAddress(port: Int) throws -> SocketAddress {
        do { return try SocketAddress(ipAddress: host, port: port) } catch {
            throw ConfigError(file: "listen", line: nil, "\(self) is not an IP address")   // `init(parsing:)` checked it
        }
    }
}
