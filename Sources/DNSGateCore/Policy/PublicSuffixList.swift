import Foundation

/// The Public Suffix List (publicsuffix.org), read from Debian's `publicsuffix` package by default.
///
/// Gives the registered domain ("eTLD+1") of a name: counters and the detector aggregate per registered
/// domain, and the policy refuses wildcards directly under a public suffix. Private-section suffixes
/// (e.g. `github.io`) count too: each user's site there is its own registered domain.
public struct PublicSuffixList: Sendable {
    // Rules as canonical wire bytes, looked up through a pointer into the queried name (`WireTable`).
    // One table for the three kinds, so each suffix of a query costs one hash, not three.
    private var rules = WireTable<RuleKinds>()

    private struct RuleKinds: OptionSet {
        let rawValue: UInt8
        static let suffix = RuleKinds(rawValue: 1)      // "co.uk"
        static let wildcard = RuleKinds(rawValue: 2)    // "ck" for "*.ck"
        static let exception = RuleKinds(rawValue: 4)   // "www.ck" for "!www.ck"
    }

    public static let debianPath = "/usr/share/publicsuffix/public_suffix_list.dat"

    public init(text: String) {
        for raw in text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {   // "\r\n" is one Character
            let line = raw.split(whereSeparator: { $0 == " " || $0 == "\t" }).first.map(String.init) ?? ""
            if line.isEmpty || line.hasPrefix("//") { continue }
            // Internationalised rules are listed in Unicode; queries carry punycode (xn--), so those rules
            // never match a query. Known gap: the registered domain of an IDN falls back to the default rule.
            func wire(_ t: Substring) -> [UInt8]? { (try? DNSName(String(t)))?.wire }
            let (text, kind): (Substring, RuleKinds) =
                line.hasPrefix("!") ? (line.dropFirst(), .exception) : line.hasPrefix("*.") ? (line.dropFirst(2), .wildcard) : (Substring(line), .suffix)
            guard let w = wire(text) else { continue }
            rules[w] = (rules[w] ?? []).union(kind)
            // Every parent gets an entry too (no kind of its own), so a lookup can stop at the first
            // suffix that is missing: nothing longer can be listed below it.
            var o = 0
            while w[o] != 0 {
                o += Int(w[o]) + 1
                if rules[w[o...]] == nil { rules[w[o...]] = [] }
            }
        }
    }

    /// The list in `path`, or nil when it cannot be read (callers decide whether that is fatal).
    public init?(contentsOfFile path: String) {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        self.init(text: text)
    }

    /// Labels of the public suffix of `name`; at least 1 (the implicit `*` rule), 0 for the root.
    public func suffixLength(_ name: DNSName) -> Int {
        let n = name.labelCount
        guard n > 0 else { return 0 }
        return name.wire.withUnsafeBytes { w in
            var best = 1
            for k in 1...n {
                let o = Self.offset(ofLabel: n - k, in: w)
                guard let kinds = rules[UnsafeRawBufferPointer(rebasing: w[o...])] else { break }
                if kinds.contains(.exception) { return k - 1 }            // "!www.ck": www.ck is registrable
                if kinds.contains(.suffix) { best = max(best, k) }
                if k < n, kinds.contains(.wildcard) { best = max(best, k + 1) }   // "*.ck"
            }
            return best
        }
    }

    public func isPublicSuffix(_ name: DNSName) -> Bool {
        let n = name.labelCount
        return n > 0 && suffixLength(name) >= n
    }

    /// The registered domain of `name`: its public suffix plus one label; the name itself when it is
    /// a public suffix or shorter.
    public func registeredDomain(_ name: DNSName) -> DNSName {
        let o = registeredDomainOffset(name)
        return o == 0 ? name : DNSName(uncheckedWire: Array(name.wire[o...]))
    }

    /// Where the registered domain starts in `name.wire` (0: the name itself), for callers that
    /// look it up as a slice instead of building a name.
    public func registeredDomainOffset(_ name: DNSName) -> Int {
        let n = name.labelCount
        let keep = min(n, suffixLength(name) + 1)
        return keep == n ? 0 : Self.offset(ofLabel: n - keep, in: name.wire)
    }

    /// Whether `wire` (a name's canonical bytes) is in the rule table, as a rule or as the parent of
    /// one: below an unlisted name every child has that name's suffix length (`RegisteredDomainMemo`).
    public func isListed(_ wire: ArraySlice<UInt8>) -> Bool { wire.withUnsafeBytes { rules[$0] != nil } }

    /// Offset of the `index`-th label from the left (0-based).
    @inline(__always) static func offset<Wire: RandomAccessCollection<UInt8>>(ofLabel index: Int, in w: Wire) -> Int
        where Wire.Index == Int {
        var o = 0
        for _ in 0..<index { o += Int(w[o]) + 1 }
        return o
    }
}
