import DNSGateCore
import Logging
import NIOCore
import NIOPosix
import XCTest
@testable import DNSGateServer

/// The upstream socket pool under more misses than its query IDs: QA pass 4 hung an event loop for
/// good with a TCP flood of pipelined misses against a silent upstream, in the loop drawing a free
/// ID on a socket whose 65,536 were all in flight.
final class UpstreamSocketPoolTests: XCTestCase {
    func testMoreExchangesThanIDsFailAtOnceInsteadOfHangingTheLoop() throws {
        // Shut down only if the loop came back: a hung loop would hang the shutdown, and the suite.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        // A silent upstream: a bound socket nobody reads.
        let silent = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(silent) }
        var sin = sockaddr_in(sin_family: sa_family_t(AF_INET), sin_port: 0, sin_addr: in_addr(s_addr: inet_addr("127.0.0.1")), sin_zero: (0, 0, 0, 0, 0, 0, 0, 0))
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        XCTAssertEqual(withUnsafeMutablePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(silent, $0, len) } }, 0)
        _ = withUnsafeMutablePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(silent, $0, &len) } }
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: Int(UInt16(bigEndian: sin.sin_port)))
        let pool = try loop.submit { UpstreamSocketPool(loop: loop, size: 2, unwanted: UnwantedReplies(logger: Logger(label: "test"))) }.wait()
        // Open both sockets first, as a running server has them.
        for _ in 0..<64 {
            _ = try loop.submit { pool.exchange(to: address, timeout: .milliseconds(300), build: { RawQuery.make(id: $0, name: "flood.example.com") }, check: { _, _ in nil }) }.wait()
        }
        // Then one event-loop turn with more misses than two sockets' IDs.
        let turn = loop.submit { () -> Int in
            var failedAtOnce = 0
            for _ in 0..<140_000 {
                let f = pool.exchange(to: address, timeout: .milliseconds(300), build: { RawQuery.make(id: $0, name: "flood.example.com") }, check: { _, _ in nil })
                f.whenFailure { _ in failedAtOnce += 1 }
            }
            return failedAtOnce
        }
        let deadline = DispatchTime.now() + 20
        let sem = DispatchSemaphore(value: 0)
        turn.whenComplete { _ in sem.signal() }
        guard sem.wait(timeout: deadline) == .success else { return XCTFail("the event loop never finished the turn") }
        defer { try? group.syncShutdownGracefully() }
        let failed = try turn.wait()
        XCTAssertGreaterThanOrEqual(failed, 140_064 - 2 * UpstreamSocketPool.maxInFlightPerSocket, "past the cap: failed, not queued")
        XCTAssertTrue(try loop.submit { true }.wait(), "and the loop still runs tasks")
        // The queued ones time out (the sweep runs on the same loop) before the loop shuts down.
        var left = 1
        for _ in 0..<100 where left > 0 {
            usleep(50_000)
            left = try loop.submit { pool.inFlight }.wait()
        }
        XCTAssertEqual(left, 0, "every exchange ended")
    }
}
