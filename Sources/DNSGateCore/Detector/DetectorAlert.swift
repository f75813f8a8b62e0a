/// One detection episode for a (client, registered domain, kind): what fired, how far over, and examples.
///
/// Serialised as one JSON object (`JSONEncoder`, keys as declared) for the log, the control API and
/// `dnsgate alerts --json`. `TunnelDetector.observe` returns an alert once, when the episode starts;
/// while the episode lasts the detector updates `lastTime`, `features`, `sampleNames` and
/// `observations` in place, visible through `alertsSnapshot`.
public struct DetectorAlert: Codable, Hashable, Sendable {
    /// What kind of misuse the features point to.
    public enum Kind: String, Codable, Hashable, Sendable, CaseIterable {
        /// Encoded data leaving in names: information over the tunnel budget plus at least two
        /// shape signals (encoded alphabet, long subdomains, TXT/NULL/MX/CNAME/ANY mix, NXDOMAIN, beacon timing).
        case tunnel
        /// Information in distinct names over the volume budget, whatever they look like (Paxson et al. 2013).
        case volume
        /// Regular query timing with fresh names each time: a polling implant.
        case beacon
        /// Distinct names under one domain arriving far above the client's own baseline rate.
        case rateSpike = "rate-spike"
        /// More distinct names under one allow-list wildcard than its per-client budget.
        case wildcardBudget = "wildcard-budget"
        /// A lookup of an encrypted-DNS resolver or of the `use-application-dns.net` canary.
        case bypass
        /// Names under more registered domains in a window than one client plausibly needs: data
        /// spread over many domains (each too small to count), or a flood meant to push the per-domain
        /// state of a tunnel out of the detector's tables. `registeredDomain` is the root (`.`).
        case domainSpread = "domain-spread"
    }

    /// A feature that crossed its threshold, with both numbers.
    public struct Feature: Codable, Hashable, Sendable {
        public var name: String
        public var value: Double
        public var threshold: Double
        public init(name: String, value: Double, threshold: Double) {
            self.name = name; self.value = value; self.threshold = threshold
        }
    }

    public var client: String
    /// Presentation form with trailing dot (`example.com.`).
    public var registeredDomain: String
    public var kind: Kind
    public var features: [Feature]
    /// At most five recent distinct names from the episode, presentation form.
    public var sampleNames: [String]
    /// Event time of the query that started the episode.
    public var firstTime: Double
    /// Event time of the latest query on which the kind still fired.
    public var lastTime: Double
    /// How many queries fired this kind during the episode.
    public var observations: Int
    /// The caller's budget key (allow-list wildcard) for `wildcardBudget` alerts, else nil.
    public var budgetKey: String?

    public init(client: String, registeredDomain: String, kind: Kind, features: [Feature], sampleNames: [String],
                firstTime: Double, lastTime: Double, observations: Int = 1, budgetKey: String? = nil) {
        self.client = client; self.registeredDomain = registeredDomain; self.kind = kind
        self.features = features; self.sampleNames = Array(sampleNames.prefix(5))
        self.firstTime = firstTime; self.lastTime = lastTime; self.observations = observations
        self.budgetKey = budgetKey
    }
}
