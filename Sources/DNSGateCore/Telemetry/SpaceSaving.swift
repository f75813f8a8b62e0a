/// Top-k heavy hitters in fixed memory: Filtered Space-Saving.
///
/// Space-Saving (Metwally, Agrawal, El Abbadi, ICDT 2005) keeps at most `capacity` counters; a new
/// key replaces the smallest one and inherits its count as `error`, so `count - error ≤ true count
/// ≤ count`. Under a flood of distinct names every add then evicts. The filtered variant (Homem and
/// Carvalho, "Finding top-k elements in data streams", Information Sciences 180, 2010) puts a row of
/// hashed counters in front: a key that is not tracked adds its weight to its cell, and replaces
/// the smallest counter only once its cell's count passes it (strictly: with many ties at the
/// minimum, "reaches" let three times as many one-off names in). Each cell is an upper bound on the
/// weight of any untracked key hashing to it (an evicted key leaves its count there), so the bounds
/// above still hold, and a key heavier than the smallest tracked count still gets in; a flood of
/// one-off names mostly touches cells and leaves the table alone (6 % of them replace a
/// counter with 16 cells per counter, against all of them without the filter).
///
/// Each key keeps one slot in `entries` until it is evicted, and an open-addressing index maps key →
/// slot; a min-heap of (count, slot) pairs orders them. Sifting moves small plain values only and
/// compares counts held in the heap itself, and an update hashes the key once: the same `hashValue`
/// finds its slot and its filter cell. (Sifting whole entries once was the telemetry's largest cost;
/// a `Dictionary` index then hashed each key again, and twice more on a replacement; comparing
/// through the slot to the entry's count made every level of a sift two dependent loads.)
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
        /// The key's `hashValue`: its index position and, masked, its filter cell, where its count goes
        /// when it is evicted.
        fileprivate let hash: Int
    }

    public let capacity: Int
    private var entries: [Entry] = []          // slot → entry; slots are never reordered
    private var heap: [HeapItem] = []          // min-heap by count; each count mirrors entries[slot].count
    private var position: [Int32] = []         // slot → its index in `heap`
    /// Slots by key hash: linear probing, at most half full, -1 for an empty position.
    private var index: [Int32]
    /// The filter: weight of untracked keys by hash cell (a power of two, 16 per counter).
    private var cells: [UInt64]
    /// Sum of all weights added.
    public private(set) var total: UInt64 = 0
    /// Tracked keys replaced so far.
    public private(set) var replacements = 0

    public init(capacity: Int) {
        precondition(capacity > 0 && capacity < Int(Int32.max), "SpaceSaving capacity must be 1…2^31-2")
        self.capacity = capacity
        cells = [UInt64](repeating: 0, count: TableHash.powerOfTwo(atLeast: 16 * capacity))
        index = [Int32](repeating: -1, count: TableHash.powerOfTwo(atLeast: 2 * capacity))
        entries.reserveCapacity(capacity); heap.reserveCapacity(capacity)
        position.reserveCapacity(capacity)
    }

    /// Number of keys currently tracked (at most `capacity`).
    public var count: Int { entries.count }

    public mutating func add(_ key: Key, weight: UInt64 = 1) { add(key, hash: key.hashValue, weight: weight) }

    /// `add` for a caller that has the key's `hashValue` already.
    public mutating func add(_ key: Key, hash: Int, weight: UInt64 = 1) {
        total &+= weight
        if let s = slot(of: key, hash: hash) {
            entries[s].count &+= weight
            let i = Int(position[s])
            heap[i].count = entries[s].count
            siftDown(i)
            return
        }
        let cell = hash & (cells.count - 1)
        let bound = cells[cell]       // what this key may have weighed while untracked
        if entries.count < capacity {
            let s = Int32(entries.count)
            entries.append(Entry(key: key, count: bound &+ weight, error: bound, hash: hash))
            heap.append(HeapItem(count: bound &+ weight, slot: s)); position.append(Int32(heap.count - 1))
            insertIntoIndex(s, hash: hash)
            siftUp(heap.count - 1)
        } else if bound &+ weight > heap[0].count {
            let s = heap[0].slot
            let evicted = entries[Int(s)]
            removeFromIndex(s, hash: evicted.hash)
            replacements += 1
            let evictedCell = evicted.hash & (cells.count - 1)
            cells[evictedCell] = max(cells[evictedCell], evicted.count)
            entries[Int(s)] = Entry(key: key, count: bound &+ weight, error: bound, hash: hash)
            heap[0].count = bound &+ weight
            insertIntoIndex(s, hash: hash)
            siftDown(0)
        } else {
            cells[cell] = bound &+ weight
        }
    }

    /// The estimate for one key, or nil when it is not tracked (its true count is then ≤ the minimum).
    public func entry(for key: Key) -> Entry? { slot(of: key, hash: key.hashValue).map { entries[$0] } }

    // MARK: index

    private func slot(of key: Key, hash: Int) -> Int? {
        let mask = index.count - 1
        var p = hash & mask
        while index[p] >= 0 {
            let s = Int(index[p])
            if entries[s].hash == hash && entries[s].key == key { return s }
            p = (p + 1) & mask
        }
        return nil
    }

    private mutating func insertIntoIndex(_ s: Int32, hash: Int) {
        let mask = index.count - 1
        var p = hash & mask
        while index[p] >= 0 { p = (p + 1) & mask }
        index[p] = s
    }

    /// Removes slot `s` and closes the gap by moving back the entries after it that may (backward-
    /// shift deletion): no tombstones, so probes stay as short as the load allows.
    private mutating func removeFromIndex(_ s: Int32, hash: Int) {
        let mask = index.count - 1
        var gap = hash & mask
        while index[gap] != s { gap = (gap + 1) & mask }
        var p = gap
        while true {
            p = (p + 1) & mask
            let moving = index[p]
            if moving < 0 { break }
            let home = entries[Int(moving)].hash & mask
            // The entry at p must stay if its home lies cyclically in (gap, p]; else it fills the gap.
            let staysPut = gap <= p ? (gap < home && home <= p) : (gap < home || home <= p)
            if staysPut { continue }
            index[gap] = moving
            gap = p
        }
        index[gap] = -1
    }

    /// The `k` heaviest keys, heaviest first; ties by smaller error first.
    public func top(_ k: Int) -> [Entry] {
        Array(entries.sorted { $0.count != $1.count ? $0.count > $1.count : $0.error < $1.error }.prefix(max(0, k)))
    }

    private struct HeapItem {
        var count: UInt64
        let slot: Int32
    }

    // Both sifts carry the moving item in a register and write it once where it stops, through
    // buffer pointers: a swap per level, each element store with its own uniqueness check, cost
    // three times as much. Ties resolve as a swap-based sift would (left child first, stop on equal).

    private mutating func siftUp(_ start: Int) {
        heap.withUnsafeMutableBufferPointer { h in
            position.withUnsafeMutableBufferPointer { pos in
                var i = start
                let item = h[i]
                while i > 0 {
                    let p = (i - 1) / 2
                    guard item.count < h[p].count else { break }
                    h[i] = h[p]; pos[Int(h[i].slot)] = Int32(i)
                    i = p
                }
                h[i] = item; pos[Int(item.slot)] = Int32(i)
            }
        }
    }

    private mutating func siftDown(_ start: Int) {
        heap.withUnsafeMutableBufferPointer { h in
            position.withUnsafeMutableBufferPointer { pos in
                let n = h.count
                var i = start
                let item = h[i]
                while true {
                    let l = 2 * i + 1
                    guard l < n else { break }
                    let m = l + 1 < n && h[l + 1].count < h[l].count ? l + 1 : l
                    guard h[m].count < item.count else { break }
                    h[i] = h[m]; pos[Int(h[i].slot)] = Int32(i)
                    i = m
                }
                h[i] = item; pos[Int(item.slot)] = Int32(i)
            }
        }
    }
}
