import ArgumentParser
import DNSGateServer
import Foundation

/// Durations and points in time as people type them: `30m`, `2h`, `90s`, `1d`; a time is epoch
/// seconds, an ISO 8601 timestamp, or a duration meaning "that long ago".
enum TimeParsing {
    static func seconds(_ s: String) -> Double? {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        if let last = s.last, let unit = units[last], let n = decimal(s.dropLast()), n > 0 { return n * unit }
        if let n = decimal(s), n > 0 { return n }
        return nil
    }

    /// Digits with at most one decimal point: `Double` alone also took `0x10`, `1e3` and `nan`.
    private static func decimal(_ s: Substring) -> Double? {
        guard !s.isEmpty, s.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }), s.filter({ $0 == "." }).count <= 1 else { return nil }
        return Double(s)
    }
    private static func decimal(_ s: String) -> Double? { decimal(Substring(s)) }

    /// `--for`: a lifetime, with the reason when it is not one.
    static func lifetime(_ s: String, option: String = "--for") throws -> Double {
        if let t = seconds(s) { return t }
        let zeroOrLess = s.hasPrefix("-") || (s.contains("0") && s.allSatisfy { "0.smhd".contains($0) })
        throw ValidationError("\(option) \(s): " + (zeroOrLess ? "a lifetime must be longer than 0, like 30m"
                                                                : "expected a duration like 90s, 30m, 2h or 1d"))
    }

    /// `--since`: a point in time, with the reason when it is not one. A timestamp whose date or time
    /// does not exist (`2026-02-30`, `24:30`) is said as such: the generic text read as a format error.
    static func since(_ s: String, option: String = "--since") throws -> Double {
        if let t = pointInTime(s) { return t }
        let shape = s.prefix(19).map { $0.isNumber ? "9" : $0 }
        if String(shape).uppercased() == "9999-99-99T99:99:99" {
            throw ValidationError("\(option) \(s): no such date or time")
        }
        if s.hasPrefix("-") { throw ValidationError("\(option) \(s): give a duration ago without a sign, like 30m") }
        throw ValidationError("\(option) \(s): expected epoch seconds, ISO 8601 or a duration like 30m")
    }

    /// Nil for what is not a time, and for a time outside the years 0001–9999 (`inf`, `1e20`).
    static func pointInTime(_ s: String, now: Double = Date().timeIntervalSince1970) -> Double? {
        guard let t = anyPointInTime(s, now: now), ISO8601.range.contains(t) else { return nil }
        return t
    }

    private static func anyPointInTime(_ s: String, now: Double) -> Double? {
        if let epoch = decimal(s), epoch > 1_000_000_000 { return epoch }
        if let ago = seconds(s) { return now - ago }
        // With or without fractional seconds: dnsgate prints its own times with them.
        let fractional = ISO8601DateFormatter()
        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        guard let t = (ISO8601DateFormatter().date(from: s) ?? fractional.date(from: s))?.timeIntervalSince1970,
              writesBack(s, t) else { return nil }
        return t
    }

    /// Foundation rolls an impossible date over (`2026-02-30` read as March 2nd, `24:30` as the next
    /// day), so a typo silently moved the period. A timestamp counts only when its date and time,
    /// at its own offset, write back as typed (`ISO8601.format`, as dnsgate prints times).
    private static func writesBack(_ s: String, _ t: Double) -> Bool {
        guard let offset = offsetSeconds(s) else { return false }
        return s.prefix(19).uppercased() == ISO8601.format(t + Double(offset)).prefix(19)
    }

    /// The UTC offset a timestamp ends with, in seconds: `Z`, `±HH:MM` or `±HHMM`.
    private static func offsetSeconds(_ s: String) -> Int? {
        if s.hasSuffix("Z") || s.hasSuffix("z") { return 0 }
        guard let sign = s.lastIndex(where: { $0 == "+" || $0 == "-" }), s.distance(from: s.startIndex, to: sign) >= 19 else { return nil }
        let digits = s[s.index(after: sign)...].filter { $0 != ":" }
        guard digits.count == 4, digits.allSatisfy(\.isASCII), let hhmm = Int(digits) else { return nil }
        return (s[sign] == "-" ? -1 : 1) * (hhmm / 100 * 3600 + hhmm % 100 * 60)
    }
}

/// Sends one control request, prints `--json` output or hands the object back; fails on `ok: false`,
/// with the exit status `exitCodes` gives the error's `code`, else `errorStatus`, which is also the
/// status when the server cannot be asked (for a command whose 1 means something else: `verdict`).
func controlRequest(_ command: String, _ args: [String: String], _ control: ControlOptions,
                    exitCodes: [String: Int32] = [:], errorStatus: Int32 = 1) throws -> [String: Any] {
    let obj: [String: Any]
    do { obj = try DNSGateServerControl.send(command, args, socket: try control.socketPath()) } catch { throw fail(error, status: errorStatus) }
    if obj["ok"] as? Bool != true {
        throw fail(CLIError("\(obj["error"] ?? "request failed")"), status: (obj["code"] as? String).flatMap { exitCodes[$0] } ?? errorStatus)
    }
    return obj
}

struct CLIError: Error, CustomStringConvertible {
    let description: String
    /// Control and format characters (bar newline and tab) are written as `\u{…}`: an error may quote
    /// a line of an untrusted log, and its escape sequences must not drive the operator's terminal
    /// (QA pass 9: `analyze` printed a colour change and a window title from a malformed line).
    init(_ d: String) { description = Self.visible(d) }

    static func visible(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        for s in text.unicodeScalars {
            switch s.properties.generalCategory {
            case .control where s != "\n" && s != "\t", .format, .lineSeparator, .paragraphSeparator, .privateUse, .unassigned:
                out.append(contentsOf: "\\u{\(String(s.value, radix: 16, uppercase: true))}".unicodeScalars)
            default:
                out.append(s)
            }
        }
        return String(out)
    }
}

func printJSON(_ obj: Any) throws {
    let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .prettyPrinted])
    print(String(decoding: data, as: UTF8.self))
}
