@testable import DNSGateCore
@testable import DNSGateServer
import XCTest

/// The telemetry hub feeds the violation log; a verdict must know when the hub shed records.
final class TelemetryHubTests: XCTestCase {
    private func denied(_ name: String, at t: Double) throws -> QueryRecord {
        QueryRecord(time: t, client: "192.0.2.7", overTCP: false, name: try DNSName(name), type: .a, action: .sinkholed,
                    rcode: .nxDomain, rule: nil, entryIndex: nil, denial: .notListed, audited: false, problem: nil)
    }

    func testViolationLogGetsTheHubsRecordsAndShedRecordsAreReported() throws {
        let log = ViolationLog(capacity: 10_000)
        let hub = TelemetryHub(suffixes: nil, detector: nil, violations: log, pendingCapacity: 8)
        let t0 = 1_800_000_000.0
        for i in 0..<8 { hub.observe(try denied("d\(i).denied.test", at: t0 + Double(i))) }
        hub.drain()
        XCTAssertEqual(log.events(client: "192.0.2.7", from: .time(t0)).events.map(\.name.description).first, "d0.denied.test.")
        XCTAssertFalse(hub.droppedRecords(since: t0), "nothing was shed yet")

        // A burst far past the queue's room: the hub's own thread drains at most every 50 ms, so
        // most of these are shed, and a verdict over their period must say it is incomplete.
        let t1 = t0 + 100
        for i in 0..<1_000 { hub.observe(try denied("burst\(i).denied.test", at: t1 + Double(i) / 1_000)) }
        hub.drain()
        XCTAssertTrue(hub.droppedRecords(since: t1))
        XCTAssertTrue(hub.droppedRecords(since: t0))
        XCTAssertFalse(hub.droppedRecords(since: t1 + 10), "a period after the shedding is complete")
        XCTAssertLessThan(log.events(client: "192.0.2.7", from: .time(t1)).events.count, 1_000)
    }

    /// A listener's receive batch goes over whole (`RecordBatch`); records handed over one at a time
    /// in between keep their place, and a batch past the queue's room is shed and reported.
    func testRecordsCollectedInBatchesArriveInOrderAndShedOnesAreReported() throws {
        let log = ViolationLog(capacity: 10_000)
        let hub = TelemetryHub(suffixes: nil, detector: nil, violations: log, pendingCapacity: 100)
        let t0 = 1_800_000_000.0
        let batch = RecordBatch(capacity: 64)
        var sent: [String] = []
        func send(_ n: Int, collecting: Bool) throws {
            batch.collecting = collecting
            for _ in 0..<n {
                let name = "q\(sent.count).denied.test"
                sent.append(name + ".")
                hub.observe(try denied(name, at: t0 + Double(sent.count) / 1_000), collectingIn: batch)
            }
            XCTAssertEqual(batch.records.count, collecting ? n : 0, "collected only while collecting")
            hub.observe(batch: &batch.records)
            XCTAssertTrue(batch.records.isEmpty)
        }
        try send(20, collecting: true)
        try send(3, collecting: false)
        try send(20, collecting: true)
        try send(1, collecting: false)
        hub.drain()
        XCTAssertEqual(log.events(client: "192.0.2.7", from: .time(t0)).events.map(\.name.description), sent)
        XCTAssertFalse(hub.droppedRecords(since: t0))

        let t1 = t0 + 100
        batch.collecting = true
        for i in 0..<150 { hub.observe(try denied("burst\(i).denied.test", at: t1), collectingIn: batch) }
        hub.observe(batch: &batch.records)
        hub.drain()
        XCTAssertTrue(hub.droppedRecords(since: t1), "50 did not fit")
        XCTAssertEqual(log.events(client: "192.0.2.7", from: .time(t1)).events.count, 100)
    }

    /// Runs of one client or one registered domain are added to the top-k tables once, with their
    /// length: whatever the runs, each key ends up with exactly its number of queries.
    func testTopTablesCountRunsExactly() throws {
        let hub = TelemetryHub(suffixes: PublicSuffixList(text: "test\n"), detector: nil)
        let t0 = 1_800_000_000.0
        func record(_ client: String, _ name: String) throws -> QueryRecord {
            QueryRecord(time: t0, client: client, overTCP: false, name: try DNSName(name), type: .a, action: .sinkholed,
                        rcode: .nxDomain, rule: nil, entryIndex: nil, denial: .notListed, audited: false, problem: nil)
        }
        // (client, registered domain): runs of one, of several, and a key coming back after another.
        let traffic = [("192.0.2.1", "a1.one.test"), ("192.0.2.1", "a2.one.test"), ("192.0.2.1", "a3.one.test"),
                       ("192.0.2.2", "b1.two.test"), ("192.0.2.1", "a4.one.test"), ("192.0.2.2", "c1.three.test"),
                       ("192.0.2.2", "c2.three.test")]
        for (c, n) in traffic { hub.observe(try record(c, n)) }
        hub.drain()
        func counts(_ table: String) -> [String: Int] {
            let rows = hub.statsObject(now: t0)[table] as? [[String: Any]] ?? []
            return Dictionary(uniqueKeysWithValues: rows.map { ($0["key"] as? String ?? "?", ($0["count"] as? UInt64).map(Int.init) ?? -1) })
        }
        XCTAssertEqual(counts("top_clients"), ["192.0.2.1": 4, "192.0.2.2": 3])
        XCTAssertEqual(counts("top_registered_domains"), ["one.test.": 4, "two.test.": 1, "three.test.": 2])
        // A later batch continues the counts, the open runs of the first having been added at its end.
        hub.observe(try record("192.0.2.2", "c3.three.test"))
        hub.drain()
        XCTAssertEqual(counts("top_registered_domains"), ["one.test.": 4, "two.test.": 1, "three.test.": 3])
    }

    /// A listener that still has queries waiting puts record processing off, up to a bound.
    func testCatchUpWaitsOutABacklogUpToItsBound() throws {
        let log = ViolationLog(capacity: 10_000)
        let hub = TelemetryHub(suffixes: nil, detector: nil, violations: log, pendingCapacity: 10_000)
        let t0 = 1_800_000_000.0
        let records = try (0..<(2 * TelemetryHub.catchUpBatch + TelemetryHub.backlogCatchUpBatch)).map { try denied("n\($0).denied.test", at: t0) }
        func logged() -> Int { log.events(client: nil, from: .time(t0)).events.count }

        for r in records[..<TelemetryHub.catchUpBatch] { hub.observe(r) }
        hub.catchUp()
        XCTAssertEqual(logged(), TelemetryHub.catchUpBatch, "no backlog: a batch's worth is processed at once")
        // The hub's own thread leaves records alone for 50 ms after a listener caught up, so what
        // follows sees only the listener's calls.
        let later = records[TelemetryHub.catchUpBatch...]
        for r in later.prefix(TelemetryHub.catchUpBatch) { hub.observe(r) }
        hub.catchUp(backlog: true)
        XCTAssertEqual(logged(), TelemetryHub.catchUpBatch, "queries waiting: the records wait too")
        for r in later.dropFirst(TelemetryHub.catchUpBatch) { hub.observe(r) }
        hub.catchUp(backlog: true)
        XCTAssertEqual(logged(), records.count, "past the bound they are processed even during a backlog")
    }

    /// Names are copied into the ring when short and kept by reference when long; both read back whole,
    /// and a wrapped ring holds the newest events only.
    func testViolationLogReadsBackShortAndLongNamesAfterWrapping() throws {
        let log = ViolationLog(capacity: 4)
        let hub = TelemetryHub(suffixes: nil, detector: nil, violations: log)
        let t0 = 1_800_000_000.0
        let long = String(repeating: "a", count: 63) + "." + String(repeating: "b", count: 40) + ".denied.test"
        let names = ["d0.denied.test", "d1.denied.test", long, "d3.denied.test", "D4.Denied.Test", long.uppercased()]
        for (i, n) in names.enumerated() { hub.observe(try denied(n, at: t0 + Double(i))) }
        hub.drain()
        let (events, _, remembersFrom) = log.events(client: nil, from: .time(t0))
        XCTAssertEqual(events.map(\.name), try names.suffix(4).map { try DNSName($0) })
        XCTAssertEqual(events.map(\.time), [2, 3, 4, 5].map { t0 + $0 })
        XCTAssertEqual(remembersFrom, t0 + 2, "two events were overwritten: complete from the oldest held on")
        XCTAssertGreaterThan(try DNSName(long).wire.count, ViolationLog.inlineNameOctets, "the long name takes the other path")

        let fromFour = log.events(client: nil, from: .position(4))
        XCTAssertEqual(fromFour.events.map(\.time), [4, 5].map { t0 + $0 }, "events number 4 and 5")
        XCTAssertFalse(fromFour.lostSome)
        XCTAssertTrue(log.events(client: nil, from: .position(1)).lostSome, "events 1 was overwritten")
        XCTAssertFalse(log.events(client: nil, from: .position(2)).lostSome)
    }

    /// A slot holds its client and profile as indexes into tables that forget what no held event
    /// names: past their room, with ever new clients, every event still reads back its own client,
    /// profile and denial, and a verdict's client filter still finds exactly its events.
    /// (One client in three repeats, the others are new: the tables are renumbered again and again,
    /// the last time with events recorded before it still held.)
    func testViolationLogKeepsEachEventsClientProfileAndReasonAcrossTableRenumbering() throws {
        let log = ViolationLog(capacity: 5, tableRoom: 2)
        let hub = TelemetryHub(suffixes: nil, detector: nil, violations: log)
        let t0 = 1_800_000_000.0
        let rule = SourceLocation(file: "zones/ci.list", line: 7)
        func reason(_ i: Int) -> DenyReason {
            switch i % 3 {
            case 0: return .notListed
            case 1: return .typeNotAllowed(.txt, rule)
            default: return .quarantined(id: "q\(i)", reason: "tunnel")
            }
        }
        func client(_ i: Int) -> String { i % 3 == 0 ? "192.0.2.1" : "198.51.100.\(i)" }
        for i in 0..<40 {
            var r = try denied("n\(i).denied.test", at: t0 + Double(i))
            r = QueryRecord(time: r.time, client: client(i), overTCP: false, name: r.name, type: i % 2 == 0 ? .a : .txt,
                            action: .sinkholed, rcode: .nxDomain, rule: nil, entryIndex: nil, denial: reason(i), audited: i % 4 == 0,
                            problem: nil)
            r.profile = "p\(i % 7)"
            hub.observe(r)
            if i % 3 == 2 { hub.drain() }   // batches of every size, so renumbering happens mid-batch too
        }
        hub.drain()
        let events = log.events(client: nil, from: .position(0)).events
        XCTAssertEqual(events.map(\.name.description), (35..<40).map { "n\($0).denied.test." })
        XCTAssertEqual(events.map(\.client), (35..<40).map(client))
        XCTAssertEqual(events.map(\.profile), (35..<40).map { "p\($0 % 7)" })
        XCTAssertEqual(events.map(\.denial), (35..<40).map(reason))
        XCTAssertEqual(log.extrasHeld, 3, "details of overwritten events are let go")
        XCTAssertEqual(events.map(\.type), (35..<40).map { $0 % 2 == 0 ? RecordType.a : .txt })
        XCTAssertEqual(events.map(\.audited), (35..<40).map { $0 % 4 == 0 })
        XCTAssertEqual(log.events(client: "192.0.2.1", from: .position(0)).events.map(\.time), [t0 + 36, t0 + 39])
        XCTAssertEqual(log.events(client: "198.51.100.37", from: .position(0)).events.map(\.time), [t0 + 37])
        XCTAssertEqual(log.events(client: "198.51.100.34", from: .position(0)).events.map(\.time), [], "its event was overwritten")
    }

    /// A mark is a position: a denied query after it counts even when the wall clock stepped back in
    /// between and stamped it earlier than the mark (NTP, a VM resync). A job's verdict must not pass.
    func testAMarkHoldsWhenTheClockStepsBack() throws {
        let log = ViolationLog(capacity: 8)
        let hub = TelemetryHub(suffixes: nil, detector: nil, violations: log)
        let t0 = 1_800_000_000.0
        hub.observe(try denied("before.denied.test", at: t0)); hub.drain()
        log.mark("job", at: t0 + 10, lastAlertID: 0)
        hub.observe(try denied("after-step.denied.test", at: t0 - 600)); hub.drain()
        let mark = try XCTUnwrap(log.mark("job"))
        XCTAssertEqual(log.events(client: nil, from: .position(mark.eventsBefore)).events.map(\.name.description), ["after-step.denied.test."])
        XCTAssertEqual(log.events(client: nil, from: .time(mark.time)).events.count, 0, "what a comparison of times would have found")
    }
}

final class ClockStepWatcherTests: XCTestCase {
    func testAStepIsTheWallClockMovingOtherwiseThanTheMonotonicOne() {
        var w = ClockStepWatcher()
        let t0 = 1_800_000_000.0, m0: UInt64 = 5_000_000_000
        XCTAssertNil(w.step(wall: t0, monotonicNanoseconds: m0), "the first reading only sets the reference")
        XCTAssertNil(w.step(wall: t0 + 1.2, monotonicNanoseconds: m0 + 1_000_000_000), "a late tick is no step")
        let back = w.step(wall: t0 + 1.2 - 600 + 1, monotonicNanoseconds: m0 + 2_000_000_000)
        XCTAssertEqual(back ?? 0, -600, accuracy: 0.001)
        let ahead = w.step(wall: t0 + 1.2 - 600 + 2 + 3600, monotonicNanoseconds: m0 + 3_000_000_000)
        XCTAssertEqual(ahead ?? 0, 3600, accuracy: 0.001)
    }
}
