import Foundation

/// An upstream on 127.0.0.1, UDP and TCP on one port, whose replies a test writes: `reply` gets the
/// query's ID, its question section and whether it came over TCP, and returns the reply's flags
/// word, its answer records (after the question, counted as answers) and its authority records, or
/// nil for no reply. Counts what it was asked. Threads stop on `stop()` or after `lifetime` seconds.
final class ScriptedUpstream: @unchecked Sendable {   // the counts are guarded by `lock`
    struct Reply {
        var flags: UInt16; var answers: [[UInt8]] = []; var authority: [[UInt8]] = []
        /// Sent instead of the query's ID.
        var id: UInt16? = nil
        /// Over TCP, keep the connection open after the reply until the client closes it (at most
        /// ten seconds), as a server that pipelines would.
        var holdOpen = false
        /// Send no question section (QDCOUNT 0), as some servers do with an error.
        var noQuestion = false
        /// Over TCP, send the first half of the framed reply, then close.
        var half = false
        /// End with an OPT record (payload 4096), as an upstream that knows EDNS does.
        var opt = false
    }
    let port: Int
    var address: String { "127.0.0.1:\(port)" }
    private let udp: Int32, tcp: Int32
    private let lock = NSLock()
    private var counts = (udp: 0, tcp: 0)
    var asked: (udp: Int, tcp: Int) { lock.withLock { counts } }
    private let stopping = NSLock(), done = DispatchSemaphore(value: 0)
    private var stopped = false
    private let reply: @Sendable (_ id: UInt16, _ question: [UInt8], _ overTCP: Bool, _ withOPT: Bool) -> Reply?

    convenience init(lifetime: Double = 30, reply: @escaping @Sendable (UInt16, [UInt8], Bool) -> Reply?) {
        self.init(lifetime: lifetime, ednsAware: { id, question, overTCP, _ in reply(id, question, overTCP) })
    }

    /// - Parameter ednsAware: as `reply`, also told whether the query carried an additional record (OPT).
    init(lifetime: Double = 30, ednsAware reply: @escaping @Sendable (UInt16, [UInt8], Bool, Bool) -> Reply?) {
        self.reply = reply
        port = freePort()
        udp = boundUDPSocket(host: "127.0.0.1", port: port)
        tcp = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(tcp, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        _ = bindIPv4(tcp, host: "127.0.0.1", port: port)
        listen(tcp, 16)
        // Short receive timeouts: each loop looks at `stopped` at least every 200 ms.
        var wait = timeval(tv_sec: 0, tv_usec: 200_000)
        for fd in [udp, tcp] { setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size)) }
        let end = Date().addingTimeInterval(lifetime)
        Thread { [self] in while running(end) { serveUDP() }; done.signal() }.start()
        Thread { [self] in while running(end) { serveTCP() }; done.signal() }.start()
    }

    func stop() {
        let first = stopping.withLock { () -> Bool in defer { stopped = true }; return !stopped }
        guard first else { return }
        done.wait(); done.wait()
        close(udp); close(tcp)
    }
    deinit { stop() }

    private func running(_ end: Date) -> Bool { stopping.withLock { !stopped } && Date() < end }

    private func serveUDP() {
        guard let (buf, source, fromLen) = receiveDatagram(udp) else { return }
        var from = source
        lock.withLock { counts.udp += 1 }
        let (id, question) = idAndQuestion(buf, buf.count)
        if let r = reply(id, question, false, buf.count > 11 && buf[11] > 0) { sendDatagram(Self.message(id, question, r), on: udp, to: &from, length: fromLen) }
    }

    private func serveTCP() {
        let conn = accept(tcp, nil, nil)
        guard conn >= 0 else { return }
        defer { close(conn) }
        var wait = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = recv(conn, &buf, buf.count, 0)
        guard n > 14 else { return }
        lock.withLock { counts.tcp += 1 }
        let query = Array(buf[2..<n])
        let (id, question) = idAndQuestion(query, query.count)
        guard let r = reply(id, question, true, query[11] > 0) else { return }
        let msg = Self.message(id, question, r)
        var framed = [UInt8(msg.count >> 8), UInt8(msg.count & 0xFF)] + msg
        if r.half { framed = Array(framed.prefix(framed.count / 2)) }
        _ = framed.withUnsafeBytes { send(conn, $0.baseAddress, $0.count, 0) }
        guard r.holdOpen else { return }
        wait.tv_sec = 10
        setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        while recv(conn, &buf, buf.count, 0) > 0 {}   // until the client closes, or the receive timeout
    }

    private static func message(_ id: UInt16, _ question: [UInt8], _ r: Reply) -> [UInt8] {
        func be16(_ v: Int) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }
        return be16(Int(r.id ?? id)) + be16(Int(r.flags)) + be16(r.noQuestion ? 0 : 1) + be16(r.answers.count) + be16(r.authority.count)
            + be16(r.opt ? 1 : 0) + (r.noQuestion ? [] : question) + r.answers.joined() + r.authority.joined()
            + (r.opt ? [0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0] : [])
    }

    /// An A record for the question's name (a pointer to it), TTL 60.
    static func addressRecord(_ last: UInt8) -> [UInt8] { [0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, last] }
}
