/// The Public Suffix List (publicsuffix.org), read from Debian's `publicsuffix` package by default.
///
/// Gives the registered domain ("eTLD+1") of a name: counters and the detector aggregate per registered
/// domain, and the policy refuses wildcards directly under a public suffix. Private-section suffixes
/// (e.g. `github.io`) count too: each user's site there is its own registered domain.
public struct PublicSuffixList: Sendable {
    private var rules: Set<String> = []          // "co.uk"
    private var wildcards: Set<String> = []      // "ck" for "*.ck"
    private var exceptions: Set<String> = []     // "www.ck" for "!www.ck"

    public static let debianPath = "/usr/share/publicsuffix/public_suffix_list.dat"

    public init(text: String) {
        for raw in text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {   // "\r\n" is one Character
            let line = raw.split(whereSeparator: { $0 == " " || $0 == "\t" }).first.map(String.init) ?? ""
            if line.isEmpty || line.hasPrefix("//") { continue }
            let rule = line.lowercased()
            if rule.hasPrefix("!") { exceptions.insert(String(rule.dropFirst())) }
            else if rule.hasPrefix("*.") { wildcards.insert(String(rule.dropFirst(2))) }
            else { rules.insert(rule) }
        }
    }

    /// Labels of the public suffix of `labels` (leftmost first, lower case); at least 1 (the implicit `*` rule).
    public func suffixLength(_ labels: [String]) -> Int {
        guard !labels.isEmpty else { return 0 }
        var best = 1
        for k in 1...labels.count {
            let candidate = labels.suffix(k).joined(separator: ".")
            if exceptions.contains(candidate) { return k - 1 }            // "!www.ck": www.ck is registrable
            if rules.contains(candidate) { best = max(best, k) }
            if wildcards.contains(candidate), k < labels.count { best = max(best, k + 1) }   // "*.ck"
        }
        return best
    }

    public func isPublicSuffix(_ name: DNSName) -> Bool {
        let labels = Self.textLabels(name)
        return !labels.isEmpty && suffixLength(labels) >= labels.count
    }

    /// The registered domain of `name`: its public suffix plus one label; the name itself when it is
    /// a public suffix or shorter.
    public func registeredDomain(_ name: DNSName) -> DNSName {
        let labels = Self.textLabels(name)
        let keep = min(labels.count, suffixLength(labels) + 1)
        var n = name
        for _ in 0..<(labels.count - keep) { n = n.parent! }
        return n
    }

    static func textLabels(_ name: DNSName) -> [String] {
        name.labels.map { String(decoding: $0, as: UTF8.self) }
    }
}
