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

    func testTheDecoderTakesBytesAsTheyComeEvenOneAtATime() throws {
        var file = FrameStreams.control(.start, contentType: "protobuf:dnstap.Dnstap")
        FrameStreams.appendData([1, 2, 3], to: &file)
        FrameStreams.appendData(Array(repeating: 9, count: 70_000), to: &file)
        file += FrameStreams.control(.stop)
        var d = FrameStreams.Decoder()
        var frames: [FrameStreams.Decoder.Frame] = []
        for b in file {
            d.append([b])
            while let f = try d.next() { frames.append(f) }
        }
        XCTAssertEqual(frames, [.control(.init(type: .start, contentTypes: ["protobuf:dnstap.Dnstap"])), .data([1, 2, 3]),
                                .data(Array(repeating: 9, count: 70_000)), .control(.init(type: .stop, contentTypes: []))])
        XCTAssertEqual(d.pending, 0)

        var cut = FrameStreams.Decoder()
        cut.append(ArraySlice(file.prefix(30)))
        while (try cut.next()) != nil {}
        XCTAssertGreaterThan(cut.pending, 0, "a frame cut short stays pending")

        var huge = FrameStreams.Decoder()
        huge.append([0x7F, 0, 0, 0])
        XCTAssertThrowsError(try huge.next(), "2 GB is no data frame")
    }
}
