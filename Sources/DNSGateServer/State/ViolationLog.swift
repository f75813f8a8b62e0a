import DNSGateCore
import Foundation
import Synchronization

/// What a client did wrong, kept for job verdicts: denied queries (and, in audit mode, queries enforce
/// mode would have denied), in a bounded ring so a flood cannot grow memory; plus named marks.
/// Fed by the telemetry hub with the records it processes: readers drain the hub first.
///
/// `@unchecked Sendable`: `ring` is touched only under `state`'s lock.
final class ViolationLog: @unchecked Sendable {
    /// Values, not text: this is kept for every denied query, so formatting waits for a reader.
    struct Event: Sendable {
        let time: Double
        let client: String
        let type: RecordType?
        let denial: DenyReason
        let audited: Bool
        let profile: String
        let name: DNSName
    }
    /// Name octets kept in a ring slot; longer names (tunnels' among them) are kept by reference.
    static let inlineNameOctets = 64

    /// One event in the ring, as plain values followed by up to `inlineNameOctets` of its name: nothing
    /// in a slot is reference-counted, so recording an event over the oldest one neither reads nor
    /// releases it. With the strings and the name held in the slot, each overwrite first loaded the
    /// old event, a slot last touched 50,000 denied queries ago and long out of the caches: on a
    /// flood of denied names that was 1.5 of the 4.8 last-level cache misses a query.
    private struct Slot {
        var time: Double
        /// Index in `State.clients` and `State.profiles`.
        var client: UInt32
        var profile: UInt32
        var type: UInt16
        var hasType: Bool
        var audited: Bool
        /// Octets of the name stored after the slot; 0: the name is in `State.extras`.
        var nameLength: UInt8
        /// Whether the denial is `.notListed` (nearly all are); otherwise it is in `State.extras`.
        var notListed: Bool
    }
    private static let nameOffset = (MemoryLayout<Slot>.size + 7) & ~7
    private static let slotBytes = nameOffset + inlineNameOctets

    /// What a slot cannot hold: a denial with details, a name longer than `inlineNameOctets`.
    private struct Extra {
        var denial: DenyReason?
        var name: DNSName?
    }

    private struct State {
        var next = 0
        var total = 0
        var clients = StringTable()
        var profiles = StringTable()
        /// Strings either table may hold before the ones no held event uses are dropped.
        var tableRoom: Int
        /// By slot, for the few events a slot cannot hold on its own.
        var extras: [Int: Extra] = [:]
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
    /// `capacity` slots of `slotBytes`. Left unwritten: a slot is read only after an event wrote it,
    /// and pages not yet written take no memory.
    private let ring: UnsafeMutableRawPointer
    let capacity: Int
    /// Marks kept: past it, setting a new one forgets the oldest, whose verdict then says "unknown
    /// mark". A server that marks every job of a busy runner would otherwise grow for ever.
    let markCapacity: Int
    /// In UTF-8 bytes; a job ID or a pipeline URL fits.
    static let maxMarkName = 200

    /// - Parameter tableRoom: distinct clients (and profiles) remembered before those that only
    ///   overwritten events named are forgotten (tests lower it).
    init(capacity: Int = 50_000, markCapacity: Int = 10_000, tableRoom: Int = 4096) {
        precondition(capacity > 0 && tableRoom > 0, "a violation log holds at least one event")
        self.capacity = capacity
        self.markCapacity = markCapacity
        ring = .allocate(byteCount: capacity * Self.slotBytes, alignment: 64)
        state = Mutex(State(tableRoom: tableRoom))
    }

    deinit { ring.deallocate() }

    /// Keeps the denied queries of a batch of records, under one lock. The telemetry hub calls this
    /// after the replies are out: a lock per denied query on the reply path was a cost the sinkhole
    /// flood paid for every query.
    func observe(_ records: [QueryRecord]) {
        // Each field is read in place through the buffer: `for r in records` copied every whole
        // record, retaining and releasing all of its references, allowed names' included.
        state.withLock { s in
            records.withUnsafeBufferPointer { records in
                for i in records.indices where records[i].isDenied && records[i].name != nil { record(records, i, into: &s) }
            }
        }
    }

    /// Records `records[i]`, read in place: passed as a value, the whole record was copied.
    @inline(__always)
    private func record(_ records: UnsafeBufferPointer<QueryRecord>, _ i: Int, into s: inout State) {
        let slot = s.next
        let at = ring + slot * Self.slotBytes
        let length = records[i].name!.wire.count
        let fits = length <= Self.inlineNameOctets
        if fits { records[i].name!.wire.withUnsafeBytes { (at + Self.nameOffset).copyMemory(from: $0.baseAddress!, byteCount: length) } }
        let notListed = records[i].denial!.isNotListed
        at.storeBytes(of: Slot(time: records[i].time, client: s.clients.index(records[i].client), profile: s.profiles.index(records[i].profile),
                               type: records[i].type?.rawValue ?? 0, hasType: records[i].type != nil, audited: records[i].audited,
                               nameLength: fits ? UInt8(length) : 0, notListed: notListed), as: Slot.self)
        if !fits || !notListed {
            s.extras[slot] = Extra(denial: notListed ? nil : records[i].denial, name: fits ? nil : records[i].name)
        } else if !s.extras.isEmpty {
            s.extras[slot] = nil   // what the overwritten event could not hold
        }
        s.next = (slot + 1) % capacity
        s.total += 1
        if s.clients.count > s.tableRoom || s.profiles.count > s.tableRoom { forgetUnusedStrings(&s) }
    }

    /// Held events with a part their slot cannot hold; no more than the ring holds (tests read it).
    var extrasHeld: Int { state.withLock { $0.extras.count } }

    private func slot(_ i: Int) -> Slot { (ring + i * Self.slotBytes).load(as: Slot.self) }

    /// Drops the clients and profiles no held event names, and numbers the rest afresh. At most
    /// `capacity` are in use, and the room doubles past twice those, so this runs rarely: a flood
    /// from ever new addresses pays for it once every `tableRoom` of them.
    private func forgetUnusedStrings(_ s: inout State) {
        let held = min(s.total, capacity)
        var clientsUsed = [Bool](repeating: false, count: s.clients.count)
        var profilesUsed = [Bool](repeating: false, count: s.profiles.count)
        for i in 0..<held {
            let e = slot(i)
            clientsUsed[Int(e.client)] = true
            profilesUsed[Int(e.profile)] = true
        }
        let clientIndex = s.clients.keep(clientsUsed), profileIndex = s.profiles.keep(profilesUsed)
        for i in 0..<held {
            var e = slot(i)
            e.client = clientIndex[Int(e.client)]
            e.profile = profileIndex[Int(e.profile)]
            (ring + i * Self.slotBytes).storeBytes(of: e, as: Slot.self)
        }
        s.tableRoom = max(s.tableRoom, 2 * max(s.clients.count, s.profiles.count))
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
            // Each remembered client is compared once, not once per event.
            let wanted = client.map { c in s.clients.values.map { IPAddressText.same(recorded: $0, canonical: c) } }
            var out: [Event] = []
            let held = min(s.total, capacity)
            // The first held event is number `total - held`, in the slot `held` before `next`.
            let firstHeld = s.total - held
            let oldest: Double? = held > 0 ? slot((s.next - held + capacity) % capacity).time : nil
            for k in 0..<held {
                let i = (s.next - held + k + capacity) % capacity
                let e = slot(i)
                let inPeriod: Bool
                switch start {
                case .time(let t): inPeriod = e.time >= t
                case .position(let p): inPeriod = firstHeld + k >= p
                }
                guard inPeriod, wanted?[Int(e.client)] ?? true else { continue }
                let extra = s.extras[i]
                let name = e.nameLength > 0
                    ? DNSName(uncheckedWire: Array(UnsafeRawBufferPointer(start: ring + i * Self.slotBytes + Self.nameOffset, count: Int(e.nameLength))))
                    : extra?.name ?? .root
                out.append(Event(time: e.time, client: s.clients.values[Int(e.client)], type: e.hasType ? RecordType(e.type) : nil,
                                 denial: e.notListed ? .notListed : extra?.denial ?? .notListed, audited: e.audited,
                                 profile: s.profiles.values[Int(e.profile)], name: name))
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

/// Strings by a small index, so a ring slot can name a client or a profile with an integer.
private struct StringTable {
    private(set) var values: [String] = []
    private var indexOf: [String: UInt32] = [:]
    /// The last string asked for: a runner's denied queries mostly come from one client in a row,
    /// and comparing a string with itself is cheaper than hashing it.
    private var lastValue = ""
    private var lastIndex = UInt32.max

    var count: Int { values.count }

    @inline(__always)
    mutating func index(_ v: String) -> UInt32 {
        if lastIndex != .max && lastValue == v { return lastIndex }
        let i: UInt32
        if let known = indexOf[v] { i = known } else {
            i = UInt32(values.count)
            values.append(v)
            indexOf[v] = i
        }
        lastValue = v; lastIndex = i
        return i
    }

    /// Keeps the strings `used` marks, in order; returns each old index's new one (unused ones map to 0).
    mutating func keep(_ used: [Bool]) -> [UInt32] {
        var renumbered = [UInt32](repeating: 0, count: values.count)
        var kept: [String] = []
        for (i, v) in values.enumerated() where used[i] {
            renumbered[i] = UInt32(kept.count)
            kept.append(v)
        }
        values = kept
        indexOf = Dictionary(uniqueKeysWithValues: kept.enumerated().map { ($1, UInt32($0)) })
        lastIndex = .max
        return renumbered
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
