import DNSGateCore
import Foundation
import Synchronization

/// What a client did wrong, kept for job verdicts: denied queries (and, in audit mode, queries enforce
/// mode would have denied), in a bounded ring so a flood cannot grow memory; plus named marks.
/// Fed by the telemetry hub with the records it processes: readers drain the hub first.
final class ViolationLog: Sendable {
    /// Values, not text: this is kept for every denied query, so formatting waits for a reader.
    struct Event: Sendable {
        let time: Double
        let client: String
        let name: DNSName
        let type: RecordType?
        let denial: DenyReason
        let audited: Bool
        let profile: String
    }
    private struct State {
        var ring: [Event?]
        var next = 0
        var total = 0
        var marks: [String: Double] = [:]
    }
    private let state: Mutex<State>
    let capacity: Int

    init(capacity: Int = 50_000) {
        self.capacity = capacity
        state = Mutex(State(ring: Array(repeating: nil, count: capacity)))
    }

    /// Keeps the denied queries of a batch of records, under one lock. The telemetry hub calls this
    /// after the replies are out: a lock per denied query on the reply path was a cost the sinkhole
    /// flood paid for every query.
    func observe(_ records: [QueryRecord]) {
        state.withLock { s in
            for r in records {
                guard let d = r.denial, let n = r.name else { continue }
                s.ring[s.next] = Event(time: r.time, client: r.client, name: n, type: r.type, denial: d, audited: r.audited, profile: r.profile)
                s.next = (s.next + 1) % capacity
                s.total += 1
            }
        }
    }

    func mark(_ name: String, at t: Double) { state.withLock { $0.marks[name] = t } }
    func markTime(_ name: String) -> Double? { state.withLock { $0.marks[name] } }

    /// Events for `client` at or after `since`, oldest first; `overflowed` when the ring may have lost some.
    func events(client: String?, since: Double) -> (events: [Event], overflowed: Bool) {
        state.withLock { s in
            let ordered = (0..<capacity).compactMap { s.ring[(s.next + $0) % capacity] }
            let out = ordered.filter { $0.time >= since && (client == nil || $0.client == client) }
            let oldest = ordered.first?.time ?? 0
            return (out, s.total > capacity && oldest > since)
        }
    }
}

/// Names audit mode forwarded that enforce mode would have denied, with counts, for `dnsgate suggest`.
/// Bounded: past `capacity` distinct names, new ones are counted as overflow, not stored.
final class AuditRecorder: Sendable {
    private let state = Mutex<([DNSName: SuggestionInput], overflow: Int)>(([:], 0))
    let capacity: Int
    init(capacity: Int = 100_000) { self.capacity = capacity }

    func observe(_ r: QueryRecord) {
        guard r.audited, let name = r.name, let type = r.type else { return }
        state.withLock { s in
            if s.0[name] == nil && s.0.count >= capacity { s.overflow += 1; return }
            s.0[name, default: SuggestionInput(name: name)].record(client: r.client, type: type, at: r.time)
        }
    }

    func seen(client: String?, since: Double) -> [SuggestionInput] {
        state.withLock { s in
            s.0.values.filter { $0.lastSeen >= since && (client == nil || $0.clients.contains(client!)) }
        }
    }
}
