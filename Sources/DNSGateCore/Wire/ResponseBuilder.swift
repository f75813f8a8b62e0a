/// Builds every reply dnsgate writes itself: errors, sinkhole answers, truncated replies, and the
/// final form of forwarded and cached answers.
///
/// Header rules (RFC 1035 §4.1.1, RFC 6895 §2): ID, opcode, RD and CD come from the query; QR and RA
/// are set; AA is never set (dnsgate is not authoritative for anything it forwards).
public enum ResponseBuilder {
    /// Payload size dnsgate advertises and honours by default (DNS flag day 2020).
    public static let defaultUDPPayload: UInt16 = 1232

    /// Header flags for a reply to `q` with `rcode` (low four bits; extended bits go in OPT).
    static func replyFlags(_ q: HeaderFields, rcode: ResponseCode, truncated: Bool = false) -> UInt16 {
        var f: UInt16 = 0x8000 | 0x0080                // QR, RA
        f |= UInt16(q.opcode) << 11
        f |= q.flags & 0x0100                           // RD
        f |= q.flags & 0x0010                           // CD
        if truncated { f |= 0x0200 }
        f |= rcode.rawValue & 0xF
        return f
    }

    /// An OPT record (RFC 6891 §6.1.2), optionally carrying an Extended DNS Error (RFC 8914 §2).
    static func appendOPT(_ out: inout [UInt8], payload: UInt16, rcode: ResponseCode, dnssecOK: Bool,
                          ede: ExtendedError?) {
        out.appendWritten(maxBytes: optLength(ede)) { writeOPT(into: &$0, payload: payload, rcode: rcode, dnssecOK: dnssecOK, ede: ede) }
    }

    /// Octets of the OPT record `writeOPT` writes for `ede`.
    static func optLength(_ ede: ExtendedError?) -> Int { ede.map { 17 + edeTextLength($0) } ?? 11 }

    /// Octets of the EDE text that are sent: kept well inside any payload limit, and cut on a
    /// character boundary, never mid UTF-8 sequence.
    private static let maxEDEText = 400
    private static func edeTextLength(_ ede: ExtendedError) -> Int {
        let utf8 = ede.text.utf8
        var cut = min(utf8.count, maxEDEText)
        if cut < utf8.count {
            while cut > 0 && utf8[utf8.index(utf8.startIndex, offsetBy: cut)] & 0xC0 == 0x80 { cut -= 1 }   // continuation octet
        }
        return cut
    }

    static func writeOPT(into w: inout WireWriter, payload: UInt16, rcode: ResponseCode, dnssecOK: Bool, ede: ExtendedError?) {
        w.u8(0)                                         // owner: root
        w.u16(RecordType.opt.rawValue)
        w.u16(payload)
        w.u8(UInt8(rcode.rawValue >> 4))                // extended RCODE, upper 8 bits
        w.u8(0)                                         // version 0
        w.u8(dnssecOK ? 0x80 : 0); w.u8(0)              // DO echoed (RFC 3225 §3)
        guard let ede else { w.u16(0); return }
        let text = ede.text.utf8.prefix(edeTextLength(ede))
        w.u16(UInt16(4 + 2 + text.count))
        w.u16(15)                                       // option code: Extended DNS Error
        w.u16(UInt16(2 + text.count))
        w.u16(ede.code.rawValue)
        if text.withContiguousStorageIfAvailable({ w.bytes(UnsafeRawBufferPointer($0)) }) == nil { for b in text { w.u8(b) } }
    }

    /// The largest reply the client can take over this transport (RFC 6891 §6.2.3, §6.2.5).
    public static func sizeLimit(edns: EDNSInfo?, overTCP: Bool, maxUDP: UInt16 = defaultUDPPayload) -> Int {
        if overTCP { return 65535 }
        guard let edns else { return 512 }
        return Int(max(512, min(edns.udpPayloadSize, maxUDP)))
    }

    /// An error reply: header, the question when it could be read, OPT when the client sent one.
    public static func error(_ r: Rejection, ede: ExtendedError? = nil) -> [UInt8] {
        error(to: r.header, rcode: r.rcode, rawQuestion: r.rawQuestion, edns: r.edns, ede: ede)
    }

    public static func error(to h: HeaderFields, rcode: ResponseCode, rawQuestion: ArraySlice<UInt8>?,
                             edns: EDNSInfo?, ede: ExtendedError? = nil) -> [UInt8] {
        var out = [UInt8]()
        out.appendWritten(maxBytes: 12 + (rawQuestion?.count ?? 0) + (edns == nil ? 0 : optLength(ede))) { w in
            w.u16(h.id)
            w.u16(replyFlags(h, rcode: rcode))
            w.u16(rawQuestion == nil ? 0 : 1)
            w.u16(0); w.u16(0)
            w.u16(edns == nil ? 0 : 1)
            if let q = rawQuestion { w.bytes(q) }
            if let e = edns { writeOPT(into: &w, payload: defaultUDPPayload, rcode: rcode, dnssecOK: e.dnssecOK, ede: ede) }
        }
        return out
    }

    /// `reply` without the OPT record `writeOPT` put last, ARCOUNT one less; nil when it ends in none,
    /// or in one whose extended RCODE the header cannot carry. For a TCP answer the OPT pushes past
    /// 65,535 octets: the answer without it is worth more than a truncated one, which a client over
    /// TCP has nowhere to retry (QA pass 12, F5).
    public static func droppingTrailingOPT(_ reply: [UInt8]) -> [UInt8]? {
        guard reply.count >= 12 + 11, reply.u16(at: 10) > 0 else { return nil }
        let longest = min(reply.count - 12, 17 + maxEDEText)
        for length in 11...longest {
            let start = reply.count - length
            guard reply[start] == 0, reply.u16(at: start + 1) == RecordType.opt.rawValue, Int(reply.u16(at: start + 9)) == length - 11 else { continue }
            guard reply[start + 5] == 0 else { return nil }
            var out = Array(reply[..<start])
            out.put16(reply.u16(at: 10) - 1, at: 10)
            return out
        }
        return nil
    }

    /// A reply with TC set and nothing but the question (and OPT): the client retries over TCP (RFC 7766 §5).
    public static func truncated(_ q: QueryView, rcode: ResponseCode = .noError) -> [UInt8] {
        var out = error(to: q.header, rcode: rcode, rawQuestion: q.rawQuestion, edns: q.edns)
        out.put16(replyFlags(q.header, rcode: rcode, truncated: true), at: 2)
        return out
    }

    /// A synthesized answer for a name that policy denied or answers locally.
    ///
    /// Negative answers carry a SOA in authority whose MINIMUM and TTL are `ttl`, so resolvers
    /// behind dnsgate cache the denial for exactly that long (RFC 2308 §5).
    public static func synthesized(_ q: QueryView, rcode: ResponseCode, answers: [LocalRecord], ttl: UInt32,
                                   ede: ExtendedError?) -> [UInt8] {
        var out = [UInt8](); out.reserveCapacity(128 + q.rawQuestion.count)
        synthesized(into: &out, q, rcode: rcode, answers: answers, ttl: ttl, ede: ede)
        return out
    }

    /// The same, written over what `out` held (storage the caller reuses).
    public static func synthesized(into out: inout [UInt8], _ q: QueryView, rcode: ResponseCode, answers: [LocalRecord], ttl: UInt32,
                                   ede: ExtendedError?) {
        let negative = answers.isEmpty && (rcode == .nxDomain || rcode == .noError)
        let soa = negativeSOA
        var size = 12 + q.rawQuestion.count + (negative ? soa.count : 0) + (q.edns == nil ? 0 : optLength(ede))
        for rr in answers { size += (rr.owner?.wire.count ?? 2) + 10 + rr.rdata.count }
        out.replaceWithWritten(maxBytes: size) { w in
            w.u16(q.header.id)
            w.u16(replyFlags(q.header, rcode: rcode))
            w.u16(1)
            w.u16(UInt16(answers.count))
            w.u16(negative ? 1 : 0)
            w.u16(q.edns == nil ? 0 : 1)
            w.bytes(q.rawQuestion)
            for rr in answers {
                if let owner = rr.owner { w.bytes(owner.wire) } else { w.u16(0xC00C) }  // 0xC00C: the question name
                w.u16(rr.type.rawValue); w.u16(DNSClass.in); w.u32(ttl); w.u16(UInt16(rr.rdata.count))
                w.bytes(rr.rdata)
            }
            if negative {
                let at = w.count
                w.bytes(soa)
                w.put32(ttl, at: at + 6)                          // the record's TTL
                w.put32(ttl, at: at + soa.count - 4)              // RFC 2308 §5: MINIMUM
            }
            if let e = q.edns { writeOPT(into: &w, payload: defaultUDPPayload, rcode: rcode, dnssecOK: e.dnssecOK, ede: ede) }
        }
    }

    /// The SOA record of a negative answer, owned by the question name, with its TTL and MINIMUM
    /// zero: `synthesized` copies it whole and writes the two TTLs in. MNAME and RNAME are names
    /// under `.invalid` (RFC 6761 §6.4) so nobody resolves them.
    static let negativeSOA: [UInt8] = {
        let names = try! DNSName("dnsgate.invalid.").wire + DNSName("policy.dnsgate.invalid.").wire
        var out = [UInt8]()
        out.appendWritten(maxBytes: 32 + names.count) { w in
            w.u16(0xC00C)                                     // 0xC00C: the question name
            w.u16(RecordType.soa.rawValue); w.u16(DNSClass.in); w.u32(0)
            w.u16(UInt16(names.count + 20))
            w.bytes(names)
            w.u32(1); w.u32(3600); w.u32(600); w.u32(86400)   // serial refresh retry expire
            w.u32(0)                                          // MINIMUM
        }
        return out
    }()
}

/// An Extended DNS Error to attach (RFC 8914).
public struct ExtendedError: Sendable, Equatable {
    public let code: ExtendedErrorCode
    public let text: String
    public init(_ code: ExtendedErrorCode, _ text: String) { self.code = code; self.text = text }
}

/// A record dnsgate answers itself (sinkhole address, RPZ local data). `owner == nil` means the query name.
public struct LocalRecord: Sendable, Equatable {
    public let owner: DNSName?
    public let type: RecordType
    public let rdata: [UInt8]
    public init(owner: DNSName? = nil, type: RecordType, rdata: [UInt8]) { self.owner = owner; self.type = type; self.rdata = rdata }
}
