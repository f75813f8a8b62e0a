import Synchronization

/// What the cache is keyed by: the canonical question, the DO bit (answers with and without
/// DNSSEC records differ) and the CD bit. A validating upstream answers a CD query without
/// validating it (RFC 4035 §3.2.2), so such an answer, bogus data included, is kept apart and given
/// only to clients that set CD themselves (RFC 6840 §5.9).
public struct CacheKey: Hashable, Sendable {
    public let name: DNSName
    public let type: RecordType
    public let dnssecOK: Bool
    public let checkingDisabled: Bool
    /// Computed once from the name's `TableHash`, the type and the two bits: the cache and the upstream
    /// exchanges in flight probe with it instead of hashing the name again.
    let hash: UInt64

    public init(name: DNSName, type: RecordType, dnssecOK: Bool, checkingDisabled: Bool = false) {
        self.init(name: name, nameHash: name.wire.withUnsafeBytes { TableHash.hash($0) }, type: type, dnssecOK: dnssecOK,
                  checkingDisabled: checkingDisabled)
    }

    /// - Parameter nameHash: must be `TableHash.hash(name.wire)`, as `QueryView.nameHash` is.
    public init(name: DNSName, nameHash: UInt64, type: RecordType, dnssecOK: Bool, checkingDisabled: Bool = false) {
        self.name = name; self.type = type; self.dnssecOK = dnssecOK; self.checkingDisabled = checkingDisabled
        self.hash = Self.hash(nameHash: nameHash, type: type, dnssecOK: dnssecOK, checkingDisabled: checkingDisabled)
    }

    /// The key question `q` asks for.
    @inline(__always)
    init(question q: borrowing QueryView) {
        name = q.name; type = q.type; dnssecOK = q.edns?.dnssecOK ?? false; checkingDisabled = q.header.checkingDisabled
        hash = Self.hash(of: q)
    }

    static func hash(nameHash: UInt64, type: RecordType, dnssecOK: Bool, checkingDisabled: Bool) -> UInt64 {
        StableHash.mix(nameHash ^ (UInt64(type.rawValue) << 2 | (checkingDisabled ? 2 : 0) | (dnssecOK ? 1 : 0)))
    }

    /// The hash of `init(question: q)`'s key, without making it.
    static func hash(of q: borrowing QueryView) -> UInt64 {
        hash(nameHash: q.nameHash, type: q.type, dnssecOK: q.edns?.dnssecOK ?? false, checkingDisabled: q.header.checkingDisabled)
    }

    /// Whether this is the key `q` would make (`init(question:)`), without making it.
    func isKey(of q: borrowing QueryView) -> Bool {
        type == q.type && dnssecOK == (q.edns?.dnssecOK ?? false) && checkingDisabled == q.header.checkingDisabled && name == q.name
    }

    public static func == (a: CacheKey, b: CacheKey) -> Bool {
        a.hash == b.hash && a.type == b.type && a.dnssecOK == b.dnssecOK && a.checkingDisabled == b.checkingDisabled && a.name == b.name
    }
    public func hash(into hasher: inout Hasher) { hasher.combine(hash) }
    public func _rawHashValue(seed: Int) -> Int { Int(truncatingIfNeeded: StableHash.mix(hash ^ UInt64(bitPattern: Int64(seed)))) }
}

/// Limits of the cache; defaults in config/README.md.
public struct CacheLimits: Sendable, Equatable {
    public var maxEntries: Int = 100_000
    /// Memory the entries may take, by `AnswerCache.cost`: a count alone let answers of 64 KB (over
    /// TCP, from an upstream or a zone someone else controls) take 96 KB an entry, 9.6 GB at the
    /// default count.
    public var maxBytes: Int = 128 << 20
    public var minTTL: UInt32 = 0
    public var maxTTL: UInt32 = 86_400
    /// RFC 2308 §5 suggests 1–3 hours as the cap for negative answers.
    public var maxNegativeTTL: UInt32 = 3_600
    /// How long past expiry an answer may still be served when every upstream fails (RFC 8767 §5: 1–3 days).
    public var serveStale: UInt32 = 86_400
    /// After asking upstream for an expired answer failed, how long that stale answer is served at once
    /// instead of asking again and waiting for the same timeouts (RFC 8767 §5's failure recheck timer).
    public var staleRecheck: Double = 30
    public init() {}
}

/// Result of a lookup.
public enum CacheLookup: Sendable {
    case hit(UpstreamAnswer, age: UInt32)
    case miss
}

/// Positive and negative answers with TTLs counted down, bounded in entries and in bytes, least
/// recently used evicted.
///
/// One mutex guards the whole map: lookups are a hash probe and a few index writes, far shorter than the
/// syscall that delivered the query. Expired entries stay until evicted so they can be served stale.
public final class AnswerCache: Sendable {
    private struct Node {
        var key: CacheKey
        var answer: UpstreamAnswer
        var storedAt: Double
        var ttl: UInt32
        /// `AnswerCache.cost` of this entry, kept: computed again at eviction it read the answer
        /// out of the node, a copy of its arrays.
        var cost: Int
        /// When upstream last failed to refresh this answer (`stale`); -infinity if never.
        var refreshFailedAt = -Double.infinity
        var prev: Int
        var next: Int
    }
    private struct State {
        var index = SlotIndex()
        var nodes: [Node] = []
        var head = -1          // most recently used
        var tail = -1          // least recently used
        var hits = 0, misses = 0, staleServed = 0, evictions = 0
        /// Sum of `cost` over `nodes`.
        var bytes = 0
    }
    private let state = Mutex(State())
    public let limits: CacheLimits

    public init(limits: CacheLimits = CacheLimits()) {
        self.limits = limits
        positiveTTLs = limits.minTTL ... max(limits.minTTL, limits.maxTTL)
        negativeTTLs = limits.minTTL ... max(limits.minTTL, limits.maxNegativeTTL)
    }
    /// The TTLs an answer may carry, positive or negative (`min_ttl` wins over a lower maximum).
    private let positiveTTLs: ClosedRange<UInt32>
    private let negativeTTLs: ClosedRange<UInt32>

    /// The TTL an answer is kept for after clamping, or nil when it is not cacheable.
    public func clampedTTL(_ a: UpstreamAnswer) -> UInt32? {
        guard let t = a.cacheTTL, !a.truncated else { return nil }
        return min(max(t, ttlRange(a).lowerBound), ttlRange(a).upperBound)
    }

    /// `a` with its records' TTLs clamped as its time in the cache is: what clients are told.
    public func clamped(_ a: UpstreamAnswer) -> UpstreamAnswer { a.clampingTTLs(to: ttlRange(a)) }

    /// Whether every TTL of `a` is within the limits already (as a rule): `clamped` would change nothing.
    @inline(__always)
    public func withinLimits(_ a: UpstreamAnswer) -> Bool { a.ttlsWithin(ttlRange(a)) }

    @inline(__always)
    private func ttlRange(_ a: UpstreamAnswer) -> ClosedRange<UInt32> { a.isNegative ? negativeTTLs : positiveTTLs }

    public func insert(_ key: CacheKey, _ answer: UpstreamAnswer, now: Double) {
        let cost = Self.cost(key, answer)
        guard limits.maxEntries > 0, cost <= limits.maxBytes, let ttl = clampedTTL(answer), ttl > 0 else { return }
        state.withLock { s in
            if let i = Self.find(s, key) {
                s.bytes += cost - s.nodes[i].cost
                s.nodes[i].answer = answer; s.nodes[i].storedAt = now; s.nodes[i].ttl = ttl; s.nodes[i].cost = cost
                Self.moveToFront(&s, i)
            } else {
                let i: Int
                if s.nodes.count < limits.maxEntries {
                    i = s.nodes.count
                    s.nodes.append(Node(key: key, answer: answer, storedAt: now, ttl: ttl, cost: cost, prev: -1, next: -1))
                } else {
                    i = s.tail                                   // reuse the least recently used slot
                    Self.unlink(&s, i)
                    s.index.remove(s.nodes[i].key.hash, position: i)
                    s.evictions += 1
                    s.bytes -= s.nodes[i].cost
                    s.nodes[i] = Node(key: key, answer: answer, storedAt: now, ttl: ttl, cost: cost, prev: -1, next: -1)
                }
                s.bytes += cost
                s.index.insert(key.hash, position: i)
                Self.pushFront(&s, i)
            }
            while s.bytes > limits.maxBytes { Self.evictLeastRecentlyUsed(&s) }
        }
    }

    /// What an entry takes, in bytes: the answer's arrays and a fixed part for the node, the key's
    /// name and the index slot (bench/memory.sh measured about 400 bytes an entry in all).
    static func cost(_ key: CacheKey, _ a: UpstreamAnswer) -> Int {
        // A CNAME target is counted at 64 bytes, a typical name and its array's header.
        a.body.count + a.ttlFields.count * 8 + (a.cnameTargets.count + a.strayOwners.count) * 64 + key.name.wire.count + 256
    }

    /// Drops the tail entry, moving the last node into its slot so `nodes` stays dense (a slot freed
    /// in the middle would need a free list every insert then checks).
    private static func evictLeastRecentlyUsed(_ s: inout State) {
        let i = s.tail
        guard i >= 0 else { return }
        unlink(&s, i)
        s.index.remove(s.nodes[i].key.hash, position: i)
        s.bytes -= s.nodes[i].cost
        s.evictions += 1
        let last = s.nodes.count - 1
        if i != last {
            let (prev, next) = (s.nodes[last].prev, s.nodes[last].next)
            s.index.remove(s.nodes[last].key.hash, position: last)
            s.index.insert(s.nodes[last].key.hash, position: i)
            s.nodes.swapAt(i, last)
            if prev >= 0 { s.nodes[prev].next = i } else { s.head = i }
            if next >= 0 { s.nodes[next].prev = i } else { s.tail = i }
        }
        s.nodes.removeLast()
    }

    /// A fresh answer, with its age in whole seconds.
    public func lookup(_ key: CacheKey, now: Double) -> CacheLookup {
        withFresh(key, now: now) { answer, age in .hit(answer, age: age) } ?? .miss
    }

    /// Calls `body` with a fresh answer and its age, in place, under the cache's lock, and returns
    /// its result; nil on a miss. The query path renders the reply this way: copying the answer out
    /// (four arrays, a retain and a release each) cost more than the render.
    ///
    /// `body` gets the answer `inout` only so that it is passed by address: read through the
    /// buffer and passed `borrowing`, it was still copied. It must not change it.
    public func withFresh<R>(_ key: CacheKey, now: Double, _ body: (inout UpstreamAnswer, UInt32) -> R) -> R? {
        withServable(key, now: now, staleAfterFailure: false) { answer, age, _ in body(&answer, age) }
    }

    /// `withFresh`, and also an expired answer whose refresh failed less than `staleRecheck` ago
    /// (`stale` is true for it, and its age 0): the query path serves that at once, rather than asking
    /// again an upstream that has just failed and making every client wait for the same timeouts.
    /// - Parameter countsMiss: false for a second look on behalf of a query already counted as a miss.
    public func withServable<R>(_ key: CacheKey, now: Double, staleAfterFailure: Bool = true, countsMiss: Bool = true,
                                _ body: (inout UpstreamAnswer, UInt32, _ stale: Bool) -> R) -> R? {
        withServable(hash: key.hash, matching: { $0 == key }, now: now, staleAfterFailure: staleAfterFailure, countsMiss: countsMiss, body)
    }

    /// `withServable` for the key with `hash` that `matching` accepts: the query path looks up its
    /// question without making a `CacheKey`, whose copy of the name was a retain and a release.
    @inline(__always)
    func withServable<R>(hash: UInt64, matching: (CacheKey) -> Bool, now: Double, staleAfterFailure: Bool = true, countsMiss: Bool = true,
                         _ body: (inout UpstreamAnswer, UInt32, _ stale: Bool) -> R) -> R? {
        state.withLock { s in
            guard let i = Self.find(s, hash: hash, matching: matching) else {
                if countsMiss { s.misses += 1 }
                return nil
            }
            let age = now - s.nodes[i].storedAt
            guard age < Double(s.nodes[i].ttl) else {
                guard staleAfterFailure, now - s.nodes[i].refreshFailedAt < limits.staleRecheck,
                      age < Double(s.nodes[i].ttl) + Double(limits.serveStale) else { if countsMiss { s.misses += 1 }; return nil }
                s.staleServed += 1
                return body(&s.nodes[i].answer, 0, true)
            }
            s.hits += 1
            Self.moveToFront(&s, i)
            return body(&s.nodes[i].answer, UInt32(max(0, age)), false)
        }
    }

    /// An expired answer still inside the serve-stale window (RFC 8767), for when upstreams fail to
    /// refresh it; the failure is noted, so `withServable` serves it for the next `staleRecheck` seconds.
    public func stale(_ key: CacheKey, now: Double) -> UpstreamAnswer? {
        state.withLock { s in
            guard let i = Self.find(s, key) else { return nil }
            s.nodes[i].refreshFailedAt = now
            let n = s.nodes[i]
            guard now - n.storedAt < Double(n.ttl) + Double(limits.serveStale) else { return nil }
            s.staleServed += 1
            return n.answer
        }
    }

    public struct Counters: Sendable, Codable { public var entries, bytes, hits, misses, staleServed, evictions: Int }
    public var counters: Counters {
        state.withLock { Counters(entries: $0.index.count, bytes: $0.bytes, hits: $0.hits, misses: $0.misses, staleServed: $0.staleServed,
                                  evictions: $0.evictions) }
    }

    /// The node holding `key`, if any.
    @inline(__always)
    private static func find(_ s: borrowing State, _ key: CacheKey) -> Int? {
        find(s, hash: key.hash) { $0 == key }
    }

    /// The node whose key has `hash` and is one `matching` accepts, if any.
    @inline(__always)
    private static func find(_ s: borrowing State, hash: UInt64, matching: (CacheKey) -> Bool) -> Int? {
        s.nodes.withUnsafeBufferPointer { nodes in s.index.find(hash) { matching(nodes[$0].key) } }
    }

    private static func unlink(_ s: inout State, _ i: Int) { editList(&s) { $0.unlink(i) } }
    private static func pushFront(_ s: inout State, _ i: Int) { editList(&s) { $0.pushFront(i) } }
    private static func moveToFront(_ s: inout State, _ i: Int) {
        guard s.head != i else { return }
        editList(&s) { $0.unlink(i); $0.pushFront(i) }
    }

    /// Edits the recency list through one buffer pointer: each `s.nodes[i].prev = …` through the
    /// state checked the array's bounds and uniqueness again, and a hit's relink made eight of them.
    private static func editList(_ s: inout State, _ body: (inout RecencyLinks) -> Void) {
        var head = s.head, tail = s.tail
        s.nodes.withUnsafeMutableBufferPointer { nodes in
            var links = RecencyLinks(nodes: nodes, head: head, tail: tail)
            body(&links)
            (head, tail) = (links.head, links.tail)
        }
        s.head = head; s.tail = tail
    }

    /// The doubly linked recency list over `nodes`, most recently used at `head`.
    private struct RecencyLinks {
        let nodes: UnsafeMutableBufferPointer<Node>
        var head: Int
        var tail: Int

        mutating func unlink(_ i: Int) {
            let p = nodes[i].prev, n = nodes[i].next
            if p >= 0 { nodes[p].next = n } else { head = n }
            if n >= 0 { nodes[n].prev = p } else { tail = p }
            nodes[i].prev = -1; nodes[i].next = -1
        }

        mutating func pushFront(_ i: Int) {
            nodes[i].prev = -1; nodes[i].next = head
            if head >= 0 { nodes[head].prev = i }
            head = i
            if tail < 0 { tail = i }
        }
    }
}
