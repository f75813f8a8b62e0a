#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Character statistics of DNS labels: which encoding alphabet a label fits, and entropy in bits/char.
///
/// Names arrive lower-cased (`DNSName`), so base64 shows as a 38-symbol alphabet (a–z, 0–9, `-`, `_`);
/// hex tops out at 4 bits/char, base32 (RFC 4648, a–z 2–7) at 5, lower-cased base64 at log2(38) ≈ 5.25.
enum LabelShape {
    /// Histogram slots: a–z 0–25, 0–9 26–35, `-` 36, `_` 37, anything else 38.
    static let slots = 39

    @inline(__always)
    static func slot(_ b: UInt8) -> Int {
        switch b {
        case 97...122: return Int(b) - 97
        case 48...57: return 26 + Int(b) - 48
        case 45: return 36
        case 95: return 37
        default: return 38
        }
    }

    /// Upper bound of bits per character for a label, from the narrowest alphabet it fits.
    static func alphabetCeilingBits<Label: Collection<UInt8>>(_ label: Label) -> Double {
        var digitsOnly = true, hex = true, base32 = true, alnum = true
        for b in label {
            let isDigit = b >= 48 && b <= 57
            let isLower = b >= 97 && b <= 122
            if !isDigit { digitsOnly = false }
            if !(isDigit || (b >= 97 && b <= 102)) { hex = false }
            if !(isLower || (b >= 50 && b <= 55)) { base32 = false }
            if !(isDigit || isLower || b == 45 || b == 95) { alnum = false }
        }
        if digitsOnly { return 3.3219 }   // log2(10)
        if hex { return 4 }
        if base32 { return 5 }
        if alnum { return 5.2479 }        // log2(38)
        return 8
    }

    /// Shannon entropy of a histogram in bits, with the Miller–Madow correction (K − 1) / (2N ln 2).
    ///
    /// The plug-in estimate is biased low on small samples: 64 characters of random base32 read as
    /// about 4.65 bits, not 5. The correction brings that back to ≈ 5.0 while a large sample of
    /// ordinary host names (measured: 1 293 characters under microsoft.com, 4.55 bits) moves by 0.01.
    static func entropy(_ counts: UnsafeBufferPointer<UInt32>, total: UInt32) -> Double {
        guard total > 0 else { return 0 }
        let n = Double(total)
        var h = 0.0, symbols = 0
        for c in counts where c > 0 {
            let p = Double(c) / n
            h -= p * log2(p)
            symbols += 1
        }
        return h + Double(symbols - 1) / (2 * n * 0.6931471805599453)
    }

    static func exp2(_ x: Double) -> Double { libmExp2(x) }
    static func pow(_ x: Double, _ y: Double) -> Double { libmPow(x, y) }
}

// Module-level wrappers so the static members above can reach the C library's functions of the same name.
@inline(__always) private func libmExp2(_ x: Double) -> Double { exp2(x) }
@inline(__always) private func libmPow(_ x: Double, _ y: Double) -> Double { pow(x, y) }
