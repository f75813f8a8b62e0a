import DNSGateCore
import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// Long-lived UDP sockets for upstream exchanges, one small pool per event loop.
///
/// A fresh socket per exchange costs four system calls and a channel setup, which made a cache miss
/// several times dearer than in dnsmasq. Instead each event loop keeps `size` sockets, each bound to its
/// own kernel-chosen ephemeral port; an exchange picks one at random and an ID not in flight on it
/// (random, from getrandom(2), read 512 bytes at a time), so a forger must guess both the port and the 16-bit ID (RFC 5452 §9.2).
/// A reply is accepted only if its ID is in flight, it comes from the address asked, and it answers the
/// question asked (the `check`); anything else is dropped, so a forged packet cannot cancel an exchange.
/// A reply for no exchange in flight is counted in `unwanted`.
///
/// Confined to its event loop: every method runs there, so the in-flight tables need no locks.
final class UpstreamSocketPool: @unchecked Sendable {
    private let loop: EventLoop
    private let size: Int
    private var sockets: [EventLoopFuture<(Channel, UpstreamMuxHandler)>?]
    /// The sockets already open, so an exchange skips the future (and its callback) once they are.
    private var ready: [(channel: Channel, mux: UpstreamMuxHandler)?]
    private var random = BufferedRandom()
    /// Timeouts are found by a sweep every `sweepInterval` while anything is in flight, rather than by a
    /// timer per exchange: scheduling and cancelling one cost about a microsecond per cache miss.
    static let sweepInterval = TimeAmount.milliseconds(10)
    static let readsPerCall = 16
    /// Exchanges one socket carries at most. Its IDs are drawn at random among those not in flight,
    /// so the draw must stay cheap and the ID hard to guess: with all 65,536 in use it never ended,
    /// and a TCP flood of pipelined misses against a silent upstream hung the event loop for good
    /// (QA pass 4). At 4,096 a draw takes 1.07 tries on average, and a forger faces 16 in 17 misses.
    static let maxInFlightPerSocket = 4096
    private var sweepScheduled = false
    /// Queries are written without a flush and flushed together once the current event-loop task
    /// (a listener's batch of misses) is done, all on one socket: NIO then sends them with one
    /// `sendmmsg` instead of a `sendmsg` each. The socket is drawn at random once per flush, so a
    /// forger still has to guess the port as well as each query's random ID.
    private var flushSlot: Int?
    private let unwanted: UnwantedReplies
    /// The address family of the upstreams this pool asks; its sockets are bound to that family's
    /// wildcard address.
    enum Family: Hashable { case v4, v6 }
    private let family: Family

    init(loop: EventLoop, family: Family = .v4, size: Int, unwanted: UnwantedReplies) {
        self.loop = loop
        self.family = family
        self.unwanted = unwanted
        self.size = max(1, size)
        self.sockets = Array(repeating: nil, count: self.size)
        self.ready = Array(repeating: nil, count: self.size)
    }

    /// Sends the query `build(id)` to `address` and completes with the first reply `check` accepts, or
    /// fails with a timeout (within `sweepInterval` after `timeout`).
    func exchange(to address: SocketAddress, timeout: TimeAmount, build: @escaping (UInt16) -> [UInt8],
                  check: @escaping (UInt16, [UInt8]) -> UpstreamAnswer?) -> EventLoopFuture<UpstreamAnswer> {
        loop.preconditionInEventLoop()
        let promise = loop.makePromise(of: UpstreamAnswer.self)
        var slot = flushSlot ?? Int(random.uint16()) % size
        if let mux = ready[slot]?.mux, mux.pending.count >= Self.maxInFlightPerSocket {
            // Full: another open socket with room (the burst then flushes there), or none at all.
            guard let other = ready.indices.first(where: { ready[$0].map { $0.mux.pending.count < Self.maxInFlightPerSocket } ?? false }) else {
                promise.fail(UpstreamError.transport(address.hostPort, "too many queries in flight (\(size) × \(Self.maxInFlightPerSocket))"))
                return promise.futureResult
            }
            if let old = flushSlot, let (ch, _) = ready[old] { ch.flush() }   // what was written there goes now
            if flushSlot != nil { flushSlot = other }
            slot = other
        }
        if let (channel, mux) = ready[slot] {
            send(on: slot, channel, mux, to: address, deadline: .now() + timeout, build: build, check: check, promise: promise)
            return promise.futureResult
        }
        socket(slot).whenComplete { result in
            switch result {
            case .failure(let e):
                self.sockets[slot] = nil             // try a new socket next time
                promise.fail(UpstreamError.transport(address.hostPort, socketFailureText(e)))
            case .success(let (channel, mux)):
                self.send(on: slot, channel, mux, to: address, deadline: .now() + timeout, build: build, check: check, promise: promise)
            }
        }
        return promise.futureResult
    }

    private func send(on slot: Int, _ channel: Channel, _ mux: UpstreamMuxHandler, to address: SocketAddress, deadline: NIODeadline,
                      build: (UInt16) -> [UInt8], check: @escaping (UInt16, [UInt8]) -> UpstreamAnswer?,
                      promise: EventLoopPromise<UpstreamAnswer>) {
        // Also for exchanges that waited for the socket to open, which `exchange` could not count.
        guard mux.pending.count < Self.maxInFlightPerSocket else {
            promise.fail(UpstreamError.transport(address.hostPort, "too many queries in flight on one socket"))
            return
        }
        var id = random.uint16()
        while mux.pending[id] != nil { id = random.uint16() }   // ends: at most 1 in 16 IDs is in flight (`maxInFlightPerSocket`)
        mux.pending[id] = UpstreamMuxHandler.Pending(expected: address, check: { check(id, $0) }, promise: promise, deadline: deadline)
        scheduleSweep()
        let query = build(id)
        // Without a write promise: UDP send errors are local and rare, and such an exchange then ends
        // as a timeout, which moves on to the next upstream like a transport error would.
        channel.write(AddressedEnvelope(remoteAddress: address, data: channel.allocator.buffer(bytes: query)), promise: nil)
        if flushSlot == nil {
            flushSlot = slot
            loop.execute { [self] in
                if let slot = flushSlot, let (ch, _) = ready[slot] { ch.flush() }
                flushSlot = nil
            }
        }
    }

    /// Exchanges waiting for an answer, on every socket.
    var inFlight: Int { ready.reduce(0) { $0 + ($1?.mux.pending.count ?? 0) } }

    private func scheduleSweep() {
        if sweepScheduled { return }
        sweepScheduled = true
        loop.scheduleTask(in: Self.sweepInterval) { self.sweep() }
    }

    /// Fails the exchanges past their deadline; runs again while any are left.
    private func sweep() {
        sweepScheduled = false
        let now = NIODeadline.now()
        var waiting = false
        for case let (_, mux)? in ready {
            for (id, p) in mux.pending where p.deadline <= now {
                mux.pending[id] = nil
                p.promise.fail(UpstreamError.timeout(p.expected.hostPort))
            }
            waiting = waiting || !mux.pending.isEmpty
        }
        if waiting { scheduleSweep() }
    }

    private func socket(_ slot: Int) -> EventLoopFuture<(Channel, UpstreamMuxHandler)> {
        if let s = sockets[slot] { return s }
        let mux = UpstreamMuxHandler(unwanted: unwanted)
        let f = DatagramBootstrap(group: loop)
            // Answers to a flushed batch arrive together: read up to 16 with one recvmmsg. NIO splits the
            // receive buffer evenly, so each answer has 4 KB: dnsgate advertises 1,232 bytes (EDNS), and
            // a longer UDP answer arrives cut short and is asked again over TCP (`checkedAnswer`).
            .channelOption(ChannelOptions.recvAllocator,
                           value: FixedSizeRecvByteBufferAllocator(capacity: Self.readsPerCall * UpstreamHealth.datagramReadSize))
            .channelOption(ChannelOptions.datagramVectorReadMessageCount, value: Self.readsPerCall)
            .channelInitializer { ch in ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(mux) } }
            .bind(host: family == .v6 ? "::" : "0.0.0.0", port: 0)   // kernel-chosen ephemeral port, different per socket
            .map { ch -> (Channel, UpstreamMuxHandler) in
                self.ready[slot] = (ch, mux)
                return (ch, mux)
            }
        sockets[slot] = f
        return f
    }

    func close() {
        for s in sockets { s?.whenSuccess { $0.0.close(promise: nil) } }
        sockets = Array(repeating: nil, count: size)
        ready = Array(repeating: nil, count: size)
    }
}

/// Demultiplexes replies on one pooled socket by ID; see `UpstreamSocketPool`.
final class UpstreamMuxHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    struct Pending {
        let expected: SocketAddress
        let check: ([UInt8]) -> UpstreamAnswer?
        let promise: EventLoopPromise<UpstreamAnswer>
        let deadline: NIODeadline
    }
    var pending: [UInt16: Pending] = [:]
    private let unwanted: UnwantedReplies

    init(unwanted: UnwantedReplies) { self.unwanted = unwanted }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let env = unwrapInboundIn(data)
        guard env.data.readableBytes >= 12, let id = env.data.getInteger(at: env.data.readerIndex, as: UInt16.self),
              let p = pending[id], env.remoteAddress == p.expected else { return unwanted.note() }   // stray, late or forged
        guard let answer = p.check(Array(env.data.readableBytesView)) else { return }   // counted as `rejected`; the exchange waits on
        pending[id] = nil
        p.promise.succeed(answer)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // One bad datagram (or an ICMP error on some kernels) must not take the shared socket down.
    }
}

@available(*, unavailable)
extension UpstreamMuxHandler: Sendable {}

/// Unpredictable 16-bit numbers for query IDs and socket choice (RFC 5452), from the kernel's CSPRNG.
/// Asking for two bytes at a time cost a getrandom(2) call each, twice per cache miss; one call now
/// fills 512 bytes for 256 numbers. Used on one event loop only.
struct BufferedRandom {
    private var bytes = [UInt8](repeating: 0, count: 512)
    private var next = 512
    /// Tests only: `pattern` over and over instead of the kernel's bytes, so that an exchange's ID is
    /// known before it is drawn.
    private var fixed = false

    init() {}

    init(repeating pattern: [UInt8]) {
        bytes = (0..<bytes.count).map { pattern[$0 % pattern.count] }
        next = 0
        fixed = true
    }

    mutating func uint16() -> UInt16 {
        if next + 2 > bytes.count { refill() }
        defer { next += 2 }
        return UInt16(bytes[next]) << 8 | UInt16(bytes[next + 1])
    }

    private mutating func refill() {
        if fixed { next = 0; return }
        bytes.withUnsafeMutableBytes { buf in
            #if os(Linux)
            arc4random_buf(buf.baseAddress!, buf.count)   // glibc ≥ 2.36: getrandom(2) underneath
            #else
            var g = SystemRandomNumberGenerator()
            for i in stride(from: 0, to: buf.count, by: 8) { buf.storeBytes(of: g.next(), toByteOffset: i, as: UInt64.self) }
            #endif
        }
        next = 0
    }
}
