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
        let type: RecordType?
        let denial: DenyReason
        let audited: Bool
        let profile: String
        /// In the ring a name of up to `inlineNameOctets` is not held: its bytes are copied into the
        /// ring's own storage (`nameLength` of them) and `events` makes the name again. Holding the
        /// `DNSName` kept every denied name of the last 50,000 alive, and each overwrite then freed one
        /// that had long gone cold: on a flood of denied names that release was most of this log's cost.
        fileprivate var heldName: DNSName?
        fileprivate var nameLength: UInt8 = 0

        /// The queried name (every event `events` returns has it).
        var name: DNSName { heldName ?? .root }
    }
    /// Name octets kept in the ring per event; longer names (tunnels' among them) are kept by reference.
    static let inlineNameOctets = 64

    private struct State {
        var ring: [Event?]
        var names: [UInt8]
        var next = 0
        var total = 0
        var marks: [String: Mark] = [:]
        var marksSet = 0
    }
    /// A point in a job, by position as well as time: the wall clock may step back (NTP, a VM resync)
    /// between the mark and a denied query, and a comparison of times would leave that query out.
    struct Mark: Sendable {
        let time: Double
        /// Events recorded before the mark; the job's are those after.
        let eventsBefore: Int
        /// The last alert raised before the mark (alert IDs only grow).
        let lastAlertID: Int
        /// Marks set before this one, to find the oldest.
        fileprivate var order = 0
    }
    private let state: Mutex<State>
    let capacity: Int
    /// Marks kept: past it, setting a new one forgets the oldest, whose verdict then says "unknown
    /// mark". A server that marks every job of a busy runner would otherwise grow for ever.
    let markCapacity: Int
    /// In UTF-8 bytes; a job ID or a pipeline URL fits.
    static let maxMarkName = 200

    init(capacity: Int = 50_000, markCapacity: Int = 10_000) {
        self.capacity = capacity
        self.markCapacity = markCapacity
        // The name bytes are left unwritten: a slot is read only after an event wrote it, and pages not
        // yet written take no memory.
        let octets = capacity * Self.inlineNameOctets
        state = Mutex(State(ring: Array(repeating: nil, count: capacity),
                            names: [UInt8](unsafeUninitializedCapacity: octets) { _, n in n = octets }))
    }

    /// Keeps the denied queries of a batch of records, under one lock. The telemetry hub calls this
    /// after the replies are out: a lock per denied query on the reply path was a cost the sinkhole
    /// flood paid for every query.
    func observe(_ records: [QueryRecord]) {
        // Each field is read in place through the buffer: `for r in records` copied every whole
        // record, retaining and releasing all of its references, allowed names' included.
        state.withLock { s in
            records.withUnsafeBufferPointer { records in
                for i in records.indices {
                    guard let d = records[i].denial, let n = records[i].name else { continue }
                    let fits = n.wire.count <= Self.inlineNameOctets
                    if fits {
                        let at = s.next * Self.inlineNameOctets
                        s.names.withUnsafeMutableBytes { out in
                            n.wire.withUnsafeBytes { out.baseAddress!.advanced(by: at).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
                        }
                    }
                    s.ring[s.next] = Event(time: records[i].time, client: records[i].client, type: records[i].type, denial: d,
                                           audited: records[i].audited, profile: records[i].profile,
                                           heldName: fits ? nil : n, nameLength: fits ? UInt8(n.wire.count) : 0)
                    s.next = (s.next + 1) % capacity
                    s.total += 1
                }
            }
        }
    }

    /// Marks the current position; the caller drains the telemetry hub first, so every query answered
    /// before the mark is recorded before it.
    func mark(_ name: String, at t: Double, lastAlertID: Int) {
        state.withLock { s in
            // A scan for the oldest: marks are set once a job, and 10,000 of them take microseconds.
            if s.marks[name] == nil && s.marks.count >= markCapacity, let oldest = s.marks.min(by: { $0.value.order < $1.value.order }) {
                s.marks[oldest.key] = nil
            }
            s.marks[name] = Mark(time: t, eventsBefore: s.total, lastAlertID: lastAlertID, order: s.marksSet)
            s.marksSet += 1
        }
    }
    func mark(_ name: String) -> Mark? { state.withLock { $0.marks[name] } }

    /// Where a verdict's period begins: at a wall-clock time (`--since`), or at a position (a mark, or
    /// the server's start), which no clock step moves.
    enum PeriodStart { case time(Double), position(Int) }

    /// Events for `client` (canonical address text, see `IPAddressText.canonical`) in the period,
    /// oldest first; `lostSome` once the ring has overwritten events the period includes (then
    /// `remembersFrom` is the time of the oldest one held).
    func events(client: String?, from start: PeriodStart) -> (events: [Event], lostSome: Bool, remembersFrom: Double?) {
        state.withLock { s in
            var out: [Event] = []
            var oldest: Double?
            // Slots from `next` on, in order, are the events oldest first; the first one held is event
            // number `total - capacity` once the ring has wrapped.
            var position = max(0, s.total - capacity)
            let firstHeld = position
            for k in 0..<capacity {
                let slot = (s.next + k) % capacity
                guard var e = s.ring[slot] else { continue }
                defer { position += 1 }
                if oldest == nil { oldest = e.time }
                let inPeriod: Bool
                switch start {
                case .time(let t): inPeriod = e.time >= t
                case .position(let p): inPeriod = position >= p
                }
                guard inPeriod, client == nil || IPAddressText.same(recorded: e.client, canonical: client!) else { continue }
                if e.heldName == nil {
                    let at = slot * Self.inlineNameOctets
                    e.heldName = DNSName(uncheckedWire: Array(s.names[at ..< at + Int(e.nameLength)]))
                }
                out.append(e)
            }
            let lostSome: Bool
            switch start {
            case .time(let t): lostSome = s.total > capacity && (oldest ?? 0) > t
            case .position(let p): lostSome = p < firstHeld
            }
            return (out, lostSome, s.total > capacity ? oldest : nil)
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
        guard r.audited else { return }     // first: every query passes here
        learn(r)
    }

    @inline(never)
    private func learn(_ r: QueryRecord) {
        guard var name = r.name, let type = r.type else { return }
        // A chain that led outside the allow-list: the target is the name to learn.
        if case .cnameTarget(let target) = r.denial { name = target }
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
