#if canImport(Glibc)
import Glibc
#endif

/// A text file an operator named (config, allow-list, query log), read whole with errors that say
/// what is wrong with it. Foundation's `String(contentsOfFile:)` said "you don't have permission"
/// for `/dev/null` and `/dev/zero` even as root (QA pass 5, F12).
public enum TextFile {
    /// More than any file these commands read: a mistyped path to a disk image stops here.
    public static let maxBytes = 256 << 20

    public struct ReadError: Error, CustomStringConvertible {
        public let description: String
    }

    /// The file's text, a leading byte-order mark dropped (an editor's, invisible in an error).
    ///
    /// - Parameter streams: also read a pipe or a device (`dnsgate analyze /dev/stdin`), up to
    ///   `maxBytes`. Without it only a regular file is read, and the open itself never waits: the
    ///   server reads on an event loop, and opening a FIFO for reading blocks until a writer comes
    ///   (QA pass 6 hung DNS over TCP and the control socket with one).
    public static func read(_ path: String, streams: Bool = false) throws(ReadError) -> String {
        try text(bytes(path, streams: streams))
    }

    /// The file's bytes, read as `read` reads them: for a caller that looks at them before deciding
    /// they are text (a pipe can be read once only).
    public static func bytes(_ path: String, streams: Bool = false) throws(ReadError) -> [UInt8] {
        var fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw ReadError(description: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw ReadError(description: String(cString: strerror(errno))) }
        switch st.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR: throw ReadError(description: "is a directory")
        case S_IFIFO where streams:
            // Opened without waiting, a FIFO whose writer had not come yet read as empty at once: a
            // pipeline gating on `analyze` saw "0 queries", clean (QA pass 8). Opened again, waiting.
            close(fd)
            fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw ReadError(description: String(cString: strerror(errno))) }
        default:
            guard streams else { throw ReadError(description: "not a regular file (a FIFO, socket or device)") }
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)   // a pipe's reader waits for its writer
        }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ReadError(description: String(cString: strerror(errno)))
            }
            if n == 0 { break }
            guard bytes.count + n <= maxBytes else { throw ReadError(description: "larger than \(maxBytes >> 20) MiB: not a file this reads") }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return bytes
    }

    /// `bytes` as text, a leading byte-order mark dropped.
    public static func text(_ bytes: [UInt8]) throws(ReadError) -> String {
        guard var text = String(validating: bytes, as: UTF8.self) else { throw ReadError(description: "not UTF-8 text") }
        if text.unicodeScalars.first == "\u{FEFF}" { text.unicodeScalars.removeFirst() }
        return text
    }
}
