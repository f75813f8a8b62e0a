/// Where an entry came from, for every error, log line and `dnsgate check` answer.
public struct SourceLocation: Hashable, Sendable, CustomStringConvertible {
    public let file: String
    public let line: Int
    public init(file: String, line: Int) { self.file = file; self.line = line }
    /// `file:line`; just the name for a place without lines (a config key, an exception).
    public var description: String { line > 0 ? "\(file):\(line)" : file }
}

/// How a denied query is answered (README.md, "Sinkhole modes"). Configurable globally and per entry (RPZ).
public enum SinkholeMode: Sendable, Equatable, CustomStringConvertible {
    case nxdomain
    case nodata
    case refused
    /// 0.0.0.0 for A, :: for AAAA, NODATA for other types.
    case null
    /// The given addresses for A / AAAA; NODATA for other types or a family with no address.
    case redirect(v4: [UInt8]?, v6: [UInt8]?)
    /// No reply at all: the client times out. Only for clients that retry elsewhere; builds stall on it.
    case drop

    public init?(name: String, redirectV4: [UInt8]? = nil, redirectV6: [UInt8]? = nil) {
        switch name.lowercased() {
        case "nxdomain": self = .nxdomain
        case "nodata": self = .nodata
        case "refused": self = .refused
        case "null": self = .null
        case "drop": self = .drop
        case "redirect":
            guard redirectV4 != nil || redirectV6 != nil else { return nil }
            self = .redirect(v4: redirectV4, v6: redirectV6)
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .nxdomain: return "nxdomain"
        case .nodata: return "nodata"
        case .refused: return "refused"
        case .null: return "null"
        case .redirect: return "redirect"
        case .drop: return "drop"
        }
    }
    public static let allNames = ["nxdomain", "nodata", "refused", "null", "redirect", "drop"]
}

/// What an entry does to a name it matches.
public enum EntryAction: Sendable, Equatable {
    /// Forward to an upstream (plain list entries, RPZ `CNAME rpz-passthru.`).
    case allow
    /// Answer with this denial (RPZ `CNAME .` and `CNAME *.`).
    case deny(SinkholeMode)
    /// Answer with these records (RPZ local data).
    case localData([LocalRecord])
}

/// One line of an allow-list: a name or `*.suffix`, what it does, which types, why, and where it was written.
///
/// Immutable, and a class: the query path passes the matching entry along in the verdict, and a
/// struct's copy retained and released each of its five reference-counted fields on every query.
public final class PolicyEntry: Sendable, Equatable {
    /// The name for exact entries; the suffix (without `*.`) for wildcard entries.
    public let name: DNSName
    public let isWildcard: Bool
    public let action: EntryAction
    /// Query types this entry allows; nil means the policy's default set.
    public let types: Set<RecordType>?
    public let reason: String?
    public let source: SourceLocation
    /// Read from an RPZ zone, which has no way to write a type list: a change of types means moving the
    /// entry to a plain list (`dnsgate suggest` says so).
    public let fromZone: Bool

    public init(name: DNSName, isWildcard: Bool, action: EntryAction = .allow, types: Set<RecordType>? = nil,
                reason: String? = nil, source: SourceLocation, fromZone: Bool = false) {
        self.name = name; self.isWildcard = isWildcard; self.action = action
        self.types = types; self.reason = reason; self.source = source; self.fromZone = fromZone
    }

    /// The entry as written in a plain list: `*.example.com.` or `example.com.`.
    public var pattern: String { isWildcard ? "*." + name.description : name.description }

    public static func == (a: PolicyEntry, b: PolicyEntry) -> Bool {
        a === b || (a.name == b.name && a.isWildcard == b.isWildcard && a.action == b.action && a.types == b.types
                    && a.reason == b.reason && a.source == b.source && a.fromZone == b.fromZone)
    }
}

/// A broken allow-list or zone file. Loading stops at the first one: a skipped allow entry breaks builds,
/// a misread one leaks.
public struct PolicyLoadError: Error, CustomStringConvertible, Equatable {
    public let location: SourceLocation
    public let message: String
    public init(_ location: SourceLocation, _ message: String) { self.location = location; self.message = message }
    public var description: String { "\(location): \(message)" }
}
