/// Hashes of the names and labels one detector pair has seen, each with the time it was last seen,
/// at most `cap` of them (2 when `cap` is 1).
///
/// Two generations of at most `cap / 2` hashes each: new hashes go into the newer one, and when it
/// is full it becomes the older one and the old older one is forgotten. So the table always holds
/// the last `cap / 2` to `cap` hashes remembered, a hash seen again moves into the newer generation,
/// and making room costs one pass over a table of `cap` slots every `cap / 2` new hashes. (Trimming
/// one table to the newer half of its entries by time, a median selection and a rebuild, cost more
/// than the lookups themselves on a flood of unique names.) A forgotten hash that comes back counts
/// as new information again, which errs towards alerting, never towards missing a tunnel.
///
/// Each generation is an open-addressing table (linear probing, load at most ½) keyed by 64-bit
/// hashes (`StableHash`, `TableHash`), which are already well mixed, so a lookup is a mask and a
/// compare or two. A key and its time share a slot, so a lookup and the insert after it touch one
/// cache line.
struct RecentHashes {
    private var newer = Generation()
    private var older = Generation()

    /// Hashes held; one seen in both generations counts twice until the older one goes.
    var count: Int { newer.count + older.count }

    /// Time `h` was last remembered, or nil.
    @inline(__always)
    func lastSeen(_ h: UInt64) -> Double? {
        let k = Generation.key(h)
        return newer.time(of: k) ?? older.time(of: k)
    }

    /// Records `h` as seen at `t` (a later time wins), in the newer generation; when that holds
    /// `cap / 2` hashes already, it becomes the older one first.
    mutating func remember(_ h: UInt64, at t: Double, cap: Int) {
        let k = Generation.key(h)
        if newer.refresh(k, at: t) { return }
        let time = max(t, older.time(of: k) ?? t)
        if newer.count >= max(1, cap / 2) {
            swap(&newer, &older)
            newer.removeAll()
        }
        newer.insert(k, time)
    }

    /// Forgets everything, keeping the tables' storage (a recycled pair starts empty).
    mutating func removeAll() {
        newer.removeAll()
        older.removeAll()
    }

    private struct Generation {
        private struct Slot {
            var key: UInt64      // 0: empty slot
            var time: Double
        }
        private var slots: [Slot] = []
        private(set) var count = 0

        // 0 marks an empty slot; a hash of 0 is stored as 1 (one name in 2^64 shares a key with another).
        @inline(__always) static func key(_ h: UInt64) -> UInt64 { h == 0 ? 1 : h }

        @inline(__always)
        func time(of k: UInt64) -> Double? { find(k).map { slots[$0].time } }

        /// Sets `k`'s time to `t` if later; false when `k` is not here.
        mutating func refresh(_ k: UInt64, at t: Double) -> Bool {
            guard let i = find(k) else { return false }
            slots[i].time = max(slots[i].time, t)
            return true
        }

        /// Adds `k`, which must be absent.
        mutating func insert(_ k: UInt64, _ t: Double) {
            if (count + 1) * 2 > slots.count { grow() }
            let mask = slots.count - 1
            var i = Int(truncatingIfNeeded: k) & mask
            while slots[i].key != 0 { i = (i + 1) & mask }
            slots[i] = Slot(key: k, time: t); count += 1
        }

        mutating func removeAll() {
            guard count > 0 else { return }
            slots.withUnsafeMutableBufferPointer { b in for i in b.indices { b[i].key = 0 } }   // one uniqueness check, not one per slot
            count = 0
        }

        @inline(__always)
        private func find(_ k: UInt64) -> Int? {
            guard !slots.isEmpty else { return nil }
            let mask = slots.count - 1
            var i = Int(truncatingIfNeeded: k) & mask
            while slots[i].key != 0 {
                if slots[i].key == k { return i }
                i = (i + 1) & mask
            }
            return nil
        }

        private mutating func grow() {
            let old = slots
            slots = [Slot](repeating: Slot(key: 0, time: 0), count: max(16, slots.count * 2))
            count = 0
            for e in old where e.key != 0 { insert(e.key, e.time) }
        }
    }
}
