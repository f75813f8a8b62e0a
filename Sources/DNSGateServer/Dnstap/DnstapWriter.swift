import DNSGateCore
import Dispatch
import Foundation
import Logging
import NIOCore
import Synchronization

/// Sends every client query and every reply, verbatim, as dnstap (`CLIENT_QUERY`, `CLIENT_RESPONSE`),
/// and every query dnsgate sent upstream with the answer it accepted (`FORWARDER_QUERY`,
/// `FORWARDER_RESPONSE`), to a collector on a Unix or TCP socket: `fstrm_capture`, dnscollector,
/// Vector, whatever already takes BIND's, unbound's or CoreDNS's dnstap. The forwarder messages are
/// the operator's own evidence of what left the machine.
///
/// The query path only copies the message and the peer's address into a bounded queue; one
/// background thread encodes (swift-protobuf), frames (Frame Streams, bidirectional handshake) and
/// writes. While no collector is connected the queue keeps what it holds, so messages from while a
/// collector restarts reach the new one (what the old one had not read is lost with it); past
/// `capacity` waiting messages new ones are counted as dropped, never waited for. The thread tries
/// to connect again every second and says in the log when it loses or finds the collector.
public final class DnstapWriter: Sendable {
    public enum Destination: Sendable, Equatable, CustomStringConvertible {
        case unix(String)
        case tcp(HostPort)
        public var description: String {
            switch self { case .unix(let p): return p; case .tcp(let hp): return hp.description }
        }
    }

    enum Kind: Sendable {
        case clientQuery, clientResponse, forwarderQuery, forwarderResponse
        var isResponse: Bool { self == .clientResponse || self == .forwarderResponse }
        var isForwarder: Bool { self == .forwarderQuery || self == .forwarderResponse }
    }

    struct Event: Sendable {
        var kind: Kind
        var overTCP: Bool
        /// The client's (or, for a forwarder message, the upstream's) address: 4 or 16 octets; an
        /// IPv4-mapped IPv6 address is written as the IPv4 address it is.
        var address: [UInt8]
        var port: UInt16
        var seconds: UInt64
        var nanoseconds: UInt32
        /// For a response, when its query arrived (epoch seconds; 0: not known): collectors take the
        /// latency from the two times, as BIND's and unbound's responses carry both.
        var queriedAt: Double
        var message: [UInt8]
    }

    static let contentType = "protobuf:dnstap.Dnstap"
    /// Messages waiting, at most: by count, and by their bytes (a TCP reply can be 64 KB).
    static let capacity = 100_000
    public static let maxQueuedBytes = 64 << 20
    /// Frames written to the socket in one go, at most (about): what a batch costs in memory beyond
    /// the queue.
    static let chunkBytes = 256 << 10

    let destination: Destination
    private let identity: Data
    private let version = Data("dnsgate".utf8)
    private let pending = BoundedBatch<Event>(capacity: DnstapWriter.capacity)
    private let signal = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private let stopping = Atomic<Bool>(false)
    private let logger: Logger
    /// Messages written to a collector.
    public let sent = AtomicCounter()
    /// Messages lost: the queue was full (by count or bytes), or the connection failed while they
    /// were being written. Messages written to the socket that the collector never read (it
    /// stopped, or closed the connection) are not known, so not counted: Frame Streams has no
    /// acknowledgement.
    public var dropped: Int { pending.dropped.value + lostInWrite.value }
    private let lostInWrite = AtomicCounter()
    /// Bytes of the messages waiting in `pending`.
    private let queuedBytes = AtomicCounter()
    private let isConnected = Atomic<Bool>(false)
    public var connected: Bool { isConnected.load(ordering: .relaxed) }

    /// Messages waiting may take this many bytes (tests lower it).
    private let maxQueuedBytes: Int

    public init(destination: Destination, identity: String, logger: Logger, maxQueuedBytes: Int = DnstapWriter.maxQueuedBytes) {
        self.destination = destination; self.maxQueuedBytes = maxQueuedBytes
        self.identity = Data(identity.utf8)
        self.logger = logger
        let t = Thread { [self] in
            self.writerLoop()
            self.finished.signal()
        }
        t.name = "dnsgate-dnstap"
        t.start()
    }

    /// A query as received from `peer` (over UDP, the datagram) at `time` (epoch seconds).
    func clientQuery(_ message: UnsafeRawBufferPointer, from peer: UnsafePointer<sockaddr_storage>, overTCP: Bool, at time: Double) {
        enqueue(.clientQuery, overTCP: overTCP, Array(message), peer: UnsafeRawPointer(peer), at: time)
    }

    /// A reply as sent to `peer` now, to a query that arrived at `queriedAt` (0: not known); or,
    /// `kind` `.forwarderQuery`, a query as sent to the upstream `peer`.
    func message(_ kind: Kind, _ message: [UInt8], peer: UnsafePointer<sockaddr_storage>, overTCP: Bool, queriedAt: Double = 0) {
        enqueue(kind, overTCP: overTCP, message, peer: UnsafeRawPointer(peer), queriedAt: queriedAt)
    }

    /// The same, with NIO's address (a TCP connection's peer, an upstream); `at`: when it happened,
    /// if not now.
    func message(_ kind: Kind, _ message: [UInt8], peer: SocketAddress, overTCP: Bool, at time: Double? = nil, queriedAt: Double = 0) {
        peer.withSockAddr { sa, _ in enqueue(kind, overTCP: overTCP, message, peer: UnsafeRawPointer(sa), at: time, queriedAt: queriedAt) }
    }

    private func enqueue(_ kind: Kind, overTCP: Bool, _ message: [UInt8], peer: UnsafeRawPointer, at time: Double? = nil, queriedAt: Double = 0) {
        guard let (address, port) = Self.address(peer) else { return }
        // A reply often shares the listener's reusable buffer (1 KB and up for a 50-octet answer):
        // held as it is, each queued reply pinned that much (a run at full load peaked at 655 MB).
        let message = message.capacity - message.count > 64 ? message.withUnsafeBufferPointer { Array($0) } : message
        let now = time ?? WallClock.now()
        let seconds = max(0, now.rounded(.down))
        let e = Event(kind: kind, overTCP: overTCP, address: address, port: port, seconds: UInt64(seconds),
                      nanoseconds: UInt32(min(999_999_999, max(0, (now - seconds) * 1e9))), queriedAt: queriedAt, message: message)
        // Two listeners may both pass this test at the edge: the budget is exceeded by a message or two.
        guard queuedBytes.value + message.capacity <= maxQueuedBytes else { lostInWrite.add(1); return }
        let (accepted, wasEmpty) = pending.push(e)
        if accepted { queuedBytes.add(message.capacity) }
        if wasEmpty { signal.signal() }
    }

    /// The address octets and port of an IPv4 or IPv6 socket address; nil for any other family.
    static func address(_ sa: UnsafeRawPointer) -> ([UInt8], UInt16)? {
        switch CInt(sa.load(as: sockaddr.self).sa_family) {
        case AF_INET:
            let a = sa.load(as: sockaddr_in.self)
            return (withUnsafeBytes(of: a.sin_addr) { Array($0) }, UInt16(bigEndian: a.sin_port))
        case AF_INET6:
            let a = sa.load(as: sockaddr_in6.self)
            let octets = withUnsafeBytes(of: a.sin6_addr) { Array($0) }
            let mapped = octets[0..<10].allSatisfy { $0 == 0 } && octets[10] == 0xFF && octets[11] == 0xFF
            return (mapped ? Array(octets[12...]) : octets, UInt16(bigEndian: a.sin6_port))
        default:
            return nil
        }
    }

    /// The protobuf payload of one event.
    func payload(_ e: Event) -> [UInt8] {
        var m = Dnstap_Message()
        switch e.kind {
        case .clientQuery: m.type = .clientQuery
        case .clientResponse: m.type = .clientResponse
        case .forwarderQuery: m.type = .forwarderQuery
        case .forwarderResponse: m.type = .forwarderResponse
        }
        m.socketFamily = e.address.count == 4 ? .inet : .inet6
        m.socketProtocol = e.overTCP ? .tcp : .udp
        // The client asked (query address); an upstream answered (response address).
        if e.kind.isForwarder {
            m.responseAddress = Data(e.address); m.responsePort = UInt32(e.port)
        } else {
            m.queryAddress = Data(e.address); m.queryPort = UInt32(e.port)
        }
        if e.kind.isResponse {
            m.responseTimeSec = e.seconds; m.responseTimeNsec = e.nanoseconds; m.responseMessage = Data(e.message)
            if e.queriedAt > 0 {
                let seconds = e.queriedAt.rounded(.down)
                m.queryTimeSec = UInt64(seconds); m.queryTimeNsec = UInt32(min(999_999_999, (e.queriedAt - seconds) * 1e9))
            }
        } else {
            m.queryTimeSec = e.seconds; m.queryTimeNsec = e.nanoseconds; m.queryMessage = Data(e.message)
        }
        var d = Dnstap_Dnstap()
        d.identity = identity
        d.version = version
        d.type = .message
        d.message = m
        // Serialising a message whose required fields are set cannot fail.
        return (try? d.serializedBytes()) ?? []
    }

    /// Sends what is still queued, then ends the stream (STOP, the collector's FINISH); bounded.
    public func stop() {
        if stopping.exchange(true, ordering: .relaxed) { return }
        signal.signal()
        _ = finished.wait(timeout: .now() + 5)
    }

    // MARK: the writer thread

    /// What the log last said about the collector, so that an outage, or a collector that keeps
    /// closing its connections, is said once, not at every attempt.
    private enum Said: Equatable {
        case nothing
        case unreachable(String)
        /// Closed, or stopped reading; said again only after a connection that lasted.
        case closed
    }

    /// A connection delivering for this long is a working collector again, and its next problem is news.
    static let stableSeconds = 10.0

    private func writerLoop() {
        BackgroundThread.lowerPriority()
        var connection: FrameStreamConnection?
        var connectedAt = 0.0
        var nextAttempt = 0.0
        var said = Said.nothing
        var buffer: [Event] = []
        func lost(_ why: String, _ n: Int) {
            connection = nil
            isConnected.store(false, ordering: .relaxed)
            nextAttempt = WallClock.now() + 1
            if n > 0 { lostInWrite.add(n) }
            if said != .closed {
                logger.warning("\(why); connecting again", metadata: ["concern": "log", "dnstap": "\(destination)", "lost": "\(n)"])
                said = .closed
            }
        }
        while true {
            let stop = stopping.load(ordering: .relaxed)
            if connection == nil && WallClock.now() >= nextAttempt {
                do {
                    connection = try FrameStreamConnection(destination, contentType: Self.contentType)
                    connectedAt = WallClock.now()
                    isConnected.store(true, ordering: .relaxed)
                    if said != .closed {
                        logger.notice("dnstap collector connected", metadata: ["concern": "log", "dnstap": "\(destination)"])
                        said = .nothing
                    }
                } catch {
                    nextAttempt = WallClock.now() + 1
                    if said != .unreachable("\(error)") {
                        logger.warning("dnstap collector not reachable; messages wait (up to \(Self.capacity)) and dnsgate tries again every second",
                                       metadata: ["concern": "log", "dnstap": "\(destination)", "error": "\(error)"])
                        said = .unreachable("\(error)")
                    }
                }
            }
            // Closed by the collector (a restart): found before a batch is written into it and lost.
            if let c = connection, !c.isOpen { lost("dnstap collector closed the connection; messages wait", 0) }
            if let c = connection {
                pending.swapPending(&buffer)
                if !buffer.isEmpty {
                    queuedBytes.add(-buffer.reduce(0) { $0 + $1.message.capacity })
                    let written = write(buffer, to: c)
                    sent.add(written)
                    if written < buffer.count {
                        lost("dnstap collector went away or stopped reading; messages not written are lost", buffer.count - written)
                    } else if said == .closed && WallClock.now() - connectedAt >= Self.stableSeconds {
                        logger.notice("dnstap collector connected", metadata: ["concern": "log", "dnstap": "\(destination)"])
                        said = .nothing
                    }
                    buffer.removeAll(keepingCapacity: true)
                }
            }
            if stop {
                // No new connection attempt here: shutting down must not wait on a collector that just failed.
                connection?.finish()
                isConnected.store(false, ordering: .relaxed)
                let unsent = pending.takeAll().count
                if unsent > 0 {
                    lostInWrite.add(unsent)
                    logger.warning("stopping without a dnstap collector; \(unsent) messages lost", metadata: ["concern": "log", "dnstap": "\(destination)"])
                }
                // The totals, said whatever the log was quiet about (a collector that kept failing).
                logger.info("dnstap stopped", metadata: ["concern": "log", "dnstap": "\(destination)", "sent": "\(sent.value)", "dropped": "\(dropped)"])
                return
            }
            _ = signal.wait(timeout: .now() + 1)
        }
    }

    /// Encodes and writes `batch` a chunk at a time; returns how many messages were written before a
    /// write failed (all of them when none did).
    private func write(_ batch: [Event], to c: FrameStreamConnection) -> Int {
        var out: [UInt8] = []
        out.reserveCapacity(Self.chunkBytes + 4096)
        var written = 0, inChunk = 0
        for e in batch {
            FrameStreams.appendData(payload(e), to: &out)
            inChunk += 1
            if out.count >= Self.chunkBytes {
                if c.write(out) != nil { return written }
                written += inChunk; inChunk = 0
                out.removeAll(keepingCapacity: true)
            }
        }
        if !out.isEmpty {
            if c.write(out) != nil { return written }
            written += inChunk
        }
        return written
    }
}

/// One Frame Streams connection to a collector, as a writer: handshake on open, data frames, STOP and
/// FINISH on close. On the dnstap thread only; every step has a deadline (`timeout`) for the whole
/// step, not per system call, so a collector that stops accepting, reading or answering, or trickles
/// its handshake a byte at a time, costs messages, never a stuck thread or a slow shutdown.
final class FrameStreamConnection {
    struct Failure: Error, CustomStringConvertible { let description: String }

    private let fd: CInt
    static let timeout: UInt64 = 2_000_000_000   // nanoseconds

    init(_ destination: DnstapWriter.Destination, contentType: String) throws {
        let deadline = MonotonicClock.nanoseconds() + Self.timeout
        var storage = sockaddr_storage()
        var length: Int
        switch destination {
        case .unix(let path):
            var sa = sockaddr_un()
            sa.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            guard bytes.count < MemoryLayout.size(ofValue: sa.sun_path) else { fd = -1; throw Failure(description: "socket path too long") }
            withUnsafeMutableBytes(of: &sa.sun_path) { $0.copyBytes(from: bytes) }
            length = MemoryLayout<sockaddr_un>.size
            withUnsafeBytes(of: sa) { s in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: s) } }
        case .tcp(let hp):
            guard let address = try? SocketAddress(ipAddress: hp.host, port: hp.port) else { fd = -1; throw Failure(description: "\(hp) is not an IP address") }
            length = 0
            address.withSockAddr { sa, n in
                withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: UnsafeRawBufferPointer(start: sa, count: n)) }
                length = n
            }
        }
        // Non-blocking from the start: a blocking connect to a Unix socket whose listener does not
        // accept (its backlog full: a hung or stopped collector) waited for ever (QA pass 7).
        fd = socket(CInt(storage.ss_family), Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        // Once `fd` is set the object is whole: a throw from here on closes it in `deinit`.
        let r = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(length)) } }
        if r != 0 {
            let e = errno
            // A Unix socket refuses at once when its backlog is full (EAGAIN); TCP connects in the background.
            guard e == EINPROGRESS else {
                throw Failure(description: "connect \(destination): \(e == EAGAIN ? "the collector is not accepting connections" : String(cString: strerror(e)))")
            }
            guard wait(POLLOUT, until: deadline) else { throw Failure(description: "connect \(destination): timed out") }
            var soError: CInt = 0
            var n = socklen_t(MemoryLayout<CInt>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &n)
            guard soError == 0 else { throw Failure(description: "connect \(destination): \(String(cString: strerror(soError)))") }
        }
        if let e = write(FrameStreams.control(.ready, contentType: contentType), until: deadline) { throw e }
        let accept = try readControl(until: deadline)
        guard accept.type == .accept, accept.contentTypes.contains(contentType) else {
            throw Failure(description: "the collector did not accept \(contentType)")
        }
        if let e = write(FrameStreams.control(.start, contentType: contentType), until: deadline) { throw e }
    }

    /// Whether the collector still has the connection open. After the handshake a reader sends
    /// nothing until FINISH, so anything readable (FINISH, end of file, an error) means it is done.
    var isOpen: Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, 0) == 0
    }

    /// Writes all of `bytes` within the timeout; the reason it could not otherwise (the connection
    /// is then unusable: a frame may be cut).
    func write(_ bytes: [UInt8]) -> Failure? { write(bytes, until: MonotonicClock.nanoseconds() + Self.timeout) }

    private func write(_ bytes: [UInt8], until deadline: UInt64) -> Failure? {
        bytes.withUnsafeBytes { b in
            var at = 0
            while at < b.count {
                let n = Glibc.send(fd, b.baseAddress! + at, b.count - at, Int32(MSG_NOSIGNAL))
                if n > 0 { at += n; continue }
                if n < 0 && errno == EINTR { continue }
                if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                    if wait(POLLOUT, until: deadline) { continue }
                    return Failure(description: "the collector did not read in time")
                }
                return Failure(description: n < 0 ? String(cString: strerror(errno)) : "connection closed")
            }
            return nil
        }
    }

    /// Waits until `fd` is ready for `events` or the deadline passes.
    private func wait(_ events: Int32, until deadline: UInt64) -> Bool {
        while true {
            let now = MonotonicClock.nanoseconds()
            guard now < deadline else { return false }
            var p = pollfd(fd: fd, events: Int16(events), revents: 0)
            let r = poll(&p, 1, CInt(min(Int((deadline - now) / 1_000_000) + 1, Int(CInt.max))))
            if r > 0 { return true }
            if r < 0 && errno != EINTR { return false }
        }
    }

    private func readExactly(_ n: Int, until deadline: UInt64) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: n)
        var at = 0
        while at < n {
            let r = out.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + at, n - at, 0) }
            if r > 0 { at += r; continue }
            if r < 0 && errno == EINTR { continue }
            if r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                if wait(POLLIN, until: deadline) { continue }
                throw Failure(description: "no handshake from the collector within \(Self.timeout / 1_000_000_000) s")
            }
            throw Failure(description: r == 0 ? "the collector closed the connection" : "no handshake from the collector: \(String(cString: strerror(errno)))")
        }
        return out
    }

    private func readControl(until deadline: UInt64) throws -> FrameStreams.ControlFrame {
        guard let n = FrameStreams.controlLength(header: try readExactly(8, until: deadline)),
              let frame = FrameStreams.parseControl(try readExactly(n, until: deadline)) else {
            throw Failure(description: "the collector does not speak Frame Streams")
        }
        return frame
    }

    /// Ends the stream: STOP, then the collector's FINISH, waited for half a second at most.
    func finish() {
        let deadline = MonotonicClock.nanoseconds() + Self.timeout / 4
        if write(FrameStreams.control(.stop), until: deadline) == nil { _ = try? readControl(until: deadline) }
    }

    /// A connection given up (dropped, or finished) closes its socket.
    deinit { if fd >= 0 { Glibc.close(fd) } }
}
