import CLDNS
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads Response Policy Zone files (draft-ietf-dnsop-dns-rpz) with ldns, the zone-file codec of record.
///
/// Supported: QNAME triggers (exact and `*.` wildcard) with the actions
/// `CNAME rpz-passthru.` (allow), `CNAME .` (NXDOMAIN), `CNAME *.` (NODATA), `CNAME rpz-drop.` (drop),
/// and local data (any other records, including a CNAME to another name). Refused with file:line:
/// client-IP, response-IP and NS triggers (`rpz-ip`, `rpz-client-ip`, `rpz-nsdname`, `rpz-nsip`),
/// `rpz-tcp-only.`, `$INCLUDE`, and a zone that does not start with its SOA.
public enum RPZLoader {
    public static func load(text: String, file: String, suffixes: PublicSuffixList? = nil) throws -> [PolicyEntry] {
        var bytes = Array(text.utf8)
        if bytes.isEmpty { throw PolicyLoadError(SourceLocation(file: file, line: 1), "empty RPZ zone: it needs a SOA") }
        return try bytes.withUnsafeMutableBytes { buf -> [PolicyEntry] in
            guard let fp = fmemopen(buf.baseAddress, buf.count, "r") else {
                throw PolicyLoadError(SourceLocation(file: file, line: 0), "cannot open zone text")
            }
            defer { fclose(fp) }
            return try parse(fp, file: file, suffixes: suffixes)
        }
    }

    private struct Trigger: Hashable { let name: DNSName; let wildcard: Bool }

    private static func parse(_ fp: UnsafeMutablePointer<FILE>, file: String, suffixes: PublicSuffixList?) throws -> [PolicyEntry] {
        var ttl: UInt32 = 3600
        var origin: UnsafeMutablePointer<ldns_rdf>? = nil
        var prev: UnsafeMutablePointer<ldns_rdf>? = nil
        var line: Int32 = 0
        defer { if origin != nil { ldns_rdf_deep_free(origin) }; if prev != nil { ldns_rdf_deep_free(prev) } }
        var apex: DNSName?
        var order: [Trigger] = []
        var records: [Trigger: (SourceLocation, [(RecordType, [UInt8], DNSName?)])] = [:]

        while feof(fp) == 0 {
            var rr: UnsafeMutablePointer<ldns_rr>? = nil
            let status = ldns_rr_new_frm_fp_l(&rr, fp, &ttl, &origin, &prev, &line)
            let here = SourceLocation(file: file, line: Int(line))
            if status == LDNS_STATUS_SYNTAX_EMPTY || status == LDNS_STATUS_SYNTAX_TTL || status == LDNS_STATUS_SYNTAX_ORIGIN {
                continue
            }
            if status == LDNS_STATUS_SYNTAX_INCLUDE { throw PolicyLoadError(here, "$INCLUDE is not supported") }
            guard status == LDNS_STATUS_OK, let rr else {
                // ldns reports end of input inside a trailing blank or comment as an error on some versions
                if feof(fp) != 0 && status == LDNS_STATUS_SYNTAX_EMPTY { break }
                throw PolicyLoadError(here, "zone syntax: " + String(cString: ldns_get_errorstr_by_id(status)!))
            }
            defer { ldns_rr_free(rr) }
            let owner = try dnsName(ldns_rr_owner(rr), here)
            let type = RecordType(UInt16(ldns_rr_get_type(rr).rawValue))
            guard let zoneApex = apex else {
                guard type == .soa else { throw PolicyLoadError(here, "an RPZ zone must start with its SOA record") }
                apex = owner
                continue
            }
            guard owner.isSubdomain(of: zoneApex) else {
                throw PolicyLoadError(here, "\(owner) is outside the zone \(zoneApex)")
            }
            if owner == zoneApex { continue }   // SOA and NS of the policy zone itself
            var tlabels = Array(owner.labels.dropLast(zoneApex.labelCount))
            if let special = tlabels.last.map({ String(decoding: $0, as: UTF8.self) }), special.hasPrefix("rpz-") {
                throw PolicyLoadError(here, "\(special) triggers are not supported (QNAME triggers only)")
            }
            let wildcard = tlabels.first.map({ Array($0) == [UInt8(ascii: "*")] }) ?? false
            if wildcard { tlabels.removeFirst() }
            var wire: [UInt8] = []
            for l in tlabels { wire.append(UInt8(l.count)); wire.append(contentsOf: l) }
            wire.append(0)
            let trigger = DNSName(uncheckedWire: wire)
            try checkOctets(tlabels, written: owner.description, at: here)
            try PlainListLoader.validate(name: trigger, wildcard: wildcard, written: wildcard ? (trigger.isRoot ? "*." : "*." + trigger.description) : trigger.description,
                                         at: here, suffixes: suffixes)
            var rdata: [UInt8] = []
            var target: DNSName?
            for k in 0..<ldns_rr_rd_count(rr) {
                let rdf = ldns_rr_rdf(rr, k)
                if let d = ldns_rdf_data(rdf) { rdata.append(contentsOf: UnsafeBufferPointer(start: d, count: ldns_rdf_size(rdf))) }
            }
            if type == .cname {
                let t = try DNSName(wire: rdata)
                try checkOctets(t.labels, written: t.description, at: here)   // `rpz-passthru.<NBSP>` read as local data
                target = t
            }
            let key = Trigger(name: trigger, wildcard: wildcard)
            if records[key] == nil { order.append(key); records[key] = (here, []) }
            records[key]!.1.append((type, rdata, target))
        }
        guard apex != nil else { throw PolicyLoadError(SourceLocation(file: file, line: Int(line)), "no SOA record: not a zone") }

        return try order.map { key in
            let (here, rrs) = records[key]!
            return PolicyEntry(name: key.name, isWildcard: key.wildcard, action: try action(rrs, at: here),
                               types: nil, reason: "rpz", source: here, fromZone: true)
        }
    }

    private static func action(_ rrs: [(RecordType, [UInt8], DNSName?)], at here: SourceLocation) throws -> EntryAction {
        let special: [String: EntryAction] = [
            ".": .deny(.nxdomain), "*.": .deny(.nodata), "rpz-passthru.": .allow, "rpz-drop.": .deny(.drop),
        ]
        if rrs.count == 1, let t = rrs[0].2, let a = special[t.description] { return a }
        var local: [LocalRecord] = []
        for (type, rdata, target) in rrs {
            if let t = target {
                if special[t.description] != nil { throw PolicyLoadError(here, "RPZ action \(t) cannot be mixed with other records") }
                if t.description == "rpz-tcp-only." { throw PolicyLoadError(here, "rpz-tcp-only is not supported") }
                if t.isWildcard { throw PolicyLoadError(here, "CNAME to \(t) (wildcard rewrite) is not supported") }
            }
            local.append(LocalRecord(type: type, rdata: rdata))
        }
        return .localData(local)
    }

    /// The rule plain lists apply to their text (`PlainListLoader.checkCharacters`), applied to the
    /// octets ldns read (escapes resolved): raw UTF-8 never matches the `xn--` form clients send, a
    /// pasted non-breaking space (C2 A0) glues the next field onto the name, and a control character
    /// is a paste or an editor's accident. A space can only come from an escape, which says it is meant.
    private static func checkOctets(_ labels: [ArraySlice<UInt8>], written: String, at here: SourceLocation) throws {
        for label in labels {
            if let i = label.firstIndex(of: 0xC2), label.index(after: i) < label.endIndex, label[label.index(after: i)] == 0xA0 {
                throw PolicyLoadError(here, "'\(written)' contains a non-breaking space; separate the fields with spaces or tabs")
            }
            if label.contains(where: { $0 >= 0x80 }) {
                throw PolicyLoadError(here, "'\(written)' is not ASCII; write an internationalized name in its xn-- form, as clients ask for it")
            }
            if label.contains(where: { $0 < 0x20 || $0 == 0x7F }) {
                throw PolicyLoadError(here, "'\(written)' contains a control character")
            }
        }
    }

    private static func dnsName(_ rdf: UnsafeMutablePointer<ldns_rdf>?, _ here: SourceLocation) throws -> DNSName {
        guard let rdf, let d = ldns_rdf_data(rdf) else { throw PolicyLoadError(here, "record without owner") }
        do { return try DNSName(wire: Array(UnsafeBufferPointer(start: d, count: ldns_rdf_size(rdf)))) }
        catch { throw PolicyLoadError(here, "bad owner name: \(error)") }
    }
}
