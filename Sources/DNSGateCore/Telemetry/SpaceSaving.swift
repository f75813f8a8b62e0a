/// Top-k heavy hitters in fixed memory: the Space-Saving algorithm.
///
/// Metwally, Agrawal, El Abbadi, "Efficient Computation of Frequent and Top-k Elements in Data
/// Streams" (ICDT 2005). Keeps at most `capacity` counters; a new key replaces the smallest one and
/// inherits its count as `error`, so `count - error ≤ true count ≤ count`, and every key whose true
/// count exceeds total/capacity is guaranteed to be present.
///
/// Each key keeps one slot in `entries` until it is evicted, and the dictionary maps key → slot; a
/// min-heap of slot numbers orders them by count. Sifting moves small integers only, so an update
/// hashes the key once (twice more on eviction) instead of once per heap level: under a flood of
/// distinct names every add evicts, and per-level rehashing of names was the telemetry thread's
/// largest cost.
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
    private var entries: [Entry] = []          // slot → entry; slots are never reordered
    private var heap: [Int32] = []             // min-heap of slots, by entries[slot].count
    private var position: [Int32] = []         // slot → its index in `heap`
    private var slot: [Key: Int32] = [:]
    /// Sum of all weights added.
    public private(set) var total: UInt64 = 0

    public init(capacity: Int) {
        precondition(capacity > 0 && capacity < Int(Int32.max), "SpaceSaving capacity must be 1…2^31-2")
        self.capacity = capacity
        entries.reserveCapacity(capacity); heap.reserveCapacity(capacity)
        position.reserveCapacity(capacity); slot.reserveCapacity(capacity)
    }

    /// Number of keys currently tracked (at most `capacity`).
    public var count: Int { entries.count }

    public mutating func add(_ key: Key, weight: UInt64 = 1) {
        total &+= weight
        if let s = slot[key] {
            entries[Int(s)].count &+= weight
            siftDown(Int(position[Int(s)]))
        } else if entries.count < capacity {
            let s = Int32(entries.count)
            entries.append(Entry(key: key, count: weight, error: 0))
            heap.append(s); position.append(Int32(heap.count - 1))
            slot[key] = s
            siftUp(heap.count - 1)
        } else {
            let s = heap[0]
            let evicted = entries[Int(s)]
            slot[evicted.key] = nil
            entries[Int(s)] = Entry(key: key, count: evicted.count &+ weight, error: evicted.count)
            slot[key] = s
            siftDown(0)
        }
    }

    /// The estimate for one key, or nil when it is not tracked (its true count is then ≤ the minimum).
    public func entry(for key: Key) -> Entry? { slot[key].map { entries[Int($0)] } }

    /// The `k` heaviest keys, heaviest first; ties by smaller error first.
    public func top(_ k: Int) -> [Entry] {
        Array(entries.sorted { $0.count != $1.count ? $0.count > $1.count : $0.error < $1.error }.prefix(max(0, k)))
    }

    @inline(__always) private func weight(at i: Int) -> UInt64 { entries[Int(heap[i])].count }

    private mutating func siftUp(_ start: Int) {
        var i = start
        while i > 0 {
            let p = (i - 1) / 2
            guard weight(at: i) < weight(at: p) else { break }
            swapAt(i, p); i = p
        }
    }

    private mutating func siftDown(_ start: Int) {
        var i = start
        let n = heap.count
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < n && weight(at: l) < weight(at: m) { m = l }
            if r < n && weight(at: r) < weight(at: m) { m = r }
            if m == i { break }
            swapAt(i, m); i = m
        }
    }

    @inline(__always) private mutating func swapAt(_ a: Int, _ b: Int) {
        heap.swapAt(a, b)
        position[Int(heap[a])] = Int32(a)
        position[Int(heap[b])] = Int32(b)
    }
}
