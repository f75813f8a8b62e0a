/// A 64-bit hash that is the same in every process and on every platform.
///
/// Swift's `Hasher` is seeded per process, which would make sketch contents, evictions and so
/// alerts differ between two replays of one log. This one reads 16 bytes per step and folds them
/// with one 64×64→128-bit multiply, in the manner of wyhash (Wang Yi, public domain), then applies
/// the SplitMix64 finaliser so the top bits HyperLogLog indexes by are well mixed. It replaced
/// FNV-1a, whose multiply per byte made hashing a name the largest part of interning it.
public enum StableHash {
    public static func hash<C: Collection>(_ bytes: C, seed: UInt64 = 0) -> UInt64 where C.Element == UInt8 {
        if let h = bytes.withContiguousStorageIfAvailable({ hash(UnsafeRawBufferPointer($0), seed: seed) }) { return h }
        return Array(bytes).withUnsafeBytes { hash($0, seed: seed) }
    }

    public static func hash(_ s: String, seed: UInt64 = 0) -> UInt64 {
        var s = s
        return s.withUTF8 { hash(UnsafeRawBufferPointer($0), seed: seed) }
    }

    @inline(__always)
    public static func hash(_ p: UnsafeRawBufferPointer, seed: UInt64) -> UInt64 {
        let n = p.count
        var h = seed ^ k0 ^ (UInt64(truncatingIfNeeded: n) &* k1)
        var i = 0
        while n - i > 16 {
            h = fold(p.loadUnaligned(fromByteOffset: i, as: UInt64.self) ^ k1,
                     p.loadUnaligned(fromByteOffset: i + 8, as: UInt64.self) ^ h)
            i += 16
        }
        // The last 1…16 bytes as two words, zero-padded; which bytes they came from is fixed by n.
        var a: UInt64 = 0, b: UInt64 = 0
        let rest = n - i
        if rest >= 8 {
            a = p.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            b = p.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self)
        } else if rest >= 4 {
            a = UInt64(p.loadUnaligned(fromByteOffset: i, as: UInt32.self))
            b = UInt64(p.loadUnaligned(fromByteOffset: n - 4, as: UInt32.self))
        } else if rest > 0 {
            a = UInt64(p[i]) << 16 | UInt64(p[i + rest / 2]) << 8 | UInt64(p[n - 1])
        }
        return mix(fold(a ^ k1, b ^ h))
    }

    private static let k0: UInt64 = 0xa076_1d64_78bd_642f
    private static let k1: UInt64 = 0xe703_7ed1_a0b4_28db

    /// Both halves of the 128-bit product, xored: every input bit reaches every output bit. The
    /// inputs are xored in too, so a word that zeroes one factor (names are chosen by whoever sends
    /// them) cannot erase the other.
    @inline(__always)
    private static func fold(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let p = a.multipliedFullWidth(by: b)
        return p.high ^ p.low ^ a ^ b
    }

    /// SplitMix64 finaliser (Steele, Lea, Flood, OOPSLA 2014).
    @inline(__always)
    public static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9e37_79b9_7f4a_7c15
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

/// The hash that dictionaries and sets keyed by names use (`DNSName`, `CacheKey`, the detector's pairs), and `WireTable`.
///
/// Those keys implement `Hashable`'s `_rawHashValue(seed:)`, the entry point `Dictionary` and `Set`
/// call, with this instead of SipHash: on a flood of denied names SipHash's set-up and finalisation
/// were 4 % of the server's CPU. It stays seeded the way SipHash is: a secret drawn once per process
/// mixed with the table's own seed, so which names collide cannot be worked out from outside, in the
/// manner of Go's map hash. `hash(into:)` keeps feeding `Hasher`, for types that embed these keys.
public enum TableHash {
    public static let secret: UInt64 = .random(in: .min ... .max)

    /// `StableHash` of the bytes, keyed by the secret (and `seed`).
    @inlinable @inline(__always)
    public static func hash(_ p: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        StableHash.hash(p, seed: secret ^ seed)
    }

    /// The same for `Hashable._rawHashValue(seed:)`.
    @inlinable @inline(__always)
    public static func of(_ p: UnsafeRawBufferPointer, seed: Int) -> Int {
        Int(truncatingIfNeeded: hash(p, seed: UInt64(bitPattern: Int64(seed))))
    }

    /// The smallest power of two that is at least `n` (and at least 1): the size of a table indexed
    /// by a hash masked with size - 1.
    static func powerOfTwo(atLeast n: Int) -> Int {
        var size = 1
        while size < n { size <<= 1 }
        return size
    }
}
