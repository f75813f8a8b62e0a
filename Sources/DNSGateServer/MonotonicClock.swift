#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Nanoseconds on CLOCK_MONOTONIC, for intervals measured on the query path (upstream timeouts and
/// round trips, read pacing, telemetry catch-up). `DispatchTime.now().uptimeNanoseconds` reads the
/// same clock through two conversions: about 66 instructions a call, eight calls a cache miss, 2 %
/// of a miss's instructions (bench/instructions.sh).
enum MonotonicClock {
    @inline(__always)
    static func nanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}
