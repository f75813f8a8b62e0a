/// A local-data CNAME chain joined to the answer for its target: the reply to a client whose question
/// zone data CNAMEs to a name that is forwarded (`pkgs.ci.test CNAME registry.example.com.`).
///
/// A stub resolver such as glibc's does not ask for a CNAME's target itself, so the CNAME alone left
/// `getent hosts` with no address; resolvers (unbound's RPZ, PowerDNS) answer with the chain and the
/// target's records. The target's reply is rendered as usual for the target's question, then moved
/// behind the chain: every compression pointer in it is remapped, those into the question's name to
/// the same name in the chain's last record, the rest by the distance the records moved.
public enum ChainSplice {
    /// `reply`, a message whose question is `chain`'s last target (uncompressed at offset 12, as
    /// `UpstreamAnswer.render` writes it), as the answer to `question`: header (ID and flags as in
    /// `reply`), `question`, the chain's CNAME records with `ttl`, then `reply`'s records. Nil when
    /// it cannot be done faithfully (a record type whose names this does not know how to move, a
    /// pointer outside the names it knows, more than 16 KB before a name): the caller then answers
    /// with the chain alone.
    public static func splice(_ reply: [UInt8], chain: [LocalRecord], ttl: UInt32, question: ArraySlice<UInt8>) -> [UInt8]? {
        // The zone may spell the target in capitals; the question asked upstream is canonical.
        guard reply.count >= 12, reply.u16(at: 4) == 1, let last = chain.last, last.type == .cname,
              let (targetEnd, compressed) = nameEnd(reply, at: 12), !compressed, targetEnd - 12 == last.rdata.count,
              zip(reply[12..<targetEnd], last.rdata).allSatisfy({ asciiLower($0) == asciiLower($1) }),
              targetEnd + 4 <= reply.count else { return nil }
        var out = [UInt8](); out.reserveCapacity(reply.count + question.count + chain.count * 64)
        out += reply[0..<12]
        out.put16(reply.u16(at: 6) + UInt16(chain.count), at: 6)
        // No AD: the chain is dnsgate's own unsigned data, so the whole answer is not authenticated
        // (RFC 4035 §3.2.3), whatever the upstream said of its part.
        out.put16(reply.u16(at: 2) & ~0x0020, at: 2)
        out += question
        var targetAt = 0
        for (k, r) in chain.enumerated() {
            if let owner = r.owner { out += owner.wire } else { out += [0xC0, 0x0C] }   // the question's name
            out += [0, 5, 0, 1]
            out += [UInt8(ttl >> 24), UInt8(ttl >> 16 & 0xFF), UInt8(ttl >> 8 & 0xFF), UInt8(ttl & 0xFF)]
            out += [UInt8(r.rdata.count >> 8), UInt8(r.rdata.count & 0xFF)]
            targetAt = out.count
            // The last target as asked upstream: the reply's names that point into it read as the reply wrote them.
            if k == chain.count - 1 { out += reply[12..<targetEnd] } else { out += r.rdata }
        }
        let recordsAt = targetEnd + 4
        let shift = out.count - recordsAt
        func moved(_ pointer: Int) -> Int? {
            if pointer >= 12 && pointer < targetEnd { return targetAt + (pointer - 12) }
            if pointer >= recordsAt && pointer < reply.count { return pointer + shift }
            return nil
        }
        let records = Int(reply.u16(at: 6)) + Int(reply.u16(at: 8)) + Int(reply.u16(at: 10))
        var i = recordsAt
        for _ in 0..<records {
            guard let ownerEnd = copyName(reply, at: i, into: &out, moved: moved), ownerEnd + 10 <= reply.count else { return nil }
            let type = RecordType(rawValue: reply.u16(at: ownerEnd))
            let length = Int(reply.u16(at: ownerEnd + 8))
            let rdata = ownerEnd + 10, end = rdata + length
            guard end <= reply.count else { return nil }
            out += reply[ownerEnd..<rdata]
            let lengthAt = out.count - 2
            guard let layout = Self.names(in: type) else { return nil }
            var o = rdata
            for part in layout {
                switch part {
                case .fixed(let n):
                    guard o + n <= end else { return nil }
                    out += reply[o..<(o + n)]; o += n
                case .name:
                    guard let e = copyName(reply, at: o, into: &out, moved: moved), e <= end else { return nil }
                    o = e
                case .rest:
                    out += reply[o..<end]; o = end
                }
            }
            guard o == end else { return nil }
            let written = out.count - lengthAt - 2
            out.put16(UInt16(written), at: lengthAt)
            i = end
        }
        guard i == reply.count else { return nil }
        return out
    }

    /// How a record's RDATA is laid out, as far as names go.
    private enum Part { case fixed(Int), name, rest }

    /// The names a type's RDATA may hold compressed: those of RFC 1035 (§3.3, §4.1.4) and the types
    /// RFC 3597 §4 asks receivers to decompress. Every other type's RDATA holds no compressed name
    /// and is copied as it is; nil for the types whose names sit behind variable fields (NAPTR, SIG,
    /// NXT), which this does not move.
    private static func names(in type: RecordType) -> [Part]? {
        switch type.rawValue {
        case 2, 3, 4, 5, 7, 8, 9, 12: return [.name]                    // NS, MD, MF, CNAME, MB, MG, MR, PTR
        case 6: return [.name, .name, .rest]                             // SOA: MNAME, RNAME, five numbers
        case 14, 17: return [.name, .name]                               // MINFO, RP
        case 15, 18, 21: return [.fixed(2), .name]                       // MX, AFSDB, RT
        case 26: return [.fixed(2), .name, .name]                        // PX
        case 33: return [.fixed(6), .name]                               // SRV
        case 24, 30, 35: return nil                                      // SIG, NXT, NAPTR
        default: return [.rest]
        }
    }

    /// Where the name at `offset` ends (after its root label or its pointer), and whether it ends in a
    /// pointer; checked for bounds only.
    private static func nameEnd(_ msg: [UInt8], at offset: Int) -> (end: Int, pointer: Bool)? {
        var o = offset
        while o < msg.count {
            let len = Int(msg[o])
            if len == 0 { return (o + 1, false) }
            if len & 0xC0 == 0xC0 { return o + 2 <= msg.count ? (o + 2, true) : nil }
            guard len & 0xC0 == 0 else { return nil }
            o += 1 + len
        }
        return nil
    }

    /// Copies the name at `offset` into `out`, its pointer (if any) remapped by `moved`; returns
    /// where it ends in `msg`. Nil for a pointer `moved` does not know, or one past 14 bits.
    private static func copyName(_ msg: [UInt8], at offset: Int, into out: inout [UInt8], moved: (Int) -> Int?) -> Int? {
        guard let (end, pointer) = nameEnd(msg, at: offset) else { return nil }
        guard pointer else { out += msg[offset..<end]; return end }
        guard let to = moved(Int(msg.u16(at: end - 2) & 0x3FFF)), to < 0x4000 else { return nil }
        out += msg[offset..<(end - 2)]
        out += [UInt8(0xC0 | to >> 8), UInt8(to & 0xFF)]
        return end
    }
}
