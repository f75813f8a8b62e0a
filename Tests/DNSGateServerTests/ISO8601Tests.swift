@testable import DNSGateServer
import XCTest

/// The one time formatter of logs and control answers must be total: any Double a request or a
/// clock step produces is written, never trapped on.
final class ISO8601Tests: XCTestCase {
    func testWritesTimesAsRFC3339WithMilliseconds() {
        XCTAssertEqual(ISO8601.format(0), "1970-01-01T00:00:00.000Z")
        XCTAssertEqual(ISO8601.format(1_795_910_400.25), "2026-11-29T00:00:00.250Z")
        XCTAssertEqual(ISO8601.format(-0.5), "1969-12-31T23:59:59.500Z", "before the epoch, the fraction counts forward")
    }

    func testClampsWhatNoCalendarCanWrite() {
        XCTAssertEqual(ISO8601.format(1e20), "9999-12-31T23:59:59.000Z")
        XCTAssertEqual(ISO8601.format(.infinity), "9999-12-31T23:59:59.000Z")
        XCTAssertEqual(ISO8601.format(-1e20), "0001-01-01T00:00:00.000Z")
        XCTAssertEqual(ISO8601.format(.nan), "1970-01-01T00:00:00.000Z")
    }
}
