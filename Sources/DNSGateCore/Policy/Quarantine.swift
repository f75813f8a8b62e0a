/// A registered domain sinkholed for one client after a detector alert, until an operator lifts it or
/// `until` passes. Checked only for queries policy would otherwise answer.
public struct QuarantineEntry: Sendable, Codable, Equatable {
    public let id: String
    public let client: String
    public let domain: String
    public let until: Double
    public let reason: String
    public init(id: String, client: String, domain: String, until: Double, reason: String) {
        self.id = id; self.client = client; self.domain = domain; self.until = until; self.reason = reason
    }
}

public struct QuarantineSet: Sendable {
    private var entries: [(QuarantineEntry, DNSName)] = []
    public init() {}
    public var all: [QuarantineEntry] { entries.map(\.0) }
    public var isEmpty: Bool { entries.isEmpty }

    /// Adds or extends the quarantine of `domain` for `client`; returns the entry in force.
    public mutating func add(client: String, domain: DNSName, until: Double, reason: String, id: String) -> QuarantineEntry {
        if let i = entries.firstIndex(where: { $0.0.client == client && $0.1 == domain }) {
            let old = entries[i].0
            let e = QuarantineEntry(id: old.id, client: client, domain: old.domain, until: max(old.until, until), reason: old.reason)
            entries[i].0 = e
            return e
        }
        let e = QuarantineEntry(id: id, client: client, domain: domain.description, until: until, reason: reason)
        entries.append((e, domain))
        return e
    }

    @discardableResult
    public mutating func lift(id: String) -> Bool {
        let n = entries.count
        entries.removeAll { $0.0.id == id }
        return entries.count != n
    }

    @discardableResult
    public mutating func prune(now: Double) -> [QuarantineEntry] {
        let gone = entries.filter { $0.0.until <= now }.map(\.0)
        entries.removeAll { $0.0.until <= now }
        return gone
    }

    /// Moves every end by `seconds`, after the wall clock stepped by that much: a quarantine keeps the
    /// real time it had left (a forward step would otherwise lift it at once).
    public mutating func shift(by seconds: Double) {
        for i in entries.indices {
            let e = entries[i].0
            entries[i].0 = QuarantineEntry(id: e.id, client: e.client, domain: e.domain, until: e.until + seconds, reason: e.reason)
        }
    }

    public func match(client: String, name: DNSName, now: Double) -> QuarantineEntry? {
        entries.first { $0.0.client == client && $0.0.until > now && name.isSubdomain(of: $0.1) }?.0
    }
}
