import DNSGateCore
import Foundation
import Synchronization

/// What a client did wrong, kept for job verdicts: denied queries (and, in audit mode, queries enforce
/// mode would have denied), in a bounded ring so a flood cannot grow memory; plus named marks.
final class ViolationLog: Sendable {
    /// Values, not text: this runs on the event loop for every denied query, so formatting waits for a reader.
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

    func observe(_ r: QueryRecord) {
        guard let d = r.denial, let n = r.name else { return }
        let e = Event(time: r.time, client: r.client, name: n, type: r.type, denial: d, audited: r.audited, profile: r.profile)
        state.withLock { s in
            s.ring[s.next] = e
            s.next = (s.next + 1) % capacity
            s.total += 1
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
