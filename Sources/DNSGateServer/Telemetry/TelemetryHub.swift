import DNSGateCore
import Dispatch
import Foundation
import Logging
import Prometheus
import Synchronization

/// Counters, top-k tables and the tunneling detector, fed with query records after the replies left.
///
/// The query path only appends a record to a batch under a lock. Right after a listener has
/// flushed a batch of replies it processes everything pending (`catchUp`): registered domains (Public
/// Suffix List), top-k sketches, Prometheus counters, the detector. Doing that on the listener's own core,
/// between reads, costs no thread hop, and a listener that is saturated reads less often, so overload is
/// shed at the socket and every answered query is counted. (A separate thread on the same core was
/// preempted by every arriving packet, fell behind at 120k queries/s and had to drop records.) A
/// background thread wakes every 50 ms; it processes only when no listener has caught up for that long
/// (records of upstream exchanges that completed on an idle listener) and runs the detector's expiry.
/// Past 200,000 unprocessed records, further ones are counted as dropped instead of growing memory.
final class TelemetryHub: @unchecked Sendable {
    let registry = PrometheusCollectorRegistry()
    private let pending: BoundedBatch<QueryRecord>
    private let wake = DispatchSemaphore(value: 0)
    /// Whoever holds this processes records (the detector is single-threaded); the value is the buffer
    /// records are swapped into, reused so a catch-up allocates nothing.
    private let processing = Mutex(BoundedBatch<QueryRecord>.Taken())
    /// When the detector last expired idle state; touched under `processing` only.
    private var lastExpiry = 0.0
    /// Monotonic nanoseconds of the last catch-up by a listener.
    private let lastCatchUp = AtomicCounter()
    /// Drops already added to the Prometheus counter, so each scrape adds only the new ones.
    private let droppedReported = AtomicCounter()

    // Touched only under `processing`, or under `tables`.
    private let tables = Mutex(Tables())
    private let suffixes: PublicSuffixList?
    let detector: DetectorRunner?
    /// Gets every processed batch's denied queries.
    private let violations: ViolationLog?

    // Metrics with bounded label sets; per-client and per-domain detail stays in the top-k tables.
    // Counted per batch under `processing`, then added to Prometheus once per batch.
    private let actionCounters: CountersByCode      // by QueryRecord.Action.ordinal
    private let typeCounters: CountersByCode        // by type code; the rest count as "other"
    private let rcodeCounters: CountersByCode
    private let deniedCounters: CountersByCode      // by deniedCode(_:)
    private let forwardedLatency = LatencyHistogram(bounds: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5])
    private let droppedCounter: Counter
    static let countedTypes: [RecordType] = [.a, .aaaa, .cname, .https, .svcb, .txt, .null, .mx, .ns, .ptr, .srv, .soa, .any, .axfr, .ixfr, .caa]

    struct Tables {
        let clients = SpaceSaving<String>(capacity: 256)
        // Keyed by name, not text: hashing wire bytes is cheaper than formatting a String per query.
        let domains = SpaceSaving<HashedName>(capacity: 1024)
        let deniedNames = SpaceSaving<HashedName>(capacity: 1024)
        var perSecond = [Int](repeating: 0, count: 60)
        var currentSecond = 0
        /// Runs of one client, or one registered domain, are added to their table once with their
        /// length: a runner's queries mostly come from one address, often for one domain in a row,
        /// and comparing keys is cheaper than hashing them into the sketch.
        private var clientRun = Run<String>()
        private var domainRun = Run<HashedName>()

        mutating func count(client: String, domain: HashedName) {
            clientRun.count(client, into: clients)
            domainRun.count(domain, into: domains)
        }

        /// Adds the open runs; before the tables are read, and at the end of each batch.
        mutating func endRuns() {
            clientRun.end(into: clients)
            domainRun.end(into: domains)
        }
    }

    /// Consecutive adds of one key, counted until another key comes.
    ///
    /// The key is read in place (`key!` after a nil test), never bound to a local: `if let key`
    /// copied it, one more retain and release each time the run changed, which on a flood of names
    /// is every query.
    struct Run<Key: Hashable> {
        private var key: Key?
        private var length: UInt64 = 0

        mutating func count(_ k: Key, into table: SpaceSaving<Key>) {
            if key == k { length += 1; return }
            end(into: table)
            key = k; length = 1
        }

        mutating func end(into table: SpaceSaving<Key>) {
            if length > 0, key != nil { table.add(key!, weight: length) }
            key = nil; length = 0
        }
    }

    /// - Parameter pendingCapacity: unprocessed records kept before further ones are dropped (tests lower it).
    init(suffixes: PublicSuffixList?, detector: DetectorRunner?, violations: ViolationLog? = nil, pendingCapacity: Int = 200_000) {
        self.pending = BoundedBatch(capacity: pendingCapacity)
        self.suffixes = suffixes
        self.detector = detector
        self.violations = violations
        let registry = self.registry
        let actions = CountersByCode(size: QueryRecord.Action.allCases.count)
        for a in QueryRecord.Action.allCases {
            actions.set(a.ordinal, registry.makeCounter(descriptor: .init("dnsgate_queries_total", help: "Queries by what dnsgate did with them."), labels: [("action", a.rawValue)]))
        }
        let denied = CountersByCode(size: 4)
        for (code, tag) in ["not_listed", "type_not_allowed", "rpz", "cname_target"].enumerated() {
            denied.set(code, registry.makeCounter(descriptor: .init("dnsgate_policy_denied_total", help: "Queries denied (or, in audit mode, that would have been) by reason."), labels: [("reason", tag)]))
        }
        let types = CountersByCode(size: 258, other: registry.makeCounter(descriptor: .init("dnsgate_query_types_total", help: "Queries by type."), labels: [("qtype", "other")]))
        for t in Self.countedTypes {
            types.set(Int(t.rawValue), registry.makeCounter(descriptor: .init("dnsgate_query_types_total", help: "Queries by type."), labels: [("qtype", t.mnemonic)]))
        }
        let rcodes = CountersByCode(size: 24)
        for rc in [ResponseCode.noError, .formErr, .servFail, .nxDomain, .notImp, .refused, .badVers] {
            rcodes.set(Int(rc.rawValue), registry.makeCounter(descriptor: .init("dnsgate_responses_total", help: "Replies by rcode."), labels: [("rcode", rc.mnemonic)]))
        }
        (actionCounters, typeCounters, rcodeCounters, deniedCounters) = (actions, types, rcodes, denied)
        droppedCounter = registry.makeCounter(descriptor: .init("dnsgate_telemetry_dropped_total", help: "Records the telemetry thread could not keep up with."))
        let t = Thread { [self] in self.consumerLoop() }
        t.name = "dnsgate-telemetry"
        t.start()
    }

    /// Hot path: one lock, one append; or into `batch`, while it is collecting, for `observe(batch:)`.
    func observe(_ r: consuming QueryRecord, collectingIn batch: RecordBatch? = nil) {
        if batch != nil && batch!.collecting { batch!.records.append(r); return }
        let time = r.time
        if !pending.push(r).accepted { noteDrop(at: time) }
    }

    /// `observe` for each record of `batch`, in order, under one lock; empties `batch`.
    func observe(batch: inout [QueryRecord]) {
        guard !batch.isEmpty else { return }
        let newest = batch[batch.endIndex - 1].time   // read in place: `batch.last` copied the record
        if pending.push(moving: &batch) > 0 { noteDrop(at: newest) }
    }

    private func noteDrop(at time: Double) {
        // Only raised. Two listeners dropping at once may race, but then both are in the same overload.
        let second = Int(time.rounded(.up))
        if second > lastDrop.value { lastDrop.store(second) }
    }

    /// Epoch second (rounded up) of the newest record dropped unprocessed; 0 when none was.
    private let lastDrop = AtomicCounter()

    /// Whether records from `since` on may be missing from the tables, the detector and the violation log.
    func droppedRecords(since: Double) -> Bool { lastDrop.value >= Int(since.rounded(.down)) && lastDrop.value > 0 }

    /// Records a listener lets pile up before it processes them. One at a time, each record found the
    /// detector's tables cold (the network stack ran in between): at 50,000 queries/s a denied name
    /// cost 9.9 µs against 6.6 µs at full load, where batches are this size anyway.
    static let catchUpBatch = 64
    /// Records a listener lets pile up while queries still wait in its socket. Processing is put off
    /// until the backlog is answered: a burst (the client catching up after a stall of its own) was
    /// answered 0.1–0.2 ms later for every 64 records processed in the middle of it, and those waits
    /// were the tail of the latency at 50,000 queries/s.
    static let backlogCatchUpBatch = 1024

    /// Called by a listener after it sent replies; processes the pending records once there are at
    /// least `catchUpBatch` of them (`backlogCatchUpBatch` while `backlog` says more queries wait).
    /// Never waits: when another listener or the background thread is processing, it returns at once
    /// and the records wait for the next call. Fewer records wait for the background thread (50 ms)
    /// or a reader (`drain`).
    func catchUp(backlog: Bool = false) {
        guard pending.approximateCount.value >= (backlog ? Self.backlogCatchUpBatch : Self.catchUpBatch) else { return }
        _ = processing.withLockIfAvailable { buffer in
            lastCatchUp.store(Int(truncatingIfNeeded: MonotonicClock.nanoseconds()))
            processPending(&buffer)
        }
    }

    /// Takes the pending records and processes them, oldest first; under `processing`.
    private func processPending(_ taken: inout BoundedBatch<QueryRecord>.Taken) {
        pending.take(into: &taken)
        guard !taken.isEmpty else { return }
        tables.withLock { t in
            // In place: `for r in buffer` copied each record, retaining and releasing six fields. Written
            // out, not through `forEachPart`: the closure cost 30 instructions a query.
            for i in taken.items.indices { process(&taken.items[i], &t) }
            for c in taken.chunks.indices {
                for i in taken.chunks[c].indices { process(&taken.chunks[c][i], &t) }
            }
            t.endRuns()
        }
        if let violations { taken.forEachPart { violations.observe($0) } }
        actionCounters.flush(); typeCounters.flush(); rcodeCounters.flush(); deniedCounters.flush()
        pending.recycle(&taken)
    }

    func forwarded(latency: Double) { forwardedLatency.record(latency) }

    /// The histogram of one upstream's round trips (a bounded label set: the configured upstreams);
    /// asking twice gives the same one.
    func upstreamRTTHistogram(_ upstream: String) -> LatencyHistogram {
        rttHistograms.withLock { list in
            if let h = list.first(where: { $0.upstream == upstream }) { return h.histogram }
            let h = LatencyHistogram(bounds: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
                                     labels: "upstream=\"\(upstream)\"")   // an address and port: nothing to escape
            list.append((upstream, h))
            return h
        }
    }
    private let rttHistograms = Mutex<[(upstream: String, histogram: LatencyHistogram)]>([])

    /// Everything a scrape shows: the registry's families (in a stable order), then the latency
    /// histograms kept here.
    func exposition() -> [UInt8] {
        var out = ExpositionOrder.sorted(registry.emitToBuffer())
        out += LatencyHistogram.header(name: "dnsgate_forward_duration_seconds", help: "Time from query to reply for cache misses.")
        forwardedLatency.emit(name: "dnsgate_forward_duration_seconds", into: &out)
        let rtt = rttHistograms.withLock { $0 }
        if !rtt.isEmpty {
            out += LatencyHistogram.header(name: "dnsgate_upstream_rtt_seconds", help: "Round trip of answered upstream exchanges.")
            for (_, h) in rtt { h.emit(name: "dnsgate_upstream_rtt_seconds", into: &out) }
        }
        return out
    }

    /// Processes everything queued so far, before a reader looks (stats, alerts, verdicts, a scrape).
    func drain() { processing.withLock { processPending(&$0) } }

    /// The wall clock stepped by `seconds`: the records queued before the step are processed with
    /// the detector's quarantine marks as they were, then the marks move with the quarantines.
    func clockStepped(by seconds: Double) {
        processing.withLock { buffer in
            processPending(&buffer)
            detector?.clockStepped(by: seconds)
        }
    }

    private func consumerLoop() {
        BackgroundThread.lowerPriority()
        while true {
            _ = wake.wait(timeout: .now() + .milliseconds(50))
            let d = pending.dropped.value - droppedReported.value
            if d > 0 { droppedCounter.increment(by: Int64(d)); droppedReported.add(d) }
            let loopsIdle = Int(truncatingIfNeeded: MonotonicClock.nanoseconds()) - lastCatchUp.value > 50_000_000
            processing.withLock { buffer in
                if loopsIdle { processPending(&buffer) }
                // Expiry rebuilds the detector's tables: once a second is plenty for state kept a window long.
                let now = WallClock.now()
                if now - lastExpiry >= 1 { lastExpiry = now; detector?.tick(now: now) }
            }
        }
    }

    /// - Parameter r: inout only so the batch is read in place; it is not changed.
    private func process(_ r: inout QueryRecord, _ t: inout Tables) {
        actionCounters.count(r.action.ordinal)
        if let rc = r.rcode { rcodeCounters.count(Int(rc.rawValue)) }
        if let d = r.denial { deniedCounters.count(Self.deniedCode(d)) }
        // Names are read in place (`r.name!`), not bound to locals or merged with `??`: each binding
        // was a copy, a retain and a release per query.
        guard r.name != nil, let type = r.type else { return }
        typeCounters.count(Int(type.rawValue))
        // The query path's hash of the name when it left one; the tables below all key on it.
        let hashed = r.nameHash != 0 ? HashedName(r.name!, hash: r.nameHash) : HashedName(r.name!)
        if suffixes != nil {
            tally(&r, type, hashed, domain: domains.registeredDomain(of: hashed, in: suffixes!), domainIsRegistered: true, &t)
        } else {
            tally(&r, type, hashed, domain: hashed, domainIsRegistered: false, &t)
        }
    }

    /// `process` once the name's registered domain is known (`domain`; without a Public Suffix List,
    /// the name itself, which the detector is told is not one).
    @inline(__always)
    private func tally(_ r: inout QueryRecord, _ type: RecordType, _ hashed: HashedName, domain: HashedName, domainIsRegistered: Bool,
                       _ t: inout Tables) {
        t.count(client: r.client, domain: domain)
        if r.isDenied { t.deniedNames.add(hashed) }
        let sec = Int(r.time)
        if sec != t.currentSecond {
            // Clear the seconds skipped since the last record, then start this one.
            let gap = min(60, max(1, sec - t.currentSecond))
            for k in 1...gap { t.perSecond[(t.currentSecond + k) % 60] = 0 }
            t.currentSecond = sec
        }
        t.perSecond[sec % 60] += 1
        if let rc = r.rcode {
            detector?.observe(QueryEvent(time: r.time, client: r.client, name: hashed.name, type: type, rcode: rc), record: r,
                              domain: domain, domainIsRegistered: domainIsRegistered, nameHash: hashed.hash)
        }
    }

    /// Position of a denial reason's counter; quarantines have none (the detector counts them).
    private static func deniedCode(_ d: DenyReason) -> Int {
        switch d {
        case .notListed: return 0
        case .typeNotAllowed: return 1
        case .rpzAction: return 2
        case .cnameTarget: return 3
        case .quarantined: return -1
        }
    }

    /// Registered domains by parent name; touched under `processing` only.
    private var domains = RegisteredDomainMemo()

    /// Top-k tables and rates for `dnsgate stats`.
    func statsObject(now: Double) -> [String: Any] {
        tables.withLock { t in
            let sec = Int(now)
            func rate(_ window: Int) -> Double {
                guard sec - t.currentSecond < window else { return 0 }
                let n = (0..<window).reduce(0) { acc, k in
                    let s = sec - k
                    return s > t.currentSecond ? acc : acc + t.perSecond[((s % 60) + 60) % 60]
                }
                return Double(n) / Double(window)
            }
            func top<K>(_ s: SpaceSaving<K>) -> [[String: Any]] { s.top(10).map { ["key": "\($0.key)", "count": $0.count] } }
            return ["qps_10s": rate(10), "qps_60s": rate(60), "top_clients": top(t.clients), "top_registered_domains": top(t.domains),
                    "top_denied_names": top(t.deniedNames), "telemetry_dropped": pending.dropped.value]
        }
    }
}

/// Prometheus counters found by a small code (a record type, an rcode, an enum's position) with an
/// array index: the dictionaries they replaced hashed a key for every query. Counts are tallied in
/// plain integers and added to the shared counters by `flush`, one atomic add per code per batch
/// instead of one per query.
///
/// A class over fixed buffers: as a struct kept in a property of the hub, each count checked the
/// arrays' uniqueness and bounds and looked at an optional counter, about 40 instructions, four
/// times a query.
final class CountersByCode {
    private let size: Int
    /// By code: the position of its tally, `size` (the "other" tally) when it has no counter.
    private let tallyOf: UnsafeMutablePointer<Int32>
    /// Not yet flushed, by tally position; the last is for `other`.
    private let tallies: UnsafeMutablePointer<Int64>
    private var counters: [Counter?]
    /// Counted for codes without a counter of their own; nil: such codes are not counted.
    private let other: Counter?

    init(size: Int, other: Counter? = nil) {
        self.size = size; self.other = other
        tallyOf = .allocate(capacity: size)
        tallyOf.initialize(repeating: Int32(size), count: size)
        tallies = .allocate(capacity: size + 1)
        tallies.initialize(repeating: 0, count: size + 1)
        counters = Array(repeating: nil, count: size)
    }

    deinit {
        tallyOf.deallocate()
        tallies.deallocate()
    }

    /// Before any `count`: gives `code` a counter of its own.
    func set(_ code: Int, _ counter: Counter) {
        precondition(code >= 0 && code < size, "counter code out of range")
        counters[code] = counter
        tallyOf[code] = Int32(code)
    }

    @inline(__always) func count(_ code: Int) {
        let i = UInt(bitPattern: code) < UInt(size) ? Int(tallyOf[code]) : size
        tallies[i] &+= 1
    }

    func flush() {
        for i in 0..<size where tallies[i] != 0 { counters[i]?.increment(by: tallies[i]); tallies[i] = 0 }
        if tallies[size] != 0 { other?.increment(by: tallies[size]); tallies[size] = 0 }
    }
}
