import DNSGateCore
import Foundation
import Yams

/// Reads config/dnsgate.yaml. Every key is checked: an unknown or misspelt key is an error with its
/// line, never silently ignored (a typo in `mode:` must not leave the firewall open).
///
/// Relative file paths are taken relative to the directory of the config file.
public enum ConfigLoader {
    public static func load(path: String) throws -> ServerConfig {
        let text: String
        do { text = try TextFile.read(path) } catch {
            throw ConfigError(file: path, line: nil, "cannot read: \(error)")
        }
        return try parse(text: text, file: path)
    }

    /// Only `control.socket` of a configuration that may be broken elsewhere: `dnsgate reload` must
    /// reach the server when the file has a mistake, so that the server refuses the file with its
    /// line, logs that and reopens its log, as on SIGHUP (QA pass 11, F2: the command stopped at the
    /// mistake itself). Nil when the file cannot be read, is not YAML, or `control.socket` is not text.
    public static func controlSocket(path: String) -> String? {
        guard let text = try? TextFile.read(path) else { return nil }
        let parsed: Node?
        do { parsed = try Yams.compose(yaml: text) } catch { return nil }
        guard let socket = parsed?["control"]?["socket"] else { return ServerConfig.defaultControlSocket }
        guard let p = socket.string, !p.isEmpty else { return nil }
        return resolve(p, besideConfig: path)
    }

    /// `path` as the configuration at `config` means it: a relative one is taken from that file's directory.
    static func resolve(_ path: String, besideConfig config: String) -> String {
        let baseDir = (config as NSString).deletingLastPathComponent
        return path.hasPrefix("/") || baseDir.isEmpty ? path : baseDir + "/" + path
    }

    public static func parse(text: String, file: String) throws -> ServerConfig {
        var c = ServerConfig()
        c.sourceFile = file
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch YamlError.duplicatedKeysInMapping(let keys, let context) {
            throw duplicateKey(keys.first ?? "?", first: context.mark, in: text, file: file)
        } catch let e as YamlError {
            throw ConfigError(file: file, line: yamlLine(e), "YAML syntax: \(e)")
        }
        guard let root else { return c }     // empty file: all defaults
        let r = Reader(file: file)
        let top = try r.mapping(root, allowed: ["listen", "upstreams", "allow", "mode", "sinkhole", "policy", "cache",
                                                "upstream", "tcp", "udp", "threads", "control", "log", "public_suffix_list", "max_udp_payload",
                                                "profiles", "state_file", "entry_unused_after", "metrics", "detector"])
        func resolve(_ p: String) -> String { Self.resolve(p, besideConfig: file) }

        if let n = top["listen"] {
            c.listen = try r.list(n).map { try r.hostPort($0) }
            if c.listen.isEmpty { throw r.error(n, "listen: [] would serve nothing; name at least one ADDRESS[:PORT]") }
        }
        if let n = top["upstreams"] {
            c.upstreams = try r.list(n).map { item in
                let hp = try r.hostPort(item)
                if let line = item.mark?.line { c.upstreamLines[hp] = line }
                return hp
            }
        }
        /// Allow files, each remembered with the line that names it.
        func allowFiles(_ n: Node) throws -> [String] {
            try r.list(n).map { item in
                let path = resolve(try r.string(item))
                if let line = item.mark?.line { c.allowFileLines[path] = line }
                return path
            }
        }
        if let n = top["allow"] { c.allowFiles = try allowFiles(n) }
        if let n = top["mode"] { c.mode = try r.mode(n) }
        if let n = top["threads"] { c.threads = try r.int(n, 0...64) }
        if let n = top["max_udp_payload"] { c.maxUDPPayload = UInt16(try r.int(n, 512...4096)) }
        if let n = top["public_suffix_list"] { c.publicSuffixFile = resolve(try r.string(n)); c.publicSuffixLine = n.mark?.line ?? 0 }
        if let n = top["sinkhole"] { (c.sinkhole, c.sinkholeTTL) = try r.sinkhole(n, default: (c.sinkhole, c.sinkholeTTL)) }
        if let n = top["metrics"] {
            let m = try r.mapping(n, allowed: ["listen", "idle_timeout_ms", "max_connections"])
            if let v = m["listen"] { let s = try r.string(v); c.metricsListen = s == "off" ? nil : try r.hostPort(v, portRequired: true) }
            try r.connectionLimits(m, &c.metricsConnections)
        }
        if let n = top["detector"] {
            let m = try r.mapping(n, allowed: ["enabled", "quarantine", "quarantine_seconds", "window_seconds", "volume_budget_bytes",
                                              "tunnel_budget_bytes", "wildcard_distinct_names", "rate_spike_names_per_minute",
                                              "spread_distinct_domains", "bypass_names", "domains"])
            if let v = m["enabled"] { c.detectorEnabled = try r.bool(v) }
            if let v = m["quarantine"] { c.quarantineOnAlert = try r.bool(v) }
            if let v = m["quarantine_seconds"] { c.quarantineSeconds = try r.int(v, 1...604_800) }
            if let v = m["window_seconds"] { c.detector.windowSeconds = Double(try r.int(v, 60...86_400)) }
            if let v = m["volume_budget_bytes"] { c.detector.volumeBudgetBytes = Double(try r.int(v, 64...10_000_000)) }
            if let v = m["tunnel_budget_bytes"] { c.detector.tunnelBudgetBytes = Double(try r.int(v, 64...10_000_000)) }
            if let v = m["wildcard_distinct_names"] { c.detector.wildcardDistinctNames = Double(try r.int(v, 1...10_000_000)) }
            if let v = m["rate_spike_names_per_minute"] { c.detector.rateSpikeMinNames = try r.int(v, 2...10_000_000) }
            if let v = m["spread_distinct_domains"] { c.detector.spreadDistinctDomains = Double(try r.int(v, 0...10_000_000)) }
            if let v = m["bypass_names"] { c.detector.bypassNames = try r.list(v).map { try r.string($0) } }
            // After the global limits: a domain's unset ones are theirs.
            if let v = m["domains"] { (c.detector.domainLimits, c.detectorDomainLines) = try r.domainLimits(v, defaults: c.detector.volumeLimits) }
        }
        if let n = top["state_file"] { c.stateFile = resolve(try r.string(n)) }
        if let n = top["entry_unused_after"] { c.entryUnusedAfter = try r.int(n, 60...31_536_000) }
        if let n = top["profiles"] {
            var names = Set<String>()
            for item in try r.list(n) {
                let m = try r.mapping(item, allowed: ["name", "clients", "listeners", "allow", "mode", "sinkhole"])
                guard let nameNode = m["name"] else { throw r.error(item, "a profile needs a name") }
                let name = try r.string(nameNode)
                guard name != PolicySet.defaultProfileName, names.insert(name).inserted else {
                    throw r.error(nameNode, "profile name '\(name)' is taken")
                }
                var p = ProfileConfig(name: name)
                if let v = m["clients"] {
                    p.clients = try r.list(v).map { node in
                        let t = try r.string(node)
                        guard let prefix = ClientPrefix(t) else { throw r.error(node, "expected an address prefix like 192.0.2.0/24, not '\(t)'") }
                        return prefix
                    }
                }
                if let v = m["listeners"] {
                    p.listeners = try r.list(v).map { item in
                        let hp = try r.hostPort(item)
                        if let line = item.mark?.line { p.listenerLines[hp] = line }
                        return hp
                    }
                }
                if let v = m["allow"] { p.allowFiles = try allowFiles(v) }
                if let v = m["mode"] { p.mode = try r.mode(v) }
                if let v = m["sinkhole"] {
                    let (mode, ttl) = try r.sinkhole(v, default: (c.sinkhole, c.sinkholeTTL))
                    p.sinkhole = mode; p.sinkholeTTL = ttl
                }
                guard !p.clients.isEmpty || !p.listeners.isEmpty else { throw r.error(item, "profile '\(name)' selects no clients: give clients or listeners") }
                c.profiles.append(p)
            }
        }
        if let n = top["policy"] {
            let m = try r.mapping(n, allowed: ["default_types", "cname_targets"])
            if let t = m["default_types"] {
                var types = Set<RecordType>()
                for item in try r.list(t) {
                    let s = try r.string(item)
                    guard let rt = RecordType(queryTypeMnemonic: s) else { throw r.error(item, "unknown query type '\(s)'") }
                    guard types.insert(rt).inserted else { throw r.error(item, "query type \(s) is listed twice in default_types") }
                }
                // Empty, every entry without a type list of its own would deny everything.
                guard !types.isEmpty else { throw r.error(t, "default_types must name at least one type (the default is [A, AAAA, CNAME, HTTPS, SVCB])") }
                c.defaultTypes = types
            }
            if let v = m["cname_targets"] {
                let s = try r.string(v)
                guard let rule = CNAMETargets(rawValue: s) else { throw r.error(v, "policy.cname_targets must be any or allowed, not '\(s)'") }
                c.cnameTargets = rule
            }
        }
        if let n = top["cache"] {
            let m = try r.mapping(n, allowed: ["max_entries", "max_bytes", "min_ttl", "max_ttl", "negative_max_ttl", "serve_stale"])
            if let v = m["max_entries"] { c.cache.maxEntries = try r.int(v, 0...50_000_000) }
            if let v = m["max_bytes"] { c.cache.maxBytes = try r.int(v, 65_536...(1 << 40)) }
            if let v = m["min_ttl"] { c.cache.minTTL = UInt32(try r.int(v, 0...86_400)) }
            if let v = m["max_ttl"] { c.cache.maxTTL = UInt32(try r.int(v, 0...604_800)) }
            if let v = m["negative_max_ttl"] { c.cache.maxNegativeTTL = UInt32(try r.int(v, 0...86_400)) }
            if let v = m["serve_stale"] { c.cache.serveStale = UInt32(try r.int(v, 0...604_800)) }
            if c.cache.minTTL > c.cache.maxTTL { throw r.error(n, "cache.min_ttl is above cache.max_ttl") }
        }
        if let n = top["upstream"] {
            let m = try r.mapping(n, allowed: ["timeout_ms", "deadline_ms", "preserve_case"])
            if let v = m["preserve_case"] { c.upstreamPreserveCase = try r.bool(v) }
            if let v = m["timeout_ms"] { c.upstreamTimeoutMs = try r.int(v, 10...30_000) }
            if let v = m["deadline_ms"] { c.upstreamDeadlineMs = try r.int(v, 10...60_000) }
            if c.upstreamDeadlineMs < c.upstreamTimeoutMs { throw r.error(n, "upstream.deadline_ms is below upstream.timeout_ms") }
        }
        if let n = top["tcp"] {
            try r.connectionLimits(try r.mapping(n, allowed: ["idle_timeout_ms", "max_connections"]), &c.tcp)
        }
        if let n = top["udp"] {
            let m = try r.mapping(n, allowed: ["coalesce_us", "coalesce_forwarding_us", "coalesce_min_qps"])
            if let v = m["coalesce_us"] { c.udpCoalesceMicros = UInt32(try r.int(v, 0...1000)) }
            if let v = m["coalesce_forwarding_us"] { c.udpCoalesceForwardingMicros = UInt32(try r.int(v, 0...1000)) }
            if let v = m["coalesce_min_qps"] { c.udpCoalesceMinRate = try r.int(v, 1_000...10_000_000) }
        }
        if let n = top["control"] {
            let m = try r.mapping(n, allowed: ["socket", "mode", "idle_timeout_ms", "max_connections"])
            if let v = m["socket"] { c.controlSocket = resolve(try r.string(v)) }
            try r.connectionLimits(m, &c.controlConnections)
            if let v = m["mode"] {
                let s = try r.string(v)
                guard let mode = UInt16(s, radix: 8), mode <= 0o777 else { throw r.error(v, "control.mode is octal permissions like \"0660\"") }
                // Connecting needs write permission: with it, any local user (a CI job on the runner) could
                // add exceptions, lift quarantines and reload.
                guard mode & 0o002 == 0 else {
                    throw r.error(v, "control.mode \(s) lets every local user manage exceptions and quarantines; grant a group instead (\"0660\")")
                }
                c.controlSocketMode = mode
            }
        }
        if let n = top["log"] {
            let m = try r.mapping(n, allowed: ["queries", "file", "dnstap"])
            if let v = m["queries"] {
                let s = try r.string(v)
                guard let l = QueryLogLevel(rawValue: s) else { throw r.error(v, "log.queries must be none, denied or all, not '\(s)'") }
                c.queryLog = l
            }
            if let v = m["file"] { let s = try r.string(v); c.queryLogFile = s == "-" ? s : resolve(s) }
            if let v = m["dnstap"] { c.dnstap = try r.dnstap(v, resolve: resolve) }
        }
        return c
    }

    /// Yams names the first occurrence of a duplicated key; the error belongs on the second, the one
    /// to delete: the next line after it that starts a key of that name in the same column.
    private static func duplicateKey(_ key: String, first: Mark, in text: String, file: String) -> ConfigError {
        let indent = max(0, first.column - 1)
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
        let spellings = [key, "\"\(key)\"", "'\(key)'"].map { $0 + ":" }
        for i in first.line..<lines.count {   // lines[first.line] is the line after the first occurrence
            let l = lines[i]
            guard l.count > indent, l.prefix(indent).allSatisfy({ $0 == " " }) else { continue }
            let rest = l.dropFirst(indent)
            if spellings.contains(where: { rest.hasPrefix($0) }) {
                return ConfigError(file: file, line: i + 1, "duplicate key '\(key)' (first at line \(first.line))")
            }
        }
        return ConfigError(file: file, line: first.line, "duplicate key '\(key)'")
    }

    private static func yamlLine(_ e: YamlError) -> Int? {
        switch e {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): return mark.line
        default: return nil
        }
    }

    /// Typed access to YAML nodes with errors that carry file and line.
    struct Reader {
        let file: String
        func error(_ n: Node, _ msg: String) -> ConfigError { ConfigError(file: file, line: n.mark?.line, msg) }

        func mapping(_ n: Node, allowed: Set<String>) throws -> [String: Node] {
            guard case .mapping(let m) = n else { throw error(n, "expected a mapping of keys") }
            var out: [String: Node] = [:]
            for (k, v) in m {
                guard let key = k.string else { throw error(k, "keys must be strings") }
                guard allowed.contains(key) else {
                    throw error(k, "unknown key '\(key)' (known here: \(allowed.sorted().joined(separator: ", ")))")
                }
                guard out[key] == nil else { throw error(k, "key '\(key)' given twice") }
                out[key] = v
            }
            return out
        }
        func list(_ n: Node) throws -> [Node] {
            if case .sequence(let s) = n { return Array(s) }
            if case .scalar = n { return [n] }
            throw error(n, "expected a list")
        }
        func string(_ n: Node) throws -> String {
            guard case .scalar(let s) = n else { throw error(n, "expected a single value") }
            return s.string
        }
        func int(_ n: Node, _ range: ClosedRange<Int>) throws -> Int {
            let s = try string(n)
            guard let v = Int(s) else { throw error(n, "expected a whole number, not '\(s)'") }
            guard range.contains(v) else { throw error(n, "\(v) is outside \(range.lowerBound)...\(range.upperBound)") }
            return v
        }
        /// `idle_timeout_ms` and `max_connections` of `tcp`, `metrics` or `control`.
        func connectionLimits(_ m: [String: Node], _ limits: inout ConnectionLimits) throws {
            if let v = m["idle_timeout_ms"] { limits.idleTimeoutMs = try int(v, 100...600_000) }
            if let v = m["max_connections"] { limits.maxConnections = try int(v, 1...100_000) }
        }
        func mode(_ n: Node) throws -> PolicyMode {
            let s = try string(n)
            guard let m = PolicyMode(rawValue: s) else { throw error(n, "mode must be enforce or audit, not '\(s)'") }
            return m
        }
        func bool(_ n: Node) throws -> Bool {
            switch try string(n).lowercased() {
            case "true", "yes", "on": return true
            case "false", "no", "off": return false
            case let s: throw error(n, "expected true or false, not '\(s)'")
            }
        }
        /// - Parameter portRequired: no default port (the metrics listener: 53 there would take the DNS port).
        func hostPort(_ n: Node, portRequired: Bool = false) throws -> HostPort {
            let s = try string(n)
            guard let hp = HostPort(parsing: s, defaultPort: portRequired ? 0 : 53) else {
                throw error(n, portRequired ? "expected ADDRESS:PORT or [IPV6]:PORT, not '\(s)'" : "expected ADDRESS[:PORT] or [IPV6]:PORT, not '\(s)'")
            }
            return hp
        }
        /// `log.dnstap`: a collector's Unix socket or TCP address, and the identity to send.
        func dnstap(_ n: Node, resolve: (String) -> String) throws -> DnstapConfig {
            let m = try mapping(n, allowed: ["socket", "address", "identity"])
            let destination: DnstapWriter.Destination
            switch (m["socket"], m["address"]) {
            case (let v?, nil):
                let text = try string(v)
                // Checked as typed first: empty, it resolved to the config's own directory, and connecting
                // there failed for ever (QA pass 7).
                if text.isEmpty || text.hasSuffix("/"), let p = DnstapConfig.socketPathProblem(text) { throw error(v, "log.dnstap.socket \(p)") }
                let path = resolve(text)
                if let p = DnstapConfig.socketPathProblem(path) { throw error(v, "log.dnstap.socket \(p)") }
                destination = .unix(path)
            case (nil, let v?):
                let s = try string(v)
                guard let hp = HostPort(parsing: s, defaultPort: 0) else {
                    throw error(v, "log.dnstap.address must be ADDRESS:PORT or [IPV6]:PORT, not '\(s)'")
                }
                destination = .tcp(hp)
            case (nil, nil): throw error(n, "log.dnstap needs socket (a Unix socket path) or address (ADDRESS:PORT)")
            case (_?, let v?): throw error(v, "log.dnstap takes socket or address, not both")
            }
            var identity = DnstapConfig.hostName
            if let v = m["identity"] {
                identity = try string(v)
                guard identity.utf8.count <= 255, !identity.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                    throw error(v, "log.dnstap.identity must be at most 255 bytes of visible text")
                }
            }
            return DnstapConfig(destination: destination, identity: identity)
        }
        /// `detector.domains:` list; each entry's limits not given are `defaults`. Keyed by the
        /// domain in lower case without its final dot, with the line naming it.
        func domainLimits(_ n: Node, defaults: DetectorConfig.VolumeLimits) throws -> ([String: DetectorConfig.VolumeLimits], [String: Int]) {
            var limits: [String: DetectorConfig.VolumeLimits] = [:], lines: [String: Int] = [:]
            for item in try list(n) {
                let m = try mapping(item, allowed: ["domain", "volume_budget_bytes", "rate_spike_names_per_minute", "wildcard_distinct_names"])
                guard let nameNode = m["domain"] else { throw error(item, "a detector domain needs `domain: NAME` (a registered domain)") }
                let text = try string(nameNode)
                // As in allow-lists: raw UTF-8 or a pasted control character would never match a query.
                do { try PlainListLoader.checkCharacters(text, at: SourceLocation(file: file, line: 0)) }
                catch let e as PolicyLoadError { throw error(nameNode, e.message) }
                if IPAddressText.octets(text) != nil { throw error(nameNode, "\(text) is an IP address; limits are set for a registered domain") }
                guard let name = try? DNSName(text), name.labelCount > 0 else { throw error(nameNode, "'\(text)' is not a domain name") }
                let key = String(name.description.dropLast()).lowercased()   // description ends with the root's dot
                if let first = lines[key] { throw error(nameNode, "domain \(key) is given twice (first at line \(first))") }
                guard m.count > 1 else {
                    throw error(item, "domain \(key) sets no limit (volume_budget_bytes, rate_spike_names_per_minute, wildcard_distinct_names)")
                }
                var l = defaults
                if let v = m["volume_budget_bytes"] { l.volumeBudgetBytes = Double(try int(v, 64...10_000_000)) }
                if let v = m["rate_spike_names_per_minute"] { l.rateSpikeMinNames = try int(v, 2...10_000_000) }
                if let v = m["wildcard_distinct_names"] { l.wildcardDistinctNames = Double(try int(v, 1...10_000_000)) }
                limits[key] = l
                lines[key] = nameNode.mark?.line ?? 0
            }
            return (limits, lines)
        }

        /// `sinkhole:` mapping; keys absent keep `default`.
        func sinkhole(_ n: Node, default d: (SinkholeMode, UInt32)) throws -> (SinkholeMode, UInt32) {
            let m = try mapping(n, allowed: ["mode", "ttl", "redirect_v4", "redirect_v6"])
            var (result, ttl) = d
            if let t = m["ttl"] { ttl = UInt32(try int(t, 0...86_400)) }
            let v4 = try m["redirect_v4"].map { try address($0, bytes: 4) }
            let v6 = try m["redirect_v6"].map { try address($0, bytes: 16) }
            if let mode = m["mode"] {
                let s = try string(mode)
                guard let parsed = SinkholeMode(name: s, redirectV4: v4, redirectV6: v6) else {
                    if s == "redirect" { throw error(mode, "sinkhole mode redirect needs redirect_v4 and/or redirect_v6") }
                    throw error(mode, "sinkhole mode must be one of \(SinkholeMode.allNames.joined(separator: ", ")), not '\(s)'")
                }
                result = parsed
            }
            return (result, ttl)
        }
        func address(_ n: Node, bytes: Int) throws -> [UInt8] {
            let s = try string(n)
            guard let a = IPAddressText.octets(s), a.count == bytes else {
                throw error(n, "expected an IPv\(bytes == 4 ? 4 : 6) address, not '\(s)'")
            }
            return a
        }
    }
}

/// Turns a configuration into a policy: loads every allow file through the real loaders.
public enum PolicyBuilder {
    /// The public suffix list. One the configuration names (`public_suffix_list`) must be readable:
    /// a typo there is an error at that line. The default one may be missing (an image without the
    /// publicsuffix package): nil, after `warn` is given the same words `serve`, `validate` and
    /// `check` say. Without a list the loaders still refuse a wildcard under a single label (`*.com`),
    /// the list's implicit rule; `*.co.uk` then passes.
    public static func suffixList(_ c: ServerConfig, warn: (String) -> Void) throws -> PublicSuffixList? {
        if let list = PublicSuffixList(contentsOfFile: c.publicSuffixFile) { return list }
        guard let line = c.publicSuffixLine else {
            warn("public suffix list \(c.publicSuffixFile) not readable (apt-get install -y publicsuffix): only wildcards under a "
                 + "single label such as *.com are refused; *.co.uk or *.github.io would load")
            return nil
        }
        throw ConfigError(file: c.sourceFile ?? "command line", line: line > 0 ? line : nil,
                          "public_suffix_list \(c.publicSuffixFile): cannot read it (apt-get install -y publicsuffix, or fix the path)")
    }

    /// An upstream that is one of dnsgate's own listen addresses (or loopback on the port of a
    /// wildcard listener) sends every allowed question back to dnsgate, which waits out the deadline
    /// and answers SERVFAIL (QA pass 11, F10): a mistake, refused at its line.
    static func checkNoUpstreamIsOurself(_ c: ServerConfig) throws {
        // The test `ResolvConf` applies to nameservers. The host's addresses are read (getifaddrs) only
        // when a wildcard listener shares a port with an upstream: under `0.0.0.0:53`, an upstream
        // written as one of this host's own addresses on port 53 is dnsgate too.
        let wildcardPorts = Set(c.listen.filter { IPAddressText.octets($0.host)?.allSatisfy { $0 == 0 } == true }.map(\.port))
        let local = c.upstreams.contains { wildcardPorts.contains($0.port) } ? ResolvConf.localAddresses() : []
        for u in c.upstreams {
            guard let ours = ResolvConf.ownListener(reachedBy: u, among: c.listen, localAddresses: local) else { continue }
            throw ConfigError(file: c.sourceFile ?? "command line", line: c.upstreamLines[u],
                              "upstream \(u) is dnsgate's own listen address \(ours): every allowed query would come back to it")
        }
    }

    /// The default policy and every profile's, each from its own allow files.
    public static func build(_ c: ServerConfig, suffixes: PublicSuffixList?) throws -> PolicySet {
        func load(_ files: [String]) throws -> AllowList {
            var list = AllowList()
            for f in files {
                // A file that cannot be read is a fault of the line naming it, not of line 0 of the file.
                let text: String
                do { text = try TextFile.read(f) } catch {
                    if let config = c.sourceFile, let line = c.allowFileLines[f] {
                        throw ConfigError(file: config, line: line, "cannot read allow-list \(f): \(error)")
                    }
                    throw ConfigError(file: f, line: nil, "cannot read allow-list: \(error)")
                }
                for e in try PolicyFileLoader.load(path: f, text: text, suffixes: suffixes) { try list.add(e) }
            }
            return list
        }
        // A profile selects by listener only among the addresses served; any other can never match.
        for p in c.profiles {
            for l in p.listeners where !c.listen.contains(l) {
                throw ConfigError(file: c.sourceFile ?? "command line", line: p.listenerLines[l],
                                  "profile '\(p.name)' listener \(l) is not under listen: (\(c.listen.map(\.description).joined(separator: ", "))), so it can never match")
            }
        }
        try checkDetectorDomains(c, suffixes: suffixes)
        try checkNoUpstreamIsOurself(c)
        let base = Policy(allowList: try load(c.allowFiles), mode: c.mode, sinkhole: c.sinkhole, sinkholeTTL: c.sinkholeTTL,
                          defaultTypes: c.defaultTypes, cnameTargets: c.cnameTargets)
        let profiles = try c.profiles.map { p in
            Profile(name: p.name, clients: p.clients, listeners: p.listeners.map(\.description),
                    policy: Policy(allowList: try load(p.allowFiles), mode: p.mode ?? c.mode, sinkhole: p.sinkhole ?? c.sinkhole,
                                   sinkholeTTL: p.sinkholeTTL ?? c.sinkholeTTL, defaultTypes: c.defaultTypes, cnameTargets: c.cnameTargets))
        }
        return PolicySet(base: base, profiles: profiles)
    }

    /// The detector counts per registered domain, so limits set for any other name would never
    /// apply: refused, naming the registered domain to write instead. Here, not in the loader,
    /// because it needs the suffix list (also on `validate`).
    public static func checkDetectorDomains(_ c: ServerConfig, suffixes: PublicSuffixList?) throws {
        guard let suffixes else { return }
        for (key, line) in c.detectorDomainLines.sorted(by: { $0.value < $1.value }) {
            guard let name = try? DNSName(key) else { continue }
            func refuse(_ why: String) -> ConfigError { ConfigError(file: c.sourceFile ?? "command line", line: line, why) }
            if suffixes.isPublicSuffix(name) {
                throw refuse("detector domain \(key) is a public suffix: limits apply to one registered domain under it (such as example.\(key))")
            }
            let registered = suffixes.registeredDomain(name)
            if registered != name {
                throw refuse("detector domain \(key) is not a registered domain, and the detector counts per registered domain: write \(String(registered.description.dropLast())) (its limits then cover every name under it)")
            }
        }
    }
}

/// Nameservers from /etc/resolv.conf, for when no upstream is configured (as dnsmasq does).
public enum ResolvConf {
    /// The `nameserver` lines of `path`, minus those that are this dnsgate: a listen address itself,
    /// or, for a wildcard listener (`0.0.0.0:53`, `[::]:53`), any address of this host in its family
    /// (loopback, or on an interface: `localAddresses`). Another host's resolver is kept whatever we
    /// listen on; a wildcard once made every nameserver look like ourselves.
    public static func nameservers(path: String = "/etc/resolv.conf", excluding own: [HostPort],
                                   localAddresses: Set<[UInt8]> = ResolvConf.localAddresses()) -> [HostPort] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        var out: [HostPort] = []
        for line in text.split(separator: "\n") {
            let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard f.count >= 2, f[0] == "nameserver" else { continue }
            var addr = String(f[1])
            if let pct = addr.firstIndex(of: "%") { addr = String(addr[..<pct]) }   // drop IPv6 zone index
            guard let hp = HostPort(parsing: addr.contains(":") ? "[\(addr)]:53" : addr) else { continue }
            // Skip ourselves: forwarding to our own listener would loop.
            if ownListener(reachedBy: hp, among: own, localAddresses: localAddresses) != nil { continue }
            out.append(hp)
        }
        return out
    }

    /// The listener among `listeners` that a query sent to `server` would reach: one on its port, at
    /// its address, or a wildcard of its family when it is loopback or in `localAddresses`.
    static func ownListener(reachedBy server: HostPort, among listeners: [HostPort], localAddresses: Set<[UInt8]>) -> HostPort? {
        guard let address = ClientPrefix.addressBytes(server.host) else { return nil }   // `::ffff:a.b.c.d` as IPv4
        for l in listeners where l.port == server.port {
            guard let listening = IPAddressText.octets(l.host) else { continue }
            if listening == address { return l }
            // A wildcard answers on every local address of its family (IPv6 listeners are IPv6-only).
            if listening.allSatisfy({ $0 == 0 }) && listening.count == address.count
                && (isLoopback(address) || localAddresses.contains(address)) { return l }
        }
        return nil
    }

    private static func isLoopback(_ a: [UInt8]) -> Bool {
        a.count == 4 ? a[0] == 127 : a == [UInt8](repeating: 0, count: 15) + [1]
    }

    /// The addresses of this host's interfaces (getifaddrs; in a network namespace, its own).
    public static func localAddresses() -> Set<[UInt8]> {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return [] }
        defer { freeifaddrs(list) }
        var out = Set<[UInt8]>()
        var p = list
        while let i = p {
            if let sa = i.pointee.ifa_addr {
                switch Int32(sa.pointee.sa_family) {
                case AF_INET: sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { _ = out.insert(withUnsafeBytes(of: $0.pointee.sin_addr) { Array($0) }) }
                case AF_INET6: sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { _ = out.insert(withUnsafeBytes(of: $0.pointee.sin6_addr) { Array($0) }) }
                default: break
                }
            }
            p = i.pointee.ifa_next
        }
        return out
    }
}
