import DNSGateCore
import NIOCore

/// Answers DNS over UDP: one datagram in, at most one datagram out.
///
/// Holds no policy: unwrap, call the pipeline, write. Cache misses go to the upstream client and the
/// reply is written when it completes, on this channel's event loop. Unlike NIO's echo example,
/// `errorCaught` logs and keeps the channel open: one bad datagram must not close port 53.
final class DatagramQueryHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    private let core: ServingCore
    /// This listener's address as configured, for profiles selected by listener.
    private let listener: String
    private var clients = ClientIdentityMemo()
    private var unflushed = false

    init(core: ServingCore, listener: String) { self.core = core; self.listener = listener }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        let remote = envelope.remoteAddress
        switch core.handle(Array(envelope.data.readableBytesView), client: clients.identity(remote), overTCP: false,
                           listener: listener, on: context.eventLoop) {
        case .reply(let immediate):
            // Written now, flushed once per read batch: NIO then sends the batch with one sendmmsg.
            context.write(wrapOutboundOut(AddressedEnvelope(remoteAddress: remote, data: context.channel.allocator.buffer(bytes: immediate))),
                          promise: nil)   // nil promise: nothing to do on failure, and it saves an allocation per reply
            unflushed = true
        case .nothing:
            break
        case .later(let reply):
            let channel = context.channel
            reply.whenSuccess { bytes in
                channel.writeAndFlush(AddressedEnvelope(remoteAddress: remote, data: channel.allocator.buffer(bytes: bytes)), promise: nil)
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if unflushed { unflushed = false; context.flush() }
        core.telemetry?.catchUp()   // the replies are out: count them now, on this core, before the next read
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        core.logger.debug("UDP listener error, continuing", metadata: ["concern": "listener", "error": "\(error)"])
    }
}

@available(*, unavailable)
extension DatagramQueryHandler: Sendable {}
