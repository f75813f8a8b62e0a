/// The set of policy entries, indexed for a lookup whose cost depends on the query's label count,
/// never on the number of entries.
///
/// Precedence: an exact entry beats any wildcard; among wildcards the longest suffix wins. `*.example.com`
/// covers names strictly below `example.com`, never the apex.
public struct AllowList: Sendable {
    public private(set) var entries: [PolicyEntry] = []
    // Entry indices by wire bytes, probed through a pointer into the query's own name (`WireTable`).
    private var exact = WireTable<Int>()
    private var wildcard = WireTable<Int>()

    public init() {}

    public init(_ entries: [PolicyEntry]) throws {
        for e in entries { try add(e) }
    }

    /// Adds an entry.
    /// - Throws: `PolicyLoadError` when the same pattern is already listed, naming both places.
    public mutating func add(_ e: PolicyEntry) throws {
        if let prior = (e.isWildcard ? wildcard : exact)[e.name.wire] {
            throw PolicyLoadError(e.source, "duplicate entry \(e.pattern), first listed at \(entries[prior].source)")
        }
        entries.append(e)
        if e.isWildcard { wildcard[e.name.wire] = entries.count - 1 } else { exact[e.name.wire] = entries.count - 1 }
    }

    public var count: Int { entries.count }

    /// The entry written for exactly this pattern (`name`, or `*.name` when `wildcard`), if any.
    public func entry(for name: DNSName, wildcard: Bool) -> PolicyEntry? {
        (wildcard ? self.wildcard : exact)[name.wire].map { entries[$0] }
    }

    /// The most specific entry covering `name`, with its index (for per-entry hit counters).
    public func match(_ name: DNSName) -> (index: Int, entry: PolicyEntry)? {
        let found: Int? = name.wire.withUnsafeBytes { w in
            if let i = exact[w] { return i }
            guard !wildcard.isEmpty else { return nil }
            // Walk suffixes from longest to shortest, starting one label up: the apex is not covered.
            var o = 0
            while w[o] != 0 {
                o += Int(w[o]) + 1
                if let i = wildcard[UnsafeRawBufferPointer(rebasing: w[o...])] { return i }
            }
            return nil
        }
        return found.map { ($0, entries[$0]) }
    }
}
