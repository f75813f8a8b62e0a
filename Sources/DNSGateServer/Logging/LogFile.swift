import Glibc
import Synchronization

/// An append-only log destination whose failures never stop the server. Foundation's
/// `FileHandle.write` ends the process on any error: a full disk under the query log, or a log
/// reader that went away (a closed pipe on standard output), took every runner's DNS down with it.
/// Here a failed write loses those bytes and says why; the caller counts and reports.
///
/// A file opened by path is reopened by `reopen()` (`dnsgate reload`, SIGHUP), so that logrotate's
/// rename-then-create works: without it the server went on writing to the renamed file.
public final class LogFile: Sendable {
    /// nil for an inherited descriptor, which is never reopened.
    private let path: String?
    private let name: String
    private let fd: Mutex<CInt>

    public static let standardError = LogFile(descriptor: STDERR_FILENO, name: "standard error")
    public static let standardOutput = LogFile(descriptor: STDOUT_FILENO, name: "standard output")

    /// Opens `path` for appending, creating it (mode 0640) if missing.
    public init(path: String) throws(LogFileError) {
        self.path = path; name = path
        fd = Mutex(try Self.open(path))
    }

    private init(descriptor: CInt, name: String) { path = nil; self.name = name; fd = Mutex(descriptor) }

    private static func open(_ path: String) throws(LogFileError) -> CInt {
        let fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw LogFileError(path: path, errno: errno) }
        return fd
    }

    /// Writes all of `bytes`, or returns the error that stopped it (what was written stays written).
    public func write(_ bytes: [UInt8]) -> LogFileError? {
        fd.withLock { fd in
            bytes.withUnsafeBytes { buffer in
                var offset = 0
                while offset < buffer.count {
                    let n = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                    if n > 0 { offset += n; continue }
                    if n < 0 && errno == EINTR { continue }
                    return LogFileError(path: name, errno: n < 0 ? errno : EIO)
                }
                return nil
            }
        }
    }

    /// Opens the path again and writes there from now on; the old file is closed. Nothing happens
    /// for standard output and error, and on failure the old file stays in use.
    public func reopen() throws(LogFileError) {
        guard let path else { return }
        let new = try Self.open(path)
        fd.withLock { fd in close(fd); fd = new }
    }
}

public struct LogFileError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let errno: CInt
    public var description: String { "\(path): \(String(cString: strerror(errno)))" }
}
