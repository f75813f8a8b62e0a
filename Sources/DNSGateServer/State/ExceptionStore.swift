import DNSGateCore
import Foundation
import Logging
import Synchronization

/// Owns the live exceptions: validates additions, persists every change to the state file (written to
/// a temporary file, synced, then renamed over the old one, so a crash never leaves half a file), and
/// prunes expired ones. The pipeline gets a fresh `ExceptionSet` after every change.
final class ExceptionStore: Sendable {
    private let path: String
    private let pipeline: QueryPipeline
    private let suffixes: PublicSuffixList?
    private let logger: Logger
    private let lock = Mutex(())

    init(path: String, pipeline: QueryPipeline, suffixes: PublicSuffixList?, logger: Logger, now: Double) throws {
        self.path = path; self.pipeline = pipeline; self.suffixes = suffixes; self.logger = logger
        let (saved, set, refused) = try SavedExceptions.load(path: path, suffixes: suffixes, now: now)
        let live = Set(set.all.map(\.id))
        // Counts from before the restart, for the exceptions still in force (QA pass 11 note).
        let hits = (try? SavedExceptions.hits(path: path)) ?? [:]
        pipeline.exceptionHits.withLock { h in for (id, n) in hits where live.contains(id) { h[id] = n } }
        for r in refused {
            logger.warning("dropping a saved exception that no longer validates",
                           metadata: ["concern": "exceptions", "id": "\(r.exception.id)", "pattern": "\(r.exception.pattern)", "error": "\(r.error)"])
        }
        pipeline.setExceptions(set)
        if saved.count != set.all.count { try persist(set) }
    }

    func add(pattern: String, client: String?, profile: String?, types: [String]?, seconds: Double, reason: String, now: Double) throws -> PolicyException {
        try lock.withLock { _ in
            var set = pipeline.exceptions
            set.prune(now: now)
            let e = PolicyException(id: Self.newID(), pattern: pattern, client: client, profile: profile, types: types,
                                    reason: reason, createdAt: now, expiresAt: now + seconds)
            try set.add(e, suffixes: suffixes, now: now)
            try persist(set)                 // on disk first: an exception the API confirmed survives a restart
            pipeline.setExceptions(set)
            logger.notice("exception added", metadata: ["concern": "exceptions", "id": "\(e.id)", "pattern": "\(pattern)",
                                                        "client": "\(client ?? "any")", "profile": "\(profile ?? "any")",
                                                        "expires_in_s": "\(Int(seconds))", "reason": "\(reason)"])
            return e
        }
    }

    func revoke(id: String) throws -> Bool {
        try lock.withLock { _ in
            var set = pipeline.exceptions
            guard set.revoke(id: id) else { return false }
            // In force at once, written or not: a revoke narrows the policy, and an unwritable state file
            // must not keep a name open. The error says a restart would bring it back.
            pipeline.setExceptions(set)
            logger.notice("exception revoked", metadata: ["concern": "exceptions", "id": "\(id)"])
            do { try persist(set) } catch {
                throw ConfigError(file: path, line: nil, "exception \(id) is revoked, but the state file could not be written "
                                  + "(\(error)); it would come back after a restart: fix the file's directory and revoke it again")
            }
            return true
        }
    }

    /// Keeps each exception's remaining real time after the wall clock stepped by `seconds`.
    func shift(by seconds: Double) {
        lock.withLock { _ in
            let set = pipeline.exceptions.shifted(by: seconds)
            guard !set.isEmpty else { return }
            pipeline.setExceptions(set)
            do { try persist(set) } catch { logger.error("cannot write the state file", metadata: ["concern": "exceptions", "error": "\(error)"]) }
        }
    }

    /// Removes expired exceptions; called every second by the service.
    func prune(now: Double) {
        lock.withLock { _ in
            var set = pipeline.exceptions
            let gone = set.prune(now: now)
            guard !gone.isEmpty else { return }
            pipeline.setExceptions(set)
            for e in gone { logger.notice("exception expired", metadata: ["concern": "exceptions", "id": "\(e.id)", "pattern": "\(e.pattern)"]) }
            do { try persist(set) } catch { logger.error("cannot write the state file", metadata: ["concern": "exceptions", "error": "\(error)"]) }
        }
    }

    /// Writes the hit counts as they stand, so a clean restart keeps them; called on shutdown.
    /// Nothing to write without live exceptions.
    func saveHits() {
        lock.withLock { _ in
            let set = pipeline.exceptions
            guard !set.isEmpty else { return }
            do { try persist(set) } catch { logger.error("cannot write the state file", metadata: ["concern": "exceptions", "error": "\(error)"]) }
        }
    }

    private func persist(_ set: ExceptionSet) throws {
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o750]) }
        let enc = JSONEncoder(); enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        let ids = Set(set.all.map(\.id))
        let hits = pipeline.exceptionHits.withLock { $0.filter { ids.contains($0.key) && $0.value > 0 } }
        let data = try enc.encode(SavedExceptions.StateFile(exceptions: set.all, hits: hits.isEmpty ? nil : hits))
        let tmp = path + ".tmp"
        guard FileManager.default.createFile(atPath: tmp, contents: data, attributes: [.posixPermissions: 0o640]) else {
            throw ConfigError(file: tmp, line: nil, "cannot write the state file")
        }
        let fd = open(tmp, O_RDONLY)
        if fd >= 0 { fsync(fd); close(fd) }
        guard rename(tmp, path) == 0 else { throw ConfigError(file: path, line: nil, "cannot replace the state file (errno \(errno))") }
    }

    static func newID() -> String {
        "x" + String((0..<6).map { _ in "abcdefghjkmnpqrstuvwxyz23456789".randomElement()! })
    }
}

/// The state file as `serve` reads it at start, shared with `validate` so a file that would stop the
/// server fails the check run before it (systemd's ExecStartPre) instead of a restart loop.
public enum SavedExceptions {
    /// `hits`: each exception's hits when the file was written, by ID (absent in files of older
    /// versions, which also ignore it).
    struct StateFile: Codable { var version = 1; var exceptions: [PolicyException]; var hits: [String: Int]? = nil }

    /// The live saved exceptions as `serve` starts with them, and those it refuses: saved by an older
    /// binary under looser rules (a lifetime over 30 days, say). `validate` names those before a start
    /// drops them; expired ones go silently.
    public static func load(path: String, suffixes: PublicSuffixList?, now: Double) throws
        -> (saved: [PolicyException], live: ExceptionSet, refused: [(exception: PolicyException, error: Error)]) {
        let saved = try read(path: path)
        var set = ExceptionSet()
        var refused: [(exception: PolicyException, error: Error)] = []
        for e in saved where e.expiresAt > now {
            do { try set.add(e, suffixes: suffixes, now: now) } catch { refused.append((e, error)) }
        }
        return (saved, set, refused)
    }

    /// The saved exceptions, expired ones included; none when the file does not exist yet (first start).
    public static func read(path: String) throws -> [PolicyException] { try readFile(path: path).exceptions }

    /// The hit counts saved with the exceptions, by ID.
    static func hits(path: String) throws -> [String: Int] { try readFile(path: path).hits ?? [:] }

    private static func readFile(path: String) throws -> StateFile {
        guard FileManager.default.fileExists(atPath: path) else { return StateFile(exceptions: []) }
        let data: Data
        guard access(path, R_OK) == 0 else {
            // Foundation's text for this says only "you don't have permission"; the owner and mode say why.
            let why = String(cString: strerror(errno))
            var st = stat()
            let owner = stat(path, &st) == 0 ? " (owner uid \(st.st_uid), mode \(String(st.st_mode & 0o777, radix: 8)); dnsgate runs as uid \(getuid()))" : ""
            throw ConfigError(file: path, line: nil, "cannot read the state file: \(why)\(owner)")
        }
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ConfigError(file: path, line: nil, "cannot read the state file: \(error.localizedDescription)")
        }
        do { return try JSONDecoder().decode(StateFile.self, from: data) } catch {
            throw ConfigError(file: path, line: nil, "state file is not valid (\(error)); move it aside to start without its exceptions")
        }
    }
}
