import DNSGateCore
import Foundation
import Logging
import Synchronization

/// Runs the tunneling detector for the telemetry hub (one thread at a time) and keeps what operators read: recent alerts
/// (bounded), and per-(client, registered domain) quarantines when configured.
///
/// Alerts go to the log (one JSON line each), to the control API (`dnsgate alerts`), and to
/// `dnsgate_detector_alerts_total{kind}`.
final class DetectorRunner: @unchecked Sendable {
    private let detector: TunnelDetector          // only touched under the hub's processing lock
    private let logger: Logger
    private let book = Mutex(AlertBook())
    private let quarantine: QuarantineControl?
    let quarantineSeconds: Double
    private let counters: [DetectorAlert.Kind: AtomicCounter]

    struct AlertBook {
        var recent: [StoredAlert] = []
        var nextID = 1
        static let capacity = 1000
    }
    struct StoredAlert { let id: Int; let alert: DetectorAlert; let raisedAt: Double }

    init(config: DetectorConfig, suffixes: PublicSuffixList, logger: Logger, quarantine: QuarantineControl?, quarantineSeconds: Double) {
        detector = TunnelDetector(config: config, suffixes: suffixes)
        self.logger = logger
        self.quarantine = quarantine
        self.quarantineSeconds = quarantineSeconds
        counters = Dictionary(uniqueKeysWithValues: DetectorAlert.Kind.allCases.map { ($0, AtomicCounter()) })
    }

    /// - Parameters:
    ///   - domain: `e`'s registered domain when `domainIsRegistered`; otherwise the detector finds it
    ///     with its own Public Suffix List. Not an optional: wrapping the hub's domain in one was a copy,
    ///     a retain and a release per query.
    func observe(_ e: QueryEvent, record: QueryRecord, domain: HashedName, domainIsRegistered: Bool, nameHash: UInt64) {
        // A query the quarantine sinkholed carried nothing out; and passed on, it would look like one
        // answered after the quarantine ended (`TunnelDetector.quarantineStarted`).
        if record.action == .quarantined { return }
        // Budget per allowed wildcard entry: names smuggled under `*.cdn.example` count against it.
        let budgetKey = record.rule.flatMap { _ in record.entryIndex.map { budgetKeyText(profile: record.profile, entry: $0) } }
        let alerts = domainIsRegistered ? detector.observe(e, budgetKey: budgetKey, domain: domain, nameHash: nameHash)
                                        : detector.observe(e, budgetKey: budgetKey, registeredDomain: nil, nameHash: nameHash)
        for alert in alerts { raise(alert, at: e.time) }
    }

    func tick(now: Double) { detector.expire(now: now) }

    /// The wall clock stepped by `seconds` (`TunnelDetector.clockStepped`).
    func clockStepped(by seconds: Double) { detector.clockStepped(by: seconds) }

    /// `profile#entry`, made once per entry rather than formatted per query; reset if a reload
    /// churns through more entries than any list has. The last one is kept apart: consecutive
    /// queries mostly hit one entry, and comparing is cheaper than two dictionary lookups.
    private var budgetKeys: [Int: [String: String]] = [:]
    private var lastBudgetKey: (entry: Int, profile: String, text: String)?
    private func budgetKeyText(profile: String, entry: Int) -> String {
        if let m = lastBudgetKey, m.entry == entry, m.profile == profile { return m.text }
        let k = budgetKeyLookup(profile: profile, entry: entry)
        lastBudgetKey = (entry, profile, k)
        return k
    }
    private func budgetKeyLookup(profile: String, entry: Int) -> String {
        if let k = budgetKeys[entry]?[profile] { return k }
        if budgetKeys.count > 200_000 { budgetKeys.removeAll() }
        let k = "\(profile)#\(entry)"
        budgetKeys[entry, default: [:]][profile] = k
        return k
    }

    private func raise(_ alert: DetectorAlert, at time: Double) {
        counters[alert.kind]?.add(1)
        let id = book.withLock { b -> Int in
            let id = b.nextID; b.nextID += 1
            b.recent.append(StoredAlert(id: id, alert: alert, raisedAt: time))
            if b.recent.count > AlertBook.capacity { b.recent.removeFirst(b.recent.count - AlertBook.capacity) }
            return id
        }
        var meta: Logger.Metadata = ["concern": "detector", "alert_id": "\(id)", "client": "\(alert.client)",
                                     "registered_domain": "\(alert.registeredDomain)", "kind": "\(alert.kind.rawValue)",
                                     "samples": "\(alert.sampleNames.joined(separator: " "))"]
        for f in alert.features { meta["feature_\(f.name)"] = "\(f.value) (threshold \(f.threshold))" }
        logger.warning("tunneling or exfiltration suspected", metadata: meta)
        // Neither a resolver's name nor a spread over many domains names a domain to sinkhole.
        if let q = quarantine, alert.kind != .bypass, alert.kind != .domainSpread, let domain = try? DNSName(alert.registeredDomain) {
            q.quarantine(client: alert.client, domain: domain, seconds: quarantineSeconds, reason: "alert \(id) \(alert.kind.rawValue)", now: time)
            // Read after the quarantine is in place: a query answered from then on and not sinkholed
            // was answered after a lift or the expiry, and the pair's next crossing alerts again.
            detector.quarantineStarted(client: alert.client, registeredDomain: domain, at: WallClock.now())
        }
    }

    /// Alerts raised after `afterID`, oldest first, for `dnsgate alerts [--follow]`.
    func alerts(afterID: Int, client: String?) -> [[String: Any]] {
        book.withLock { b in
            b.recent.filter { $0.id > afterID && (client == nil || IPAddressText.same(recorded: $0.alert.client, canonical: client!)) }.map { s in
                var o = (try? JSONSerialization.jsonObject(with: JSONEncoder().encode(s.alert))) as? [String: Any] ?? [:]
                o["id"] = s.id; o["raised_at"] = s.raisedAt
                return o
            }
        }
    }

    /// The ID of the last alert raised, 0 before the first; a verdict's mark keeps it.
    var lastAlertID: Int { book.withLock { $0.nextID - 1 } }

    var totals: [String: Int] { Dictionary(uniqueKeysWithValues: counters.map { ($0.key.rawValue, $0.value.value) }) }
}

/// What the detector may do to the query path: sinkhole a registered domain for one client.
protocol QuarantineControl: Sendable {
    func quarantine(client: String, domain: DNSName, seconds: Double, reason: String, now: Double)
}
