import DNSGateCore
import Foundation

/// Reads a dnstap capture file (`fstrm_capture -w`, BIND's `dnstap-output file`, unbound's, Knot's)
/// as query events for the detector: `dnsgate analyze` then finds tunnels in what any of those
/// servers recorded, not only in dnsgate's own logs.
///
/// Each `CLIENT_RESPONSE` is one event: the client's address, the response's time, and the reply's
/// question and RCODE (read by ldns). A capture that holds client queries only (a server set to log
/// those alone) is read from its `CLIENT_QUERY` messages instead, with NOERROR for every RCODE: the
/// first `queryOnlyAfter` client queries decide, so a file is read once, in bounded memory.
public enum DnstapCapture {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// What a read found, for the summary line.
    public struct Summary: Sendable {
        public var frames = 0
        public var events = 0
        /// Read from `CLIENT_QUERY` messages, the capture having no replies.
        public var fromQueries = false
        /// Messages of other kinds (forwarder, resolver, auth) or without what an event needs.
        public var skipped = 0
    }

    /// Client queries held while no reply has been seen, before the capture counts as query-only.
    static let queryOnlyAfter = 100_000

    /// Whether `path` is a regular file that starts as a Frame Streams file does (a control frame's
    /// zero escape). Only a regular file is looked at: a pipe's first bytes, once read, are gone, so
    /// a pipe is read whole and its bytes asked (`startsLikeCapture`).
    public static func looksLikeCapture(_ path: String) -> Bool {
        var st = stat()
        guard stat(path, &st) == 0, st.st_mode & S_IFMT == S_IFREG, let h = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? h.close() }
        return (try? h.read(upToCount: 4)).map { startsLikeCapture(Array($0)) } ?? false
    }

    /// Whether `bytes` start as a Frame Streams file does; no text that `analyze` reads starts with a NUL.
    public static func startsLikeCapture(_ bytes: [UInt8]) -> Bool { bytes.starts(with: [0, 0, 0, 0]) }

    /// Calls `each` with every event of the capture at `path`, in file order, reading it a chunk
    /// at a time: a capture may be larger than memory should hold.
    public static func read(_ path: String, _ each: (QueryEvent) throws -> Void) throws -> Summary {
        guard let h = FileHandle(forReadingAtPath: path) else { throw Failure(description: "cannot open: \(String(cString: strerror(errno)))") }
        defer { try? h.close() }
        return try decode(each) {
            do { return ArraySlice(try h.read(upToCount: 1 << 16) ?? Data()) } catch { throw Failure(description: "cannot read: \(error)") }
        }
    }

    /// The same for a capture already read (from a pipe).
    public static func read(bytes: [UInt8], _ each: (QueryEvent) throws -> Void) throws -> Summary {
        var done = false
        return try decode(each) {
            defer { done = true }
            return done ? [] : bytes[...]
        }
    }

    /// - Parameter nextChunk: the capture's next bytes; empty at its end.
    private static func decode(_ each: (QueryEvent) throws -> Void, nextChunk: () throws -> ArraySlice<UInt8>) throws -> Summary {
        var decoder = FrameStreams.Decoder()
        var summary = Summary()
        var started = false
        var sawResponse = false
        var heldQueries: [QueryEvent] = []
        func deliver(_ m: Dnstap_Message) throws {
            switch m.type {
            case .clientResponse:
                guard let e = event(m, message: m.responseMessage, seconds: m.responseTimeSec, nanoseconds: m.responseTimeNsec) else {
                    summary.skipped += 1; return
                }
                if !sawResponse { sawResponse = true; summary.skipped += heldQueries.count; heldQueries = [] }
                summary.events += 1
                try each(e)
            case .clientQuery:
                guard !sawResponse, let e = event(m, message: m.queryMessage, seconds: m.queryTimeSec, nanoseconds: m.queryTimeNsec,
                                                  rcode: .noError) else { summary.skipped += 1; return }
                if summary.fromQueries { summary.events += 1; try each(e); return }
                heldQueries.append(e)
                if heldQueries.count >= queryOnlyAfter {
                    summary.fromQueries = true
                    for q in heldQueries { summary.events += 1; try each(q) }
                    heldQueries = []
                }
            default:
                summary.skipped += 1
            }
        }
        while true {
            let chunk = try nextChunk()
            if chunk.isEmpty { break }
            decoder.append(chunk)
            while true {
                let frame: FrameStreams.Decoder.Frame?
                do { frame = try decoder.next() } catch { throw Failure(description: "frame \(summary.frames + 1): \(error)") }
                guard let frame else { break }
                summary.frames += 1
                switch frame {
                case .control(let c):
                    if c.type == .start {
                        if let t = c.contentTypes.first, t != DnstapWriter.contentType {
                            throw Failure(description: "a Frame Streams file of \"\(t)\", not dnstap")
                        }
                        started = true
                    }
                case .data(let payload):
                    guard started else { throw Failure(description: "frame \(summary.frames): data before the START frame") }
                    let d: Dnstap_Dnstap
                    do { d = try Dnstap_Dnstap(serializedBytes: payload) } catch {
                        throw Failure(description: "frame \(summary.frames): not a dnstap message (\(error))")
                    }
                    if d.hasMessage { try deliver(d.message) } else { summary.skipped += 1 }
                }
            }
        }
        if decoder.pending > 0 { throw Failure(description: "ends inside a frame (\(decoder.pending) bytes left): cut short?") }
        guard started else { throw Failure(description: "no START frame: not a Frame Streams capture") }
        if !sawResponse && !heldQueries.isEmpty {
            summary.fromQueries = true
            for q in heldQueries { summary.events += 1; try each(q) }
        }
        // Not "0 queries", clean: a capture of forwarder or resolver messages only, or of messages
        // without what an event needs, tells the detector nothing (QA pass 8).
        if summary.events == 0 && summary.skipped > 0 {
            throw Failure(description: "no client query or response to analyze in \(summary.skipped) messages (forwarder or resolver messages only, or without a client address, time or question)")
        }
        return summary
    }

    /// Nil for a message without a client address, a time or a readable question: a reply
    /// without a time read as 1970 and broke the detector's timing (QA pass 8).
    private static func event(_ m: Dnstap_Message, message: Data, seconds: UInt64, nanoseconds: UInt32,
                              rcode: ResponseCode? = nil) -> QueryEvent? {
        let (seconds, nanoseconds) = seconds > 0 ? (seconds, nanoseconds) : (m.queryTimeSec, m.queryTimeNsec)
        guard seconds > 0, m.hasQueryAddress, m.queryAddress.count == 4 || m.queryAddress.count == 16,
              let q = MessageQuestion(Array(message)) else { return nil }
        return QueryEvent(time: Double(seconds) + Double(nanoseconds) / 1e9, client: IPAddressText.text(Array(m.queryAddress)),
                          name: q.name, type: q.type, rcode: rcode ?? q.rcode)
    }
}
