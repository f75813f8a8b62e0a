import ArgumentParser
import DNSGateServer
import Foundation

extension DNSGateCommand {
    struct Validate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the configuration and every allow-list; print file:line of the first error.")

        @OptionGroup var options: ConfigOptions

        func run() throws {
            do {
                let c = try options.load()
                let policy = try PolicyBuilder.build(c, suffixes: PolicyBuilder.suffixList(c))
                print("ok: \(options.configPath ?? "built-in defaults"), \(c.allowFiles.count) allow file(s), "
                      + "\(policy.allowList.count) entries, mode \(policy.mode.rawValue), sinkhole \(policy.sinkhole)")
            } catch {
                throw fail(error)
            }
        }
    }
}
