import Foundation
import Logging
import Synchronization

/// swift-log handler writing one JSON object per line to standard error: what log shippers expect.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    private let label: String
    private static let lock = Mutex(())

    public init(label: String) { self.label = label }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let level = event.level, message = event.message, explicit = event.metadata
        var fields = [("ts", JSON.string(ISO8601.format(Date().timeIntervalSince1970))),
                      ("level", JSON.string(level.rawValue)), ("msg", JSON.string(message.description))]
        let merged = self.metadata.merging(explicit ?? [:]) { $1 }
        for k in merged.keys.sorted() { fields.append((k, JSON.string("\(merged[k]!)"))) }
        let text = "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}\n"
        // A failed write is lost: this is the log it would be reported to (LogFile never stops the server).
        Self.lock.withLock { _ in _ = LogFile.standardError.write(Array(text.utf8)) }
    }
}
