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
///
/// Answers wait for a client that is not reading them, not the other way round: while the channel is
/// not writable (its queued answers are past SwiftNIO's write-buffer high-water mark, 64 KB, the
/// kernel's send buffer being full) queries already read are held, unanswered, and no more are
/// read. A query is tens of octets and its answer up to 64 KB: answered regardless, a client that
/// sends and never reads grew the server by 100 MB in 25 s (QA pass 12, F2). Held, it costs one
/// read's worth of queries, and the idle timeout closes it once nothing more arrives.
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
    private var pausedForMisses = false
    /// Queries read while the client was not reading its answers, answered in order once it does.
    private var held = CircularBuffer<ByteBuffer>()
    private var draining = false

    init(core: ServingCore, listener: String) { self.core = core; self.listener = listener }

    /// Reads while no query is held and not too many misses wait.
    private func updateReading(_ channel: Channel) {
        let read = !pausedForMisses && held.isEmpty
        channel.setOption(ChannelOptions.autoRead, value: read).whenFailure { _ in }
        if read { channel.read() }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        // Answers queue past the water mark: hand the kernel what it takes, then hold this query if
        // they still do (and every later one, to keep the order of answers as the queries came).
        if held.isEmpty && !context.channel.isWritable && unflushed { unflushed = false; context.flush() }
        if !held.isEmpty || !context.channel.isWritable {
            held.append(frame)
            if held.count == 1 { updateReading(context.channel) }
            return
        }
        answer(frame, context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable && !held.isEmpty && !draining {
            // A flush may make the channel writable again, which calls this again: one loop at a time,
            // going on for as long as the kernel takes what is flushed.
            draining = true
            defer { draining = false }
            repeat {
                while context.channel.isWritable, let frame = held.popFirst() { answer(frame, context: context) }
                if unflushed { unflushed = false; context.flush() }
            } while context.channel.isWritable && !held.isEmpty
            if held.isEmpty {
                updateReading(context.channel)
                if inputClosed && waiting == 0 { context.close(promise: nil) }
            }
        }
        context.fireChannelWritabilityChanged()
    }

    private func answer(_ frame: ByteBuffer, context: ChannelHandlerContext) {
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
            if waiting >= Self.maxWaitingPerConnection && !pausedForMisses {
                pausedForMisses = true
                updateReading(channel)
            }
            core.forward(job, on: context.eventLoop) { [self] bytes in     // on this channel's event loop
                waiting -= 1
                core.dnstap?.message(.clientResponse, bytes, peer: remote, overTCP: true, queriedAt: now)
                let written = channel.writeAndFlush(channel.allocator.buffer(bytes: bytes))
                if inputClosed && waiting == 0 && held.isEmpty { written.whenComplete { _ in channel.close(promise: nil) } }
                if pausedForMisses && waiting <= Self.maxWaitingPerConnection / 2 {
                    pausedForMisses = false
                    updateReading(channel)
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
            if waiting == 0 && held.isEmpty { context.close(promise: nil) }
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
