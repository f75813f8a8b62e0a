import DNSGateCore
import Foundation

/// The control API's commands. Arguments arrive as strings; each command validates its own and
/// answers `{"ok": false, "error": "..."}` rather than guessing.
extension DNSGateService: ControlResponder {
    /// How far past the server's clock a verdict period may begin before it reads as a mistake. The CLI
    /// and the server read one clock, so this only absorbs the time the request took.
    static var clockSlack: Double { 5 }

    /// One spelling of a file's path, to tell whether an entry came from the --diff file.
    static func samePath(_ path: String) -> String { URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path }

    public func respond(to request: ControlRequest) -> [String: Any] {
        let args = request.arguments ?? [:]
        let now = WallClock.now()
        switch request.command {
        case "ping": return ["ok": true]
        case "reload":
            switch reload() {
            case .success(let r): return ["ok": true, "message": r.message, "warnings": r.warnings]
            case .failure(let e): return ["ok": false, "error": "\(e)"]
            }
        case "stats": return statsObject(includeEntries: args["entries"] == "true", now: now)
        case "allow_add":
            guard let pattern = args["pattern"], let reason = args["reason"], let secs = args["seconds"].flatMap(Double.init), secs > 0 else {
                return ["ok": false, "error": "allow_add needs pattern, reason and seconds > 0"]
            }
            if args["client"] != nil && args["profile"] != nil { return ["ok": false, "error": ControlCommandsText.clientOrProfile] }
            if let p = args["profile"], p != PolicySet.defaultProfileName, !pipeline.snapshot.policies.profiles.contains(where: { $0.name == p }) {
                return ["ok": false, "error": "no profile named '\(p)'"]
            }
            do {
                let e = try exceptionStore.add(pattern: pattern, client: args["client"], profile: args["profile"],
                                               types: args["types"].map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) },
                                               seconds: secs, reason: reason, now: now)
                return ["ok": true, "exception": exceptionObject(e, now: now)]
            } catch { return ["ok": false, "error": "\(error)"] }
        case "allow_list":
            return ["ok": true, "exceptions": liveExceptions(now: now)]
        case "allow_revoke":
            guard let id = args["id"] else { return ["ok": false, "error": "allow_revoke needs id"] }
            do { return try exceptionStore.revoke(id: id) ? ["ok": true] : ["ok": false, "error": "no exception with id \(id)"] }
            catch { return ["ok": false, "error": "\(error)"] }
        case "mark":
            guard let name = args["name"], !name.isEmpty else { return ["ok": false, "error": "mark needs a name"] }
            // Echoed in answers and job logs, as an exception's reason is: one short line of visible text.
            // Counted in bytes: as characters, combining marks fitted 58 KB into "200" (QA pass 6, F4).
            guard name.utf8.count <= ViolationLog.maxMarkName, !name.unicodeScalars.contains(where: ExceptionSet.isInvisibleOrBreaking) else {
                return ["ok": false, "error": "a mark name is at most \(ViolationLog.maxMarkName) bytes (UTF-8) of visible text "
                        + "(no control, format or line-separator characters)"]
            }
            telemetry.drain()   // what was answered before the mark is recorded before it
            // Setting a mark again moves it (a retried job reuses its ID): said, so a reused name is noticed.
            let moved = violations.mark(name) != nil
            violations.mark(name, at: now, lastAlertID: telemetry.detector?.lastAlertID ?? 0)
            return ["ok": true, "name": name, "time": now, "moved": moved]
        case "verdict":
            // Records hold the address as the listener saw it; compare one spelling of it, not the text typed.
            guard let client = args["client"].flatMap(IPAddressText.canonical) else {
                return ["ok": false, "error": "verdict needs client, an IPv4 or IPv6 address"]
            }
            // Whatever makes violations in the period possibly missing, said so the job log can show why.
            var missing: [String] = []
            // A mark, or the server's start when no period is given, is a position in what the server
            // recorded: a clock step after it moves no event out of the period. Only --since is a time.
            var since = startedAtEpoch
            var start = ViolationLog.PeriodStart.position(0)
            var alertsAfter = 0
            if let m = args["mark"] {
                // Marks live in memory: after a restart the server cannot vouch for the period.
                guard let mark = violations.mark(m) else {
                    return ["ok": false, "code": "unknown_mark",
                            "error": "mark '\(m)' is unknown to this server (it restarted after the mark was set, or the mark was never set)"]
                }
                since = mark.time; start = .position(mark.eventsBefore); alertsAfter = mark.lastAlertID
            } else if let text = args["since"] {
                guard let s = Self.epochSeconds(text) else { return Self.badSince(text) }
                since = s; start = .time(s)
                if s < startedAtEpoch { missing.append("the server started at \(ISO8601.format(startedAtEpoch)), after the period began") }
                // A start still to come (a mistyped date, a wrong offset) would make any job look clean.
                if s > now + Self.clockSlack {
                    missing.append("the period begins at \(ISO8601.format(s)), after now (\(ISO8601.format(now))): nothing in it has happened yet")
                }
            }
            telemetry.drain()   // the violation log is fed by the telemetry hub
            let (events, lostSome, remembersFrom) = violations.events(client: client, from: start)
            if lostSome {
                missing.append("the bounded violation log holds nothing older than \(ISO8601.format(remembersFrom ?? now)), after the period began")
            }
            if telemetry.droppedRecords(since: since) { missing.append("query records were shed under overload during the period") }
            var alerts = telemetry.detector?.alerts(afterID: alertsAfter, client: client) ?? []
            if case .time(let t) = start { alerts = alerts.filter { ($0["raised_at"] as? Double ?? 0) >= t } }
            // The job's gate as one word, as the exit status says it: `ok` only says the request worked.
            let verdict = !events.isEmpty || !alerts.isEmpty ? "violations" : missing.isEmpty ? "clean" : "incomplete"
            return ["ok": true, "verdict": verdict, "client": client, "since": since, "server_started": startedAtEpoch,
                    "incomplete": !missing.isEmpty, "incomplete_reasons": missing, "alerts": alerts,
                    "denied": events.filter { !$0.audited }.count, "would_deny": events.filter(\.audited).count,
                    "events": events.suffix(1000).map { ["time": $0.time, "name": $0.name.description, "type": $0.type?.mnemonic ?? "?",
                                                          "reason": $0.denial.description,
                                                          "audit": $0.audited, "profile": $0.profile] as [String: Any] }]
        case "suggest":
            var since = 0.0
            if let text = args["since"] {
                guard let s = Self.epochSeconds(text) else { return Self.badSince(text) }
                since = s
            }
            // Against the list the output joins: the running policy (the client's profile), with the --diff
            // file as it is now in place of the version the policy loaded (or added, if it is a new file):
            // an entry in another file still decides names, and a line duplicating it would not load.
            let snap = pipeline.snapshot
            let policy = snap.policies.policy(snap.policies.select(clientAddress: args["client"].flatMap(ClientPrefix.addressBytes), listener: nil))
            var existing = policy.allowList
            var fileLines: [String] = []
            var diffFile = ""
            if let path = args["diff"] {
                // The client reads the file and sends its text: the server never opens a path a client
                // names (it would read it with the server's rights, and a FIFO would hang its loop).
                guard let text = args["diff_text"] else { return ["ok": false, "error": "suggest --diff needs the file's text (diff_text)"] }
                diffFile = Self.samePath(path)
                do {
                    let others = policy.allowList.entries.filter { Self.samePath($0.source.file) != diffFile }
                    existing = try AllowList(others + PolicyFileLoader.load(path: path, text: text, suffixes: suffixes))
                    // Split as PlainListLoader numbers lines.
                    fileLines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).map(String.init)
                } catch { return ["ok": false, "error": "\(error)"] }
            }
            let suggested = AllowListSuggester.suggest(audit.seen(client: args["client"], since: since), existing: existing,
                                                       defaultTypes: policy.defaultTypes, suffixes: suffixes)
            if args["diff"] == nil { return ["ok": true, "lines": suggested.map(\.plain)] }
            let old = { (at: SourceLocation) in
                Self.samePath(at.file) == diffFile && fileLines.indices.contains(at.line - 1) ? fileLines[at.line - 1] : nil
            }
            return ["ok": true, "lines": suggested.flatMap { $0.diff(oldLine: old) }]
        case "alerts":
            guard let d = telemetry.detector else { return ["ok": true, "alerts": [], "detector": "disabled"] }
            telemetry.drain()
            return ["ok": true, "alerts": d.alerts(afterID: args["after"].flatMap(Int.init) ?? 0, client: args["client"])]
        case "quarantine_list":
            return ["ok": true, "quarantines": pipeline.quarantines.all.map { ["id": $0.id, "client": $0.client, "domain": $0.domain,
                                                                              "remaining_s": max(0, Int($0.until - now)), "reason": $0.reason] }]
        case "quarantine_lift":
            guard let id = args["id"] else { return ["ok": false, "error": "quarantine_lift needs id"] }
            guard pipeline.updateQuarantines({ $0.lift(id: id) }) else { return ["ok": false, "error": "no quarantine with id \(id)"] }
            logger.notice("quarantine lifted", metadata: ["concern": "detector", "id": "\(id)"])
            return ["ok": true]
        default:
            return ["ok": false, "error": "unknown command '\(request.command)' (known: ping, reload, stats, allow_add, allow_list, allow_revoke, "
                    + "mark, verdict, suggest, alerts, quarantine_list, quarantine_lift)"]
        }
    }

    /// The exceptions that still apply: one past its expiry no longer does, although the sweep that
    /// removes it and logs "exception expired" may be up to a second away (QA pass 11: it was listed
    /// with "0s left"); the time left is rounded up, so a live one never reads 0.
    private func liveExceptions(now: Double) -> [[String: Any]] {
        pipeline.exceptions.all.filter { $0.expiresAt > now }.map { exceptionObject($0, now: now) }
    }

    private func exceptionObject(_ e: PolicyException, now: Double) -> [String: Any] {
        var o: [String: Any] = ["id": e.id, "pattern": e.pattern, "reason": e.reason, "created": e.createdAt, "expires": e.expiresAt,
                                "remaining_s": max(0, Int((e.expiresAt - now).rounded(.up))),
                                "hits": pipeline.exceptionHits.withLock { $0[e.id] ?? 0 }]
        if let c = e.client { o["client"] = c }
        if let p = e.profile { o["profile"] = p }
        if let t = e.types { o["types"] = t.joined(separator: ",") }
        return o
    }

    func statsObject(includeEntries: Bool, now: Double) -> [String: Any] {
        telemetry.drain()   // count what is still queued: a reader sees every query answered so far
        let snap = pipeline.snapshot
        let counts = pipeline.counters.snapshot
        let cache = pipeline.cache.counters
        let uptime = Int(now - startedAtEpoch)
        var obj: [String: Any] = [
            "ok": true,
            "uptime_seconds": uptime,
            "mode": snap.policy.mode.rawValue,
            "policy_generation": snap.generation,
            "entries": snap.policy.allowList.count,
            // The default policy's, as the metric; with profiles, `validate` and `reload` count them all (QA pass 11, F5).
            "entries_all_profiles": snap.policies.entriesInAllPolicies,
            "profiles": snap.policies.profiles.map(\.name),
            "queries": Dictionary(uniqueKeysWithValues: counts.map { ($0.key.rawValue, $0.value) }),
            "cache": ["entries": cache.entries, "bytes": cache.bytes, "hits": cache.hits, "misses": cache.misses,
                      "stale_served": cache.staleServed, "evictions": cache.evictions],
            "upstreams": upstream.health.map { h in
                ["address": h.address, "answered": h.answered.value, "timeouts": h.timeouts.value, "rejected": h.rejected.value,
                 "failures": h.failures.value, "last_rtt_us": h.lastRTTMicros.value] as [String: Any]
            },
            "coalesced": upstream.coalesced.value,
            "unwanted_replies": upstream.unwanted.count.value,
            "tcp_connections": tcpLimit.openCount,
            "connections_refused": Dictionary(uniqueKeysWithValues: connectionLimits.map { ($0.listener, $0.refused.value) }),
            "udp_coalesced_waits": udpCoalescedWaits.value,
            "query_log": ["written": queryLog.written.value, "dropped": queryLog.droppedLines.value, "failed": queryLog.failedLines.value],
            "exceptions": liveExceptions(now: now),
            "quarantines": pipeline.quarantines.all.count,
            "alerts": telemetry.detector?.totals ?? [:],
        ]
        if let d = dnstap {
            obj["dnstap"] = ["destination": d.destination.description, "connected": d.connected, "sent": d.sent.value, "dropped": d.dropped] as [String: Any]
        }
        for (k, v) in telemetry.statsObject(now: now) { obj[k] = v }
        if includeEntries {
            // Unused for `entry_unused_after` seconds (or never used in as long since it was loaded):
            // removal candidates. Reloads keep an entry's counters and load time (`PolicySnapshot`).
            let cutoff = Int(now) - config.entryUnusedAfter
            var rows: [[String: Any]] = []
            let sets = [(PolicySet.defaultProfileName, snap.policies.base)] + snap.policies.profiles.map { ($0.name, $0.policy) }
            let (hits, lastUse, loadedAt) = (snap.entryHits, snap.entryLastUse, snap.entryLoadedAt)
            for (row, (profile, policy)) in sets.enumerated() {
                for (i, e) in policy.allowList.entries.enumerated() {
                    let last = lastUse[row][i]
                    let loaded = loadedAt[row][i]
                    let unused = last == 0 ? (loaded == 0 ? uptime : Int(now) - loaded) >= config.entryUnusedAfter : last < cutoff
                    rows.append(["profile": profile, "pattern": e.pattern, "source": e.source.description, "reason": e.reason ?? "",
                                 "hits": hits[row][i], "last_use": last, "unused": unused])
                }
            }
            obj["entry_hits"] = rows
        }
        return obj
    }

    /// A request's `since`: epoch seconds RFC 3339 can write. A NaN compares as neither before nor
    /// after any event (an empty period: "clean"), and a time past year 9999 trapped when printed.
    private static func epochSeconds(_ text: String) -> Double? {
        guard let s = Double(text), ISO8601.range.contains(s) else { return nil }
        return s
    }
    private static func badSince(_ text: String) -> [String: Any] {
        ["ok": false, "error": "since must be epoch seconds in the years 0001–9999, not '\(text)'"]
    }
}

/// Texts the control commands and the CLI that checks before asking share.
public enum ControlCommandsText {
    /// An exception is scoped to a client prefix or to a profile, not both: a prefix outside the
    /// profile's clients made one that never applied (QA pass 11, F8).
    public static let clientOrProfile = "give --client or --profile, not both: an exception is for clients in a prefix or for a profile's clients"
}
