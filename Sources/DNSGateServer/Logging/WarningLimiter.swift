import Synchronization

/// Lets through a warning about a count that a flood can raise at most once per interval: the first
/// at once, then at most one a minute, each with how many came since the one before. A flood is
/// then one line a minute, not one per event. Lock-free, as it is asked on the path that counts
/// (refused connections, unwanted upstream replies).
final class WarningLimiter: Sendable {
    static let minuteNs: UInt64 = 60_000_000_000
    private let intervalNs: UInt64
    /// Monotonic nanoseconds before which no warning is let through.
    private let quietUntil = Atomic<UInt64>(0)
    private let totalWhenLastSaid = Atomic<Int>(0)

    init(intervalNs: UInt64 = minuteNs) { self.intervalNs = intervalNs }

    /// With `total` the count so far: how many came since the last warning when one is due now, else
    /// nil. Of callers racing for the same due warning, one gets it.
    func due(total: Int, now: UInt64 = MonotonicClock.nanoseconds()) -> Int? {
        let quiet = quietUntil.load(ordering: .relaxed)
        guard now >= quiet, quietUntil.compareExchange(expected: quiet, desired: now + intervalNs, ordering: .relaxed).exchanged else { return nil }
        return total - totalWhenLastSaid.exchange(total, ordering: .relaxed)
    }

    /// The same for a periodic check: due only when the count moved since the last warning, so a
    /// burst that ended inside the quiet interval is still said once the interval is over.
    func dueIfMoved(total: Int, now: UInt64 = MonotonicClock.nanoseconds()) -> Int? {
        guard total > totalWhenLastSaid.load(ordering: .relaxed) else { return nil }
        return due(total: total, now: now)
    }
}
