/// A domain name in canonical wire form: length-prefixed labels, ASCII lower-cased, ending in the root label.
///
/// Policy compares these bytes and nothing else. Presentation strings are parsed once, at the edges,
/// so `\.`, `\046`, case and trailing-dot games cannot make two spellings of one name differ, or
/// one spelling of two names agree (zones/README.md).
public struct DNSName: Hashable, Sendable, CustomStringConvertible, Comparable {
    /// Wire bytes, lower-cased, including the final zero octet.
    public let wire: [UInt8]

    public static let root = DNSName(uncheckedWire: [0])
    public static let maxWireLength = 255   // RFC 1035 §2.3.4
    public static let maxLabelLength = 63

    /// Wraps bytes the caller has already validated and lower-cased.
    public init(uncheckedWire: [UInt8]) { self.wire = uncheckedWire }

    /// Validates and lower-cases uncompressed wire bytes.
    public init(wire bytes: [UInt8]) throws {
        var out = [UInt8](); out.reserveCapacity(bytes.count)
        var i = 0
        while true {
            guard i < bytes.count else { throw WireError.truncated(at: i) }
            let len = Int(bytes[i])
            guard len <= Self.maxLabelLength else { throw WireError.labelTooLong(octets: len) }
            out.append(bytes[i])
            if len == 0 { break }
            guard i + 1 + len <= bytes.count else { throw WireError.truncated(at: i) }
            for b in bytes[(i + 1)...(i + len)] { out.append(asciiLower(b)) }
            i += 1 + len
            // the root octet still follows: 255 octets in all (RFC 1035 §2.3.4)
            guard out.count < Self.maxWireLength else { throw WireError.nameTooLong(octets: out.count + 1) }
        }
        guard i + 1 == bytes.count else { throw WireError.trailingBytes(count: bytes.count - i - 1) }
        self.wire = out
    }

    /// Parses presentation format (RFC 1035 §5.1): `\.` is a literal dot inside a label, `\DDD` a decimal
    /// octet. A trailing dot is optional; the name is always taken as fully qualified.
    public init(_ text: String) throws {
        if text == "." || text.isEmpty { self = .root; return }
        var out = [UInt8](); out.reserveCapacity(text.utf8.count + 2)
        var label = [UInt8]()
        let bytes = Array(text.utf8)
        var i = 0
        func closeLabel() throws {
            guard !label.isEmpty else { throw WireError.emptyLabel }
            guard label.count <= Self.maxLabelLength else { throw WireError.labelTooLong(octets: label.count) }
            out.append(UInt8(label.count)); out.append(contentsOf: label); label.removeAll(keepingCapacity: true)
        }
        while i < bytes.count {
            let c = bytes[i]
            if c == UInt8(ascii: "\\") {
                guard i + 1 < bytes.count else { throw WireError.badEscape(text) }
                let n = bytes[i + 1]
                if isDigit(n) {
                    // \DDD needs three digits: indices i+1, i+2, i+3 must exist
                    guard i + 3 < bytes.count, isDigit(bytes[i + 2]), isDigit(bytes[i + 3])
                    else { throw WireError.badEscape(text) }
                    let v = Int(n - 48) * 100 + Int(bytes[i + 2] - 48) * 10 + Int(bytes[i + 3] - 48)
                    guard v <= 255 else { throw WireError.badEscape(text) }
                    label.append(UInt8(v)); i += 4
                } else {
                    label.append(n); i += 2
                }
            } else if c == UInt8(ascii: ".") {
                try closeLabel(); i += 1
                if i == bytes.count { break }   // trailing dot
            } else {
                label.append(c); i += 1
            }
        }
        if !label.isEmpty { try closeLabel() }
        out.append(0)
        guard out.count <= Self.maxWireLength else { throw WireError.nameTooLong(octets: out.count) }
        for j in out.indices { out[j] = asciiLower(out[j]) }   // length octets are ≤ 63, unaffected
        self.wire = out
    }

    public var isRoot: Bool { wire.count == 1 }

    // Bulk hashing and memcmp equality: the synthesized versions go one byte at a time, and names are
    // the keys of every telemetry and detector table.
    @inlinable public func hash(into hasher: inout Hasher) { wire.withUnsafeBytes { hasher.combine(bytes: $0) } }
    @inlinable public func _rawHashValue(seed: Int) -> Int { wire.withUnsafeBytes { TableHash.of($0, seed: seed) } }

    @inlinable public static func == (a: DNSName, b: DNSName) -> Bool {
        a.wire.withUnsafeBytes { pa in b.wire.withUnsafeBytes { pb in wireBytesEqual(pa, pb) } }
    }

    /// Number of labels, not counting the root.
    public var labelCount: Int {
        var n = 0, i = 0
        while wire[i] != 0 { n += 1; i += Int(wire[i]) + 1 }
        return n
    }

    /// Labels from the left, as raw bytes.
    public var labels: [ArraySlice<UInt8>] {
        var out: [ArraySlice<UInt8>] = [], i = 0
        while wire[i] != 0 { let l = Int(wire[i]); out.append(wire[(i + 1)..<(i + 1 + l)]); i += l + 1 }
        return out
    }

    /// The name with its leftmost label removed, or nil at the root.
    public var parent: DNSName? {
        guard !isRoot else { return nil }
        return DNSName(uncheckedWire: Array(wire[(Int(wire[0]) + 1)...]))
    }

    /// True when `self` is `other` or lies below it.
    public func isSubdomain(of other: DNSName) -> Bool {
        guard wire.count >= other.wire.count else { return false }
        var i = 0
        while wire.count - i > other.wire.count { i += Int(wire[i]) + 1 }
        return wire.count - i == other.wire.count && wire[i...].elementsEqual(other.wire)
    }

    /// `*.` + self, the wildcard form used in allow-lists.
    public var isWildcard: Bool { wire.count >= 3 && wire[0] == 1 && wire[1] == UInt8(ascii: "*") }

    /// Presentation form with a trailing dot; bytes outside printable ASCII and the special
    /// characters are escaped so the output parses back to the same name.
    public var description: String {
        if isRoot { return "." }
        var s = "", i = 0
        while wire[i] != 0 {
            let l = Int(wire[i])
            for b in wire[(i + 1)...(i + l)] {
                switch b {
                case UInt8(ascii: "."), UInt8(ascii: "\\"), UInt8(ascii: "\""), UInt8(ascii: ";"),
                     UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "$"), UInt8(ascii: "@"):
                    s.append("\\"); s.append(Character(Unicode.Scalar(b)))
                case 0x21...0x7E:
                    s.append(Character(Unicode.Scalar(b)))
                default:
                    s.append("\\" + String(format3(b)))
                }
            }
            s.append("."); i += l + 1
        }
        return s
    }

    public static func < (lhs: DNSName, rhs: DNSName) -> Bool {
        // Sort by labels from the right, as zone files and humans read them (RFC 4034 §6.1 order).
        let l = lhs.labels.reversed().map(Array.init), r = rhs.labels.reversed().map(Array.init)
        for (a, b) in zip(l, r) where a != b { return a.lexicographicallyPrecedes(b) }
        return l.count < r.count
    }
}

@inline(__always) func asciiLower(_ b: UInt8) -> UInt8 { (b >= 65 && b <= 90) ? b | 0x20 : b }
@inline(__always) private func isDigit(_ b: UInt8) -> Bool { b >= 48 && b <= 57 }
private func format3(_ b: UInt8) -> String {
    let s = String(b); return String(repeating: "0", count: 3 - s.count) + s
}

/// Why bytes could not be read as DNS; cases carry what a log line needs.
public enum WireError: Error, Equatable, CustomStringConvertible {
    case truncated(at: Int)
    case labelTooLong(octets: Int)
    case nameTooLong(octets: Int)
    case emptyLabel
    case badEscape(String)
    case badLabelType(UInt8)
    case compressionLoop
    case trailingBytes(count: Int)
    case malformed(String)

    public var description: String {
        switch self {
        case .truncated(let at): return "message truncated at octet \(at)"
        case .labelTooLong(let n): return "label of \(n) octets (max 63)"
        case .nameTooLong(let n): return "name of \(n) octets (max 255)"
        case .emptyLabel: return "empty label"
        case .badEscape(let s): return "bad escape in \(s)"
        case .badLabelType(let b): return "reserved label type 0x\(String(b, radix: 16))"
        case .compressionLoop: return "compression pointer loop"
        case .trailingBytes(let n): return "\(n) octets after the message"
        case .malformed(let s): return s
        }
    }
}
