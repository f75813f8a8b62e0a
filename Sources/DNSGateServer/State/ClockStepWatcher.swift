import Foundation

/// Notices steps of the wall clock (NTP, a VM resync, an operator's `date -s`) by comparing it with
/// the boot-time clock once a second. Exceptions and quarantines end at wall-clock times, kept so
/// across restarts; shifted by each step, they keep counting real time: a 5-minute exception does not
/// live a day longer after a step back, and a step forward does not lift a quarantine.
struct ClockStepWatcher {
    /// Below this a difference is the tick's own jitter, not a step.
    static let threshold = 1.0
    private var last: (wall: Double, monotonic: UInt64)?

    /// CLOCK_BOOTTIME: monotonic, and counting time suspended, so a suspended VM's resume (the wall
    /// clock right, time really gone by) is not taken for a step.
    static func bootNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_BOOTTIME, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// The step since the last call, in seconds (positive: the wall clock jumped ahead), or nil.
    mutating func step(wall: Double, monotonicNanoseconds: UInt64) -> Double? {
        defer { last = (wall, monotonicNanoseconds) }
        guard let last else { return nil }
        let step = (wall - last.wall) - Double(monotonicNanoseconds &- last.monotonic) / 1e9
        return abs(step) > Self.threshold ? step : nil
    }
}
