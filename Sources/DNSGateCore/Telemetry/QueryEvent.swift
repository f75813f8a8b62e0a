/// One query as the telemetry and the detector see it: who asked what, when, and how it ended.
///
/// The server builds one per answered query; `dnsgate analyze` builds them from a log with
/// `QueryLogTSV`. Time is the event's own timestamp (epoch seconds), never a clock read here, so
/// replaying an hour of log takes seconds and gives the same alerts every run.
public struct QueryEvent: Hashable, Sendable {
    /// Epoch seconds, fractional.
    public var time: Double
    /// Client address as text (`192.0.2.7`, `2001:db8::1`); opaque to the core.
    public var client: String
    public var name: DNSName
    public var type: RecordType
    public var rcode: ResponseCode

    public init(time: Double, client: String, name: DNSName, type: RecordType, rcode: ResponseCode) {
        self.time = time; self.client = client; self.name = name; self.type = type; self.rcode = rcode
    }
}

/// The query log's line type is the same value: one log line per query, allowed or not.
public typealias QueryLogRecord = QueryEvent
