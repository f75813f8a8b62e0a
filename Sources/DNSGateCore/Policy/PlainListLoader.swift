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
            let types = fields.count == 2 ? try parseTypes(fields[1], at: here) : nil
            out.append(PolicyEntry(name: name, isWildcard: wildcard, types: types, reason: reason, source: here))
        }
        return out
    }

    /// Parses a comma-separated list of query types, as allow-lists and exceptions write it. An empty
    /// item or a type named twice is refused: both are typos (`A,,AAAA`, `A,A` for `A,AAAA`).
    public static func parseTypes(_ list: String, at here: SourceLocation) throws -> Set<RecordType> {
        var set = Set<RecordType>()
        for t in list.split(separator: ",", omittingEmptySubsequences: false) {
            guard let rt = RecordType(queryTypeMnemonic: String(t)) else {
                throw PolicyLoadError(here, "unknown query type '\(t)' in \(list)")
            }
            guard set.insert(rt).inserted else { throw PolicyLoadError(here, "query type \(t) is listed twice in \(list)") }
        }
        return set
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
        try checkCharacters(text, at: here)
        let wildcard = text.hasPrefix("*.")
        let rest = wildcard ? String(text.dropFirst(2)) : text
        let name: DNSName
        do { name = try DNSName(rest) } catch { throw PolicyLoadError(here, "bad name '\(text)': \(error)") }
        try validate(name: name, wildcard: wildcard, written: text, at: here, suffixes: suffixes)
        return (name, wildcard)
    }

    /// Refuses what would load as an entry no query can ever match: raw UTF-8 (clients ask for an
    /// internationalized name in its `xn--` form, RFC 5891), and unescaped spaces or control characters,
    /// such as a non-breaking space pasted between a name and its types.
    public static func checkCharacters(_ text: String, at here: SourceLocation) throws {
        var escaped = false
        for (i, c) in text.utf8.enumerated() {
            if escaped { escaped = false; continue }
            if c == UInt8(ascii: "\\") { escaped = true; continue }
            if c == 0xC2, text.utf8.dropFirst(i + 1).first == 0xA0 {
                throw PolicyLoadError(here, "'\(text)' contains a non-breaking space; separate the name and its types with spaces or tabs")
            }
            if c >= 0x80 {
                throw PolicyLoadError(here, "'\(text)' is not ASCII; write an internationalized name in its xn-- form, as clients ask for it")
            }
            if c <= 0x20 || c == 0x7F {
                // Shown escaped: a raw control character in the message would be as invisible as in the file.
                let shown = String(text.unicodeScalars.map { $0.value <= 0x20 || $0.value == 0x7F ? "\\" + String(String($0.value + 1000).dropFirst()) : String($0) }.joined())
                throw PolicyLoadError(here, "'\(shown)' contains a space or control character; escape it (\\032) if it is part of a label")
            }
        }
    }

    static func validate(name: DNSName, wildcard: Bool, written: String, at here: SourceLocation,
                         suffixes: PublicSuffixList?) throws {
        if name.isRoot { throw PolicyLoadError(here, "'\(written)' would allow every name; list the names builds need") }
        // A '*' anywhere but as the whole first label is not a wildcard in DNS (RFC 4592 §2.1.1) and
        // would read as one to a reviewer: refuse it rather than match it literally.
        if name.labels.contains(where: { $0.contains(UInt8(ascii: "*")) }) {
            throw PolicyLoadError(here, "'\(written)': '*' is only allowed as the whole first label ('*.example.com')")
        }
        // Without a list, its implicit rule still holds: every single label (a TLD) is a public suffix.
        if wildcard, suffixes?.isPublicSuffix(name) ?? (name.labelCount == 1) {
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
