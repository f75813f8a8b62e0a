/// The subdomain length and type mix of a pair's latest names and queries, beside the window's.
///
/// The window's features average over every name the pair sent in the hour. Under a registered
/// domain with raised limits (`DetectorConfig.domainLimits`), a tunnel that starts after hundreds of
/// benign names hid behind them: the fourth QA pass saw 58 KB of base32 pass after 700 package
/// names, against about 1 KB alone. These running means weigh the newest name or query by 1/16, so
/// they follow the last few dozen, and a tunnel's shape shows within a few dozen of its names
/// whatever came before. (The characters' own recent entropy is in `LabelCharacters`.)
struct RecentShape {
    /// Weight of the newest name or query in the running means.
    static let weight = 1.0 / 16

    private(set) var meanSubdomainLength = 0.0
    private(set) var tunnelTypeShare = 0.0
    private(set) var nxDomainRatio = 0.0
    private var names = false, queries = false

    mutating func addQuery(tunnelType: Bool, nxDomain: Bool) {
        Self.blend(&tunnelTypeShare, tunnelType ? 1 : 0, started: queries)
        Self.blend(&nxDomainRatio, nxDomain ? 1 : 0, started: queries)
        queries = true
    }

    mutating func addName(subdomainLength: Int) {
        Self.blend(&meanSubdomainLength, Double(subdomainLength), started: names)
        names = true
    }

    mutating func removeAll() { self = RecentShape() }

    /// A running mean that starts at its first value rather than at zero.
    @inline(__always)
    private static func blend(_ mean: inout Double, _ x: Double, started: Bool) {
        mean = started ? mean + (x - mean) * weight : x
    }
}
