import XCTest
@testable import DNSGateCore

/// The allow-list's and Public Suffix List's name table: lookups by a pointer into a longer name.
final class WireTableTests: XCTestCase {
    func testFindsNamesAndSuffixesByTheirBytesAcrossGrowth() throws {
        var t = WireTable<Int>()
        XCTAssertTrue(t.isEmpty)
        XCTAssertNil(t[try DNSName("example.com").wire])
        for i in 0..<1_000 { t[try DNSName("n\(i).example.com").wire] = i }
        t[try DNSName("example.com").wire] = -1
        XCTAssertEqual(t.count, 1_001)
        for i in stride(from: 0, to: 1_000, by: 37) { XCTAssertEqual(t[try DNSName("N\(i).Example.COM").wire], i) }
        // A suffix of a longer name, through a pointer into that name: how the allow-list probes.
        let long = try DNSName("a.b.n7.example.com")
        long.wire.withUnsafeBytes { w in
            XCTAssertEqual(t[UnsafeRawBufferPointer(rebasing: w[4...])], 7)      // n7.example.com
            XCTAssertEqual(t[UnsafeRawBufferPointer(rebasing: w[7...])], -1)     // example.com
            XCTAssertNil(t[UnsafeRawBufferPointer(rebasing: w[2...])])           // b.n7.example.com
            XCTAssertNil(t[UnsafeRawBufferPointer(rebasing: w[15...])])          // com
        }
        t[try DNSName("n7.example.com").wire] = 70
        XCTAssertEqual(t[try DNSName("n7.example.com").wire], 70)
        XCTAssertEqual(t.count, 1_001, "updating a key adds no entry")
        // Same hash input length, different bytes; a prefix of a key is not the key.
        XCTAssertNil(t[try DNSName("n7.example.org").wire])
        XCTAssertNil(t[Array(try DNSName("n7.example.com").wire.dropLast())])
    }
}
