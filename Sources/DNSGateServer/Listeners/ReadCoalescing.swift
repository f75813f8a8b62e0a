/// When the UDP listener waits a moment before reading again, so that one wakeup serves several
/// queries: interrupt moderation, as network drivers do it, for a server under a flood.
///
/// Each wakeup of a sleeping listener, and each batch of replies that wakes its clients, costs
/// kernel time whatever the batch holds. At 50,000 queries/s a listener that reads as soon as a
/// datagram arrives gets one or two per wakeup, and those wakeups were most of its CPU. Waiting
/// `windowMicros` after the socket ran dry lets the next batch gather (bench/RESULTS.md: 200 µs cut
/// CPU per query at that rate by a quarter, and added about 0.2 ms to each answer).
///
/// While upstream exchanges are in flight the listener waits `forwardingMicros` instead, as their
/// answers wait for it too; 0 by default. At 50,000 cache misses a second, 15 µs cut the CPU per
/// miss by 5–8 %, as each wakeup of the upstream and of the clients serves several queries, but
/// any wait takes at least about 70 µs here (timer slack and wakeup), which took p50 from 0.11 to
/// 0.33 ms and p99 from about 0.7 to about 1 ms (bench/RESULTS.md).
///
/// Only while the listener received at least `minRate` datagrams a second over the last period
/// (10 ms): at the rates a runner normally sends, no answer waits. And not while the listener was
/// busy (reading, answering, counting) for more than `maxBusyShare` of that period: then queries
/// queue up while it works anyway, and each wait only stretched the round trip of every query the
/// clients keep in flight, so a client that waits for its answers (dnsperf, 150 in flight) got
/// 75-82 % of the rate a null responder gave it (bench/RESULTS.md).
///
/// Only a period without waits tells how busy the listener is: with clients that wait for their
/// answers, the waits themselves hold the rate down and the listener looks idle, so a listener
/// judged on its waiting periods kept waiting once it had started (CI: 20 queries in flight, a 1 ms
/// window, 1,097 waits in 2 s). A waiting listener therefore stops after `probeEvery` periods for
/// one period without waits, and waits again only if that period was not busy. Pure logic; the
/// listener reads the clock and sleeps.
struct ReadCoalescing {
    /// How long to wait after a read that did not fill the batch; 0: never wait.
    let windowMicros: UInt32
    /// The same while upstream exchanges are in flight; 0: never wait then.
    let forwardingMicros: UInt32
    /// Datagrams a second from which waiting starts.
    let minRate: Int
    /// Share of a period spent busy above which the next period does not wait.
    let maxBusyShare: Double
    /// Length of the period the rate is measured over.
    static let periodNanos: UInt64 = 10_000_000

    private var periodStart: UInt64 = 0
    private var periodCount = 0
    /// Nanoseconds of the period spent on batches, from their read to `answered`.
    private var periodBusy: UInt64 = 0
    private var batchReadAt: UInt64 = 0
    /// Whether the listener waits during this period: the rate reached `minRate`, and the last
    /// period without waits was busy for no more than `maxBusyShare` of it.
    private(set) var isActive = false
    /// Waiting periods in a row; at `probeEvery` the next one goes without waits.
    private var waitingPeriods = 0
    static let probeEvery = 8

    init(windowMicros: UInt32, forwardingMicros: UInt32 = 0, minRate: Int, maxBusyShare: Double = 0.7) {
        self.windowMicros = windowMicros
        self.forwardingMicros = forwardingMicros
        self.minRate = max(1, minRate)
        self.maxBusyShare = maxBusyShare
    }

    /// Counts `n` datagrams read at `now` (monotonic nanoseconds). A period that has ended decides
    /// whether the listener waits during the next one; an idle gap ends it with a low rate.
    mutating func received(_ n: Int, at now: UInt64) {
        periodCount += n
        batchReadAt = now
        let elapsed = now &- periodStart
        guard elapsed >= Self.periodNanos else { return }
        let flooded = (windowMicros > 0 || forwardingMicros > 0) && UInt64(periodCount) * 1_000_000_000 >= UInt64(minRate) * elapsed
        let busy = Double(periodBusy) > maxBusyShare * Double(elapsed)
        if !flooded || busy {
            isActive = false
        } else if isActive {
            // A waiting period's busy share is shaped by the waits: probe without them now and then.
            waitingPeriods += 1
            if waitingPeriods >= Self.probeEvery { isActive = false }
        } else {
            isActive = true
        }
        if !isActive { waitingPeriods = 0 }
        periodStart = now
        periodCount = 0
        periodBusy = 0
    }

    /// The batch read last has been answered and counted, at `now`: the time since its read was busy.
    mutating func answered(at now: UInt64) {
        periodBusy &+= now &- batchReadAt
    }

    /// Microseconds to wait before the next read: while active and the last read left the socket
    /// empty (a full batch means more queries are waiting already), the window for whether upstream
    /// exchanges are in flight (`forwarding`); else 0.
    func wait(batchWasFull: Bool, forwarding: Bool = false) -> UInt32 {
        isActive && !batchWasFull ? (forwarding ? forwardingMicros : windowMicros) : 0
    }
}
