/// Frame Streams, the framing dnstap travels in (the `fstrm` library's protocol, which
/// `fstrm_capture`, dnscollector and every dnstap reader speak).
///
/// A data frame is a 32-bit big-endian length and that many octets of payload. A control frame
/// starts with a zero length (the escape no data frame can have), then its own length, its type and
/// its fields; the only field is a content type (`protobuf:dnstap.Dnstap`). A writer on a socket
/// says READY with its content type, the reader answers ACCEPT with the types it takes, the writer
/// says START, sends data frames, and ends with STOP, which the reader answers with FINISH.
public enum FrameStreams {
    public enum Control: UInt32, Sendable {
        case accept = 1, start = 2, stop = 3, ready = 4, finish = 5
    }

    /// A control frame as read: its type and the content types it names.
    public struct ControlFrame: Equatable, Sendable {
        public var type: Control
        public var contentTypes: [String]
        public init(type: Control, contentTypes: [String]) { self.type = type; self.contentTypes = contentTypes }
    }

    static let contentTypeField: UInt32 = 1
    /// The longest control frame body a reader takes (fstrm's own limit): a peer that announces more
    /// is not speaking Frame Streams.
    public static let maxControlLength = 512

    /// A whole control frame, escape and length included, ready to write.
    public static func control(_ type: Control, contentType: String? = nil) -> [UInt8] {
        var body: [UInt8] = []
        append32(type.rawValue, to: &body)
        if let contentType {
            let t = Array(contentType.utf8)
            append32(contentTypeField, to: &body)
            append32(UInt32(t.count), to: &body)
            body += t
        }
        var frame: [UInt8] = []
        append32(0, to: &frame)
        append32(UInt32(body.count), to: &frame)
        return frame + body
    }

    /// Appends one data frame carrying `payload`.
    public static func appendData(_ payload: [UInt8], to out: inout [UInt8]) {
        append32(UInt32(payload.count), to: &out)
        out += payload
    }

    /// The body length a control frame announces after its escape: `header` is the frame's first
    /// eight octets. Nil when they are not an escape followed by a length a control frame can have.
    public static func controlLength(header: [UInt8]) -> Int? {
        guard header.count == 8, read32(header, 0) == 0 else { return nil }
        let n = Int(read32(header, 4))
        return n >= 4 && n <= maxControlLength ? n : nil
    }

    /// Parses a control frame's body (after the escape and the length). Nil for an unknown type, a
    /// field other than a content type, or a field that runs past the body.
    public static func parseControl(_ body: [UInt8]) -> ControlFrame? {
        guard body.count >= 4, let type = Control(rawValue: read32(body, 0)) else { return nil }
        var types: [String] = []
        var at = 4
        while at < body.count {
            guard body.count - at >= 8, read32(body, at) == contentTypeField else { return nil }
            let n = Int(read32(body, at + 4))
            at += 8
            guard n <= body.count - at else { return nil }
            types.append(String(decoding: body[at..<at + n], as: UTF8.self))
            at += n
        }
        return ControlFrame(type: type, contentTypes: types)
    }

    /// Reads frames out of bytes as they come (a capture file read a chunk at a time).
    public struct Decoder {
        public enum Frame: Equatable {
            case control(ControlFrame)
            case data([UInt8])
        }

        public struct Malformed: Error, CustomStringConvertible {
            public let description: String
        }

        /// The longest data frame taken (fstrm's own default): a longer one means the bytes are not
        /// Frame Streams, or are cut.
        public static let maxDataLength = 1 << 20

        private var buffer: [UInt8] = []
        private var at = 0

        public init() {}

        /// Bytes not yet returned as frames: the end of a file that stops mid-frame.
        public var pending: Int { buffer.count - at }

        public mutating func append(_ bytes: ArraySlice<UInt8>) {
            if at > 0 && at == buffer.count { buffer.removeAll(keepingCapacity: true); at = 0 }
            if at > 1 << 16 { buffer.removeFirst(at); at = 0 }   // keep the buffer from growing with the file
            buffer.append(contentsOf: bytes)
        }

        /// The next whole frame; nil when more bytes are needed.
        public mutating func next() throws(Malformed) -> Frame? {
            guard pending >= 4 else { return nil }
            let length = Int(FrameStreams.read32(buffer, at))
            if length > 0 {
                guard length <= Self.maxDataLength else { throw Malformed(description: "a data frame of \(length) bytes (at most \(Self.maxDataLength))") }
                guard pending >= 4 + length else { return nil }
                let frame = Array(buffer[(at + 4)..<(at + 4 + length)])
                at += 4 + length
                return .data(frame)
            }
            guard pending >= 8 else { return nil }
            guard let n = FrameStreams.controlLength(header: Array(buffer[at..<(at + 8)])) else {
                throw Malformed(description: "a control frame of \(FrameStreams.read32(buffer, at + 4)) bytes")
            }
            guard pending >= 8 + n else { return nil }
            guard let control = FrameStreams.parseControl(Array(buffer[(at + 8)..<(at + 8 + n)])) else {
                throw Malformed(description: "an unreadable control frame")
            }
            at += 8 + n
            return .control(control)
        }
    }

    private static func append32(_ v: UInt32, to out: inout [UInt8]) {
        out += [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)]
    }

    private static func read32(_ b: [UInt8], _ at: Int) -> UInt32 {
        UInt32(b[at]) << 24 | UInt32(b[at + 1]) << 16 | UInt32(b[at + 2]) << 8 | UInt32(b[at + 3])
    }
}
