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
