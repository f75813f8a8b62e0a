/// The first query of each (client, registered domain) pair the detector does not track yet, held
/// until the pair's second query makes it a tracked pair (`TunnelDetector` then replays it).
///
/// Most registered domains a runner looks up once are looked up once only (a flood of random
/// domains, or `www.site1.com`, `www.site2.com`…). Giving each its full window state cost a recycled
/// pair, cold in cache, and pushed the least recently seen pair out of the table, a tunnel's own
/// among them. A one-off query cannot raise an alert by itself (`TunnelDetector` holds queries back
/// only when the thresholds make that so), so holding it here loses nothing: a pair's alerts,
/// features and counts are those it would have had, once it is seen twice.
///
/// At most `capacity` queries, in a ring in arrival order: when it is full the oldest goes, and that
/// pair then starts with its next query (one query fewer in its counts), as a pair pushed out of a
/// full table would have. Eviction never depends on a hash (pair keys are hashed with a per-process
/// secret), so a replayed log holds and drops the same queries in every process. An open-addressing
/// index finds a pair's query by its key. Fixed memory.
struct FirstQueries {
    private struct Held {
        var pair: UInt64
        /// Who asked (`ClientState.id`), so a flood can be kept from pushing out others' queries.
        var client: UInt64
        var time: Double
        var name: DNSName?      // nil: the place is free (never used, or its query was taken)
        var type: RecordType
        var rcode: ResponseCode
    }
    private var ring: [Held]
    /// Where the next query goes: the oldest place once the ring has gone round.
    private var next = 0
    /// Ring positions by pair key: linear probing, at most half full, -1 for an empty position.
    private var index: [Int32]
    private let mask: Int
    /// Queries held.
    private(set) var count = 0

    init(capacity: Int) {
        let n = max(1, capacity)
        ring = Array(repeating: Held(pair: 0, client: 0, time: 0, name: nil, type: .a, rcode: .noError), count: n)
        let size = TableHash.powerOfTwo(atLeast: 2 * n)
        index = Array(repeating: -1, count: size)
        mask = size - 1
    }

    /// The first query held for `pair`, removed from the table; nil when none is held.
    mutating func take(_ pair: UInt64, client: String) -> QueryEvent? {
        guard let at = position(of: pair) else { return nil }
        let e = event(at: at.ring, client: client)
        ring[at.ring].name = nil
        unindex(at.index)
        count -= 1
        return e
    }

    /// The first query held for `pair`, left in place.
    func peek(_ pair: UInt64, client: String) -> QueryEvent? {
        position(of: pair).map { event(at: $0.ring, client: client) }
    }

    /// The query held at ring position `r`, which must be in use.
    private func event(at r: Int, client: String) -> QueryEvent {
        let h = ring[r]
        return QueryEvent(time: h.time, client: client, name: h.name!, type: h.type, rcode: h.rcode)
    }

    /// Whether holding a query now would push out a query another client asked (the ring is full
    /// there and the oldest is not `client`'s).
    func holdingWouldDropAnother(than client: UInt64) -> Bool {
        ring[next].name != nil && ring[next].client != client
    }

    /// Holds `e` as the first query of `pair`, which must not be held already; the oldest query
    /// held makes room when the ring is full.
    mutating func hold(_ pair: UInt64, _ e: QueryEvent, client: UInt64) {
        if ring[next].name != nil { drop(at: next) }
        ring[next] = Held(pair: pair, client: client, time: e.time, name: e.name, type: e.type, rcode: e.rcode)
        let mask = self.mask, slot = Int32(next)
        index.withUnsafeMutableBufferPointer { ProbedIndex.insert(slot, home: Int(truncatingIfNeeded: pair) & mask, in: $0.baseAddress!, mask: mask) }
        count += 1
        next = next + 1 == ring.count ? 0 : next + 1
    }

    /// Drops the queries asked before `cutoff`, oldest first, stopping at the first that is not:
    /// arrival order is time order but for the skew between two listeners' clocks, and a query
    /// left behind that way goes at a later call. Walks at most the ring once.
    mutating func removeExpired(olderThan cutoff: Double) {
        var i = next
        for _ in 0..<ring.count {
            if ring[i].name != nil {
                guard ring[i].time < cutoff else { return }
                drop(at: i)
            }
            i = i + 1 == ring.count ? 0 : i + 1
            if count == 0 { return }
        }
    }

    private mutating func drop(at r: Int) {
        // Always found: a pair is held once at most (`hold` is called only when `take` found none).
        if let at = position(of: ring[r].pair), at.ring == r { unindex(at.index) }
        ring[r].name = nil
        count -= 1
    }

    private func position(of pair: UInt64) -> (index: Int, ring: Int)? {
        var p = Int(truncatingIfNeeded: pair) & mask
        while index[p] >= 0 {
            let r = Int(index[p])
            if ring[r].pair == pair { return (p, r) }
            p = (p + 1) & mask
        }
        return nil
    }

    /// Empties index position `at` (`ProbedIndex.remove`).
    private mutating func unindex(_ at: Int) {
        let mask = self.mask, ring = self.ring
        index.withUnsafeMutableBufferPointer { index in
            ProbedIndex.remove(at: at, in: index.baseAddress!, mask: mask) { Int(truncatingIfNeeded: ring[Int($0)].pair) & mask }
        }
    }
}
