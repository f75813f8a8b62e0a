import Synchronization

// The query path, one stage after another, written out line by line so the hot path inlines:
//
//   decode + sanity → policy decision → sinkhole | local data | cache | forward → fit to transport
//
// Rule (as in CoreDNS's plugin.cfg): a stage may rely on what earlier stages decided, never on later
// ones. Only a cache miss leaves the core: `process` returns `.forward` and the server does the I/O,
// then hands the answer back to `complete` or reports failure to `upstreamFailed`.

/// What happened to one query: the log line, the counters and the detector read this.
public struct QueryRecord: Sendable {
    public enum Action: String, Sendable, Codable, CaseIterable {
        case forwarded, cached, sinkholed, quarantined, local, rejected, dropped, stale, servfail

        /// Position in `allCases`, for counters kept in arrays.
        public var ordinal: Int {
            switch self {
            case .forwarded: return 0
            case .cached: return 1
            case .sinkholed: return 2
            case .quarantined: return 3
            case .local: return 4
            case .rejected: return 5
            case .dropped: return 6
            case .stale: return 7
            case .servfail: return 8
            }
        }
    }
    public let time: Double
    public let client: String
    public let overTCP: Bool
    public let name: DNSName?
    /// `name`'s `TableHash` as the query path computed it (`QueryView.nameHash`), so the telemetry
    /// need not hash the name again; 0 when not known (the telemetry then hashes it).
    public var nameHash: UInt64 = 0
    public let type: RecordType?
    public var action: Action
    public var rcode: ResponseCode?
    /// The entry that decided, as `file:line`, or nil.
    public let rule: SourceLocation?
    public let entryIndex: Int?
    /// Why the query was denied (or would have been, in audit mode).
    public var denial: DenyReason?
    /// Set in audit mode for queries forwarded although enforce mode would have denied them.
    public var audited: Bool
    /// Decoder's reason for rejected or dropped packets.
    public var problem: String?
    /// The profile whose policy decided (`default` when none selected the client).
    public var profile: String = PolicySet.defaultProfileName
    /// The exception that let a denied query through, by ID.
    public var exception: String?
    /// Whether `denial` is set (by pattern, see `PolicyVerdict.isDenied`).
    public var isDenied: Bool { if case .some = denial { return true }; return false }
}

extension QueryRecord {
    /// The record of a decoded question, decided by `verdict` under `box`'s policy.
    @inline(__always)
    init(_ q: borrowing QueryView, _ verdict: borrowing PolicyVerdict, box: PolicyBox, client: String, overTCP: Bool, now: Double, action: Action,
         rcode: ResponseCode?, exception: String?) {
        self.init(time: now, client: client, overTCP: overTCP, name: q.name, nameHash: q.nameHash, type: q.type, action: action,
                  rcode: rcode, rule: verdict.entry?.source, entryIndex: verdict.entryIndex,
                  denial: verdict.denial, audited: verdict.audited, problem: nil, profile: box.name, exception: exception)
    }
}

/// A cache miss the server must resolve upstream.
///
/// A class: a miss is passed from the pipeline to the listener, into the exchange's waiters and back
/// to `complete`, and as a struct each of those copies retained and released every array and string
/// of the question, the key and the record (about 1 % of the CPU with every query a miss).
public final class ForwardJob: Sendable {
    public let query: QueryView
    public let key: CacheKey
    public let record: QueryRecord
    /// Who asked, when the answer's CNAME targets must be allowed too; nil otherwise.
    let chain: ChainCheck?
    /// When the exception that allowed the query expires: no TTL in the reply outlives it.
    let exceptionExpiry: Double?
    /// Set when `query` is the last target of a local-data CNAME chain, not what the client asked.
    let chase: LocalChase?
    init(query: QueryView, key: CacheKey, record: QueryRecord, chain: ChainCheck?, exceptionExpiry: Double?, chase: LocalChase? = nil) {
        self.query = query; self.key = key; self.record = record; self.chain = chain; self.exceptionExpiry = exceptionExpiry
        self.chase = chase
    }

    /// The question the client asked: `query`, or the one whose local chain led to it.
    var clientQuery: QueryView { chase?.client ?? query }
}

/// A local-data CNAME chain whose last target the client's policy forwards: the client's question,
/// and the chain its target's answer goes behind (`ChainSplice`).
struct LocalChase: Sendable {
    let client: QueryView
    let chain: [LocalRecord]
    let ttl: UInt32

    /// The chain alone, as answered when the target's answer cannot be joined to it.
    var alone: [UInt8] { ResponseBuilder.synthesized(client, rcode: .noError, answers: chain, ttl: ttl, ede: nil) }
}

/// The policy and client an answer's CNAME targets are checked against (`policy.cname_targets:
/// allowed`): the question's, so a target is allowed exactly when the client could ask for it.
struct ChainCheck: Sendable {
    let box: PolicyBox
    let clientAddress: [UInt8]?
}

/// The outcome of `QueryPipeline.process`.
public enum PipelineOutcome: Sendable {
    case reply([UInt8], QueryRecord)
    case drop(QueryRecord)
    case forward(ForwardJob)
}

/// The policy in force, swapped whole on reload so a query sees one policy from start to end.
/// Hit counters are per profile (index 0 is the default policy) and per entry. A reload carries each
/// entry's hits, last use and load time over to the entry of the same profile and pattern: starting
/// them afresh made every entry read "never used" after a nightly `SIGHUP` (QA pass 10, F2).
public final class PolicySnapshot: Sendable {
    public let policies: PolicySet
    public let generation: Int
    /// The same policies, by hit-counter row (0: the default policy, then the profiles), each behind a
    /// reference: the query path borrows one instead of copying the struct (a retain and release per
    /// field, per query).
    let byRow: [PolicyBox]
    public var entryHits: [AtomicCounters] { byRow.map(\.hits) }
    public var entryLastUse: [AtomicCounters] { byRow.map(\.lastUse) }   // epoch seconds
    /// When each entry was first loaded (epoch seconds), by row; 0: with the server's first policy.
    public var entryLoadedAt: [[Int]] { byRow.map(\.loadedAt) }
    /// False when only the default policy exists: the query path then skips profile selection.
    let hasProfiles: Bool

    /// - Parameters:
    ///   - previous: the snapshot this one replaces, whose entries' counters carry over.
    ///   - now: when this one is loaded (epoch seconds): the load time of entries new in it.
    public init(policies: PolicySet, generation: Int, replacing previous: PolicySnapshot? = nil, now: Double = 0) {
        self.policies = policies; self.generation = generation
        // The previous entries' counters by profile and pattern, in order: a pattern written twice
        // pairs up in turn.
        typealias Counts = (hits: Int, lastUse: Int, loadedAt: Int)
        var carried: [String: ArraySlice<Counts>] = [:]
        for box in previous?.byRow ?? [] {
            for (i, e) in box.policy.allowList.entries.enumerated() {
                carried[box.name + "\u{0}" + e.pattern, default: []].append((box.hits[i], box.lastUse[i], box.loadedAt[i]))
            }
        }
        let rows = [(PolicySet.defaultProfileName, policies.base)] + policies.profiles.map { ($0.name, $0.policy) }
        self.byRow = rows.map { name, policy in
            let old = policy.allowList.entries.map { e -> Counts? in
                let key = name + "\u{0}" + e.pattern
                return carried[key]?.popFirst()
            }
            let box = PolicyBox(policy, name: name, hits: AtomicCounters(count: old.count), lastUse: AtomicCounters(count: old.count),
                                loadedAt: old.map { $0?.loadedAt ?? Int(now) })
            for (i, c) in old.enumerated() {
                if let c { box.hits.store(i, c.hits); box.lastUse.store(i, c.lastUse) }
            }
            return box
        }
        self.hasProfiles = !policies.profiles.isEmpty
    }
    /// The default policy.
    public var policy: Policy { policies.base }
}

final class PolicyBox: Sendable {
    let policy: Policy
    /// The profile's name, and its row of `entryHits` and `entryLastUse`.
    let name: String
    let hits: AtomicCounters
    let lastUse: AtomicCounters
    /// `PolicySnapshot.entryLoadedAt`'s row.
    let loadedAt: [Int]
    /// `policy.cnameTargets == .allowed`, kept apart: read through `policy` it cost a retain and a
    /// release on every cache hit.
    let checksCNAMETargets: Bool
    init(_ policy: Policy, name: String, hits: AtomicCounters, lastUse: AtomicCounters, loadedAt: [Int]) {
        self.policy = policy; self.name = name; self.hits = hits; self.lastUse = lastUse; self.loadedAt = loadedAt
        self.checksCNAMETargets = policy.cnameTargets == .allowed
    }

    /// `PolicyDecision.decide` on the boxed policy, reading it in place: passing `box.policy` as an
    /// argument copied the struct (a retain and release per field) on every query.
    @inline(__always)
    func decide(name: DNSName, type: RecordType) -> PolicyVerdict { PolicyDecision.decide(policy, name: name, type: type) }
}

/// Stateless stages plus the shared cache and policy; safe to call from every event loop at once.
public final class QueryPipeline: Sendable {
    private let current: Mutex<PolicySnapshot>
    public let cache: AnswerCache
    /// TTL of answers served stale (RFC 8767 §4 recommends 30 s).
    public static let staleTTL: UInt32 = 30
    public let maxUDPPayload: UInt16
    public let counters = PipelineCounters()

    private let exceptionSet = Mutex(ExceptionSet())
    private let hasExceptions = AtomicCounter()   // skip the lock on the hot path when there are none
    public let exceptionHits = Mutex<[String: Int]>([:])
    private let quarantineSet = Mutex(QuarantineSet())
    private let hasQuarantines = AtomicCounter()
    private let failures = Mutex(RecentFailures())
    /// Whether `failures` holds any: a miss then takes no lock to learn that none failed.
    private let hasFailures = AtomicCounter()

    public convenience init(policy: Policy, cache: AnswerCache, maxUDPPayload: UInt16 = ResponseBuilder.defaultUDPPayload) {
        self.init(policies: PolicySet(base: policy), cache: cache, maxUDPPayload: maxUDPPayload)
    }

    public init(policies: PolicySet, cache: AnswerCache, maxUDPPayload: UInt16 = ResponseBuilder.defaultUDPPayload) {
        self.current = Mutex(PolicySnapshot(policies: policies, generation: 1))
        self.generation.store(1)
        self.cache = cache
        self.maxUDPPayload = maxUDPPayload
    }

    public var snapshot: PolicySnapshot { current.withLock { $0 } }
    /// The generation of `snapshot`, readable without the lock: a caller holding a snapshot of this
    /// generation (a `QueryScratch`) keeps using it instead of locking per query.
    private let generation = AtomicCounter()

    /// Installs a new policy atomically; queries already past the decision keep the old one. Each
    /// entry keeps the counters of the entry of the same profile and pattern it replaces (a hit
    /// counted in the old snapshot after this copy is lost); `now` is the load time of new entries.
    public func swapPolicy(_ p: PolicySet, now: Double) {
        current.withLock {
            $0 = PolicySnapshot(policies: p, generation: $0.generation + 1, replacing: $0, now: now)
            generation.store($0.generation)
        }
    }

    /// The policy in force, from the caller's scratch while the generation has not moved.
    /// Unretained: the scratch keeps it until the generation moves, which only its next query looks at.
    @inline(__always)
    private func currentSnapshot(of scratch: QueryScratch) -> Unmanaged<PolicySnapshot> {
        if scratch.policy?.generation != generation.value { scratch.policy = snapshot }
        return .passUnretained(scratch.policy!)
    }

    /// Replaces the live exceptions (the server validates, persists and prunes them).
    public func setExceptions(_ e: ExceptionSet) {
        exceptionSet.withLock { $0 = e }
        hasExceptions.store(e.isEmpty ? 0 : 1)
    }
    public var exceptions: ExceptionSet { exceptionSet.withLock { $0 } }

    /// Changes the quarantines under their lock; the closure's result is returned.
    public func updateQuarantines<T>(_ body: (inout QuarantineSet) -> T) -> T {
        quarantineSet.withLock { q in
            let out = body(&q)
            hasQuarantines.store(q.isEmpty ? 0 : 1)
            return out
        }
    }
    public var quarantines: QuarantineSet { quarantineSet.withLock { $0 } }

    /// - Parameters:
    ///   - client: the client's address as text, for logs.
    ///   - clientAddress: the same as octets, for profile and exception prefixes (nil when unknown).
    ///   - listener: the listener address the query arrived on, for profiles selected by listener.
    ///   - scratch: the calling thread's reusable name table and reply buffer; with it the sinkhole and
    ///     cache-hit paths allocate nothing for a name seen recently (`QueryScratch`).
    public func process(_ msg: [UInt8], client: String, clientAddress: [UInt8]? = nil, listener: String? = nil,
                        overTCP: Bool, now: Double, scratch: QueryScratch? = nil) -> PipelineOutcome {
        let q: QueryView
        do {
            if scratch != nil { q = try RequestSanity.view(msg, names: &scratch!.names) } else { q = try RequestSanity.view(msg) }
        } catch {
            switch error {
            case .drop(let why):
                counters.bump(.dropped)
                return .drop(record(now, client, overTCP, nil, .dropped, problem: why))
            case .reject(let r):
                counters.bump(.rejected)
                var rec = record(now, client, overTCP, nil, .rejected, problem: r.reason)
                rec.rcode = r.rcode
                return .reply(ResponseBuilder.error(r), rec)
            }
        }

        // The snapshot and the box are borrowed, not bound to locals: each binding was a retain and a
        // release per query. The scratch holds its snapshot until its next query, and a snapshot its boxes.
        if scratch == nil {
            let snap = snapshot
            return answer(q, snap: snap, client: client, clientAddress: clientAddress, listener: listener, overTCP: overTCP, now: now, scratch: nil)
        }
        return currentSnapshot(of: scratch!)._withUnsafeGuaranteedRef {
            answer(q, snap: $0, client: client, clientAddress: clientAddress, listener: listener, overTCP: overTCP, now: now, scratch: scratch)
        }
    }

    @inline(__always)
    private func answer(_ q: QueryView, snap: PolicySnapshot, client: String, clientAddress: [UInt8]?, listener: String?,
                        overTCP: Bool, now: Double, scratch: QueryScratch?) -> PipelineOutcome {
        let profileIndex = snap.hasProfiles ? snap.policies.select(clientAddress: clientAddress, listener: listener) : nil
        return Unmanaged.passUnretained(snap.byRow[profileIndex.map { $0 + 1 } ?? 0])._withUnsafeGuaranteedRef {
            answer(q, box: $0, client: client, clientAddress: clientAddress, overTCP: overTCP, now: now, scratch: scratch)
        }
    }

    /// Denied and allowed queries continue in functions of their own, not inlined here, and `q` is
    /// borrowed throughout: in one function with nested record builders, the compiler retained the
    /// question's name a dozen times at the top and released the unused copies on each path.
    /// Split, a denied query costs two atomic reference counts in the pipeline instead of eleven,
    /// a cached one five.
    private func answer(_ q: borrowing QueryView, box: PolicyBox, client: String, clientAddress: [UInt8]?,
                        overTCP: Bool, now: Double, scratch: QueryScratch?) -> PipelineOutcome {
        var verdict = box.decide(name: q.name, type: q.type)
        let exception = settleVerdict(&verdict, q.name, q.type, box, clientAddress: clientAddress, now: now)
        let (exceptionID, exceptionExpiry) = (exception?.id, exception?.expiresAt)
        // A quarantine (detector action) overrides allow-lists and exceptions for that client and domain.
        if !verdict.isDenied, hasQuarantines.value != 0,
           let qe = quarantineSet.withLock({ $0.match(client: client, name: q.name, now: now) }) {
            verdict = PolicyVerdict(action: .sinkhole(box.policy.sinkhole == .drop ? .nxdomain : box.policy.sinkhole), entry: verdict.entry,
                                    entryIndex: verdict.entryIndex, denial: .quarantined(id: qe.id, reason: qe.reason))
        }
        if case .sinkhole(let mode) = verdict.action {
            return sinkholed(q, mode: mode, verdict: verdict, box: box, client: client, overTCP: overTCP, now: now, scratch: scratch)
        }
        return allowed(q, verdict: verdict, exceptionID: exceptionID, exceptionExpiry: exceptionExpiry, box: box, client: client,
                       clientAddress: clientAddress, overTCP: overTCP, now: now, scratch: scratch)
    }

    /// The outcome of a query the policy lets through: local data, the cache, or a job for the upstream.
    ///
    /// Each outcome builds its record in one go and hands it over: a record kept in a variable and
    /// returned was copied, and each copy retained and released six fields.
    @inline(never)
    private func allowed(_ q: borrowing QueryView, verdict: PolicyVerdict, exceptionID: String?, exceptionExpiry: Double?, box: PolicyBox,
                         client: String, clientAddress: [UInt8]?, overTCP: Bool, now: Double, scratch: QueryScratch?) -> PipelineOutcome {
        guard case .forward = verdict.action else {
            return localData(q, verdict: verdict, exceptionID: exceptionID, box: box, client: client, clientAddress: clientAddress,
                             overTCP: overTCP, now: now, scratch: scratch)
        }
        // A CNAME query's own target is the client's next question, decided as any other; what
        // else its answer holds is checked (`UpstreamAnswer.namesToCheck`).
        let checksChain = box.checksCNAMETargets
        let cap = Self.ttlCap(until: exceptionExpiry, now: now)
        // Looked up without a `CacheKey`: only a miss needs one (its copy of the name is two atomic operations).
        guard let (reply, rcode, stale, toCheck) = cachedAnswer(q, hash: CacheKey.hash(of: q), matching: { $0.isKey(of: q) }, now: now,
                                                                scratch: scratch, checkingTargets: checksChain, ttlCap: cap) else {
            return forwarded(q, key: CacheKey(question: q), verdict: verdict, exceptionID: exceptionID, exceptionExpiry: exceptionExpiry,
                             box: box, client: client, clientAddress: clientAddress, overTCP: overTCP, now: now)
        }
        let action: QueryRecord.Action = stale ? .stale : .cached
        var rec = QueryRecord(q, verdict, box: box, client: client, overTCP: overTCP, now: now, action: action, rcode: rcode, exception: exceptionID)
        guard let toCheck else {     // no chain to check
            counters.bump(action)
            return .reply(fit(consume reply, q, overTCP), rec)
        }
        let question = copy q
        let checked = checkedReply(toCheck.answer.namesToCheck(asked: q.type), question, ChainCheck(box: box, clientAddress: clientAddress), &rec,
                                   ttlCap: cap, now: now, scratch: scratch) {
            renderCached(toCheck.answer, for: question, age: toCheck.age, stale: stale, ttlCap: $0, scratch: scratch)
        }
        return .reply(fit(checked, q, overTCP), rec)
    }

    /// The outcome of a query answered from local data (or the upstream's answer to its chain's target).
    @inline(never)
    private func localData(_ q: QueryView, verdict: PolicyVerdict, exceptionID: String?, box: PolicyBox,
                           client: String, clientAddress: [UInt8]?, overTCP: Bool, now: Double, scratch: QueryScratch?) -> PipelineOutcome {
        guard case .local(let records) = verdict.action else { preconditionFailure("only local data is answered here") }
        let answers = Self.localAnswers(records, of: q.name, type: q.type, box: box)
        if let chased = chase(answers, q, box: box, client: client, clientAddress: clientAddress, now: now,
                              record: QueryRecord(q, verdict, box: box, client: client, overTCP: overTCP, now: now, action: .forwarded,
                                                  rcode: nil, exception: exceptionID)) {
            return chased
        }
        counters.bump(.local)
        let ttl = box.policy.sinkholeTTL
        return .reply(fit(build(scratch) { ResponseBuilder.synthesized(into: &$0, q, rcode: .noError, answers: answers, ttl: ttl, ede: nil) },
                          q, overTCP),
                      QueryRecord(q, verdict, box: box, client: client, overTCP: overTCP, now: now, action: .local, rcode: .noError,
                                  exception: exceptionID))
    }

    /// A cache miss: the job for the upstream, or SERVFAIL when no upstream could answer it moments ago.
    @inline(never)
    private func forwarded(_ q: QueryView, key: CacheKey, verdict: PolicyVerdict, exceptionID: String?, exceptionExpiry: Double?,
                           box: PolicyBox, client: String, clientAddress: [UInt8]?, overTCP: Bool, now: Double) -> PipelineOutcome {
        let job = ForwardJob(query: q, key: key,
                             record: QueryRecord(q, verdict, box: box, client: client, overTCP: overTCP, now: now, action: .forwarded,
                                                 rcode: nil, exception: exceptionID),
                             chain: box.checksCNAMETargets ? ChainCheck(box: box, clientAddress: clientAddress) : nil, exceptionExpiry: exceptionExpiry)
        if hasFailures.value != 0, let failed = recentFailure(job, now: now) { return failed }
        return .forward(job)
    }

    /// The reply from the cache for a forwarded query, if the answer is there now. `process` asks first;
    /// a server that resolves misses on another thread asks again there, because an identical question
    /// may have been answered in between.
    /// - Parameter countsMiss: false for a second look, `process` having counted this query's miss
    ///   (QA pass 6 saw TCP misses counted twice).
    public func cachedReply(_ job: ForwardJob, now: Double, countsMiss: Bool = false) -> ([UInt8], QueryRecord)? {
        let cap = Self.ttlCap(until: job.exceptionExpiry, now: now)
        guard let (reply, rcode, stale, toCheck) = cachedAnswer(job.query, hash: job.key.hash, matching: { $0 == job.key }, now: now,
                                                                checkingTargets: job.chain != nil, ttlCap: cap,
                                                                countsMiss: countsMiss) else { return nil }
        var record = job.record
        (record.action, record.rcode) = (stale ? .stale : .cached, rcode)
        let checked = checkedReply(toCheck?.answer.namesToCheck(asked: job.query.type), job.query, job.chain, &record, ttlCap: cap, now: now, scratch: nil) { cap in
            guard let toCheck else { return reply }
            return renderCached(toCheck.answer, for: job.query, age: toCheck.age, stale: stale, ttlCap: cap, scratch: nil)
        }
        return (clientReply(checked, job), record)
    }

    /// What the client of `job` gets from `reply`, the reply to `job.query`: joined to the local
    /// chain that led to it, if any (the chain alone when it cannot be), and fitted to the client's size.
    @inline(__always)
    private func clientReply(_ reply: consuming [UInt8], _ job: ForwardJob) -> [UInt8] {
        guard let c = job.chase else { return fit(reply, job.query, job.record.overTCP) }
        return fit(ChainSplice.splice(reply, chain: c.chain, ttl: c.ttl, question: c.client.rawQuestion) ?? c.alone, c.client, job.record.overTCP)
    }

    /// When the local answer `answers` ends in a CNAME whose target the client's policy forwards (an
    /// allow-list entry in enforce terms: not an exception, not audit mode's pass, not under a
    /// quarantine of the client's), that target's answer joined behind it: from the cache, or a job
    /// that asks upstream for the target. Nil to answer the chain alone. Nothing reaches an upstream
    /// that the client could not have asked for itself.
    private func chase(_ answers: [LocalRecord], _ q: QueryView, box: PolicyBox, client: String, clientAddress: [UInt8]?, now: Double,
                       record: @autoclosure () -> QueryRecord) -> PipelineOutcome? {
        guard q.type != .cname, let last = answers.last, last.type == .cname, !answers.contains(where: { $0.type == q.type }),
              let target = try? DNSName(wire: last.rdata) else { return nil }
        let v = box.decide(name: target, type: q.type)
        guard case .forward = v.action, !v.audited, !v.isDenied else { return nil }
        if hasQuarantines.value != 0, quarantineSet.withLock({ $0.match(client: client, name: target, now: now) }) != nil { return nil }
        let question = target.wire + [UInt8(q.type.rawValue >> 8), UInt8(q.type.rawValue & 0xFF), 0, UInt8(DNSClass.in)]
        let hashed = HashedName(target)
        let asked = QueryView(header: q.header, name: target, nameHash: hashed.hash, type: q.type, qclass: DNSClass.in,
                              rawQuestion: question[...], edns: q.edns)
        let key = CacheKey(name: target, nameHash: hashed.hash, type: q.type, dnssecOK: q.edns?.dnssecOK ?? false,
                           checkingDisabled: q.header.checkingDisabled)
        let job = ForwardJob(query: asked, key: key, record: record(),
                             chain: box.checksCNAMETargets ? ChainCheck(box: box, clientAddress: clientAddress) : nil,
                             exceptionExpiry: nil, chase: LocalChase(client: q, chain: answers, ttl: box.policy.sinkholeTTL))
        if let (reply, rec) = cachedReply(job, now: now, countsMiss: true) { return .reply(reply, rec) }
        if hasFailures.value != 0, let failed = recentFailure(job, now: now) { return failed }
        return .forward(job)
    }

    /// SERVFAIL for `job` when no upstream could answer its question moments ago (`RecentFailures`),
    /// said as then; nil to ask.
    private func recentFailure(_ job: ForwardJob, now: Double) -> PipelineOutcome? {
        guard let detail = failures.withLock({ $0.failure(job.key, now: now) }) else { return nil }
        return .reply(servFail(job, detail: detail, recently: true), servFailRecord(job, detail: detail))
    }

    private func servFailRecord(_ job: ForwardJob, detail: String) -> QueryRecord {
        var rec = job.record
        (rec.action, rec.rcode, rec.problem) = (.servfail, .servFail, detail)
        counters.bump(.servfail)
        return rec
    }

    private func servFail(_ job: ForwardJob, detail: String, recently: Bool) -> [UInt8] {
        let asked = job.clientQuery
        let text = "dnsgate: no upstream answered (\(detail))" + (recently ? " moments ago" : "")
        return ResponseBuilder.error(to: asked.header, rcode: .servFail, rawQuestion: asked.rawQuestion, edns: asked.edns,
                                     ede: ExtendedError(.noReachableAuthority, text))
    }

    /// A cached answer whose CNAME targets are checked before it is rendered, outside the cache's lock
    /// (the check takes the exceptions' lock, and an exception that allowed a target caps the TTLs).
    /// A class: only that rare path makes one, and the common path's nil costs nothing to drop.
    private final class AnswerToCheck {
        let answer: UpstreamAnswer
        let age: UInt32
        init(_ answer: UpstreamAnswer, age: UInt32) { self.answer = answer; self.age = age }
    }

    /// The cached answer rendered for `q` with its rcode, or, when `checkingTargets` and it has CNAME
    /// targets, the answer itself to check first (the reply then empty); nil on a miss. `stale` when
    /// served past its TTL after a failed refresh (`AnswerCache.withServable`). Not counted: the
    /// caller counts what the client gets.
    private func cachedAnswer(_ q: QueryView, hash: UInt64, matching: (CacheKey) -> Bool, now: Double, scratch: QueryScratch? = nil,
                              checkingTargets: Bool, ttlCap: UInt32,
                              countsMiss: Bool = true) -> (reply: [UInt8], rcode: ResponseCode, stale: Bool, toCheck: AnswerToCheck?)? {
        cache.withServable(hash: hash, matching: matching, now: now, countsMiss: countsMiss) { answer, age, stale in
            if checkingTargets && answer.hasNamesToCheck(asked: q.type) { return ([], answer.rcode, stale, AnswerToCheck(answer, age: age)) }
            return (renderCached(answer, for: q, age: age, stale: stale, ttlCap: ttlCap, scratch: scratch), answer.rcode, stale, nil)
        }
    }

    /// A cached answer rendered for `q`: aged, or with the stale TTL and EDE.
    @inline(__always)
    private func renderCached(_ answer: UpstreamAnswer, for q: QueryView, age: UInt32, stale: Bool, ttlCap: UInt32, scratch: QueryScratch?) -> [UInt8] {
        stale ? build(scratch) { answer.render(into: &$0, for: q, age: 0, staleTTL: Self.staleTTL, ede: Self.recheckEDE, ttlCap: ttlCap) }
              : build(scratch) { answer.render(into: &$0, for: q, age: age, ttlCap: ttlCap) }
    }
    private static let recheckEDE = ExtendedError(.staleAnswer, "dnsgate: upstream failed to refresh this answer moments ago")

    /// The names of `answer` to check for a client that asked `q`, when `chain` asks for them to be
    /// checked and there are any.
    private func chainTargets(_ answer: UpstreamAnswer, _ chain: ChainCheck?, _ q: QueryView) -> [DNSName]? {
        chain != nil && answer.hasNamesToCheck(asked: q.type) ? answer.namesToCheck(asked: q.type) : nil
    }

    /// The reply an answer from upstream or the cache becomes, `render` making it with a TTL cap,
    /// counted under the record's action. Under `policy.cname_targets: allowed`, an answer that
    /// CNAMEs to a name the client's policy denies becomes the client's sinkhole answer (NXDOMAIN in
    /// drop mode, as for a quarantine: the name exists, and a timeout would only delay the build's
    /// error), with the target in the EDE text and the record; in audit mode the answer is passed on
    /// and the record says what enforce mode would have done. An explicit RPZ denial of the target is
    /// enforced in audit mode too. A question audit mode forwarded although unlisted keeps that
    /// reason: it is the name to learn. A target only an exception allows caps the TTLs at the time
    /// the exception has left, as a question's does.
    private func checkedReply(_ targets: [DNSName]?, _ q: QueryView, _ chain: ChainCheck?, _ rec: inout QueryRecord, ttlCap: UInt32,
                              now: Double, scratch: QueryScratch?, render: (_ ttlCap: UInt32) -> [UInt8]) -> [UInt8] {
        guard let targets, let chain, !rec.isDenied else {
            counters.bump(rec.action)
            return render(ttlCap)
        }
        switch chainOutcome(targets, q.type, chain, now: now) {
        case .allowed(let targetsCap):
            counters.bump(rec.action)
            return render(min(ttlCap, targetsCap))
        case .denied(let target, let verdict):
            rec.denial = .cnameTarget(target)
            if verdict.isForward {      // audit mode
                rec.audited = true
                counters.bump(rec.action)
                return render(ttlCap)
            }
            let policy = chain.box.policy
            let mode = policy.sinkhole == .drop ? .nxdomain : policy.sinkhole
            let denied = sinkhole(q, mode: mode, ttl: policy.sinkholeTTL, why: .cnameTarget(target), scratch: scratch)!
            rec.action = .sinkholed
            rec.rcode = denied.rcode
            counters.bump(.sinkholed)
            return denied.bytes
        }
    }

    /// What an answer's CNAME targets come to for the client who asked.
    private enum ChainOutcome {
        /// Every target allowed; the TTL cap of the exceptions that allowed some (`.max` if none did).
        case allowed(ttlCap: UInt32)
        /// The first target not allowed, with its verdict.
        case denied(DNSName, PolicyVerdict)
    }

    /// Each target decided as a question of `type` from the client would be (`settleVerdict`), so an entry
    /// or an exception only a CNAME chain uses counts as in use.
    private func chainOutcome(_ targets: [DNSName], _ type: RecordType, _ c: ChainCheck, now: Double) -> ChainOutcome {
        var cap = UInt32.max
        for t in targets {
            var v = c.box.decide(name: t, type: type)
            if let e = settleVerdict(&v, t, type, c.box, clientAddress: c.clientAddress, now: now) {
                cap = min(cap, Self.ttlCap(until: e.expiresAt, now: now))
            }
            if v.isDenied { return .denied(t, v) }
        }
        return .allowed(ttlCap: cap)
    }

    /// Completes the policy's `verdict` on `name`/`type` for a client of `box`'s profile: the matching
    /// entry counts a hit, and the exceptions apply; the one that allowed it, if any, counts its use
    /// and is returned (its ID and end). For the question and for each CNAME target alike. The
    /// verdict is edited in place: returned with the exception, it cost a thousand instructions a
    /// query (bench/instructions.sh).
    @inline(__always)
    private func settleVerdict(_ verdict: inout PolicyVerdict, _ name: DNSName, _ type: RecordType, _ box: PolicyBox,
                               clientAddress: [UInt8]?, now: Double) -> (id: String, expiresAt: Double)? {
        if let i = verdict.entryIndex {
            box.hits.add(i, 1)
            box.lastUse.store(i, Int(now))
        }
        guard verdict.isDenied, hasExceptions.value != 0,
              let m = exceptionSet.withLock({ $0.match(name: name, type: type, clientAddress: clientAddress,
                                                       profile: box.name, defaultTypes: box.policy.defaultTypes, now: now) })
        else { return nil }
        let allowing: PolicyException?
        (verdict, allowing) = Self.applying(m, to: verdict, box.policy, type)
        guard let e = allowing else { return nil }
        exceptionHits.withLock { $0[e.id, default: 0] += 1 }
        return (e.id, e.expiresAt)
    }

    /// Local data for a question of `type`: its records of that type, or else its CNAME, followed
    /// through the same policy's local data (at most 8 links, no name twice) to the target's records
    /// of that type. A stub resolver (glibc's) does not ask for a CNAME's target: given the CNAME
    /// alone it reported no address (QA pass 10, F1). A target that is not local data ends the chain,
    /// and the client gets the CNAME to ask for.
    static func localAnswers(_ records: [LocalRecord], of name: DNSName, type: RecordType, box: PolicyBox) -> [LocalRecord] {
        let matching = records.filter { $0.type == type }
        guard matching.isEmpty, var link = records.first(where: { $0.type == .cname }) else { return matching }
        var answers = [link]
        var seen: Set<DNSName> = [name]   // a link back to the question is a loop too
        for _ in 0..<8 {
            guard let target = try? DNSName(wire: link.rdata), seen.insert(target).inserted,
                  case .local(let next) = box.decide(name: target, type: type).action else { break }
            if case let own = next.filter({ $0.type == type }), !own.isEmpty {
                answers += own.map { LocalRecord(owner: target, type: $0.type, rdata: $0.rdata) }
                break
            }
            guard let cname = next.first(where: { $0.type == .cname }) else { break }
            link = LocalRecord(owner: target, type: .cname, rdata: cname.rdata)
            answers.append(link)
        }
        return answers
    }

    /// Builds a reply in the scratch buffer when there is one (nothing allocated), else in a new array.
    @inline(__always)
    private func build(_ scratch: QueryScratch?, _ body: (inout [UInt8]) -> Void) -> [UInt8] {
        if scratch == nil {
            var out = [UInt8](); out.reserveCapacity(256)
            body(&out)
            return out
        }
        return scratch!.lendReply(body)
    }

    /// The TTL a reply may carry when an exception expiring at `expiry` allowed it: the time left,
    /// so no downstream cache keeps the name past it; no cap without one.
    @inline(__always)
    private static func ttlCap(until expiry: Double?, now: Double) -> UInt32 {
        guard let expiry else { return .max }
        return UInt32(min(max(0, (expiry - now).rounded(.up)), Double(UInt32.max)))
    }

    /// Caches an upstream answer and renders it for the client who asked, its TTLs clamped as the
    /// cache's limits say (`AnswerCache.clamped`).
    /// - Parameter scratch: the calling listener thread's, whose reply buffer the reply is written into
    ///   and lent (the caller hands it back with `QueryScratch.reclaim`); nil for a new array.
    public func complete(_ job: ForwardJob, answer: UpstreamAnswer, now: Double, scratch: QueryScratch? = nil) -> ([UInt8], QueryRecord) {
        // Checked first: a clamped copy made every answer a copy of its arrays, and as a rule none is needed.
        guard cache.withinLimits(answer) else { return complete(job, answer: cache.clamped(answer), now: now, scratch: scratch) }
        cache.insert(job.key, answer, now: now)
        if hasFailures.value != 0 { failures.withLock { $0.answered(job.key) } }
        var rec = job.record
        rec.action = .forwarded
        rec.rcode = answer.rcode
        let reply = checkedReply(chainTargets(answer, job.chain, job.query), job.query, job.chain, &rec,
                                 ttlCap: Self.ttlCap(until: job.exceptionExpiry, now: now), now: now, scratch: scratch) { cap in
            build(scratch) { answer.render(into: &$0, for: job.query, age: 0, ttlCap: cap) }
        }
        return (clientReply(reply, job), rec)
    }

    /// No upstream answered in time: serve stale if the cache still has the answer (RFC 8767), else SERVFAIL
    /// with an Extended DNS Error saying why (RFC 8914 §4.23).
    public func upstreamFailed(_ job: ForwardJob, now: Double, detail: String) -> ([UInt8], QueryRecord) {
        // Another exchange for the question (a TCP client's, or one begun after a reload) may have
        // filled the cache while this one failed: that answer is fresh, not stale (QA pass 6 saw it
        // served with the stale TTL and EDE).
        if let fresh = cachedReply(job, now: now) { return fresh }
        var rec = job.record
        let q = job.query
        rec.problem = detail   // the query log says why, as the EDE does (QA pass 13, F5)
        if let old = cache.stale(job.key, now: now) {
            rec.action = .stale
            rec.rcode = old.rcode
            let ede = ExtendedError(.staleAnswer, "dnsgate: upstream unavailable (\(detail))")
            let reply = checkedReply(chainTargets(old, job.chain, q), q, job.chain, &rec, ttlCap: Self.ttlCap(until: job.exceptionExpiry, now: now),
                                     now: now, scratch: nil) { old.render(for: q, age: 0, staleTTL: Self.staleTTL, ede: ede, ttlCap: $0) }
            return (clientReply(reply, job), rec)
        }
        failures.withLock { $0.failed(job.key, detail: detail, now: now) }
        hasFailures.store(1)
        return (servFail(job, detail: detail, recently: false), servFailRecord(job, detail: detail))
    }

    /// What a query for `name`/`type` from `clientAddress` would get, without side effects: `dnsgate check`.
    public func explain(name: DNSName, type: RecordType, clientAddress: [UInt8]?, listener: String? = nil, now: Double)
        -> (verdict: PolicyVerdict, profile: String, exception: PolicyException?) {
        let set = snapshot.policies
        let i = set.select(clientAddress: clientAddress, listener: listener)
        let policy = set.policy(i)
        let v = PolicyDecision.decide(policy, name: name, type: type)
        guard v.isDenied, let m = exceptions.match(name: name, type: type, clientAddress: clientAddress,
                                                   profile: set.name(i), defaultTypes: policy.defaultTypes, now: now)
        else { return (v, set.name(i), nil) }
        let (verdict, allowing) = Self.applying(m, to: v, policy, type)
        return (verdict, set.name(i), allowing)
    }

    /// A denied verdict after the exceptions: forwarded when one allows the query (returned with it);
    /// when one allows only other types of the name, a type denial (NODATA) rather than an unknown or
    /// RPZ-denied name, whose NXDOMAIN would make resolvers drop the allowed types too (RFC 8020).
    private static func applying(_ m: ExceptionSet.Match, to v: PolicyVerdict, _ policy: Policy, _ type: RecordType)
        -> (PolicyVerdict, PolicyException?) {
        switch m {
        case .allows(let e):
            return (PolicyVerdict(action: .forward, entry: v.entry, entryIndex: v.entryIndex, denial: nil), e)
        case .nameOnly(let e):
            if case .typeNotAllowed = v.denial { return (v, nil) }
            return (PolicyDecision.typeDenied(policy, type, by: SourceLocation(file: "exception \(e.id)", line: 0),
                                              entry: v.entry, index: v.entryIndex), nil)
        }
    }

    /// The outcome of a denied query.
    @inline(never)
    private func sinkholed(_ q: QueryView, mode: SinkholeMode, verdict: PolicyVerdict, box: PolicyBox, client: String, overTCP: Bool,
                           now: Double, scratch: QueryScratch?) -> PipelineOutcome {
        let action: QueryRecord.Action
        if case .quarantined = verdict.denial { action = .quarantined } else { action = mode == .drop ? .dropped : .sinkholed }
        counters.bump(action)
        guard let (bytes, rcode) = sinkhole(q, mode: mode, ttl: box.policy.sinkholeTTL, why: verdict.denial ?? .notListed, scratch: scratch) else {
            return .drop(QueryRecord(q, verdict, box: box, client: client, overTCP: overTCP, now: now, action: action, rcode: nil, exception: nil))
        }
        return .reply(fit(consume bytes, q, overTCP),
                      QueryRecord(q, verdict, box: box, client: client, overTCP: overTCP, now: now, action: action, rcode: rcode, exception: nil))
    }

    private func sinkhole(_ q: QueryView, mode: SinkholeMode, ttl: UInt32, why: DenyReason,
                          scratch: QueryScratch?) -> (bytes: [UInt8], rcode: ResponseCode)? {
        var code = ExtendedErrorCode.blocked
        if case .typeNotAllowed = why { code = .filtered }   // answered NODATA: `PolicyDecision.typeDenied` decides that
        // The text is built only when the client sent EDNS: without OPT there is nowhere to put it (RFC 8914 §3).
        let ede: ExtendedError? = q.edns == nil ? nil
            : why.isNotListed ? Self.notListedEDE : ExtendedError(code, "blocked by dnsgate policy: \(why)")
        func answer(_ rcode: ResponseCode, _ records: [LocalRecord] = []) -> ([UInt8], ResponseCode) {
            (build(scratch) { ResponseBuilder.synthesized(into: &$0, q, rcode: rcode, answers: records, ttl: ttl, ede: ede) }, rcode)
        }
        switch mode {
        case .nxdomain: return answer(.nxDomain)
        case .nodata: return answer(.noError)
        case .refused: return answer(.refused)
        case .drop: return nil
        case .null:
            if q.type == .a { return answer(.noError, [LocalRecord(type: .a, rdata: [0, 0, 0, 0])]) }
            if q.type == .aaaa { return answer(.noError, [LocalRecord(type: .aaaa, rdata: [UInt8](repeating: 0, count: 16))]) }
            return answer(.noError)
        case .redirect(let v4, let v6):
            if q.type == .a, let v4 { return answer(.noError, [LocalRecord(type: .a, rdata: v4)]) }
            if q.type == .aaaa, let v6 { return answer(.noError, [LocalRecord(type: .aaaa, rdata: v6)]) }
            return answer(.noError)
        }
    }

    /// The text of the most common denial, made once rather than per query.
    private static let notListedEDE = ExtendedError(.blocked, "blocked by dnsgate policy: \(DenyReason.notListed)")

    /// Replaces a reply too large for the transport with a truncated one (RFC 1035 §4.2.1, RFC 6891 §7).
    /// - Parameter bytes: consumed, so the usual case returns it without a retain.
    private func fit(_ bytes: consuming [UInt8], _ q: QueryView, _ overTCP: Bool) -> [UInt8] {
        if bytes.count <= ResponseBuilder.sizeLimit(edns: q.edns, overTCP: overTCP, maxUDP: maxUDPPayload) { return bytes }
        if overTCP, q.edns != nil, let bare = ResponseBuilder.droppingTrailingOPT(bytes), bare.count <= 65535 { return bare }
        return ResponseBuilder.truncated(q, rcode: ResponseCode(rawValue: bytes.u16(at: 2) & 0xF))
    }

    private func record(_ now: Double, _ client: String, _ tcp: Bool, _ name: DNSName?, _ action: QueryRecord.Action,
                        problem: String?) -> QueryRecord {
        QueryRecord(time: now, client: client, overTCP: tcp, name: name, type: nil, action: action, rcode: nil, rule: nil,
                    entryIndex: nil, denial: nil, audited: false, problem: problem)
    }
}

/// Totals per action since start, read by `dnsgate stats` and the metrics endpoint.
public final class PipelineCounters: Sendable {
    private let counts = AtomicCounters(count: QueryRecord.Action.allCases.count)
    public init() {}
    public func bump(_ a: QueryRecord.Action) {
        counts.add(a.ordinal, 1)
    }
    public var snapshot: [QueryRecord.Action: Int] {
        Dictionary(uniqueKeysWithValues: QueryRecord.Action.allCases.enumerated().map { ($1, counts[$0]) })
    }
}

/// Relaxed atomic integers in one allocation, by index. A bump of an `[AtomicCounter]` element
/// retained and released that counter's object, several times per query (action counts, entry
/// hits, entry last use).
public final class AtomicCounters: @unchecked Sendable {   // every access is atomic
    private let slots: UnsafeMutablePointer<Atomic<Int>>
    public let count: Int

    public init(count: Int) {
        self.count = count
        slots = .allocate(capacity: max(count, 1))
        for i in 0..<count { (slots + i).initialize(to: Atomic(0)) }
    }
    deinit {
        slots.deinitialize(count: count)
        slots.deallocate()
    }

    @inline(__always) public func add(_ i: Int, _ n: Int) {
        precondition(i >= 0 && i < count, "AtomicCounters index out of range")
        slots[i].add(n, ordering: .relaxed)
    }
    @inline(__always) public func store(_ i: Int, _ n: Int) {
        precondition(i >= 0 && i < count, "AtomicCounters index out of range")
        slots[i].store(n, ordering: .relaxed)
    }
    public subscript(i: Int) -> Int {
        precondition(i >= 0 && i < count, "AtomicCounters index out of range")
        return slots[i].load(ordering: .relaxed)
    }
}

/// A relaxed atomic integer that can live in an array (Synchronization's `Atomic` is not copyable).
public final class AtomicCounter: Sendable {
    private let atomic = Atomic<Int>(0)
    public init() {}
    @inline(__always) public func add(_ n: Int) { atomic.add(n, ordering: .relaxed) }
    @inline(__always) public func store(_ n: Int) { atomic.store(n, ordering: .relaxed) }
    public var value: Int { atomic.load(ordering: .relaxed) }
}
