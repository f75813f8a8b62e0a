import DNSGateCore
import NIOCore
import NIOPosix
import NIOExtras
import Logging
import Synchronization

/// Why an upstream exchange failed; the text goes into the SERVFAIL's Extended DNS Error.
public enum UpstreamError: Error, CustomStringConvertible {
    case timeout(String)
    /// No usable reply in time, and the upstream sent one that failed the checks (why) meanwhile.
    case refusedReply(String, String)
    case unusable(String, ResponseCode)
    case noUpstreams
    case transport(String, String)
    public var description: String { text(naming: { $0 }) }

    /// The text with each upstream's address replaced by `name(address)`. The other parts never
    /// hold an address: `transport`'s detail is a fixed phrase or `socketFailureText`.
    func text(naming name: (String) -> String) -> String {
        switch self {
        case .timeout(let s): return "\(name(s)) timed out"
        case .refusedReply(let s, let why): return "\(name(s)) sent a reply that failed the checks (\(why))"
        case .unusable(let s, let rc): return "\(name(s)) answered \(rc)"
        case .noUpstreams: return "no upstream configured"
        case .transport(let s, let e): return "\(name(s)): \(e)"
        }
    }
}

/// What failed on an upstream socket, in words that name no address: the text reaches clients in
/// an Extended DNS Error, and some of SwiftNIO's error texts name the peer (`NIOConnectionError`
/// lists every address it tried). The system's message for an `IOError`, the case for a
/// `ChannelError`, the type's name for anything else.
func socketFailureText(_ error: Error) -> String {
    switch error {
    case is IOError: return errorText(error)
    case let e as ChannelError: return "\(e)"
    case is NIOExtrasErrors.LeftOverBytesError: return "connection closed in the middle of a message"   // QA pass 13, F5
    default: return "\(type(of: error))"
    }
}

/// Health of one upstream, shown by `dnsgate stats`.
public final class UpstreamHealth: Sendable {
    /// The most a UDP read takes of one upstream datagram (both upstream socket kinds read this much).
    static let datagramReadSize = 4096

    public let address: String
    public let answered = AtomicCounter()
    public let timeouts = AtomicCounter()
    public let failures = AtomicCounter()
    /// Replies from this upstream's address with the ID of a query in flight that failed the checks
    /// (malformed, or for another question): discarded as RFC 5452 asks, so the exchange times out,
    /// and without this count an operator would look for a network problem (QA pass 5, F10). A
    /// reply that no query in flight takes is counted in `UpstreamClient.unwanted` instead.
    public let rejected = AtomicCounter()
    public let lastRTTMicros = AtomicCounter()
    /// Called with every answered exchange's round trip in seconds (the metrics histogram).
    let onRTT: @Sendable (Double) -> Void
    /// Gets the queries sent to this upstream and the answers accepted from it (`log.dnstap`).
    let dnstap: DnstapWriter?
    /// This upstream's address, for dnstap.
    let socketAddress: SocketAddress?
    init(address: String, socketAddress: SocketAddress? = nil, dnstap: DnstapWriter? = nil, onRTT: @escaping @Sendable (Double) -> Void) {
        self.address = address; self.onRTT = onRTT; self.socketAddress = socketAddress; self.dnstap = dnstap
    }

    /// Why the last reply that failed the checks failed (`WireError`'s words, which hold no address).
    private let lastRejection = Mutex("")

    /// The failure of an attempt that got no usable reply in time: a timeout, unless this upstream
    /// sent replies that failed the checks since `rejectedBefore` (the `rejected` count when the
    /// attempt began). Those were the upstream's answer, and "timed out" sent operators looking for a
    /// network fault (QA pass 13, F5).
    func timedOut(rejectedBefore: Int) -> UpstreamError {
        rejected.value > rejectedBefore ? .refusedReply(address, lastRejection.withLock { $0 }) : .timeout(address)
    }

    /// When this upstream last refused a query for its OPT (`UpstreamAnswer.refusesEDNS`), in seconds
    /// of the monotonic clock; 0 never. It is then asked without OPT for `ednsRecheckSeconds`, as
    /// unbound keeps a server's EDNS status in its infrastructure cache.
    private let refusedEDNSAt = AtomicCounter()
    static let ednsRecheckSeconds = 900

    /// When this upstream last sent a usable answer with an OPT of its own (seconds, monotonic; 0
    /// never): it knows EDNS, and a FORMERR from it is about something else.
    private let sawEDNSAt = AtomicCounter()

    /// Whether queries to this upstream carry an OPT now.
    var usesEDNS: Bool { Self.longAgo(refusedEDNSAt) }

    /// Whether `answer`, the reply to a query sent with an OPT (`sentEDNS`) or without, asks for the
    /// same query again without one: a refusal of the OPT (`UpstreamAnswer.refusesEDNS`) from an
    /// upstream that has not answered with an OPT of its own lately (RFC 6891 §7).
    func retryWithoutEDNS(after answer: UpstreamAnswer, sentEDNS: Bool) -> Bool {
        sentEDNS && answer.refusesEDNS && Self.longAgo(sawEDNSAt)
    }

    /// Notes what a usable answer at `nanoseconds` (monotonic) says of this upstream's EDNS, and
    /// returns it as it may be cached for `key`. An answer to a query without OPT, sent while OPT was
    /// in use (the retry after a refusal), means the upstream does not know EDNS: it is asked without
    /// for a while. Only then, as unbound does: one odd FORMERR, or a retry that failed too, turned
    /// EDNS (and with it DNSSEC's DO bit) off for a healthy upstream (QA pass 14, F3). One with an OPT
    /// of its own means it does know EDNS; that is written at most once a minute, so that answers on
    /// two cores do not contend for the line. Asked without OPT, so without DO, the answer holds no
    /// signatures and is not cached under a DO client's key. The answer is taken and given back,
    /// not copied: a copy retained and released its body and TTLs on every miss.
    func accepted(_ answer: consuming UpstreamAnswer, sentEDNS: Bool, dnssecOK: Bool, at nanoseconds: UInt64) -> UpstreamAnswer {
        let now = Self.seconds(nanoseconds)
        if !sentEDNS && usesEDNS { refusedEDNSAt.store(max(1, now)) }
        if answer.hadOPT && now - sawEDNSAt.value >= 60 { sawEDNSAt.store(now) }
        return !sentEDNS && dnssecOK ? answer.uncached : answer
    }

    /// Whether the time in `counter` is unset or `ednsRecheckSeconds` past.
    private static func longAgo(_ counter: AtomicCounter) -> Bool {
        let t = counter.value
        return t == 0 || seconds(MonotonicClock.nanoseconds()) - t >= ednsRecheckSeconds
    }

    private static func seconds(_ nanoseconds: UInt64) -> Int { Int(nanoseconds / 1_000_000_000) }

    /// A query leaving for this upstream through NIO (the event loops' UDP pool, TCP), for dnstap;
    /// the UDP listeners' own queries are seen by their send batches.
    func sending(_ query: [UInt8], overTCP: Bool) {
        if let dnstap, let socketAddress { dnstap.message(.forwarderQuery, query, peer: socketAddress, overTCP: overTCP) }
    }

    /// Counts a usable answer, `nanoseconds` after its query left.
    func recordAnswer(afterNanoseconds nanoseconds: Int64) {
        answered.add(1)
        lastRTTMicros.store(Int(nanoseconds / 1000))
        onRTT(Double(nanoseconds) / 1e9)
    }

    /// `bytes`, a reply from this upstream to query `id` for `name`/`type`, checked (`UpstreamAnswer`); nil,
    /// counted as rejected, when it fails the checks. Only for a reply from this upstream's address
    /// with an ID in flight: anything else may be stray or forged, not the upstream's. `bytes` is
    /// taken, as `UpstreamAnswer` takes it: borrowed, it was copied whole on every cache miss.
    @inline(__always)
    func checkedAnswer(_ bytes: consuming [UInt8], id: UInt16, name: DNSName, type: RecordType, overTCP: Bool = false) -> UpstreamAnswer? {
        // dnstap wants the answer as received; `UpstreamAnswer` removes its OPT and zeroes its ID.
        let received: [UInt8]? = dnstap == nil ? nil : copy bytes
        // An error without its question (QDCOUNT 0) is the error, not a malformed answer.
        if bytes.count >= 12 && bytes[4] == 0 && bytes[5] == 0, let e = UpstreamAnswer.questionlessError(bytes, id: id) { return e }
        // A datagram that fills its read slot was cut by the read: the upstream sent more than the
        // 1,232 octets dnsgate advertises. Read as a truncated answer it is asked again over TCP, as
        // unbound does; refused, the exchange waited out its timeout (QA pass 13, F4).
        let cut = !overTCP && bytes.count >= Self.datagramReadSize ? UpstreamAnswer.truncatedCopy(of: bytes) : nil
        let a: UpstreamAnswer
        do { a = try UpstreamAnswer(bytes, id: id, name: name, type: type) } catch {
            if let cut, let a = try? UpstreamAnswer(cut, id: id, name: name, type: type) { return a }
            lastRejection.withLock { $0 = "\(error)" }
            rejected.add(1); return nil
        }
        if let dnstap, let socketAddress, let received { dnstap.message(.forwarderResponse, received, peer: socketAddress, overTCP: overTCP) }
        return a
    }

    /// Counts a failed attempt: a timeout, or any other failure.
    func recordFailure(_ e: UpstreamError) {
        if case .timeout = e { timeouts.add(1) } else { failures.add(1) }
    }
}

extension SocketAddress {
    /// `192.0.2.53:53` or `[2001:db8::53]:53`, as the configuration writes it: NIO's `description`
    /// (`[IPv4]192.0.2.53/192.0.2.53:53`) ended up in the EDE text clients see.
    var hostPort: String {
        guard let ip = ipAddress, let port else { return description }
        return self.protocol == .inet6 ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }
}

/// Sends allowed questions to the upstream resolvers and returns checked answers.
///
/// UDP exchanges go through a per-event-loop pool of long-lived sockets on random ephemeral ports
/// (`UpstreamSocketPool`) with random IDs, and accept a reply only from the address asked, with that ID
/// and that question (RFC 5452 §9.1). UDP first;
/// a truncated reply is asked again over TCP (RFC 7766 §5). A timeout, or an RCODE other than NOERROR
/// and NXDOMAIN, moves on to the next upstream until the deadline, as does a reply truncated over TCP.
/// Identical questions in flight share one exchange.
public final class UpstreamClient: Sendable {
    /// The upstreams in order, and the per-attempt timeout and whole-exchange deadline; `DirectUpstream`
    /// (the UDP listeners' own exchanges) follows the same ones.
    let upstreams: [(SocketAddress, UpstreamHealth)]
    let timeout: TimeAmount
    let deadline: TimeAmount
    private let inflight = Mutex<[CacheKey: EventLoopFuture<UpstreamAnswer>]>([:])
    /// Moved on after each failed attempt, so the next question starts with the next upstream.
    let rotation = AtomicCounter()
    public let coalesced = AtomicCounter()
    /// Replies no exchange in flight takes, on any path: the UDP listeners' sockets, the pools, TCP.
    public let unwanted: UnwantedReplies
    private let pools = Mutex<[PoolKey: UpstreamSocketPool]>([:])
    private let poolSize: Int

    public var health: [UpstreamHealth] { upstreams.map { $0.1 } }

    /// `error`'s text for a client's Extended DNS Error: each upstream named by its place in the
    /// list (`upstream 2`), not by its address, which a job behind dnsgate has no business learning
    /// (QA pass 10, F16: it could then try to reach the resolver directly). `dnsgate stats` and the
    /// metrics name them.
    public func clientText(_ error: Error) -> String {
        guard let e = error as? UpstreamError else { return "upstream failure" }
        return e.text(naming: { address in
            // Either spelling: the configuration's (`health.address`) or NIO's (`hostPort`).
            guard let i = upstreams.firstIndex(where: { $0.1.address == address || $0.0.hostPort == address }) else { return "an upstream" }
            return "upstream \(i + 1)"
        })
    }

    /// - Parameter onRTT: every answered exchange's round trip in seconds, with the upstream's
    ///   position in `upstreams` (an index, not its name: hashing the name on every miss cost more
    ///   than recording the time).
    ///   - dnstap: gets every query sent upstream and every answer accepted (`log.dnstap`).
    ///   - logger: warns of unwanted replies.
    public init(upstreams: [HostPort], timeoutMs: Int, deadlineMs: Int, socketsPerLoop: Int = 16, dnstap: DnstapWriter? = nil,
                logger: Logger, onRTT: @escaping @Sendable (Int, Double) -> Void = { _, _ in }) throws {
        self.poolSize = socketsPerLoop
        self.unwanted = UnwantedReplies(logger: logger)
        self.upstreams = try upstreams.enumerated().map { i, hp in
            let address = try SocketAddress(ipAddress: hp.host, port: hp.port)
            return (address, UpstreamHealth(address: hp.description, socketAddress: address, dnstap: dnstap, onRTT: { onRTT(i, $0) }))
        }
        self.timeout = .milliseconds(Int64(timeoutMs))
        self.deadline = .milliseconds(Int64(deadlineMs))
    }

    /// - Parameters:
    ///   - spelling: the client's spelling of `key.name`, sent instead of the canonical form when not nil.
    ///   - overTCP: ask over TCP from the start: a UDP listener's own exchange got a truncated answer,
    ///     and asking over UDP again would only get another (three upstream queries a miss, not two).
    public func resolve(_ key: CacheKey, spelling: ArraySlice<UInt8>? = nil, overTCP: Bool = false, on loop: EventLoop) -> EventLoopFuture<UpstreamAnswer> {
        let (future, promise): (EventLoopFuture<UpstreamAnswer>, EventLoopPromise<UpstreamAnswer>?) = inflight.withLock { map in
            if let f = map[key] { return (f, nil) }
            let p = loop.makePromise(of: UpstreamAnswer.self)
            map[key] = p.futureResult
            return (p.futureResult, p)
        }
        guard let promise else { coalesced.add(1); return future.hop(to: loop) }
        exchange(key, spelling: spelling, overTCP: overTCP, on: loop, attempt: 0, start: rotation.value, until: .now() + deadline,
                 lastError: .noUpstreams, completing: promise)
        return future
    }

    /// Asks the upstreams in turn, from `start`, until one gives a usable answer, and completes
    /// `promise` with it (or with the last error). One callback per attempt, completing the caller's
    /// promise directly: the chain of futures it replaced cost six allocations per cache miss.
    private func exchange(_ key: CacheKey, spelling: ArraySlice<UInt8>?, overTCP: Bool, on loop: EventLoop, attempt: Int, start: Int,
                          until: NIODeadline, lastError: UpstreamError, completing promise: EventLoopPromise<UpstreamAnswer>) {
        // Two passes over the list at most, and never past the deadline.
        guard !upstreams.isEmpty else { return complete(key, promise, .failure(UpstreamError.noUpstreams)) }
        guard attempt < upstreams.count * 2, NIODeadline.now() < until else { return complete(key, promise, .failure(lastError)) }
        let (addr, health) = upstreams[(start + attempt) % upstreams.count]
        let began = NIODeadline.now(), rejectedBefore = health.rejected.value
        let next: (Error) -> Void = { error in
            var e = (error as? UpstreamError) ?? .transport(health.address, socketFailureText(error))
            if case .timeout = e { e = health.timedOut(rejectedBefore: rejectedBefore) }
            health.recordFailure(e)
            self.rotation.add(1)     // the next query starts with the next upstream
            self.exchange(key, spelling: spelling, overTCP: overTCP, on: loop, attempt: attempt + 1, start: start, until: until,
                          lastError: e, completing: promise)
        }
        // One attempt at this upstream: with OPT unless it is known not to take one, and once more
        // without when it refuses it (RFC 6891 §7); a truncated UDP answer asked again over TCP.
        func askThisUpstream(edns: Bool) {
            let accept: (UpstreamAnswer) -> Void = { answer in
                if !answer.isAnswer {
                    if health.retryWithoutEDNS(after: answer, sentEDNS: edns) { return askThisUpstream(edns: false) }
                    return next(UpstreamError.unusable(health.address, answer.upstreamRCODE))
                }
                // Truncated over TCP: the upstream could not fit its answer in 64 KB, so it has none to give.
                if answer.truncated { return next(UpstreamError.transport(health.address, "answer truncated over TCP")) }
                let now = NIODeadline.now()
                let usable = health.accepted(answer, sentEDNS: edns, dnssecOK: key.dnssecOK, at: now.uptimeNanoseconds)
                health.recordAnswer(afterNanoseconds: (now - began).nanoseconds)
                self.complete(key, promise, .success(usable))
            }
            ask(addr, health, key: key, spelling: spelling, on: loop, overTCP: overTCP, edns: edns).whenComplete { result in
                switch result {
                case .failure(let e): next(e)
                case .success(let answer) where answer.truncated && !overTCP:
                    // RFC 7766 §5: the same upstream, over TCP.
                    self.ask(addr, health, key: key, spelling: spelling, on: loop, overTCP: true, edns: edns).whenComplete { r in
                        switch r {
                        case .failure(let e): next(e)
                        case .success(let a): accept(a)
                        }
                    }
                case .success(let answer): accept(answer)
                }
            }
        }
        askThisUpstream(edns: health.usesEDNS)
    }

    /// Ends an exchange: later identical questions start a new one. Done here rather than in a
    /// callback on the future, which was an allocation or two per cache miss.
    private func complete(_ key: CacheKey, _ promise: EventLoopPromise<UpstreamAnswer>, _ result: Result<UpstreamAnswer, Error>) {
        inflight.withLock { _ = $0.removeValue(forKey: key) }
        promise.completeWith(result)
    }

    /// The event loop's pool for `address`'s family: a socket bound to 0.0.0.0 cannot send to an
    /// IPv6 upstream, and one bound to :: fails on a kernel without IPv6, so each family has its own,
    /// made when first needed.
    private func pool(for loop: EventLoop, to address: SocketAddress) -> UpstreamSocketPool {
        let family = address.protocol == .inet6 ? UpstreamSocketPool.Family.v6 : .v4
        return pools.withLock { p in
            let key = PoolKey(loop: ObjectIdentifier(loop), family: family)
            if let existing = p[key] { return existing }
            let created = UpstreamSocketPool(loop: loop, family: family, size: poolSize, unwanted: unwanted)
            p[key] = created
            return created
        }
    }
    private struct PoolKey: Hashable {
        let loop: ObjectIdentifier
        let family: UpstreamSocketPool.Family
    }

    /// Closes the pooled sockets (shutdown).
    public func close() { for p in pools.withLock({ Array($0.values) }) { p.close() } }

    private func ask(_ addr: SocketAddress, _ health: UpstreamHealth, key: CacheKey, spelling: ArraySlice<UInt8>?, on loop: EventLoop,
                     overTCP: Bool, edns: Bool) -> EventLoopFuture<UpstreamAnswer> {
        if !overTCP {
            return pool(for: loop, to: addr).exchange(to: addr, timeout: timeout, build: { id in
                let query = UpstreamQuery.make(id: id, name: key.name, spelling: spelling, type: key.type, dnssecOK: key.dnssecOK,
                                               checkingDisabled: key.checkingDisabled, edns: edns)
                health.sending(query, overTCP: false)
                return query
            }, check: { id, bytes in health.checkedAnswer(bytes, id: id, name: key.name, type: key.type) })   // called for `addr` and an ID in flight only
        }
        // TCP (after a truncated UDP reply): one connection per exchange, as RFC 7766 allows; rare.
        let id = UInt16.random(in: 0...UInt16.max)        // SystemRandomNumberGenerator: getrandom(2)
        let query = UpstreamQuery.make(id: id, name: key.name, spelling: spelling, type: key.type, dnssecOK: key.dnssecOK,
                                       checkingDisabled: key.checkingDisabled, edns: edns)
        let promise = loop.makePromise(of: UpstreamAnswer.self)
        let check: @Sendable ([UInt8]) -> UpstreamAnswer? = { health.checkedAnswer($0, id: id, name: key.name, type: key.type, overTCP: true) }
        let timer = loop.scheduleTask(in: timeout) { promise.fail(UpstreamError.timeout(addr.hostPort)) }
        promise.futureResult.whenComplete { _ in timer.cancel() }
        ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelInitializer { [unwanted] ch in
                ch.eventLoop.makeCompletedFuture {
                    try ch.pipeline.syncOperations.addHandler(ByteToMessageHandler(LengthFieldBasedFrameDecoder(lengthFieldLength: .two)))
                    try ch.pipeline.syncOperations.addHandler(LengthFieldPrepender(lengthFieldLength: .two))
                    try ch.pipeline.syncOperations.addHandler(UpstreamStreamReplyHandler(promise: promise, id: id, check: check, upstream: addr.hostPort,
                                                                                         unwanted: unwanted))
                }
            }
            .connect(to: addr)
            .flatMap { ch in
                health.sending(query, overTCP: true)
                return ch.writeAndFlush(ByteBuffer(bytes: query)).map { ch }
            }
            .whenComplete { result in
                switch result {
                case .success(let ch): promise.futureResult.whenComplete { _ in ch.close(promise: nil) }
                case .failure(let e): promise.fail(UpstreamError.transport(addr.hostPort, socketFailureText(e)))
                }
            }
        return promise.futureResult
    }
}

/// TCP variant: one framed reply, checked the same way. The connection carries this one query, so
/// a frame that does not answer it (another ID: unwanted; another question or malformed: the
/// upstream's `rejected`) means no answer will come on it: the exchange fails at once and the
/// connection is closed, as Unbound does, and the next upstream is asked without waiting out the
/// timeout. Over UDP, where a forger can race the real answer, such a reply is only dropped.
final class UpstreamStreamReplyHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let promise: EventLoopPromise<UpstreamAnswer>
    private let id: UInt16
    private let check: @Sendable ([UInt8]) -> UpstreamAnswer?
    /// The upstream's address, for errors: after a reset the channel no longer knows it.
    private let upstream: String
    private let unwanted: UnwantedReplies
    init(promise: EventLoopPromise<UpstreamAnswer>, id: UInt16, check: @escaping @Sendable ([UInt8]) -> UpstreamAnswer?, upstream: String,
         unwanted: UnwantedReplies) {
        self.promise = promise; self.id = id; self.check = check; self.upstream = upstream; self.unwanted = unwanted
    }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard frame.readableBytes >= 12, frame.getInteger(at: frame.readerIndex, as: UInt16.self) == id else {
            unwanted.note()
            return giveUp(context, "TCP reply with another ID")
        }
        guard let answer = check(Array(frame.readableBytesView)) else { return giveUp(context, "TCP reply that does not answer the query") }
        promise.succeed(answer)
    }
    private func giveUp(_ context: ChannelHandlerContext, _ why: String) {
        promise.fail(UpstreamError.transport(upstream, why))
        context.close(promise: nil)
    }
    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(UpstreamError.transport(upstream, "TCP connection closed"))
    }
    func errorCaught(context: ChannelHandlerContext, error: Error) {
        promise.fail(UpstreamError.transport(upstream, socketFailureText(error)))
        context.close(promise: nil)
    }
}
