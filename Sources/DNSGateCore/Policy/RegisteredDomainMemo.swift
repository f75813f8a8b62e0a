/// Registered domains of recent names, remembered by the name's parent (the name without its first
/// label), so that `d1.denied.test`, `d2.denied.test`… cost one hash of `denied.test` and a compare
/// instead of a Public Suffix List walk (a hash per suffix) and a lookup of the result.
///
/// Every child `x.P` of a parent `P` that is not itself in the list's table (as a rule, or as the
/// parent of one) has the same public-suffix length as `P`: the walk stops at `P` for all of them.
/// So their registered domain is the same suffix of `P`, or each name itself when `P` is a public
/// suffix by the implicit `*` rule; only such parents are remembered. Names under listed parents
/// (`x.com`, anything below a wildcard rule) are computed every time. Direct-mapped: a collision
/// replaces the older parent, so memory is fixed. Not thread-safe.
///
/// A parent is told apart by its full 64-bit `TableHash`, keyed per process, not by its bytes: a
/// lookup reads one slot instead of following it to a copy of the parent (a cache miss of its own on
/// a flood of registered domains). Two parents in use share a hash about once in 2^64 lookups, and
/// which ones cannot be worked out from outside.
public struct RegisteredDomainMemo {
    private struct Entry {
        /// The parent's hash; 0 for an empty slot (a hash of 0 is stored as 1).
        var parent: UInt64 = 0
        /// nil: each child is its own registered domain.
        var domain: HashedName?
    }
    private var slots: [Entry]
    private let mask: Int

    /// - Parameter capacity: rounded up to a power of two.
    public init(capacity: Int = 16_384) {
        let n = TableHash.powerOfTwo(atLeast: capacity)
        slots = Array(repeating: Entry(), count: n)
        mask = n - 1
    }

    /// `suffixes.registeredDomain(name)`, from the memo when the parent is known.
    public mutating func registeredDomain(of name: DNSName, in suffixes: PublicSuffixList) -> DNSName {
        registeredDomain(of: HashedName(name), in: suffixes).name
    }

    /// `suffixes.registeredDomain(name)` with its hash, from the memo when the parent is known; the
    /// hash is computed once per remembered parent (or taken from `name` when that is the domain).
    public mutating func registeredDomain(of name: HashedName, in suffixes: PublicSuffixList) -> HashedName {
        // The parent is hashed through a buffer pointer: the wire bytes bound to a local were a copy,
        // a retain and a release on every query.
        let parentHash: UInt64? = name.name.wire.withUnsafeBytes { w in
            guard w[0] != 0, w[Int(w[0]) + 1] != 0 else { return nil }   // root, one label
            return max(1, TableHash.hash(UnsafeRawBufferPointer(rebasing: w[(Int(w[0]) + 1)...]), seed: 0x6D65_6D6F))
        }
        guard let h = parentHash else { return HashedName(suffixes.registeredDomain(name.name)) }
        let slot = Int(truncatingIfNeeded: h) & mask
        if slots[slot].parent == h { return slots[slot].domain ?? name }
        let w = name.name.wire
        let o = suffixes.registeredDomainOffset(name.name)
        let domain = o == 0 ? name : HashedName(DNSName(uncheckedWire: Array(w[o...])))
        if !suffixes.isListed(w[(Int(w[0]) + 1)...]) { slots[slot] = Entry(parent: h, domain: o == 0 ? nil : domain) }
        return domain
    }
}
