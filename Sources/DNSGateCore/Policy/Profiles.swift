/// A named policy for a set of clients: build, test and release stages, or different runners, reach
/// different destinations (issue 4). Selected by source prefix (longest match wins), then by the
/// listener address the query arrived on; clients no profile selects get the default policy.
public struct Profile: Sendable {
    public let name: String
    public let clients: [ClientPrefix]
    /// Listener addresses as written in config (`192.0.2.10:53`).
    public let listeners: [String]
    public let policy: Policy
    public init(name: String, clients: [ClientPrefix], listeners: [String], policy: Policy) {
        self.name = name; self.clients = clients; self.listeners = listeners; self.policy = policy
    }
}

/// The default policy plus the profiles; what a reload swaps in.
public struct PolicySet: Sendable {
    public static let defaultProfileName = "default"
    public var base: Policy
    public var profiles: [Profile]

    public init(base: Policy, profiles: [Profile] = []) { self.base = base; self.profiles = profiles }

    /// Entries of the default policy and of every profile: what `validate` and `reload` count.
    /// `stats`, the start-up log and `dnsgate_policy_entries` count the default policy's (`base`).
    public var entriesInAllPolicies: Int { base.allowList.count + profiles.reduce(0) { $0 + $1.policy.allowList.count } }

    /// Index into `profiles`, or nil for the default policy.
    public func select(clientAddress: [UInt8]?, listener: String?) -> Int? {
        guard !profiles.isEmpty else { return nil }
        var best: (index: Int, length: Int)?
        if let a = clientAddress {
            for (i, p) in profiles.enumerated() {
                for c in p.clients where c.contains(a) && c.length > (best?.length ?? -1) { best = (i, c.length) }
            }
        }
        if let best { return best.index }
        if let listener { return profiles.firstIndex { $0.listeners.contains(listener) } }
        return nil
    }

    public func policy(_ index: Int?) -> Policy { index.map { profiles[$0].policy } ?? base }
    public func name(_ index: Int?) -> String { index.map { profiles[$0].name } ?? Self.defaultProfileName }
}
