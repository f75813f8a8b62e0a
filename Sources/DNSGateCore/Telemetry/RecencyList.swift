/// Least-recently-used order of a table's keys: O(1) per insert, touch, removal and eviction.
///
/// A doubly linked list threaded through one array by index, with freed slots reused; the owner
/// keeps each key's handle in its own state. There is no compaction pass: an earlier design appended
/// a record per touch and filtered the backlog now and then, which cost 1.5 ms every few thousand
/// queries once the detector tracked 2,048 pairs, and showed as p99 latency. Order is arrival order,
/// never hash order, so eviction is the same in every process (Swift seeds dictionary hashing per
/// process) and a replayed log evicts identically.
public struct RecencyList<Key> {
    private struct Node {
        var key: Key?
        var older: Int32 = -1
        var newer: Int32 = -1
    }
    private var nodes: [Node] = []
    private var newest: Int32 = -1
    private var oldest: Int32 = -1
    private var freeSlots: [Int32] = []
    /// Keys in the list.
    public private(set) var count = 0

    public init() {}

    /// Adds `key` as the most recent one and returns its handle.
    public mutating func insert(_ key: Key) -> Int {
        let i: Int32
        if let f = freeSlots.popLast() { i = f; nodes[Int(f)] = Node(key: key) } else {
            precondition(nodes.count < Int32.max, "RecencyList is full")
            i = Int32(nodes.count); nodes.append(Node(key: key))
        }
        count += 1
        linkAsNewest(i)
        return Int(i)
    }

    /// Marks the key behind `handle` as just used.
    public mutating func touch(_ handle: Int) {
        let i = Int32(handle)
        guard newest != i else { return }
        unlink(i); linkAsNewest(i)
    }

    /// Forgets the key behind `handle` (the owner dropped it); the handle becomes invalid.
    public mutating func remove(_ handle: Int) {
        let i = Int32(handle)
        precondition(nodes[Int(i)].key != nil, "RecencyList handle already removed")
        unlink(i)
        nodes[Int(i)].key = nil
        freeSlots.append(i)
        count -= 1
    }

    /// The least recently used key, left in place.
    public var oldestKey: Key? { oldest >= 0 ? nodes[Int(oldest)].key : nil }

    /// Removes and returns the least recently used key.
    public mutating func popOldest() -> Key? {
        guard oldest >= 0 else { return nil }
        let key = nodes[Int(oldest)].key
        remove(Int(oldest))
        return key
    }

    /// The handle of the least recently used key that `matches`, looking at the `limit` oldest keys
    /// only; nil when none of them does.
    public func oldest(within limit: Int, where matches: (Key) -> Bool) -> Int? {
        var i = oldest, seen = 0
        while i >= 0 && seen < limit {
            if let key = nodes[Int(i)].key, matches(key) { return Int(i) }
            i = nodes[Int(i)].newer
            seen += 1
        }
        return nil
    }

    /// The key behind `handle`.
    public func key(_ handle: Int) -> Key? { nodes[handle].key }

    private mutating func unlink(_ i: Int32) {
        // The two links only: copying the node would copy (retain and release) its key.
        let older = nodes[Int(i)].older, newer = nodes[Int(i)].newer
        if older >= 0 { nodes[Int(older)].newer = newer } else { oldest = newer }
        if newer >= 0 { nodes[Int(newer)].older = older } else { newest = older }
        nodes[Int(i)].older = -1; nodes[Int(i)].newer = -1
    }

    private mutating func linkAsNewest(_ i: Int32) {
        nodes[Int(i)].older = newest
        nodes[Int(i)].newer = -1
        if newest >= 0 { nodes[Int(newest)].newer = i }
        newest = i
        if oldest < 0 { oldest = i }
    }
}
