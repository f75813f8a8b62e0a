/// The set of policy entries, indexed for a lookup whose cost depends on the query's label count,
/// never on the number of entries.
///
/// Precedence: an exact entry beats any wildcard; among wildcards the longest suffix wins. `*.example.com`
/// covers names strictly below `example.com`, never the apex.
///
/// A name with no entry of its own under which entries allow names (`example.com` for
/// `www.example.com` or `*.example.com`) is marked too: denied, it exists all the same, and NXDOMAIN
/// would say that no name below it does (RFC 8020), which a cache may then apply to the allowed ones.
public struct AllowList: Sendable {
    public private(set) var entries: [PolicyEntry] = []
    // Entry indices by wire bytes, probed through a pointer into the query's own name (`WireTable`);
    // in `exact`, `Self.namesBelow` marks a name that only has entries below it.
    private var exact = WireTable<Int>()
    private var wildcard = WireTable<Int>()
    private static let namesBelow = -1

    /// What `lookup` found for a name.
    public enum Lookup {
        case entry(index: Int, PolicyEntry)
        /// No entry covers the name, but entries allow names below it.
        case namesBelow
        case none
    }

    public init() {}

    public init(_ entries: [PolicyEntry]) throws {
        for e in entries { try add(e) }
    }

    /// Adds an entry.
    /// - Throws: `PolicyLoadError` when the same pattern is already listed, naming both places.
    public mutating func add(_ e: PolicyEntry) throws {
        if let prior = (e.isWildcard ? wildcard : exact)[e.name.wire], prior != Self.namesBelow {
            throw PolicyLoadError(e.source, "duplicate entry \(e.pattern), first listed at \(entries[prior].source)")
        }
        entries.append(e)
        if e.isWildcard { wildcard[e.name.wire] = entries.count - 1 } else { exact[e.name.wire] = entries.count - 1 }
        // The names above what the entry allows or answers (its own name too, for a wildcard), up to
        // the root; a denial makes no name exist.
        if case .deny = e.action { return }
        var above = e.isWildcard ? e.name : e.name.parent
        while let name = above {
            if exact[name.wire] == nil { exact[name.wire] = Self.namesBelow }
            above = name.parent
        }
    }

    public var count: Int { entries.count }

    /// The entry written for exactly this pattern (`name`, or `*.name` when `wildcard`), if any.
    public func entry(for name: DNSName, wildcard: Bool) -> PolicyEntry? {
        (wildcard ? self.wildcard : exact)[name.wire].flatMap { $0 == Self.namesBelow ? nil : entries[$0] }
    }

    /// The most specific entry covering `name`, with its index (for per-entry hit counters).
    public func match(_ name: DNSName) -> (index: Int, entry: PolicyEntry)? {
        if case .entry(let i, let e) = lookup(name) { return (i, e) }
        return nil
    }

    /// `match`, and for a name no entry covers, whether entries allow names below it.
    public func lookup(_ name: DNSName) -> Lookup {
        var below = false
        let found: Int? = name.wire.withUnsafeBytes { w in
            if let i = exact[w] {
                if i != Self.namesBelow { return i }
                below = true
            }
            guard !wildcard.isEmpty else { return nil }
            // Walk suffixes from longest to shortest, starting one label up: the apex is not covered.
            var o = 0
            while w[o] != 0 {
                o += Int(w[o]) + 1
                if let i = wildcard[UnsafeRawBufferPointer(rebasing: w[o...])] { return i }
            }
            return nil
        }
        if let found { return .entry(index: found, entries[found]) }
        return below ? .namesBelow : .none
    }
}
