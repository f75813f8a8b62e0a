import ArgumentParser
import DNSGateServer
import Foundation
import Logging

extension DNSGateCommand {
    struct Serve: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Serve DNS on UDP and TCP: answer allow-listed names, sinkhole the rest.",
            discussion: "SIGHUP re-reads the configuration and allow-lists; a broken file is refused and the running policy stays.")

        @OptionGroup var options: ConfigOptions
        @OptionGroup var serving: ServingOptions

        func run() throws {
            LoggingSystem.bootstrap { JSONLogHandler(label: $0) }
            let logger = Logger(label: "dnsgate")
            let service: DNSGateService
            do {
                service = try DNSGateService(config: try options.load(serving), overrides: options.overrides(serving), logger: logger)
                try service.start()
            } catch {
                throw fail(error)
            }
            service.runUntilSignalled()
        }
    }
}
