import DNSGateCore
import Synchronization

/// Records handed from the listeners to whoever processes them later (the query-log thread; the
/// telemetry hub, which the loops themselves drain after each flush).
///
/// Producers append under a lock and never wait; past `capacity` pending records new ones are counted
/// in `dropped` instead of growing memory. The consumer takes everything pending in one swap.
final class BoundedBatch<Element: Sendable>: Sendable {
    private let items = Mutex<[Element]>([])
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
        var e = Optional(e)   // moved into the queue with `take()`: a closure cannot consume a parameter
        let (accepted, wasEmpty) = items.withLock { p -> (Bool, Bool) in
            guard p.count < capacity else { return (false, false) }
            p.append(e.take()!)
            approximateCount.store(p.count)
            return (true, p.count == 1)
        }
        if !accepted { dropped.add(1) }
        return (accepted, wasEmpty)
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
        items.withLock { p in swap(&p, &spare); approximateCount.store(0) }
    }

    var isEmpty: Bool { items.withLock { $0.isEmpty } }
}
