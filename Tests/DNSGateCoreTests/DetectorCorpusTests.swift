import Foundation
import XCTest
@testable import DNSGateCore
import DNSGateTestSupport

/// Helpers shared by the Detector*Tests files: the suffix list, deterministic randomness, encoders.
enum DetectorFixtures {
    /// Debian's list when installed (as on the runners), else the few rules the synthetic data needs.
    static let suffixes: PublicSuffixList = {
        if let text = try? String(contentsOfFile: PublicSuffixList.debianPath, encoding: .utf8) {
            return PublicSuffixList(text: text)
        }
        return PublicSuffixList(text: "com\nnet\norg\ntest\nco.uk\n")
    }()

    /// The package root, from this file's path, and the shared corpora beside the clone.
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let corpora = packageRoot.deletingLastPathComponent().appendingPathComponent("shared/corpora")

    static func readTSV(_ url: URL) throws -> [QueryEvent] {
        let text = try String(contentsOf: url, encoding: .utf8)
        return try text.split(separator: "\n").compactMap { try QueryLogTSV.parse(line: String($0)) }
    }

    /// Characters of the labels below the registered domain: the encoded payload a query carries.
    static func payload(_ e: QueryEvent) -> Int {
        let below = e.name.labelCount - suffixes.registeredDomain(e.name).labelCount
        return e.name.labels.prefix(max(0, below)).reduce(0) { $0 + $1.count }
    }

    static func base32(_ bytes: [UInt8]) -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz234567")
        var out = "", buffer = 0, bits = 0
        for b in bytes {
            buffer = (buffer << 8) | Int(b); bits += 8
            while bits >= 5 { out.append(alphabet[(buffer >> (bits - 5)) & 31]); bits -= 5 }
        }
        if bits > 0 { out.append(alphabet[(buffer << (5 - bits)) & 31]) }
        return out
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef")
        return String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] })
    }
}

/// Runs the detector over the public corpora (real DNSExfiltrator captures, benign top lists) and the
/// synthetic low-and-slow and build-like sequences; prints the rows of bench/detector/TUNING.md.
final class DetectorCorpusTests: XCTestCase {
    private func corpusFiles(_ folder: String) throws -> [URL] {
        let dir = DetectorFixtures.corpora.appendingPathComponent(folder)
        guard FileManager.default.fileExists(atPath: dir.path) else {
            throw XCTSkip("no corpora at \(dir.path)")
        }
        return try FileManager.default.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "tsv" }.sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    /// Every DNSExfiltrator file is flagged before 4 KB of encoded payload has left, and so is every
    /// capture in it that carries 4 KB or more when replayed alone into a fresh detector.
    func testEveryDNSExfiltratorCaptureIsFlaggedBefore4KB() throws {
        print("| file | queries | payload B | queries to 1st alert | payload B to 1st alert | kinds | captures ≥ 4 KB: max payload B to alert (fresh detector) |")
        print("|---|---|---|---|---|---|---|")
        for url in try corpusFiles("tunnel") {
            let events = try DetectorFixtures.readTSV(url)
            let detector = TunnelDetector(config: .default, suffixes: DetectorFixtures.suffixes)
            var sent = 0, firstAt: (queries: Int, payload: Int)? = nil
            var kinds = Set<String>()
            for (i, e) in events.enumerated() {
                sent += DetectorFixtures.payload(e)
                let alerts = detector.observe(e).filter { $0.kind != .bypass }
                if !alerts.isEmpty && firstAt == nil {
                    firstAt = (i + 1, sent)
                    print("  first alert: " + alerts.map { a in "\(a.kind.rawValue) " + a.features.map { "\($0.name)=\(String(format: "%.2f", $0.value))" }.joined(separator: " ") }.joined(separator: "; "))
                }
                alerts.forEach { kinds.insert($0.kind.rawValue) }
            }
            let first = try XCTUnwrap(firstAt, "\(url.lastPathComponent) raised no alert")
            XCTAssertLessThan(first.payload, 4096, url.lastPathComponent)

            // Captures start at DNSExfiltrator's `init.` query; replay each alone.
            var captures: [[QueryEvent]] = []
            for e in events {
                if e.name.labels.first.map({ Array($0) == Array("init".utf8) }) ?? false || captures.isEmpty { captures.append([]) }
                captures[captures.count - 1].append(e)
            }
            var worst = 0, large = 0
            for capture in captures where capture.reduce(0, { $0 + DetectorFixtures.payload($1) }) >= 4096 {
                large += 1
                let fresh = TunnelDetector(config: .default, suffixes: DetectorFixtures.suffixes)
                var moved = 0, flaggedAt: Int? = nil
                for e in capture {
                    moved += DetectorFixtures.payload(e)
                    if !fresh.observe(e).isEmpty { flaggedAt = moved; break }
                }
                let at = try XCTUnwrap(flaggedAt, "a \(moved)-byte capture in \(url.lastPathComponent) was not flagged")
                XCTAssertLessThan(at, 4096, url.lastPathComponent)
                worst = max(worst, at)
            }
            print("| \(url.lastPathComponent) | \(events.count) | \(sent) | \(first.queries) | \(first.payload) | \(kinds.sorted().joined(separator: ", ")) | \(large == 0 ? "none" : "\(large) captures, ≤ \(worst)") |")
        }
    }

    /// The benign files raise no tunnel-class alert; `bypass` alerts are reported (the top lists do
    /// contain resolver names, and a CI job looking one up is exactly what that kind is for), and so
    /// is `domain-spread`: each file is one client walking a top list, 50,000 registered domains in
    /// 8 hours in the larger one, which no build does and which that kind is for too.
    func testBenignCorporaRaiseNoTunnelAlerts() throws {
        print("| file | queries | pairs | tunnel-class alerts | bypass alerts | domain-spread alerts | max info B | max entropy (≥ 64 chars) | max mean subdomain | max recent entropy / mean subdomain | max names/pair | max new names/min |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for url in try corpusFiles("benign") {
            let events = try DetectorFixtures.readTSV(url)
            let detector = TunnelDetector(config: .default, suffixes: DetectorFixtures.suffixes)
            var other: [DetectorAlert] = [], bypass: [DetectorAlert] = [], spread: [DetectorAlert] = []
            var maxInfo = 0.0, maxEntropy = 0.0, maxSub = 0.0, maxRecentEntropy = 0.0, maxRecentSub = 0.0, maxNames = 0, maxRate = 0
            var domains = Set<DNSName>()
            var last: [DNSName: TunnelDetector.PairFeatures] = [:]
            for e in events {
                for a in detector.observe(e) {
                    switch a.kind { case .bypass: bypass.append(a); case .domainSpread: spread.append(a); default: other.append(a) }
                }
                let d = DetectorFixtures.suffixes.registeredDomain(e.name)
                domains.insert(d)
                if let f = detector.features(client: e.client, registeredDomain: d, at: e.time) {
                    last[d] = f
                    maxInfo = max(maxInfo, f.informationBytes)
                    if f.entropySampleChars >= 64 { maxEntropy = max(maxEntropy, f.entropyBits) }
                    maxSub = max(maxSub, f.meanSubdomainLength)
                    if f.recentEntropySampleChars >= 64 { maxRecentEntropy = max(maxRecentEntropy, f.recentEntropyBits) }
                    if f.distinctNames >= 3 { maxRecentSub = max(maxRecentSub, f.recentMeanSubdomainLength) }
                    maxNames = max(maxNames, f.distinctNames)
                    maxRate = max(maxRate, f.newNamesLastMinute)
                }
            }
            XCTAssertEqual(other, [], url.lastPathComponent)
            for (d, f) in last.sorted(by: { $0.value.informationBytes > $1.value.informationBytes }).prefix(5) {
                print("  heaviest pair \(d): \(f.distinctNames) names, \(Int(f.informationBytes)) B, entropy \(String(format: "%.2f", f.entropyBits)) over \(f.entropySampleChars) chars, mean subdomain \(String(format: "%.1f", f.meanSubdomainLength))")
            }
            let names = bypass.map { $0.sampleNames.first ?? $0.registeredDomain }
            print("| \(url.lastPathComponent) | \(events.count) | \(domains.count) | \(other.count) | \(bypass.count) (\(names.joined(separator: " "))) | \(spread.count)\(spread.first.map { " (at \(Int($0.firstTime - events[0].time)) s)" } ?? "") | \(Int(maxInfo)) | \(String(format: "%.2f", maxEntropy)) | \(String(format: "%.1f", maxSub)) | \(String(format: "%.2f", maxRecentEntropy)) / \(String(format: "%.1f", maxRecentSub)) | \(maxNames) | \(maxRate) |")
        }
    }
}
