/// Insertion into and deletion from an open-addressing index with linear probing, shared by the
/// tables that keep one (`SpaceSaving`, `FirstQueries`): positions hold an `Int32` (-1 for empty) and
/// the index size is a power of two.
enum ProbedIndex {
    /// Puts `value` in the first empty position from `home` on; the index must have one (the tables
    /// keep it at most half full).
    @inline(__always)
    static func insert(_ value: Int32, home: Int, in index: UnsafeMutablePointer<Int32>, mask: Int) {
        var p = home
        while index[p] >= 0 { p = (p + 1) & mask }
        index[p] = value
    }

    /// Empties position `gap` and moves back the entries after it that may (backward-shift deletion):
    /// no tombstones, so probes stay as short as the load allows.
    ///
    /// - Parameter home: the position an entry's hash points to (its hash masked to the index size).
    @inline(__always)
    static func remove(at gap: Int, in index: UnsafeMutablePointer<Int32>, mask: Int, home: (Int32) -> Int) {
        var gap = gap, p = gap
        while true {
            p = (p + 1) & mask
            let moving = index[p]
            if moving < 0 { break }
            let h = home(moving)
            // The entry at p must stay if its home lies cyclically in (gap, p]; else it fills the gap.
            let staysPut = gap <= p ? (gap < h && h <= p) : (gap < h || h <= p)
            if staysPut { continue }
            index[gap] = moving
            gap = p
        }
        index[gap] = -1
    }
}
