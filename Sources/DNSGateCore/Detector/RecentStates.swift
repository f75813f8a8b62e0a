/// The detector's per-key state objects (pairs, clients, budgets): at most `capacity`, the least
/// recently used dropped first (`RecencyList`: arrival order, so replays evict identically).
///
/// The key looked up last is remembered: consecutive queries mostly share their client, pair and
/// budget, and comparing two keys is cheaper than hashing one (four SipHash runs a query were a
/// quarter of the detector's time on cache-hot names). Every removal goes through here, so the
/// remembered key never outlives its state.
struct RecentStates<Key: Hashable, State: RecencyTracked> {
    let capacity: Int
    private var byKey: [Key: State] = [:]
    private var order = RecencyList<Key>()
    /// Not a second strong reference: `byKey` holds the state while it is remembered here (every
    /// removal below forgets it first). Holding it cost a retain, and the release of the state it
    /// replaced, each time the key changed: on a flood of new domains, every query.
    private var lastKey: Key?
    private var lastState: Unmanaged<State>?

    /// - Parameter capacity: at least 1, so that the state `insert` returns stays in the table for
    ///   as long as the caller reads it unretained (`touch`).
    init(capacity: Int) { self.capacity = max(1, capacity) }

    var count: Int { byKey.count }
    var states: Dictionary<Key, State>.Values { byKey.values }

    /// The state for `key` without counting it as a use.
    subscript(key: Key) -> State? { byKey[key] }

    /// The state for `key`, now the most recently used; nil when there is none. Unretained: the
    /// table holds it until a caller inserts or removes, and a caller reads it with
    /// `_withUnsafeGuaranteedRef` meanwhile. Returned strong, each state was retained here and
    /// released by the caller, two atomic operations on every query for each table.
    mutating func touch(_ key: Key) -> Unmanaged<State>? {
        // The remembered key is compared in place: binding a remembered (key, state) pair copied
        // its state, one more retain and release on every query.
        if lastKey == key, let state = lastState {
            order.touch(state._withUnsafeGuaranteedRef { $0.recencyHandle })
            return state
        }
        // Through the index, not `byKey[key]`: the subscript returned the state retained, and it was
        // released again here, on every query whose key was not the remembered one.
        guard let i = byKey.index(forKey: key) else { return nil }
        let state = Unmanaged.passUnretained(byKey.values[i])
        order.touch(state._withUnsafeGuaranteedRef { $0.recencyHandle })
        remember(key, state)
        return state
    }

    /// Adds the state `make` returns for `key` (which must be absent). At the cap the least recently
    /// used entry goes first, and `make` gets its state to reuse if it likes.
    /// - Parameter preferred: at the cap, the least recently used state among the `preferredWithin`
    ///   oldest that this accepts goes instead, when there is one (the inserting client's own).
    mutating func insert(_ key: Key, evictingFirst preferred: ((State) -> Bool)? = nil, preferredWithin: Int = 64,
                         _ make: (State?) -> State) -> State {
        var evicted: State?
        forget()
        if byKey.count >= capacity {
            if let preferred, let h = order.oldest(within: preferredWithin, where: { byKey[$0].map(preferred) ?? false }),
               let victim = order.key(h) {
                order.remove(h)
                evicted = byKey.removeValue(forKey: victim)
            } else if let victim = order.popOldest() {
                evicted = byKey.removeValue(forKey: victim)
            }
        }
        let state = make(evicted)
        state.recencyHandle = order.insert(key)
        byKey[key] = state
        remember(key, .passUnretained(state))
        return state
    }

    /// Drops the least recently used states while `expired` says they are done with, stopping at the
    /// first that is not. A state's expiry follows its last use, and use order is arrival order, so
    /// nothing expired stays behind a live state except by the skew between two listeners' clocks
    /// (it goes at a later call). A pass over every state, cold in cache, took up to 0.6 ms once a
    /// second on the listener's core, and showed in the p99.9 latency.
    mutating func removeExpired(_ expired: (State) -> Bool, removed: (State) -> Void = { _ in }) {
        while let key = order.oldestKey, let state = byKey[key], expired(state) {
            _ = order.popOldest()
            forget()
            byKey[key] = nil
            removed(state)
        }
    }

    private mutating func remember(_ key: Key, _ state: Unmanaged<State>) { lastKey = key; lastState = state }
    private mutating func forget() { lastKey = nil; lastState = nil }
}

/// A state object that knows its place in its table's `RecencyList`.
protocol RecencyTracked: AnyObject {
    var recencyHandle: Int { get set }
}
