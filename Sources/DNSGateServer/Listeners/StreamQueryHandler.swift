import DNSGateCore
import NIOCore
import NIOExtras

/// Answers DNS over TCP (RFC 7766): behind a two-octet length-field decoder, each frame is one query.
///
/// Queries on one connection are handled as they arrive and answered as they complete, so pipelined
/// queries may be answered out of order (RFC 7766 §6.2.1.1). An idle connection is closed by the
/// listener's `ConnectionLimit`, in front of this handler. A client that shuts down its sending side
/// after its queries still gets every answer, cache misses included, before the connection closes
/// (the channel allows half-closure).
final class StreamQueryHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let core: ServingCore
    /// This listener's address as configured, for profiles selected by listener.
    private let listener: String

    private var client: ClientIdentity?
    private var unflushed = false
    /// Cache misses of this connection still waiting for their answers.
    private var waiting = 0
    private var inputClosed = false
    /// Cache misses one connection may have waiting; past it the connection is not read until half of
    /// them are answered (the client's queries wait in its socket, TCP's own flow control). Without
    /// it a client pipelining thousands of misses against a slow upstream held memory without bound,
    /// 277–835 MB in QA pass 4's flood. The queries of one read are still handled, so a connection
    /// holds at most this many plus one read's worth.
    static let maxWaitingPerConnection = 128
    private var paused = false

    init(core: ServingCore, listener: String) { self.core = core; self.listener = listener }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard let remote = context.remoteAddress else { return }
        if client == nil { client = ClientIdentity(remote) }     // one peer per connection
        let query = Array(frame.readableBytesView)
        let now = WallClock.now()
        core.dnstap?.message(.clientQuery, query, peer: remote, overTCP: true, at: now)
        switch core.handle(query, client: client!, overTCP: true, listener: listener, now: now) {
        case .reply(let immediate):
            core.dnstap?.message(.clientResponse, immediate, peer: remote, overTCP: true, queriedAt: now)
            context.write(wrapOutboundOut(context.channel.allocator.buffer(bytes: immediate)), promise: nil)
            unflushed = true
        case .nothing:
            break
        case .forward(let job):
            let channel = context.channel
            waiting += 1
            if waiting >= Self.maxWaitingPerConnection && !paused {
                paused = true
                channel.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in }
            }
            core.forward(job, on: context.eventLoop) { [self] bytes in     // on this channel's event loop
                waiting -= 1
                core.dnstap?.message(.clientResponse, bytes, peer: remote, overTCP: true, queriedAt: now)
                let written = channel.writeAndFlush(channel.allocator.buffer(bytes: bytes))
                if inputClosed && waiting == 0 { written.whenComplete { _ in channel.close(promise: nil) } }
                if paused && waiting <= Self.maxWaitingPerConnection / 2 {
                    paused = false
                    channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
                    channel.read()
                }
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if unflushed { unflushed = false; context.flush() }
        core.telemetry?.catchUp()   // the replies are out: count them now, on this core, before the next read
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed {
            // No more queries: close once the last answer is out (now, if none is awaited; the replies
            // of this read were flushed in `channelReadComplete`).
            inputClosed = true
            if waiting == 0 { context.close(promise: nil) }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // The peer shut down its sending side inside a frame: that query can never complete, the ones
        // before it still get their answers. The `.inputClosed` event that follows closes the connection.
        if error is NIOExtrasErrors.LeftOverBytesError { return }
        // A framing error or a reset: this connection is done, the listener is not.
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension StreamQueryHandler: Sendable {}
