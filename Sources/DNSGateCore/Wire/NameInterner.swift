/// Question names decoded recently, so that a name asked again comes back as the same `DNSName`
/// (shared storage, one retain) instead of a new array.
///
/// CI jobs ask for the same few hundred names over and over; with this the query path allocates
/// nothing for them. A name never seen before still costs one allocation: its canonical copy, which
/// the violation log, the top-k tables and the detector keep. Direct-mapped on a hash of the
/// canonical bytes: a collision replaces the older name, so the table never grows and a flood of
/// random names only costs what it cost without it.
///
/// Not thread-safe: one per listener thread (`QueryScratch`).
public struct NameInterner {
    private var slots: [DNSName?]
    private let mask: Int

    /// - Parameter capacity: rounded up to a power of two.
    public init(capacity: Int = 4096) {
        let n = TableHash.powerOfTwo(atLeast: capacity)
        slots = Array(repeating: nil, count: n)
        mask = n - 1
    }

    /// The name at `offset` in `msg`, read and checked exactly as `readName` does.
    mutating func readName(_ msg: [UInt8], at offset: Int, allowCompression: Bool) throws -> (DNSName, Int) {
        try withNameBytes(msg, at: offset, allowCompression: allowCompression) { bytes -> DNSName in
            let slot = Int(truncatingIfNeeded: StableHash.hash(bytes, seed: 0)) & mask
            if let known = slots[slot], known.wire.withUnsafeBytes({ wireBytesEqual($0, bytes) }) { return known }   // one memcmp
            // Copied from a buffer pointer, exactly the name's length, which compiles to a specialised
            // allocation: `unsafeUninitializedCapacity` went through the standard library's generic
            // entry point and a metadata lookup, 550 instructions for each new name.
            let made = DNSName(uncheckedWire: Array(bytes))
            slots[slot] = made
            return made
        }
    }
}

/// What one listener thread reuses from query to query so the query path allocates nothing on the
/// sinkhole and cache-hit paths: the name interner, the reply buffer, and the policy snapshot it
/// last used (taken again only when a reload changed the generation).
///
/// A reply the pipeline returns shares this buffer's storage until the caller lets it go (the UDP
/// listener copies it into its send arena at once); the next query then writes into the same
/// storage without allocating. Not thread-safe.
public final class QueryScratch {
    public var names: NameInterner
    var reply: [UInt8] = []
    var policy: PolicySnapshot?

    public init(names: NameInterner = NameInterner()) {
        self.names = names
        reply.reserveCapacity(1024)
    }
}
