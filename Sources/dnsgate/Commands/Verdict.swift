import ArgumentParser
import DNSGateCore
import DNSGateServer
import Foundation

extension DNSGateCommand {
    struct Mark: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Record a named point in time (e.g. a job's start) to measure verdicts from.")
        @Argument(help: "Name of the mark, e.g. the CI job ID.") var name: String
        @OptionGroup var control: ControlOptions
        func run() throws {
            let obj = try controlRequest("mark", ["name": name], control)
            print(obj["moved"] as? Bool == true ? "marked \(name) (moved: it was set before, and verdicts on it now start here)" : "marked \(name)")
        }
    }

    struct Verdict: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "What a client was denied in a period; exits 1 when there was any violation.",
            discussion: """
                Run as a CI job's last step to fail the job on egress violations. A violation is a denied query, or \
                in audit mode a query enforce mode would have denied. With neither --since nor --mark the period starts \
                when the server did. Exit 0: none; 1: violations (whether or not others may be missing); 2: none found, \
                but some may be missing: the period starts before the server started (it remembers nothing older) or \
                before the oldest record its bounded log still holds, records were shed under overload, or the mark \
                is unknown to this server (it restarted, or the mark was never set); 3: no verdict (the server could \
                not be asked, or the config naming its socket cannot be read).
                """)
        @Option(help: ArgumentHelp("The runner's address as dnsgate sees it: one IPv4 or IPv6 address (no name, port or prefix).",
                                   valueName: "addr")) var client: String
        @Option(parsing: .unconditional, help: ArgumentHelp("Start of the period: epoch seconds, ISO 8601, or a duration ago (30m).", valueName: "time")) var since: String?
        @Option(help: ArgumentHelp("Start of the period: a mark recorded with `dnsgate mark`.", valueName: "name")) var mark: String?
        @Flag(help: "Print the raw JSON object.") var json = false
        @OptionGroup var control: ControlOptions

        func validate() throws {
            // An empty or misspelt $RUNNER_IP must not turn the job's gate into a clean pass.
            _ = try ClientOption.canonical(client)
            if since != nil && mark != nil { throw ValidationError("give --since or --mark, not both") }
            if let since { _ = try TimeParsing.since(since) }
        }

        func run() throws {
            let client = try ClientOption.canonical(client)
            var args = ["client": client]
            if let since { args["since"] = String(try TimeParsing.since(since)) }
            if let mark { args["mark"] = mark }
            // 3: no verdict at all (no server to ask, a broken config): not 1, which says the job egressed.
            let obj = try controlRequest("verdict", args, control, exitCodes: ["unknown_mark": 2], errorStatus: 3)
            let events = obj["events"] as? [[String: Any]] ?? []
            let alerts = obj["alerts"] as? [[String: Any]] ?? []
            let incomplete = obj["incomplete"] as? Bool == true
            if json { try printJSON(obj) } else {
                let denied = obj["denied"] as? Int ?? 0, would = obj["would_deny"] as? Int ?? 0
                // An alert alone is a violation too (the exit status says so): never "no egress violations" above it.
                let alerted = alerts.isEmpty ? "" : ", \(alerts.count) detector alert\(alerts.count == 1 ? "" : "s")"
                print(events.isEmpty && alerts.isEmpty ? "\(client): no egress violations\(incomplete ? " found, but some may be missing" : "")"
                      : "\(client): \(denied) denied, \(would) would be denied (audit)\(alerted)")
                var seen = Set<String>()
                for e in events {
                    let key = "\(e["name"] ?? "") \(e["type"] ?? "")"
                    guard seen.insert(key).inserted else { continue }
                    print("  \(key)\t\((e["audit"] as? Bool == true) ? "audit" : "denied")\t\(e["reason"] ?? "")")
                }
                for a in alerts { print("  alert \(a["kind"] ?? "?") on \(a["registeredDomain"] ?? "?"): \((a["sampleNames"] as? [String] ?? []).prefix(3).joined(separator: " "))") }
            }
            for why in obj["incomplete_reasons"] as? [String] ?? [] { FileHandle.standardError.write(Data("dnsgate: incomplete: \(why)\n".utf8)) }
            // A violation found is certain and fails the job as such; "may be missing" is for a clean-looking period.
            switch obj["verdict"] as? String {
            case "clean": return
            case "violations": throw ExitCode.failure
            default: throw ExitCode(2)
            }
        }
    }

    struct Suggest: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Turn what audit mode saw into a reviewable allow-list.",
            discussion: """
                Deterministic order; a wildcard only where many names share a parent (said in a comment); every entry has a \
                reason comment with its counts. Compared with the running policy (the client's profile with --client), or \
                with FILE for --diff: a pattern already listed is never repeated; a new type for it is a change of that \
                entry keeping its types, a '# change FILE:LINE to: …' comment (a '-'/'+' pair with --diff), so the output \
                appended to the allow files always loads.
                """)
        @Option(help: ArgumentHelp("Only names this client asked for (their counts cover every client): one IPv4 or IPv6 address.",
                                   valueName: "addr")) var client: String?
        @Option(parsing: .unconditional, help: ArgumentHelp("Only names seen since: epoch, ISO 8601 or a duration ago (their counts cover all the server saw).",
                                   valueName: "time")) var since: String?
        @Option(help: ArgumentHelp("Show only what is new against this allow-list file.", valueName: "file")) var diff: String?
        @OptionGroup var control: ControlOptions

        func validate() throws {
            if let client { _ = try ClientOption.canonical(client) }
            if let since { _ = try TimeParsing.since(since) }
        }

        func run() throws {
            var args: [String: String] = [:]
            args["client"] = try client.map(ClientOption.canonical)
            if let since { args["since"] = String(try TimeParsing.since(since)) }
            if let diff {
                args["diff"] = diff.hasPrefix("/") ? diff : FileManager.default.currentDirectoryPath + "/" + diff
                // Read here, with the caller's rights: the server never opens a path a client names.
                do { args["diff_text"] = try TextFile.read(diff) } catch { throw fail(CLIError("\(diff): cannot read: \(error)")) }
            }
            let obj = try controlRequest("suggest", args, control)
            let lines = obj["lines"] as? [String] ?? []
            if diff == nil { print("# suggested by `dnsgate suggest` from audit mode: review every entry before enforcing") }
            for l in lines { print(l) }
        }
    }
}
