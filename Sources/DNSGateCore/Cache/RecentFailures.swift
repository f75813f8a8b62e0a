/// Questions no upstream could answer moments ago, and why: asked again within `holdSeconds`, they
/// get the same SERVFAIL without another round of upstream queries (RFC 9520 §3.2 asks resolvers to
/// keep a failure at least a second). A fleet of CI jobs retrying a name its upstream cannot resolve
/// otherwise sent two upstream queries for every retry (QA pass 13, F3).
///
/// Bounded: past `capacity` entries the expired ones go, and if none has expired, all of them.
public struct RecentFailures: Sendable {
    public static let holdSeconds = 5.0
    public static let capacity = 10_000
    private var until: [CacheKey: (time: Double, detail: String)] = [:]

    public init() {}

    public var count: Int { until.count }

    /// Remembers that `key` failed at `now`, for the reason `detail`.
    public mutating func failed(_ key: CacheKey, detail: String, now: Double) {
        if until.count >= Self.capacity {
            until = until.filter { $0.value.time > now }
            if until.count >= Self.capacity { until.removeAll(keepingCapacity: true) }
        }
        until[key] = (now + Self.holdSeconds, detail)
    }

    /// Why `key` failed, when that was less than `holdSeconds` before `now`.
    public func failure(_ key: CacheKey, now: Double) -> String? {
        guard let f = until[key], f.time > now else { return nil }
        return f.detail
    }

    /// Forgets `key`: an answer for it came in after all.
    public mutating func answered(_ key: CacheKey) { until[key] = nil }
}
