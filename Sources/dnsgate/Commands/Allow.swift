import ArgumentParser
import DNSGateServer
import Foundation

extension DNSGateCommand {
    /// `dnsgate allow add|list|revoke`: explicit, expiring exceptions on the running server.
    struct Allow: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Manage temporary exceptions: explicit, with a reason and a lifetime, instead of reopening the internet.",
            subcommands: [Add.self, List.self, Revoke.self])

        struct Add: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Allow a name (or *.suffix) for a while.")
            @Argument(help: "Name or *.suffix to allow.") var pattern: String
            @Option(name: .customLong("for"), parsing: .unconditional, help: ArgumentHelp("Lifetime: 90s, 30m, 2h, 1d.", valueName: "duration")) var lifetime: String
            @Option(help: ArgumentHelp("Why; shown in stats, logs and `allow list`.", valueName: "text")) var reason: String
            @Option(help: ArgumentHelp("Only for clients in this prefix (192.0.2.0/24).", valueName: "prefix")) var client: String?
            @Option(help: ArgumentHelp("Only for clients of this profile.", valueName: "name")) var profile: String?
            @Option(help: ArgumentHelp("Query types, comma-separated (default: the policy's).", valueName: "types")) var types: String?
            @Flag(help: "Print the raw JSON object.") var json = false
            @OptionGroup var control: ControlOptions

            func validate() throws {
                _ = try TimeParsing.lifetime(lifetime)
                guard !reason.trimmingCharacters(in: .whitespaces).isEmpty else { throw ValidationError("--reason must not be empty") }
                if client != nil && profile != nil { throw ValidationError(ControlCommandsText.clientOrProfile) }
            }

            func run() throws {
                var args = ["pattern": pattern, "reason": reason, "seconds": String(try TimeParsing.lifetime(lifetime))]
                args["client"] = client; args["profile"] = profile; args["types"] = types
                let obj = try controlRequest("allow_add", args, control)
                if json { try printJSON(obj); return }
                let e = obj["exception"] as? [String: Any] ?? [:]
                print("exception \(e["id"] ?? "?"): \(pattern) allowed for \(lifetime) — \(reason)")
            }
        }

        struct List: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List live exceptions with their remaining time and hits.")

            /// One exception as `allow list` and `stats` print it: ID, pattern, time left, hits, scope, reason.
            static func line(_ e: [String: Any]) -> String {
                let scope = [(e["client"] as? String).map { "client \($0)" }, (e["profile"] as? String).map { "profile \($0)" }]
                    .compactMap { $0 }.joined(separator: ", ")
                let hits = e["hits"] as? Int ?? 0
                return "\(e["id"] ?? "?")\t\(e["pattern"] ?? "?")\t\(e["remaining_s"] ?? 0)s left\t\(hits) \(hits == 1 ? "hit" : "hits")\t"
                    + "\(scope.isEmpty ? "everyone" : scope)\t\(e["reason"] ?? "")"
            }
            @Flag(help: "Print the raw JSON object.") var json = false
            @OptionGroup var control: ControlOptions
            func run() throws {
                let obj = try controlRequest("allow_list", [:], control)
                if json { try printJSON(obj); return }
                let list = obj["exceptions"] as? [[String: Any]] ?? []
                if list.isEmpty { print("no exceptions"); return }
                for e in list { print(Self.line(e)) }
            }
        }

        struct Revoke: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Remove an exception before it expires.")
            @Argument(help: "The exception's ID (from `allow add` or `allow list`).") var id: String
            @OptionGroup var control: ControlOptions
            func run() throws {
                _ = try controlRequest("allow_revoke", ["id": id], control)
                print("revoked \(id)")
            }
        }
    }
}
