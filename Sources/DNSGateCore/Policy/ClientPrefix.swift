#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An address prefix (`192.0.2.16/28`, `2001:db8::/32`, or a bare address meaning one host) that
/// selects clients for profiles and exceptions.
public struct ClientPrefix: Hashable, Sendable, CustomStringConvertible {
    public let network: [UInt8]     // 4 or 16 octets, host bits zero
    public let length: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1).map(String.init)
        guard let addr = ClientPrefix.addressBytes(parts[0]) else { return nil }
        let maxLen = addr.count * 8
        var len = maxLen
        if parts.count == 2 { guard let l = Int(parts[1]), (0...maxLen).contains(l) else { return nil }; len = l }
        var net = addr
        for i in 0..<net.count {
            let keep = max(0, min(8, len - i * 8))
            net[i] &= keep == 8 ? 0xFF : UInt8(truncatingIfNeeded: 0xFF << (8 - keep))
        }
        network = net; length = len
    }

    public func contains(_ address: [UInt8]) -> Bool {
        guard address.count == network.count else { return false }
        var bits = length, i = 0
        while bits >= 8 { if address[i] != network[i] { return false }; bits -= 8; i += 1 }
        if bits == 0 { return true }
        let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
        return address[i] & mask == network[i]
    }

    /// Whether every address `other` selects is in this prefix too.
    public func covers(_ other: ClientPrefix) -> Bool {
        other.network.count == network.count && length <= other.length && contains(other.network)
    }

    public var description: String { IPAddressText.text(network) + "/\(length)" }

    /// IPv4 or IPv6 text to network-order octets, an IPv4-mapped IPv6 address as its IPv4 form (so a
    /// dual-stack socket's `::ffff:192.0.2.1` matches `192.0.2.0/24`).
    public static func addressBytes(_ s: String) -> [UInt8]? {
        IPAddressText.octets(s).map(IPAddressText.unmappingIPv4)
    }
}

/// Address text and octets, shared by config parsing, client prefixes and the listeners.
public enum IPAddressText {
    /// Dotted-quad or IPv6 text to network-order octets (4 or 16), via inet_pton; nil if neither.
    public static func octets(_ s: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, s, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, s, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }

    /// 4 or 16 octets as inet_ntop writes them: dotted quad, or RFC 5952 IPv6 (lower case, `::` compressed).
    public static func text(_ octets: [UInt8]) -> String {
        var buf = [CChar](repeating: 0, count: 64)
        _ = octets.withUnsafeBytes { inet_ntop(octets.count == 4 ? AF_INET : AF_INET6, $0.baseAddress, &buf, socklen_t(buf.count)) }
        return String(cString: buf)
    }

    /// One spelling per client address, to compare what an operator typed with what the listeners
    /// recorded: `2001:DB8::0:7` is `2001:db8::7`, and a dual-stack socket's `::ffff:192.0.2.7` is
    /// `192.0.2.7`, the client profiles see. Nil for anything that is not one address (a name, a
    /// prefix, `addr:port`, `127.0.0.01`).
    public static func canonical(_ s: String) -> String? {
        octets(s).map { text(unmappingIPv4($0)) }
    }

    /// Whether an address as recorded (listener text, possibly IPv4-mapped) is the client `canonical`
    /// names. Recorded text is inet_ntop's, already canonical but for the mapped prefix, so this never
    /// parses: `verdict` runs it over every event of a 50,000-entry log, under the log's lock.
    public static func same(recorded: String, canonical c: String) -> Bool {
        if recorded == c { return true }
        let mapped = "::ffff:"
        return recorded.utf8.count == c.utf8.count + mapped.utf8.count && recorded.hasPrefix(mapped)
            && recorded.utf8.dropFirst(mapped.utf8.count).elementsEqual(c.utf8) && !c.contains(":")
    }

    /// `::ffff:a.b.c.d` (RFC 4291 §2.5.5.2) as the IPv4 octets it carries; any other address unchanged.
    public static func unmappingIPv4(_ b: [UInt8]) -> [UInt8] {
        if b.count == 16 && b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xFF && b[11] == 0xFF { return Array(b[12...]) }
        return b
    }
}
