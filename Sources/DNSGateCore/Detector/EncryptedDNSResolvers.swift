/// Names whose lookup from a CI runner means something is trying to resolve around dnsgate.
///
/// A job that looks up a DNS-over-HTTPS or DNS-over-TLS endpoint is about to send its queries
/// where the allow-list cannot see them; `use-application-dns.net` is Firefox's canary (a resolver
/// that answers NXDOMAIN for it asks the browser to keep DoH off), so a lookup of it means a browser
/// is deciding whether to bypass. The list is short on purpose: the endpoints browsers and OS stub
/// resolvers ship as presets, each from its operator's own documentation. A name matches when it is
/// the entry or lies below it. Tunnels through other resolvers are what the other detector kinds are for;
/// direct connections to resolver IPs need a network policy, not DNS.
public enum EncryptedDNSResolvers {
    public static let defaultNames: [String] = [
        "use-application-dns.net",      // Firefox canary domain
        "dns.google",                    // Google Public DNS DoH/DoT (also dns.google.com)
        "dns.google.com",
        "cloudflare-dns.com",            // Cloudflare DoH, incl. mozilla.cloudflare-dns.com, chrome.…
        "one.one.one.one",               // Cloudflare DoT name
        "1dot1dot1dot1.cloudflare-dns.com",
        "dns.quad9.net", "dns9.quad9.net", "dns10.quad9.net", "dns11.quad9.net",   // Quad9
        "doh.opendns.com", "dns.opendns.com", "doh.familyshield.opendns.com",      // Cisco OpenDNS
        "dns.adguard.com", "dns.adguard-dns.com",                                 // AdGuard DNS
        "dns.nextdns.io",                // NextDNS
        "doh.cleanbrowsing.org",         // CleanBrowsing
        "doh.mullvad.net", "dns.mullvad.net",   // Mullvad
        "dns.alidns.com",                // AliDNS
        "doh.pub", "dot.pub",            // DNSPod
    ]
}
