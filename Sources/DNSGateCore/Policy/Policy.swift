import Foundation

/// Enforce denies; audit forwards what enforce would deny and records it (the way teams adopt egress control).
public enum PolicyMode: String, Sendable, CaseIterable { case enforce, audit }

/// Everything that decides a query's fate, built once per (re)load and swapped in whole.
public struct Policy: Sendable {
    public var allowList: AllowList
    public var mode: PolicyMode
    public var sinkhole: SinkholeMode
    /// TTL of synthesized answers and of their SOA MINIMUM (RFC 2308 §5).
    public var sinkholeTTL: UInt32
    /// Types allowed for entries that do not list their own.
    public var defaultTypes: Set<RecordType>
    /// Whether the names an upstream's answer CNAMEs to must be allowed too.
    public var cnameTargets: CNAMETargets

    public init(allowList: AllowList = AllowList(), mode: PolicyMode = .enforce, sinkhole: SinkholeMode = .nxdomain,
                sinkholeTTL: UInt32 = 60, defaultTypes: Set<RecordType> = RecordType.buildDefaults,
                cnameTargets: CNAMETargets = .any) {
        self.allowList = allowList; self.mode = mode; self.sinkhole = sinkhole
        self.sinkholeTTL = sinkholeTTL; self.defaultTypes = defaultTypes; self.cnameTargets = cnameTargets
    }
}

/// What an allowed name's answer may CNAME to. `any`: the answer is passed on as the upstream
/// resolved it. `allowed`: every CNAME target in the answer must be allowed for the client as the
/// question would be (same profile, type and exceptions), or the query is denied as the target would
/// be; a CDN behind an allowed name then needs its own entry, and a name an attacker can point
/// anywhere (a CNAME under an allowed wildcard) no longer hands out an unlisted host's address.
public enum CNAMETargets: String, Sendable, CaseIterable { case any, allowed }

/// Why a query was (or, in audit mode, would have been) denied.
public enum DenyReason: Sendable, Equatable, CustomStringConvertible {
    case notListed
    case typeNotAllowed(RecordType, SourceLocation)
    case rpzAction(SinkholeMode, SourceLocation)
    /// The detector quarantined this registered domain for this client.
    case quarantined(id: String, reason: String)
    /// The upstream's answer CNAMEs to this name, which the policy does not allow
    /// (`policy.cname_targets: allowed`).
    case cnameTarget(DNSName)

    public var description: String {
        switch self {
        case .notListed: return "name not on the allow-list"
        case .typeNotAllowed(let t, let at): return "type \(t) not allowed by \(at)"
        case .rpzAction(let m, let at): return "rpz \(m) at \(at)"
        case .quarantined(let id, let why): return "quarantined (\(id): \(why))"
        case .cnameTarget(let t): return "CNAME target \(t) not allowed"
        }
    }
    /// `self == .notListed`, by pattern: the synthesized `==` copies both enums.
    public var isNotListed: Bool { if case .notListed = self { return true }; return false }
    /// Short machine-friendly tag for logs and metrics labels.
    public var tag: String {
        switch self {
        case .notListed: return "not_listed"
        case .typeNotAllowed: return "type_not_allowed"
        case .rpzAction: return "rpz"
        case .quarantined: return "quarantined"
        case .cnameTarget: return "cname_target"
        }
    }
}

/// The verdict for one query. Exactly one of forward / sinkhole / local is acted on.
public struct PolicyVerdict: Sendable {
    public enum Action: Sendable { case forward, sinkhole(SinkholeMode), local([LocalRecord]) }
    public let action: Action
    /// The entry that matched, with its index for hit counters; nil when none did.
    public let entry: PolicyEntry?
    public let entryIndex: Int?
    /// Set when the query was denied, or would have been in audit mode.
    public let denial: DenyReason?
    /// Whether `denial` is set. Read by pattern: `denial != nil` resolves to `Optional`'s `Equatable`
    /// `!=`, which copies both sides and destroyed them through the runtime's generic tuple witness,
    /// about 170 instructions a call, several calls a query on the sinkhole path.
    public var isDenied: Bool { if case .some = denial { return true }; return false }
    public var audited: Bool { isDenied && isForward }
    public var isForward: Bool { if case .forward = action { return true }; return false }
}

/// Decides a query: name first (most specific entry), then its type. Fails closed: anything not
/// explicitly allowed is denied.
public enum PolicyDecision {
    public static func decide(_ policy: Policy, name: DNSName, type: RecordType) -> PolicyVerdict {
        let index: Int, entry: PolicyEntry
        switch policy.allowList.lookup(name) {
        case .entry(let i, let e): (index, entry) = (i, e)
        case let found:
            // Audit mode forwards unlisted names, but only for the types a build needs: it must not
            // open the tunnels' carriers (TXT, NULL, ANY…) while a team is learning its allow-list.
            if auditKeepsClosed(policy, type) { return typeDenied(policy, type, by: Self.defaultTypesSource) }
            // A name with allowed names below it exists: NODATA, not NXDOMAIN (RFC 8020; QA pass 10, F5).
            let mode = if case .namesBelow = found, policy.sinkhole == .nxdomain { SinkholeMode.nodata } else { policy.sinkhole }
            return deny(policy, .notListed, mode: mode, entry: nil, index: nil)
        }
        switch entry.action {
        case .allow:
            // Each set asked in place: `entry.types ?? policy.defaultTypes` made a copy (a retain) per query.
            let allowed = if let types = entry.types { types.contains(type) } else { policy.defaultTypes.contains(type) }
            guard allowed else { return typeDenied(policy, type, by: entry.source, entry: entry, index: index) }
            return PolicyVerdict(action: .forward, entry: entry, entryIndex: index, denial: nil)
        case .deny(let mode):
            // An explicit RPZ denial is enforced in audit mode too: someone wrote it on purpose.
            return PolicyVerdict(action: .sinkhole(mode), entry: entry, entryIndex: index, denial: .rpzAction(mode, entry.source))
        case .localData(let records):
            return PolicyVerdict(action: .local(records), entry: entry, entryIndex: index, denial: nil)
        }
    }

    /// A type the matching rule does not allow: whatever the sinkhole mode, NODATA. The name exists and
    /// its other types stay resolvable: NXDOMAIN or REFUSED would make resolvers give up on the name
    /// (RFC 8020), a fake address would answer a type it does not fit, and a dropped AAAA query stalls
    /// every `getaddrinfo` for its timeout.
    /// Audit mode forwards it only for the default types, as for unlisted names: the carriers (TXT, NULL,
    /// ANY…) stay closed under a listed name too, above all under a wildcard, where a tunnel would run.
    public static func typeDenied(_ p: Policy, _ type: RecordType, by source: SourceLocation,
                                  entry: PolicyEntry? = nil, index: Int? = nil) -> PolicyVerdict {
        if auditKeepsClosed(p, type) {
            return PolicyVerdict(action: .sinkhole(.nodata), entry: entry, entryIndex: index, denial: .typeNotAllowed(type, source))
        }
        return deny(p, .typeNotAllowed(type, source), mode: .nodata, entry: entry, index: index)
    }

    /// The one rule for what audit mode does not forward: a type outside the defaults, whatever the name.
    @inline(__always)
    private static func auditKeepsClosed(_ p: Policy, _ type: RecordType) -> Bool { p.mode == .audit && !p.defaultTypes.contains(type) }

    /// Where a denial by the default type set points: the config key that sets it.
    public static let defaultTypesSource = SourceLocation(file: "policy.default_types", line: 0)

    private static func deny(_ p: Policy, _ why: DenyReason, mode: SinkholeMode, entry: PolicyEntry?, index: Int?) -> PolicyVerdict {
        PolicyVerdict(action: p.mode == .audit ? .forward : .sinkhole(mode), entry: entry, entryIndex: index, denial: why)
    }
}

/// Loads allow-list files, choosing the format by name and content (zones/README.md).
public enum PolicyFileLoader {
    public enum Format: String, Sendable { case plain, rpz }

    /// RPZ when the file ends in `.rpz` or `.zone`, or its first meaningful line is a `$` directive or
    /// carries a SOA; plain otherwise.
    public static func detectFormat(path: String, text: String) -> Format {
        if path.hasSuffix(".rpz") || path.hasSuffix(".zone") { return .rpz }
        for raw in text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {   // "\r\n" is one Character
            let line = raw.trimmingCharacters()
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("$") { return .rpz }
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map { $0.uppercased() }
            return fields.contains("SOA") ? .rpz : .plain
        }
        return .plain
    }

    public static func load(path: String, suffixes: PublicSuffixList?) throws -> [PolicyEntry] {
        let text: String
        do { text = try TextFile.read(path) } catch {
            throw PolicyLoadError(SourceLocation(file: path, line: 0), "cannot read: \(error)")
        }
        return try load(path: path, text: text, suffixes: suffixes)
    }

    /// The entries of `text`, read from `path` (which names the file in errors and picks the format).
    public static func load(path: String, text: String, suffixes: PublicSuffixList?) throws -> [PolicyEntry] {
        switch detectFormat(path: path, text: text) {
        case .plain: return try PlainListLoader.load(text: text, file: path, suffixes: suffixes)
        case .rpz: return try RPZLoader.load(text: text, file: path, suffixes: suffixes)
        }
    }
}
