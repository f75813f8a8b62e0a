/// Positions of entries stored elsewhere (the cache's nodes), found by a 64-bit hash the caller
/// computed once: open addressing with linear probing, at most half full, removal by backward shift.
///
/// It replaced a `[CacheKey: Int]`. On a flood of cache misses the dictionary hashed each key's name
/// again on every probe (three per insert into a full cache: look up, evict, insert), rehashed the
/// keys it shifted when one was removed, and retained and released names as it moved them; with
/// every query a miss that was about 7 % of the server's CPU (bench/RESULTS.md). A slot here is one
/// word, the hash's low half and the position, so a probe compares hashes without touching the
/// entry, and the caller's `matches` looks at the entry only when they agree.
struct SlotIndex {
    /// 0: empty; else the hash's low 32 bits above the position + 1.
    private var slots: [UInt64] = []
    private(set) var count = 0

    init() {}

    @inline(__always)
    private static func slot(_ hash: UInt64, _ position: Int) -> UInt64 { hash << 32 | UInt64(position + 1) }
    @inline(__always)
    private static func position(_ slot: UInt64) -> Int { Int(slot & 0xFFFF_FFFF) - 1 }
    /// Where probing for `hash` starts; a stored slot's is `home(slot >> 32, mask)`, as the index
    /// size never exceeds 2^32 and only the hash's low half is kept.
    @inline(__always)
    private static func home(_ hash: UInt64, _ mask: Int) -> Int { Int(truncatingIfNeeded: hash) & mask }

    /// The position stored under `hash` for which `matches` holds, else nil.
    @inline(__always)
    func find(_ hash: UInt64, _ matches: (Int) -> Bool) -> Int? { probe(hash, matches)?.position }

    /// The slot holding such a position, and the position: what `find` and `remove` both look for.
    @inline(__always)
    private func probe(_ hash: UInt64, _ matches: (Int) -> Bool) -> (slot: Int, position: Int)? {
        guard !slots.isEmpty else { return nil }
        return slots.withUnsafeBufferPointer { s in
            let mask = s.count - 1
            let tag = hash & 0xFFFF_FFFF
            var i = Self.home(hash, mask)
            while true {
                let v = s[i]
                if v == 0 { return nil }
                if v >> 32 == tag, matches(Self.position(v)) { return (i, Self.position(v)) }
                i = (i + 1) & mask
            }
        }
    }

    /// Stores `position` under `hash`; the caller knows no entry for its key is stored.
    mutating func insert(_ hash: UInt64, position: Int) {
        precondition(position >= 0 && position < Int(UInt32.max), "SlotIndex position out of range")
        if (count + 1) * 2 > slots.count { grow() }
        slots.withUnsafeMutableBufferPointer { s in
            let mask = s.count - 1
            ProbedIndex.insert(Self.slot(hash, position), home: Self.home(hash, mask), in: s.baseAddress!, mask: mask, empty: 0)
        }
        count += 1
    }

    /// Removes `position`, stored under `hash` (later slots of its run shift back: `ProbedIndex.remove`).
    mutating func remove(_ hash: UInt64, position: Int) {
        guard let at = probe(hash, { $0 == position })?.slot else { return }
        slots.withUnsafeMutableBufferPointer { s in
            let mask = s.count - 1
            ProbedIndex.remove(at: at, in: s.baseAddress!, mask: mask, empty: 0) { Self.home($0 >> 32, mask) }
        }
        count -= 1
    }

    private mutating func grow() {
        let old = slots
        slots = [UInt64](repeating: 0, count: max(16, old.count * 2))
        let mask = slots.count - 1
        slots.withUnsafeMutableBufferPointer { s in
            for v in old where v != 0 {
                ProbedIndex.insert(v, home: Self.home(v >> 32, mask), in: s.baseAddress!, mask: mask, empty: 0)
            }
        }
    }
}
