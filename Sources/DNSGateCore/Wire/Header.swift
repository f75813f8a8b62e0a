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
    @inline(__always) mutating func append16(_ v: UInt16) { append(UInt8(v >> 8)); append(UInt8(v & 0xFF)) }
    @inline(__always) mutating func append32(_ v: UInt32) {
        append(UInt8(v >> 24)); append(UInt8((v >> 16) & 0xFF)); append(UInt8((v >> 8) & 0xFF)); append(UInt8(v & 0xFF))
    }
}

/// Reads a possibly compressed name starting at `offset` (RFC 1035 §4.1.4).
///
/// - Returns: the canonical name and the offset just past the name's bytes at `offset`.
/// - Throws: `WireError` for out-of-bounds reads, loops, reserved label types and over-long names.
func readName(_ msg: [UInt8], at offset: Int, allowCompression: Bool = true) throws -> (DNSName, Int) {
    var out = [UInt8](); out.reserveCapacity(64)
    let end = try readNameBytes(msg, at: offset, allowCompression: allowCompression, into: &out)
    return (DNSName(uncheckedWire: out), end)
}

/// `readName`'s work, appending the canonical wire bytes to `out` (which the caller may reuse).
func readNameBytes(_ msg: [UInt8], at offset: Int, allowCompression: Bool, into out: inout [UInt8]) throws -> Int {
    let start = out.count
    var i = offset
    var end = -1
    var hops = 0
    while true {
        guard i < msg.count else { throw WireError.truncated(at: i) }
        let len = msg[i]
        switch len & 0xC0 {
        case 0x00:
            if len == 0 {
                out.append(0)
                if end < 0 { end = i + 1 }
                guard out.count - start <= DNSName.maxWireLength else { throw WireError.nameTooLong(octets: out.count - start) }
                return end
            }
            let l = Int(len)
            guard i + 1 + l <= msg.count else { throw WireError.truncated(at: i) }   // out of bounds
            out.append(len)
            appendLowerCased(msg, from: i + 1, count: l, to: &out)
            guard out.count - start < DNSName.maxWireLength else { throw WireError.nameTooLong(octets: out.count - start + 1) }
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

/// Appends `count` bytes of `msg` from `from`, ASCII upper case folded to lower: one copy, then eight
/// bytes per step. Appending and folding a byte at a time was most of the cost of reading a name.
@inline(__always)
private func appendLowerCased(_ msg: [UInt8], from: Int, count: Int, to out: inout [UInt8]) {
    let base = out.count
    msg.withUnsafeBytes { m in out.append(contentsOf: UnsafeRawBufferPointer(rebasing: m[from..<(from + count)])) }
    out.withUnsafeMutableBytes { o in
        var j = base
        while j + 8 <= o.count {
            o.storeBytes(of: lowerCased(o.loadUnaligned(fromByteOffset: j, as: UInt64.self)), toByteOffset: j, as: UInt64.self)
            j += 8
        }
        while j < o.count { o[j] = asciiLower(o[j]); j += 1 }
    }
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
