import ArgumentParser
import DNSGateCore
import DNSGateServer
import Foundation

extension DNSGateCommand {
    struct Alerts: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the detector's alerts from the running server.")
        @Flag(help: "One JSON object per line.") var json = false
        @Flag(help: "Keep printing new alerts as they are raised (Ctrl-C to stop).") var follow = false
        @Option(help: ArgumentHelp("Only alerts for this client: one IPv4 or IPv6 address.", valueName: "addr")) var client: String?
        @OptionGroup var control: ControlOptions

        func validate() throws { if let client { _ = try ClientOption.canonical(client) } }

        func run() throws {
            var after = 0
            var polls = 0, unanswered = 0
            repeat {
                var args = ["after": String(after)]
                args["client"] = try client.map(ClientOption.canonical)
                polls += 1
                let obj: [String: Any]
                do { obj = try controlRequest("alerts", args, control) } catch {
                    // Following, a poll the server did not answer (restarting, or its control socket's
                    // connections all taken) is retried, not the end: the first one still fails.
                    guard follow, polls > 1 else { throw error }
                    if unanswered == 0 { FileHandle.standardError.write(Data("dnsgate: alerts: no answer from the server; retrying\n".utf8)) }
                    unanswered += 1
                    sleep(1)
                    continue
                }
                unanswered = 0
                for a in obj["alerts"] as? [[String: Any]] ?? [] {
                    after = max(after, a["id"] as? Int ?? after)
                    if json {
                        let data = try JSONSerialization.data(withJSONObject: a, options: [.sortedKeys])
                        print(String(decoding: data, as: UTF8.self))
                    } else {
                        print(AlertText.line(a))
                    }
                }
                fflush(stdout)
                if follow { usleep(500_000) }
            } while follow
        }
    }

    struct Quarantine: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Registered domains the detector sinkholed for a client.",
                                                        subcommands: [List.self, Lift.self])
        struct List: ParsableCommand {
            @OptionGroup var control: ControlOptions
            func run() throws {
                let obj = try controlRequest("quarantine_list", [:], control)
                let qs = obj["quarantines"] as? [[String: Any]] ?? []
                if qs.isEmpty { print("no quarantines") }
                for q in qs { print("\(q["id"] ?? "?")\t\(q["client"] ?? "?")\t\(q["domain"] ?? "?")\t\(q["remaining_s"] ?? 0)s left\t\(q["reason"] ?? "")") }
            }
        }
        struct Lift: ParsableCommand {
            @Argument(help: "The quarantine's ID.") var id: String
            @OptionGroup var control: ControlOptions
            func run() throws { _ = try controlRequest("quarantine_lift", ["id": id], control); print("lifted \(id)") }
        }
    }

    struct Analyze: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the detector offline over query logs, using the logs' own timestamps.",
            discussion: """
                Reads TSV with the header ts\\tclient\\tqname\\tqtype\\trcode (epoch seconds, client, presentation name, \
                type mnemonic, rcode mnemonic), dnsgate's own JSON-lines query log (log.queries: all), or a dnstap capture \
                file (fstrm_capture's, BIND's, unbound's, Knot's or dnsgate's: its CLIENT_RESPONSE messages, or its \
                CLIENT_QUERY messages when it holds no replies). \
                Exits 0 when nothing alerts, 1 when any alert is raised, 2 when a file cannot be read or a line \
                cannot be parsed (nothing is concluded then), 64 on a usage error.
                """)
        @Argument(help: "Log files, read in order.") var files: [String]
        @Flag(help: "One JSON object per alert line.") var json = false
        @Option(help: ArgumentHelp("Public Suffix List file (default: the config's, else Debian's).", valueName: "file"))
        var publicSuffixList: String?
        @Option(help: ArgumentHelp("Take the detector's settings (thresholds, per-domain limits, bypass names) from this "
                                   + "configuration file, as the server would; without it, the built-in defaults.", valueName: "file"))
        var config: String?

        func run() throws {
            // Checked as `validate` checks it: a broken file is exit 2, like unreadable input.
            let loaded: ServerConfig?
            do { loaded = try config.map { try ConfigLoader.load(path: $0) } } catch { throw fail(error, status: 2) }
            let psl = PublicSuffixList(contentsOfFile: publicSuffixList ?? loaded?.publicSuffixFile ?? PublicSuffixList.debianPath)
            if let c = loaded, let config {
                do { try PolicyBuilder.checkDetectorDomains(c, suffixes: psl) } catch { throw fail(error, status: 2) }
                if !c.detectorEnabled {
                    FileHandle.standardError.write(Data("note: \(config) turns the detector off (detector.enabled: false); analysing with its settings anyway\n".utf8))
                }
            }
            let detector = TunnelDetector(config: loaded?.detector ?? .default, suffixes: psl ?? PublicSuffixList(text: ""))
            var alerts: [DetectorAlert] = []
            var events = 0
            func observe(_ event: QueryEvent) throws {
                events += 1
                for a in detector.observe(event) {
                    alerts.append(a)
                    if json {
                        let enc = JSONEncoder(); enc.outputFormatting = [.sortedKeys]
                        print(String(decoding: try enc.encode(a), as: UTF8.self))
                    } else {
                        let obj = (try? JSONSerialization.jsonObject(with: JSONEncoder().encode(a))) as? [String: Any] ?? [:]
                        print(AlertText.line(obj))
                    }
                }
            }
            func analyzeCapture(_ file: String, _ read: () throws -> DnstapCapture.Summary) throws {
                let summary: DnstapCapture.Summary
                do { summary = try read() } catch let e as DnstapCapture.Failure { throw fail(CLIError("\(file): \(e)"), status: 2) }
                if summary.fromQueries {
                    FileHandle.standardError.write(Data("note: \(file) holds client queries only; read with NOERROR for every answer\n".utf8))
                }
                if summary.skipped > 0 {
                    FileHandle.standardError.write(Data("note: \(file): \(summary.skipped) messages skipped (not client messages, or without a client address, time or question)\n".utf8))
                }
            }
            for file in files {
                // A capture in a regular file is read a chunk at a time; anything else (a pipe,
                // `/dev/stdin`) is read whole, and its first bytes tell a capture from text.
                if DnstapCapture.looksLikeCapture(file) {
                    try analyzeCapture(file) { try DnstapCapture.read(file, observe) }
                    continue
                }
                let text: String
                // Not 1: a pipeline gating on "no alerts" must tell a bad input from a finding.
                do {
                    let bytes = try TextFile.bytes(file, streams: true)
                    if DnstapCapture.startsLikeCapture(bytes) {
                        try analyzeCapture(file) { try DnstapCapture.read(bytes: bytes, observe) }
                        continue
                    }
                    text = try TextFile.text(bytes)
                } catch let error as TextFile.ReadError {
                    throw fail(CLIError("\(file): cannot read: \(error)"), status: 2)
                }
                for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
                    let event: QueryEvent?
                    do { event = line.hasPrefix("{") ? try JSONQueryLog.parse(String(line)) : try QueryLogTSV.parse(line: String(line)) }
                    catch { throw fail(CLIError("\(file):\(n + 1): \(error)"), status: 2) }
                    guard let event else { continue }
                    try observe(event)
                }
            }
            if !json { FileHandle.standardError.write(Data("\(events) queries, \(alerts.count) alert(s)\n".utf8)) }
            if !alerts.isEmpty { throw ExitCode.failure }
        }
    }
}

/// One human-readable line per alert.
enum AlertText {
    static func line(_ a: [String: Any]) -> String {
        let feats = (a["features"] as? [[String: Any]] ?? []).map { f in
            "\(f["name"] ?? "?")=\(fmt(f["value"])) (threshold \(fmt(f["threshold"])))"   // some fire above it, some below (timing)
        }.joined(separator: ", ")
        let when = (a["firstTime"] as? Double).map { ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: $0)) } ?? "?"
        let samples = (a["sampleNames"] as? [String] ?? []).prefix(3).joined(separator: " ")
        return "\(when) \(a["kind"] ?? "?") client \(a["client"] ?? "?") domain \(a["registeredDomain"] ?? "?"): \(feats); e.g. \(samples)"
    }
    private static func fmt(_ v: Any?) -> String {
        guard let d = v as? Double else { return "\(v ?? "?")" }
        return d == d.rounded() ? String(Int(d)) : String(format: "%.2f", d)
    }
}

/// dnsgate's own query log lines, read back as detector events.
enum JSONQueryLog {
    static func parse(_ line: String) throws -> QueryEvent? {
        guard let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { throw CLIError("not a JSON object") }
        guard let ts = o["ts"] as? String, let client = o["client"] as? String, let qname = o["qname"] as? String,
              let qtype = o["qtype"] as? String, let rcode = o["rcode"] as? String else { return nil }   // dropped/rejected lines
        let f = ISO8601DateFormatter(); f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        guard let time = f.date(from: ts)?.timeIntervalSince1970 else { throw CLIError("bad ts '\(ts)'") }
        guard let type = RecordType(mnemonic: qtype) else { throw CLIError("bad qtype '\(qtype)'") }
        let codes: [String: ResponseCode] = ["NOERROR": .noError, "FORMERR": .formErr, "SERVFAIL": .servFail, "NXDOMAIN": .nxDomain,
                                             "NOTIMP": .notImp, "REFUSED": .refused]
        return QueryEvent(time: time, client: client, name: try DNSName(qname), type: type, rcode: codes[rcode] ?? .servFail)
    }
}
