import Foundation
import XCTest

/// A real dnstap collector: `fstrm_capture` (fstrm-bin) on a Unix socket or a loopback TCP port,
/// writing what it receives to a file that `dnstap-ldns` (dnstap-ldns) reads back. Stopped by PID.
final class DnstapCollector {
    let output: String
    private let daemon: Daemon

    /// - Parameters:
    ///   - socket: a Unix socket path, or nil to listen on 127.0.0.1:`port`.
    ///   - output: the capture file.
    init(socket: String? = nil, port: Int? = nil, output: String, logFile: URL) throws {
        try requireTool("fstrm_capture")
        try requireTool("dnstap-ldns")
        self.output = output
        var args = ["-t", "protobuf:dnstap.Dnstap", "-w", output]
        if let socket { args += ["-u", socket] } else { args += ["-a", "127.0.0.1", "-p", "\(port ?? 0)"] }
        daemon = try Daemon("fstrm_capture", "/usr/bin/fstrm_capture", args, logFile: logFile)
        guard daemon.waitForLog("opened output file", timeout: 5) else {
            daemon.stop()
            throw XCTSkip("fstrm_capture did not start: \(daemon.log)")
        }
    }

    var log: String { daemon.log }

    /// Stops the collector (it closes its file) and reads the file back with `dnstap-ldns -y`.
    func stopAndRead() throws -> [TapMessage] {
        daemon.stop()
        let r = try runCommand("/usr/bin/dnstap-ldns", ["-y", "-r", output])
        XCTAssertEqual(r.status, 0, r.stderr)
        return r.stdout.components(separatedBy: "\n---\n").map(TapMessage.init).filter { !$0.type.isEmpty }
    }

    deinit { daemon.stop() }
}

/// One dnstap message as `dnstap-ldns -y` prints it, with the fields the tests look at.
struct TapMessage {
    let text: String
    let identity: String
    let type: String        // CLIENT_QUERY, CLIENT_RESPONSE, FORWARDER_QUERY, FORWARDER_RESPONSE
    let proto: String       // UDP, TCP
    let address: String
    let port: String
    /// The upstream's, in a forwarder message.
    let responseAddress: String
    let responsePort: String
    /// The DNS message as dnstap-ldns decoded it (ldns's text form).
    let dns: String

    init(_ text: String) {
        self.text = text
        func field(_ key: String) -> String {
            guard let line = text.split(separator: "\n").first(where: { $0.trimmingCharacters(in: .whitespaces).hasPrefix(key + ": ") }) else { return "" }
            return line.trimmingCharacters(in: .whitespaces).dropFirst(key.count + 2).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        }
        identity = field("identity")
        let inner = text.components(separatedBy: "message:\n").dropFirst().joined(separator: "message:\n")
        type = inner.split(separator: "\n").first.map { String($0.trimmingCharacters(in: .whitespaces).dropFirst("type: ".count)) } ?? ""
        proto = field("socket_protocol")
        address = field("query_address")
        port = field("query_port")
        responseAddress = field("response_address")
        responsePort = field("response_port")
        dns = text.components(separatedBy: "_message: |\n").dropFirst().first ?? ""
    }

    var isQuery: Bool { type == "CLIENT_QUERY" }
    /// The message's ID, from ldns's header line.
    var id: String? {
        guard let r = dns.range(of: ", id: ") else { return nil }
        return String(dns[r.upperBound...].prefix(while: \.isNumber))
    }
}

/// A Frame Streams "collector" on a Unix socket that misbehaves as a test asks: the cases QA pass 7
/// found stalling dnsgate's dnstap thread or flooding its log. Stops on `stop()` or after `lifetime`.
final class HostileCollector: @unchecked Sendable {   // `stopped` is guarded by `lock`
    enum Behaviour {
        /// Listens with no room in its backlog and never accepts (a hung or stopped collector).
        case neverAccepts
        /// Accepts, then sends its ACCEPT one octet every 1.5 s.
        case tricklesItsHandshake
        /// Completes the handshake, then closes at once; again for every connection.
        case closesAfterHandshake
    }

    let path: String
    private let fd: Int32
    private let lock = NSLock()
    private var stopped = false
    private let done = DispatchSemaphore(value: 0)

    init(_ behaviour: Behaviour, path: String, lifetime: Double = 30) {
        self.path = path
        unlink(path)
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var sa = sockaddr_un()
        sa.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &sa.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        _ = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        listen(fd, 0)
        var wait = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        let end = Date().addingTimeInterval(lifetime)
        Thread { [self] in
            while lock.withLock({ !stopped }) && Date() < end {
                if behaviour == .neverAccepts { usleep(100_000); continue }
                let c = accept(fd, nil, nil)
                guard c >= 0 else { continue }
                serve(c, behaviour, until: end)
                close(c)
            }
            done.signal()
        }.start()
    }

    private func serve(_ c: Int32, _ behaviour: Behaviour, until end: Date) {
        var buf = [UInt8](repeating: 0, count: 512)
        _ = recv(c, &buf, buf.count, 0)   // READY
        let accept = [0, 0, 0, 0, 0, 0, 0, 34, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 22] + Array("protobuf:dnstap.Dnstap".utf8)
        switch behaviour {
        case .neverAccepts:
            return
        case .tricklesItsHandshake:
            for b in accept where lock.withLock({ !stopped }) && Date() < end {
                var octet = b
                guard send(c, &octet, 1, Int32(MSG_NOSIGNAL)) == 1 else { return }
                usleep(1_500_000)
            }
        case .closesAfterHandshake:
            _ = accept.withUnsafeBytes { send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            _ = recv(c, &buf, buf.count, 0)   // START
        }
    }

    func stop() {
        let first = lock.withLock { () -> Bool in defer { stopped = true }; return !stopped }
        guard first else { return }
        done.wait()
        close(fd)
        unlink(path)
    }
    deinit { stop() }
}
