import DNSGateCore

/// A Prometheus histogram of durations recorded on the query path, with relaxed atomic adds.
///
/// swift-prometheus's histogram takes a lock and walks every bucket for each sample: about 330
/// instructions, and a cache miss records two (its round trip upstream and its time to the reply),
/// 5 % of a miss's instructions. Here a sample is a bucket search and two atomic adds; the
/// cumulative counts are summed when a scrape reads them, so a scrape during a burst may see the
/// buckets a few samples apart, which Prometheus tolerates as it does any scrape skew.
final class LatencyHistogram: Sendable {
    /// Upper bounds in seconds, ascending; the last bucket (`+Inf`) is implied.
    let bounds: [Double]
    /// `name="value"` pairs as they appear between braces, or empty.
    let labels: String
    private let counts: AtomicCounters   // per bucket, not cumulative; the last is +Inf
    private let sumNanoseconds = AtomicCounter()

    init(bounds: [Double], labels: String = "") {
        precondition(zip(bounds, bounds.dropFirst()).allSatisfy { $0 < $1 }, "histogram bounds must ascend")
        self.bounds = bounds
        self.labels = labels
        counts = AtomicCounters(count: bounds.count + 1)
    }

    func record(_ seconds: Double) {
        var i = 0
        while i < bounds.count && seconds > bounds[i] { i += 1 }
        counts.add(i, 1)
        // A wall-clock step between a query and its reply can make its duration negative or huge,
        // and `Int(_:)` traps outside its range: what the sum takes is clamped to a day.
        sumNanoseconds.add(seconds > 0 ? Int(min(seconds, 86_400) * 1e9) : 0)
    }

    /// Appends the series in the text exposition format: cumulative `_bucket` lines with `le`, then
    /// `_sum` and `_count` (the family's `# HELP` and `# TYPE` lines are the caller's).
    func emit(name: String, into out: inout [UInt8]) {
        let prefix = labels.isEmpty ? "" : labels + ","
        var cumulative = 0
        for (i, bound) in bounds.enumerated() {
            cumulative += counts[i]
            out.append(contentsOf: "\(name)_bucket{\(prefix)le=\"\(bound)\"} \(cumulative)\n".utf8)
        }
        cumulative += counts[bounds.count]
        out.append(contentsOf: "\(name)_bucket{\(prefix)le=\"+Inf\"} \(cumulative)\n".utf8)
        let braces = labels.isEmpty ? "" : "{\(labels)}"
        out.append(contentsOf: "\(name)_sum\(braces) \(Double(sumNanoseconds.value) / 1e9)\n".utf8)
        out.append(contentsOf: "\(name)_count\(braces) \(cumulative)\n".utf8)
    }

    /// `# HELP` and `# TYPE` lines of a histogram family.
    static func header(name: String, help: String) -> [UInt8] {
        Array("# HELP \(name) \(help)\n# TYPE \(name) histogram\n".utf8)
    }
}
