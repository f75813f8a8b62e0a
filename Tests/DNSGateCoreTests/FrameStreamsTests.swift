import DNSGateCore
import XCTest

/// Frame Streams framing: what `fstrm_capture` reads (DnstapTests drives the real one) and what a
/// collector's handshake may send back.
final class FrameStreamsTests: XCTestCase {
    func testControlFramesAreEscapedAndParseBack() throws {
        let ready = FrameStreams.control(.ready, contentType: "protobuf:dnstap.Dnstap")
        // escape, length 4 + 8 + 22, READY, CONTENT_TYPE field of 22 octets
        XCTAssertEqual(Array(ready.prefix(20)), [0, 0, 0, 0, 0, 0, 0, 34, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 22])
        XCTAssertEqual(FrameStreams.controlLength(header: Array(ready.prefix(8))), 34)
        XCTAssertEqual(FrameStreams.parseControl(Array(ready.dropFirst(8))),
                       FrameStreams.ControlFrame(type: .ready, contentTypes: ["protobuf:dnstap.Dnstap"]))
        let stop = FrameStreams.control(.stop)
        XCTAssertEqual(stop, [0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 3])
        XCTAssertEqual(FrameStreams.parseControl(Array(stop.dropFirst(8))), FrameStreams.ControlFrame(type: .stop, contentTypes: []))
    }

    func testDataFramesCarryTheirLength() {
        var out: [UInt8] = []
        FrameStreams.appendData([7, 8, 9], to: &out)
        FrameStreams.appendData([], to: &out)
        XCTAssertEqual(out, [0, 0, 0, 3, 7, 8, 9, 0, 0, 0, 0])
    }

    func testMalformedControlFramesAreRefused() {
        XCTAssertNil(FrameStreams.controlLength(header: [0, 0, 0, 1, 0, 0, 0, 4]), "a data frame, not an escape")
        XCTAssertNil(FrameStreams.controlLength(header: [0, 0, 0, 0, 0, 0, 2, 1]), "longer than a control frame may be")
        XCTAssertNil(FrameStreams.controlLength(header: [0, 0, 0, 0, 0, 0, 0, 3]), "too short for a type")
        XCTAssertNil(FrameStreams.controlLength(header: [0, 0, 0, 0]), "cut short")
        XCTAssertNil(FrameStreams.parseControl([0, 0, 0, 9]), "unknown type")
        XCTAssertNil(FrameStreams.parseControl([0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 1, 65]), "unknown field")
        XCTAssertNil(FrameStreams.parseControl([0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9, 65]), "field past the end")
        XCTAssertNil(FrameStreams.parseControl([0, 0, 0, 1, 0, 0, 0, 1, 0, 0]), "half a field")
    }
}
