/// Finds data leaving through DNS names: tunnels, slow exfiltration, beacons, resolver bypass.
///
/// Keeps bounded state per (client, registered domain) over a sliding window (`DetectorConfig`):
/// distinct names, an information estimate of the distinct labels below the registered domain
/// (order-0 entropy of each new label, capped by the narrowest alphabet it fits: hex 4 bits/char,
/// base32 5, lower-cased base64 5.25; repeated labels count once, which is what makes the estimate
/// track Paxson et al.'s compressed-unique-names bound), label lengths, character entropy, query-type
/// mix, NXDOMAIN ratio, arrival regularity and the rate against the client's own baseline. Per
/// caller-supplied budget key (an allow-list wildcard) it counts distinct names per client with a
/// HyperLogLog, and per client the registered domains it asks under (`domainSpread`). Lookups of
/// encrypted-DNS resolvers and of `use-application-dns.net` are flagged at once.
///
/// Time comes only from the events (`QueryEvent.time`): the live server and `dnsgate analyze`
/// replaying a log get the same alerts. Memory is capped by `DetectorConfig.maxPairs`,
/// `maxLabelsPerPair` and `sharedLabels` (`LabelMemory`), `maxClients`, `maxBudgetKeys` and
/// `maxEpisodes`; beyond a cap the least
/// recently seen entries go first (`RecencyList`, arrival order, so replays evict identically). A
/// pair is tracked from its second query: its first waits in `FirstQueries`, so registered domains
/// looked up once neither cost a pair's state nor push a tracked pair out.
///
/// A pair in alert (its last evaluation crossed a threshold) is evaluated in full on every
/// `evaluationStride`th query only, and at least once a second (`evaluationMaxLagSeconds`); the
/// queries in between count in the episodes that evaluation fed (their `observations` and `lastTime`
/// stay exact). So on such a pair an alert of another kind opens up to a second late, and the
/// features an alert shows lag by as much. Evaluating a flooded pair on every query took a twelfth of
/// the instructions of a denied query, to learn again what the last query had shown (bench/RESULTS.md).
///
/// Not thread-safe: drive it from one serial queue (the server's telemetry queue, off the query
/// path), and read `alertsSnapshot()` on that queue too.
///
/// While a client holds a quarter of the pair table, new pairs make room from such clients' pairs,
/// and a client past a quarter of the table's worth of registered domains no longer pushes out first
/// queries other clients asked (its pairs start at their first query instead): one container's
/// flood, or several taking turns, cannot hide another's tunnel. A flooder's own tunnel pair can
/// still go; `domainSpread` (half the table) is what catches that.
///
/// TODO:
/// - Idle C2 polling of one constant name is regular but not distinct, and is left alone.
/// - The label tables beyond each pair's guaranteed 256 hashes are shared first come, first served:
///   pairs flooded with ever-new names (which gain nothing from them) can hold them all for a window,
///   and another client's loop over more than about 128 names under one domain then counts its
///   repeats as new again. Growing only pairs whose repeats are being found, or a share per client,
///   would keep floods from taking them.
public final class TunnelDetector {
    public let config: DetectorConfig
    private let suffixes: PublicSuffixList
    private let bypassNames: [DNSName]
    private let bucketCount: Int
    /// `config.domainLimits` by the registered domain's `HashedName.hash`, as pairs are keyed.
    private let domainLimits: [UInt64: DetectorConfig.VolumeLimits]
    private let baselineDecay: Double

    private var pairs: RecentStates<PairKey, PairState>
    /// Pairs a client may hold before the room for new pairs comes from such clients' first (a
    /// quarter of the table), and how many clients hold that many now.
    private let ownPairsFirstAt: Int
    private var heavyClients = 0
    /// The table space the pairs' remembered names and labels share.
    private let labelMemory: LabelMemory
    /// First queries of pairs seen once; used only when `holdsFirstQueries`.
    private var firstQueries: FirstQueries
    /// Whether no lone query can cross a threshold, so a pair's first query may wait for its second:
    /// the information in one name stays under 256 bytes (at most 253 characters at 8 bits), a rate
    /// spike needs several new names, and a beacon several gaps.
    private let holdsFirstQueries: Bool
    private var clients: RecentStates<String, ClientState>
    private var budgets: RecentStates<BudgetStateKey, BudgetState>
    private var episodes: [EpisodeKey: Episode] = [:]
    /// Label ranges of the query being analysed, written by index: a name has at most 127 labels.
    /// (An array emptied and appended to per query cost a generic call for the emptying alone.)
    private let labelScratch = UnsafeMutableBufferPointer<Range<Int>>.allocate(capacity: 128)
    /// Registered domains of `bypassNames`: one set lookup spares the per-entry suffix test for almost every query.
    private let bypassDomains: Set<HashedName>
    /// The previous query's registered domain (by its keyed hash, as `PairKey` tells pairs apart: a
    /// copy of the name was a retain and a release whenever the domain changed) and whether
    /// `bypassDomains` holds it: consecutive queries mostly share one.
    private var lastDomain: (domainHash: UInt64, hasBypassNames: Bool)?
    /// The budget key last seen and its hash (`BudgetStateKey.hash`).
    private var lastBudgetKey = (text: "", hash: BudgetStateKey.hash(budgetKey: ""))

    /// - Parameters:
    ///   - config: thresholds and caps; `.default` holds the tuned values.
    ///   - suffixes: the Public Suffix List that defines registered domains.
    public init(config: DetectorConfig = .default, suffixes: PublicSuffixList) {
        self.config = config
        self.suffixes = suffixes
        self.bypassNames = config.bypassNames.compactMap { try? DNSName($0) }
        self.bypassDomains = Set(bypassNames.map { HashedName(suffixes.registeredDomain($0)) })
        self.bucketCount = max(1, Int((config.windowSeconds / config.bucketSeconds).rounded(.up)))
        self.domainLimits = Dictionary(config.domainLimits.compactMap { name, limits in
            (try? DNSName(name)).map { (HashedName($0).hash, limits) }
        }, uniquingKeysWith: { first, _ in first })
        self.baselineDecay = LabelShape.exp2(-1 / max(config.baselineHalfLifeMinutes, 0.01))
        self.pairs = RecentStates(capacity: config.maxPairs)
        self.ownPairsFirstAt = max(1, config.maxPairs / 4)
        self.labelMemory = LabelMemory(labelsPerPair: config.maxLabelsPerPair, guaranteedLabelsPerPair: config.guaranteedLabelsPerPair,
                                       sharedLabels: config.sharedLabels)
        let limits = [config.volumeLimits] + config.domainLimits.values
        let holds = config.tunnelBudgetBytes >= 256 && limits.allSatisfy { $0.volumeBudgetBytes >= 256 && $0.rateSpikeMinNames > 1 }
        self.holdsFirstQueries = holds
        self.firstQueries = FirstQueries(capacity: holds ? config.maxPairs : 1)
        self.clients = RecentStates(capacity: config.maxClients)
        self.budgets = RecentStates(capacity: config.maxBudgetKeys)
    }

    deinit { labelScratch.deallocate() }

    // MARK: events

    /// Folds one query into the state and returns the alerts whose episode starts with it.
    ///
    /// - Parameters:
    ///   - e: the query; its `time` is the detector's clock.
    ///   - budgetKey: the allow-list entry that admitted the name (e.g. `*.example-cdn.test`) when the
    ///     caller wants a per-client distinct-name budget on it; nil otherwise.
    ///   - registeredDomain: the name's registered domain, with its hash, when the caller already
    ///     computed it with the same Public Suffix List (the server's telemetry does); computed here otherwise.
    ///   - nameHash: the name's `TableHash` when the caller has it (`QueryRecord.nameHash`); computed
    ///     here otherwise.
    /// - Returns: new alerts only; repeats within an episode update `alertsSnapshot()` instead.
    @discardableResult
    public func observe(_ e: QueryEvent, budgetKey: String? = nil, registeredDomain: HashedName? = nil, nameHash: UInt64? = nil) -> [DetectorAlert] {
        if let registeredDomain { return observe(e, budgetKey: budgetKey, domain: registeredDomain, nameHash: nameHash) }
        return observe(e, budgetKey: budgetKey, domain: HashedName(suffixes.registeredDomain(e.name)), nameHash: nameHash)
    }

    /// `observe` with `e`'s registered domain as the caller's Public Suffix List has it.
    ///
    /// The domain is borrowed, not bound to a local: `let domain = registeredDomain ?? …` made two
    /// copies of the name, each a retain and a release per query. So are the client's and the pair's
    /// states, which their tables hold meanwhile (`RecentStates.touch`).
    public func observe(_ e: QueryEvent, budgetKey: String?, domain hashedDomain: HashedName, nameHash: UInt64?) -> [DetectorAlert] {
        touchClient(e)._withUnsafeGuaranteedRef {
            observe(e, client: $0, budgetKey: budgetKey, domain: hashedDomain, nameHash: nameHash)
        }
    }

    private func observe(_ e: QueryEvent, client: ClientState, budgetKey: String?, domain hashedDomain: HashedName,
                         nameHash: UInt64?) -> [DetectorAlert] {
        var out: [DetectorAlert] = []
        var unheld: Episode?
        let hasBypassNames: Bool
        if let m = lastDomain, m.domainHash == hashedDomain.hash { hasBypassNames = m.hasBypassNames } else {
            hasBypassNames = bypassDomains.contains(hashedDomain)
            lastDomain = (hashedDomain.hash, hasBypassNames)
        }
        let key = PairKey(clientID: client.id, domainHash: hashedDomain.hash)
        if hasBypassNames, isBypass(e.name), let a = fire(.bypass, client: e.client, domain: hashedDomain.name, time: e.time,
                                          evidence: .bypass,
                                          samples: SampleRing(e.name), held: &unheld) {
            out.append(a)
        }

        var newToClient = false
        let tracked = trackedPair(key, client: client, domain: hashedDomain.name, domainHash: hashedDomain.hash, event: e,
                                  newToClient: &newToClient)
        if newToClient, let a = countDomain(hashedDomain.name, of: client, event: e) { out.append(a) }
        tracked?._withUnsafeGuaranteedRef { pair in
            if e.time >= pair.quarantinedSince { pair.restartCounts() }   // its quarantine has ended
            update(pair, with: e, domainLabels: hashedDomain.name.labelCount, nameHash: nameHash)
            if !countInOpenEpisodes(pair, event: e) {
                let raised = evaluate(pair, domain: hashedDomain.name, event: e, client: client)
                if !raised.isEmpty { out.append(contentsOf: raised) }   // mostly empty: skip the append's checks
            }
        }

        if let budgetKey {
            if let a = updateBudget(client: client, key: budgetKey, event: e, domain: hashedDomain) { out.append(a) }
        }
        return out
    }

    /// The pair's state, made most recently seen (unretained, as `RecentStates.touch`); nil when `e`
    /// is the pair's first query and is held in `firstQueries` instead. A pair's first query is
    /// replayed into the state its second makes. `newToClient` is set when `e` is the first query of
    /// the pair (as far as the tables remember).
    private func trackedPair(_ key: PairKey, client: ClientState, domain: DNSName, domainHash: UInt64, event e: QueryEvent,
                             newToClient: inout Bool) -> Unmanaged<PairState>? {
        if let p = pairs.touch(key) { return p }
        var first = holdsFirstQueries ? firstQueries.take(key.id, client: e.client) : nil
        // A first query the window has passed is gone, as its pair would have expired.
        if let f = first, e.time - f.time > config.windowSeconds { first = nil }
        if first == nil {
            newToClient = true
            // A client that has asked under more than a quarter of the table's worth of registered
            // domains in the window does not push other clients' held queries out: its pair starts
            // here instead, and makes room from a heavy client's pairs (below). A flood from one container
            // then cannot keep a tunnel in another from ever getting a pair.
            if holdsFirstQueries && !(client.distinctDomains >= ownPairsFirstAt && firstQueries.holdingWouldDropAnother(than: client.id)) {
                firstQueries.hold(key.id, e, client: client.id)
                return nil
            }
        }
        let firstSeen = first?.time ?? e.time
        // At the cap the least recently seen pair makes room, and its state is reused for this
        // one: under a flood of new registered domains that spares a dozen allocations a pair.
        // While some client holds a quarter of the table, the room comes from such a client's
        // pairs first (among the oldest): a flood of new domains from one container, or from
        // several taking turns (QA pass 8), must not push another container's tunnel out.
        let heavyFirst: ((PairState) -> Bool)? = heavyClients > 0 ? { [ownPairsFirstAt] in ($0.owner?.pairCount ?? 0) >= ownPairsFirstAt } : nil
        let pair = pairs.insert(key, evictingFirst: heavyFirst) { evicted in
            guard let old = evicted else { return newPairState(firstSeen: firstSeen) }
            if let owner = old.owner { countPair(of: owner, -1) }
            old.reset(firstSeen: firstSeen)
            return old
        }
        pair.owner = client
        countPair(of: client, 1)
        pair.limits = limits(forDomainHash: domainHash)
        // No alert to collect: a lone query raises none (see `holdsFirstQueries`).
        if let first { update(pair, with: first, domainLabels: domain.labelCount) }
        return .passUnretained(pair)
    }

    /// Adds `delta` to `client`'s pairs, keeping `heavyClients` (those holding at least
    /// `ownPairsFirstAt`) up to date.
    private func countPair(of client: ClientState, _ delta: Int) {
        let wasHeavy = client.pairCount >= ownPairsFirstAt
        client.pairCount += delta
        let isHeavy = client.pairCount >= ownPairsFirstAt
        if isHeavy != wasHeavy { heavyClients += isHeavy ? 1 : -1 }
    }

    private func newPairState(firstSeen: Double) -> PairState {
        PairState(bucketCount: bucketCount, gapCount: config.beaconIntervals, firstSeen: firstSeen, labels: labelMemory,
                  limits: config.volumeLimits)
    }

    private func limits(forDomainHash hash: UInt64) -> DetectorConfig.VolumeLimits {
        domainLimits.isEmpty ? config.volumeLimits : domainLimits[hash] ?? config.volumeLimits
    }

    /// Counts a registered domain new to the client in the window; `domainSpread` once the count
    /// reaches `spreadDistinctDomains`. Its episode is the client's, under the root name: no one
    /// domain is to blame (and none is quarantined). Over the limit, the episode is refreshed when
    /// the count moves, and otherwise once a second: a client cycling through more domains than the
    /// pair table holds (the benchmark's denied names) makes every sixth query a "new" domain, and
    /// refreshing on each cost 2 % of a denied query's instructions.
    private func countDomain(_ domain: DNSName, of c: ClientState, event e: QueryEvent) -> DetectorAlert? {
        guard config.spreadDistinctDomains > 0 else { return nil }
        let (n, changed) = c.domains.insert(hash: StableHash.hash(domain.wire), at: e.time, windowSeconds: config.windowSeconds)
        c.distinctDomains = Int(n)
        guard n >= config.spreadDistinctDomains, changed || e.time - c.spreadCheckedAt >= 1 else { return nil }
        c.spreadCheckedAt = e.time
        let samples = c.spreadSamples ?? SampleRing()
        c.spreadSamples = samples
        samples.append(e.name)
        return fire(.domainSpread, client: e.client, domain: .root, time: e.time,
                    evidence: .spread(distinctDomains: n.rounded(), limit: config.spreadDistinctDomains), samples: samples,
                    held: &c.spreadEpisode)
    }

    /// Every alert episode held, oldest first; with `now`, only episodes still open at that time.
    public func alertsSnapshot(activeAt now: Double? = nil) -> [DetectorAlert] {
        episodes.values
            .filter { now == nil || now! - $0.alert.lastTime <= config.episodeGapSeconds }
            .map { ep -> DetectorAlert in
                var a = ep.alert
                a.features = featureList(a.kind, ep.evidence)
                if !ep.samples.isEmpty { a.sampleNames = ep.samples.names.map(\.description) }
                return a
            }
            .sorted { ($0.firstTime, $0.client, $0.registeredDomain, $0.kind.rawValue)
                    < ($1.firstTime, $1.client, $1.registeredDomain, $1.kind.rawValue) }
    }

    /// Drops state idle for longer than the window and episodes that have ended; call it now and
    /// then (the server: once a second) so idle memory is returned, not only at the caps. Costs
    /// what it drops, not what is kept (`RecentStates.removeExpired`).
    public func expire(now: Double) {
        pairs.removeExpired({ now - $0.lastTime > config.windowSeconds }, removed: { p in
            if let owner = p.owner { countPair(of: owner, -1) }
            p.owner = nil
        })
        firstQueries.removeExpired(olderThan: now - config.windowSeconds)
        clients.removeExpired { now - $0.lastSeen > config.windowSeconds }
        budgets.removeExpired { now - $0.lastSeen > 2 * config.windowSeconds }
        var ended = false
        for ep in episodes.values where now - ep.alert.lastTime > config.episodeGapSeconds { ep.live = false; ended = true }
        if ended { episodes = episodes.filter { $0.value.live } }
    }

    /// The caller sinkholes `registeredDomain` for `client` from `time` on (a quarantine after one of
    /// its alerts), until an operator lifts it or it expires, and passes on none of the queries the
    /// quarantine sinkholes: they carry nothing out. So a query of that pair answered at `time` or
    /// later that still reaches `observe` was answered after the quarantine ended. (Queries answered
    /// before `time` were on their way when the alert was raised; they still count, in the episodes
    /// that raised it, and raise no new alert.)
    ///
    /// At the first such query the pair's counts start again from zero and the alert episodes of
    /// that client and domain end, so a pair that carries on crosses a threshold again and raises
    /// (and is quarantined) as promptly as the first time. Without this every kind that had fired
    /// stayed deduplicated for the rest of its episode, and each lift left one kind fewer to catch
    /// the same tunnel.
    ///
    /// From zero, not from the counts that fired: the quarantine was the answer to those, and kept
    /// they would re-quarantine the pair on its first query after a lift, whatever it asks, which
    /// would make a lift meaningless for the rest of the window. The names already seen and the
    /// alphabet of the pair's labels stay: a name that was counted stays counted (a benign client's
    /// repeats after a lift are free), and a tunnel carries on with new names, whose information is
    /// estimated with the alphabet it has shown, so it is re-detected after no more data than before.
    ///
    /// - Parameter time: on the clock of the events, when the quarantine took effect: no query
    ///   answered from then on escaped it while it lasted.
    public func quarantineStarted(client: String, registeredDomain domain: DNSName, at time: Double) {
        let hashed = HashedName(domain)
        // Marked, not restarted yet: the pair's state can be recycled, and an episode can outlive its
        // pair, while the quarantine lasts; each notices its end on the first query after it.
        pairs[PairKey(clientID: ClientState.id(of: client), domainHash: hashed.hash)]?.quarantine(since: time)
        for b in budgets.states where b.domainHash == hashed.hash && b.client == client { b.quarantine(since: time) }
        let text = domain.description
        for (key, ep) in episodes where key.client == client && key.kind != .bypass && ep.alert.registeredDomain == text {
            ep.quarantinedSince = min(ep.quarantinedSince, time)
        }
    }

    /// Moves the marks `quarantineStarted` left by `seconds`, after the wall clock (the clock of the
    /// events) stepped by that much, as the server moves the quarantines themselves. Left in place,
    /// a step back of an hour made every query answered in the hour after a lift look as if it had
    /// been on its way before the quarantine began, so a tunnel that carried on raised nothing new.
    public func clockStepped(by seconds: Double) {
        for p in pairs.states { p.shiftQuarantine(by: seconds) }
        for b in budgets.states { b.shiftQuarantine(by: seconds) }
        for ep in episodes.values where ep.quarantinedSince.isFinite { ep.quarantinedSince += seconds }
    }

    /// Sizes of the tracked state, for the memory test and `dnsgate stats`.
    public struct StateCounts: Sendable, Equatable {
        public var pairs: Int
        /// Pairs seen once, whose first query is held (`FirstQueries`), not counted in `pairs`.
        public var heldFirstQueries: Int
        public var clients: Int
        public var budgetKeys: Int
        public var episodes: Int
        /// Largest remembered-label set of any pair (capped by `maxLabelsPerPair`).
        public var largestLabelSet: Int
        public var totalLabels: Int
        /// Table slots (16 bytes each) the pairs hold beyond their guaranteed ones, at most `2 × sharedLabels`.
        public var sharedLabelSlots: Int
    }

    public var stateCounts: StateCounts {
        var largest = 0, total = 0
        for p in pairs.states { largest = max(largest, p.seen.count); total += p.seen.count }
        return StateCounts(pairs: pairs.count, heldFirstQueries: firstQueries.count, clients: clients.count, budgetKeys: budgets.count,
                           episodes: episodes.count, largestLabelSet: largest, totalLabels: total,
                           sharedLabelSlots: labelMemory.sharedSlots - labelMemory.freeSharedSlots)
    }

    /// The window's features for one pair, as the detector sees them at `time`; nil when untracked.
    public func features(client: String, registeredDomain: DNSName, at time: Double) -> PairFeatures? {
        let key = PairKey(clientID: ClientState.id(of: client), domainHash: HashedName(registeredDomain).hash)
        if let p = pairs[key] { return features(of: p, at: time) }
        // A pair seen once: its first query alone, in a state of its own that is not kept.
        guard let first = firstQueries.peek(key.id, client: client) else { return nil }
        let p = newPairState(firstSeen: first.time)
        update(p, with: first, domainLabels: registeredDomain.labelCount)
        return features(of: p, at: time)
    }

    // MARK: features

    /// What one (client, registered domain) pair looks like over the current window.
    public struct PairFeatures: Sendable, Equatable {
        public var queries: Int
        public var distinctNames: Int
        /// Estimated information in new labels, bytes (Paxson et al.'s quantity, order-0 estimate).
        public var informationBytes: Double
        /// Characters of the labels below the registered domain, summed over all queries.
        public var payloadBytes: Int
        public var meanSubdomainLength: Double
        public var longestSubdomain: Int
        /// Character entropy of the pair's distinct labels, bits/char (hex ≤ 4, base32 ≤ 5).
        public var entropyBits: Double
        public var entropySampleChars: Int
        public var tunnelTypeShare: Double
        public var nxDomainRatio: Double
        /// The same four over the latest names and queries (`RecentShape`): a signal counts when
        /// either the window's or the recent value crosses its threshold.
        public var recentEntropyBits: Double
        public var recentEntropySampleChars: Int
        public var recentMeanSubdomainLength: Double
        public var recentTunnelTypeShare: Double
        public var recentNXDomainRatio: Double
        /// Coefficient of variation of the last `beaconIntervals` inter-query gaps; nil until that many.
        public var timingVariation: Double?
        public var meanIntervalSeconds: Double?
        public var newNamesLastMinute: Int
    }

    /// Every feature, exact (the evaluation on the query path builds them only past its check).
    private func features(of p: PairState, at time: Double) -> PairFeatures {
        features(of: p, totals: windowTotals(of: p, at: time), gaps: gapStatistics(of: p, always: true),
                 newNames: newNamesLastMinute(of: p, at: time), entropy: p.characters.exactWindowEntropy)
    }

    private func features(of p: PairState, totals w: WindowTotals, gaps: (mean: Double?, variation: Double?), newNames: Int,
                          entropy: Double) -> PairFeatures {
        let q = w.queries, names = w.newNames
        return PairFeatures(
            queries: q, distinctNames: names, informationBytes: w.infoBits / 8, payloadBytes: w.payloadChars,
            meanSubdomainLength: names > 0 ? Double(w.subLenSum) / Double(names) : 0, longestSubdomain: w.longestSub,
            entropyBits: entropy, entropySampleChars: p.characters.windowTotal,
            tunnelTypeShare: q > 0 ? Double(w.typeQueries) / Double(q) : 0,
            nxDomainRatio: q > 0 ? Double(w.nx) / Double(q) : 0,
            recentEntropyBits: p.characters.recentEntropy, recentEntropySampleChars: p.characters.recentTotal,
            recentMeanSubdomainLength: p.recent.meanSubdomainLength, recentTunnelTypeShare: p.recent.tunnelTypeShare,
            recentNXDomainRatio: p.recent.nxDomainRatio,
            timingVariation: gaps.variation, meanIntervalSeconds: gaps.mean, newNamesLastMinute: newNames)
    }

    /// The pair's counts over the window that ends at `time`.
    private func windowTotals(of p: PairState, at time: Double) -> WindowTotals {
        let now = max(epoch(time), p.newestEpoch)
        // The older buckets' totals, then the newest bucket's: always in that order, so the totals
        // kept since the window last moved (`p.older`) give the same sums as adding up afresh.
        var w = now == p.newestEpoch ? p.older : olderTotals(p, now: now)
        let current = p.buckets[bucketIndex(now)]
        if current.epoch == now && current.generation == p.generation { w.add(current) }
        return w
    }

    /// Mean and coefficient of variation of the last `beaconIntervals` gaps, nil until there are
    /// that many. Unless `always`, the variation is left nil when the mean is below the beacon
    /// period: a flood's gaps are, and their variation (a second pass with a square root and two
    /// divisions) was a tenth of the detector's work on every query.
    private func gapStatistics(of p: PairState, always: Bool) -> (mean: Double?, variation: Double?) {
        guard p.intervals.count >= config.beaconIntervals, let mean = p.intervals.mean else { return (nil, nil) }
        return (mean, always || mean >= config.beaconMinPeriodSeconds ? p.intervals.variation(mean: mean) : nil)
    }

    private func newNamesLastMinute(of p: PairState, at time: Double) -> Int {
        p.minuteEpoch == Int64((time / 60).rounded(.down)) ? p.minuteNewNames : 0
    }

    /// Totals of the buckets inside the window that ends with epoch `now`, but for `now`'s own.
    private func olderTotals(_ p: PairState, now: Int64) -> WindowTotals {
        var w = WindowTotals()
        let g = p.generation
        for b in p.buckets where b.generation == g && b.epoch > now - Int64(bucketCount) && b.epoch < now { w.add(b) }
        return w
    }

    @inline(__always)
    private func bucketIndex(_ epoch: Int64) -> Int {
        Int(((epoch % Int64(bucketCount)) + Int64(bucketCount)) % Int64(bucketCount))
    }

    // MARK: state update

    /// Types that carry data back to a tunnel client, or that tunnels use for it (RFC 1035 §3.3, iodine's 65399).
    /// (A switch, not a Set: this runs for every query.)
    private static func isTunnelType(_ t: RecordType) -> Bool {
        switch t {
        case .txt, .null, .mx, .cname, .any, .srv, RecordType(65399): return true
        default: return false
        }
    }

    /// - Returns: whether the name was new to the pair within the window.
    @discardableResult
    private func update(_ p: PairState, with e: QueryEvent, domainLabels: Int, nameHash knownHash: UInt64? = nil) -> Bool {
        // An event older than the newest bucket (logs merged from two listeners) counts in the newest.
        let now = max(epoch(e.time), p.newestEpoch)
        if now != p.newestEpoch {
            // The window moved: sum what is left of the older buckets once, not on every evaluation.
            p.older = p.newestEpoch < now - Int64(bucketCount) ? WindowTotals() : olderTotals(p, now: now)
            p.newestEpoch = now
        }
        p.lastTime = max(p.lastTime, e.time)
        if let last = p.lastQueryTime {
            p.intervals.append(seconds: e.time - last)
        }
        p.lastQueryTime = e.time

        // The bucket is updated as a local and stored once: each `p.buckets[b].x += 1` was an access
        // through the class, with its own uniqueness check.
        let b = bucketIndex(now)
        var bucket = p.buckets[b]
        if bucket.epoch != now || bucket.generation != p.generation { bucket = Bucket(epoch: now, generation: p.generation) }
        defer { p.buckets[b] = bucket }
        bucket.queries += 1
        let tunnelType = Self.isTunnelType(e.type), nx = e.rcode == .nxDomain
        if tunnelType { bucket.typeQueries += 1 }
        if nx { bucket.nx += 1 }
        p.recent.addQuery(tunnelType: tunnelType, nxDomain: nx)

        let below = e.name.labelCount - domainLabels
        guard below > 0 else { return false }
        // Labels below the registered domain, as ranges of the wire bytes, read through one buffer
        // pointer: no array, slice or retain per label.
        return e.name.wire.withUnsafeBufferPointer { w in
            precondition(below <= labelScratch.count, "more labels than a name can have")
            var o = 0
            for k in 0..<below { let n = Int(w[o]); labelScratch[k] = (o + 1)..<(o + 1 + n); o += 1 + n }
            let subLen = o - 1
            bucket.payloadChars += Int32(subLen - (below - 1))

            // The name's own hash and its labels' are different functions, so they never stand for each other.
            let nameHash = knownHash ?? TableHash.hash(UnsafeRawBufferPointer(w))
            guard p.seen.noteIfNew(nameHash, at: e.time, window: config.windowSeconds) else { return false }
            bucket.newNames += 1
            bucket.subLenSum += Int32(subLen)
            bucket.longestSub = max(bucket.longestSub, Int32(subLen))
            p.recent.addName(subdomainLength: subLen)
            let minute = Int64((e.time / 60).rounded(.down))
            if p.minuteEpoch != minute { p.minuteEpoch = minute; p.minuteNewNames = 0 }
            p.minuteNewNames += 1
            p.samples.append(e.name)

            // New labels carry the new information; a label seen before in the window (a sequence
            // number, `init`, a fixed prefix) is free, as it would be to a compressor.
            var fresh = 0   // the fresh labels are moved to the front of labelScratch
            for i in 0..<below {
                let label = UnsafeBufferPointer(rebasing: w[labelScratch[i]])
                let h = StableHash.hash(UnsafeRawBufferPointer(label), seed: 2)
                guard p.seen.noteIfNew(h, at: e.time, window: config.windowSeconds) else { continue }
                labelScratch[fresh] = labelScratch[i]; fresh += 1
                p.characters.add(label)
            }
            if fresh > 0 {
                let h = p.characters.windowEntropy()
                for r in labelScratch[..<fresh] {
                    bucket.infoBits += Double(r.count) * min(LabelShape.alphabetCeilingBits(w[r]), max(h, 1))
                }
            }
            return true
        }
    }

    /// The client's state, counted and made most recently seen; unretained, as `RecentStates.touch`.
    private func touchClient(_ e: QueryEvent) -> Unmanaged<ClientState> {
        let c = clients.touch(e.client) ?? .passUnretained(clients.insert(e.client) { _ in ClientState(e.client, firstSeen: e.time) })
        c._withUnsafeGuaranteedRef { countQuery(e, of: $0) }
        return c
    }

    private func countQuery(_ e: QueryEvent, of c: ClientState) {
        let minute = Int64((e.time / 60).rounded(.down))
        if minute > c.minuteEpoch {
            if c.minuteEpoch != .min {
                // close the finished minute, then decay over the idle minutes after it
                c.baseline = c.baseline * baselineDecay + (1 - baselineDecay) * Double(c.minuteCount)
                let idle = minute - c.minuteEpoch - 1
                if idle > 0 { c.baseline *= LabelShape.pow(baselineDecay, Double(min(idle, 100_000))) }
            }
            c.minuteEpoch = minute; c.minuteCount = 0
        }
        c.minuteCount += 1
        c.lastSeen = max(c.lastSeen, e.time)
    }

    private func isBypass(_ name: DNSName) -> Bool {
        for b in bypassNames where name.isSubdomain(of: b) { return true }
        return false
    }

    // MARK: evaluation

    /// Queries of a pair in alert per full evaluation, and the longest time between two (see the
    /// type's documentation).
    static let evaluationStride = 8
    static let evaluationMaxLagSeconds = 1.0

    /// Counts `e` in the episodes the pair's last evaluation fed, as that evaluation would have
    /// refreshed them, when the pair is in alert, was evaluated fewer than `evaluationStride` queries
    /// and `evaluationMaxLagSeconds` ago, and each of those episodes is still open; false when `e`
    /// needs a full evaluation.
    private func countInOpenEpisodes(_ p: PairState, event e: QueryEvent) -> Bool {
        guard p.crossedSlots != 0, p.sinceEvaluation + 1 < Self.evaluationStride,
              e.time - p.evaluatedAt < Self.evaluationMaxLagSeconds else { return false }
        for slot in p.episodes.indices where p.crossedSlots & 1 << slot != 0 {
            guard let ep = p.episodes[slot], ep.live, e.time < ep.quarantinedSince,
                  e.time - ep.alert.lastTime <= config.episodeGapSeconds else { return false }
        }
        for slot in p.episodes.indices where p.crossedSlots & 1 << slot != 0 {
            let ep = p.episodes[slot]!
            ep.alert.lastTime = max(ep.alert.lastTime, e.time)
            ep.alert.observations += 1
        }
        p.sinceEvaluation += 1
        return true
    }

    private func evaluate(_ p: PairState, domain: DNSName, event e: QueryEvent, client: ClientState) -> [DetectorAlert] {
        p.sinceEvaluation = 0
        p.crossedSlots = 0
        p.evaluatedAt = e.time
        let totals = windowTotals(of: p, at: e.time)
        let gaps = gapStatistics(of: p, always: false)
        let newNames = newNamesLastMinute(of: p, at: e.time)
        let regular = isRegular(variation: gaps.variation, mean: gaps.mean)
        let limits = p.limits
        let rateThreshold = max(Double(limits.rateSpikeMinNames), config.rateSpikeFactor * client.baseline)
        // Most queries cross no threshold at all: leave before building the features and evidence.
        guard totals.infoBits / 8 >= min(config.tunnelBudgetBytes, limits.volumeBudgetBytes) || regular
                || Double(newNames) >= rateThreshold else { return [] }
        let f = features(of: p, totals: totals, gaps: gaps, newNames: newNames, entropy: p.characters.windowEntropy())
        let evidence = Evidence.pair(f, rateThreshold: rateThreshold, volumeBudget: limits.volumeBudgetBytes)
        var out: [DetectorAlert] = []
        func consider(_ kind: DetectorAlert.Kind, _ crossed: Bool) {
            guard crossed else { return }
            let slot = PairState.episodeSlot(kind)
            p.crossedSlots |= 1 << slot
            if let a = fire(kind, client: e.client, domain: domain, time: e.time, evidence: evidence, samples: p.samples,
                            held: &p.episodes[slot]) {
                out.append(a)
            }
        }
        var signals = 0
        forEachSignal(of: f) { _ in signals += 1 }
        consider(.tunnel, f.informationBytes >= config.tunnelBudgetBytes && signals >= config.tunnelMinSignals)
        consider(.volume, f.informationBytes >= limits.volumeBudgetBytes)
        consider(.beacon, regular && distinctShare(f) >= config.beaconMinDistinctShare)
        consider(.rateSpike, Double(f.newNamesLastMinute) >= rateThreshold)
        return out
    }

    private func isRegular(_ f: PairFeatures) -> Bool { isRegular(variation: f.timingVariation, mean: f.meanIntervalSeconds) }

    private func isRegular(variation: Double?, mean: Double?) -> Bool {
        variation.map { $0 <= config.beaconMaxVariation } ?? false && (mean ?? 0) >= config.beaconMinPeriodSeconds
    }

    private func distinctShare(_ f: PairFeatures) -> Double { f.queries > 0 ? Double(f.distinctNames) / Double(f.queries) : 0 }

    /// The shape signals a tunnel alert needs besides information volume. Each counts once: by the
    /// window's value, or else by the recent one (named `recent…`), so that benign names earlier in
    /// the window cannot hide a tunnel that follows them.
    @inline(__always)
    private func forEachSignal(of f: PairFeatures, _ body: (DetectorAlert.Feature) -> Void) {
        typealias F = DetectorAlert.Feature
        // Names as literals: this runs on every query of a pair past its information budget.
        @inline(__always)
        func signal(_ name: String, _ value: Double, _ recentName: String, _ recent: Double, threshold: Double) {
            if value >= threshold {
                body(F(name: name, value: value, threshold: threshold))
            } else if recent >= threshold {
                body(F(name: recentName, value: recent, threshold: threshold))
            }
        }
        signal("charEntropyBits", f.entropySampleChars >= config.entropyMinChars ? f.entropyBits : 0,
               "recentCharEntropyBits", f.recentEntropySampleChars >= config.entropyMinChars ? f.recentEntropyBits : 0,
               threshold: config.encodedEntropyBits)
        if f.distinctNames >= 3 {
            signal("meanSubdomainLength", f.meanSubdomainLength, "recentMeanSubdomainLength", f.recentMeanSubdomainLength,
                   threshold: config.longSubdomainMean)
        }
        if f.queries >= config.minQueriesForRatios {
            signal("tunnelTypeShare", f.tunnelTypeShare, "recentTunnelTypeShare", f.recentTunnelTypeShare, threshold: config.tunnelTypeShare)
            signal("nxDomainRatio", f.nxDomainRatio, "recentNXDomainRatio", f.recentNXDomainRatio, threshold: config.nxDomainRatio)
        }
        if isRegular(f) {
            body(F(name: "timingVariation", value: f.timingVariation!, threshold: config.beaconMaxVariation))
        }
    }

    /// The features an alert of `kind` shows for `evidence`: built when an episode opens or is read,
    /// not on every refresh.
    private func featureList(_ kind: DetectorAlert.Kind, _ evidence: Evidence) -> [DetectorAlert.Feature] {
        typealias F = DetectorAlert.Feature
        let f: PairFeatures, rateThreshold: Double, volumeBudget: Double
        switch evidence {
        case .bypass: return [F(name: "encryptedDNSName", value: 1, threshold: 1)]
        case .budget(let n, let limit): return [F(name: "distinctNames", value: n, threshold: limit)]
        case .spread(let n, let limit): return [F(name: "distinctRegisteredDomains", value: n, threshold: limit)]
        case .pair(let pf, let rt, let vb): (f, rateThreshold, volumeBudget) = (pf, rt, vb)
        }
        switch kind {
        case .tunnel:
            var l = [F(name: "informationBytes", value: f.informationBytes, threshold: config.tunnelBudgetBytes)]
            forEachSignal(of: f) { l.append($0) }
            return l
        case .volume:
            return [F(name: "informationBytes", value: f.informationBytes, threshold: volumeBudget)]
        case .beacon:
            return [F(name: "timingVariation", value: f.timingVariation ?? 0, threshold: config.beaconMaxVariation),
                    F(name: "meanIntervalSeconds", value: f.meanIntervalSeconds ?? 0, threshold: config.beaconMinPeriodSeconds),
                    F(name: "distinctNameShare", value: distinctShare(f), threshold: config.beaconMinDistinctShare)]
        case .rateSpike:
            return [F(name: "newNamesLastMinute", value: Double(f.newNamesLastMinute), threshold: rateThreshold)]
        case .wildcardBudget, .bypass, .domainSpread:
            return []
        }
    }

    private func updateBudget(client c: ClientState, key: String, event e: QueryEvent, domain: HashedName) -> DetectorAlert? {
        let client = e.client
        if key != lastBudgetKey.text { lastBudgetKey = (key, BudgetStateKey.hash(budgetKey: key)) }   // mostly one entry in a row
        let k = BudgetStateKey(clientID: c.id, keyHash: lastBudgetKey.hash)
        // Unretained, as `touchClient`'s: over its budget a client's every query comes here.
        let state = budgets.touch(k) ?? .passUnretained(budgets.insert(k) { _ in
            BudgetState(client: client, domainHash: domain.hash, distinctNames: limits(forDomainHash: domain.hash).wildcardDistinctNames)
        })
        return state._withUnsafeGuaranteedRef { s in
            s.lastSeen = max(s.lastSeen, e.time)
            if e.time >= s.quarantinedSince { s.restartCounts() }   // its quarantine has ended
            let estimate = s.names.insert(hash: StableHash.hash(e.name.wire, seed: 3), at: e.time, windowSeconds: config.windowSeconds).estimate
            guard estimate >= s.distinctNamesLimit else { return nil }
            let samples = s.samples   // read once: each read of the property was a retain and a release
            samples.append(e.name)
            return fire(.wildcardBudget, client: client, domain: domain.name, time: e.time,
                        evidence: .budget(distinctNames: estimate.rounded(), limit: s.distinctNamesLimit), samples: samples, budgetKey: key,
                        held: &s.episode)
        }
    }

    /// Opens an episode and returns its alert, or refreshes the open one and returns nil.
    ///
    /// - Parameters:
    ///   - held: the episode the caller's state last saw for this kind. A flooded pair refreshes its
    ///     episodes on every query; holding them saves hashing the episode key each time.
    private func fire(_ kind: DetectorAlert.Kind, client: String, domain: DNSName, time: Double,
                      evidence: Evidence, samples: SampleRing, budgetKey: String? = nil, held: inout Episode?) -> DetectorAlert? {
        func refresh(_ ep: Episode) {
            // Sample names become strings only when someone reads the snapshot.
            ep.alert.lastTime = max(ep.alert.lastTime, time)
            ep.evidence = evidence
            ep.alert.observations += 1
            if !samples.isEmpty && ep.samples !== samples { ep.samples = samples }
        }
        if let ep = held, ep.live, time < ep.quarantinedSince, time - ep.alert.lastTime <= config.episodeGapSeconds { refresh(ep); return nil }
        let key = EpisodeKey(client: client, domain: budgetKey == nil ? domain : .root, kind: kind, budgetKey: budgetKey)
        if let ep = episodes[key], time < ep.quarantinedSince, time - ep.alert.lastTime <= config.episodeGapSeconds {
            refresh(ep); held = ep; return nil
        }
        let alert = DetectorAlert(client: client, registeredDomain: domain.description, kind: kind, features: featureList(kind, evidence),
                                  sampleNames: samples.names.map(\.description), firstTime: time, lastTime: time,
                                  budgetKey: budgetKey)
        let ep = Episode(alert: alert, samples: samples, evidence: evidence)
        episodes.updateValue(ep, forKey: key)?.live = false
        held = ep
        if episodes.count > config.maxEpisodes {
            // Episodes are few and rarely over the cap: drop the eighth that ended longest ago,
            // ties broken by content so the choice does not depend on dictionary order.
            let victims = episodes.sorted {
                ($0.value.alert.lastTime, $0.value.alert.client, $0.value.alert.registeredDomain, $0.value.alert.kind.rawValue)
                    < ($1.value.alert.lastTime, $1.value.alert.client, $1.value.alert.registeredDomain, $1.value.alert.kind.rawValue)
            }.prefix(max(1, episodes.count / 8))
            for v in victims where v.key != key { episodes.removeValue(forKey: v.key)?.live = false }
        }
        return alert
    }

    @inline(__always)
    private func epoch(_ t: Double) -> Int64 { Int64((t / config.bucketSeconds).rounded(.down)) }
}

@available(*, unavailable)
extension TunnelDetector: Sendable {}

// MARK: - state types

/// A (client, registered domain) pair, by a keyed 64-bit hash of both (`HashedKey`): the pair table
/// then hashes and compares one integer, where a key of a string and a name was hashed byte by byte,
/// compared byte by byte and retained and released several times per query.
private struct PairKey: HashedKey {
    let id: UInt64

    /// The client's hash (`ClientState.id`) and the domain's (`HashedName.hash`), keyed hashes both,
    /// mixed together: two integers, where hashing the client's text on every change of domain (on
    /// a flood of names, every query) cost a string copy and 60 instructions.
    init(clientID: UInt64, domainHash: UInt64) { id = Self.combine(clientID, domainHash) }
}

/// A (client, allow-list entry) budget, by a keyed hash of both, as `PairKey`. A key of the two
/// strings was compared with the table's remembered key through optionals, which copied and
/// destroyed both strings on every query a wildcard entry admitted: about 100 instructions.
private struct BudgetStateKey: HashedKey {
    let id: UInt64

    /// - Parameter keyHash: `hash(budgetKey:)` of the entry's key.
    init(clientID: UInt64, keyHash: UInt64) { id = Self.combine(clientID, keyHash) }

    static func hash(budgetKey: String) -> UInt64 {
        var k = budgetKey
        return k.withUTF8 { TableHash.hash(UnsafeRawBufferPointer($0), seed: 0x6275_6467) }
    }
}

/// A table key that is one keyed 64-bit hash already: two keys share a state only if their hashes
/// collide (about one chance in 2^43 with 2,048 keys held), and the hash is keyed by the per-process
/// secret (`TableHash`), so a collision cannot be planned from outside.
private protocol HashedKey: Hashable {
    var id: UInt64 { get }
}

extension HashedKey {
    /// One 64-bit key from two keyed hashes. Those are secret and evenly spread already, so a
    /// multiply and two xor-shifts mix them enough (hashing the 16 octets again cost 45 instructions
    /// a query); for one `a` the result is a bijection of `b` and the other way round, so two keys
    /// that share a side never collide.
    @inline(__always)
    static func combine(_ a: UInt64, _ b: UInt64) -> UInt64 {
        var m = (a &* 0x9E37_79B9_7F4A_7C15) ^ b
        m ^= m >> 32
        m &*= 0xD6E8_FEB8_6659_FD93
        return m ^ (m >> 32)
    }

    // Already a keyed hash: the table's seed is folded in with one multiply, no second pass.
    func _rawHashValue(seed: Int) -> Int {
        Int(truncatingIfNeeded: (id ^ UInt64(bitPattern: Int64(seed))) &* 0x9E37_79B9_7F4A_7C15)
    }
}

/// One alert and its refreshes; a class so that pairs and budgets can hold the episodes they feed.
private final class Episode {
    var alert: DetectorAlert
    /// Shared with the pair or budget that feeds the episode, so a refresh copies nothing.
    var samples: SampleRing
    /// The latest evidence; `alert.features` is rebuilt from it when the episode is read.
    var evidence: Evidence
    /// False once dropped from the detector's table (ended, or trimmed at the cap): holders then look it up again.
    var live = true
    /// When the quarantine it led to took effect (`TunnelDetector.quarantineStarted`); infinite when
    /// none did. A firing from then on comes after the quarantine ended, and opens a new episode, and
    /// a new alert, instead of refreshing this one.
    var quarantinedSince = Double.infinity
    init(alert: DetectorAlert, samples: SampleRing, evidence: Evidence) { self.alert = alert; self.samples = samples; self.evidence = evidence }
}

/// What an alert's features are computed from, kept as plain values so that refreshing an open
/// episode (every query of a flooded pair) builds no arrays and copies without the runtime: with an
/// array in one case, each refresh copied and destroyed the enum through outlined witnesses.
private enum Evidence {
    case pair(TunnelDetector.PairFeatures, rateThreshold: Double, volumeBudget: Double)   // tunnel, volume, beacon, rate-spike
    case budget(distinctNames: Double, limit: Double)                                     // wildcard-budget
    case spread(distinctDomains: Double, limit: Double)                                   // domain-spread
    case bypass                                                     // an encrypted-DNS resolver's name
}

private struct EpisodeKey: Hashable {
    let client: String
    let domain: DNSName
    let kind: DetectorAlert.Kind
    let budgetKey: String?
}

/// Counters of one bucket of one pair's window.
private struct Bucket {
    var epoch: Int64
    /// The `PairState.generation` that wrote it: a recycled pair's buckets from before are not its own.
    var generation: UInt32
    var queries: Int32 = 0
    var newNames: Int32 = 0
    var payloadChars: Int32 = 0
    var typeQueries: Int32 = 0
    var nx: Int32 = 0
    var subLenSum: Int32 = 0
    var longestSub: Int32 = 0
    var infoBits: Double = 0
    init(epoch: Int64, generation: UInt32) { self.epoch = epoch; self.generation = generation }
}

/// The last few gaps between a pair's queries, in a ring: dropping the oldest gap of an array
/// shifted all the others, on every query of every pair. The statistics read the gaps oldest first,
/// as the array did, so they round exactly as before.
private struct RecentGaps {
    private var values: [Double] = []
    private var oldest = 0
    let capacity: Int

    init(capacity: Int) { self.capacity = max(1, capacity) }

    var count: Int { values.count }

    mutating func append(seconds: Double) {
        let v = max(0, seconds)
        if values.count < capacity { values.append(v); return }
        values[oldest] = v
        oldest = oldest + 1 == capacity ? 0 : oldest + 1
    }

    /// Mean gap in seconds; nil with no gaps.
    var mean: Double? { values.isEmpty ? nil : reduce(0, +) / Double(values.count) }

    /// Coefficient of variation of the gaps whose mean is `mean`: population standard deviation /
    /// mean, infinite when the mean is 0.
    func variation(mean: Double) -> Double {
        let variance = reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count)
        return mean > 0 ? variance.squareRoot() / mean : .infinity
    }

    @inline(__always)
    private func reduce(_ initial: Double, _ next: (Double, Double) -> Double) -> Double {
        var r = initial
        for k in oldest..<values.count { r = next(r, values[k]) }
        for k in 0..<oldest { r = next(r, values[k]) }
        return r
    }

    mutating func removeAll() { values.removeAll(keepingCapacity: true); oldest = 0 }
}

/// Sums of buckets; `longestSub` is the largest.
private struct WindowTotals {
    var queries = 0, newNames = 0, payloadChars = 0, typeQueries = 0, nx = 0, subLenSum = 0, longestSub = 0
    var infoBits = 0.0

    @inline(__always) mutating func add(_ b: Bucket) {
        queries += Int(b.queries); newNames += Int(b.newNames); payloadChars += Int(b.payloadChars)
        typeQueries += Int(b.typeQueries); nx += Int(b.nx); subLenSum += Int(b.subLenSum)
        longestSub = max(longestSub, Int(b.longestSub)); infoBits += b.infoBits
    }
}

private final class PairState: RecencyTracked {
    /// Place in the detector's recency list for this table (`RecentStates`).
    var recencyHandle = -1
    /// The client whose pair this is; its `pairCount` counts this state.
    var owner: ClientState?
    var buckets: [Bucket]
    /// Bumped when the state is recycled for another pair; only buckets of this generation count.
    var generation: UInt32 = 0
    var newestEpoch: Int64 = .min
    /// Totals of the window's buckets older than `newestEpoch`'s, kept from when the window last moved.
    var older = WindowTotals()
    var firstSeen: Double
    var lastTime: Double
    /// Hash of a name or label → last time seen; capped at `maxLabelsPerPair`.
    var seen: RecentHashes
    /// Characters of the pair's fresh labels, over the window and over the latest ones.
    var characters = LabelCharacters()
    /// Subdomain length and type mix of the latest names and queries, beside the window's.
    var recent = RecentShape()
    /// The last `beaconIntervals` gaps between the pair's queries.
    var intervals: RecentGaps
    var lastQueryTime: Double?
    var minuteEpoch: Int64 = .min
    var minuteNewNames = 0
    var samples = SampleRing()
    /// The alert episodes this pair last fed, by `episodeSlot`.
    var episodes: [Episode?] = [nil, nil, nil, nil]
    /// The `episodeSlot`s (as bits) whose thresholds the last full evaluation found crossed, the
    /// queries since it and its time (`TunnelDetector.evaluationStride`).
    var crossedSlots: UInt8 = 0
    var sinceEvaluation = 0
    var evaluatedAt = -Double.infinity

    static func episodeSlot(_ kind: DetectorAlert.Kind) -> Int {
        switch kind { case .tunnel: 0; case .volume: 1; case .beacon: 2; default: 3 }
    }

    /// Its registered domain's (`DetectorConfig.domainLimits`), set whenever the state starts a pair.
    var limits: DetectorConfig.VolumeLimits

    init(bucketCount: Int, gapCount: Int, firstSeen: Double, labels: LabelMemory, limits: DetectorConfig.VolumeLimits) {
        self.limits = limits
        seen = RecentHashes(memory: labels)
        buckets = [Bucket](repeating: Bucket(epoch: .min, generation: 0), count: bucketCount)
        intervals = RecentGaps(capacity: gapCount)
        self.firstSeen = firstSeen
        self.lastTime = firstSeen
    }

    deinit { seen.releaseSharedSlots() }

    /// Empties the state for a new pair, keeping the arrays' storage.
    func reset(firstSeen t: Double) {
        restartCounts()
        firstSeen = t; lastTime = t
        seen.removeAll()
        characters.removeAll()
        recent.removeAll()
    }

    /// When the quarantine of this pair took effect, while it has not been seen to end; infinite otherwise.
    private(set) var quarantinedSince = Double.infinity

    func quarantine(since t: Double) { quarantinedSince = min(quarantinedSince, t) }
    func shiftQuarantine(by seconds: Double) { if quarantinedSince.isFinite { quarantinedSince += seconds } }

    /// Forgets what the window counted (buckets, the minute's new names, gaps, samples, the episodes
    /// it feeds) and any quarantine, and keeps the names seen and the alphabet of its labels.
    func restartCounts() {
        quarantinedSince = .infinity
        // The buckets are disowned, not rewritten: they are most of the state, and under a flood of new
        // registered domains the pair recycled is the coldest, so rewriting them missed the cache on
        // every line (valgrind's cache model: 60 % of the detector's write misses).
        generation &+= 1
        if generation == 0 { buckets.withUnsafeMutableBufferPointer { $0.update(repeating: Bucket(epoch: .min, generation: 0)) } }
        newestEpoch = .min
        older = WindowTotals()
        intervals.removeAll()
        lastQueryTime = nil
        minuteEpoch = .min; minuteNewNames = 0
        // An episode may still show these names; it keeps them, and the pair gets a ring of its own.
        if isKnownUniquelyReferenced(&samples) { samples.removeAll() } else { samples = SampleRing() }
        // Written only where set: a pair that never fed an episode still holds the literal's static
        // storage, and the first write to it copies the array.
        for i in episodes.indices where episodes[i] != nil { episodes[i] = nil }
        crossedSlots = 0; sinceEvaluation = 0
    }
}

private final class ClientState: RecencyTracked {
    /// Place in the detector's recency list for this table (`RecentStates`).
    var recencyHandle = -1
    let firstSeen: Double
    var lastSeen: Double
    var minuteEpoch: Int64 = .min
    var minuteCount = 0
    /// Queries per minute, exponentially weighted.
    var baseline = 0.0
    /// Distinct registered domains in the window (`domainSpread`), 512 bytes.
    var domains = SlidingDistinctCount(precision: 8)
    /// Made at the client's first `domainSpread`, as few clients have one.
    var spreadSamples: SampleRing?
    var spreadEpisode: Episode?
    var spreadCheckedAt = -Double.infinity
    /// Pairs of this client in the detector's table.
    var pairCount = 0
    /// `domains`' count as of the client's last new registered domain.
    var distinctDomains = 0
    /// The client's address, hashed: who asked a held first query (`FirstQueries`).
    let id: UInt64

    init(_ client: String, firstSeen: Double) {
        id = Self.id(of: client)
        self.firstSeen = firstSeen; self.lastSeen = firstSeen
    }

    static func id(of client: String) -> UInt64 {
        var c = client
        return c.withUTF8 { TableHash.hash(UnsafeRawBufferPointer($0), seed: 0x636C_6965_6E74) }
    }
}

private final class BudgetState: RecencyTracked {
    /// Place in the detector's recency list for this table (`RecentStates`).
    var recencyHandle = -1
    let client: String
    /// Registered domain (`HashedName.hash`) of the query that made the state: an allow-list
    /// wildcard lies under one registered domain, which a quarantine names.
    let domainHash: UInt64
    /// `wildcardDistinctNames` for that registered domain (`DetectorConfig.domainLimits`).
    let distinctNamesLimit: Double
    init(client: String, domainHash: UInt64, distinctNames: Double) {
        self.client = client; self.domainHash = domainHash; self.distinctNamesLimit = distinctNames
    }
    var names = SlidingDistinctCount(precision: 9)
    var lastSeen = -Double.infinity
    var samples = SampleRing()
    var episode: Episode?

    /// As `PairState.quarantinedSince`.
    private(set) var quarantinedSince = Double.infinity

    func quarantine(since t: Double) { quarantinedSince = min(quarantinedSince, t) }
    func shiftQuarantine(by seconds: Double) { if quarantinedSince.isFinite { quarantinedSince += seconds } }

    /// Forgets the names counted and any quarantine, as `PairState.restartCounts` does.
    func restartCounts() {
        quarantinedSince = .infinity
        names.reset()
        samples = SampleRing()
        episode = nil
    }
}

/// The last few new names of a pair or budget, oldest first when read. A class: the alert episodes a
/// pair feeds share its ring instead of copying five names on every refresh of a flooded pair.
final class SampleRing {
    static let capacity = 5
    private var slots: [DNSName] = []
    private var next = 0      // oldest slot once full

    init() {}
    init(_ name: DNSName) { slots = [name] }

    var isEmpty: Bool { slots.isEmpty }

    func append(_ name: DNSName) {
        if slots.count < Self.capacity { slots.append(name); return }
        slots[next] = name
        next = (next + 1) % Self.capacity
    }

    /// Oldest first.
    var names: [DNSName] { Array(slots[next...] + slots[..<next]) }

    func removeAll() { slots.removeAll(keepingCapacity: true); next = 0 }
}
