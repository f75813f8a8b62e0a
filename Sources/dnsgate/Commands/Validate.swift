import ArgumentParser
import DNSGateServer
import Foundation

extension DNSGateCommand {
    struct Validate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the configuration, every allow-list and the state file; print file:line of the first error.")

        @OptionGroup var options: ConfigOptions

        func run() throws {
            do {
                let c = try options.load()
                let set = try PolicyBuilder.build(c, suffixes: PolicyBuilder.suffixList(c))
                _ = try SavedExceptions.read(path: c.stateFile)   // serve refuses to start on a broken one
                let entries = set.base.allowList.count + set.profiles.reduce(0) { $0 + $1.policy.allowList.count }
                print("ok: \(options.configPath ?? "built-in defaults"), \(c.allowFiles.count) allow file(s), "
                      + "\(entries) entries, \(set.profiles.count) profile(s), mode \(set.base.mode.rawValue), sinkhole \(set.base.sinkhole)")
            } catch {
                throw fail(error)
            }
        }
    }
}
