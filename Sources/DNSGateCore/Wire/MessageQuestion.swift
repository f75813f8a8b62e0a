import CLDNS

/// The question and RCODE of any DNS message, read by ldns (the codec of record): what `dnsgate
/// analyze` needs of each reply in a dnstap capture. Off the query path, so no hand-written parser.
public struct MessageQuestion: Equatable, Sendable {
    public let name: DNSName
    public let type: RecordType
    public let rcode: ResponseCode

    /// Nil when ldns refuses the message or it has no question.
    public init?(_ message: [UInt8]) {
        var pkt: UnsafeMutablePointer<ldns_pkt>?
        let status = message.withUnsafeBufferPointer { ldns_wire2pkt(&pkt, $0.baseAddress, $0.count) }
        guard status == LDNS_STATUS_OK, let pkt else { return nil }
        defer { ldns_pkt_free(pkt) }
        guard ldns_pkt_qdcount(pkt) >= 1, let list = ldns_pkt_question(pkt), let rr = ldns_rr_list_rr(list, 0),
              let owner = ldns_rr_owner(rr), let data = ldns_rdf_data(owner),
              let name = try? DNSName(wire: Array(UnsafeBufferPointer(start: data, count: ldns_rdf_size(owner)))) else { return nil }
        self.name = name
        type = RecordType(rawValue: UInt16(ldns_rr_get_type(rr).rawValue))
        // The header's four bits: an extended RCODE (EDNS) is not a detector signal.
        rcode = ResponseCode(rawValue: UInt16(ldns_pkt_get_rcode(pkt).rawValue))
    }
}
