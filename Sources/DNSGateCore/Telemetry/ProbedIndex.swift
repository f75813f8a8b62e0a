/// Insertion into and deletion from an open-addressing index with linear probing, shared by the
/// tables that keep one (`SpaceSaving`, `FirstQueries`, the cache's `SlotIndex`): positions hold a
/// slot value, one of which means empty (-1 for the `Int32` indexes), and the index size is a power
/// of two.
enum ProbedIndex {
    /// Puts `value` in the first empty position from `home` on; the index must have one (the tables
    /// keep it at most half full).
    @inline(__always)
    static func insert<Slot: Equatable>(_ value: Slot, home: Int, in index: UnsafeMutablePointer<Slot>, mask: Int, empty: Slot) {
        var p = home
        while index[p] != empty { p = (p + 1) & mask }
        index[p] = value
    }

    /// Empties position `gap` and moves back the entries after it that may (backward-shift deletion,
    /// Knuth, TAOCP vol. 3, algorithm R): no tombstones, so probes stay as short as the load allows.
    ///
    /// - Parameter home: the position an entry's hash points to (its hash masked to the index size).
    @inline(__always)
    static func remove<Slot: Equatable>(at gap: Int, in index: UnsafeMutablePointer<Slot>, mask: Int, empty: Slot, home: (Slot) -> Int) {
        var gap = gap, p = gap
        while true {
            p = (p + 1) & mask
            let moving = index[p]
            if moving == empty { break }
            let h = home(moving)
            // The entry at p must stay if its home lies cyclically in (gap, p]; else it fills the gap.
            let staysPut = gap <= p ? (gap < h && h <= p) : (gap < h || h <= p)
            if staysPut { continue }
            index[gap] = moving
            gap = p
        }
        index[gap] = empty
    }

    /// `insert` for the `Int32` indexes, where -1 is empty.
    @inline(__always)
    static func insert(_ value: Int32, home: Int, in index: UnsafeMutablePointer<Int32>, mask: Int) {
        insert(value, home: home, in: index, mask: mask, empty: -1)
    }

    /// `remove` for the `Int32` indexes, where -1 is empty.
    @inline(__always)
    static func remove(at gap: Int, in index: UnsafeMutablePointer<Int32>, mask: Int, home: (Int32) -> Int) {
        remove(at: gap, in: index, mask: mask, empty: -1, home: home)
    }
}
