/// The fixed 12-octet header (RFC 1035 §4.1.1), read without copying the message.
public struct HeaderFields: Equatable, Sendable {
    public var id: UInt16
    public var flags: UInt16
    public var questionCount: UInt16
    public var answerCount: UInt16
    public var authorityCount: UInt16
    public var additionalCount: UInt16

    public static let length = 12

    public init?(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= Self.length else { return nil }
        func u16(_ o: Int) -> UInt16 { UInt16(bytes[o]) << 8 | UInt16(bytes[o + 1]) }
        id = u16(0); flags = u16(2)
        questionCount = u16(4); answerCount = u16(6); authorityCount = u16(8); additionalCount = u16(10)
    }

    public var isResponse: Bool { flags & 0x8000 != 0 }
    public var opcode: UInt8 { UInt8((flags >> 11) & 0xF) }
    public var authoritative: Bool { flags & 0x0400 != 0 }
    public var truncated: Bool { flags & 0x0200 != 0 }
    public var recursionDesired: Bool { flags & 0x0100 != 0 }
    public var authenticData: Bool { flags & 0x0020 != 0 }
    public var checkingDisabled: Bool { flags & 0x0010 != 0 }
    public var rcode: ResponseCode { ResponseCode(rawValue: flags & 0xF) }
}

/// Opcode values (RFC 1035 §4.1.1).
public enum Opcode { public static let query: UInt8 = 0 }

/// Big-endian helpers over a byte array; every read is bounds-checked by the caller's guard.
extension Array where Element == UInt8 {
    @inline(__always) func u16(at o: Int) -> UInt16 { UInt16(self[o]) << 8 | UInt16(self[o + 1]) }
    @inline(__always) func u32(at o: Int) -> UInt32 {
        UInt32(self[o]) << 24 | UInt32(self[o + 1]) << 16 | UInt32(self[o + 2]) << 8 | UInt32(self[o + 3])
    }
    @inline(__always) mutating func put16(_ v: UInt16, at o: Int) { self[o] = UInt8(v >> 8); self[o + 1] = UInt8(v & 0xFF) }
    @inline(__always) mutating func put32(_ v: UInt32, at o: Int) {
        self[o] = UInt8(v >> 24); self[o + 1] = UInt8((v >> 16) & 0xFF); self[o + 2] = UInt8((v >> 8) & 0xFF); self[o + 3] = UInt8(v & 0xFF)
    }
    /// Appends what `body` writes, at most `maxBytes` octets, with one copy. The octets are written
    /// to a temporary buffer (on the stack unless it is large) through one pointer:
    /// appended field by field, each `append(contentsOf:)` was a call of about 100 instructions with
    /// its own capacity and uniqueness checks, and those were most of the cost of a sinkhole reply.
    /// (Appended as typed octets: a raw buffer took a slower generic path.)
    @inline(__always) mutating func appendWritten(maxBytes: Int, _ body: (inout WireWriter) -> Void) {
        written(maxBytes: maxBytes, replacing: false, body)
    }

    /// `appendWritten`, but what `body` writes replaces the array's octets (its storage is kept).
    @inline(__always) mutating func replaceWithWritten(maxBytes: Int, _ body: (inout WireWriter) -> Void) {
        written(maxBytes: maxBytes, replacing: true, body)
    }

    @inline(__always)
    private mutating func written(maxBytes: Int, replacing: Bool, _ body: (inout WireWriter) -> Void) {
        withUnsafeTemporaryAllocation(byteCount: maxBytes, alignment: 8) { buffer in
            var w = WireWriter(buffer)
            body(&w)
            UnsafeRawBufferPointer(rebasing: buffer[..<w.count]).withMemoryRebound(to: UInt8.self) {
                if replacing { replaceSubrange(0..<count, with: $0) } else { append(contentsOf: $0) }
            }
        }
    }

    /// Makes the array's octets a copy of `bytes`, keeping its storage: one `replaceSubrange`, where
    /// `removeAll(keepingCapacity:)` and then `append(contentsOf:)` took about 85 instructions more
    /// (two calls, each with its own uniqueness and capacity checks).
    @inline(__always) public mutating func replaceContents(with bytes: UnsafeRawBufferPointer) {
        bytes.withMemoryRebound(to: UInt8.self) { replaceSubrange(0..<count, with: $0) }
    }
}

/// Writes big-endian fields and raw octets into a buffer it does not own, every write bounds-checked.
struct WireWriter {
    private let buffer: UnsafeMutableRawBufferPointer
    private(set) var count = 0

    init(_ buffer: UnsafeMutableRawBufferPointer) { self.buffer = buffer }

    @inline(__always) private mutating func reserve(_ n: Int) -> Int {
        precondition(n <= buffer.count - count, "WireWriter overflow")
        defer { count += n }
        return count
    }
    @inline(__always) mutating func u8(_ v: UInt8) { buffer[reserve(1)] = v }
    @inline(__always) mutating func u16(_ v: UInt16) {
        buffer.storeBytes(of: v.bigEndian, toByteOffset: reserve(2), as: UInt16.self)
    }
    @inline(__always) mutating func u32(_ v: UInt32) {
        buffer.storeBytes(of: v.bigEndian, toByteOffset: reserve(4), as: UInt32.self)
    }
    // Overwrite octets already written.
    @inline(__always) private func written(_ o: Int, _ n: Int) {
        precondition(o >= 0 && n <= count - o, "WireWriter: overwriting what was not written")
    }
    @inline(__always) mutating func put16(_ v: UInt16, at o: Int) {
        written(o, 2); buffer.storeBytes(of: v.bigEndian, toByteOffset: o, as: UInt16.self)
    }
    @inline(__always) mutating func put32(_ v: UInt32, at o: Int) {
        written(o, 4); buffer.storeBytes(of: v.bigEndian, toByteOffset: o, as: UInt32.self)
    }
    @inline(__always) mutating func put(_ b: ArraySlice<UInt8>, at o: Int) {
        written(o, b.count)
        b.withUnsafeBytes { copy($0, to: o) }
    }
    @inline(__always) mutating func bytes(_ b: UnsafeRawBufferPointer) { copy(b, to: reserve(b.count)) }
    /// Rotates `count` fields of `length` octets written `stride` apart from `first`: field j gets
    /// what field (j + by) % count held.
    mutating func rotate(fieldsAt first: Int, stride: Int, count: Int, length: Int, by k: Int) {
        guard count > 1, case let k = k % count, k != 0 else { return }
        written(first, stride * (count - 1) + length)
        withUnsafeTemporaryAllocation(byteCount: count * length, alignment: 1) { held in
            for j in 0..<count {
                held.baseAddress!.advanced(by: j * length).copyMemory(from: buffer.baseAddress!.advanced(by: first + j * stride), byteCount: length)
            }
            for j in 0..<count {
                copy(UnsafeRawBufferPointer(rebasing: held[((j + k) % count) * length ..< ((j + k) % count + 1) * length]), to: first + j * stride)
            }
        }
    }
    /// `o..<o + b.count` was checked by the caller.
    @inline(__always) private func copy(_ b: UnsafeRawBufferPointer, to o: Int) {
        if let src = b.baseAddress { buffer.baseAddress!.advanced(by: o).copyMemory(from: src, byteCount: b.count) }
    }
    @inline(__always) mutating func bytes(_ b: [UInt8]) { b.withUnsafeBytes { bytes($0) } }
    @inline(__always) mutating func bytes(_ b: ArraySlice<UInt8>) { b.withUnsafeBytes { bytes($0) } }
}

/// Reads a possibly compressed name starting at `offset` (RFC 1035 §4.1.4).
///
/// - Returns: the canonical name and the offset just past the name's bytes at `offset`.
/// - Throws: `WireError` for out-of-bounds reads, loops, reserved label types and over-long names.
func readName(_ msg: [UInt8], at offset: Int, allowCompression: Bool = true) throws -> (DNSName, Int) {
    try withNameBytes(msg, at: offset, allowCompression: allowCompression) { DNSName(uncheckedWire: Array($0)) }
}

/// `readName`'s work, appending the canonical wire bytes to `out` (which the caller may reuse).
func readNameBytes(_ msg: [UInt8], at offset: Int, allowCompression: Bool, into out: inout [UInt8]) throws -> Int {
    try withNameBytes(msg, at: offset, allowCompression: allowCompression) { out.append(contentsOf: $0) }.end
}

/// Reads the name at `offset` as `readNameBytes` does and hands its canonical wire bytes to `body`,
/// which must not keep them: they live in a 256-octet buffer on the stack, so a name that is only
/// looked at (or found in a table) is never copied to the heap. Appending each label to an array
/// instead (a capacity and uniqueness check, then a call) cost as much as all the rest of reading it.
@inline(__always)
func withNameBytes<R>(_ msg: [UInt8], at offset: Int, allowCompression: Bool,
                      _ body: (UnsafeRawBufferPointer) throws -> R) throws -> (result: R, end: Int) {
    var buffer: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                 UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)
        = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    return try withUnsafeMutableBytes(of: &buffer) { name in
        let (end, length) = try msg.withUnsafeBytes { try readNameBytes($0, at: offset, allowCompression: allowCompression, into: name) }
        return (try body(UnsafeRawBufferPointer(rebasing: name[..<length])), end)
    }
}

/// `readNameBytes` on raw memory: writes the canonical name to `name` (256 octets) and returns the
/// offset just past the name at `offset` and the name's length.
@inline(__always)
private func readNameBytes(_ msg: UnsafeRawBufferPointer, at offset: Int, allowCompression: Bool,
                           into name: UnsafeMutableRawBufferPointer) throws -> (end: Int, length: Int) {
    var n = 0
    var i = offset
    var end = -1
    var hops = 0
    while true {
        guard i >= 0, i < msg.count else { throw WireError.truncated(at: i) }
        let len = msg[i]
        switch len & 0xC0 {
        case 0x00:
            if len == 0 {
                name[n] = 0
                n += 1
                if end < 0 { end = i + 1 }
                return (end, n)
            }
            let l = Int(len)
            guard i + 1 + l <= msg.count else { throw WireError.truncated(at: i) }   // out of bounds
            // Checked before writing: the label and the root octet after it must fit in 255 (RFC 1035 §2.3.4).
            guard n + 1 + l < DNSName.maxWireLength else { throw WireError.nameTooLong(octets: n + 1 + l + 1) }
            name[n] = len
            // A label's last few octets go as one more eight-octet word when both buffers have the
            // room: the octets past the label are rewritten by the next label or the root (the name
            // handed on ends at `n`), and reading past it stays inside the message.
            let wholeWords = i + 1 + l + 8 <= msg.count && n + 1 + l + 8 <= name.count
            copyLowerCased(from: msg.baseAddress! + i + 1, to: name.baseAddress! + n + 1, count: l, tailAsWord: wholeWords)
            n += 1 + l
            i += 1 + l
        case 0xC0:
            guard allowCompression else { throw WireError.malformed("compression pointer in question") }
            guard i + 1 < msg.count else { throw WireError.truncated(at: i) }
            let target = Int(len & 0x3F) << 8 | Int(msg[i + 1])
            if end < 0 { end = i + 2 }
            // Pointers must go strictly backwards: this alone rules out loops; the hop cap is belt and braces.
            guard target < i, hops < 64 else { throw WireError.compressionLoop }
            hops += 1
            i = target
        default:
            throw WireError.badLabelType(len)   // 0x40 / 0x80: RFC 6891 §5 deprecated / reserved
        }
    }
}

/// Copies `count` octets with ASCII upper case folded to lower, eight at a time.
/// - Parameter tailAsWord: the last 1–7 octets are copied as a whole word too, which reads and writes
///   up to 7 octets past `count` (the caller checked both buffers have them). Labels are mostly
///   shorter than eight octets, and folding them octet by octet was a third of decoding a query.
@inline(__always)
private func copyLowerCased(from src: UnsafeRawPointer, to dst: UnsafeMutableRawPointer, count: Int, tailAsWord: Bool = false) {
    var j = 0
    while j + 8 <= count {
        dst.storeBytes(of: lowerCased(src.loadUnaligned(fromByteOffset: j, as: UInt64.self)), toByteOffset: j, as: UInt64.self)
        j += 8
    }
    if tailAsWord && j < count {
        dst.storeBytes(of: lowerCased(src.loadUnaligned(fromByteOffset: j, as: UInt64.self)), toByteOffset: j, as: UInt64.self)
        return
    }
    while j < count { dst.storeBytes(of: asciiLower(src.load(fromByteOffset: j, as: UInt8.self)), toByteOffset: j, as: UInt8.self); j += 1 }
}

/// `asciiLower` on each of eight bytes at once: a byte gets 0x20 added exactly when it is 0x41–0x5A.
/// Adding 0x3F (0x25) to a byte's low seven bits sets bit 7 when it is at least 'A' (past 'Z'); bytes
/// with bit 7 already set are never letters.
@inline(__always)
func lowerCased(_ x: UInt64) -> UInt64 {
    let low7 = x & 0x7F7F_7F7F_7F7F_7F7F
    let atLeastA = low7 &+ 0x3F3F_3F3F_3F3F_3F3F
    let pastZ = low7 &+ 0x2525_2525_2525_2525
    let upper = atLeastA & ~pastZ & ~x & 0x8080_8080_8080_8080
    return x | (upper >> 2)
}
