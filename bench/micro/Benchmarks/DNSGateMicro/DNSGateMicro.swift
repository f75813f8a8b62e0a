// Microbenchmarks of the query path's stages, each with its allocation count (issue 5).
//
// Every benchmark runs its body 1,000 times per sample (`scalingFactor: .kilo`); the tool prints
// figures per iteration, so "Malloc (total) *" is allocations per query-stage call. Fixtures are
// built once, outside the measurement, from reserved names only (RFC 2606, RFC 6761).

import Benchmark
import DNSGateCore

// MARK: - Fixtures

/// Wire bytes of a query as a stub sends it: RD set, one question, optionally an EDNS(0) OPT.
private func queryBytes(_ name: String, type: UInt16 = 1, id: UInt16 = 0x1234, edns: Bool) -> [UInt8] {
    var out: [UInt8] = []
    func u16(_ v: UInt16) { out.append(UInt8(v >> 8)); out.append(UInt8(v & 0xFF)) }
    u16(id); u16(0x0100); u16(1); u16(0); u16(0); u16(edns ? 1 : 0)
    for label in name.split(separator: ".") { out.append(UInt8(label.utf8.count)); out += Array(label.utf8) }
    out.append(0)
    u16(type); u16(1)
    if edns { out.append(0); u16(41); u16(1232); out += [0, 0, 0, 0]; u16(0) }   // OPT, payload 1232, no options
    return out
}

private func view(_ bytes: [UInt8]) -> QueryView {
    guard case .query(let q) = RequestSanity.decode(bytes) else { fatalError("fixture is not a valid query") }
    return q
}

/// An upstream's reply to `name`/A: one A record (TTL 3600), the upstream's own OPT (which dnsgate strips).
private func upstreamReply(_ name: String, id: UInt16) -> [UInt8] {
    var out = queryBytes(name, id: id, edns: false)
    out[2] = 0x81; out[3] = 0x80                       // QR RD RA
    out[7] = 1                                         // ANCOUNT 1
    out[11] = 1                                        // ARCOUNT 1 (OPT)
    out += [0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0x0E, 0x10, 0, 4, 192, 0, 2, 1]
    out += [0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0]
    return out
}

private func answer(_ name: String) -> UpstreamAnswer {
    try! UpstreamAnswer(upstreamReply(name, id: 7), id: 7, name: try! DNSName(name), type: .a)
}

/// An allow-list of `size` entries, half exact (`hostN.example.com`), half wildcard (`*.svcN.example.org`),
/// loaded through the plain-list loader as a file would be.
private func allowList(_ size: Int) -> Policy {
    var text = "# generated for the microbenchmarks\n"
    text.reserveCapacity(size * 28)
    for i in 0..<size {
        text += i % 2 == 0 ? "host\(i).example.com\n" : "*.svc\(i).example.org\n"
    }
    let entries = try! PlainListLoader.load(text: text, file: "micro-\(size).txt")
    return Policy(allowList: try! AllowList(entries))
}

// Globals are initialised lazily, on first use: each benchmark process builds only what it runs.
private let policy200 = allowList(200)
private let policy100k = allowList(100_000)

/// Names probed in each list: an exact entry, a name two labels below a wildcard entry, a miss.
/// The entries sit near the middle of the 200-entry list and so exist in both lists.
private let exactHit = try! DNSName("host100.example.com")
private let wildcardHit = try! DNSName("a.b.svc101.example.org")
private let miss = try! DNSName("www.unlisted.example.net")

/// The policy of bench/policy/allowlist.txt (the dnsperf harness): allowed.test, *.allowed.test
/// and 199 wildcards that nothing matches.
private let pipelinePolicy: Policy = {
    var text = "allowed.test\n*.allowed.test\n"
    for i in 1...199 { text += "*.svc\(i).example\n" }
    return Policy(allowList: try! AllowList(try! PlainListLoader.load(text: text, file: "allowlist.txt")))
}()

private let now = 1_000_000.0

/// A cache holding the answer for www.allowed.test/A (and 99 other hot names), as in workload (b).
private let hotCache: AnswerCache = {
    let cache = AnswerCache()
    for i in 0..<100 {
        let name = i == 0 ? "www.allowed.test" : "h\(i).allowed.test"
        cache.insert(CacheKey(name: try! DNSName(name), type: .a, dnssecOK: false), answer(name), now: now - 5)
    }
    return cache
}()

private let hotKey = CacheKey(name: try! DNSName("www.allowed.test"), type: .a, dnssecOK: false)
private let hotAnswer = answer("www.allowed.test")

// Queries as they arrive: dnsperf's are plain (no EDNS), most resolvers' carry an OPT.
private let queryWithOPT = queryBytes("www.example.com", edns: true)
private let deniedQuery = queryBytes("x1234.denied.test", edns: false)
private let deniedQueryOPT = queryBytes("x1234.denied.test", edns: true)
private let hotQuery = queryBytes("www.allowed.test", edns: false)
private let hotQueryOPT = queryBytes("www.allowed.test", edns: true)

private let sinkholeEDE = ExtendedError(.blocked, "blocked by dnsgate policy: name not on the allow-list")

private func pipeline() -> QueryPipeline { QueryPipeline(policies: PolicySet(base: pipelinePolicy), cache: hotCache) }

/// Detector input as the server feeds it, one event per query, from one client: the names of the
/// dnsperf harness's workloads (bench/lib.sh). (a) cycles through 20,000 denied names under ~3,400
/// registered domains, so most names are new to their pair and pairs churn; (b) repeats 100 hot
/// names under one allowed wildcard, each charged to its budget.
private let detectorSuffixes = PublicSuffixList(text: "com\nnet\norg\ntest\n")
private let floodNames: [DNSName] = (0..<20_000).map { i in
    let name: String
    switch i % 6 {
    case 0: name = "d\(i).denied.test"
    case 1: name = "www.site\(i).com"
    case 2: name = "api\(i).tracker\(i % 97).net"
    case 3: name = "x\(i).svc\(1 + i % 199).example.org"
    case 4: name = "c\(i).allowed.test.evil\(i % 31).com"
    default: name = "exfil-\(String((UInt64(i) &* 2_654_435_761) % 4_294_967_296, radix: 16)).denied.test"
    }
    return try! DNSName(name)
}
private let hotNames: [DNSName] = (0..<100).map { try! DNSName($0 == 0 ? "www.allowed.test" : "hot\($0).allowed.test") }

/// Feeds `names` round-robin, 150,000 queries a second of event time, as the server's telemetry does.
private final class DetectorFeed {
    let detector = TunnelDetector(suffixes: detectorSuffixes)
    let names: [DNSName]
    /// Registered domains and name hashes, as the server's telemetry hands them over.
    let domains: [HashedName]
    let hashes: [UInt64]
    let budgetKey: String?
    var i = 0
    init(names: [DNSName], budgetKey: String?) {
        self.names = names; self.budgetKey = budgetKey
        domains = names.map { HashedName(detectorSuffixes.registeredDomain($0)) }
        hashes = names.map { HashedName($0).hash }
    }
    func next() -> [DetectorAlert] {
        let k = i % names.count
        let e = QueryEvent(time: now + Double(i) / 150_000, client: "127.0.0.1", name: names[k], type: .a,
                           rcode: budgetKey == nil ? .nxDomain : .noError)
        i += 1
        return detector.observe(e, budgetKey: budgetKey, registeredDomain: domains[k], nameHash: hashes[k])
    }
    func warm() { while i < 100_000 { blackHole(next()) } }
}
private let floodFeed = DetectorFeed(names: floodNames, budgetKey: nil)
private let hotFeed = DetectorFeed(names: hotNames, budgetKey: "default#1")

// MARK: - Benchmarks

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .throughput],
        warmupIterations: 3,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 100_000
    )

    // Wire
    Benchmark("decode query (A, with OPT)") { b in
        let msg = queryWithOPT
        for _ in b.scaledIterations { blackHole(RequestSanity.decode(msg)) }
    }

    // Policy: the same three probes against 200 and 100,000 entries; the cost should not move.
    for (label, make) in [("200", { policy200 }), ("100k", { policy100k })] as [(String, () -> Policy)] {
        for (kind, name) in [("exact hit", exactHit), ("wildcard hit", wildcardHit), ("miss", miss)] {
            Benchmark("policy \(kind), \(label) entries",
                      configuration: .init(setup: { _ = make() })) { b in
                let policy = make()
                b.startMeasurement()
                for _ in b.scaledIterations { blackHole(PolicyDecision.decide(policy, name: name, type: .a)) }
            }
        }
    }

    // Cache
    // As the pipeline looks up: the answer is read in place under the cache's lock (`withFresh`), not
    // copied out as `lookup` does.
    Benchmark("cache lookup hit", configuration: .init(setup: { _ = hotCache })) { b in
        let cache = hotCache, key = hotKey
        b.startMeasurement()
        for _ in b.scaledIterations { blackHole(cache.withFresh(key, now: now) { answer, age in (answer.rcode, age) }) }
    }

    // Response building
    Benchmark("sinkhole build (NXDOMAIN, no EDNS)") { b in
        let q = view(deniedQuery)
        b.startMeasurement()
        for _ in b.scaledIterations {
            blackHole(ResponseBuilder.synthesized(q, rcode: .nxDomain, answers: [], ttl: 60, ede: sinkholeEDE))
        }
    }
    Benchmark("sinkhole build (NXDOMAIN, OPT + EDE)") { b in
        let q = view(deniedQueryOPT)
        b.startMeasurement()
        for _ in b.scaledIterations {
            blackHole(ResponseBuilder.synthesized(q, rcode: .nxDomain, answers: [], ttl: 60, ede: sinkholeEDE))
        }
    }
    Benchmark("cache-hit render (no EDNS)") { b in
        let q = view(hotQuery), a = hotAnswer
        b.startMeasurement()
        for _ in b.scaledIterations { blackHole(a.render(for: q, age: 5)) }
    }
    Benchmark("cache-hit render (OPT)") { b in
        let q = view(hotQueryOPT), a = hotAnswer
        b.startMeasurement()
        for _ in b.scaledIterations { blackHole(a.render(for: q, age: 5)) }
    }

    // The whole core path of one query, bytes in to bytes out (no sockets, no logging), as the UDP
    // listener runs it: with its QueryScratch (interned names, reused reply buffer). The listener
    // copies each reply into its send buffer and hands it back to the scratch; so does this.
    for (label, msg) in [("denied name (no EDNS)", deniedQuery), ("denied name (OPT)", deniedQueryOPT),
                         ("cache-hot allowed (no EDNS)", hotQuery), ("cache-hot allowed (OPT)", hotQueryOPT)] {
        for scratchLabel in ["", ", no scratch (TCP)"] {
            Benchmark("pipeline \(label)\(scratchLabel)") { b in
                // The client's identity is made once per client by the listener, so once here too.
                let p = pipeline(), client = "127.0.0.1", address: [UInt8] = [127, 0, 0, 1], listener = "127.0.0.1:5452"
                let scratch: QueryScratch? = scratchLabel.isEmpty ? QueryScratch() : nil
                guard case .reply = p.process(msg, client: client, clientAddress: address, listener: listener,
                                              overTCP: false, now: now, scratch: scratch) else {
                    fatalError("pipeline fixture \(label) was not answered from the core")
                }
                b.startMeasurement()
                for _ in b.scaledIterations {
                    let outcome = p.process(msg, client: client, clientAddress: address, listener: listener, overTCP: false, now: now,
                                            scratch: scratch)
                    if case .reply(let bytes, _) = outcome { blackHole(bytes.count); scratch?.reclaim(bytes) } else { blackHole(outcome) }
                }
            }
        }
    }

    // The tunneling detector, one query's event at a time, as the server's telemetry runs it (the
    // registered domain is computed by the caller there too). One feed per benchmark, kept across
    // samples and warmed with 100,000 events first, so its tables are measured at their steady size.
    for (label, feed) in [("flood of denied names (a)", floodFeed), ("cache-hot names under a wildcard (b)", hotFeed)] {
        Benchmark("detector \(label)", configuration: .init(maxDuration: .seconds(3))) { b in
            feed.warm()
            b.startMeasurement()
            for _ in b.scaledIterations { blackHole(feed.next()) }
        }
    }
}
