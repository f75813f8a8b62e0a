import DNSGateCore
import Logging
import NIOCore
import NIOEmbedded
import XCTest
@testable import DNSGateServer

/// The pooled upstream socket's demultiplexer, on an EmbeddedChannel: only a reply with an ID in flight,
/// from the address asked, answering the question asked, completes an exchange. Forged and stray
/// datagrams are ignored and do not cancel the exchange; those for no exchange in flight are counted
/// as unwanted.
final class UpstreamMuxHandlerTests: XCTestCase {
    func testOnlyTheGenuineReplyCompletesTheExchange() throws {
        let unwanted = UnwantedReplies(logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        let mux = UpstreamMuxHandler(unwanted: unwanted)
        let channel = EmbeddedChannel(handler: mux)
        defer { _ = try? channel.finish() }
        let upstream = try SocketAddress(ipAddress: "127.0.0.1", port: 5300)
        let attacker = try SocketAddress(ipAddress: "127.0.0.9", port: 5300)
        let name = try DNSName("www.example.com")
        let promise = channel.eventLoop.makePromise(of: UpstreamAnswer.self)
        mux.pending[0x1234] = .init(expected: upstream, check: { try? UpstreamAnswer($0, id: 0x1234, name: name, type: .a) }, promise: promise,
                                         deadline: .now() + .seconds(5))
        var done = false
        promise.futureResult.whenSuccess { _ in done = true }

        func reply(id: UInt16, name: String, from: SocketAddress) throws {
            let q = try DNSName(name)
            var m: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xFF), 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0] + q.wire + [0, 1, 0, 1]
            m += [0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]
            try channel.writeInbound(AddressedEnvelope(remoteAddress: from, data: ByteBuffer(bytes: m)))
        }
        try reply(id: 0x1234, name: "www.example.com", from: attacker)       // right ID, wrong source
        try reply(id: 0x1235, name: "www.example.com", from: upstream)       // wrong ID
        try reply(id: 0x1234, name: "evil.example.com", from: upstream)      // wrong question
        try channel.writeInbound(AddressedEnvelope(remoteAddress: upstream, data: ByteBuffer(bytes: [0x12, 0x34, 0x81])))   // garbage
        XCTAssertFalse(done)
        XCTAssertNotNil(mux.pending[0x1234], "forgeries do not cancel the exchange")
        XCTAssertEqual(unwanted.count.value, 3, "another source, another ID and garbage; the other question is the upstream's `rejected`")
        try reply(id: 0x1234, name: "WWW.example.COM", from: upstream)       // genuine (case may differ)
        XCTAssertTrue(done)
        XCTAssertNil(mux.pending[0x1234])
        XCTAssertEqual(unwanted.count.value, 3)
        try reply(id: 0x1234, name: "www.example.com", from: upstream)       // a second copy, late
        XCTAssertEqual(unwanted.count.value, 4)
    }
}
