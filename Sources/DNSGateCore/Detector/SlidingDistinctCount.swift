/// Distinct items over a sliding window: a HyperLogLog for the current window and one for the
/// previous, of which the share not yet slid out is added. Two sketches instead of one a bucket:
/// the estimate is smooth enough for a threshold, and the memory stays fixed.
struct SlidingDistinctCount {
    private var window: Int64 = .min
    private var current: HyperLogLog
    private var previous: HyperLogLog

    init(precision: Int) {
        current = HyperLogLog(precision: precision)
        previous = current
    }

    /// Adds `hash` at `time` and returns the estimate for the window of `windowSeconds` ending then,
    /// and whether the sketch changed (an item seen before in this window never changes it; a new
    /// one mostly does not either, once there are many times more items than registers).
    /// A time before the current window's start (records out of order) counts in the current one.
    mutating func insert(hash: UInt64, at time: Double, windowSeconds: Double) -> (estimate: Double, changed: Bool) {
        let w = Int64((time / windowSeconds).rounded(.down))
        if w > window {
            if w == window + 1 { previous = current } else { previous.reset() }
            current.reset(); window = w
        }
        let before = current.estimate
        current.insert(hash: hash)
        let elapsed = (time - Double(window) * windowSeconds) / windowSeconds
        return (current.estimate + previous.estimate * min(1, max(0, 1 - elapsed)), current.estimate != before)
    }

    mutating func reset() { current.reset(); previous.reset() }
}
