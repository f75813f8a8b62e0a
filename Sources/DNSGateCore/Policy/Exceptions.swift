/// An explicit, expiring exception: a name (or `*.suffix`) allowed for a while, for one client prefix
/// or profile or for everyone, with a reason, for at most `ExceptionSet.maxLifetime`. Exceptions never
/// outlive `expiresAt`: matching checks the clock on every use, expired ones are pruned on every change.
public struct PolicyException: Codable, Sendable, Equatable {
    public let id: String
    public let pattern: String
    public let client: String?
    public let profile: String?
    public let types: [String]?
    public let reason: String
    public let createdAt: Double
    public let expiresAt: Double

    public init(id: String, pattern: String, client: String?, profile: String?, types: [String]?, reason: String,
                createdAt: Double, expiresAt: Double) {
        self.id = id; self.pattern = pattern; self.client = client; self.profile = profile; self.types = types
        self.reason = reason; self.createdAt = createdAt; self.expiresAt = expiresAt
    }
}

/// Why an exception was refused.
public struct ExceptionError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ d: String) { description = d }
}

/// The live exceptions, compiled for matching. A value type: the server swaps a new one in under a lock.
public struct ExceptionSet: Sendable {
    private struct Compiled: Sendable {
        let exception: PolicyException
        let name: DNSName
        let wildcard: Bool
        let prefix: ClientPrefix?
        let types: Set<RecordType>?

        func sameScope(as o: Compiled) -> Bool {
            name == o.name && wildcard == o.wildcard && prefix == o.prefix && exception.profile == o.exception.profile && types == o.types
        }

        /// Whether this one allows every query `o` allows: same name and types, and a scope that
        /// contains `o`'s (everyone contains every profile and prefix; a prefix, the prefixes inside it).
        func covers(_ o: Compiled) -> Bool {
            guard name == o.name && wildcard == o.wildcard && types == o.types else { return false }
            switch (exception.profile, prefix) {
            case (nil, nil): return true
            case (let p?, _): return p == o.exception.profile
            case (nil, let mine?): return o.exception.profile == nil && o.prefix.map(mine.covers) == true
            }
        }

        var scopeText: String {
            exception.profile.map { "profile \($0)" } ?? prefix.map { "client \($0)" } ?? "everyone"
        }
    }
    private var items: [Compiled] = []

    public init() {}

    public var all: [PolicyException] { items.map(\.exception) }
    public var isEmpty: Bool { items.isEmpty }

    /// The longest an exception may last: a name needed for longer belongs in an allow-list file,
    /// where it is reviewed, not in an exception that quietly outlives its incident.
    public static let maxLifetime: Double = 30 * 86_400
    /// Room for a sentence and a ticket link; the reason travels in every log line the exception touches.
    public static let maxReasonLength = 500

    public static func isInvisibleOrBreaking(_ c: Unicode.Scalar) -> Bool {
        switch c.properties.generalCategory {
        case .control, .format, .lineSeparator, .paragraphSeparator: return true
        default: return false
        }
    }

    /// Validates and adds an exception.
    /// - Throws: `ExceptionError` for a bad pattern, prefix, type, lifetime, a missing reason, or a live
    ///   exception with the same scope (revoke it to change it).
    public mutating func add(_ e: PolicyException, suffixes: PublicSuffixList?, now: Double) throws {
        guard e.expiresAt > now else { throw ExceptionError("lifetime must be in the future") }
        // Against now as well: one made while the clock was far ahead would otherwise outlive the rule.
        guard e.expiresAt - e.createdAt <= Self.maxLifetime, e.expiresAt - now <= Self.maxLifetime + 60 else {
            throw ExceptionError("an exception lasts at most 30 days; list a name needed for longer in an allow-list file")
        }
        guard !e.reason.trimmingCharacters().isEmpty else { throw ExceptionError("an exception needs a reason") }
        // One line of visible text: the reason is printed in `allow list`, logs and alerts, where a line
        // break (C0, C1, U+2028) would forge a row and a bidi override would show it reversed.
        guard !e.reason.unicodeScalars.contains(where: Self.isInvisibleOrBreaking) else {
            throw ExceptionError("the reason must be one line of text, without control, format or line-separator characters")
        }
        guard e.reason.utf8.count <= Self.maxReasonLength else {
            throw ExceptionError("the reason is longer than \(Self.maxReasonLength) bytes; link to the ticket instead")
        }
        let here = SourceLocation(file: "exception \(e.id)", line: 0)
        let (name, wildcard): (DNSName, Bool)
        let types: Set<RecordType>?
        do {
            (name, wildcard) = try PlainListLoader.parsePattern(e.pattern, at: here, suffixes: suffixes)
            types = try e.types.map { try PlainListLoader.parseTypes($0.joined(separator: ","), at: here) }
        } catch let err as PolicyLoadError { throw ExceptionError(err.message) }
        var prefix: ClientPrefix?
        if let c = e.client {
            guard let p = ClientPrefix(c) else { throw ExceptionError("bad client prefix '\(c)'") }
            prefix = p
        }
        guard !items.contains(where: { $0.exception.id == e.id }) else { throw ExceptionError("duplicate id \(e.id)") }
        let new = Compiled(exception: e, name: name, wildcard: wildcard, prefix: prefix, types: types)
        if let same = items.first(where: { $0.exception.expiresAt > now && $0.sameScope(as: new) }) {
            throw ExceptionError("exception \(same.exception.id) already allows this (\(same.exception.pattern)); revoke it to change it")
        }
        // A second ID for a permission a wider one already grants for as long: revoking one would
        // quietly leave the other in force (QA pass 12, F6). A longer or narrower-in-time one is taken.
        if let wider = items.first(where: { $0.exception.expiresAt >= e.expiresAt && $0.covers(new) }) {
            throw ExceptionError("exception \(wider.exception.id) (\(wider.exception.pattern), \(wider.scopeText)) already allows this "
                                 + "for at least as long; revoke it to change it")
        }
        items.append(new)
    }

    /// The same exceptions with every time moved by `seconds`: after the wall clock stepped by that
    /// much, each keeps the real time it had left.
    public func shifted(by seconds: Double) -> ExceptionSet {
        var out = self
        out.items = items.map { c in
            let e = c.exception
            return Compiled(exception: PolicyException(id: e.id, pattern: e.pattern, client: e.client, profile: e.profile, types: e.types,
                                                       reason: e.reason, createdAt: e.createdAt + seconds, expiresAt: e.expiresAt + seconds),
                            name: c.name, wildcard: c.wildcard, prefix: c.prefix, types: c.types)
        }
        return out
    }

    @discardableResult
    public mutating func revoke(id: String) -> Bool {
        let before = items.count
        items.removeAll { $0.exception.id == id }
        return items.count != before
    }

    /// Drops expired exceptions; returns the ones dropped.
    @discardableResult
    public mutating func prune(now: Double) -> [PolicyException] {
        let gone = items.filter { $0.exception.expiresAt <= now }.map(\.exception)
        items.removeAll { $0.exception.expiresAt <= now }
        return gone
    }

    /// What live exceptions say about a query.
    public enum Match: Sendable, Equatable {
        /// This exception allows the query.
        case allows(PolicyException)
        /// This exception allows the name, but for other types only: a type denial (NODATA), not an
        /// unknown name.
        case nameOnly(PolicyException)
    }

    /// The first live exception allowing this query, else the first allowing its name for other types.
    public func match(name: DNSName, type: RecordType, clientAddress: [UInt8]?, profile: String, defaultTypes: Set<RecordType>,
                      now: Double) -> Match? {
        var nameOnly: PolicyException?
        for c in items where c.exception.expiresAt > now {
            if let p = c.exception.profile, p != profile { continue }
            if let prefix = c.prefix { guard let a = clientAddress, prefix.contains(a) else { continue } }
            guard c.wildcard ? (name != c.name && name.isSubdomain(of: c.name)) : name == c.name else { continue }
            if (c.types ?? defaultTypes).contains(type) { return .allows(c.exception) }
            if nameOnly == nil { nameOnly = c.exception }
        }
        return nameOnly.map { .nameOnly($0) }
    }
}

extension String {
    func trimmingCharacters() -> String { Substring(self).trimmingCharacters() }
}
