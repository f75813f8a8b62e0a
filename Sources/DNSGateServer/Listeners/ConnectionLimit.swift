import DNSGateCore
import Logging
import NIOCore

/// The cap on one stream listener's open connections and the idle timeout that frees them: DNS over
/// TCP, the metrics endpoint and the control socket each have one. Without them QA pass 5 held 2,000
/// idle metrics connections open until descriptors ran out, and then DNS over TCP, TCP fallback to
/// the upstreams and `dnsgate stats` failed too.
final class ConnectionLimit: Sendable {
    /// Names the listener in the log and in the metrics label: `tcp`, `metrics`, `control`.
    let listener: String
    let limits: ConnectionLimits
    private let open = AtomicCounter()
    /// Connections closed at once for being past the cap, since start.
    let refused = AtomicCounter()
    /// One line per burst of refusals, not one per connection of a flood.
    private let warning = WarningLimiter()
    private let logger: Logger

    init(_ listener: String, _ limits: ConnectionLimits, logger: Logger) {
        self.listener = listener; self.limits = limits; self.logger = logger
    }

    var openCount: Int { open.value }

    /// Call first in the child channel initializer: whether `channel` may be served. Past the cap it
    /// is closed at once, so its client fails fast instead of queueing, and the caller returns.
    func admit(_ channel: Channel) -> Bool {
        guard open.value < limits.maxConnections else {
            refused.add(1)
            if let since = warning.due(total: refused.value) {
                logger.warning("connection limit reached; new connections are closed at once (logged once a minute at most)",
                               metadata: ["concern": "listener", "listener": "\(listener)", "limit": "\(limits.maxConnections)",
                                          "refused_total": "\(refused.value)", "refused_since_last_warning": "\(since)"])
            }
            channel.close(promise: nil)
            return false
        }
        open.add(1)
        channel.closeFuture.whenComplete { [open] _ in open.add(-1) }
        return true
    }

    /// Closes a connection that has read no whole message (query, request line, HTTP head) for the
    /// idle timeout. Add it behind the framing decoder, so trickled bytes that never make a message
    /// do not keep a slot open.
    func addIdleTimeout(to ops: ChannelPipeline.SynchronousOperations) throws {
        try ops.addHandler(IdleStateHandler(readTimeout: .milliseconds(Int64(limits.idleTimeoutMs))))
        try ops.addHandler(CloseWhenIdle())
    }
}

/// Closes the connection on the `IdleStateHandler`'s event in front of it.
final class CloseWhenIdle: ChannelInboundHandler {
    typealias InboundIn = NIOAny
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil); return }
        context.fireUserInboundEventTriggered(event)
    }
}

@available(*, unavailable)
extension CloseWhenIdle: Sendable {}
