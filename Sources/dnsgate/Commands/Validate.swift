import ArgumentParser
import DNSGateServer
import Foundation

extension DNSGateCommand {
    struct Validate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the configuration, every allow-list and the state file; print file:line of the first error.")

        @OptionGroup var options: ConfigOptions
        @OptionGroup var serving: ServingOptions

        func run() throws {
            do {
                let c = try options.load(serving)
                let suffixes = try PolicyBuilder.suffixList(c, warn: warn)
                let set = try PolicyBuilder.build(c, suffixes: suffixes)
                // serve refuses to start on a broken state file, and drops saved exceptions that no longer validate.
                let saved = try SavedExceptions.load(path: c.stateFile, suffixes: suffixes, now: Date().timeIntervalSince1970)
                for r in saved.refused {
                    let line = "warning: \(c.stateFile): saved exception \(r.exception.id) (\(r.exception.pattern)) will be dropped at the next start: \(r.error)\n"
                    FileHandle.standardError.write(Data(line.utf8))
                }
                let entries = set.entriesInAllPolicies
                print("ok: \(options.configPath ?? "built-in defaults"), \(c.allowFiles.count) allow file(s), "
                      + "\(entries) entries, \(set.profiles.count) profile(s), mode \(set.base.mode.rawValue), sinkhole \(set.base.sinkhole)")
            } catch {
                throw fail(error)
            }
        }
    }
}
