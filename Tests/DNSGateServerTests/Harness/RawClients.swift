import Foundation

/// Hand-built queries for cases dig will not send (two questions, odd opcodes, raw label bytes).
enum RawQuery {
    static func make(id: UInt16, name: String, type: UInt16 = 1, qclass: UInt16 = 1, opcode: UInt8 = 0,
                     qdcount: UInt16 = 1, extraQuestion: Bool = false, edns: Bool = false) -> [UInt8] {
        make(id: id, wireName: encode(name), type: type, qclass: qclass, opcode: opcode, qdcount: qdcount,
             extraQuestion: extraQuestion, edns: edns)
    }

    static func make(id: UInt16, wireName: [UInt8], type: UInt16 = 1, qclass: UInt16 = 1, opcode: UInt8 = 0,
                     qdcount: UInt16 = 1, extraQuestion: Bool = false, edns: Bool = false) -> [UInt8] {
        var m: [UInt8] = []
        func u16(_ v: UInt16) { m.append(UInt8(v >> 8)); m.append(UInt8(v & 0xFF)) }
        u16(id); u16(UInt16(opcode) << 11 | 0x0100); u16(qdcount); u16(0); u16(0); u16(edns ? 1 : 0)
        m += wireName; u16(type); u16(qclass)
        if extraQuestion { m += wireName; u16(type); u16(qclass) }
        if edns { m += [0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0] }
        return m
    }

    /// Plain dotted text to wire labels; no escapes (tests that need them build bytes directly).
    static func encode(_ name: String) -> [UInt8] {
        var out: [UInt8] = []
        for label in name.split(separator: ".") { out.append(UInt8(label.utf8.count)); out += Array(label.utf8) }
        return out + [0]
    }
}

extension Array where Element == UInt8 {
    func u16(_ o: Int) -> UInt16 { UInt16(self[o]) << 8 | UInt16(self[o + 1]) }
}

enum UDPClient {
    /// Sends one datagram to 127.0.0.1:port and returns the first reply, or nil after `timeout`.
    static func exchange(port: Int, _ query: [UInt8], timeout: Double = 2) throws -> [UInt8]? {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = loopback(port)
        let sent = query.withUnsafeBytes { b in
            withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, b.baseAddress, b.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
        guard sent == query.count else { return nil }
        var buf = [UInt8](repeating: 0, count: 65535)
        let n = recv(fd, &buf, buf.count, 0)
        return n > 0 ? Array(buf[0..<n]) : nil
    }
}

extension UDPClient {
    /// Sends every query from one socket in batches of `batch`, draining replies between batches.
    /// Returns the number of replies received. Paced so the loopback socket buffers never overflow.
    @discardableResult
    static func burst(host: String = "127.0.0.1", port: Int, _ queries: [[UInt8]], batch: Int = 50, drainMs: Int = 30,
                      finalDrainMs: Int = 300) -> Int {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var addr = loopback(port, host: host)
        var replies = 0
        var buf = [UInt8](repeating: 0, count: 65535)
        func drain(untilMs: Int) {
            let end = Date().addingTimeInterval(Double(untilMs) / 1000)
            while Date() < end {
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                if poll(&p, 1, 5) > 0 { if recv(fd, &buf, buf.count, 0) > 0 { replies += 1 } }
            }
        }
        for chunk in stride(from: 0, to: queries.count, by: batch) {
            for q in queries[chunk..<min(chunk + batch, queries.count)] {
                _ = q.withUnsafeBytes { b in
                    withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(fd, b.baseAddress, b.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
                }
            }
            drain(untilMs: drainMs)
        }
        drain(untilMs: finalDrainMs)
        return replies
    }
}

enum TCPClient {
    /// Writes every query framed (RFC 1035 §4.2.2) in one go, then reads replies until one per query
    /// has arrived, the server closes, or `timeout` passes. With `halfClose`, shuts down the sending
    /// side after the queries, as some clients do.
    /// Writes `queries` framed in one go, then `trailing` as it is (a partial frame, say), reads replies.
    static func pipelined(port: Int, queries: [[UInt8]], trailing: [UInt8] = [], timeout: Double = 5, halfClose: Bool = false) throws -> [[UInt8]] {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = loopback(port)
        let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard ok == 0 else { return [] }
        var out: [UInt8] = []
        for q in queries { out += [UInt8(q.count >> 8), UInt8(q.count & 0xFF)] + q }
        out += trailing
        _ = out.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        if halfClose { shutdown(fd, Int32(SHUT_WR)) }
        var stream: [UInt8] = []
        var replies: [[UInt8]] = []
        var buf = [UInt8](repeating: 0, count: 65535)
        let deadline = Date().addingTimeInterval(timeout)
        while replies.count < queries.count && Date() < deadline {
            let n = recv(fd, &buf, buf.count, 0)
            if n <= 0 { break }
            stream += buf[0..<n]
            while stream.count >= 2 {
                let len = Int(stream.u16(0))
                guard stream.count >= 2 + len else { break }
                replies.append(Array(stream[2..<(2 + len)]))
                stream.removeFirst(2 + len)
            }
        }
        return replies
    }
}

/// An IPv4 loopback address (127.0.0.0/8, as the networking rule requires) and port.
private func loopback(_ port: Int, host: String = "127.0.0.1") -> sockaddr_in {
    precondition(host.hasPrefix("127."), "tests send only to loopback: \(host)")
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr.s_addr = inet_addr(host)
    return addr
}

/// One stream connection to a loopback TCP port or a Unix socket, driven by hand: for clients that
/// send what no real client would (half a request, a pipeline never read, an endless line).
final class StreamSocket {
    let fd: Int32

    /// - Parameter buffers: the socket's send and receive buffer sizes, set before it connects (the
    ///   receive window is fixed then): small ones make a client whose reads and writes the peer's
    ///   flow control shows at once.
    init?(tcpPort port: Int, buffers: Int32? = nil) {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        if var size = buffers {
            for option in [SO_SNDBUF, SO_RCVBUF] { setsockopt(fd, SOL_SOCKET, option, &size, socklen_t(MemoryLayout<Int32>.size)) }
        }
        var addr = loopback(port)
        let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if ok != 0 { close(fd); return nil }
    }

    init?(unixPath path: String) {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { close(fd); return nil }
        withUnsafeMutableBytes(of: &addr.sun_path) { for (i, b) in bytes.enumerated() { $0[i] = b } }
        let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        if ok != 0 { close(fd); return nil }
    }

    deinit { close(fd) }

    /// Writes as much of `bytes` as the peer takes within `timeout`; the count written. A closed or
    /// reset connection ends it early (no SIGPIPE).
    @discardableResult
    func send(_ bytes: [UInt8], timeout: Double = 2) -> Int {
        var sent = 0
        let deadline = Date().addingTimeInterval(timeout)
        while sent < bytes.count && Date() < deadline {
            var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            guard poll(&p, 1, 50) > 0 else { continue }
            // Without waiting: a blocking send of more than the socket takes would outlast `timeout`.
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { continue }
            if n <= 0 { break }
            sent += n
        }
        return sent
    }

    /// Reads until the peer closes (or resets) or `timeout` passes: what arrived, and whether it closed.
    func readUntilClosed(timeout: Double) -> (bytes: [UInt8], closed: Bool) {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 50) > 0 else { continue }
            let n = recv(fd, &buf, buf.count, 0)
            if n <= 0 { return (out, true) }
            out += buf[0..<n]
        }
        return (out, false)
    }
}
