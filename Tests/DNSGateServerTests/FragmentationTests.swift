import Foundation
import XCTest

/// UDP replies leave with Don't Fragment set and are never fragmented by the kernel's path MTU
/// guesses; one larger than the interface MTU (possible only with `max_udp_payload` raised above
/// it) must still reach the client, sent fragmented as before.
final class FragmentationTests: XCTestCase {
    /// In a namespace of the test's own whose loopback MTU is 1,300 octets: a 100-address answer
    /// (about 1,650 octets) to a client offering 4,096 comes back whole, not truncated and not lost.
    func testAReplyLargerThanTheInterfaceMTUStillArrives() throws {
        try RunnerTopology.requireNetns()
        let ns = "dgmtu\(getpid())"
        func ip(_ args: [String]) throws {
            let r = try runCommand("/usr/sbin/ip", args)
            XCTAssertEqual(r.status, 0, "ip \(args): \(r.stderr)")
        }
        try ip(["netns", "add", ns])
        defer { _ = try? runCommand("/usr/sbin/ip", ["netns", "del", ns]) }
        try ip(["-n", ns, "link", "set", "lo", "mtu", "1300"])
        try ip(["-n", ns, "link", "set", "lo", "up"])

        let dir = TestPaths.tempDir("mtu")
        let zone = "$TTL 300\n$ORIGIN rpz.mtu.test.\n@ IN SOA ns.example.net. hostmaster.example.net. 1 3600 600 86400 300\n"
            + (1...100).map { "big.ci.test IN A 192.0.2.\($0)\n" }.joined() + "small.ci.test IN A 192.0.2.10\n"
        try zone.write(toFile: dir.path + "/local.rpz", atomically: true, encoding: .utf8)
        let config = dir.path + "/dnsgate.yaml"
        try "allow: [\"\(dir.path)/local.rpz\"]\nupstreams: [\"127.0.0.1:5399\"]\nmax_udp_payload: 4096\nstate_file: \"\(dir.path)/state.json\"\n"
            .write(toFile: config, atomically: true, encoding: .utf8)
        // `ip netns exec` execs dnsgate: the PID held is dnsgate's own, stopped by it.
        let server = try Daemon("dnsgate", "/usr/sbin/ip",
                                ["netns", "exec", ns, TestPaths.dnsgateBinary, "serve", "--config", config, "--listen", "127.0.0.1:5353",
                                 "--control", dir.path + "/control.sock", "--query-log", "none"],
                                logFile: dir.appendingPathComponent("dnsgate.log"))
        defer { server.stop() }
        XCTAssertTrue(server.waitForLog("dnsgate started"), server.log)

        func ask(_ name: String) throws -> String {
            try runCommand("/usr/sbin/ip", ["netns", "exec", ns, "dig", "+tries=1", "+time=3", "+bufsize=4096", "+ignore", "-p", "5353",
                                            "@127.0.0.1", name, "A"], timeout: 20).stdout
        }
        let big = try ask("big.ci.test")
        XCTAssertTrue(big.contains("ANSWER: 100,"), big)
        XCTAssertFalse(big.contains(" tc"), "not truncated: \(big)")
        let size = big.components(separatedBy: "MSG SIZE  rcvd: ").last.flatMap { Int($0.prefix { $0.isNumber }) } ?? 0
        XCTAssertGreaterThan(size, 1300, "larger than the interface MTU: \(big)")
        // The socket still sends unfragmented replies after the large one.
        XCTAssertTrue(try ask("small.ci.test").contains("192.0.2.10"))
    }
}
