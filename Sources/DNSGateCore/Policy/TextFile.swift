#if canImport(Glibc)
import Glibc
#endif

/// A text file an operator named (config, allow-list, query log, `--diff` file), read whole with
/// errors that say what is wrong with it. Foundation's `String(contentsOfFile:)` said "you don't
/// have permission" for `/dev/null` and `/dev/zero` even as root (QA pass 5, F12).
public enum TextFile {
    /// More than any file these commands read: `/dev/zero` or a mistyped path to a disk image stops here.
    public static let maxBytes = 256 << 20

    public struct ReadError: Error, CustomStringConvertible {
        public let description: String
    }

    /// The file's text; a pipe (`/dev/stdin`) and an empty device (`/dev/null`, empty text) read as files do.
    public static func read(_ path: String) throws(ReadError) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ReadError(description: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFDIR { throw ReadError(description: "is a directory") }
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
        guard let text = String(validating: bytes, as: UTF8.self) else { throw ReadError(description: "not UTF-8 text") }
        return text
    }
}
