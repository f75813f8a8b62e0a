import DNSGateCore

/// Builds DNS messages byte by byte for tests, so a fixture says exactly what is on the wire.
///
/// Names are written label by label without escapes and without changing case (`"WwW.Example.COM"` stays
/// as typed), which is what 0x20-randomised clients send. Malformed packets that cannot be expressed
/// with these helpers are written as hex in the tests themselves.
enum WireFixtures {
    /// An EDNS(0) OPT pseudo-record (RFC 6891 §6.1.2).
    struct OPT {
        var payload: UInt16 = 1232
        var extendedRCode: UInt8 = 0
        var version: UInt8 = 0
        var dnssecOK = false
        var options: [(code: UInt16, data: [UInt8])] = []

        var bytes: [UInt8] {
            var rdata: [UInt8] = []
            for o in options { rdata.be16(o.code); rdata.be16(UInt16(o.data.count)); rdata += o.data }
            var out: [UInt8] = [0]
            out.be16(41); out.be16(payload)
            out.append(extendedRCode); out.append(version); out.append(dnssecOK ? 0x80 : 0); out.append(0)
            out.be16(UInt16(rdata.count)); out += rdata
            return out
        }
    }

    /// A resource record with an owner given as raw wire bytes (so it may be a compression pointer).
    struct RR {
        var owner: [UInt8]
        var type: UInt16
        var rclass: UInt16 = 1
        var ttl: UInt32
        var rdata: [UInt8]

        var bytes: [UInt8] {
            var out = owner
            out.be16(type); out.be16(rclass); out.be32(ttl); out.be16(UInt16(rdata.count)); out += rdata
            return out
        }
    }

    /// Pointer to the question name, which always starts at offset 12.
    static let questionPointer: [UInt8] = [0xC0, 0x0C]

    /// Uncompressed wire form of a dotted name, case kept, no escapes. `""` or `"."` is the root.
    static func name(_ text: String) -> [UInt8] {
        var out: [UInt8] = []
        for label in text.split(separator: ".") { out.append(UInt8(label.utf8.count)); out += Array(label.utf8) }
        out.append(0)
        return out
    }

    /// The 12-octet header.
    static func header(id: UInt16, flags: UInt16, qd: UInt16, an: UInt16, ns: UInt16, ar: UInt16) -> [UInt8] {
        var out: [UInt8] = []
        out.be16(id); out.be16(flags); out.be16(qd); out.be16(an); out.be16(ns); out.be16(ar)
        return out
    }

    /// A query. Counts default to what the sections hold; pass them to lie about the sections.
    ///
    /// - Parameters:
    ///   - flags: the second header word; default RD only.
    ///   - nameWire: raw question name bytes, overriding `name` (for pointers and bad label types).
    ///   - additional: raw bytes after the OPT (or in its place), counted in ARCOUNT unless `arcount` is given.
    ///   - trailing: bytes appended after everything, never counted.
    static func query(id: UInt16 = 0x1234, name: String = "www.example.com", nameWire: [UInt8]? = nil,
                      type: UInt16 = 1, qclass: UInt16 = 1, flags: UInt16 = 0x0100,
                      qdcount: UInt16? = nil, ancount: UInt16 = 0, nscount: UInt16 = 0, arcount: UInt16? = nil,
                      opt: OPT? = nil, additional: [[UInt8]] = [], trailing: [UInt8] = []) -> [UInt8] {
        let ar = arcount ?? UInt16((opt == nil ? 0 : 1) + additional.count)
        var out = header(id: id, flags: flags, qd: qdcount ?? 1, an: ancount, ns: nscount, ar: ar)
        out += question(name: name, nameWire: nameWire, type: type, qclass: qclass)
        if let opt { out += opt.bytes }
        for a in additional { out += a }
        out += trailing
        return out
    }

    static func question(name: String = "www.example.com", nameWire: [UInt8]? = nil, type: UInt16 = 1, qclass: UInt16 = 1) -> [UInt8] {
        var out = nameWire ?? Self.name(name)
        out.be16(type); out.be16(qclass)
        return out
    }

    /// A reply as an upstream would send it: QR and RA set, RD echoed, question, then the three sections.
    static func response(id: UInt16 = 0x4242, name: String = "www.example.com", nameWire: [UInt8]? = nil,
                         type: UInt16 = 1, qclass: UInt16 = 1, rcode: UInt16 = 0, extraFlags: UInt16 = 0,
                         qdcount: UInt16 = 1, answers: [RR] = [], authority: [RR] = [], additional: [RR] = [],
                         opt: OPT? = nil, trailing: [UInt8] = []) -> [UInt8] {
        let flags: UInt16 = 0x8000 | 0x0100 | 0x0080 | extraFlags | (rcode & 0xF)
        var out = header(id: id, flags: flags, qd: qdcount, an: UInt16(answers.count), ns: UInt16(authority.count),
                         ar: UInt16(additional.count + (opt == nil ? 0 : 1)))
        out += question(name: name, nameWire: nameWire, type: type, qclass: qclass)
        for r in answers + authority + additional { out += r.bytes }
        if let opt { out += opt.bytes }
        out += trailing
        return out
    }

    /// SOA RDATA with the given MINIMUM (RFC 1035 §3.3.13); names uncompressed.
    static func soaRData(minimum: UInt32, mname: String = "ns.example.com", rname: String = "hostmaster.example.com") -> [UInt8] {
        var out = name(mname) + name(rname)
        out.be32(2024010101); out.be32(7200); out.be32(900); out.be32(1_209_600); out.be32(minimum)
        return out
    }

    /// Parses hex written with optional spaces and newlines: `"12 34 01 00"`.
    static func hex(_ text: String) -> [UInt8] {
        let digits = text.filter { !$0.isWhitespace }
        precondition(digits.count % 2 == 0, "odd hex length in fixture")
        var out: [UInt8] = [], i = digits.startIndex
        while i < digits.endIndex {
            let j = digits.index(i, offsetBy: 2)
            out.append(UInt8(digits[i..<j], radix: 16)!)
            i = j
        }
        return out
    }

    /// A decoded query view, for tests of later stages; fails the test run loudly if the fixture is bad.
    static func view(_ bytes: [UInt8]) -> QueryView {
        guard case .query(let q) = RequestSanity.decode(bytes) else { fatalError("fixture is not a valid query: \(bytes)") }
        return q
    }
}

/// Readers over a reply, so assertions name fields rather than offsets.
struct ParsedReply {
    let bytes: [UInt8]
    var id: UInt16 { u16(0) }
    var flags: UInt16 { u16(2) }
    var qr: Bool { flags & 0x8000 != 0 }
    var aa: Bool { flags & 0x0400 != 0 }
    var tc: Bool { flags & 0x0200 != 0 }
    var rd: Bool { flags & 0x0100 != 0 }
    var ra: Bool { flags & 0x0080 != 0 }
    var ad: Bool { flags & 0x0020 != 0 }
    var cd: Bool { flags & 0x0010 != 0 }
    var opcode: UInt16 { (flags >> 11) & 0xF }
    var rcodeLow: UInt16 { flags & 0xF }
    var qd: UInt16 { u16(4) }
    var an: UInt16 { u16(6) }
    var ns: UInt16 { u16(8) }
    var ar: UInt16 { u16(10) }

    func u16(_ o: Int) -> UInt16 { UInt16(bytes[o]) << 8 | UInt16(bytes[o + 1]) }
    func u32(_ o: Int) -> UInt32 { UInt32(u16(o)) << 16 | UInt32(u16(o + 2)) }

    struct Record { let ownerStart: Int; let type: UInt16; let rclass: UInt16; let ttl: UInt32; let ttlOffset: Int; let rdata: [UInt8]; let rdataStart: Int }

    /// Skips a name (compressed or not) starting at `o`; returns the offset after it.
    func skipName(_ o: Int) -> Int {
        var i = o
        while true {
            let l = bytes[i]
            if l == 0 { return i + 1 }
            if l & 0xC0 == 0xC0 { return i + 2 }
            i += Int(l) + 1
        }
    }

    /// Question bytes (name, type, class), assuming QDCOUNT is 1.
    var question: ArraySlice<UInt8> { bytes[12..<(skipName(12) + 4)] }

    /// All records after the question, in order (answer, authority, additional).
    var records: [Record] {
        var i = 12
        for _ in 0..<qd { i = skipName(i) + 4 }
        var out: [Record] = []
        for _ in 0..<(Int(an) + Int(ns) + Int(ar)) {
            let start = i
            i = skipName(i)
            let rdlen = Int(u16(i + 8))
            out.append(Record(ownerStart: start, type: u16(i), rclass: u16(i + 2), ttl: u32(i + 4), ttlOffset: i + 4,
                              rdata: Array(bytes[(i + 10)..<(i + 10 + rdlen)]), rdataStart: i + 10))
            i += 10 + rdlen
        }
        precondition(i == bytes.count, "reply has \(bytes.count - i) unparsed octets")
        return out
    }

    var opt: Record? { records.first { $0.type == 41 } }

    /// EDNS options of the OPT record as (code, data).
    var ednsOptions: [(code: UInt16, data: [UInt8])] {
        guard let o = opt else { return [] }
        var out: [(UInt16, [UInt8])] = [], i = 0
        let d = o.rdata
        while i + 4 <= d.count {
            let code = UInt16(d[i]) << 8 | UInt16(d[i + 1]), len = Int(UInt16(d[i + 2]) << 8 | UInt16(d[i + 3]))
            out.append((code, Array(d[(i + 4)..<(i + 4 + len)]))); i += 4 + len
        }
        return out
    }
}

extension Array where Element == UInt8 {
    mutating func be16(_ v: UInt16) { append(UInt8(v >> 8)); append(UInt8(v & 0xFF)) }
    mutating func be32(_ v: UInt32) { be16(UInt16(v >> 16)); be16(UInt16(v & 0xFFFF)) }
}
