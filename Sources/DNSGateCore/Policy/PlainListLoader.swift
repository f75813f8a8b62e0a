/// Reads the plain allow-list format (zones/README.md):
///
///     # comment line
///     example.com                 # reason
///     *.example.org   A,AAAA,TXT  # reason
///
/// One entry per line; the optional second field lists query types (default: the policy's set);
/// text after `#` is the entry's reason. Names may use `\.` and `\DDD` escapes.
public enum PlainListLoader {
    public static func load(text: String, file: String, suffixes: PublicSuffixList? = nil) throws -> [PolicyEntry] {
        var out: [PolicyEntry] = []
        var lineNo = 0
        // "\r\n" is one Character in Swift: splitting on "\n" alone would read a CRLF file as one line.
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            lineNo += 1
            let here = SourceLocation(file: file, line: lineNo)
            let (body, reason) = splitComment(String(rawLine))
            let fields = body.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
            if fields.isEmpty { continue }
            guard fields.count <= 2 else {
                throw PolicyLoadError(here, "expected NAME [TYPE,...] [# reason], found \(fields.count) fields")
            }
            let (name, wildcard) = try parsePattern(fields[0], at: here, suffixes: suffixes)
            var types: Set<RecordType>?
            if fields.count == 2 {
                var set = Set<RecordType>()
                for t in fields[1].split(separator: ",", omittingEmptySubsequences: false) {
                    guard let rt = RecordType(mnemonic: String(t)), rt != .opt else {
                        throw PolicyLoadError(here, "unknown query type '\(t)' in \(fields[1])")
                    }
                    set.insert(rt)
                }
                types = set
            }
            out.append(PolicyEntry(name: name, isWildcard: wildcard, types: types, reason: reason, source: here))
        }
        return out
    }

    /// Splits at the first `#` that is not escaped; the part after it, trimmed, is the reason.
    static func splitComment(_ line: String) -> (String, String?) {
        var escaped = false
        for (i, ch) in line.enumerated() {
            if escaped { escaped = false; continue }
            if ch == "\\" { escaped = true; continue }
            if ch == "#" {
                let idx = line.index(line.startIndex, offsetBy: i)
                let reason = line[line.index(after: idx)...].trimmingCharacters()
                return (String(line[..<idx]), reason.isEmpty ? nil : reason)
            }
        }
        return (line, nil)
    }

    /// Parses `name` or `*.name` and applies the rules every loader shares.
    public static func parsePattern(_ text: String, at here: SourceLocation, suffixes: PublicSuffixList?) throws -> (DNSName, Bool) {
        let wildcard = text.hasPrefix("*.")
        let rest = wildcard ? String(text.dropFirst(2)) : text
        let name: DNSName
        do { name = try DNSName(rest) } catch { throw PolicyLoadError(here, "bad name '\(text)': \(error)") }
        try validate(name: name, wildcard: wildcard, written: text, at: here, suffixes: suffixes)
        return (name, wildcard)
    }

    static func validate(name: DNSName, wildcard: Bool, written: String, at here: SourceLocation,
                         suffixes: PublicSuffixList?) throws {
        if name.isRoot { throw PolicyLoadError(here, "'\(written)' would allow every name; list the names builds need") }
        // A '*' anywhere but as the whole first label is not a wildcard in DNS (RFC 4592 §2.1.1) and
        // would read as one to a reviewer: refuse it rather than match it literally.
        if name.labels.contains(where: { $0.contains(UInt8(ascii: "*")) }) {
            throw PolicyLoadError(here, "'\(written)': '*' is only allowed as the whole first label ('*.example.com')")
        }
        if wildcard, let psl = suffixes, psl.isPublicSuffix(name) {
            throw PolicyLoadError(here, "'\(written)' is a wildcard directly under the public suffix \(name); "
                + "it would allow every registered domain there")
        }
    }
}

extension Substring {
    func trimmingCharacters() -> String {
        String(self.drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" || $0 == "\r" }).reversed())
    }
}
