/// An upstream's reply, checked and reduced to what the cache stores and the client gets.
///
/// The upstream's OPT is removed (dnsgate writes its own per client), the ID zeroed, and the offset of
/// every TTL remembered so a cached copy can be aged in place without re-parsing (RFC 1035 §4.1.3).
public struct UpstreamAnswer: Sendable {
    public let rcode: ResponseCode
    public let truncated: Bool
    /// Message without OPT, ID zero. The question starts at offset 12.
    public let body: [UInt8]
    public let questionLength: Int
    /// Each record's TTL: where it sits in `body` and its value as received (RFC 2181 §8 applied).
    /// One array of pairs, not two arrays: each cached answer is one allocation smaller, and a
    /// render walks one.
    public private(set) var ttlFields: [TTLField]
    public struct TTLField: Sendable, Equatable {
        public let offset: UInt32
        public let ttl: UInt32
    }
    /// The TTLs alone, in record order.
    public var ttls: [UInt32] { ttlFields.map(\.ttl) }
    public let answerCount: Int
    /// Names in CNAME records of the answer section, in order; for strict chain checking and the log.
    public let cnameTargets: [DNSName]
    /// Owners of answer records that are neither the question's name nor a CNAME target before them
    /// (DNAME and RRSIG records aside): the substituted name of a DNAME sent without its CNAME, or
    /// records no chain leads to. Empty, and no allocation, for answers as resolvers send them.
    let strayOwners: [DNSName]
    /// Whether the answer section holds records owned by any name but the question's.
    let ownsBeyondQuestion: Bool

    /// The names a strict check (`policy.cname_targets: allowed`) must find allowed before this
    /// answer goes to a client that asked for `type`: each CNAME target, and each stray owner (QA
    /// pass 12, F3: a DNAME without its CNAME, or an address owned by a name no CNAME named, passed
    /// unchecked, and a stub that ignores owner names would use it). A CNAME question's own target is
    /// the client's next question, decided then; records under it in this answer are checked now
    /// (F4: a denied target's address came along unchecked).
    public func namesToCheck(asked type: RecordType) -> [DNSName] {
        guard hasNamesToCheck(asked: type) else { return [] }
        return strayOwners.isEmpty ? cnameTargets : cnameTargets + strayOwners
    }

    /// Whether `namesToCheck(asked:)` has any, without making the list (a cache hit asks this).
    public func hasNamesToCheck(asked type: RecordType) -> Bool {
        type == .cname ? ownsBeyondQuestion : !(cnameTargets.isEmpty && strayOwners.isEmpty)
    }
    /// The answer section's runs of two or more address records (A or AAAA) with the same owner
    /// octets, whose addresses `render` rotates. Empty, and no allocation, for most answers.
    let addressRuns: [AddressRun]
    /// Records of one length, back to back: `count` addresses of `length` octets, the first at
    /// `firstAddress` in `body`, each `stride` octets after the last.
    struct AddressRun: Sendable, Equatable {
        let firstAddress: UInt32
        let stride: UInt16
        let count: UInt16
        let length: UInt8
    }
    /// How long this answer may be cached, or nil when it must not be (RFC 2308 §5, §7.1).
    public private(set) var cacheTTL: UInt32?

    /// The same answer, not to be cached.
    public var uncached: UpstreamAnswer { var copy = self; copy.cacheTTL = nil; return copy }
    /// NOERROR or NXDOMAIN: an answer to pass on. Any other RCODE (SERVFAIL, REFUSED, FORMERR,
    /// NOTIMP…) is the upstream failing at this question: the exchange moves on to the next upstream,
    /// and a client is never told FORMERR about a query it sent well formed.
    public var isAnswer: Bool { rcode.rawValue == 0 || rcode.rawValue == 3 }
    /// The RCODE as the upstream sent it, extended bits included (BADVERS is 16): for the error text
    /// when it is not an answer. `rcode` reads an extended one as SERVFAIL.
    public let upstreamRCODE: ResponseCode
    /// Whether the reply carried an OPT record (removed from `body`).
    public let hadOPT: Bool
    /// FORMERR or NOTIMP without an OPT of its own: the reply of a server that does not know EDNS to a
    /// query that carried an OPT (RFC 6891 §7), which it would answer without one.
    public var refusesEDNS: Bool {
        !hadOPT && (upstreamRCODE.rawValue == ResponseCode.formErr.rawValue || upstreamRCODE.rawValue == ResponseCode.notImp.rawValue)
    }

    /// NXDOMAIN, or NODATA (no record of the asked type, a SOA in authority), with or without a CNAME
    /// chain before it: its TTLs are capped as a negative answer's (RFC 2308 §2.1, §2.2).
    public let isNegative: Bool

    /// Checks `msg` against the question dnsgate asked.
    ///
    /// - Throws: `WireError` when the reply is malformed or answers a different question; such a reply
    ///   is discarded, never passed on (spoofing defence, RFC 5452 §9.1).
    /// - Parameter msg: taken, not copied: the stored body is `msg` itself, edited in place.
    public init(_ msg: consuming [UInt8], id: UInt16, name: DNSName, type: RecordType) throws {
        guard let h = msg.withUnsafeBytes({ HeaderFields($0) }) else { throw WireError.truncated(at: msg.count) }
        guard h.isResponse, h.id == id else { throw WireError.malformed("not a response to our ID") }
        guard h.opcode == 0 else { throw WireError.malformed("OPCODE \(h.opcode) in reply to a QUERY") }   // RFC 1035 §4.1.1: copied
        guard h.questionCount == 1 else { throw WireError.malformed("QDCOUNT \(h.questionCount) in reply") }
        // Names are read on the stack (`withNameBytes`) and only a CNAME target is kept: a DNSName per
        // owner name was most of the parse's allocations (bench: 5 of the 35 per cache miss), and a
        // buffer of their own was one more per miss.
        /// Where the name at `offset` ends; it is checked (bounds, pointers, length) and dropped. (`msg`
        /// is an argument, not captured: a captured `msg` could not be consumed below.)
        func skipName(_ msg: borrowing [UInt8], at offset: Int) throws -> Int {
            try withNameBytes(copy msg, at: offset, allowCompression: true) { _ in }.end
        }
        let (askedName, qEnd) = try withNameBytes(copy msg, at: 12, allowCompression: true) { q in
            name.wire.withUnsafeBytes { wireBytesEqual(q, $0) }
        }
        guard qEnd + 4 <= msg.count else { throw WireError.truncated(at: qEnd) }
        guard askedName, msg.u16(at: qEnd) == type.rawValue,
              msg.u16(at: qEnd + 2) == DNSClass.in else {
            throw WireError.malformed("reply is for another question")
        }
        guard qEnd - 12 == name.wire.count else { throw WireError.malformed("compressed question in reply") }
        let records = Int(h.answerCount) + Int(h.authorityCount) + Int(h.additionalCount)
        var ttlFields: [TTLField] = [], cnames: [DNSName] = [], strays: [DNSName] = []
        var beyondQuestion = false
        ttlFields.reserveCapacity(records)
        var i = qEnd + 4
        var optRange: Range<Int>?
        var minAnswerTTL = UInt32.max
        var negativeTTL: UInt32?
        var answersType = false
        let anyType = type.rawValue == RecordType.any.rawValue
        var extendedRCODE: UInt8 = 0
        var additionalBeforeOPT = 0
        var runs: [AddressRun] = []
        // The run being read: its first record's start, owner length and record length, and its count.
        var run: (start: Int, ownerLength: Int, stride: Int, count: Int)?
        // Called before the next record's TTL is kept, so the run's are the last `count` kept.
        func closeRun() {
            if let r = run, r.count >= 2 {
                runs.append(AddressRun(firstAddress: UInt32(r.start + r.ownerLength + 10), stride: UInt16(r.stride),
                                       count: UInt16(r.count), length: UInt8(r.stride - r.ownerLength - 10)))
                // One TTL for the RRset, its smallest (RFC 2181 §5.2): `render` turns the addresses, and
                // each would otherwise go out with another record's TTL (QA pass 13, F11).
                let kept = ttlFields.count - r.count
                if let least = ttlFields[kept...].map(\.ttl).min() {
                    for k in kept..<ttlFields.count { ttlFields[k] = TTLField(offset: ttlFields[k].offset, ttl: least) }
                }
            }
            run = nil
        }
        for section in 0..<3 {
            if section == 1 { closeRun() }   // runs are in the answer section only
            let count = Int(section == 0 ? h.answerCount : section == 1 ? h.authorityCount : h.additionalCount)
            for index in 0..<count {
                let start = i
                // An answer record's owner: the question's name, a CNAME target named before it, or a stray.
                var stray: DNSName?, isQuestion = false
                let afterName: Int
                if section == 0 && i + 1 < msg.count && msg[i] == 0xC0 && msg[i + 1] == 0x0C {
                    // A pointer to the question's name, as nearly every answer's first owner is: no read.
                    isQuestion = true
                    afterName = i + 2
                } else if section == 0 {
                    afterName = try withNameBytes(copy msg, at: i, allowCompression: true) { owner in
                        isQuestion = name.wire.withUnsafeBytes { wireBytesEqual(owner, $0) }
                        if !isQuestion && !cnames.contains(where: { $0.wire.withUnsafeBytes { wireBytesEqual(owner, $0) } }) {
                            stray = DNSName(uncheckedWire: Array(owner))
                        }
                    }.end
                } else {
                    afterName = try skipName(msg, at: i)
                }
                guard afterName + 10 <= msg.count else { throw WireError.truncated(at: afterName) }
                let rtype = RecordType(msg.u16(at: afterName))
                if section == 0 && rtype != .dname && rtype != .rrsig && !isQuestion {
                    beyondQuestion = true
                    if let stray { strays.append(stray) }
                }
                let ttl = msg.u32(at: afterName + 4)
                let rdlen = Int(msg.u16(at: afterName + 8))
                let rdata = afterName + 10
                guard rdata + rdlen <= msg.count else { throw WireError.truncated(at: rdata) }
                i = rdata + rdlen
                if section == 0 && (rtype == .a && rdlen == 4 || rtype == .aaaa && rdlen == 16) {
                    // The same owner, type and class octets as the run's last record, right after it.
                    if let r = run, r.start + r.count * r.stride == start, i - start == r.stride,
                       msg[r.start ..< r.start + r.ownerLength + 4] == msg[start ..< afterName + 4] {
                        run!.count += 1
                    } else {
                        closeRun()
                        run = (start, afterName - start, i - start, 1)
                    }
                } else if section == 0 {
                    closeRun()
                }
                if rtype == .opt {
                    guard section == 2, optRange == nil else { throw WireError.malformed("misplaced OPT") }
                    optRange = start..<i
                    additionalBeforeOPT = index
                    extendedRCODE = UInt8(ttl >> 24)        // the upper 8 bits of the RCODE (RFC 6891 §6.1.3)
                    continue
                }
                // RFC 2181 §8: a TTL with the top bit set is treated as zero.
                let effective = ttl & 0x8000_0000 != 0 ? 0 : ttl
                ttlFields.append(TTLField(offset: UInt32(afterName + 4), ttl: effective))
                if section == 0 {
                    minAnswerTTL = min(minAnswerTTL, effective)
                    if rtype.rawValue == type.rawValue || anyType { answersType = true }
                    if rtype == .cname {
                        let (target, end) = try withNameBytes(copy msg, at: rdata, allowCompression: true) { DNSName(uncheckedWire: Array($0)) }
                        guard end <= rdata + rdlen else { throw WireError.malformed("CNAME target overruns its record") }
                        cnames.append(target)
                    }
                }
                if section == 1, rtype == .soa {
                    // RFC 2308 §5: negative TTL is min(SOA TTL, SOA MINIMUM). The SOA is passed on
                    // with that TTL too (§3, as unbound does): a downstream cache that reads the
                    // record's TTL alone kept a denial the upstream sent with MINIMUM 30 for an hour.
                    let afterM = try skipName(msg, at: rdata)
                    let afterR = try skipName(msg, at: afterM)
                    guard afterR + 20 <= rdata + rdlen else { throw WireError.malformed("short SOA") }
                    let ttl = min(effective, msg.u32(at: afterR + 16))
                    negativeTTL = ttl
                    ttlFields[ttlFields.count - 1] = TTLField(offset: UInt32(afterName + 4), ttl: ttl)
                }
            }
        }
        closeRun()
        // The message becomes the body once it has been read: edited as a copy while `msg` was still
        // read, it was copied whole on every cache miss.
        var body = consume msg
        body.put16(0, at: 0)
        // Octets after the last counted record are no part of the answer: dropped, as unbound does, where
        // refusing the reply cost the client a timeout (QA pass 13, F7).
        if i < body.count { body.removeSubrange(i...) }
        if let r = optRange {
            if r.upperBound == body.count {
                body.removeSubrange(r)
                body.put16(h.additionalCount - 1, at: 10)
            } else {
                // RFC 6891 §6.1.1 lets the OPT sit anywhere in the additional section. The records after
                // it go with it: removing it alone would move names their pointers may point at, and
                // additional records are a resolver's to drop (QA pass 13, F2).
                body.removeSubrange(r.lowerBound...)
                body.put16(UInt16(additionalBeforeOPT), at: 10)
                ttlFields.removeAll { Int($0.offset) >= r.lowerBound }
            }
        }
        // dnsgate passes on only the basic RCODE. An extended one (BADVERS, or any of 16 and up) is the
        // upstream's error, not an answer: read as SERVFAIL, the exchange fails over and nothing is
        // cached, where its low four bits alone read as NOERROR or NXDOMAIN.
        let rcode = extendedRCODE != 0 ? ResponseCode.servFail : h.rcode
        self.rcode = rcode
        self.upstreamRCODE = ResponseCode(rawValue: UInt16(extendedRCODE) << 4 | h.rcode.rawValue)
        self.truncated = h.truncated
        self.hadOPT = optRange != nil
        self.body = body
        self.questionLength = qEnd + 4 - 12
        self.ttlFields = ttlFields
        self.answerCount = Int(h.answerCount)
        self.cnameTargets = cnames
        self.strayOwners = strays
        self.ownsBeyondQuestion = beyondQuestion
        self.addressRuns = runs
        let (noError, nxDomain) = (rcode.rawValue == 0, rcode.rawValue == 3)
        let negative = nxDomain || (noError && !answersType && (h.answerCount == 0 || negativeTTL != nil))
        self.isNegative = negative
        if noError && !negative {
            // Records, none of them of the type asked or a CNAME, and no SOA (a DNAME without the CNAME it
            // stands for, an AAAA answering an A question): passed on, never cached, as a negative
            // answer without SOA is not (RFC 2308 §5; QA pass 13, F8).
            self.cacheTTL = answersType || !cnames.isEmpty ? minAnswerTTL : nil
        } else if noError || nxDomain {
            // No SOA: not cacheable (RFC 2308 §5). A chain before it counts too: its records expire with it.
            self.cacheTTL = negativeTTL.map { min($0, minAnswerTTL) }
        } else {
            self.cacheTTL = nil
        }
    }

    /// A reply to query `id` with no question section and an error RCODE other than NXDOMAIN (FORMERR,
    /// NOTIMP, REFUSED, SERVFAIL), as a server that cannot read a query's form sends it: an error
    /// that fails the attempt at once (and may say the server does not know EDNS), where refusing it
    /// left the exchange to its timeout (QA pass 13, F1). Nil for anything else.
    public static func questionlessError(_ msg: borrowing [UInt8], id: UInt16) -> UpstreamAnswer? {
        guard msg.count >= 12, let h = msg.withUnsafeBytes({ HeaderFields($0) }), h.isResponse, h.id == id, h.opcode == 0,
              h.questionCount == 0, h.answerCount == 0, h.authorityCount == 0, h.additionalCount <= 1,
              h.rcode.rawValue != 0, h.rcode.rawValue != 3 else { return nil }
        return UpstreamAnswer(error: h.rcode, hadOPT: h.additionalCount == 1)
    }

    private init(error rcode: ResponseCode, hadOPT: Bool) {
        self.rcode = rcode; self.upstreamRCODE = rcode; self.truncated = false; self.hadOPT = hadOPT
        self.body = [UInt8](repeating: 0, count: 12); self.questionLength = 0; self.ttlFields = []; self.answerCount = 0
        self.cnameTargets = []; self.strayOwners = []; self.ownsBeyondQuestion = false; self.addressRuns = []
        self.cacheTTL = nil; self.isNegative = false
    }

    /// The header and question of `msg` with TC set and no records: what a datagram cut short by
    /// the read stands for. Nil when not even the question is whole (uncompressed, as asked).
    public static func truncatedCopy(of msg: borrowing [UInt8]) -> [UInt8]? {
        guard msg.count > 12, let end = try? withNameBytes(copy msg, at: 12, allowCompression: false, { _ in }).end,
              end + 4 <= msg.count else { return nil }
        var out = Array(msg[0..<(end + 4)])
        out.put16(out.u16(at: 2) | 0x0200, at: 2)            // TC
        out.put16(1, at: 4); out.put16(0, at: 6); out.put16(0, at: 8); out.put16(0, at: 10)
        return out
    }

    /// The same answer with each record's TTL within `range`: what the cache's `min_ttl`/`max_ttl`
    /// allow is what a client is told too, or a downstream cache (nscd, a JVM) would keep a name
    /// long after dnsgate stopped answering for it.
    public func clampingTTLs(to range: ClosedRange<UInt32>) -> UpstreamAnswer {
        guard !ttlsWithin(range) else { return self }
        var copy = self
        copy.ttlFields = ttlFields.map { TTLField(offset: $0.offset, ttl: min(max($0.ttl, range.lowerBound), range.upperBound)) }
        return copy
    }

    public func ttlsWithin(_ range: ClosedRange<UInt32>) -> Bool {
        let (lo, hi) = (range.lowerBound, range.upperBound)
        return ttlFields.withUnsafeBufferPointer { fields in
            for f in fields where f.ttl < lo || f.ttl > hi { return false }
            return true
        }
    }

    /// The reply for a client: its ID, flags and question case; TTLs aged by `age` seconds, or set to
    /// `staleTTL` when serving stale (RFC 8767 §4), and never above `ttlCap` (the time left on the
    /// exception that allowed the query); OPT per the client's EDNS.
    public func render(for q: QueryView, age: UInt32, staleTTL: UInt32? = nil, ede: ExtendedError? = nil, ttlCap: UInt32 = .max) -> [UInt8] {
        var out = [UInt8](); out.reserveCapacity(body.count + 64)
        render(into: &out, for: q, age: age, staleTTL: staleTTL, ede: ede, ttlCap: ttlCap)
        return out
    }

    /// The same, written over what `out` held (storage the caller reuses).
    public func render(into out: inout [UInt8], for q: QueryView, age: UInt32, staleTTL: UInt32? = nil, ede: ExtendedError? = nil,
                       ttlCap: UInt32 = .max) {
        // Same canonical name, so the same length: the client's spelling (0x20) is written over it.
        guard q.rawQuestion.count == questionLength else {
            return renderRespelled(into: &out, for: q, age: age, staleTTL: staleTTL, ede: ede, ttlCap: ttlCap)
        }
        var flags = ResponseBuilder.replyFlags(q.header, rcode: rcode)
        // AD passes through to a client that set AD or DO (RFC 6840 §5.8); AA and TC never do.
        if q.header.authenticData || q.edns?.dnssecOK == true { flags |= body.u16(at: 2) & 0x0020 }
        out.replaceWithWritten(maxBytes: body.count + (q.edns == nil ? 0 : ResponseBuilder.optLength(ede))) { w in
            w.bytes(body)
            w.put16(q.header.id, at: 0)
            w.put16(flags, at: 2)
            w.put(q.rawQuestion, at: 12)
            for f in ttlFields {
                w.put32(min(staleTTL ?? (f.ttl > age ? f.ttl - age : 0), ttlCap), at: Int(f.offset))
            }
            // Each client gets the addresses of an RRset in another order, as unbound's rrset-roundrobin
            // gives them (turned by the query's ID, for speed): served in one order for the entry's
            // whole life, every runner behind dnsgate connected to the same mirror (QA pass 10, F3).
            for r in addressRuns {
                w.rotate(fieldsAt: Int(r.firstAddress), stride: Int(r.stride), count: Int(r.count), length: Int(r.length), by: Int(q.header.id))
            }
            if let e = q.edns {
                w.put16(body.u16(at: 10) + 1, at: 10)
                ResponseBuilder.writeOPT(into: &w, payload: ResponseBuilder.defaultUDPPayload, rcode: rcode,
                                         dnssecOK: e.dnssecOK, ede: ede)
            }
        }
    }

    /// `render` for a question of another length than the stored one, which a well-formed query
    /// never has: the stored answer is rendered for its own question, and the question replaced.
    private func renderRespelled(into out: inout [UInt8], for q: QueryView, age: UInt32, staleTTL: UInt32?, ede: ExtendedError?, ttlCap: UInt32) {
        let stored = QueryView(header: q.header, name: q.name, nameHash: q.nameHash, type: q.type, qclass: q.qclass, rawQuestion: body[12..<(12 + questionLength)], edns: q.edns)
        render(into: &out, for: stored, age: age, staleTTL: staleTTL, ede: ede, ttlCap: ttlCap)
        out.replaceSubrange(12..<(12 + questionLength), with: q.rawQuestion)
    }
}

/// Builds the query dnsgate sends upstream: the name policy approved, in canonical (lower-case) form by
/// default. Case-folding never changes which name is asked (RFC 4343) but destroys payloads that tunnels
/// encode in letter case (dns2tcp's base64); `spelling` (the client's own bytes of the same name, checked
/// by the caller) is used only when the operator asks to preserve case. AD is always set: dnsgate
/// reads the AD bit of the answer (and passes it on to the clients that ask for it), which is what AD
/// in a query says (RFC 6840 §5.7); without it a validating upstream answered without AD, and a client
/// that set AD but not DO never got it. CD is the client's, so that a validating upstream leaves the
/// checking to a client that asked to do it (RFC 6840 §5.9).
public enum UpstreamQuery {
    /// - Parameter edns: false for an upstream that does not know EDNS (`UpstreamAnswer.refusesEDNS`):
    ///   no OPT, so no DO bit and answers of 512 octets over UDP.
    public static func make(id: UInt16, name: DNSName, spelling: ArraySlice<UInt8>? = nil, type: RecordType, dnssecOK: Bool,
                            checkingDisabled: Bool = false, payload: UInt16 = ResponseBuilder.defaultUDPPayload, edns: Bool = true) -> [UInt8] {
        var out = [UInt8]()
        write(into: &out, id: id, name: name, spelling: spelling, type: type, dnssecOK: dnssecOK, checkingDisabled: checkingDisabled,
              payload: payload, edns: edns)
        return out
    }

    /// The same query, written over what `out` held: a buffer kept from query to query allocates nothing.
    public static func write(into out: inout [UInt8], id: UInt16, name: DNSName, spelling: ArraySlice<UInt8>? = nil, type: RecordType,
                             dnssecOK: Bool, checkingDisabled: Bool = false, payload: UInt16 = ResponseBuilder.defaultUDPPayload,
                             edns: Bool = true) {
        let question = spelling.flatMap { $0.count == name.wire.count ? $0 : nil }
        out.replaceWithWritten(maxBytes: 12 + name.wire.count + 4 + 11) { w in
            w.u16(id)
            w.u16(checkingDisabled ? 0x0130 : 0x0120)   // RD and AD, and CD when the client set it
            w.u16(1); w.u16(0); w.u16(0); w.u16(edns ? 1 : 0)
            if let question { w.bytes(question) } else { w.bytes(name.wire) }
            w.u16(type.rawValue); w.u16(DNSClass.in)
            if edns { ResponseBuilder.writeOPT(into: &w, payload: payload, rcode: .noError, dnssecOK: dnssecOK, ede: nil) }
        }
    }
}
