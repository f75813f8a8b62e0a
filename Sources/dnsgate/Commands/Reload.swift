import ArgumentParser
import DNSGateServer
import Foundation

extension DNSGateCommand {
    struct Reload: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make the running server re-read its configuration and allow-lists (same as SIGHUP).",
            discussion: """
                A broken file is refused with file:line; the running policy stays in force. Only the policy is \
                reloaded; a changed setting that needs a restart (listen, upstreams, threads…) is named in a warning \
                on standard error, and the exit status is still 0.
                """)

        @OptionGroup var control: ControlOptions

        func run() throws {
            let obj: [String: Any]
            do { obj = try ControlClient.send(ControlRequest(command: "reload"), socket: try control.socketPath(despiteMistakes: true)) } catch { throw fail(error) }
            if obj["ok"] as? Bool == true {
                print(obj["message"] ?? "reloaded")
                for w in obj["warnings"] as? [String] ?? [] { FileHandle.standardError.write(Data("warning: \(w)\n".utf8)) }
            } else {
                throw fail(ControlClientError.make("reload refused: \(obj["error"] ?? "unknown error")"))
            }
        }
    }
}
