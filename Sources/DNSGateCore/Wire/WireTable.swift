#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Canonical wire names, or suffixes of them, mapped to values, and looked up through a pointer into
/// a query's own name.
///
/// The allow-list and the Public Suffix List are probed once per label of every query. As
/// dictionaries keyed by slices each probe wrapped an `ArraySlice` of the name, which retained and released
/// its storage, and compared keys through two more. Here a probe is a `StableHash` of the bytes, a
/// mask and a `memcmp`. Open addressing with linear probing, at most half full; the keys' bytes sit
/// back to back in one array. Built once from configuration, so keys are never removed.
///
/// Most probes miss (a query name's suffixes are walked until one is listed), and a miss is decided
/// before hashing where it can be: `shapes` has a bit for every (length, first octet) pair of a key
/// (for a name, its length and its first label's), and a probe whose pair has no key goes no
/// further. With a few hundred keys that turns away about three probes in four; with a large list
/// most bits are set and the filter costs a load and a test.
public struct WireTable<Value> {
    private struct Entry {
        let hash: UInt64
        let start: Int
        let count: Int
        var value: Value
    }
    private var entries: [Entry] = []
    /// Entry index + 1 by slot; 0 is an empty slot.
    private var slots: [Int32] = []
    private var bytes: [UInt8] = []
    /// Bit `shape(key)` is set when some key has that shape; 256 lengths × 64 first octets.
    private var shapes = [UInt64](repeating: 0, count: 256)

    public init() {}

    /// Length (capped at 255) and the first octet's low six bits (a label length is at most 63).
    @inline(__always)
    private static func shape(_ key: UnsafeRawBufferPointer) -> Int {
        key.isEmpty ? 0 : min(key.count, 255) << 6 | Int(key[0] & 63)
    }

    public var count: Int { entries.count }
    public var isEmpty: Bool { entries.isEmpty }

    /// The value for the name (or suffix) whose wire bytes `key` points at. Setting nil is not supported.
    public subscript(key: UnsafeRawBufferPointer) -> Value? {
        get {
            let shape = Self.shape(key)
            guard shapes[shape >> 6] & (1 << UInt64(shape & 63)) != 0 else { return nil }
            return find(key, Self.hash(key)).entry.map { entries[$0].value }
        }
        set {
            guard let value = newValue else { preconditionFailure("WireTable keys cannot be removed") }
            let h = Self.hash(key)
            if let e = find(key, h).entry { entries[e].value = value; return }
            if (entries.count + 1) * 2 > slots.count { grow() }
            let slot = find(key, h).slot
            entries.append(Entry(hash: h, start: bytes.count, count: key.count, value: value))
            bytes.append(contentsOf: key)
            slots[slot] = Int32(entries.count)
            let shape = Self.shape(key)
            shapes[shape >> 6] |= 1 << UInt64(shape & 63)
        }
    }

    /// The same, for keys held in an array or a slice of one (building the table; tests).
    public subscript<Bytes: Collection<UInt8>>(key: Bytes) -> Value? {
        get { Array(key).withUnsafeBytes { self[$0] } }
        set { Array(key).withUnsafeBytes { self[$0] = newValue } }
    }

    @inline(__always)
    private static func hash(_ key: UnsafeRawBufferPointer) -> UInt64 { TableHash.hash(key) }

    /// The entry holding `key`, else the empty slot where it would go (-1 in an empty table).
    @inline(__always)
    private func find(_ key: UnsafeRawBufferPointer, _ h: UInt64) -> (entry: Int?, slot: Int) {
        guard !slots.isEmpty else { return (nil, -1) }
        let mask = slots.count - 1
        var i = Int(truncatingIfNeeded: h) & mask
        return bytes.withUnsafeBytes { stored in
            while true {
                let s = Int(slots[i])
                if s == 0 { return (nil, i) }
                let e = entries[s - 1]
                if e.hash == h, wireBytesEqual(UnsafeRawBufferPointer(rebasing: stored[e.start..<(e.start + e.count)]), key) {
                    return (s - 1, i)
                }
                i = (i + 1) & mask
            }
        }
    }

    private mutating func grow() {
        let size = max(16, slots.count * 2)
        slots = [Int32](repeating: 0, count: size)
        for (n, e) in entries.enumerated() {
            var i = Int(truncatingIfNeeded: e.hash) & (size - 1)
            while slots[i] != 0 { i = (i + 1) & (size - 1) }
            slots[i] = Int32(n + 1)
        }
    }
}

extension WireTable: Sendable where Value: Sendable {}
