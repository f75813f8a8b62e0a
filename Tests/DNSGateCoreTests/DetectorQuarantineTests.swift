import Foundation
import XCTest
@testable import DNSGateCore
import DNSGateTestSupport

/// A quarantine that is lifted or expires gives the pair no free pass: the detector is driven as the
/// server's runner drives it (`quarantineStarted` after an alert that quarantines, no sinkholed
/// queries while it lasts), and a tunnel that carries on afterwards is caught again, as early as
/// the first time.
final class DetectorQuarantineTests: XCTestCase {
    private let suffixes = DetectorFixtures.suffixes
    private let client = "192.0.2.30"
    private let wildcard = "*.tunnel.test"
    private let domain = try! DNSName("tunnel.test")

    /// One tunnel session: base32 chunks of fresh data in TXT queries, 20 a second, from `start`.
    private func session(_ s: Int, queries: Int, start: Double, rng: inout SeededRandom) -> [QueryEvent] {
        (0..<queries).map { i in
            let label = DetectorFixtures.base32(rng.bytes(30))
            return QueryEvent(time: start + Double(i) * 0.05, client: client, name: try! DNSName("\(label).s\(s)q\(i).tunnel.test"),
                              type: .txt, rcode: .noError)
        }
    }

    /// Feeds `events` until an alert; on one, quarantines as the runner does, with the quarantine
    /// taking effect `lag` seconds later, and returns the alerts and the payload sent up to them. The
    /// queries answered during the lag were on their way: they are fed too, and must raise nothing
    /// new. The queries after it are sinkholed, and the runner passes them on to nobody.
    private func runUntilQuarantined(_ d: TunnelDetector, _ events: [QueryEvent], lag: Double = 2.5)
        -> (kinds: Set<DetectorAlert.Kind>, payload: Int, end: Double)? {
        var payload = 0
        for (i, e) in events.enumerated() {
            payload += DetectorFixtures.payload(e)
            let alerts = d.observe(e, budgetKey: wildcard)
            if !alerts.isEmpty {
                let effective = e.time + lag
                d.quarantineStarted(client: client, registeredDomain: domain, at: effective)
                let inFlight = events[(i + 1)...].prefix { $0.time < effective }
                let more = inFlight.flatMap { d.observe($0, budgetKey: wildcard) }
                XCTAssertEqual(more.map(\.kind), [], "\(inFlight.count) queries on their way when the alert was raised")
                return (Set(alerts.map(\.kind)), payload, effective)
            }
        }
        return nil
    }

    /// QA's dns2tcp finding, in the detector: session 1 was caught by `tunnel`, session 2 after a lift
    /// only by `rate-spike`, 3 by `wildcard-budget`, 4 by nothing. Every session must now be caught
    /// by `tunnel` again, after about as much data as the first, whether the quarantine was lifted
    /// half a minute later or expired (10 minutes, inside the hour-long window and episode gap).
    func testATunnelThatCarriesOnAfterALiftOrAnExpiryIsCaughtAgainEachTime() throws {
        for pause in [30.0, 600.0] {
            let d = TunnelDetector(config: .default, suffixes: suffixes)
            var rng = SeededRandom(seed: 21)
            var t = 1_800_000_000.0, first: Int?
            for s in 1...4 {
                let caught = try XCTUnwrap(runUntilQuarantined(d, session(s, queries: 2000, start: t, rng: &rng)),
                                           "session \(s) after a \(Int(pause)) s quarantine raised nothing")
                XCTAssertTrue(caught.kinds.contains(.tunnel), "session \(s): \(caught.kinds)")
                if let first {
                    XCTAssertLessThanOrEqual(caught.payload, first + first / 4, "session \(s) got further than session 1")
                } else {
                    first = caught.payload
                }
                t = caught.end + pause   // the session stops at the quarantine; the next starts once it ends
            }
        }
    }

    /// A lift is not an immediate re-quarantine: the counts that fired are not held against the pair
    /// again, and names it had already sent stay counted (repeats are free).
    func testAfterALiftRepeatsAndAFewNewNamesRaiseNothing() throws {
        let d = TunnelDetector(config: .default, suffixes: suffixes)
        var rng = SeededRandom(seed: 22)
        let events = session(1, queries: 2000, start: 1_800_000_000, rng: &rng)
        var sent: [QueryEvent] = []
        for e in events {
            sent.append(e)
            if !d.observe(e, budgetKey: wildcard).isEmpty { break }
        }
        d.quarantineStarted(client: client, registeredDomain: domain, at: sent.last!.time + 0.1)
        let after = sent.last!.time + 60
        var alerts: [DetectorAlert] = []
        for (i, e) in sent.enumerated() {
            var again = e
            again.time = after + Double(i) * 0.5
            alerts += d.observe(again, budgetKey: wildcard)
        }
        for i in 0..<10 {
            alerts += d.observe(QueryEvent(time: after + 600 + Double(i) * 7, client: client, name: try DNSName("www\(i).tunnel.test"),
                                           type: .a, rcode: .noError), budgetKey: wildcard)
        }
        XCTAssertEqual(alerts, [])
    }

    /// A wildcard budget that quarantined starts counting again too: the names it already counted
    /// would otherwise fire it on the pair's first query after the lift.
    func testTheWildcardBudgetCountsAgainFromZeroAfterAQuarantine() throws {
        var config = DetectorConfig.default
        config.wildcardDistinctNames = 50
        let d = TunnelDetector(config: config, suffixes: suffixes)
        // Irregular gaps and short host names: only the budget can fire.
        func t(_ i: Int) -> Double { 1_800_000_000 + Double(i) * 1.7 + Double(i % 3) * 0.5 }
        func name(_ i: Int) -> DNSName { try! DNSName("w\(i).tunnel.test") }
        var i = 0, alerts: [DetectorAlert] = []
        while alerts.isEmpty, i < 200 { alerts = d.observe(QueryEvent(time: t(i), client: client, name: name(i), type: .a, rcode: .noError), budgetKey: wildcard); i += 1 }
        XCTAssertEqual(alerts.map(\.kind), [.wildcardBudget])
        d.quarantineStarted(client: client, registeredDomain: domain, at: t(i - 1) + 0.1)
        let resumed = i
        XCTAssertEqual(d.observe(QueryEvent(time: t(i), client: client, name: name(0), type: .a, rcode: .noError), budgetKey: wildcard), [],
                       "one query after the lift")
        alerts = []
        while alerts.isEmpty, i < resumed + 200 { alerts = d.observe(QueryEvent(time: t(i), client: client, name: name(i), type: .a, rcode: .noError), budgetKey: wildcard); i += 1 }
        XCTAssertEqual(alerts.map(\.kind), [.wildcardBudget], "the budget fires again once the names after the lift pass it")
        XCTAssertGreaterThanOrEqual(i - resumed, 45, "about 50 new names (HyperLogLog estimate), not one")
        XCTAssertEqual(d.alertsSnapshot().filter { $0.kind == .wildcardBudget }.count, 1, "the new episode replaced the closed one")
    }

    /// The wall clock steps back an hour while the pair is quarantined (NTP, a VM resumed), and the
    /// server tells the detector so (`clockStepped`), as it moves the quarantine's own end. A tunnel
    /// that carries on after the lift is caught again; without the shift every query of the next
    /// hour looked as if it had been answered before the quarantine began, and raised nothing.
    func testATunnelIsCaughtAgainAfterALiftThatFollowsAStepBackOfTheClock() throws {
        for shifted in [true, false] {
            let d = TunnelDetector(config: .default, suffixes: suffixes)
            var rng = SeededRandom(seed: 23)
            let first = try XCTUnwrap(runUntilQuarantined(d, session(1, queries: 2000, start: 1_800_000_000, rng: &rng)))
            let step = -3600.0
            if shifted { d.clockStepped(by: step) }
            let again = runUntilQuarantined(d, session(2, queries: 2000, start: first.end + 30 + step, rng: &rng))
            if shifted {
                XCTAssertTrue(again?.kinds.contains(.tunnel) ?? false, "after the step and the lift: \(String(describing: again?.kinds))")
            } else {
                XCTAssertFalse(again?.kinds.contains(.tunnel) ?? false,
                               "the gap this test closes: without the shift the second session is no tunnel (\(String(describing: again?.kinds)))")
            }
        }
    }
}
