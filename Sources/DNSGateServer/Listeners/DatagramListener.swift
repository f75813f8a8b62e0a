import CDNSGateSockets
import DNSGateCore
import Foundation
import Logging
import NIOCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Answers DNS over UDP on a thread of its own: receive a batch with one `recvmmsg`, run each query
/// through the pipeline, send the replies with one `sendmmsg`, process the batch's telemetry, repeat.
///
/// Why not a NIO channel, as TCP uses: per datagram NIO boxed the remote address, formatted it,
/// wrapped the bytes in an envelope and queued a pending write, and every wakeup went through epoll.
/// That was about a microsecond of a 7 µs query (bench/RESULTS.md). A blocking `recvmmsg` is one
/// system call per batch, the same loop unbound and NSD run.
///
/// Cache misses are asked upstream from this thread too (`DirectUpstream`): while any are in flight
/// the thread waits in `poll` for the client socket and its upstream sockets together, and answers
/// go out in the same `sendmmsg` as the batch's other replies. Handing them to an event loop woke
/// that loop's thread twice per miss. Only an answer that came back truncated goes to the event loop,
/// whose upstream client asks again over TCP. One bad datagram never stops the loop.
final class DatagramListener: @unchecked Sendable {
    /// Datagrams taken per `recvmmsg`: enough to empty the queue in a few calls at 150k queries/s.
    static let batch = 32
    /// Receive room per datagram: the largest UDP payload, so no datagram is read cut short. With 4 KB
    /// a longer one was decoded from its first 4,096 octets: a query with junk after them was answered
    /// (over TCP, FORMERR) and a well-formed padded one was FORMERR (QA pass 12, F1). Only the pages a
    /// datagram fills become resident: 32 slots of 64 KB are 2 MB of address space a listener.
    static let slotSize = 65_536
    /// How long a blocked receive waits before it looks at the stop flag.
    static let wakeMilliseconds = 100
    /// Clients waiting on upstream answers at once. Past it, new misses are dropped (the client
    /// retries), as unbound does past `num-queries-per-thread`: this thread reads faster than any
    /// upstream answers, and without a bound a flood of unique allowed names queues without limit.
    static let maxMissesInFlight = 4096

    let port: Int
    private let fd: CInt
    private let core: ServingCore
    private let listener: String
    private let loop: EventLoop
    private let stopping = Atomic<Bool>(false)
    /// The listener thread's moderation settings; its state is a local of `serve`.
    private let coalescingSettings: ReadCoalescing
    /// Waits the moderation asked for, shared by the service's listeners (`dnsgate stats`, metrics).
    private let coalescedWaits: AtomicCounter
    private let finished = DispatchSemaphore(value: 0)
    /// Bound to a wildcard address (0.0.0.0, ::): each reply must leave from the address its query was
    /// sent to, which the kernel reports per datagram (IP_PKTINFO). A socket bound to one address does
    /// without, at no cost.
    private let answersFromDestination: Bool

    /// Opens and binds the socket (with SO_REUSEPORT, so each thread has its own and the kernel spreads
    /// clients over them). Throws NIO's `IOError`, whose errno the caller turns into advice.
    init(address: SocketAddress, core: ServingCore, listener: String, loop: EventLoop, coalescing: ReadCoalescing,
         coalescedWaits: AtomicCounter) throws {
        self.core = core; self.listener = listener; self.loop = loop
        self.coalescingSettings = coalescing; self.coalescedWaits = coalescedWaits
        let family = address.protocol.rawValue
        let fd = try Self.listenerSocket(family)
        func fail(_ what: String) -> IOError { let e = IOError(errnoCode: errno, reason: what); Glibc.close(fd); return e }
        var wake = timeval(tv_sec: 0, tv_usec: suseconds_t(Self.wakeMilliseconds * 1000))
        // No SO_REUSEADDR: for UDP it would let another socket bind the same address and take a share
        // of the queries. SO_REUSEPORT joins this service's own sockets; `assertUnused` keeps others out.
        guard Self.enable(fd, SOL_SOCKET, SO_REUSEPORT),
              setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wake, socklen_t(MemoryLayout<timeval>.size)) == 0
        else { throw fail("setsockopt") }
        // Replies leave unfragmented, with IP ID 0 (see `dnsgate_never_fragment`); `ReplyBatch.send`
        // sends one larger than the interface MTU fragmented, as before.
        guard family != AF_INET || dnsgate_never_fragment(fd) == 0 else { throw fail("setsockopt IP_MTU_DISCOVER") }
        let wildcard = address.ipAddress == "0.0.0.0" || address.ipAddress == "::"
        guard !wildcard || dnsgate_enable_pktinfo(fd, family) == 0 else { throw fail("setsockopt IP_PKTINFO") }
        answersFromDestination = wildcard
        guard address.withSockAddr({ bind(fd, $0, socklen_t($1)) }) == 0 else { throw fail("bind") }
        var bound = sockaddr_storage(), length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        guard withUnsafeMutablePointer(to: &bound, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }) == 0
        else { throw fail("getsockname") }
        self.fd = fd
        self.port = Int(UInt16(bigEndian: withUnsafeBytes(of: &bound) { $0.load(fromByteOffset: 2, as: UInt16.self) }))   // sin_port and sin6_port sit at offset 2
    }

    /// Fails with EADDRINUSE when any socket holds `address` already, whatever its options: the
    /// listeners' own SO_REUSEPORT would otherwise let them join a stranger's socket (another DNS
    /// server started with the same option), and the kernel would split the queries between them.
    static func assertUnused(_ address: SocketAddress) throws {
        let fd = try listenerSocket(address.protocol.rawValue)
        defer { Glibc.close(fd) }
        guard address.withSockAddr({ bind(fd, $0, socklen_t($1)) }) == 0 else { throw IOError(errnoCode: errno, reason: "bind") }
    }

    /// IP_FREEBIND on every listener socket: an address that is not on any interface yet (a bridge that
    /// docker creates after dnsgate started) is bound anyway and answers once it appears, instead of
    /// failing the start and leaving the other listeners, loopback's included, without DNS.
    static let freebind: CInt = 15   // IP_FREEBIND, <linux/in.h>; applies to IPv6 sockets too

    /// A datagram socket with the options every listener socket (and the probe standing in for one)
    /// binds with: IP_FREEBIND, and on IPv6 IPV6_V6ONLY, so `[::]:53` and `0.0.0.0:53` can both be
    /// listed, each family answered by its own sockets (a dual-stack socket would collide with the
    /// IPv4 one).
    private static func listenerSocket(_ family: CInt) throws -> CInt {
        let fd = try datagramSocket(family)
        guard family != AF_INET6 || enable(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY), enable(fd, Int32(IPPROTO_IP), freebind) else {
            let e = IOError(errnoCode: errno, reason: "setsockopt"); Glibc.close(fd); throw e
        }
        return fd
    }

    private static func datagramSocket(_ family: CInt) throws -> CInt {
        let fd = socket(family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw IOError(errnoCode: errno, reason: "socket") }
        return fd
    }

    private static func enable(_ fd: CInt, _ level: CInt, _ option: CInt) -> Bool {
        var one: CInt = 1
        return setsockopt(fd, level, option, &one, socklen_t(MemoryLayout<CInt>.size)) == 0
    }

    /// Whether the kernel has `address`'s family at all: one booted with `ipv6.disable=1` refuses
    /// IPv6 sockets (EAFNOSUPPORT), and no client can reach an IPv6 listener there anyway.
    static func familyIsAvailable(_ address: SocketAddress) -> Bool {
        do { Glibc.close(try datagramSocket(address.protocol.rawValue)); return true }
        catch { return (error as? IOError)?.errnoCode != EAFNOSUPPORT }
    }

    /// Whether `address` is on an interface now: a plain bind to it (port 0) succeeds.
    static func isPresent(_ address: SocketAddress) -> Bool {
        guard let fd = try? datagramSocket(address.protocol.rawValue) else { return true }
        defer { Glibc.close(fd) }
        var any = address
        any.port = 0
        return any.withSockAddr({ bind(fd, $0, socklen_t($1)) }) == 0 || errno != EADDRNOTAVAIL
    }

    func start(name: String) {
        let t = Thread { [self] in
            self.serve()
            self.finished.signal()
        }
        t.name = name
        t.start()
    }

    /// Stops the thread (within `wakeMilliseconds`). The socket stays open for replies still on their
    /// way from upstream; `close` it once the event loops are shut down.
    func stop() {
        if stopping.exchange(true, ordering: .relaxed) { return }
        finished.wait()
    }

    func close() { Glibc.close(fd) }

    private func serve() {
        let received = ReceiveBatch(count: Self.batch, slotSize: Self.slotSize, withDestination: answersFromDestination)
        let replies = ReplyBatch(count: Self.batch, withSource: answersFromDestination, dnstap: core.dnstap)
        var clients = ClientIdentityMemo()
        var packet: [UInt8] = []
        packet.reserveCapacity(512)
        let scratch = QueryScratch()
        // Optional, as `handle` takes it: wrapped at each call, it was retained and released per query.
        let records: RecordBatch? = RecordBatch(capacity: Self.batch)
        let fd = self.fd
        let direct = DirectUpstream(client: core.upstream, core: core, deliver: { bytes, to, queriedAt in
            withUnsafePointer(to: to.storage) { replies.queue(bytes, to: $0, length: to.length, from: to.local, fd: fd, queriedAt: queriedAt) }
            scratch.reclaim(bytes)   // copied: the buffer is the next reply's
        }, handOff: { [self] job, to in handOff(job, to: to) }, scratch: scratch)
        var full = false
        var coalescing = coalescingSettings
        while !stopping.load(ordering: .relaxed) {
            let n: Int
            if direct.isIdle {
                n = received.receive(fd, wait: true)
            } else {
                // Exchanges in flight: their answers, and their timeouts, wake this thread as well.
                let readable = direct.wait(alsoFor: fd, maxMilliseconds: Self.wakeMilliseconds, block: !full && !direct.holding)
                direct.collect()
                if readable { n = received.receive(fd, wait: false) } else { n = -1; errno = EAGAIN }
            }
            if n < 0 {
                let e = errno
                if e != EAGAIN && e != EWOULDBLOCK && e != EINTR {
                    core.logger.debug("UDP receive failed, continuing", metadata: ["concern": "listener", "errno": "\(e)"])
                    usleep(1000)   // an error that repeats must not spin a core
                }
                direct.flush(backlog: false)     // the socket ran dry: held queries go now
                replies.send(fd)   // answers that came in
                full = false
                continue
            }
            full = n == Self.batch
            coalescing.received(n, at: MonotonicClock.nanoseconds())
            let now = WallClock.now()
            records!.collecting = n >= RecordBatch.worthwhile
            for i in 0..<n {
                // Copied into storage reused from query to query; only a forwarded query keeps it.
                packet.replaceContents(with: received.datagram(i))
                if let tap = core.dnstap { tap.clientQuery(received.datagram(i), from: received.source(i), overTCP: false, at: now) }
                clients.select(received.source(i))
                switch core.handle(packet, client: clients.current, overTCP: false, listener: listener, scratch: scratch, now: now,
                                   batch: records) {
                case .reply(let bytes):
                    replies.queue(bytes, to: received.source(i), length: received.sourceLength(i), from: received.destination(i), fd: fd, queriedAt: now)
                    scratch.reclaim(bytes)
                case .nothing: break
                case .forward(let job):
                    if direct.waiting < Self.maxMissesInFlight {
                        direct.ask(job, for: DatagramSource(storage: received.source(i).pointee, length: received.sourceLength(i),
                                                            local: received.destination(i)),
                                   spelling: core.preserveCase ? job.query.spelledName : nil)
                    } else {
                        core.shed(job)
                    }
                }
            }
            core.flush(records!)
            direct.flush(backlog: true)
            replies.send(fd)
            // The replies are out: count them now, on this core, before the next read; while a full batch
            // came in (more queries wait), answer those first.
            core.telemetry?.catchUp(backlog: full)
            coalescing.answered(at: MonotonicClock.nanoseconds())
            // Under a flood, let the next batch gather (ReadCoalescing); while exchanges are in flight,
            // only briefly, as their answers wait too. Held queries leave first: they must not wait twice.
            if case let us = coalescing.wait(batchWasFull: full, forwarding: !direct.isIdle), us > 0 {
                direct.flush(backlog: false)
                coalescedWaits.add(1)
                usleep(us)
            }
        }
    }

    /// A miss whose answer came back truncated: the event loop's upstream client asks again, and over
    /// TCP (RFC 7766 §5); rare.
    private func handOff(_ job: ForwardJob, to: DatagramSource) {
        let miss = PendingMiss(job: job, to: to)
        loop.execute { [self] in
            core.forward(miss.job, overTCP: true, on: loop) { reply in self.sendMissReply(reply, to: miss.to, queriedAt: miss.job.record.time) }
        }
    }

    /// Replies to handed-off misses, gathered on the event loop and sent with one `sendmmsg` when the
    /// loop has handled its current round of upstream answers. Touched on `loop` only.
    private lazy var missReplies = ReplyBatch(count: Self.batch, withSource: answersFromDestination, dnstap: core.dnstap)
    private var missFlushScheduled = false

    private func sendMissReply(_ bytes: [UInt8], to source: DatagramSource, queriedAt: Double) {
        withUnsafePointer(to: source.storage) { missReplies.queue(bytes, to: $0, length: source.length, from: source.local, fd: fd, queriedAt: queriedAt) }
        if missFlushScheduled { return }
        missFlushScheduled = true
        loop.execute { [self] in
            missFlushScheduled = false
            missReplies.send(fd)
        }
    }
}

/// A cache miss waiting for its upstream answer, with the client to send it to.
private struct PendingMiss: @unchecked Sendable {   // sockaddr_storage is plain bytes
    let job: ForwardJob
    let to: DatagramSource
}

/// A datagram's source address, as the kernel gave it, and the local address it was sent to (family 0
/// unless the listener is bound to a wildcard address): the reply goes back from there.
struct DatagramSource {
    var storage = sockaddr_storage()
    var length = socklen_t(0)
    var local = dnsgate_local()
}

/// The receiving side of the listener: datagram slots and source addresses for one `recvmmsg`,
/// allocated once per listener thread.
final class ReceiveBatch {
    private let count: Int
    private let slotSize: Int
    private let slots: UnsafeMutableRawPointer
    private let sources: UnsafeMutablePointer<sockaddr_storage>
    private let iov: UnsafeMutablePointer<iovec>
    private let headers: UnsafeMutablePointer<dnsgate_mmsghdr>
    /// Control data per datagram (its destination address), when asked for.
    private let controls: UnsafeMutableRawPointer?
    /// Headers the kernel wrote to in the last round: only their name lengths need resetting.
    private var used = 0

    init(count: Int, slotSize: Int, withDestination: Bool = false) {
        self.count = count; self.slotSize = slotSize
        slots = .allocate(byteCount: count * slotSize, alignment: 64)
        sources = .allocate(capacity: count)
        iov = .allocate(capacity: count)
        headers = .allocate(capacity: count)
        controls = withDestination ? .allocate(byteCount: count * Int(DNSGATE_PKTINFO_SPACE), alignment: 16) : nil
        for i in 0..<count {
            iov[i] = iovec(iov_base: slots + i * slotSize, iov_len: slotSize)
            headers[i] = dnsgate_mmsghdr(msg_hdr: msghdr(msg_name: UnsafeMutableRawPointer(sources + i),
                                                         msg_namelen: socklen_t(MemoryLayout<sockaddr_storage>.size),
                                                         msg_iov: iov + i, msg_iovlen: 1,
                                                         msg_control: controls.map { $0 + i * Int(DNSGATE_PKTINFO_SPACE) },
                                                         msg_controllen: controls == nil ? 0 : Int(DNSGATE_PKTINFO_SPACE), msg_flags: 0),
                                         msg_len: 0)
        }
    }

    deinit { slots.deallocate(); sources.deallocate(); iov.deallocate(); headers.deallocate(); controls?.deallocate() }

    /// Waits for datagrams and takes up to `count`; the number taken, or -1 with errno.
    /// - Parameter wait: block until a datagram arrives (or the receive timeout); false returns -1
    ///   with EAGAIN at once when none is queued.
    func receive(_ fd: CInt, wait: Bool) -> Int {
        // The kernel overwrote the name length and flags of the datagrams it delivered last time.
        for i in 0..<used {
            headers[i].msg_hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_storage>.size)
            headers[i].msg_hdr.msg_flags = 0
            if controls != nil { headers[i].msg_hdr.msg_controllen = Int(DNSGATE_PKTINFO_SPACE) }
        }
        let n = Int(dnsgate_recvmmsg(fd, headers, UInt32(count), wait ? 1 : 0))
        used = max(n, 0)
        return n
    }

    func datagram(_ i: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: slots + i * slotSize, count: Int(headers[i].msg_len))
    }

    func source(_ i: Int) -> UnsafePointer<sockaddr_storage> { UnsafePointer(sources + i) }

    func sourceLength(_ i: Int) -> socklen_t { headers[i].msg_hdr.msg_namelen }

    /// The local address datagram `i` was sent to; family 0 when the listener did not ask.
    func destination(_ i: Int) -> dnsgate_local {
        var out = dnsgate_local()
        if controls != nil { dnsgate_pktinfo_read(&headers[i].msg_hdr, &out) }
        return out
    }
}

/// Replies waiting to leave with one `sendmmsg`: their bytes in an arena, each with its own copy of
/// its destination, so a reply may be queued for any address (a datagram just read, or a client whose
/// cache miss the event loop answered).
final class ReplyBatch {
    private let count: Int
    private let destinations: UnsafeMutablePointer<sockaddr_storage>
    private let arena: UnsafeMutableRawPointer
    private static let arenaSize = 65_536   // a UDP reply is at most 65,507 octets
    private var arenaUsed = 0
    private let iov: UnsafeMutablePointer<iovec>
    private let headers: UnsafeMutablePointer<dnsgate_mmsghdr>
    private var queued = 0
    /// Control data per reply (its source address), for a listener bound to a wildcard address.
    private let controls: UnsafeMutableRawPointer?
    /// Gets each datagram as it is queued (`log.dnstap`), as a message of `tapKind`.
    private let dnstap: DnstapWriter?
    private let tapKind: DnstapWriter.Kind
    var hasQueued: Bool { queued > 0 }

    /// - Parameter tapKind: what the datagrams are, for dnstap: replies to clients, or (the batches
    ///   `DirectUpstream` sends upstream) forwarded queries.
    init(count: Int, withSource: Bool = false, dnstap: DnstapWriter? = nil, tapKind: DnstapWriter.Kind = .clientResponse) {
        self.count = count; self.dnstap = dnstap; self.tapKind = tapKind
        destinations = .allocate(capacity: count)
        arena = .allocate(byteCount: Self.arenaSize, alignment: 64)
        iov = .allocate(capacity: count)
        headers = .allocate(capacity: count)
        controls = withSource ? .allocate(byteCount: count * Int(DNSGATE_PKTINFO_SPACE), alignment: 16) : nil
        for i in 0..<count { headers[i] = dnsgate_mmsghdr() }
    }

    deinit { destinations.deallocate(); arena.deallocate(); iov.deallocate(); headers.deallocate(); controls?.deallocate() }

    /// Copies a reply and its destination in; sends what is queued first when either is full.
    /// - Parameter from: the local address to send from (the query's destination); family 0 or no
    ///   source room: as the kernel routes it.
    /// - Parameter queriedAt: for dnstap, when the client's query arrived (epoch seconds; 0: not known).
    func queue(_ bytes: [UInt8], to destination: UnsafePointer<sockaddr_storage>, length: socklen_t, from local: dnsgate_local, fd: CInt,
               queriedAt: Double = 0) {
        if queued == count || arenaUsed + bytes.count > Self.arenaSize { send(fd) }
        if let dnstap { dnstap.message(tapKind, bytes, peer: destination, overTCP: false, queriedAt: queriedAt) }
        UnsafeMutableRawPointer(destinations + queued).copyMemory(from: destination, byteCount: Int(length))
        let at = arena + arenaUsed
        bytes.withUnsafeBytes { at.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        arenaUsed += bytes.count
        iov[queued] = iovec(iov_base: at, iov_len: bytes.count)
        headers[queued].msg_hdr = msghdr(msg_name: UnsafeMutableRawPointer(destinations + queued), msg_namelen: length,
                                         msg_iov: iov + queued, msg_iovlen: 1, msg_control: nil, msg_controllen: 0, msg_flags: 0)
        if let controls, local.family != 0 {
            withUnsafePointer(to: local) { dnsgate_pktinfo_write(&headers[queued].msg_hdr, controls + queued * Int(DNSGATE_PKTINFO_SPACE), $0) }
        }
        queued += 1
    }

    /// Sends every queued reply. One larger than the interface MTU, which a listener's socket does not
    /// fragment, goes again with fragmentation allowed. A reply the kernel refuses otherwise (a
    /// vanished route, say) is skipped: the client retries, as it would after a lost datagram.
    func send(_ fd: CInt) {
        var sent = 0
        while sent < queued {
            let r = Int(dnsgate_sendmmsg(fd, headers + sent, UInt32(queued - sent)))
            if r > 0 { sent += r } else if r < 0 && errno == EINTR { continue } else {
                // The first unsent reply failed; the ones after it have not been tried.
                if r < 0 && errno == EMSGSIZE { _ = dnsgate_send_fragmentable(fd, &headers[sent].msg_hdr) }
                sent += 1
            }
        }
        queued = 0
        arenaUsed = 0
    }
}
