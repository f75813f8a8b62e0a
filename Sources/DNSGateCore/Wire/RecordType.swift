import CLDNS

/// A resource record type (RFC 1035 §3.2.2 and successors), by its 16-bit code.
///
/// A struct rather than an enum so every code point, known or not, round-trips
/// without a lookup on the hot path; mnemonics are used only at the edges.
public struct RecordType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public init(_ rawValue: UInt16) { self.rawValue = rawValue }

    /// The entry point `Set` and `Dictionary` call, keyed like `TableHash` (the table's seed and the
    /// process secret) but without SipHash: the allowed-type sets are asked on every query, and
    /// hashing two octets with SipHash cost more than the rest of the lookup.
    public func _rawHashValue(seed: Int) -> Int {
        Int(truncatingIfNeeded: StableHash.mix(UInt64(rawValue) ^ TableHash.secret ^ UInt64(bitPattern: Int64(seed))))
    }

    public static let a = RecordType(1)
    public static let ns = RecordType(2)
    public static let cname = RecordType(5)
    public static let soa = RecordType(6)
    public static let null = RecordType(10)
    public static let ptr = RecordType(12)
    public static let hinfo = RecordType(13)
    public static let mx = RecordType(15)
    public static let txt = RecordType(16)
    public static let key = RecordType(25)
    public static let aaaa = RecordType(28)
    public static let loc = RecordType(29)
    public static let srv = RecordType(33)
    public static let naptr = RecordType(35)
    public static let dname = RecordType(39)
    public static let opt = RecordType(41)
    public static let ds = RecordType(43)
    public static let sshfp = RecordType(44)
    public static let rrsig = RecordType(46)
    public static let nsec = RecordType(47)
    public static let dnskey = RecordType(48)
    public static let tlsa = RecordType(52)
    public static let svcb = RecordType(64)
    public static let https = RecordType(65)
    public static let spf = RecordType(99)
    public static let ixfr = RecordType(251)
    public static let axfr = RecordType(252)
    public static let any = RecordType(255)
    public static let uri = RecordType(256)
    public static let caa = RecordType(257)

    private static let mnemonics: [(String, RecordType)] = [
        ("A", .a), ("NS", .ns), ("CNAME", .cname), ("SOA", .soa), ("NULL", .null), ("PTR", .ptr),
        ("HINFO", .hinfo), ("MX", .mx), ("TXT", .txt), ("KEY", .key), ("AAAA", .aaaa), ("LOC", .loc), ("SRV", .srv), ("NAPTR", .naptr), ("DNAME", .dname),
        ("OPT", .opt), ("DS", .ds), ("SSHFP", .sshfp), ("RRSIG", .rrsig), ("NSEC", .nsec), ("DNSKEY", .dnskey),
        ("TLSA", .tlsa), ("SVCB", .svcb), ("HTTPS", .https), ("SPF", .spf), ("IXFR", .ixfr), ("AXFR", .axfr), ("ANY", .any),
        ("URI", .uri), ("CAA", .caa),
    ]

    /// Parses a mnemonic (`AAAA`, case-insensitive) or the RFC 3597 form `TYPE65`. Types beyond the
    /// table above (NSEC3, CDS, OPENPGPKEY…) come from ldns's, the codec of record (QA pass 10, F18).
    public init?(mnemonic: String) {
        let upper = mnemonic.uppercased()
        if let hit = Self.mnemonics.first(where: { $0.0 == upper }) { self = hit.1; return }
        if upper.hasPrefix("TYPE"), let code = UInt16(upper.dropFirst(4)) { self.init(code); return }
        guard upper.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) else { return nil }
        let code = ldns_get_rr_type_by_name(upper).rawValue
        guard code != 0, code <= UInt16.max else { return nil }
        self.init(UInt16(code))
    }

    /// A type an allow rule may name: any but OPT, a pseudo-record no query asks for (RFC 6891 §6.1.1).
    /// Shared by allow-lists, exceptions and `policy.default_types`, so all refuse the same names.
    public init?(queryTypeMnemonic m: String) {
        guard let t = RecordType(mnemonic: m), t != .opt else { return nil }
        self = t
    }

    public var mnemonic: String {
        if let hit = Self.mnemonics.first(where: { $0.1 == self }) { return hit.0 }
        guard let text = ldns_rr_type2str(ldns_rr_type(rawValue: UInt32(rawValue))) else { return "TYPE\(rawValue)" }
        defer { free(text) }
        return String(cString: text)
    }
    public var description: String { mnemonic }

    /// The types a build needs; everything else must be listed per entry (zones/README.md).
    public static let buildDefaults: Set<RecordType> = [.a, .aaaa, .cname, .https, .svcb]
}

/// DNS CLASS values that matter to dnsgate (RFC 1035 §3.2.4).
public enum DNSClass {
    public static let `in`: UInt16 = 1
    public static let chaos: UInt16 = 3
}

/// RCODE values (RFC 1035 §4.1.1, RFC 6891 for BADVERS).
public struct ResponseCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let noError = ResponseCode(rawValue: 0)
    public static let formErr = ResponseCode(rawValue: 1)
    public static let servFail = ResponseCode(rawValue: 2)
    public static let nxDomain = ResponseCode(rawValue: 3)
    public static let notImp = ResponseCode(rawValue: 4)
    public static let refused = ResponseCode(rawValue: 5)
    public static let badVers = ResponseCode(rawValue: 16)

    public var mnemonic: String {
        switch rawValue {
        case 0: return "NOERROR"
        case 1: return "FORMERR"
        case 2: return "SERVFAIL"
        case 3: return "NXDOMAIN"
        case 4: return "NOTIMP"
        case 5: return "REFUSED"
        case 16: return "BADVERS"
        default: return "RCODE\(rawValue)"
        }
    }
    public var description: String { mnemonic }
}

/// Extended DNS Error info-codes used by dnsgate (RFC 8914 §4).
public enum ExtendedErrorCode: UInt16, Sendable {
    case other = 0
    case staleAnswer = 3
    case prohibited = 18
    case blocked = 15
    case filtered = 17
    case notReady = 14
    case noReachableAuthority = 22
    case networkError = 23
}
