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
/// Direct-mapped by the pair key's hash, which is keyed per process (`TableHash`): a new first
/// query takes the slot of an older one, whose pair then starts with its next query (one query
/// fewer in its counts), as a pair pushed out of a full table would have. Fixed memory.
struct FirstQueries {
    private struct Slot {
        var pair: UInt64
        var time: Double
        var name: DNSName?      // nil: the slot is empty
        var type: RecordType
        var rcode: ResponseCode
    }
    private var slots: [Slot]
    private let mask: Int
    /// Occupied slots.
    private(set) var count = 0
    /// No held query is older than this (a lower bound): expiry skips the walk until one may be.
    private var oldest = Double.infinity

    /// - Parameter capacity: rounded up to a power of two.
    init(capacity: Int) {
        let n = TableHash.powerOfTwo(atLeast: max(1, capacity))
        slots = Array(repeating: Slot(pair: 0, time: 0, name: nil, type: .a, rcode: .noError), count: n)
        mask = n - 1
    }

    /// The first query held for `pair`, removed from the table; nil when none is held.
    mutating func take(_ pair: UInt64, client: String) -> QueryEvent? {
        let i = Int(truncatingIfNeeded: pair) & mask
        guard slots[i].pair == pair, let name = slots[i].name else { return nil }
        let s = slots[i]
        slots[i].name = nil
        count -= 1
        return QueryEvent(time: s.time, client: client, name: name, type: s.type, rcode: s.rcode)
    }

    /// The first query held for `pair`, left in place.
    func peek(_ pair: UInt64, client: String) -> QueryEvent? {
        let s = slots[Int(truncatingIfNeeded: pair) & mask]
        guard s.pair == pair, let name = s.name else { return nil }
        return QueryEvent(time: s.time, client: client, name: name, type: s.type, rcode: s.rcode)
    }

    /// Holds `e` as the first query of `pair`, in place of whatever its slot held.
    mutating func hold(_ pair: UInt64, _ e: QueryEvent) {
        let i = Int(truncatingIfNeeded: pair) & mask
        if slots[i].name == nil { count += 1 }
        slots[i] = Slot(pair: pair, time: e.time, name: e.name, type: e.type, rcode: e.rcode)
        oldest = min(oldest, e.time)
    }

    /// Drops the queries asked before `cutoff`. Walks the table (64 KB at the default cap, in order)
    /// only when the oldest query held may be that old.
    mutating func removeExpired(olderThan cutoff: Double) {
        guard count > 0, oldest < cutoff else { return }
        var left = Double.infinity
        slots.withUnsafeMutableBufferPointer { s in
            for i in s.indices where s[i].name != nil {
                if s[i].time < cutoff { s[i].name = nil; count -= 1 } else { left = min(left, s[i].time) }
            }
        }
        oldest = left
    }
}
