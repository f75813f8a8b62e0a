import Synchronization

/// Forwards upstream round trips to the metrics once the telemetry hub exists (it is built after the
/// upstream client, whose configuration errors must surface first). Each upstream's histogram is
/// looked up once, at `attach`; a miss then costs one uncontended lock and an index, where it cost
/// two locks and a hash of the upstream's name (about 2 % of a miss's instructions).
final class RTTSink: Sendable {
    private let upstreams: [String]
    private let histograms = Mutex<[LatencyHistogram]>([])
    init(upstreams: [String]) { self.upstreams = upstreams }
    func attach(_ h: TelemetryHub) { histograms.withLock { $0 = upstreams.map(h.upstreamRTTHistogram) } }
    func record(_ upstream: Int, _ seconds: Double) {
        histograms.withLock { $0.indices.contains(upstream) ? $0[upstream] : nil }?.record(seconds)
    }
}
