/// What dnsgate needs to know about an incoming query, decoded once.
///
/// The question name is kept twice: `name` (canonical, for policy and cache) and `rawQuestion`
/// (the client's exact bytes, echoed back so 0x20 case randomisation survives).
public struct QueryView: Sendable {
    public let header: HeaderFields
    public let name: DNSName
    /// `name`'s `TableHash` (its `hashValue`), computed once while the name was read and reused by
    /// the telemetry's tables instead of hashing the name again.
    public let nameHash: UInt64
    public let type: RecordType
    public let qclass: UInt16
    /// Question section as sent: name, type, class.
    public let rawQuestion: ArraySlice<UInt8>
    public let edns: EDNSInfo?

    /// The question name exactly as the client spelt it (same labels as `name`, original case).
    public var spelledName: ArraySlice<UInt8> { rawQuestion.prefix(rawQuestion.count - 4) }
}

/// The client's EDNS(0) OPT record (RFC 6891 §6.1).
public struct EDNSInfo: Sendable, Equatable {
    public let udpPayloadSize: UInt16
    public let version: UInt8
    public let dnssecOK: Bool
}

/// The outcome of decoding a query: a view, or the reply the RFCs ask for.
public enum QueryDecoding: Sendable {
    case query(QueryView)
    /// Reply with an error rcode: the 12 header octets were readable.
    case reject(Rejection)
    /// Send nothing back: no header to answer, or an answer to us.
    case drop(reason: String)
}

/// Why a message gets no answer from the pipeline: `QueryDecoding` without the query.
enum QueryRefusal: Error {
    case reject(Rejection)
    case drop(String)
}

/// A query that gets an error reply instead of an answer.
public struct Rejection: Sendable {
    public let header: HeaderFields
    public let rcode: ResponseCode
    public let reason: String
    public let rawQuestion: ArraySlice<UInt8>?
    public let edns: EDNSInfo?
}

/// First stage of every query: header sanity in Unbound's fixed order, then the question and OPT.
///
/// The first failing check decides; every outcome carries a reason for the log.
public enum RequestSanity {
    public static func decode(_ msg: [UInt8]) -> QueryDecoding {
        outcome { () throws(QueryRefusal) in try view(msg) }
    }

    /// The same, reading the question name through `names` (see `NameInterner`).
    public static func decode(_ msg: [UInt8], names: inout NameInterner) -> QueryDecoding {
        outcome { () throws(QueryRefusal) in try view(msg, names: &names) }
    }

    /// The query path's form of `decode`: the view is returned, not wrapped in an enum. Taking it out
    /// of `QueryDecoding` copied it (a retain of the name and of the message) and then destroyed the
    /// enum (two releases), on every query.
    static func view(_ msg: [UInt8], names: inout NameInterner) throws(QueryRefusal) -> QueryView {
        try view(msg) { try names.readName(msg, at: $0, allowCompression: false) }
    }

    static func view(_ msg: [UInt8]) throws(QueryRefusal) -> QueryView {
        try view(msg) {
            let (name, end) = try readName(msg, at: $0, allowCompression: false)
            return (name, HashedName(name).hash, end)
        }
    }

    @inline(__always)
    private static func outcome(_ decode: () throws(QueryRefusal) -> QueryView) -> QueryDecoding {
        do { return .query(try decode()) } catch {
            switch error {
            case .reject(let r): return .reject(r)
            case .drop(let why): return .drop(reason: why)
            }
        }
    }

    @inline(__always)
    private static func view(_ msg: [UInt8], readQuestion: (Int) throws -> (DNSName, UInt64, Int)) throws(QueryRefusal) -> QueryView {
        guard let h = msg.withUnsafeBytes({ HeaderFields($0) }) else { throw .drop("shorter than a header") }
        func reject(_ rcode: ResponseCode, _ reason: String, _ raw: ArraySlice<UInt8>? = nil, _ edns: EDNSInfo? = nil) -> QueryRefusal {
            .reject(Rejection(header: h, rcode: rcode, reason: reason, rawQuestion: raw, edns: edns))
        }
        if h.isResponse { throw .drop("QR set") }                    // never answer an answer
        if h.truncated { throw reject(.formErr, "TC set in a query") }
        if h.opcode != Opcode.query { throw reject(.notImp, "opcode \(h.opcode)") }
        if h.questionCount != 1 { throw reject(.formErr, "QDCOUNT \(h.questionCount)") }
        if h.answerCount != 0 || h.authorityCount != 0 {
            throw reject(.formErr, "ANCOUNT/NSCOUNT not zero")
        }
        if h.additionalCount > 1 { throw reject(.formErr, "ARCOUNT \(h.additionalCount)") }

        let name: DNSName, nameHash: UInt64, qEnd: Int
        do { (name, nameHash, qEnd) = try readQuestion(HeaderFields.length) } catch {
            throw reject(.formErr, "question name: \(error)")
        }
        guard qEnd + 4 <= msg.count else { throw reject(.formErr, "question truncated") }
        let type = RecordType(msg.u16(at: qEnd))
        let qclass = msg.u16(at: qEnd + 2)
        let raw = msg[HeaderFields.length..<(qEnd + 4)]
        var edns: EDNSInfo?
        var i = qEnd + 4
        if h.additionalCount == 1 {
            // The one additional record must be OPT, owned by the root (RFC 6891 §6.1.1).
            guard i + 11 <= msg.count, msg[i] == 0, msg.u16(at: i + 1) == RecordType.opt.rawValue else {
                throw reject(.formErr, "additional record is not an OPT", raw, edns)
            }
            let size = msg.u16(at: i + 3)
            let version = msg[i + 6]
            let doBit = msg[i + 7] & 0x80 != 0
            let rdlen = Int(msg.u16(at: i + 9))
            guard i + 11 + rdlen <= msg.count else { throw reject(.formErr, "OPT truncated", raw, edns) }
            var o = i + 11
            while o < i + 11 + rdlen {   // options must tile the RDATA exactly
                guard o + 4 <= i + 11 + rdlen else { throw reject(.formErr, "OPT option truncated", raw, edns) }
                let olen = Int(msg.u16(at: o + 2))
                o += 4 + olen
                guard o <= i + 11 + rdlen else { throw reject(.formErr, "OPT option overruns", raw, edns) }
            }
            edns = EDNSInfo(udpPayloadSize: size, version: version, dnssecOK: doBit)
            i += 11 + rdlen
        }
        if i != msg.count { throw reject(.formErr, "\(msg.count - i) trailing octets", raw, edns) }
        // RFC 6891 §6.1.3: an unknown EDNS version gets BADVERS, with our OPT saying version 0.
        if let e = edns, e.version != 0 { throw reject(.badVers, "EDNS version \(e.version)", raw, edns) }
        if qclass != DNSClass.in { throw reject(.refused, "class \(qclass)", raw, edns) }
        return QueryView(header: h, name: name, nameHash: nameHash, type: type, qclass: qclass, rawQuestion: raw, edns: edns)
    }
}
