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

    init(core: ServingCore, listener: String) { self.core = core; self.listener = listener }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        let bytes = Array(envelope.data.readableBytesView)
        let remote = envelope.remoteAddress
        let channel = context.channel
        core.handle(bytes, from: remote, overTCP: false, listener: listener, on: context.eventLoop) { reply in
            // nil promise: nothing to do on failure, and it saves an allocation per reply
            channel.writeAndFlush(AddressedEnvelope(remoteAddress: remote, data: ByteBuffer(bytes: reply)), promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        core.logger.debug("UDP listener error, continuing", metadata: ["concern": "listener", "error": "\(error)"])
    }
}

@available(*, unavailable)
extension DatagramQueryHandler: Sendable {}
