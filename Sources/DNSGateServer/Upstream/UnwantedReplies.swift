import DNSGateCore
import Logging

/// Replies on an upstream socket or connection that no exchange in flight takes: an ID not in
/// flight, a source other than the upstream asked, an answer after its exchange ended, or too short
/// to carry an ID. Unbound's `unwanted.replies`: a rising count is a cache-poisoning attempt (RFC
/// 5452) or an upstream that answers late or wrongly. One count for the process, not per upstream,
/// since a forger's source need not be an upstream. A reply that an exchange in flight takes and
/// that then fails the checks is that upstream's `rejected`, not counted here.
public final class UnwantedReplies: Sendable {
    public let count = AtomicCounter()
    private let warning = WarningLimiter()
    private let logger: Logger

    init(logger: Logger) { self.logger = logger }

    /// Counts one, which the caller drops. Called on the drop branch only: an answer costs nothing.
    func note() {
        count.add(1)
        let total = count.value
        if let since = warning.due(total: total) { warn(since, of: total) }
    }

    /// Says what came since the last warning, once its quiet minute is over: called once a second, so
    /// that a burst which ended inside that minute is not left unsaid (QA pass 9).
    func sweep() {
        let total = count.value
        if let since = warning.dueIfMoved(total: total) { warn(since, of: total) }
    }

    /// With the total the limiter was given, so the line's two counts agree while other threads count on.
    private func warn(_ since: Int, of total: Int) {
        logger.warning("upstream replies for no query in flight (unknown ID, another source, or late): \(since) new, \(total) in all; they may be spoofing attempts (logged once a minute at most)",
                       metadata: ["concern": "upstream", "unwanted_since_last_warning": "\(since)", "unwanted_total": "\(total)"])
    }
}
