/// Hashes of the names and labels one detector pair has seen, each with the time it was last seen,
/// at most `cap` of them.
///
/// An open-addressing table (linear probing, load at most ½) keyed by `StableHash` values, which
/// are already well mixed, so a lookup is a mask and a compare or two. The `[UInt64: Double]`
/// dictionary it replaced ran SipHash over every key and rebuilt itself with `filter` at the cap;
/// under a flood of unique names both were a large share of the detector's cost.
///
/// A key and its time share a slot, so a lookup and the insert after it touch one cache line: with
/// the keys and the times in two arrays, each new name of a flood missed the cache twice.
struct RecentHashes {
    private struct Slot {
        var key: UInt64      // 0: empty slot
        var time: Double
    }
    private var slots: [Slot] = []
    private(set) var count = 0

    /// Time `h` was last remembered, or nil.
    @inline(__always)
    func lastSeen(_ h: UInt64) -> Double? { find(Self.key(h)).map { slots[$0].time } }

    /// Records `h` as seen at `t` (a later time wins). At the cap, first forgets what is older than
    /// `window`, then, if still full, the older half: a forgotten label that comes back counts as new
    /// information again, which errs towards alerting, never towards missing a tunnel.
    ///
    /// - Parameter scratch: reused to find the median time and to move the kept entries, so trimming
    ///   allocates nothing.
    mutating func remember(_ h: UInt64, at t: Double, cap: Int, window: Double, scratch: inout Scratch) {
        if let i = find(Self.key(h)) { slots[i].time = max(slots[i].time, t); return }
        if count >= cap { trim(now: t, cap: cap, window: window, scratch: &scratch) }
        if (count + 1) * 2 > slots.count { grow() }
        insertNew(Self.key(h), t)
    }

    /// What `remember` reuses between calls; one per detector.
    struct Scratch {
        var kept: [(time: Double, key: UInt64)] = []
    }

    /// Keeps the entries seen within `window`; if they still fill the table, only those newer than
    /// their median time. One pass gathers the entries, the selection moves each key with its time,
    /// and the newer side is put back: a second pass over the table and a second filter cost a fifth
    /// of the detector's time on a flood of unique names. The gathering writes through buffer
    /// pointers into scratch storage kept at the table's size: appended one by one, each entry paid
    /// a capacity and uniqueness check.
    private mutating func trim(now t: Double, cap: Int, window: Double, scratch: inout Scratch) {
        let start = t - window
        if scratch.kept.count < slots.count { scratch.kept = Array(repeating: (0, 0), count: slots.count) }
        scratch.kept.withUnsafeMutableBufferPointer { kept in
            var n = 0
            slots.withUnsafeBufferPointer { table in
                for e in table where e.key != 0 && e.time >= start { kept[n] = (e.time, e.key); n += 1 }
            }
            var gathered = UnsafeMutableBufferPointer(rebasing: kept[..<n])
            var from = 0
            var cutoff = -Double.infinity
            if n >= max(cap, 1) {
                // Left of the median are times at or below it, right of it at or above: keep the strictly newer.
                let k = n / 2
                cutoff = Self.select(k, in: &gathered) { $0.time }.time
                from = k + 1
            }
            clear()
            for e in gathered[from...] where e.time > cutoff { insertNew(e.key, e.time) }
        }
    }

    private mutating func grow() {
        let old = slots
        slots = [Slot](repeating: Slot(key: 0, time: 0), count: max(16, slots.count * 2))
        count = 0
        for e in old where e.key != 0 { insertNew(e.key, e.time) }
    }

    /// Forgets everything, keeping the table's storage (a recycled pair starts empty).
    mutating func removeAll() {
        guard count > 0 else { return }
        clear()
    }

    private mutating func clear() {
        slots.withUnsafeMutableBufferPointer { b in for i in b.indices { b[i].key = 0 } }   // one uniqueness check, not one per slot
        count = 0
    }

    /// The `k`-th smallest element by `time` (0-based), as `sorted()[k]` would give it, leaving the
    /// smaller on its left and the larger on its right: Hoare's selection, in place, linear on
    /// average; a full sort at every trim was a tenth of the detector's time.
    static func select<C: MutableCollection & RandomAccessCollection>(_ k: Int, in a: inout C, by time: (C.Element) -> Double) -> C.Element
        where C.Index == Int {
        precondition(a.startIndex == 0, "select needs a collection indexed from 0")
        var lo = 0, hi = a.count - 1
        while lo < hi {
            let pivot = time(a[lo + (hi - lo) / 2])
            var i = lo, j = hi
            while i <= j {
                while time(a[i]) < pivot { i += 1 }
                while time(a[j]) > pivot { j -= 1 }
                if i <= j { a.swapAt(i, j); i += 1; j -= 1 }
            }
            if k <= j { hi = j } else if k >= i { lo = i } else { break }
        }
        return a[k]
    }

    // 0 marks an empty slot; a hash of 0 is stored as 1 (one name in 2^64 shares a key with another).
    @inline(__always) private static func key(_ h: UInt64) -> UInt64 { h == 0 ? 1 : h }

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

    private mutating func insertNew(_ k: UInt64, _ t: Double) {
        let mask = slots.count - 1
        var i = Int(truncatingIfNeeded: k) & mask
        while slots[i].key != 0 { i = (i + 1) & mask }
        slots[i] = Slot(key: k, time: t); count += 1
    }
}
