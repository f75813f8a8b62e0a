/// A name with its `TableHash`, computed once: the tables keyed by registered domains (the top-k
/// sketch, the detector's pairs and its bypass set) use the stored hash instead of hashing the name
/// again, each with a pass over its bytes.
public struct HashedName: Hashable, Sendable, CustomStringConvertible {
    public let name: DNSName
    /// `TableHash.hash(name.wire)`, the same value as `name.hashValue` (and `QueryView.nameHash`).
    public let hash: UInt64

    public init(_ name: DNSName) {
        self.init(name, hash: name.wire.withUnsafeBytes { TableHash.hash($0) })
    }

    /// - Parameter hash: must be `TableHash.hash(name.wire)`, as `QueryView.nameHash` is.
    public init(_ name: DNSName, hash: UInt64) {
        self.name = name
        self.hash = hash
    }

    public var description: String { name.description }

    public static func == (a: HashedName, b: HashedName) -> Bool { a.hash == b.hash && a.name == b.name }

    public func hash(into hasher: inout Hasher) { hasher.combine(hash) }

    // Already a keyed hash: the table's seed is folded in with one multiply, no pass over the name.
    public func _rawHashValue(seed: Int) -> Int {
        Int(truncatingIfNeeded: (hash ^ UInt64(bitPattern: Int64(seed))) &* 0x9E37_79B9_7F4A_7C15)
    }
}
