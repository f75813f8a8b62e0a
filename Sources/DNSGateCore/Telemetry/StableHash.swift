/// A 64-bit hash that is the same in every process and on every platform.
///
/// Swift's `Hasher` is seeded per process, which would make sketch contents, evictions and so
/// alerts differ between two replays of one log. FNV-1a (http://www.isthe.com/chongo/tech/comp/fnv/)
/// over the bytes, then the SplitMix64 finaliser so the top bits HyperLogLog indexes by are well mixed.
public enum StableHash {
    @inline(__always)
    public static func hash<C: Collection>(_ bytes: C, seed: UInt64 = 0) -> UInt64 where C.Element == UInt8 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325 ^ seed
        for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        return mix(h)
    }

    public static func hash(_ s: String, seed: UInt64 = 0) -> UInt64 { hash(s.utf8, seed: seed) }

    /// SplitMix64 finaliser (Steele, Lea, Flood, OOPSLA 2014).
    @inline(__always)
    public static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9e37_79b9_7f4a_7c15
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
