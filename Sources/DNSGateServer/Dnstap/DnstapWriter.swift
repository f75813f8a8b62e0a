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
        var message: [UInt8]
    }

    static let contentType = "protobuf:dnstap.Dnstap"
    static let capacity = 100_000

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
    /// Messages lost: the queue was full, or the connection failed while they were being written.
    public var dropped: Int { pending.dropped.value + lostInWrite.value }
    private let lostInWrite = AtomicCounter()
    private let isConnected = Atomic<Bool>(false)
    public var connected: Bool { isConnected.load(ordering: .relaxed) }

    public init(destination: Destination, identity: String, logger: Logger) {
        self.destination = destination
        self.identity = Data(identity.utf8)
        self.logger = logger
        let t = Thread { [self] in
            self.writerLoop()
            self.finished.signal()
        }
        t.name = "dnsgate-dnstap"
        t.start()
    }

    /// A query as received from `peer` (over UDP, the datagram).
    func clientQuery(_ message: UnsafeRawBufferPointer, from peer: UnsafePointer<sockaddr_storage>, overTCP: Bool) {
        enqueue(.clientQuery, overTCP: overTCP, Array(message), peer: UnsafeRawPointer(peer))
    }

    /// A reply as sent to `peer`; or, `kind` `.forwarderQuery`, a query as sent to the upstream `peer`.
    func message(_ kind: Kind, _ message: [UInt8], peer: UnsafePointer<sockaddr_storage>, overTCP: Bool) {
        enqueue(kind, overTCP: overTCP, message, peer: UnsafeRawPointer(peer))
    }

    /// The same, with NIO's address (a TCP connection's peer, an upstream).
    func message(_ kind: Kind, _ message: [UInt8], peer: SocketAddress, overTCP: Bool) {
        peer.withSockAddr { sa, _ in enqueue(kind, overTCP: overTCP, message, peer: UnsafeRawPointer(sa)) }
    }

    private func enqueue(_ kind: Kind, overTCP: Bool, _ message: [UInt8], peer: UnsafeRawPointer) {
        guard let (address, port) = Self.address(peer) else { return }
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let e = Event(kind: kind, overTCP: overTCP, address: address, port: port,
                      seconds: UInt64(max(0, ts.tv_sec)), nanoseconds: UInt32(ts.tv_nsec), message: message)
        if pending.push(e).wasEmpty { signal.signal() }
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

    private func writerLoop() {
        BackgroundThread.lowerPriority()
        var connection: FrameStreamConnection?
        var nextAttempt = 0.0
        var said: String?   // the last connection problem logged, so an outage is said once
        var buffer: [Event] = []
        while true {
            let stop = stopping.load(ordering: .relaxed)
            if connection == nil && (WallClock.now() >= nextAttempt || stop) {
                do {
                    connection = try FrameStreamConnection(destination, contentType: Self.contentType)
                    isConnected.store(true, ordering: .relaxed)
                    logger.notice("dnstap collector connected", metadata: ["concern": "log", "dnstap": "\(destination)"])
                    said = nil
                } catch {
                    nextAttempt = WallClock.now() + 1
                    if said != "\(error)" {
                        logger.warning("dnstap collector not reachable; messages wait (up to \(Self.capacity)) and dnsgate tries again every second",
                                       metadata: ["concern": "log", "dnstap": "\(destination)", "error": "\(error)"])
                        said = "\(error)"
                    }
                }
            }
            if let c = connection, !c.isOpen {
                // Closed by the collector (a restart): found before a batch is written into it and lost.
                connection = nil
                isConnected.store(false, ordering: .relaxed)
                nextAttempt = WallClock.now() + 1   // a collector that closes every connection costs a line a second
                logger.warning("dnstap collector closed the connection; messages wait, connecting again", metadata: ["concern": "log", "dnstap": "\(destination)"])
            }
            if let c = connection {
                pending.swapPending(&buffer)
                if !buffer.isEmpty {
                    var out: [UInt8] = []
                    for e in buffer { FrameStreams.appendData(payload(e), to: &out) }
                    if let error = c.write(out) {
                        lostInWrite.add(buffer.count)
                        connection = nil
                        isConnected.store(false, ordering: .relaxed)
                        nextAttempt = WallClock.now() + 1
                        logger.warning("dnstap collector went away; \(buffer.count) messages lost, connecting again",
                                       metadata: ["concern": "log", "dnstap": "\(destination)", "error": "\(error)"])
                        said = nil
                    } else {
                        sent.add(buffer.count)
                    }
                    buffer.removeAll(keepingCapacity: true)
                }
            }
            if stop {
                connection?.finish()
                isConnected.store(false, ordering: .relaxed)
                let unsent = pending.takeAll().count
                if unsent > 0 {
                    lostInWrite.add(unsent)
                    logger.warning("stopping without a dnstap collector; \(unsent) messages lost", metadata: ["concern": "log", "dnstap": "\(destination)"])
                }
                return
            }
            _ = signal.wait(timeout: .now() + 1)
        }
    }
}

/// One Frame Streams connection to a collector, as a writer: handshake on open, data frames, STOP and
/// FINISH on close. Blocking, with timeouts, on the dnstap thread only.
final class FrameStreamConnection {
    struct Failure: Error, CustomStringConvertible { let description: String }

    private let fd: CInt
    /// How long a write or the collector's handshake may block: a collector that stops reading costs
    /// messages (the queue fills), never a stuck thread.
    static let timeoutSeconds = 2

    init(_ destination: DnstapWriter.Destination, contentType: String) throws {
        switch destination {
        case .unix(let path):
            fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
            var sa = sockaddr_un()
            sa.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            guard bytes.count < MemoryLayout.size(ofValue: sa.sun_path) else { throw Failure(description: "socket path too long") }
            withUnsafeMutableBytes(of: &sa.sun_path) { $0.copyBytes(from: bytes) }
            try connect(&sa, "connect \(path)")
        case .tcp(let hp):
            guard let address = try? SocketAddress(ipAddress: hp.host, port: hp.port) else { throw Failure(description: "\(hp) is not an IP address") }
            fd = socket(CInt(address.protocol.rawValue), Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
            var storage = sockaddr_storage()
            address.withSockAddr { sa, n in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: UnsafeRawBufferPointer(start: sa, count: n)) } }
            try connect(&storage, "connect \(hp)")
        }
        var tv = timeval(tv_sec: Self.timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        // Once `fd` is set the object is whole: a throw from here on closes it in `deinit`.
        if let e = write(FrameStreams.control(.ready, contentType: contentType)) { throw e }
        let accept = try readControl()
        guard accept.type == .accept, accept.contentTypes.contains(contentType) else {
            throw Failure(description: "the collector did not accept \(contentType)")
        }
        if let e = write(FrameStreams.control(.start, contentType: contentType)) { throw e }
    }

    private func connect<A>(_ sa: inout A, _ what: String) throws {
        let r = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<A>.size)) } }
        guard r == 0 else { throw Failure(description: "\(what): \(String(cString: strerror(errno)))") }
    }

    /// Whether the collector still has the connection open. After the handshake a reader sends
    /// nothing until FINISH, so anything readable (FINISH, end of file, an error) means it is done.
    var isOpen: Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, 0) == 0
    }

    /// Writes all of `bytes`; the error that stopped it otherwise.
    func write(_ bytes: [UInt8]) -> Failure? {
        bytes.withUnsafeBytes { b in
            var at = 0
            while at < b.count {
                let n = Glibc.send(fd, b.baseAddress! + at, b.count - at, Int32(MSG_NOSIGNAL))
                if n > 0 { at += n; continue }
                if n < 0 && errno == EINTR { continue }
                return Failure(description: n < 0 ? String(cString: strerror(errno)) : "connection closed")
            }
            return nil
        }
    }

    private func readExactly(_ n: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: n)
        var at = 0
        while at < n {
            let r = out.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + at, n - at, 0) }
            if r > 0 { at += r; continue }
            if r < 0 && errno == EINTR { continue }
            throw Failure(description: r == 0 ? "the collector closed the connection" : "no handshake from the collector: \(String(cString: strerror(errno)))")
        }
        return out
    }

    private func readControl() throws -> FrameStreams.ControlFrame {
        guard let n = FrameStreams.controlLength(header: try readExactly(8)),
              let frame = FrameStreams.parseControl(try readExactly(n)) else {
            throw Failure(description: "the collector does not speak Frame Streams")
        }
        return frame
    }

    /// Ends the stream: STOP, then the collector's FINISH (not waited for past the timeout), close.
    func finish() {
        if write(FrameStreams.control(.stop)) == nil { _ = try? readControl() }
    }

    /// A connection given up (dropped, or finished) closes its socket.
    deinit { Glibc.close(fd) }
}
