/// Least-recently-used order for a dictionary's keys, in amortised O(1) per touch.
///
/// Every touch appends (key, sequence number); the owner keeps each key's latest sequence number in
/// its own state. The oldest live key is found by popping from the front and skipping entries whose
/// number is no longer the key's latest. The queue is compacted when stale entries outnumber live
/// ones four to one, so it never exceeds about five entries per tracked key. Order is arrival order,
/// never hash order, so eviction is the same in every process (Swift seeds dictionary hashing per
/// process).
public struct RecencyQueue<Key: Hashable> {
    private var entries: [(key: Key, seq: UInt64)] = []
    private var head = 0
    public private(set) var nextSequence: UInt64 = 0

    public init() {}

    /// Records a touch and returns the sequence number the owner must store for `key`.
    public mutating func touch(_ key: Key) -> UInt64 {
        nextSequence += 1
        entries.append((key, nextSequence))
        return nextSequence
    }

    /// Removes and returns the least recently touched live key.
    ///
    /// - Parameters:
    ///   - latest: the sequence number the owner holds for a key, nil when it no longer tracks it.
    public mutating func popOldest(latest: (Key) -> UInt64?) -> Key? {
        while head < entries.count {
            let e = entries[head]; head += 1
            if latest(e.key) == e.seq { return e.key }
        }
        return nil
    }

    /// Drops stale entries once they dominate; call after touches with the owner's live count.
    public mutating func compactIfNeeded(liveCount: Int, latest: (Key) -> UInt64?) {
        guard entries.count > 4 * liveCount + 64 else { return }   // popped entries count too: they still hold memory
        entries = entries[head...].filter { latest($0.key) == $0.seq }
        head = 0
    }

    /// Entries held, live and stale.
    public var storedEntries: Int { entries.count - head }
}
