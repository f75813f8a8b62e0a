import ArgumentParser
import DNSGateServer
import Foundation

extension DNSGateCommand {
    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the running server's counters.")

        @Flag(help: "Print the raw JSON object.") var json = false
        @Flag(help: "Include every allow entry with its hits and last use.") var entries = false
        @OptionGroup var control: ControlOptions

        func run() throws {
            let obj: [String: Any]
            do {
                obj = try ControlClient.send(ControlRequest(command: "stats", arguments: entries ? ["entries": "true"] : nil),
                                             socket: try control.socketPath())
            } catch { throw fail(error) }
            if json {
                let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .prettyPrinted])
                print(String(decoding: data, as: UTF8.self)); return
            }
            print(StatsFormatter.text(obj, now: Date().timeIntervalSince1970))
        }
    }
}

/// Human-readable rendering of the stats object.
enum StatsFormatter {
    static func text(_ o: [String: Any], now: Double) -> String {
        var lines: [String] = []
        // With profiles, say both counts: `validate` and `reload` report all of them (QA pass 11, F5).
        let all = o["entries_all_profiles"] as? Int, entries = o["entries"] as? Int
        let counted = all == nil || all == entries ? "\(o["entries"] ?? "?") entries" : "\(o["entries"] ?? "?") entries in the default policy, \(all!) with its profiles"
        lines.append("mode \(o["mode"] ?? "?"), policy generation \(o["policy_generation"] ?? "?"), \(counted), up \(o["uptime_seconds"] ?? 0) s")
        if let q = o["queries"] as? [String: Int] {
            let total = q.values.reduce(0, +)
            lines.append("queries: \(total) total")
            for k in q.keys.sorted() where q[k]! > 0 { lines.append("  \(k.padding(toLength: 10, withPad: " ", startingAt: 0)) \(q[k]!)") }
        }
        if let q10 = o["qps_10s"] as? Double, let q60 = o["qps_60s"] as? Double {
            lines.append(String(format: "rate: %.1f q/s (10 s), %.1f q/s (60 s)", q10, q60))
        }
        for (key, title) in [("top_clients", "top clients"), ("top_registered_domains", "top registered domains"), ("top_denied_names", "top denied names")] {
            guard let rows = o[key] as? [[String: Any]], !rows.isEmpty else { continue }
            lines.append("\(title):")
            for r in rows { lines.append("  \(r["count"] ?? 0)\t\(r["key"] ?? "")") }
        }
        if let a = o["alerts"] as? [String: Int] {
            let fired = a.filter { $0.value > 0 }.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
            lines.append("detector alerts: " + (fired.isEmpty ? "none" : fired.joined(separator: ", ")) + ", quarantines: \(o["quarantines"] ?? 0)")
        }
        if let c = o["cache"] as? [String: Int] {
            lines.append("cache: \(c["entries"] ?? 0) entries, \(c["hits"] ?? 0) hits, \(c["misses"] ?? 0) misses, \(c["stale_served"] ?? 0) stale, \(c["evictions"] ?? 0) evicted")
        }
        if let ups = o["upstreams"] as? [[String: Any]] {
            lines.append("upstreams: \(o["unwanted_replies"] ?? 0) unwanted replies (for no query in flight; possible spoofing)")
            for u in ups {
                lines.append("  \(u["address"] ?? "?"): \(u["answered"] ?? 0) answered, \(u["timeouts"] ?? 0) timeouts, \(u["failures"] ?? 0) failures, \(u["rejected"] ?? 0) rejected, last rtt \(u["last_rtt_us"] ?? 0) µs")
            }
        }
        if let d = o["dnstap"] as? [String: Any] {
            let state = d["connected"] as? Bool == true ? "connected" : "not connected"
            lines.append("dnstap: \(d["destination"] ?? "?") \(state), \(d["sent"] ?? 0) sent, \(d["dropped"] ?? 0) dropped")
        }
        if let xs = o["exceptions"] as? [[String: Any]], !xs.isEmpty {
            lines.append("exceptions:")
            for e in xs { lines.append("  " + DNSGateCommand.Allow.List.line(e)) }   // with the scope, as `allow list` (QA pass 11)
        }
        if let es = o["entry_hits"] as? [[String: Any]] {
            lines.append("entries (hits, last use, pattern, profile, where, reason; unused ones are marked):")
            for e in es {
                let unused = (e["unused"] as? Bool == true) ? "  [unused: candidate for removal]" : ""
                let used = ago(e["last_use"] as? Int ?? 0, now: now)
                lines.append("  \(e["hits"] ?? 0)\t\(used)\t\(e["pattern"] ?? "")\t\(e["profile"] ?? "")\t\(e["source"] ?? "")\t\(e["reason"] ?? "")\(unused)")
            }
        }
        return lines.joined(separator: "\n")
    }

    /// An entry's last use (epoch seconds, 0: never) as a reader scans for it: "never", "42s ago", "4m ago", "3d ago".
    static func ago(_ t: Int, now: Double) -> String {
        guard t > 0 else { return "never" }
        let s = max(0, Int(now) - t)
        for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] where s >= size { return "\(s / size)\(unit) ago" }
        return "\(s)s ago"
    }
}
