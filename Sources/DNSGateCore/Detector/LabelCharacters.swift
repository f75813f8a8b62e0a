#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Character counts of a pair's fresh labels, and their entropy (bits/char, Miller–Madow corrected
/// as `LabelShape.entropy`), twice: over the window, halved past 2^16 characters so the counters
/// stay small, and over the latest `recentCapacity` characters, halved past that, so the alphabet a
/// pair has just switched to shows even after thousands of other characters (see `RecentShape`).
/// One pass over a label counts both. Not copyable: read through the pair's class, a copyable
/// struct was copied whole (both arrays retained and released) for every property read.
///
/// The counts are stored inline (`InlineArray`), inside the pair's own object: as two arrays they
/// were two more allocations to reach, cold, for every fresh label of a flood of pairs.
struct LabelCharacters: ~Copyable {
    static let windowCapacity = 1 << 16
    static let recentCapacity = 1024

    private(set) var windowCounts = InlineArray<39, UInt32>(repeating: 0)   // LabelShape.slots
    private(set) var windowTotal = 0
    private(set) var recentCounts = InlineArray<39, UInt16>(repeating: 0)
    private(set) var recentTotal = 0
    /// The recent entropy is kept incrementally, as Σ c·log2(c) over the counts (from a table) and the
    /// number of symbols seen: a pair past its information budget reads it on every query, and 39
    /// logarithms each time would be the detector's largest cost on a flood of new names; reading
    /// it takes none.
    private var recentSymbols = 0
    private var recentSumCLogC = 0.0

    /// c·log2(c) for every count a recent slot, or the recent total, can reach before it is halved
    /// (a label adds at most 63).
    private static let cLogC: [Double] = (0...(recentCapacity + 63)).map { $0 == 0 ? 0 : Double($0) * log2(Double($0)) }
    /// What one more character adds to Σ c·log2(c) at count c: cLogC[c + 1] − cLogC[c].
    private static let cLogCStep: [Double] = (0..<(recentCapacity + 63)).map { cLogC[$0 + 1] - cLogC[$0] }

    mutating func add(_ label: UnsafeBufferPointer<UInt8>) {
        var sum = recentSumCLogC, symbols = recentSymbols
        Self.cLogCStep.withUnsafeBufferPointer { step in
            for b in label {
                let s = LabelShape.slot(b), k = Int(recentCounts[s])
                windowCounts[s] += 1
                if k == 0 { symbols += 1 }
                sum += step[k]
                recentCounts[s] = UInt16(k + 1)
            }
        }
        recentSumCLogC = sum; recentSymbols = symbols
        windowTotal += label.count
        recentTotal += label.count
        if windowTotal > Self.windowCapacity { halveWindow() }
        if recentTotal > Self.recentCapacity { halveRecent() }
    }

    var recentEntropy: Double {
        guard recentTotal > 0 else { return 0 }
        // H = log2(n) − Σ c·log2(c) / n, and n·log2(n) is in the table: no logarithm at all.
        let n = Double(recentTotal)
        return (Self.cLogC[recentTotal] - recentSumCLogC) / n + Double(recentSymbols - 1) / (2 * n * 0.6931471805599453)
    }

    var exactWindowEntropy: Double {
        windowCounts.span.withUnsafeBufferPointer { LabelShape.entropy($0, total: UInt32(windowTotal)) }
    }

    /// The window's entropy: exact while it holds fewer than `exactEntropyChars` characters, then
    /// recomputed once it has grown by 1/64 since the last time (or was halved). Past that size 1.6 %
    /// more characters move it by hundredths of a bit, and 39 logarithms on every query of a flooded
    /// pair (twice: information estimate, then alert evidence) were a large part of the detector's
    /// cost on a flood of unique names.
    mutating func windowEntropy() -> Double {
        let total = windowTotal
        if total < Self.exactEntropyChars || total < entropyAtTotal || total - entropyAtTotal >= total / 64 {
            cachedEntropy = exactWindowEntropy
            entropyAtTotal = total
        }
        return cachedEntropy
    }
    static let exactEntropyChars = 4096
    private var cachedEntropy = 0.0
    private var entropyAtTotal = 0

    mutating func removeAll() {
        windowCounts = InlineArray(repeating: 0)
        recentCounts = InlineArray(repeating: 0)
        windowTotal = 0; recentTotal = 0; recentSymbols = 0; recentSumCLogC = 0
        cachedEntropy = 0; entropyAtTotal = 0
    }

    private mutating func halveWindow() {
        var total = 0
        for i in windowCounts.indices { windowCounts[i] /= 2; total += Int(windowCounts[i]) }
        windowTotal = total
    }

    /// Also recomputes the sums from the table, which drops the rounding the running sum gathered.
    private mutating func halveRecent() {
        var total = 0, symbols = 0, sum = 0.0
        Self.cLogC.withUnsafeBufferPointer { t in
            for i in recentCounts.indices {
                let k = Int(recentCounts[i] / 2)
                recentCounts[i] = UInt16(k)
                total += k; sum += t[k]
                if k > 0 { symbols += 1 }
            }
        }
        (recentTotal, recentSymbols, recentSumCLogC) = (total, symbols, sum)
    }
}
