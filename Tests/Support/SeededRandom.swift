import DNSGateCore

/// SplitMix64 (Steele, Lea, Flood, OOPSLA 2014): a seeded generator, so every generated test input is
/// the same on every run and platform, unlike `SystemRandomNumberGenerator`. Its output function is
/// the core's `StableHash.mix`, so the two cannot drift apart.
public struct SeededRandom: RandomNumberGenerator {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        let z = state
        state &+= 0x9e37_79b9_7f4a_7c15
        return StableHash.mix(z)      // mix adds the same constant first: SplitMix64's step
    }

    public mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8.random(in: 0...255, using: &self) } }
}
