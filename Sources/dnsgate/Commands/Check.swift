import ArgumentParser
import DNSGateCore
import DNSGateServer
import Foundation

extension DNSGateCommand {
    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Say what dnsgate would do with a query, and which entry decides, without a running server.",
            discussion: "Exits 0 when the query would be forwarded or answered locally, 1 when it would be denied.")

        @Argument(help: "The name to look up.") var name: String
        @Argument(help: "Query type (default A).") var type: String = "A"
        @Option(help: ArgumentHelp("Client address (profiles select on it).", valueName: "addr")) var client: String?
        @Flag(help: "Print one JSON object.") var json = false
        @OptionGroup var options: ConfigOptions

        func run() throws {
            guard let qtype = RecordType(mnemonic: type) else { throw ValidationError("unknown query type '\(type)'") }
            let qname: DNSName
            do { qname = try DNSName(name) } catch { throw ValidationError("bad name '\(name)': \(error)") }
            let policy: Policy
            do {
                let c = try options.load()
                policy = try PolicyBuilder.build(c, suffixes: PolicyBuilder.suffixList(c))
            } catch { throw fail(error) }
            let v = PolicyDecision.decide(policy, name: qname, type: qtype)
            let denied: Bool
            var out: [String: Any] = ["name": qname.description, "type": qtype.mnemonic, "mode": policy.mode.rawValue]
            switch v.action {
            case .forward: out["action"] = v.audited ? "forward (audit: enforce would deny)" : "forward"; denied = false
            case .local: out["action"] = "local data"; denied = false
            case .sinkhole(let m): out["action"] = "sinkhole \(m)"; denied = true
            }
            if let e = v.entry {
                out["entry"] = e.pattern; out["source"] = e.source.description
                if let r = e.reason { out["reason"] = r }
            }
            if let d = v.denial { out["denied_because"] = d.description }
            if let client { out["client"] = client; out["profile"] = "default" }
            if json {
                let data = try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                print("\(qname) \(qtype): \(out["action"]!)")
                if let e = v.entry { print("  entry:  \(e.pattern) at \(e.source)" + (e.reason.map { " — \($0)" } ?? "")) }
                else { print("  entry:  none matches") }
                if let d = v.denial { print("  reason: \(d)") }
                if client != nil { print("  profile: default") }
            }
            if denied && !v.audited { throw ExitCode.failure }
        }
    }
}
