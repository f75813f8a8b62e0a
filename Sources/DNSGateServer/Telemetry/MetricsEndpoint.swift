import NIOCore
import NIOHTTP1
import NIOPosix

/// Prometheus text metrics on a local HTTP listener: `GET /metrics` (and `HEAD`), nothing else.
///
/// `scrape` makes the body: gauges that mirror state elsewhere (cache size, upstream health) are
/// refreshed then, so the hot path never touches the registry for them. The connection's
/// `ConnectionLimit` caps how many are open and closes one with no request head within its idle timeout.
final class MetricsEndpoint {
    private let channel: Channel

    init(address: SocketAddress, group: EventLoopGroup, limit: ConnectionLimit, scrape: @escaping @Sendable () -> [UInt8]) throws {
        var bootstrap = ServerBootstrap(group: group)
        if address.protocol == .inet6 {   // IPv6 only, as the DNS listeners: `[::]` does not open IPv4 too
            bootstrap = bootstrap.serverChannelOption(ChannelOptions.Types.SocketOption(level: .ipv6, name: .ipv6_v6only), value: 1)
        }
        channel = try bootstrap
            .serverChannelOption(ChannelOptions.Types.SocketOption(level: .ip, name: NIOBSDSocket.Option(rawValue: DatagramListener.freebind)), value: 1)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { ch in
                guard limit.admit(ch) else { return ch.eventLoop.makeSucceededVoidFuture() }
                return ch.eventLoop.makeCompletedFuture {
                    let ops = ch.pipeline.syncOperations
                    try ops.configureHTTPServerPipeline()
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
    private var path = ""
    /// HEAD gets GET's status and headers without the body (RFC 9110 §9.3.2): uptime checks use it.
    private var headOnly = false

    init(scrape: @escaping @Sendable () -> [UInt8]) { self.scrape = scrape }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            headOnly = head.method == .HEAD
            path = head.method == .GET || headOnly ? head.uri : ""
        case .body: break
        case .end:
            let ok = path == "/metrics" || path.hasPrefix("/metrics?")
            var body: [UInt8] = Array("use GET /metrics\n".utf8)
            if ok { body = scrape() }
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: ok ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain")
            headers.add(name: "Content-Length", value: "\(body.count)")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: ok ? .ok : .notFound, headers: headers))), promise: nil)
            if !headOnly { context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil) }
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}

@available(*, unavailable)
extension MetricsHTTPHandler: Sendable {}
