import DNSGateCore
import NIOConcurrencyHelpers

/// Records handed from the listeners to whoever processes them later (the query-log thread; the
/// telemetry hub, which the loops themselves drain after each flush).
///
/// Producers append under a lock and never wait; past `capacity` pending records new ones are counted
/// in `dropped` instead of growing memory. The consumer takes everything pending in one swap.
final class BoundedBatch<Element: Sendable>: @unchecked Sendable {   // `items` is touched under `lock` only
    /// A lock taken and released by hand, not a `Mutex`: a closure cannot consume the record it is
    /// given, so `Mutex.withLock` took it through an `Optional`, four copies of a 200-octet record
    /// per query where `append` under `lock()` moves it once.
    private let lock = NIOLock()
    private var items: [Element] = []
    let capacity: Int
    let dropped = AtomicCounter()

    /// Pending records as of the last push or swap, read without the lock (a consumer deciding
    /// whether there is enough to be worth taking).
    let approximateCount = AtomicCounter()

    init(capacity: Int) { self.capacity = capacity }

    /// Appends `e` unless full (then it is counted in `dropped`). `wasEmpty`: the queue was empty
    /// before, so a consumer that sleeps until there is work must be woken now.
    @discardableResult
    func push(_ e: consuming Element) -> (accepted: Bool, wasEmpty: Bool) {
        lock.lock()
        guard items.count < capacity else {
            lock.unlock()
            dropped.add(1)
            return (false, false)
        }
        items.append(e)
        let count = items.count
        approximateCount.store(count)
        lock.unlock()
        return (true, count == 1)
    }

    /// Everything pending, oldest first; the queue is empty afterwards.
    func takeAll() -> [Element] {
        var b: [Element] = []
        swapPending(&b)
        return b
    }

    /// Hands over everything pending by swapping it with `spare`, which must be empty: no copy and, when
    /// the caller reuses `spare` (`removeAll(keepingCapacity: true)`), no allocation either.
    func swapPending(_ spare: inout [Element]) {
        precondition(spare.isEmpty, "swapPending needs an empty buffer")
        lock.withLock { swap(&items, &spare); approximateCount.store(0) }
    }

    var isEmpty: Bool { lock.withLock { items.isEmpty } }
}
