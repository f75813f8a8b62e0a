import ArgumentParser

@main
struct DNSGateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dnsgate",
        abstract: "Allow-list DNS resolver and exfiltration detector for CI runners.",
        version: "0.1.0",
        subcommands: [Serve.self, Check.self, Validate.self, Stats.self, Reload.self, Allow.self, Mark.self, Verdict.self, Suggest.self,
                      Alerts.self, Quarantine.self, Analyze.self])
}
