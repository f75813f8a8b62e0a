/// Hashes of the names and labels one detector pair has seen, each with the time it was last seen,
/// at most `DetectorConfig.maxLabelsPerPair` of them.
///
/// Two generations of at most half that each: new hashes go into the newer one, and when it is full
/// it becomes the older one and the old older one is forgotten. A hash found in the older generation
/// moves into the newer one, with its time, so the names a client keeps coming back to stay while
/// new ones pass by, as long as each comes back before a generation has filled. Making room costs
/// one pass over a generation's table every time that many hashes have come. (Trimming one table
/// to the newer half of its entries by time, a median selection and a rebuild, cost more than the
/// lookups themselves on a flood of unique names.) A forgotten hash that comes back counts as new
/// information again, which errs towards alerting, never towards missing a tunnel; so the memory has
/// to hold more names than the thresholds count: a client looping over 129 service host names under
/// one domain was quarantined when a pair held 256 hashes (two a name: the name and its first label).
///
/// A generation is also full when its table would have to grow and `LabelMemory` has no room left:
/// every pair's tables hold `DetectorConfig.guaranteedLabelsPerPair` hashes whatever the others do,
/// and beyond that draw on one budget all pairs share (`DetectorConfig.sharedLabels`).
///
/// Each generation is an open-addressing table (linear probing, load at most ½) keyed by 64-bit
/// hashes (`StableHash`, `TableHash`), which are already well mixed, so a lookup is a mask and a
/// compare or two. A key and its time share a slot, so a lookup and the insert after it touch one
/// cache line.
struct RecentHashes {
    private var newer = Generation()
    private var older = Generation()
    private let memory: LabelMemory

    init(memory: LabelMemory) { self.memory = memory }

    /// Hashes held; one seen in both generations counts twice until the older one goes.
    var count: Int { newer.count + older.count }

    /// Table slots held beyond the guaranteed ones, drawn from `memory`.
    var sharedSlots: Int { memory.sharedPart(of: newer.slotCount) + memory.sharedPart(of: older.slotCount) }

    /// Time `h` was last remembered, or nil.
    @inline(__always)
    func lastSeen(_ h: UInt64) -> Double? {
        let k = Generation.key(h)
        return newer.time(of: k) ?? older.time(of: k)
    }

    /// `lastSeen`, and a hash found in the older generation only moves into the newer one.
    @inline(__always)
    mutating func recall(_ h: UInt64) -> Double? {
        let k = Generation.key(h)
        if let t = newer.time(of: k) { return t }
        guard let t = older.time(of: k) else { return nil }
        add(k, t)
        return t
    }

    /// Whether `h` is new at `t`: not seen within `window` before it. A new hash is remembered at
    /// `t`; one seen within the window keeps its time (as `recall`, it moves into the newer
    /// generation). The same as `recall` followed, when that found nothing recent, by `remember`,
    /// in three table probes where those two took five: on a flood of new names this runs for each
    /// name and each of its labels.
    mutating func noteIfNew(_ h: UInt64, at t: Double, window: Double) -> Bool {
        let k = Generation.key(h)
        if let i = newer.find(k) {
            let last = newer.time(at: i)
            if t - last <= window { return false }
            newer.setTime(at: i, max(last, t))
            return true
        }
        guard let last = older.time(of: k) else {
            add(k, t)
            return true
        }
        let isNew = t - last > window
        add(k, isNew ? max(last, t) : last)
        return isNew
    }

    /// Records `h` as seen at `t` (a later time wins), in the newer generation.
    mutating func remember(_ h: UInt64, at t: Double) {
        let k = Generation.key(h)
        if newer.refresh(k, at: t) { return }
        add(k, max(t, older.time(of: k) ?? t))
    }

    /// Forgets everything (a recycled pair starts empty), keeping the tables' storage up to the
    /// guaranteed size and handing back what it drew from the shared budget.
    mutating func removeAll() {
        releaseSharedSlots()
        newer.removeAll(shrinkingAbove: memory.guaranteedSlots)
        older.removeAll(shrinkingAbove: memory.guaranteedSlots)
    }

    /// Hands back the shared slots; for the owner's deinit.
    func releaseSharedSlots() {
        let shared = sharedSlots
        if shared > 0 { memory.release(shared) }
    }

    /// Adds `k`, absent from the newer generation, to it; when it is full, or its table cannot grow,
    /// it becomes the older generation first.
    private mutating func add(_ k: UInt64, _ t: Double) {
        let m = memory
        if newer.count >= m.generationCap || !Self.makeRoom(in: &newer, m) {
            swap(&newer, &older)
            newer.removeAll(shrinkingAbove: .max)
            _ = Self.makeRoom(in: &newer, m)   // empty: room already, or a first table within the guaranteed slots
        }
        newer.insert(k, t)
    }

    /// Whether `g` can take one more hash, growing its table if its load would pass ½ and the
    /// memory allows.
    private static func makeRoom(in g: inout Generation, _ m: LabelMemory) -> Bool {
        guard g.isFull else { return true }
        let size = max(16, g.slotCount * 2)
        guard m.reserve(m.sharedPart(of: size) - m.sharedPart(of: g.slotCount)) else { return false }
        g.grow(to: size)
        return true
    }

    private struct Generation {
        private struct Slot {
            var key: UInt64      // 0: empty slot
            var time: Double
        }
        private var slots: [Slot] = []
        private(set) var count = 0

        var slotCount: Int { slots.count }

        /// Whether one more key would take the load past ½.
        var isFull: Bool { (count + 1) * 2 > slots.count }

        // 0 marks an empty slot; a hash of 0 is stored as 1 (one name in 2^64 shares a key with another).
        @inline(__always) static func key(_ h: UInt64) -> UInt64 { h == 0 ? 1 : h }

        @inline(__always)
        func time(of k: UInt64) -> Double? { find(k).map { slots[$0].time } }

        @inline(__always) func time(at i: Int) -> Double { slots[i].time }
        @inline(__always) mutating func setTime(at i: Int, _ t: Double) { slots[i].time = t }

        /// Sets `k`'s time to `t` if later; false when `k` is not here.
        mutating func refresh(_ k: UInt64, at t: Double) -> Bool {
            guard let i = find(k) else { return false }
            slots[i].time = max(slots[i].time, t)
            return true
        }

        /// Adds `k`, which must be absent, to a table with room for it (`isFull` false).
        mutating func insert(_ k: UInt64, _ t: Double) {
            let mask = slots.count - 1
            var i = Int(truncatingIfNeeded: k) & mask
            while slots[i].key != 0 { i = (i + 1) & mask }
            slots[i] = Slot(key: k, time: t); count += 1
        }

        /// Empties the table; one larger than `limit` slots is let go, to start again at 16.
        mutating func removeAll(shrinkingAbove limit: Int) {
            if slots.count > limit { slots = []; count = 0; return }
            guard count > 0 else { return }
            slots.withUnsafeMutableBufferPointer { b in for i in b.indices { b[i].key = 0 } }   // one uniqueness check, not one per slot
            count = 0
        }

        @inline(__always)
        func find(_ k: UInt64) -> Int? {
            guard !slots.isEmpty else { return nil }
            let mask = slots.count - 1
            var i = Int(truncatingIfNeeded: k) & mask
            while slots[i].key != 0 {
                if slots[i].key == k { return i }
                i = (i + 1) & mask
            }
            return nil
        }

        mutating func grow(to size: Int) {
            let old = slots
            slots = [Slot](repeating: Slot(key: 0, time: 0), count: size)
            count = 0
            for e in old where e.key != 0 { insert(e.key, e.time) }
        }
    }
}

/// The table space of every pair's `RecentHashes`: how many hashes a pair may hold, the part each
/// pair may hold whatever the others do, and the budget beyond it that all pairs share, first come
/// first served, until they are dropped or recycled. One per detector; not thread-safe, like it.
final class LabelMemory {
    /// Hashes per generation (half a pair's hashes).
    let generationCap: Int
    /// Table slots per generation that draw nothing from the shared budget.
    let guaranteedSlots: Int
    /// Shared slots not yet drawn.
    private(set) var freeSharedSlots: Int
    let sharedSlots: Int

    /// - Parameters:
    ///   - labelsPerPair: hashes a pair may hold (`DetectorConfig.maxLabelsPerPair`).
    ///   - guaranteedLabelsPerPair: hashes every pair may hold whatever the others do.
    ///   - sharedLabels: hashes beyond those, all pairs together; a hash takes up to two slots.
    init(labelsPerPair: Int, guaranteedLabelsPerPair: Int, sharedLabels: Int) {
        generationCap = max(1, labelsPerPair / 2)
        // A generation of n hashes at load ½ needs 2n slots, a power of two, and tables start at 16.
        guaranteedSlots = TableHash.powerOfTwo(atLeast: max(16, 2 * max(1, guaranteedLabelsPerPair / 2)))
        sharedSlots = max(0, 2 * sharedLabels)
        freeSharedSlots = sharedSlots
    }

    /// The slots of a table of `size` that count against the shared budget.
    @inline(__always)
    func sharedPart(of size: Int) -> Int { max(0, size - guaranteedSlots) }

    /// Takes `n` shared slots if that many are left.
    func reserve(_ n: Int) -> Bool {
        guard n <= freeSharedSlots else { return false }
        freeSharedSlots -= n
        return true
    }

    func release(_ n: Int) { freeSharedSlots = min(sharedSlots, freeSharedSlots + n) }
}
