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
/// A class over buffers allocated once, at the capacity: as a struct of arrays, each of the five
/// arrays an update touched checked its uniqueness and bounds on every write, which cost more than
/// the update itself (and a sketch is never copied, only updated in place).
///
/// Used for top clients, top denied names and top registered domains in `dnsgate stats`.
public final class SpaceSaving<Key: Hashable> {
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
    /// Slot → entry, `count` of them initialised; slots are never reordered.
    private let entries: UnsafeMutablePointer<Entry>
    /// Min-heap by count, `count` long; each count mirrors entries[slot].count.
    private let heap: UnsafeMutablePointer<HeapItem>
    /// Slot → its index in `heap`.
    private let position: UnsafeMutablePointer<Int32>
    /// Slots by key hash: linear probing, at most half full, -1 for an empty position.
    private let index: UnsafeMutablePointer<Int32>
    private let indexMask: Int
    /// The filter: weight of untracked keys by hash cell (a power of two, 16 per counter).
    private let cells: UnsafeMutablePointer<UInt64>
    private let cellMask: Int
    /// Number of keys currently tracked (at most `capacity`).
    public private(set) var count = 0
    /// Sum of all weights added.
    public private(set) var total: UInt64 = 0
    /// Tracked keys replaced so far.
    public private(set) var replacements = 0

    public init(capacity: Int) {
        precondition(capacity > 0 && capacity < Int(Int32.max), "SpaceSaving capacity must be 1…2^31-2")
        self.capacity = capacity
        let cellCount = TableHash.powerOfTwo(atLeast: 16 * capacity)
        let indexSize = TableHash.powerOfTwo(atLeast: 2 * capacity)
        entries = .allocate(capacity: capacity)
        heap = .allocate(capacity: capacity)
        position = .allocate(capacity: capacity)
        index = .allocate(capacity: indexSize)
        index.initialize(repeating: -1, count: indexSize)
        indexMask = indexSize - 1
        cells = .allocate(capacity: cellCount)
        cells.initialize(repeating: 0, count: cellCount)
        cellMask = cellCount - 1
    }

    deinit {
        entries.deinitialize(count: count)
        entries.deallocate(); heap.deallocate(); position.deallocate(); index.deallocate(); cells.deallocate()
    }

    public func add(_ key: Key, weight: UInt64 = 1) {
        total &+= weight
        let hash = key.hashValue
        if let s = slot(of: key, hash: hash) {
            entries[s].count &+= weight
            let i = Int(position[s])
            heap[i].count = entries[s].count
            siftDown(i)
            return
        }
        let cell = hash & cellMask
        let bound = cells[cell]       // what this key may have weighed while untracked
        if count < capacity {
            let s = count
            (entries + s).initialize(to: Entry(key: key, count: bound &+ weight, error: bound, hash: hash))
            heap[s] = HeapItem(count: bound &+ weight, slot: Int32(s)); position[s] = Int32(s)
            count += 1
            insertIntoIndex(Int32(s), hash: hash)
            siftUp(s)
        } else if bound &+ weight > heap[0].count {
            let s = Int(heap[0].slot)
            let evictedHash = entries[s].hash, evictedCount = entries[s].count
            removeFromIndex(Int32(s), hash: evictedHash)
            replacements += 1
            let evictedCell = evictedHash & cellMask
            cells[evictedCell] = max(cells[evictedCell], evictedCount)
            entries[s] = Entry(key: key, count: bound &+ weight, error: bound, hash: hash)
            heap[0].count = bound &+ weight
            insertIntoIndex(Int32(s), hash: hash)
            siftDown(0)
        } else {
            cells[cell] = bound &+ weight
        }
    }

    /// The estimate for one key, or nil when it is not tracked (its true count is then ≤ the minimum).
    public func entry(for key: Key) -> Entry? { slot(of: key, hash: key.hashValue).map { entries[$0] } }

    // MARK: index

    private func slot(of key: Key, hash: Int) -> Int? {
        var p = hash & indexMask
        while index[p] >= 0 {
            let s = Int(index[p])
            if entries[s].hash == hash && entries[s].key == key { return s }
            p = (p + 1) & indexMask
        }
        return nil
    }

    private func insertIntoIndex(_ s: Int32, hash: Int) {
        ProbedIndex.insert(s, home: hash & indexMask, in: index, mask: indexMask)
    }

    /// Removes slot `s` from the index (`ProbedIndex.remove`).
    private func removeFromIndex(_ s: Int32, hash: Int) {
        var at = hash & indexMask
        while index[at] != s { at = (at + 1) & indexMask }
        ProbedIndex.remove(at: at, in: index, mask: indexMask) { entries[Int($0)].hash & indexMask }
    }

    /// The `k` heaviest keys, heaviest first; ties by smaller error first.
    public func top(_ k: Int) -> [Entry] {
        Array(UnsafeBufferPointer(start: entries, count: count)
            .sorted { $0.count != $1.count ? $0.count > $1.count : $0.error < $1.error }.prefix(max(0, k)))
    }

    private struct HeapItem {
        var count: UInt64
        let slot: Int32
    }

    // Both sifts carry the moving item in a register and write it once where it stops. Ties resolve
    // as a swap-based sift would (left child first, stop on equal).

    private func siftUp(_ start: Int) {
        var i = start
        let item = heap[i]
        while i > 0 {
            let p = (i - 1) / 2
            guard item.count < heap[p].count else { break }
            heap[i] = heap[p]; position[Int(heap[i].slot)] = Int32(i)
            i = p
        }
        heap[i] = item; position[Int(item.slot)] = Int32(i)
    }

    private func siftDown(_ start: Int) {
        let n = count
        var i = start
        let item = heap[i]
        while true {
            let l = 2 * i + 1
            guard l < n else { break }
            let m = l + 1 < n && heap[l + 1].count < heap[l].count ? l + 1 : l
            guard heap[m].count < item.count else { break }
            heap[i] = heap[m]; position[Int(heap[i].slot)] = Int32(i)
            i = m
        }
        heap[i] = item; position[Int(item.slot)] = Int32(i)
    }
}

@available(*, unavailable)
extension SpaceSaving: Sendable {}
