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
    /// The replies of one read batch are gathered in one buffer and written as slices of it when the
    /// batch ends: a buffer per reply was two allocations per query. Once NIO has sent them the buffer
    /// is ours alone again, and `clear()` reuses it without allocating.
    private var replies: ByteBuffer?
    private var ready: [(to: SocketAddress, at: Int, length: Int)] = []
    /// The query's bytes, copied out of NIO's receive buffer into storage reused from query to query
    /// (only a forwarded query keeps a reference past `handle`, and then the next copy allocates).
    private var packet: [UInt8] = []

    init(core: ServingCore, listener: String) { self.core = core; self.listener = listener }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        let remote = envelope.remoteAddress
        packet.removeAll(keepingCapacity: true)
        packet.append(contentsOf: envelope.data.readableBytesView)
        switch core.handle(packet, client: clients.identity(remote), overTCP: false,
                           listener: listener, on: context.eventLoop) {
        case .reply(let immediate):
            // Sent when the read batch ends, all in one flush: NIO then uses one sendmmsg.
            if replies == nil { replies = context.channel.allocator.buffer(capacity: 16 * 1024) }
            ready.append((remote, replies!.writerIndex, immediate.count))
            replies!.writeBytes(immediate)
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
        if !ready.isEmpty {
            for r in ready {
                // nil promise: nothing to do on failure, and it saves an allocation per reply
                context.write(wrapOutboundOut(AddressedEnvelope(remoteAddress: r.to, data: replies!.getSlice(at: r.at, length: r.length)!)),
                              promise: nil)
            }
            ready.removeAll(keepingCapacity: true)
            context.flush()
            replies!.clear()   // after the flush: the sent slices are gone and the storage is reused
        }
        core.telemetry?.catchUp()   // the replies are out: count them now, on this core, before the next read
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        core.logger.debug("UDP listener error, continuing", metadata: ["concern": "listener", "error": "\(error)"])
    }
}

@available(*, unavailable)
extension DatagramQueryHandler: Sendable {}
