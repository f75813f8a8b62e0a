import NIOCore
import NIOHTTP1
import NIOPosix

/// Prometheus text metrics on a local HTTP listener: `GET /metrics` (and `HEAD`), nothing else.
///
/// `scrape` makes the body: gauges that mirror state elsewhere (cache size, upstream health) are
/// refreshed then, so the hot path never touches the registry for them.
///
/// One request a connection, answered with `Connection: close` (Prometheus opens a connection per
/// scrape then): answering pipelined requests a client never read grew the server by 1.7 GB and held
/// the event loop that also serves DNS over TCP (QA pass 5). The connection's `ConnectionLimit` caps
/// how many are open and closes one with no request head within its idle timeout.
final class MetricsEndpoint {
    private let channel: Channel
    /// A request head (request line and headers) past this is refused with 400: a scrape's is a few
    /// hundred bytes, and NIO's default allows 80 KB per header field.
    static let maxHeadBytes = 8 * 1024

    init(address: SocketAddress, group: EventLoopGroup, limit: ConnectionLimit, scrape: @escaping @Sendable () -> [UInt8]) throws {
        var bootstrap = ServerBootstrap(group: group)
        if address.protocol == .inet6 {   // IPv6 only, as the DNS listeners: `[::]` does not open IPv4 too
            bootstrap = bootstrap.serverChannelOption(ChannelOptions.Types.SocketOption(level: .ipv6, name: .ipv6_v6only), value: 1)
        }
        var head = NIOHTTPDecoderLimitConfiguration()
        head.maxHeaderFieldSize = Self.maxHeadBytes
        head.maxHeaderListSize = Self.maxHeadBytes
        channel = try bootstrap
            .serverChannelOption(ChannelOptions.Types.SocketOption(level: .ip, name: NIOBSDSocket.Option(rawValue: DatagramListener.freebind)), value: 1)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [head] ch in
                guard limit.admit(ch) else { return ch.eventLoop.makeSucceededVoidFuture() }
                return ch.eventLoop.makeCompletedFuture {
                    let ops = ch.pipeline.syncOperations
                    // No pipelining assistance: it queues requests, and this handler answers only one.
                    try ops.configureHTTPServerPipeline(withPipeliningAssistance: false, withEncoderConfiguration: .init(),
                                                        withDecoderLimitConfiguration: head)
                    try limit.addIdleTimeout(to: ops)
                    try ops.addHandler(MetricsHTTPHandler(scrape: scrape))
                }
            }
            .bind(to: address).wait()   // an IP literal, not through getaddrinfo: see `HostPort.socketAddress`
    }

    var port: Int? { channel.localAddress?.port }
    func close() { try? channel.close().wait() }
}

final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    private let scrape: @Sendable () -> [UInt8]
    private var answered = false

    init(scrape: @escaping @Sendable () -> [UInt8]) { self.scrape = scrape }

    /// Answers the first request head and closes once the answer is out. Nothing more is read: what
    /// the client sent after its head (a body, pipelined requests) waits in its socket, and what one
    /// read had already brought is decoded and dropped here, so a connection holds one answer at most.
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !answered, case .head(let head) = unwrapInboundIn(data) else { return }
        answered = true
        context.channel.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in }
        // HEAD gets GET's status and headers without the body (RFC 9110 §9.3.2): uptime checks use it.
        let headOnly = head.method == .HEAD
        let ok = (head.method == .GET || headOnly) && (head.uri == "/metrics" || head.uri.hasPrefix("/metrics?"))
        let body: [UInt8] = ok ? scrape() : Array("use GET /metrics\n".utf8)
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: ok ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain")
        headers.add(name: "Content-Length", value: "\(body.count)")
        headers.add(name: "Connection", value: "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: ok ? .ok : .notFound, headers: headers))), promise: nil)
        if !headOnly { context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil) }
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}

@available(*, unavailable)
extension MetricsHTTPHandler: Sendable {}
