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

/// Turns what audit mode saw into a reviewable allow-list in the plain format: deterministic order,
/// a reason comment on every entry with its hit counts, and a wildcard proposed only where at least
/// `wildcardThreshold` distinct names share a parent that is not a public suffix (said in a comment).
public enum AllowListSuggester {
    public static func suggest(_ seen: [SuggestionInput], existing: AllowList? = nil, defaultTypes: Set<RecordType> = RecordType.buildDefaults,
                               suffixes: PublicSuffixList?, wildcardThreshold: Int = 5) -> [String] {
        var policy = Policy(defaultTypes: defaultTypes)
        if let existing { policy.allowList = existing }
        // Only what the existing list does not already allow, type by type.
        let fresh = seen.filter { s in
            existing == nil || s.types.contains { t in
                if case .forward = PolicyDecision.decide(policy, name: s.name, type: t).action { return false }
                return true
            }
        }
        var byParent: [DNSName: [SuggestionInput]] = [:]
        for s in fresh { if let p = s.name.parent { byParent[p, default: []].append(s) } }
        let wildcardParents = byParent.filter { p, kids in
            kids.count >= wildcardThreshold && p.labelCount >= 2 && !(suffixes?.isPublicSuffix(p) ?? false)
        }.keys.sorted()

        var lines: [String] = []
        for p in wildcardParents {
            let kids = byParent[p]!.sorted { $0.name < $1.name }
            let merged = kids.reduce(into: (count: 0, clients: Set<String>(), types: Set<RecordType>(), first: Double.infinity, last: 0.0)) {
                $0.count += $1.count; $0.clients.formUnion($1.clients); $0.types.formUnion($1.types)
                $0.first = min($0.first, $1.firstSeen); $0.last = max($0.last, $1.lastSeen)
            }
            let examples = kids.prefix(3).map { $0.name.description }.joined(separator: ", ")
            lines.append("# wildcard proposed: \(kids.count) distinct names below \(p) (e.g. \(examples)); list them one by one if that is too broad")
            lines.append(entry("*." + p.description, merged.types, defaultTypes,
                               comment(merged.count, merged.clients.count, merged.types, merged.first, merged.last)))
        }
        let exact = fresh.filter { s in !wildcardParents.contains { s.name != $0 && s.name.isSubdomain(of: $0) } }
            .sorted { $0.name < $1.name }
        for s in exact {
            lines.append(entry(s.name.description, s.types, defaultTypes, comment(s.count, s.clients.count, s.types, s.firstSeen, s.lastSeen)))
        }
        return lines
    }

    private static func entry(_ pattern: String, _ types: Set<RecordType>, _ defaults: Set<RecordType>, _ comment: String) -> String {
        let typeField = types.isSubset(of: defaults) ? "" : types.map(\.mnemonic).sorted().joined(separator: ",")
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
