/// Top-k heavy hitters in fixed memory: the Space-Saving algorithm.
///
/// Metwally, Agrawal, El Abbadi, "Efficient Computation of Frequent and Top-k Elements in Data
/// Streams" (ICDT 2005). Keeps at most `capacity` counters; a new key replaces the smallest one and
/// inherits its count as `error`, so `count - error ≤ true count ≤ count`, and every key whose true
/// count exceeds total/capacity is guaranteed to be present. The counters sit in a min-heap so the
/// replacement is O(log capacity); a dictionary maps keys to heap slots.
///
/// Used for top clients, top denied names and top registered domains in `dnsgate stats`.
public struct SpaceSaving<Key: Hashable> {
    public struct Entry {
        public let key: Key
        /// Upper bound of the key's weight.
        public var count: UInt64
        /// How much of `count` may belong to keys this one replaced.
        public var error: UInt64
        /// Lower bound of the key's weight.
        public var guaranteed: UInt64 { count - error }
    }

    public let capacity: Int
    private var heap: [Entry] = []            // min-heap on count
    private var slot: [Key: Int] = [:]
    /// Sum of all weights added.
    public private(set) var total: UInt64 = 0

    public init(capacity: Int) {
        precondition(capacity > 0, "SpaceSaving capacity must be positive")
        self.capacity = capacity
        heap.reserveCapacity(capacity); slot.reserveCapacity(capacity)
    }

    /// Number of keys currently tracked (at most `capacity`).
    public var count: Int { heap.count }

    public mutating func add(_ key: Key, weight: UInt64 = 1) {
        total &+= weight
        if let i = slot[key] {
            heap[i].count &+= weight
            siftDown(i)
        } else if heap.count < capacity {
            heap.append(Entry(key: key, count: weight, error: 0))
            slot[key] = heap.count - 1
            siftUp(heap.count - 1)
        } else {
            let evicted = heap[0]
            slot[evicted.key] = nil
            heap[0] = Entry(key: key, count: evicted.count &+ weight, error: evicted.count)
            slot[key] = 0
            siftDown(0)
        }
    }

    /// The estimate for one key, or nil when it is not tracked (its true count is then ≤ the minimum).
    public func entry(for key: Key) -> Entry? { slot[key].map { heap[$0] } }

    /// The `k` heaviest keys, heaviest first; ties by smaller error first.
    public func top(_ k: Int) -> [Entry] {
        Array(heap.sorted { $0.count != $1.count ? $0.count > $1.count : $0.error < $1.error }.prefix(max(0, k)))
    }

    private mutating func siftUp(_ start: Int) {
        var i = start
        while i > 0 {
            let p = (i - 1) / 2
            guard heap[i].count < heap[p].count else { break }
            swapAt(i, p); i = p
        }
    }

    private mutating func siftDown(_ start: Int) {
        var i = start
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < heap.count && heap[l].count < heap[m].count { m = l }
            if r < heap.count && heap[r].count < heap[m].count { m = r }
            if m == i { break }
            swapAt(i, m); i = m
        }
    }

    private mutating func swapAt(_ a: Int, _ b: Int) {
        heap.swapAt(a, b)
        slot[heap[a].key] = a
        slot[heap[b].key] = b
    }
}
