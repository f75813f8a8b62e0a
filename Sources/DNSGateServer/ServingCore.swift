import DNSGateCore
import Foundation
import Logging
import NIOCore

/// What both listeners share: the pipeline, the upstream client and what observes query records.
///
/// One instance serves every event loop; everything in it is thread-safe.
final class ServingCore: Sendable {
    let pipeline: QueryPipeline
    let upstream: UpstreamClient
    let queryLog: QueryLogger
    let logger: Logger
    let audit: AuditRecorder
    let telemetry: TelemetryHub?
    /// Forward the client's spelling instead of the lower-cased name (config `upstream.preserve_case`).
    let preserveCase: Bool
    /// Gets every query as received and every reply as sent (`log.dnstap`); nil: off.
    let dnstap: DnstapWriter?

    init(pipeline: QueryPipeline, upstream: UpstreamClient, queryLog: QueryLogger, logger: Logger, audit: AuditRecorder,
         telemetry: TelemetryHub? = nil, preserveCase: Bool = false, dnstap: DnstapWriter? = nil) {
        self.preserveCase = preserveCase; self.dnstap = dnstap
        self.pipeline = pipeline; self.upstream = upstream; self.queryLog = queryLog; self.logger = logger
        self.audit = audit; self.telemetry = telemetry
    }

    /// What became of one query.
    enum Handled {
        /// The reply is ready now (sinkhole, local data, cache hit, error): the caller batches its writes.
        case reply([UInt8])
        /// Nothing to send, ever (dropped).
        case nothing
        /// A cache miss: the caller passes it to `forward` on an event loop, which answers later.
        case forward(ForwardJob)
    }

    /// Runs one query through the pipeline, on any thread. Returns a value rather than taking a
    /// completion closure: a closure capturing the client address was a heap allocation on every
    /// query, though only cache misses need one.
    /// - Parameters:
    ///   - scratch: the calling thread's reusable buffers (see `QueryScratch`); a `.reply` shares its
    ///     storage until the caller drops it.
    ///   - now: when the query arrived; nil reads the clock. The UDP listener reads it once for each
    ///     batch it receives: the queries of one `recvmmsg` arrived together.
    ///   - batch: where the record goes for the telemetry, until `flush`; nil: to the telemetry now.
    func handle(_ bytes: [UInt8], client: ClientIdentity, overTCP: Bool, listener: String, scratch: QueryScratch? = nil,
                now: Double? = nil, batch: RecordBatch? = nil) -> Handled {
        switch pipeline.process(bytes, client: client.text, clientAddress: client.octets, listener: listener,
                                overTCP: overTCP, now: now ?? WallClock.now(), scratch: scratch) {
        case .reply(let out, let record):
            observe(record, into: batch)
            return .reply(out)
        case .drop(let record):
            observe(record, into: batch)
            return .nothing
        case .forward(let job):
            return .forward(job)
        }
    }

    /// Resolves a cache miss upstream; must be called on `loop`, where `reply` is then called with
    /// the answer (or the stale or SERVFAIL reply). A callback, not a future: each future stage was
    /// another allocation per miss.
    /// - Parameter overTCP: ask the upstreams over TCP at once (the UDP listener's answer was truncated).
    func forward(_ job: ForwardJob, overTCP: Bool = false, on loop: EventLoop, reply: @escaping ([UInt8]) -> Void) {
        // The UDP listener looked in the cache on its own thread; an identical question may have been
        // answered since. Asking upstream again would defeat coalescing.
        if let (bytes, record) = pipeline.cachedReply(job, now: WallClock.now()) {
            observe(record)
            reply(bytes)
            return
        }
        upstream.resolve(job.key, spelling: preserveCase ? job.query.spelledName : nil, overTCP: overTCP, on: loop).whenComplete { result in
            switch result {
            case .success(let answer): reply(self.finish(job, answer: answer))
            case .failure(let error): reply(self.finish(job, error: error))
            }
        }
    }

    /// A cache miss the server has no room for: dropped, and counted and logged as such.
    func shed(_ job: ForwardJob) {
        var record = job.record
        record.action = .dropped
        record.problem = "too many cache misses in flight"
        pipeline.counters.bump(.dropped)
        observe(record)
    }

    /// The reply to a cache miss the upstream answered: cached, counted and observed. `forward` calls
    /// it, and so does a UDP listener's `DirectUpstream`, for each client waiting on the answer. The
    /// answer is borrowed: wrapped in a `Result` for each client, it was copied (its arrays retained
    /// and released) on every miss. With `scratch` (a UDP listener's), the reply is its buffer, lent.
    func finish(_ job: ForwardJob, answer: borrowing UpstreamAnswer, scratch: QueryScratch? = nil) -> [UInt8] {
        let now = WallClock.now()
        let (out, record) = pipeline.complete(job, answer: answer, now: now, scratch: scratch)
        return finished(job, out, record, now: now)
    }

    /// The reply to a cache miss no upstream answered: stale or SERVFAIL, counted and observed.
    func finish(_ job: ForwardJob, error: Error) -> [UInt8] {
        let now = WallClock.now()
        let (out, record) = pipeline.upstreamFailed(job, now: now, detail: upstream.clientText(error))
        return finished(job, out, record, now: now)
    }

    private func finished(_ job: ForwardJob, _ out: consuming [UInt8], _ record: consuming QueryRecord, now: Double) -> [UInt8] {
        telemetry?.forwarded(latency: now - job.record.time)
        observe(record)
        return out
    }

    /// The client's address as octets (IPv4-mapped IPv6 as IPv4), for profile and exception prefixes.
    static func octets(_ a: SocketAddress) -> [UInt8]? {
        switch a {
        case .v4(let v4): return withUnsafeBytes(of: v4.address.sin_addr) { Array($0) }
        case .v6(let v6): return IPAddressText.unmappingIPv4(withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) })
        default: return nil
        }
    }

    /// Hands a record to everything that keeps one, on the event loop before the reply is flushed;
    /// each must return quickly. The telemetry hub queues it and processes it after the flush
    /// (counters, top-k tables, detector, violation log). The record is moved into that queue, not
    /// copied: each copy of a record retained and released six fields.
    private func observe(_ r: consuming QueryRecord, into batch: RecordBatch? = nil) {
        queryLog.record(r)
        audit.observe(r)
        telemetry?.observe(r, collectingIn: batch)
    }

    /// Hands the records `handle` put in `batch` to the telemetry, under one lock. A listener calls it
    /// after each receive batch, before the replies go out: a client that has its answer finds its
    /// query in the stats.
    func flush(_ batch: RecordBatch) {
        telemetry?.observe(batch: &batch.records)
    }
}

/// The query records of one receive batch on their way to the telemetry (`ServingCore.flush`): one
/// lock a batch where handing each over took one a query. One per listener thread.
final class RecordBatch {
    var records: [QueryRecord] = []
    /// Whether `handle` collects records here; otherwise it hands each over at once. Off for a few
    /// queries at a time (a quiet moment), where moving records through here cost more than the
    /// locks it saves.
    var collecting = false
    /// Receive batches from this size on are worth collecting.
    static let worthwhile = 16
    init(capacity: Int) { records.reserveCapacity(capacity) }
}

/// A client's address as text (logs, counters) and as octets (profile and exception prefixes).
struct ClientIdentity: Sendable {
    let text: String
    let octets: [UInt8]?

    init(_ a: SocketAddress) {
        text = a.ipAddress ?? "unknown"
        octets = ServingCore.octets(a)
    }

    init(text: String, octets: [UInt8]?) { self.text = text; self.octets = octets }
}

/// Remembers the identity of recent client addresses, so the text and octets are built once per
/// client rather than once per query. One per listener thread; bounded.
struct ClientIdentityMemo {
    private var byV4: [UInt32: ClientIdentity] = [:]
    private var byV6: [V6: ClientIdentity] = [:]
    static let capacity = 4096

    /// The identity `select` chose, read in place: an identity returned by value was retained and
    /// released (its octets) on every query.
    private(set) var current = ClientIdentity(text: "unknown", octets: nil)
    /// `current`'s IPv4 address, when it is one: a runner's queries mostly come from one address in
    /// a row, and comparing four octets is cheaper than hashing them into the table.
    private var currentV4: UInt32?

    private struct V6: Hashable { let high: UInt64, low: UInt64 }

    /// Makes `current` the identity of `source`.
    mutating func select(_ source: UnsafePointer<sockaddr_storage>) {
        switch Int32(source.pointee.ss_family) {
        case AF_INET:
            let v4 = UnsafeRawPointer(source).load(as: sockaddr_in.self)
            if currentV4 == v4.sin_addr.s_addr { return }
            current = Self.remember(v4.sin_addr.s_addr, in: &byV4) { SocketAddress(v4, host: "") }
            currentV4 = v4.sin_addr.s_addr
        case AF_INET6:
            let v6 = UnsafeRawPointer(source).load(as: sockaddr_in6.self)
            let key = withUnsafeBytes(of: v6.sin6_addr) { V6(high: $0.load(as: UInt64.self), low: $0.load(fromByteOffset: 8, as: UInt64.self)) }
            current = Self.remember(key, in: &byV6) { SocketAddress(v6, host: "") }
            currentV4 = nil
        default:
            current = ClientIdentity(text: "unknown", octets: nil)
            currentV4 = nil
        }
    }

    private static func remember<K: Hashable>(_ key: K, in table: inout [K: ClientIdentity], _ address: () -> SocketAddress) -> ClientIdentity {
        if let hit = table[key] { return hit }
        if table.count >= capacity { table.removeAll(keepingCapacity: true) }   // a flood of sources: start over
        let made = ClientIdentity(address())
        table[key] = made
        return made
    }
}

/// Seconds since the epoch; the only clock the server reads for query handling.
enum WallClock {
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
