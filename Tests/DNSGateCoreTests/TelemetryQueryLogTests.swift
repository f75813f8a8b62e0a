import XCTest
@testable import DNSGateCore

/// The `ts\tclient\tqname\tqtype\trcode` query log: header, blank lines, errors that carry the line.
final class TelemetryQueryLogTests: XCTestCase {
    func testReadsCorpusLines() throws {
        let e = try XCTUnwrap(QueryLogTSV.parse(line: "1569101122.058750\t192.168.1.165\tinit.MRTD.base64.Example.org.\tTXT\tNOERROR\n"))
        XCTAssertEqual(e.time, 1569101122.058750, accuracy: 1e-6)
        XCTAssertEqual(e.client, "192.168.1.165")
        XCTAssertEqual(e.name, try DNSName("init.mrtd.base64.example.org"))
        XCTAssertEqual(e.type, .txt)
        XCTAssertEqual(e.rcode, .noError)
    }

    func testHeaderAndBlankLinesReadAsNil() throws {
        XCTAssertNil(try QueryLogTSV.parse(line: "ts\tclient\tqname\tqtype\trcode"))
        XCTAssertNil(try QueryLogTSV.parse(line: "ts\tclient\tqname\tqtype\trcode\r\n"))
        XCTAssertNil(try QueryLogTSV.parse(line: ""))
        XCTAssertNil(try QueryLogTSV.parse(line: "  \n"))
    }

    func testOtherMnemonicForms() throws {
        let e = try XCTUnwrap(QueryLogTSV.parse(line: "1\t2001:db8::1\texample.com\tTYPE65\tRCODE9"))
        XCTAssertEqual(e.type, .https)
        XCTAssertEqual(e.rcode.rawValue, 9)
        XCTAssertEqual(try QueryLogTSV.parse(line: "1\tc\texample.com\t10\tnxdomain")?.type, .null)
        XCTAssertEqual(try QueryLogTSV.parse(line: "1\tc\texample.com\t10\tnxdomain")?.rcode, .nxDomain)
    }

    func testMalformedLinesThrowWithTheLine() {
        let cases: [(line: String, reason: String)] = [
            ("1\tc\texample.com\tA", "expected 5"),
            ("yesterday\tc\texample.com\tA\tNOERROR", "timestamp"),
            ("1\t\texample.com\tA\tNOERROR", "empty client"),
            ("1\tc\ta..example.com\tA\tNOERROR", "query name"),
            ("1\tc\texample.com\tBOGUS\tNOERROR", "query type"),
            ("1\tc\texample.com\tA\tMAYBE", "rcode"),
        ]
        for c in cases {
            XCTAssertThrowsError(try QueryLogTSV.parse(line: c.line), c.line) { error in
                guard case QueryLogTSVError.malformed(let line, let reason) = error else { return XCTFail("\(error)") }
                XCTAssertEqual(line, c.line)
                XCTAssertTrue(reason.contains(c.reason), reason)
                XCTAssertTrue("\(error)".contains(c.line))
            }
        }
    }

    func testFormatRoundTrips() throws {
        let e = QueryEvent(time: 1_800_000_000.000042, client: "192.0.2.1", name: try DNSName("a\\.b.example.net"),
                           type: .aaaa, rcode: .servFail)
        let line = QueryLogTSV.format(e)
        XCTAssertEqual(line, "1800000000.000042\t192.0.2.1\ta\\.b.example.net.\tAAAA\tSERVFAIL")
        let back = try XCTUnwrap(QueryLogTSV.parse(line: line))
        XCTAssertEqual(back.name, e.name); XCTAssertEqual(back.type, e.type); XCTAssertEqual(back.rcode, e.rcode)
        XCTAssertEqual(back.time, e.time, accuracy: 1e-6)
        XCTAssertEqual(QueryLogTSV.formatTime(-1.5), "-1.500000")
        XCTAssertEqual(QueryLogTSV.formatTime(-0.25), "-0.250000")
    }
}
