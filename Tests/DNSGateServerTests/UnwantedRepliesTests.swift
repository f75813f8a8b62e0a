import DNSGateCore
import Foundation
import Logging
import NIOCore
import NIOEmbedded
import XCTest
@testable import DNSGateServer

/// Upstream replies for no query in flight (Unbound's `unwanted.replies`): a hostile upstream forges
/// before every real answer; the client still gets the real one, and `stats`, the metrics and one
/// rate-limited warning show the forgeries. End to end against the real binary, for both ways a miss
/// goes upstream, plus the TCP upstream handler and the warning's limiter on their own.
final class UnwantedRepliesTests: XCTestCase {
    static let allow = "*.allowed.test  # builds\n"

    /// A UDP client's miss leaves on the listener's own sockets (`DirectUpstream`). They are connected,
    /// so the kernel drops the forgery from another port before dnsgate sees it; the one with the
    /// wrong ID is counted, one per query.
    func testForgeriesAgainstUDPClientsMissesAreCountedAndTheRealAnswerIsServed() throws {
        let upstream = SpoofingUpstream(queries: 2)
        let (g, metricsPort) = try start(upstream)
        for name in ["a.allowed.test", "b.allowed.test"] {
            let a = try dig(g.port, ["+time=4", name])
            XCTAssertEqual(a.answers, ["\(name). 60 IN A 192.0.2.1"], a.raw)
        }
        try assertCounted(atLeast: 2, g, metricsPort: metricsPort)
    }

    /// A TCP client's miss goes through an event loop's socket pool (`UpstreamSocketPool`), whose
    /// sockets are not connected: both forgeries arrive and are counted.
    func testForgeriesAgainstTCPClientsMissesAreCountedAndTheRealAnswerIsServed() throws {
        let upstream = SpoofingUpstream(queries: 1)
        let (g, metricsPort) = try start(upstream)
        let a = try dig(g.port, ["+time=4", "+tcp", "c.allowed.test"])
        XCTAssertEqual(a.answers, ["c.allowed.test. 60 IN A 192.0.2.1"], a.raw)
        try assertCounted(atLeast: 2, g, metricsPort: metricsPort)
    }

    /// Over TCP (a retry after a truncated answer) a frame with another ID is for no exchange either:
    /// counted as unwanted, not as the upstream's `rejected`. The connection carries only this
    /// query, so no answer will follow: the exchange fails at once and the connection is closed, as
    /// it is after a frame with the right ID that does not answer the question.
    func testAWrongTCPFrameIsCountedAndEndsTheExchangeAndTheConnection() throws {
        let unwanted = UnwantedReplies(logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        let name = try DNSName("www.example.com")
        let question = RawQuery.encode("www.example.com") + [0, 1, 0, 1]
        let other = RawQuery.encode("www.example.net") + [0, 1, 0, 1]
        for (id, asked, why, counted) in [(UInt16(0x1235), question, "another ID", 1), (0x1234, other, "does not answer", 0)] {
            let channel = EmbeddedChannel()
            defer { _ = try? channel.finish() }
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 53)).wait()
            let promise = channel.eventLoop.makePromise(of: UpstreamAnswer.self)
            try channel.pipeline.syncOperations.addHandler(UpstreamStreamReplyHandler(
                promise: promise, id: 0x1234, check: { try? UpstreamAnswer($0, id: 0x1234, name: name, type: .a) }, upstream: "127.0.0.1:53",
                unwanted: unwanted))
            var failure: String?
            promise.futureResult.whenFailure { failure = "\($0)" }
            let before = unwanted.count.value
            try channel.writeInbound(ByteBuffer(bytes: oneAddressAnswer(id: id, question: asked, address: [192, 0, 2, 66])))
            XCTAssertTrue(failure?.hasPrefix("127.0.0.1:53: TCP reply ") == true && failure?.contains(why) == true, failure ?? "not failed")
            XCTAssertFalse(channel.isActive, "the connection is closed")
            XCTAssertEqual(unwanted.count.value - before, counted)
        }
    }

    func testTheWarningIsSaidAtOnceThenAtMostOnceAMinuteWithTheCountSince() {
        let limiter = WarningLimiter()
        let start: UInt64 = 7_000_000_000
        XCTAssertEqual(limiter.due(total: 1, now: start), 1, "the first at once")
        XCTAssertNil(limiter.due(total: 500, now: start + 59_000_000_000))
        XCTAssertEqual(limiter.due(total: 900, now: start + WarningLimiter.minuteNs), 899, "a minute on: how many since the first")
        XCTAssertNil(limiter.due(total: 901, now: start + WarningLimiter.minuteNs + 1))
        // The periodic check says a burst that ended inside the quiet minute once it is over, and
        // nothing when the count has not moved.
        XCTAssertNil(limiter.dueIfMoved(total: 950, now: start + WarningLimiter.minuteNs + 2), "still quiet")
        XCTAssertEqual(limiter.dueIfMoved(total: 950, now: start + 2 * WarningLimiter.minuteNs), 50, "the burst, a minute on")
        XCTAssertNil(limiter.dueIfMoved(total: 950, now: start + 4 * WarningLimiter.minuteNs), "nothing new")
        XCTAssertEqual(limiter.due(total: 951, now: start + 4 * WarningLimiter.minuteNs), 1, "the next reply is said at once")
    }

    // MARK: helpers

    private func start(_ upstream: SpoofingUpstream) throws -> (DNSGateProcess, metricsPort: Int) {
        try requireTool("curl")
        let metricsPort = freePort()
        let g = try DNSGateProcess(allow: Self.allow, upstreams: [upstream.address],
                                   configYAML: "metrics: { listen: \"127.0.0.1:\(metricsPort)\" }\nstate_file: \"@DIR@/state.json\"\n")
        return (g, metricsPort)
    }

    /// `stats --json`, `stats` and the metrics show at least `n` unwanted replies, and the log has said
    /// so once, as its limit allows in a minute.
    private func assertCounted(atLeast n: Int, _ g: DNSGateProcess, metricsPort: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let json = try g.cli(["stats", "--json"])
        let stats = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        let counted = stats?["unwanted_replies"] as? Int ?? -1
        XCTAssertGreaterThanOrEqual(counted, n, json.stdout, file: file, line: line)
        let text = try g.cli(["stats"])
        XCTAssertTrue(text.stdout.contains("upstreams: \(counted) unwanted replies"), text.stdout, file: file, line: line)
        let metrics = try runCommand("curl", ["-sS", "http://127.0.0.1:\(metricsPort)/metrics"])
        let exposed = metrics.stdout.split(separator: "\n").first { $0.hasPrefix("dnsgate_upstream_unwanted_replies ") }
        XCTAssertEqual(exposed.flatMap { Double($0.split(separator: " ")[1]) }, Double(counted), metrics.stdout, file: file, line: line)
        let warnings = g.log.components(separatedBy: "they may be spoofing attempts").count - 1
        XCTAssertEqual(warnings, 1, g.log, file: file, line: line)
    }

    /// A reply planted in an idle upstream socket (an off-path forger needs no timing for that, only
    /// the ID) is drained and counted before that socket's next query leaves, never taken as its
    /// answer (QA pass 9: one miss in about 256 took a planted reply, which was then cached). In
    /// process, with the IDs fixed, so the planted reply carries the very ID the next query gets.
    func testAReplyPlantedInAnIdleSocketIsNotTakenByItsNextQuery() throws {
        let port = freePort()
        let upstream = boundUDPSocket(host: "127.0.0.1", port: port)
        defer { close(upstream) }
        var wait = timeval(tv_sec: 5, tv_usec: 0)   // bounded: the test never hangs on it
        setsockopt(upstream, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        let logger = Logger(label: "test")
        let client = try UpstreamClient(upstreams: [HostPort(host: "127.0.0.1", port: port)], timeoutMs: 2000, deadlineMs: 4000, logger: logger)
        let policy = Policy(allowList: try AllowList(PlainListLoader.load(text: "*.allowed.test\n", file: "t.allow")))
        let core = ServingCore(pipeline: QueryPipeline(policy: policy, cache: AnswerCache()), upstream: client,
                               queryLog: try QueryLogger(level: .none, file: ""), logger: logger, audit: AuditRecorder())
        var delivered: [[UInt8]] = []
        let direct = DirectUpstream(client: client, core: core, deliver: { reply, _, _ in delivered.append(reply) }, handOff: { _, _ in },
                                    random: BufferedRandom(repeating: [0x12, 0x34]))
        let idle = boundUDPSocket(host: "127.0.0.1", port: 0)   // stands for the client socket `wait` also watches
        defer { close(idle) }

        /// Asks for `name`; the upstream gets the query and answers it with 192.0.2.1.
        func exchange(_ name: String) throws -> (from: sockaddr_storage, length: socklen_t) {
            let ask = core.handle(RawQuery.make(id: 7, name: name), client: ClientIdentity(text: "192.0.2.7", octets: [192, 0, 2, 7]),
                                  overTCP: false, listener: "test")
            guard case .forward(let job) = ask else { XCTFail("\(name) is not a miss"); throw XCTSkip("no miss") }
            let before = delivered.count
            direct.ask(job, for: DatagramSource(), spelling: nil)
            direct.flush(backlog: false)
            guard let (query, from, length) = receiveDatagram(upstream) else { XCTFail("no query upstream"); throw XCTSkip("no query") }
            let (id, question) = idAndQuestion(query, query.count)
            XCTAssertEqual(id, 0x1234, "the fixed IDs")
            var to = from
            sendDatagram(oneAddressAnswer(id: id, question: question, address: [192, 0, 2, 1]), on: upstream, to: &to, length: length)
            for _ in 0..<100 where delivered.count == before {
                _ = direct.wait(alsoFor: idle, maxMilliseconds: 50, block: true)
                direct.collect()
            }
            XCTAssertEqual(delivered.count, before + 1, "\(name) answered")
            return (from, length)
        }

        var socketUsed = try exchange("first.allowed.test")   // the socket now has nothing in flight
        let planted = RawQuery.make(id: 0, name: "victim.allowed.test")
        let (_, victimQuestion) = idAndQuestion(planted, planted.count)
        sendDatagram(oneAddressAnswer(id: 0x1234, question: victimQuestion, address: [192, 0, 2, 66]), on: upstream,
                     to: &socketUsed.from, length: socketUsed.length)
        usleep(20_000)
        let again = try exchange("victim.allowed.test")
        XCTAssertEqual(withUnsafeBytes(of: again.from) { Array($0) }, withUnsafeBytes(of: socketUsed.from) { Array($0) },
                       "the same socket carried both (the fixed choice)")
        XCTAssertEqual(delivered.last?.suffix(4).map { $0 }, [192, 0, 2, 1], "the real answer, not the planted one")
        XCTAssertEqual(client.unwanted.count.value, 1, "the planted reply is counted")
    }
}

/// A hostile upstream on 127.0.0.1: for each query, a reply with the wrong ID from the socket asked,
/// then one with the right ID from another socket (another source port), both saying 192.0.2.66,
/// then the real answer, 192.0.2.1, from the socket asked. Stops after `queries`, or 5 s without one.
final class SpoofingUpstream {
    let port: Int
    var address: String { "127.0.0.1:\(port)" }
    private let fd: Int32
    private let otherPort: Int32
    private let done = DispatchSemaphore(value: 0)

    init(queries: Int) {
        port = freePort()
        fd = boundUDPSocket(host: "127.0.0.1", port: port)
        otherPort = boundUDPSocket(host: "127.0.0.1", port: 0)
        var wait = timeval(tv_sec: 5, tv_usec: 0)   // bounded: the test never hangs on it
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        Thread { [self] in
            for _ in 0..<queries { guard answerOne() else { break } }
            done.signal()
        }.start()
    }
    deinit { done.wait(); close(fd); close(otherPort) }

    /// Forges twice, then answers; false when no query came.
    private func answerOne() -> Bool {
        guard let (query, source, length) = receiveDatagram(fd) else { return false }
        var to = source
        let (id, question) = idAndQuestion(query, query.count)
        let forged: [UInt8] = [192, 0, 2, 66]
        sendDatagram(oneAddressAnswer(id: id ^ 0x5A5A, question: question, address: forged), on: fd, to: &to, length: length)
        sendDatagram(oneAddressAnswer(id: id, question: question, address: forged), on: otherPort, to: &to, length: length)
        sendDatagram(oneAddressAnswer(id: id, question: question, address: [192, 0, 2, 1]), on: fd, to: &to, length: length)
        return true
    }
}
