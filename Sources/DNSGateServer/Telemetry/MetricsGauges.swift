import DNSGateCore
import Prometheus

/// Gauges mirrored from state kept elsewhere, refreshed at scrape time.
struct MetricsGauges: Sendable {
    let service: DNSGateService

    func refresh() {
        service.telemetry.drain()   // the counters include every query answered so far
        let r = service.telemetry.registry
        let cache = service.pipeline.cache.counters
        r.makeGauge(descriptor: .init("dnsgate_cache_entries", help: "Answers in the cache.")).set(to: Double(cache.entries))
        r.makeGauge(descriptor: .init("dnsgate_cache_bytes", help: "Memory the cached answers take, as cache.max_bytes counts it.")).set(to: Double(cache.bytes))
        r.makeGauge(descriptor: .init("dnsgate_cache_hits", help: "Cache hits since start.")).set(to: Double(cache.hits))
        r.makeGauge(descriptor: .init("dnsgate_cache_misses", help: "Cache misses since start.")).set(to: Double(cache.misses))
        r.makeGauge(descriptor: .init("dnsgate_cache_stale_served", help: "Stale answers served (RFC 8767) since start.")).set(to: Double(cache.staleServed))
        let snap = service.pipeline.snapshot
        r.makeGauge(descriptor: .init("dnsgate_policy_generation", help: "Policy reloads since start, plus one.")).set(to: Double(snap.generation))
        r.makeGauge(descriptor: .init("dnsgate_policy_entries", help: "Allow entries in the default policy.")).set(to: Double(snap.policy.allowList.count))
        r.makeGauge(descriptor: .init("dnsgate_exceptions", help: "Live exceptions.")).set(to: Double(service.pipeline.exceptions.all.count))
        r.makeGauge(descriptor: .init("dnsgate_quarantines", help: "Live quarantines.")).set(to: Double(service.pipeline.quarantines.all.count))
        r.makeGauge(descriptor: .init("dnsgate_udp_coalesced_waits", help: "Times a UDP listener waited for a flood's next batch to gather, since start.")).set(to: Double(service.udpCoalescedWaits.value))
        for l in service.connectionLimits {
            r.makeGauge(descriptor: .init("dnsgate_connections_refused", help: "Connections closed at once for being past the listener's cap, since start."),
                        labels: [("listener", l.listener)]).set(to: Double(l.refused.value))
        }
        for h in service.upstream.health {
            r.makeGauge(descriptor: .init("dnsgate_upstream_answered", help: "Answers from each upstream."), labels: [("upstream", h.address)]).set(to: Double(h.answered.value))
            r.makeGauge(descriptor: .init("dnsgate_upstream_timeouts", help: "Timeouts per upstream."), labels: [("upstream", h.address)]).set(to: Double(h.timeouts.value))
            r.makeGauge(descriptor: .init("dnsgate_upstream_rejected", help: "Replies from each upstream discarded as malformed or for another question."),
                        labels: [("upstream", h.address)]).set(to: Double(h.rejected.value))
            r.makeGauge(descriptor: .init("dnsgate_upstream_failures", help: "Failures per upstream."), labels: [("upstream", h.address)]).set(to: Double(h.failures.value))
        }
        r.makeGauge(descriptor: .init("dnsgate_upstream_unwanted_replies",
                                      help: "Upstream replies for no query in flight (unknown ID, another source, or late) since start: possible spoofing."))
            .set(to: Double(service.upstream.unwanted.count.value))
        if let d = service.dnstap {
            r.makeGauge(descriptor: .init("dnsgate_dnstap_connected", help: "1 while the dnstap collector is connected.")).set(to: d.connected ? 1 : 0)
            r.makeGauge(descriptor: .init("dnsgate_dnstap_sent", help: "dnstap messages written to the collector since start.")).set(to: Double(d.sent.value))
            r.makeGauge(descriptor: .init("dnsgate_dnstap_dropped", help: "dnstap messages lost since start: the queue was full or the collector went away mid-write.")).set(to: Double(d.dropped))
        }
        for (kind, n) in service.telemetry.detector?.totals ?? [:] {
            r.makeGauge(descriptor: .init("dnsgate_detector_alerts", help: "Detector alerts since start, by kind."), labels: [("kind", kind)]).set(to: Double(n))
        }
    }
}
