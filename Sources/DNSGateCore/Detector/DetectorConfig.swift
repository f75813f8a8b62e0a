/// Thresholds, windows and memory caps of `TunnelDetector`.
///
/// Every default says where its number comes from. "Measured" means bench/detector/TUNING.md, run
/// over ../shared/corpora (real DNSExfiltrator captures; Umbrella and top-list benign names) plus the
/// synthetic low-and-slow and build-like sequences in DetectorCorpusTests.
public struct DetectorConfig: Sendable, Equatable {
    // MARK: windows

    /// Sliding window for the per-(client, registered domain) features. Paxson et al. bound a day; an
    /// hour keeps state small and still covers a job's whole run (CI jobs are minutes to an hour).
    public var windowSeconds: Double = 3600
    /// Bucket width inside the window; the window slides one bucket at a time.
    public var bucketSeconds: Double = 300
    /// An episode ends once its kind has not fired for this long; the next firing is a new alert.
    public var episodeGapSeconds: Double = 3600

    // MARK: information budgets (Paxson et al., USENIX Security 2013)

    /// Estimated bytes of information in distinct labels below one registered domain, per client per
    /// window, above which `volume` fires whatever the names look like. 4096: the bound commonly
    /// quoted for Paxson et al. Measured: benign maximum 495 B (108 names under microsoft.com in the
    /// umbrella sample), the build-like 100 × 40-hex blobs 2 003 B, so 2× headroom over that build.
    public var volumeBudgetBytes: Double = 4096
    /// Information above which `tunnel` fires when at least `tunnelMinSignals` shape signals agree.
    /// 1024: 2× the largest benign pair (495 B) and reached by every DNSExfiltrator file after
    /// 1 650–2 064 payload characters, half the 4 KB target; the synthetic 2 KB low-and-slow secrets
    /// cross it half-way through.
    public var tunnelBudgetBytes: Double = 1024
    /// Shape signals needed for `tunnel`. Two: one signal alone is common in benign traffic
    /// (TXT lookups for SPF/DKIM, long hash labels under CDNs, pooled host names near 4.6 bits);
    /// every DNSExfiltrator file shows two or three (entropy and TXT, often length) at its first alert.
    public var tunnelMinSignals: Int = 2

    // MARK: shape signals

    /// Character entropy (bits/char) over the distinct labels of a pair above which the alphabet is
    /// wider than hex. Hex tops out at 4.0 (so hash-like CDN labels never pass); base32 reaches 5.0,
    /// lower-cased base64 about 5.2 (Miller–Madow corrected, see `LabelShape.entropy`). Measured:
    /// DNSExfiltrator pairs 5.05–5.18 at their first alert; ordinary host names pooled under one
    /// domain reach 4.60 (umbrella sample: microsoft.com 4.57, apple.com 4.48). 4.8 sits between.
    public var encodedEntropyBits: Double = 4.8
    /// Minimum label characters seen in a pair before its entropy is trusted (a 10-character sample
    /// cannot exceed log2(10) = 3.3 bits anyway; this stops early noise).
    public var entropyMinChars: Int = 64
    /// Mean length of the part below the registered domain, over distinct names, above which names
    /// count as long. 50 is Elastic's long-label rule (E1 in the literature survey); measured benign
    /// maximum of the per-pair mean is 36.0 (umbrella); the build-like CDN names are 48 (one signal, not two).
    public var longSubdomainMean: Double = 50
    /// Share of TXT, NULL, MX, CNAME, ANY (and iodine's PRIVATE 65399) queries above which the type
    /// mix counts. 0.5 is the community "TXT over half of a domain's queries" rule; measured:
    /// DNSExfiltrator 1.0, benign corpora 0 (A only), builds use A/AAAA/HTTPS.
    public var tunnelTypeShare: Double = 0.5
    /// NXDOMAIN share above which the pair counts as probing/tunnelling (tunnel servers often answer
    /// NXDOMAIN to data queries). Needs `minQueriesForRatios` queries.
    public var nxDomainRatio: Double = 0.5
    public var minQueriesForRatios: Int = 10

    // MARK: timing

    /// Intervals kept per pair for the beacon test, and how many are needed before it can fire.
    public var beaconIntervals: Int = 12
    /// Coefficient of variation of the intervals below which timing is "regular". Implants sleep
    /// a fixed period plus small jitter: a 5 s ± 2 % uniform schedule has ≈ 0.012; exponential
    /// (Poisson) build arrivals 1.0; the benign corpora (synthetic 0.2–2 s uniform gaps) never get 12 gaps in one pair.
    public var beaconMaxVariation: Double = 0.1
    /// Shortest mean period counted as a beacon; faster regularity is a retry loop or a flood.
    public var beaconMinPeriodSeconds: Double = 1
    /// Share of queries with a never-seen name needed for `beacon` (an app re-querying one name at
    /// TTL expiry is regular too, but asks the same name).
    public var beaconMinDistinctShare: Double = 0.5

    // MARK: rate against the client's baseline

    /// Distinct new names under one registered domain within one minute needed for `rateSpike`.
    /// Measured benign maximum: 6 per minute (umbrella); DNSExfiltrator at request sizes 65–145
    /// passes 300 in a minute, the larger sizes do not, so this kind is a flood detector and the
    /// tunnel kind does the rest. (Config: `detector.rate_spike_names_per_minute`.)
    public var rateSpikeMinNames: Int = 300
    /// … and that many times the client's baseline queries per minute (EWMA, `baselineHalfLifeMinutes`).
    public var rateSpikeFactor: Double = 10
    public var baselineHalfLifeMinutes: Double = 30

    // MARK: per allow-list wildcard

    /// Distinct names per (client, caller-supplied budget key) per window above which
    /// `wildcardBudget` fires. Measured benign maximum under one registered domain: 112 names
    /// (umbrella sample, microsoft.com); the synthetic build touches 100. 500 leaves 4–5× over both.
    public var wildcardDistinctNames: Double = 500

    // MARK: per client

    /// Distinct registered domains one client may ask for names under in a window before
    /// `domainSpread` fires; 0 turns the kind off. A build touches tens (a package registry, a source
    /// host, their CDNs; the build-like tests 3–5). 1000 is half of `maxPairs`: a client that floods
    /// new registered domains to push its own tunnel's pair out of the table (about 2,048 new ones
    /// between two tunnel queries) crosses it on its first round. Not measured on real runners:
    /// the benign corpora are one client walking a top list, thousands of domains an hour.
    public var spreadDistinctDomains: Double = 1000

    // MARK: per registered domain

    /// The limits of the kinds that count names or information whatever the names look like
    /// (`volume`, `rateSpike`, `wildcardBudget`).
    public struct VolumeLimits: Sendable, Equatable {
        public var volumeBudgetBytes: Double
        public var rateSpikeMinNames: Int
        public var wildcardDistinctNames: Double
        public init(volumeBudgetBytes: Double, rateSpikeMinNames: Int, wildcardDistinctNames: Double) {
            self.volumeBudgetBytes = volumeBudgetBytes; self.rateSpikeMinNames = rateSpikeMinNames
            self.wildcardDistinctNames = wildcardDistinctNames
        }
    }

    /// The limits every registered domain has unless `domainLimits` names it.
    public var volumeLimits: VolumeLimits {
        VolumeLimits(volumeBudgetBytes: volumeBudgetBytes, rateSpikeMinNames: rateSpikeMinNames, wildcardDistinctNames: wildcardDistinctNames)
    }

    /// Limits of their own for some registered domains (lower case, no final dot), such as a package
    /// mirror whose builds resolve hundreds of distinct host names: set there, those names are
    /// not what the defaults above were measured on, and raising the limits for everyone would blind
    /// the detector everywhere else. Only the kinds that count whatever the names look like use them:
    /// `tunnel` (information and shape together), `beacon` and `bypass` keep their thresholds, so
    /// encoded data under such a domain is still caught.
    public var domainLimits: [String: VolumeLimits] = [:]

    // MARK: bypass

    /// Encrypted-DNS endpoints and canaries whose lookup is a `bypass` alert; empty turns the kind off.
    public var bypassNames: [String] = EncryptedDNSResolvers.defaultNames

    // MARK: memory caps

    /// (client, registered domain) pairs tracked; beyond it the least recently seen are dropped.
    public var maxPairs: Int = 2048
    /// Distinct label/name hashes remembered per pair (distinct counting and new-information test);
    /// a name new to the pair takes one for itself and one for each new label, a repeat none. A
    /// forgotten name counts as new again, so this must hold more names than the thresholds count
    /// (`wildcardDistinctNames`, `rateSpikeMinNames`): 256 made a client looping over 129 service
    /// hosts under one domain a rate spike. 8192 holds a working set of about 3,000 names, also
    /// while new names pass by (`RecentHashes`, `DetectorWorkingSetTests`); 256 KB of tables at most.
    public var maxLabelsPerPair: Int = 8192
    /// Hashes every pair may hold whatever the others hold (8 KB of tables).
    public var guaranteedLabelsPerPair: Int = 256
    /// Hashes all pairs together may hold beyond their guaranteed ones, first come first served until
    /// a pair is dropped or recycled: 16 MB of tables at most (64 pairs of 8,192 hashes). When
    /// it runs out, pairs stay at the size they have, down to the guaranteed one.
    public var sharedLabels: Int = 524_288
    /// Clients with a rate baseline.
    public var maxClients: Int = 4096
    /// (client, budget key) sketches; each is a 1 KB HyperLogLog pair.
    public var maxBudgetKeys: Int = 1024
    /// Alert episodes kept for dedup and `alertsSnapshot`.
    public var maxEpisodes: Int = 1024

    public init() {}

    public static let `default` = DetectorConfig()
}
