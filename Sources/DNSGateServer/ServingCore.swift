import DNSGateCore
import Foundation
import Logging
import NIOCore

/// What both listeners share: the pipeline, the upstream client and the query observers.
///
/// One instance serves every event loop; everything in it is thread-safe.
final class ServingCore: Sendable {
    let pipeline: QueryPipeline
    let upstream: UpstreamClient
    let queryLog: QueryLogger
    let logger: Logger
    let observers: QueryObservers
    let telemetry: TelemetryHub?
    /// Forward the client's spelling instead of the lower-cased name (config `upstream.preserve_case`).
    let preserveCase: Bool

    init(pipeline: QueryPipeline, upstream: UpstreamClient, queryLog: QueryLogger, logger: Logger, observers: QueryObservers,
         telemetry: TelemetryHub? = nil, preserveCase: Bool = false) {
        self.preserveCase = preserveCase
        self.pipeline = pipeline; self.upstream = upstream; self.queryLog = queryLog; self.logger = logger; self.observers = observers
        self.telemetry = telemetry
    }

    /// What became of one query.
    enum Handled {
        /// The reply is ready now (sinkhole, local data, cache hit, error): the caller batches its writes.
        case reply([UInt8])
        /// Nothing to send, ever (dropped).
        case nothing
        /// Forwarded: the reply comes when the upstream answers or fails, on the loop given to `handle`.
        case later(EventLoopFuture<[UInt8]>)
    }

    /// Runs one query through the pipeline. Returns a value rather than taking a completion closure:
    /// a closure capturing the channel and the client address was a heap allocation on every query,
    /// though only cache misses need one.
    func handle(_ bytes: [UInt8], client: ClientIdentity, overTCP: Bool, listener: String, on loop: EventLoop) -> Handled {
        switch pipeline.process(bytes, client: client.text, clientAddress: client.octets, listener: listener,
                                overTCP: overTCP, now: WallClock.now()) {
        case .reply(let out, let record):
            observe(record)
            return .reply(out)
        case .drop(let record):
            observe(record)
            return .nothing
        case .forward(let job):
            let done = loop.makePromise(of: [UInt8].self)
            upstream.resolve(job.key, spelling: preserveCase ? job.query.spelledName : nil, on: loop).whenComplete { result in
                let (out, record): ([UInt8], QueryRecord)
                let now = WallClock.now()
                switch result {
                case .success(let answer): (out, record) = self.pipeline.complete(job, answer: answer, now: now)
                case .failure(let error): (out, record) = self.pipeline.upstreamFailed(job, now: now, detail: "\(error)")
                }
                self.telemetry?.forwarded(latency: now - job.record.time)
                done.succeed(out)
                self.observe(record)
            }
            return .later(done.futureResult)
        }
    }

    /// The client's address as octets (IPv4-mapped IPv6 as IPv4), for profile and exception prefixes.
    static func octets(_ a: SocketAddress) -> [UInt8]? {
        switch a {
        case .v4(let v4): return withUnsafeBytes(of: v4.address.sin_addr) { Array($0) }
        case .v6(let v6): return IPAddressText.unmappingIPv4(withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) })
        default: return nil
        }
    }

    private func observe(_ r: QueryRecord) {
        queryLog.record(r)
        observers.observe(r)
    }
}

/// A client's address as text (logs, counters) and as octets (profile and exception prefixes).
struct ClientIdentity: Sendable {
    let text: String
    let octets: [UInt8]?

    init(_ a: SocketAddress) {
        text = a.ipAddress ?? "unknown"
        octets = ServingCore.octets(a)
    }
}

/// Remembers the identity of recent client addresses, so the text and octets are built once per
/// client rather than once per query. One per channel, used on its event loop only; bounded.
struct ClientIdentityMemo {
    private var byV4: [UInt32: ClientIdentity] = [:]
    static let capacity = 4096

    mutating func identity(_ a: SocketAddress) -> ClientIdentity {
        guard case .v4(let v4) = a else { return ClientIdentity(a) }
        let key = v4.address.sin_addr.s_addr
        if let hit = byV4[key] { return hit }
        if byV4.count >= Self.capacity { byV4.removeAll(keepingCapacity: true) }   // a flood of sources: start over
        let made = ClientIdentity(a)
        byV4[key] = made
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

/// Fan-out of query records to consumers (violation log, audit recorder, telemetry queue), on the
/// event loop before the reply is flushed. Consumers must return quickly; anything slow belongs
/// behind their own queue (the telemetry hub processes its queue after the flush).
final class QueryObservers: Sendable {
    private let consumers: [@Sendable (QueryRecord) -> Void]
    init(_ consumers: [@Sendable (QueryRecord) -> Void]) { self.consumers = consumers }
    func observe(_ r: QueryRecord) { for c in consumers { c(r) } }
}
