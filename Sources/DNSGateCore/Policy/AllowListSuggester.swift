import Foundation

/// What audit mode saw of one name, accumulated by the server.
public struct SuggestionInput: Sendable {
    public let name: DNSName
    public private(set) var count = 0
    public private(set) var clients: Set<String> = []
    public private(set) var types: Set<RecordType> = []
    public private(set) var firstSeen = Double.infinity
    public private(set) var lastSeen = 0.0
    static let maxClients = 16

    public init(name: DNSName) { self.name = name }

    public mutating func record(client: String, type: RecordType, at t: Double) {
        count += 1
        if clients.count < Self.maxClients { clients.insert(client) }
        types.insert(type)
        firstSeen = min(firstSeen, t); lastSeen = max(lastSeen, t)
    }
}

/// One line of a suggestion. A pattern the list already has is never suggested again (a duplicate is
/// a load error, and the bare new types would replace the entry's own): it becomes a change of that entry.
public enum SuggestedLine: Equatable, Sendable {
    case comment(String)
    case add(String)
    /// This line replaces the entry at the location: its types plus the ones audit mode saw.
    case change(SourceLocation, String)

    /// As text to append to an allow file: a change is a comment, so the result always loads.
    public var plain: String {
        switch self {
        case .comment(let l), .add(let l): return l
        case .change(let at, let l): return "# change \(at) to: \(l)"
        }
    }

    /// As a diff against one file; `oldLine` gives that file's text at a location, nil for a location
    /// in another file, whose change stays a comment.
    public func diff(oldLine: (SourceLocation) -> String?) -> [String] {
        switch self {
        case .comment(let l): return [l]
        case .add(let l): return ["+ " + l]
        case .change(let at, let l):
            guard let old = oldLine(at) else { return [plain] }
            return ["# \(at)", "- " + old, "+ " + l]
        }
    }
}

/// Turns what audit mode saw into a reviewable allow-list in the plain format: deterministic order,
/// a reason comment on every entry with its hit counts, and a wildcard proposed only where at least
/// `wildcardThreshold` distinct names share a parent that is not a public suffix (said in a comment).
public enum AllowListSuggester {
    public static func suggest(_ seen: [SuggestionInput], existing: AllowList? = nil, defaultTypes: Set<RecordType> = RecordType.buildDefaults,
                               suffixes: PublicSuffixList?, wildcardThreshold: Int = 5) -> [SuggestedLine] {
        var policy = Policy(defaultTypes: defaultTypes)
        if let existing { policy.allowList = existing }
        var lines: [SuggestedLine] = []
        // A label that is a literal '*' cannot be written in an allow-list: it would read as a wildcard.
        let (unwritable, writable) = seen.reduce(into: ([SuggestionInput](), [SuggestionInput]())) { out, s in
            if s.name.labels.contains(where: { $0.contains(UInt8(ascii: "*")) }) { out.0.append(s) } else { out.1.append(s) }
        }
        for s in unwritable.sorted(by: { $0.name < $1.name }) {
            lines.append(.comment("# not proposed: \(s.name) has a '*' in a label, which an allow-list cannot write (it would be a wildcard)"))
        }
        // Only what the existing list does not already allow, type by type.
        let fresh = writable.filter { s in
            existing == nil || s.types.contains { t in
                if case .forward = PolicyDecision.decide(policy, name: s.name, type: t).action { return false }
                return true
            }
        }
        // A name with an entry of its own stays that entry's change: a wildcard never overrides an exact
        // entry, so a type folded into one would still be denied for that name.
        let listedExactly = { (s: SuggestionInput) in existing?.entry(for: s.name, wildcard: false) != nil }
        var byParent: [DNSName: [SuggestionInput]] = [:]
        for s in fresh where !listedExactly(s) { if let p = s.name.parent { byParent[p, default: []].append(s) } }
        let wildcardParents = byParent.filter { p, kids in
            kids.count >= wildcardThreshold && p.labelCount >= 2 && !(suffixes?.isPublicSuffix(p) ?? false)
        }.keys.sorted()

        for p in wildcardParents {
            let kids = byParent[p]!.sorted { $0.name < $1.name }
            let merged = kids.reduce(into: (count: 0, clients: Set<String>(), types: Set<RecordType>(), first: Double.infinity, last: 0.0)) {
                $0.count += $1.count; $0.clients.formUnion($1.clients); $0.types.formUnion($1.types)
                $0.first = min($0.first, $1.firstSeen); $0.last = max($0.last, $1.lastSeen)
            }
            let examples = kids.prefix(3).map { $0.name.description }.joined(separator: ", ")
            lines.append(.comment("# wildcard proposed: \(kids.count) distinct names below \(p) (e.g. \(examples)); list them one by one if that is too broad"))
            lines.append(line(p, wildcard: true, merged.types, defaultTypes, existing,
                              comment(merged.count, merged.clients.count, merged.types, merged.first, merged.last)))
        }
        // A name the proposed wildcard will decide is left to it; one a more specific entry decides
        // (an exact one, or a longer wildcard) keeps a line of its own.
        let decidedBelow = { (s: SuggestionInput, p: DNSName) in
            existing?.match(s.name).map { $0.entry.name != p && $0.entry.name.isSubdomain(of: p) } ?? false
        }
        let exact = fresh.filter { s in
            listedExactly(s) || !wildcardParents.contains { s.name != $0 && s.name.isSubdomain(of: $0) && !decidedBelow(s, $0) }
        }
            .sorted { $0.name < $1.name }
        for s in exact {
            lines.append(line(s.name, wildcard: false, s.types, defaultTypes, existing,
                              comment(s.count, s.clients.count, s.types, s.firstSeen, s.lastSeen)))
        }
        return lines
    }

    /// The entry for `name` (or `*.name`) with the types seen, against what the list already has: the
    /// same pattern becomes a change keeping that entry's types (a comment when an RPZ zone holds it); a
    /// new, more specific entry under a wildcard keeps the wildcard's types too, as it will decide those
    /// names instead. A new wildcard keeps the default types: it speaks for names audit mode never saw.
    private static func line(_ name: DNSName, wildcard: Bool, _ types: Set<RecordType>, _ defaults: Set<RecordType>,
                             _ existing: AllowList?, _ comment: String) -> SuggestedLine {
        // '#' starts a comment in a plain list; escaped, it stays part of the label.
        let pattern = (wildcard ? "*." : "") + name.description.replacingOccurrences(of: "#", with: "\\#")
        if let same = existing?.entry(for: name, wildcard: wildcard) {
            let changed = entry(pattern, (same.types ?? defaults).union(types), defaults, merged: true, comment)
            guard same.fromZone else { return .change(same.source, changed) }
            return .comment("# \(same.source) lists \(pattern) in an RPZ zone, which cannot list query types; "
                            + "to allow the types audit mode saw, move it to a plain allow-list as: \(changed)")
        }
        var up = name.parent
        while let p = up, let existing {
            if let cover = existing.entry(for: p, wildcard: true), cover.action == .allow {
                return .add(entry(pattern, (cover.types ?? defaults).union(types), defaults, merged: true, comment))
            }
            up = p.parent
        }
        return .add(entry(pattern, wildcard ? defaults.union(types) : types, defaults, merged: wildcard, comment))
    }

    /// A plain-list line; the type field is left out when it would say the defaults: for a new entry
    /// whenever the types are among them, for a merged one only when they are exactly them.
    private static func entry(_ pattern: String, _ types: Set<RecordType>, _ defaults: Set<RecordType>, merged: Bool,
                              _ comment: String) -> String {
        let saysDefaults = merged ? types == defaults : types.isSubset(of: defaults)
        let typeField = saysDefaults ? "" : types.map(\.mnemonic).sorted().joined(separator: ",")
        return [pattern, typeField].filter { !$0.isEmpty }.joined(separator: "  ") + "  # " + comment
    }

    private static func comment(_ count: Int, _ clients: Int, _ types: Set<RecordType>, _ first: Double, _ last: Double) -> String {
        let t = types.map(\.mnemonic).sorted().joined(separator: ",")
        return "audit: \(count) quer\(count == 1 ? "y" : "ies") from \(clients) client\(clients == 1 ? "" : "s"), types \(t), "
            + "first \(stamp(first)), last \(stamp(last))"
    }

    static func stamp(_ t: Double) -> String {
        let f = ISO8601DateFormatter()
        return f.string(from: Date(timeIntervalSince1970: t))
    }
}
