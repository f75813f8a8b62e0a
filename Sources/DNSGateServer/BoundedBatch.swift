import DNSGateCore
import NIOConcurrencyHelpers

/// Records handed from the listeners to whoever processes them later (the query-log thread; the
/// telemetry hub, which the loops themselves drain after each flush).
///
/// Producers append under a lock and never wait; past `capacity` pending records new ones are counted
/// in `dropped` instead of growing memory. The consumer takes everything pending in one swap.
///
/// A producer with many records at once (a listener's receive batch) hands them over whole
/// (`push(moving:)`): one lock a batch instead of one a record, and the records are not moved one by
/// one either (the array is).
final class BoundedBatch<Element: Sendable>: @unchecked Sendable {   // the vars are touched under `lock` only
    /// A lock taken and released by hand, not a `Mutex`: a closure cannot consume the record it is
    /// given, so `Mutex.withLock` took it through an `Optional`, four copies of a 200-octet record
    /// per query where `append` under `lock()` moves it once.
    private let lock = NIOLock()
    /// Pending, oldest first: `items`, then each of `chunks`.
    private var items: [Element] = []
    /// Batches moved in whole while `items` was not empty; single pushes then go to the last one.
    private var chunks: [[Element]] = []
    private var count = 0
    /// Emptied chunks handed back by the consumer (`recycle`), for producers to fill again.
    private var spares: [[Element]] = []
    private static var maxSpares: Int { 64 }
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
        guard count < capacity else {
            lock.unlock()
            dropped.add(1)
            return (false, false)
        }
        if chunks.isEmpty { items.append(e) } else { chunks[chunks.count - 1].append(e) }
        count += 1
        let now = count
        approximateCount.store(now)
        lock.unlock()
        return (true, now == 1)
    }

    /// Appends all of `batch` that fits, oldest first, and leaves `batch` empty with room to fill
    /// again; the rest (the newest, as with `push`) are counted in `dropped`. For batches of some
    /// size: each becomes a chunk of its own, unless nothing was pending.
    /// - Returns: how many were dropped.
    @discardableResult
    func push(moving batch: inout [Element]) -> Int {
        guard !batch.isEmpty else { return 0 }
        lock.lock()
        let over = max(0, count + batch.count - capacity)
        if over > 0 { batch.removeLast(over) }
        count += batch.count
        if items.isEmpty && chunks.isEmpty {
            swap(&items, &batch)    // `batch` gets the emptied storage the consumer left
        } else {
            chunks.append(batch)
            batch = spares.popLast() ?? []
        }
        approximateCount.store(count)
        lock.unlock()
        if over > 0 { dropped.add(over) }
        return over
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
        lock.withLock {
            swap(&items, &spare)
            // Rare: whoever pushes batches reads them with `take`.
            for i in chunks.indices { spare.append(contentsOf: chunks[i]); chunks[i].removeAll(keepingCapacity: true) }
            if !chunks.isEmpty { recycleLocked(&chunks) }
            count = 0
            approximateCount.store(0)
        }
    }

    /// Everything pending, as `swapPending`, without copying what came in whole batches: `taken`
    /// must be empty, and goes back through `recycle` once read.
    func take(into taken: inout Taken) {
        precondition(taken.items.isEmpty && taken.chunks.isEmpty, "take needs an empty buffer")
        lock.withLock {
            swap(&items, &taken.items)
            swap(&chunks, &taken.chunks)
            count = 0
            approximateCount.store(0)
        }
    }

    /// Empties `taken`, keeping the storage of its chunks for the producers.
    func recycle(_ taken: inout Taken) {
        taken.forEachPart { $0.removeAll(keepingCapacity: true) }
        lock.withLock { recycleLocked(&taken.chunks) }
    }

    private func recycleLocked(_ emptied: inout [[Element]]) {
        while spares.count < Self.maxSpares, let c = emptied.popLast() { spares.append(c) }
        emptied.removeAll(keepingCapacity: true)
    }

    /// What `take` hands over: oldest first, `items` then each chunk.
    struct Taken {
        var items: [Element] = []
        var chunks: [[Element]] = []
        var isEmpty: Bool { items.isEmpty && chunks.isEmpty }

        /// `body` on each part, in that order.
        mutating func forEachPart(_ body: (inout [Element]) -> Void) {
            body(&items)
            for c in chunks.indices { body(&chunks[c]) }
        }
    }

    var isEmpty: Bool { lock.withLock { count == 0 } }
}
