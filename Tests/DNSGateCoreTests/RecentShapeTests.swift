import XCTest
@testable import DNSGateCore
import DNSGateTestSupport

/// `LabelCharacters` keeps the recent entropy incrementally; it must agree with the plain
/// computation over the same counts, and the recent counts must follow the latest characters.
final class RecentShapeTests: XCTestCase {
    private func add(_ label: String, to c: inout LabelCharacters) {
        Array(label.utf8).withUnsafeBufferPointer { c.add($0) }
    }

    func testTheRunningEntropyAgreesWithTheHistogramAfterEveryLabel() {
        var rng = SeededRandom(seed: 5)
        let alphabets = ["0123456789abcdef", "abcdefghijklmnopqrstuvwxyz234567", "abcdefghijklmnopqrstuvwxyz0123456789-_", "e", "www"]
        var c = LabelCharacters()
        var added = 0
        for i in 0..<3_000 {
            let alphabet = Array(alphabets[(i / 200) % alphabets.count])
            let label = String((0..<Int.random(in: 1...63, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! })
            add(label, to: &c)
            added += label.count
            XCTAssertLessThanOrEqual(c.recentTotal, LabelCharacters.recentCapacity)
            if added <= LabelCharacters.windowCapacity {
                XCTAssertEqual(c.windowTotal, added, "the window holds every character up to its capacity")
            } else {
                XCTAssertLessThanOrEqual(c.windowTotal, LabelCharacters.windowCapacity)
            }
            let exact = c.recentCounts.indices.map { UInt32(c.recentCounts[$0]) }
                .withUnsafeBufferPointer { LabelShape.entropy($0, total: UInt32(c.recentTotal)) }
            XCTAssertEqual(c.recentEntropy, exact, accuracy: 1e-9, "after label \(i) (\(c.recentTotal) characters)")
        }
    }

    func testOlderCharactersFadeFromTheRecentEntropyOnly() {
        var rng = SeededRandom(seed: 6)
        var c = LabelCharacters()
        let hex = Array("0123456789abcdef"), base32 = Array("abcdefghijklmnopqrstuvwxyz234567")
        for _ in 0..<200 { add(String((0..<40).map { _ in hex.randomElement(using: &rng)! }), to: &c) }
        XCTAssertLessThan(c.recentEntropy, 4.05, "hex alone")
        for _ in 0..<30 { add(String((0..<56).map { _ in base32.randomElement(using: &rng)! }), to: &c) }
        XCTAssertGreaterThan(c.recentEntropy, 4.8, "30 base32 labels after 8,000 hex characters read as base32")
        XCTAssertLessThan(c.windowEntropy(), 4.8, "while the window's entropy is still held down by the hex")
    }
}
