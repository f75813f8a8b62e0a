/// Question names decoded recently, so that a name asked again comes back as the same `DNSName`
/// (shared storage, one retain) instead of a new array.
///
/// CI jobs ask for the same few hundred names over and over; with this the query path allocates
/// nothing for them. A name never seen before still costs one allocation: its canonical copy, which
/// the violation log, the top-k tables and the detector keep. Direct-mapped on a hash of the
/// canonical bytes, so the table never grows.
///
/// A name takes an occupied slot only when it is the second one in a row seen there that was not
/// in it: a flood of names asked once (a tunnel, a scan) leaves the names already held in place
/// instead of evicting them, and never touches the evicted name. Replacing on every miss, each
/// name of a flood released one that had long gone cold, a cache miss on every query. Each slot
/// keeps a tag of its name's hash, so another name is told apart without reading the held one.
///
/// Not thread-safe: one per listener thread (`QueryScratch`).
public struct NameInterner {
    private struct Slot {
        var name: DNSName?
        /// Upper hash bits of `name`.
        var nameTag: UInt32 = 0
        /// Upper hash bits of the last name seen here and not held: seen again, it takes the slot.
        var seenTag: UInt32 = 0
    }
    private var slots: [Slot]
    private let mask: Int

    /// - Parameter capacity: rounded up to a power of two.
    public init(capacity: Int = 4096) {
        let n = TableHash.powerOfTwo(atLeast: capacity)
        slots = Array(repeating: Slot(), count: n)
        mask = n - 1
    }

    /// The name at `offset` in `msg`, read and checked exactly as `readName` does, with its
    /// `TableHash` (the name's `hashValue`), which picks the slot.
    mutating func readName(_ msg: [UInt8], at offset: Int, allowCompression: Bool) throws -> (DNSName, UInt64, Int) {
        var h: UInt64 = 0
        let (name, end) = try withNameBytes(msg, at: offset, allowCompression: allowCompression) { bytes -> DNSName in
            h = TableHash.hash(bytes)
            let i = Int(truncatingIfNeeded: h) & mask
            let tag = UInt32(truncatingIfNeeded: h >> 32)
            if slots[i].nameTag == tag, let known = slots[i].name,
               known.wire.withUnsafeBytes({ wireBytesEqual($0, bytes) }) { return known }   // one memcmp
            // Copied from a buffer pointer, exactly the name's length, which compiles to a specialised
            // allocation: `unsafeUninitializedCapacity` went through the standard library's generic
            // entry point and a metadata lookup, 550 instructions for each new name.
            let made = DNSName(uncheckedWire: Array(bytes))
            if slots[i].name == nil || slots[i].seenTag == tag {
                slots[i].name = made
                slots[i].nameTag = tag
            } else {
                slots[i].seenTag = tag
            }
            return made
        }
        return (name, h, end)
    }
}

/// What one listener thread reuses from query to query so the query path allocates nothing on the
/// sinkhole and cache-hit paths: the name interner, the reply buffer, and the policy snapshot it
/// last used (taken again only when a reload changed the generation).
///
/// A reply the pipeline returns is this buffer, moved out; the caller hands it back with `reclaim`
/// once it has sent it (the UDP listener copies it into its send arena at once), and the next query
/// writes into the same storage. Lent rather than shared: a shared buffer was a retain when the
/// reply left and a release when the caller let it go, two atomic operations per query. A reply
/// not handed back costs the next one an allocation, nothing else. Not thread-safe.
public final class QueryScratch {
    public var names: NameInterner
    /// nil while lent: an empty array left in its place was released (atomically) when the reply came back.
    private var reply: [UInt8]?
    var policy: PolicySnapshot?

    public init(names: NameInterner = NameInterner()) {
        self.names = names
        reply = Self.newReplyBuffer()
    }

    private static func newReplyBuffer() -> [UInt8] {
        var b: [UInt8] = []
        b.reserveCapacity(1024)
        return b
    }

    /// Writes the next reply into the buffer and lends it out.
    @inline(__always)
    func lendReply(_ body: (inout [UInt8]) -> Void) -> [UInt8] {
        var out = reply.take() ?? Self.newReplyBuffer()   // nil: the last reply was not handed back
        body(&out)   // each body writes over what the buffer held
        return out
    }

    /// Takes back a reply `process` returned, once it is sent, for the next query to write into.
    @inline(__always)
    public func reclaim(_ reply: consuming [UInt8]) {
        self.reply = reply
    }
}
