/// The tab-separated query log: `ts\tclient\tqname\tqtype\trcode`, one query per line.
///
/// It is the format of the public tuning data in `../shared/corpora/` and of dnsgate's own query
/// log: epoch seconds, client address, presentation name, type mnemonic (`TXT`, `TYPE65`), rcode
/// mnemonic (`NXDOMAIN`, `RCODE9`). The header line and blank lines read as nil; anything else that
/// does not parse throws with the line in the error, so a truncated or foreign file is noticed
/// instead of silently analysed as empty.
public enum QueryLogTSV {
    public static let header = "ts\tclient\tqname\tqtype\trcode"

    /// Reads one line.
    ///
    /// - Parameters:
    ///   - line: one line, with or without its `\n` / `\r\n`.
    /// - Returns: the event, or nil for the header and for blank lines.
    /// - Throws: `QueryLogTSVError.malformed` carrying the line and what was wrong with it.
    public static func parse(line: String) throws -> QueryEvent? {
        var text = Substring(line)
        while let last = text.last, last == "\n" || last == "\r" || last == "\r\n" { text = text.dropLast() }   // "\r\n" is one Character
        if text.allSatisfy({ $0 == " " || $0 == "\t" }) { return nil }
        if text == Substring(header) { return nil }
        let fields = text.split(separator: "\t", omittingEmptySubsequences: false)
        guard fields.count == 5 else {
            throw QueryLogTSVError.malformed(line: String(text), reason: "expected 5 tab-separated fields, found \(fields.count)")
        }
        guard let time = Double(fields[0]), time.isFinite else {
            throw QueryLogTSVError.malformed(line: String(text), reason: "timestamp \"\(fields[0])\" is not epoch seconds")
        }
        let client = String(fields[1])
        guard !client.isEmpty else { throw QueryLogTSVError.malformed(line: String(text), reason: "empty client") }
        let name: DNSName
        do { name = try DNSName(String(fields[2])) } catch {
            throw QueryLogTSVError.malformed(line: String(text), reason: "query name: \(error)")
        }
        guard let type = RecordType(mnemonic: String(fields[3])) ?? UInt16(fields[3]).map(RecordType.init(rawValue:)) else {
            throw QueryLogTSVError.malformed(line: String(text), reason: "unknown query type \"\(fields[3])\"")
        }
        guard let rcode = ResponseCode(mnemonic: String(fields[4])) else {
            throw QueryLogTSVError.malformed(line: String(text), reason: "unknown rcode \"\(fields[4])\"")
        }
        return QueryEvent(time: time, client: client, name: name, type: type, rcode: rcode)
    }

    /// Writes one line (no newline) that `parse(line:)` reads back to the same event; time keeps microseconds.
    public static func format(_ e: QueryEvent) -> String {
        "\(formatTime(e.time))\t\(e.client)\t\(e.name)\t\(e.type.mnemonic)\t\(e.rcode.mnemonic)"
    }

    static func formatTime(_ t: Double) -> String {
        let micros = Int64((t * 1_000_000).rounded())
        let whole = micros / 1_000_000, frac = abs(micros % 1_000_000)
        let f = String(frac)
        let sign = (micros < 0 && whole == 0) ? "-" : ""
        return "\(sign)\(whole).\(String(repeating: "0", count: 6 - f.count))\(f)"
    }
}

/// Why a query-log line could not be read.
public enum QueryLogTSVError: Error, Equatable, CustomStringConvertible {
    case malformed(line: String, reason: String)

    public var description: String {
        switch self {
        case .malformed(let line, let reason): return "bad query-log line (\(reason)): \(line)"
        }
    }
}

extension ResponseCode {
    /// Parses `NOERROR`, `NXDOMAIN`… (case-insensitive), `RCODE9`, or a bare decimal code.
    public init?(mnemonic: String) {
        let upper = mnemonic.uppercased()
        let known: [String: UInt16] = ["NOERROR": 0, "FORMERR": 1, "SERVFAIL": 2, "NXDOMAIN": 3,
                                       "NOTIMP": 4, "REFUSED": 5, "BADVERS": 16]
        if let code = known[upper] { self.init(rawValue: code); return }
        if upper.hasPrefix("RCODE"), let code = UInt16(upper.dropFirst(5)) { self.init(rawValue: code); return }
        if let code = UInt16(upper) { self.init(rawValue: code); return }
        return nil
    }
}
