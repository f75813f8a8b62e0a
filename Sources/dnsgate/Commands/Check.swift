import ArgumentParser
import DNSGateCore
import DNSGateServer
import Foundation

extension DNSGateCommand {
    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Say what dnsgate would do with a query, and which entry decides, without a running server.",
            discussion: "Exits 0 when the query would be forwarded or answered locally, 1 when it would be denied, 2 when the "
                + "configuration or an allow-list does not load (no decision).")

        @Argument(help: "The name to look up.") var name: String
        @Argument(help: "Query type (default A).") var type: String = "A"
        @Option(help: ArgumentHelp("Client address (profiles select on it).", valueName: "addr")) var client: String?
        @Option(help: ArgumentHelp("Listener the query arrives on, as under listen: (profiles select on it when no client prefix does).",
                                   valueName: "addr:port")) var listener: String?
        @Flag(help: "Print one JSON object.") var json = false
        @OptionGroup var options: ConfigOptions
        @OptionGroup(visibility: .hidden) var serving: ServingOptions

        // Argument errors here, not in run(), so they come with check's usage rather than the root's.
        func validate() throws {
            guard RecordType(mnemonic: type) != nil else { throw ValidationError("unknown query type '\(type)'") }
            do { _ = try DNSName(name) } catch { throw ValidationError("bad name '\(name)': \(error)") }
            if let client, ClientPrefix.addressBytes(client) == nil { throw ValidationError("--client \(client): not an IP address") }
            if let listener, HostPort(parsing: listener) == nil { throw ValidationError("--listener \(listener): not ADDR:PORT") }
        }

        func run() throws {
            let qtype = RecordType(mnemonic: type)!, qname = try DNSName(name)
            let set: PolicySet
            var exceptions = ExceptionSet()
            let now = Date().timeIntervalSince1970
            do {
                let c = try options.load(serving)
                let suffixes = try PolicyBuilder.suffixList(c, warn: warn)
                set = try PolicyBuilder.build(c, suffixes: suffixes)
                // As a profile naming such a listener is refused: no query arrives there (QA pass 11).
                if let l = listener.flatMap({ HostPort(parsing: $0) }), !c.listen.contains(l) {
                    warn("--listener \(l) is not under listen: (\(c.listen.map(\.description).joined(separator: ", "))); no query arrives there")
                }
                // Live exceptions are in the server's state file; read it if it is there.
                // One it cannot read is said (QA pass 11): the answer may then be "denied" where an exception allows.
                if FileManager.default.fileExists(atPath: c.stateFile) {
                    do { for e in try SavedExceptions.read(path: c.stateFile) { try? exceptions.add(e, suffixes: suffixes, now: now) } }
                    catch { warn("\(error); its exceptions are left out of this answer") }
                }
            } catch { throw fail(error, status: 2) }   // not 1: that says "denied"
            let clientOctets = client.flatMap(ClientPrefix.addressBytes)
            // As the listeners name themselves (`HostPort`'s text), whatever the spelling given.
            let listenerName = listener.flatMap { HostPort(parsing: $0)?.description }
            let pipeline = QueryPipeline(policies: set, cache: AnswerCache())
            pipeline.setExceptions(exceptions)
            let (v, profile, exception) = pipeline.explain(name: qname, type: qtype, clientAddress: clientOctets, listener: listenerName, now: now)
            let policy = set.policy(set.select(clientAddress: clientOctets, listener: listenerName))
            var denied: Bool
            var out: [String: Any] = ["name": qname.description, "type": qtype.mnemonic, "mode": policy.mode.rawValue, "profile": profile]
            switch v.action {
            case .forward: out["action"] = v.audited ? "forward (audit: enforce would deny)" : "forward"; denied = false
            case .local: out["action"] = "local data"; denied = false
            case .sinkhole(let m): out["action"] = "sinkhole \(m)"; denied = true
            }
            if let e = exception {
                out["action"] = "forward (exception \(e.id))"; out["exception"] = e.id; out["exception_reason"] = e.reason
                denied = false
            }
            if let e = v.entry {
                out["entry"] = e.pattern; out["source"] = e.source.description
                if let r = e.reason { out["reason"] = r }
            }
            if let d = v.denial { out["denied_because"] = d.description }
            if let client { out["client"] = client }
            if let listenerName { out["listener"] = listenerName }
            if json {
                let data = try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                print("\(qname) \(qtype): \(out["action"]!)")
                if let e = v.entry { print("  entry:  \(e.pattern) at \(e.source)" + (e.reason.map { " — \($0)" } ?? "")) }
                else { print("  entry:  none matches") }
                if let d = v.denial { print("  reason: \(d)") }
                if let e = exception { print("  exception: \(e.id) until \(Date(timeIntervalSince1970: e.expiresAt)) — \(e.reason)") }
                print("  profile: \(profile)")
            }
            if denied { throw ExitCode.failure }
        }
    }
}
