import CDNSGateSockets
import DNSGateCore
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// The cache misses of one UDP listener, asked upstream from the listener's own thread, on sockets of
/// its own.
///
/// Handing each miss to an event loop woke that loop's thread twice per miss (the hand-off, then the
/// answer): at 50,000 queries/s of the CI mix it spent about 40 µs per miss, and with every query a
/// miss the server answered half as many (bench/RESULTS.md). Here the query leaves from the thread that
/// read the client's, and only the answer wakes it, as in unbound.
///
/// The rules are `UpstreamClient`'s. Each query goes out on one of a few sockets per upstream, each
/// connected to it from its own kernel-chosen port, with a random ID (RFC 5452 §9.2). An answer counts
/// only if it comes from the address asked (the kernel already drops other sources on a connected
/// socket), with that ID, and answers that question; anything else is dropped and the exchange keeps
/// waiting; one for no exchange in flight is counted (`UpstreamClient.unwanted`). A refused port
/// (ICMP) fails the exchanges on that socket at once, as a connected socket reports it. A timeout,
/// SERVFAIL or REFUSED moves on to the next upstream, at most two passes and never past the deadline.
/// Identical questions in flight share one exchange. A truncated answer goes to `UpstreamClient`,
/// which asks over TCP (RFC 7766 §5).
///
/// Not thread-safe: one per listener thread.
final class DirectUpstream {
    private struct Target {
        var storage = sockaddr_storage()
        var length = socklen_t(0)
        let family: Int32
        /// Unretained: `client.upstreams` holds each upstream's health for as long as this exists. Held
        /// strongly, each read of a target (three a miss) was a retain and a release.
        private let healthRef: Unmanaged<UpstreamHealth>
        var health: UpstreamHealth { healthRef.takeUnretainedValue() }
        /// `body` given the health without a retain (the plain property is retained around each use).
        func withHealth<R>(_ body: (UpstreamHealth) -> R) -> R { healthRef._withUnsafeGuaranteedRef(body) }
        init(family: Int32, health: UpstreamHealth) { self.family = family; healthRef = .passUnretained(health) }
    }

    private final class Exchange {
        let key: CacheKey
        let spelling: ArraySlice<UInt8>?
        /// The client that asked first, kept inline: an array for every exchange was one more
        /// allocation per miss, and most exchanges have one client.
        let first: (job: ForwardJob, to: DatagramSource)
        /// Clients that asked the same question while it was in flight.
        var more: [(job: ForwardJob, to: DatagramSource)] = []
        var waiterCount: Int { 1 + more.count }
        let start: Int
        let deadline: UInt64
        var attempt = 0
        var target = 0
        var slot = 0
        var id: UInt16 = 0
        var sentAt: UInt64 = 0
        /// Whether the attempt in flight carries an OPT.
        var sentEDNS = true
        /// Set for the one retry without OPT after the upstream refused it.
        var withoutEDNS = false
        /// The upstream's `rejected` count when the attempt in flight left.
        var rejectedBefore = 0
        var timeoutAt: UInt64 = 0
        var lastError = UpstreamError.noUpstreams
        func forEachWaiter(_ body: (ForwardJob, DatagramSource) -> Void) {
            body(first.job, first.to)
            for w in more { body(w.job, w.to) }
        }
        init(key: CacheKey, spelling: ArraySlice<UInt8>?, first: (ForwardJob, DatagramSource), start: Int, deadline: UInt64) {
            self.key = key; self.spelling = spelling; self.first = first; self.start = start; self.deadline = deadline
        }
    }

    /// An exchange's socket and query ID: what an answer is matched by. Hashed with one mix, keyed
    /// like `TableHash`, where an `Int` key went through SipHash: about 100 instructions each of the
    /// four times a miss looks one up.
    private struct SlotID: Hashable {
        let value: Int
        init(_ slot: Int, _ id: UInt16) { value = slot << 16 | Int(id) }
        func _rawHashValue(seed: Int) -> Int {
            Int(truncatingIfNeeded: StableHash.mix(UInt64(bitPattern: Int64(value)) ^ TableHash.secret ^ UInt64(bitPattern: Int64(seed))))
        }
    }

    /// Sockets per upstream: the port a forger must guess is one of these.
    static let socketsPerUpstream = 4
    /// Answers taken per `recvmmsg` on an upstream socket.
    static let readsPerCall = 16
    /// How often timeouts are looked for while anything is in flight.
    static let sweepNanoseconds: UInt64 = 10_000_000

    private let client: UpstreamClient
    private let core: ServingCore
    private let targets: [Target]
    private let timeout: UInt64
    private let deadline: UInt64
    private var sockets: [(fd: CInt, target: Int)] = []
    /// Positions in `sockets` of each upstream's sockets, opened one upstream after another: a range,
    /// where an array of positions was retained and released on every query sent.
    private var slotsOf: [Range<Int>] = []
    /// Queries waiting to leave, one `sendmmsg` per socket at `flush`.
    private var outgoing: [ReplyBatch] = []
    /// Per upstream, the socket new queries go out on, and how many have since it was drawn. It is
    /// drawn at random for a query when the last one has no exchange left in flight, so an unloaded
    /// server picks a socket per query. Under load it is kept for `queriesPerSocket`: a group's queries
    /// leave in one `sendmmsg`, and the answers come back on one socket, so `poll` watches it and the
    /// client socket instead of five (about 2 % of the CPU a miss at 50,000 misses/s, bench/RESULTS.md).
    /// A forger still guesses among the same four ports.
    private var currentSlot: [Int?] = []
    private var sentOnCurrentSlot: [Int] = []
    static let queriesPerSocket = 64
    /// Exchanges waiting on each socket; `wait` polls only the sockets that have some.
    private var inFlightOn: [Int] = []
    private var byKey: [CacheKey: Exchange] = [:]
    private var bySlotID: [SlotID: Exchange] = [:]
    private var random: BufferedRandom
    /// Each query upstream is written here and copied into its socket's send batch: a new array each
    /// was an allocation and a free per miss.
    private var query: [UInt8] = []
    private let received = ReceiveBatch(count: readsPerCall, slotSize: UpstreamHealth.datagramReadSize)
    /// Reads what waited in a socket that had nothing in flight (`drainStale`); its own buffers, as
    /// `collect` may be reading `received` when an exchange moves on to an idle socket.
    private let stale = ReceiveBatch(count: readsPerCall, slotSize: 512)
    private var nextSweep: UInt64 = 0
    private var pollSet: [pollfd] = []
    /// The sockets in `pollSet` after the client socket, in order; rebuilt when one gains its first
    /// exchange or loses its last.
    private var polledSlots: [Int] = []
    private var pollSetStale = true
    /// Where replies for clients go (the listener's send batch); and misses for the event loop (TCP).
    private let deliver: ([UInt8], DatagramSource, Double) -> Void
    private let handOff: (ForwardJob, DatagramSource) -> Void
    /// The listener thread's: answers are written into its reply buffer, which `deliver` hands back
    /// once it has copied the reply, instead of a new array each.
    private let scratch: QueryScratch?

    /// Clients waiting on an exchange.
    private(set) var waiting = 0
    var isIdle: Bool { bySlotID.isEmpty }

    /// - Parameters:
    ///   - deliver: sends a reply to a client, with the time its query arrived (for dnstap).
    ///   - random: IDs and socket choices; the kernel's, but in tests.
    init(client: UpstreamClient, core: ServingCore, deliver: @escaping ([UInt8], DatagramSource, Double) -> Void,
         handOff: @escaping (ForwardJob, DatagramSource) -> Void, scratch: QueryScratch? = nil, random: BufferedRandom = BufferedRandom()) {
        self.client = client; self.core = core; self.deliver = deliver; self.handOff = handOff; self.scratch = scratch; self.random = random
        timeout = UInt64(max(client.timeout.nanoseconds, 0))
        deadline = UInt64(max(client.deadline.nanoseconds, 0))
        targets = client.upstreams.map { address, health in
            var t = Target(family: address.protocol.rawValue, health: health)
            address.withSockAddr { sa, n in
                withUnsafeMutableBytes(of: &t.storage) { $0.copyMemory(from: UnsafeRawBufferPointer(start: sa, count: n)) }
                t.length = socklen_t(n)
            }
            return t
        }
        for (k, t) in targets.enumerated() {
            let first = sockets.count
            defer { slotsOf.append(first ..< sockets.count) }
            for _ in 0..<Self.socketsPerUpstream {
                let fd = socket(t.family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
                guard fd >= 0 else { continue }
                // connect(2) binds an ephemeral port; a socket that cannot connect is left out (its
                // upstream then fails at once, and the exchange moves on).
                let ok = withUnsafePointer(to: t.storage) { p in p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, t.length) } }
                if ok == 0 { sockets.append((fd, k)) } else { close(fd) }
            }
        }
        outgoing = sockets.map { _ in ReplyBatch(count: 32, dnstap: core.dnstap, tapKind: .forwarderQuery) }
        currentSlot = Array(repeating: nil, count: targets.count)
        sentOnCurrentSlot = Array(repeating: 0, count: targets.count)
        inFlightOn = Array(repeating: 0, count: sockets.count)
        pollSet.reserveCapacity(sockets.count + 1)
        query.reserveCapacity(512)
        polledSlots.reserveCapacity(sockets.count)
    }

    deinit { for s in sockets { close(s.fd) } }

    /// Starts the exchange for `job`, or joins the one in flight for the same question.
    func ask(_ job: ForwardJob, for to: DatagramSource, spelling: ArraySlice<UInt8>?) {
        waiting += 1
        if let e = byKey[job.key] {
            e.more.append((job, to))
            client.coalesced.add(1)
            return
        }
        let now = MonotonicClock.nanoseconds()
        let e = Exchange(key: job.key, spelling: spelling, first: (job, to), start: client.rotation.value, deadline: now + deadline)
        byKey[job.key] = e
        send(e, now: now)
    }

    /// Waits until the client socket `fd` or an upstream socket is readable, or the next timeout
    /// check is due (at most `maxMilliseconds`); with `block` false, only looks. Returns whether `fd`
    /// has anything to read: a read that would find nothing is a system call saved (at 50,000 misses
    /// a second, 40 % of the listener's reads found nothing).
    func wait(alsoFor fd: CInt, maxMilliseconds: Int, block: Bool) -> Bool {
        if pollSetStale {
            pollSet.removeAll(keepingCapacity: true); polledSlots.removeAll(keepingCapacity: true)
            pollSet.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0))
            for slot in sockets.indices where inFlightOn[slot] > 0 {
                polledSlots.append(slot)
                pollSet.append(pollfd(fd: sockets[slot].fd, events: Int16(POLLIN), revents: 0))
            }
            pollSetStale = false
        }
        let now = MonotonicClock.nanoseconds()
        let untilSweep = nextSweep > now ? Int((nextSweep - now) / 1_000_000) + 1 : 0
        // A failed poll (EINTR, say) says nothing about the client socket: read it anyway.
        guard poll(&pollSet, nfds_t(pollSet.count), block ? Int32(min(maxMilliseconds, untilSweep)) : 0) >= 0 else { return true }
        return pollSet[0].revents != 0
    }

    /// Takes the answers on the upstream sockets `wait` found readable, and ends the exchanges past
    /// their timeout. (Late answers on a socket with nothing in flight wait in its buffer until it is
    /// used again, and are dropped and counted then, before its next query leaves: `drainStale`.)
    func collect() {
        for k in pollSet.indices.dropFirst() where pollSet[k].revents != 0 {
            pollSet[k].revents = 0
            let slot = polledSlots[k - 1]
            while true {
                let n = received.receive(sockets[slot].fd, wait: false)
                if n < 0, errno == ECONNREFUSED { refused(slot) }
                if n <= 0 { break }
                for i in 0..<n { answer(received.datagram(i), from: received.source(i), on: slot) }
                if n < Self.readsPerCall { break }
            }
        }
        let now = MonotonicClock.nanoseconds()
        if now >= nextSweep {
            nextSweep = now + Self.sweepNanoseconds
            for e in Array(bySlotID.values) where e.timeoutAt <= now {
                next(e, targets[e.target].health.timedOut(rejectedBefore: e.rejectedBefore), now: now)
            }
        }
    }

    /// Queries held before they are sent while more client queries wait, or the longest the first of
    /// them waits: each send wakes the upstream, and under load one `sendmmsg` per listener batch (a
    /// miss or two each) cost the CI mix 15 % of its rate. When the client socket runs dry they go at
    /// once (the listener's next read finds nothing), so an unloaded server adds no latency.
    static let queriesPerSend = 16
    static let holdNanoseconds: UInt64 = 500_000
    private var held = 0
    private var heldSince: UInt64 = 0
    /// Queries are queued and not yet sent: the listener must not block before `flush`.
    var holding: Bool { held > 0 }

    /// Sends the queries queued so far, one `sendmmsg` per socket used; while `backlog` says more client
    /// queries wait, only once enough are queued or the first has waited long enough.
    func flush(backlog: Bool) {
        guard held > 0 else { return }
        if backlog, held < Self.queriesPerSend, MonotonicClock.nanoseconds() - heldSince < Self.holdNanoseconds { return }
        for (slot, batch) in outgoing.enumerated() where batch.hasQueued { batch.send(sockets[slot].fd) }
        held = 0
    }

    /// The upstream refused a query sent on `slot` (ICMP port unreachable): every exchange waiting
    /// there moves on now, not at its timeout.
    private func refused(_ slot: Int) {
        let now = MonotonicClock.nanoseconds()
        let address = targets[sockets[slot].target].health.address
        for e in Array(bySlotID.values) where e.slot == slot { next(e, .transport(address, "connection refused"), now: now) }
    }

    private func answer(_ bytes: UnsafeRawBufferPointer, from source: UnsafePointer<sockaddr_storage>, on slot: Int) {
        guard bytes.count >= 12, case let id = UInt16(bytes[0]) << 8 | UInt16(bytes[1]),
              let e = bySlotID[SlotID(slot, id)], Self.same(source, targets[e.target]) else { return client.unwanted.note() }   // stray, late or forged
        targets[e.target].withHealth { settle(e, with: Array(bytes), id: id, from: $0) }
    }

    /// Ends or moves on exchange `e` with `bytes`, a reply from its upstream with its ID.
    private func settle(_ e: Exchange, with bytes: consuming [UInt8], id: UInt16, from health: UpstreamHealth) {
        guard let a = health.checkedAnswer(bytes, id: id, name: e.key.name, type: e.key.type) else { return }
        let now = MonotonicClock.nanoseconds()
        if !a.isAnswer {
            // An upstream that may not know EDNS: the same attempt again, without OPT (RFC 6891 §7).
            if health.retryWithoutEDNS(after: a, sentEDNS: e.sentEDNS) { untrack(e); e.withoutEDNS = true; return send(e, now: now) }
            return next(e, .unusable(health.address, a.upstreamRCODE), now: now)
        }
        let answer = health.accepted(a, sentEDNS: e.sentEDNS, dnssecOK: e.key.dnssecOK, at: now)
        untrack(e)
        byKey[e.key] = nil
        waiting -= e.waiterCount
        if answer.truncated {
            e.forEachWaiter { handOff($0, $1) }   // RFC 7766 §5: the event loop asks over TCP
            return
        }
        health.recordAnswer(afterNanoseconds: Int64(now - e.sentAt))
        e.forEachWaiter { deliver(core.finish($0, answer: answer, scratch: scratch), $1, $0.record.time) }
    }

    /// Sends `e`'s current attempt; a send that fails counts as a failed attempt.
    private func send(_ e: Exchange, now: UInt64) {
        while true {
            guard !targets.isEmpty, e.attempt < targets.count * 2, now < e.deadline else { return fail(e) }
            e.target = (e.start + e.attempt) % targets.count
            let t = targets[e.target]
            let candidates = slotsOf[e.target]
            guard !candidates.isEmpty else { e.lastError = .transport(t.health.address, "no socket"); e.attempt += 1; continue }
            e.slot = slot(for: e.target, among: candidates)
            repeat { e.id = random.uint16() } while bySlotID[SlotID(e.slot, e.id)] != nil
            (e.sentEDNS, e.rejectedBefore) = t.withHealth { ($0.usesEDNS && !e.withoutEDNS, $0.rejected.value) }
            UpstreamQuery.write(into: &query, id: e.id, name: e.key.name, spelling: e.spelling, type: e.key.type, dnssecOK: e.key.dnssecOK,
                                checkingDisabled: e.key.checkingDisabled, edns: e.sentEDNS)
            // Sent with the round's other queries (`flush`); a send the kernel refuses surfaces as a
            // refused port or a timeout, and the exchange moves on then.
            withUnsafePointer(to: t.storage) { outgoing[e.slot].queue(query, to: $0, length: t.length, from: dnsgate_local(), fd: sockets[e.slot].fd) }
            if held == 0 { heldSince = now }
            held += 1
            e.sentAt = now
            e.timeoutAt = min(now + timeout, e.deadline)
            track(e)
            if nextSweep == 0 || nextSweep > e.timeoutAt { nextSweep = e.timeoutAt }
            return
        }
    }

    /// The attempt failed: on to the next upstream, or the end of the exchange.
    private func next(_ e: Exchange, _ error: UpstreamError, now: UInt64) {
        untrack(e)
        e.withoutEDNS = false
        targets[e.target].health.recordFailure(error)
        client.rotation.add(1)
        e.lastError = error
        e.attempt += 1
        send(e, now: now)
    }

    /// The socket for the next query to upstream `target`: the current one while it has exchanges in
    /// flight and has carried fewer than `queriesPerSocket`, else one drawn at random.
    private func slot(for target: Int, among candidates: Range<Int>) -> Int {
        if let s = currentSlot[target], inFlightOn[s] > 0, sentOnCurrentSlot[target] < Self.queriesPerSocket {
            sentOnCurrentSlot[target] += 1
            return s
        }
        let s = candidates.lowerBound + Int(random.uint16()) % candidates.count
        currentSlot[target] = s
        sentOnCurrentSlot[target] = 1
        return s
    }

    private func track(_ e: Exchange) {
        if inFlightOn[e.slot] == 0 {
            drainStale(e.slot)
            pollSetStale = true
        }
        bySlotID[SlotID(e.slot, e.id)] = e
        inFlightOn[e.slot] += 1
    }

    /// Empties a socket that is about to carry an exchange after having none. An idle socket is not
    /// polled, so whatever reached it since its last exchange (late answers, duplicates, or replies an
    /// off-path forger planted there at leisure, one per ID it bets on) waited in its buffer, and the
    /// new exchange would have read it as a possible answer: a planted reply with the ID drawn next
    /// was taken and cached (QA pass 9, one miss in about 256). Called before the query leaves, so
    /// nothing read here can be its answer; each datagram counts as unwanted.
    private func drainStale(_ slot: Int) {
        // Bounded: a socket's buffer holds a few hundred small datagrams, and a flood of ICMP errors
        // must not keep the listener here.
        for _ in 0..<64 {
            let n = stale.receive(sockets[slot].fd, wait: false)
            // An old refusal (ICMP) is reported first and cleared by this read; what queued behind it
            // is read on the next turn.
            if n < 0 && errno == ECONNREFUSED { continue }
            if n <= 0 { return }   // empty (EAGAIN)
            for _ in 0..<n { client.unwanted.note() }
            if n < Self.readsPerCall { return }
        }
    }

    private func untrack(_ e: Exchange) {
        bySlotID[SlotID(e.slot, e.id)] = nil
        inFlightOn[e.slot] -= 1
        if inFlightOn[e.slot] == 0 { pollSetStale = true }
    }

    /// No upstream answered in time: stale or SERVFAIL for everyone waiting.
    private func fail(_ e: Exchange) {
        byKey[e.key] = nil
        waiting -= e.waiterCount
        e.forEachWaiter { deliver(core.finish($0, error: e.lastError), $1, $0.record.time) }
    }

    private static func same(_ a: UnsafePointer<sockaddr_storage>, _ t: Target) -> Bool {
        guard Int32(a.pointee.ss_family) == t.family else { return false }
        return withUnsafePointer(to: t.storage) { b in
            if t.family == AF_INET {
                let x = UnsafeRawPointer(a).load(as: sockaddr_in.self), y = UnsafeRawPointer(b).load(as: sockaddr_in.self)
                return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr
            }
            let x = UnsafeRawPointer(a).load(as: sockaddr_in6.self), y = UnsafeRawPointer(b).load(as: sockaddr_in6.self)
            return x.sin6_port == y.sin6_port && withUnsafeBytes(of: x.sin6_addr) { xa in withUnsafeBytes(of: y.sin6_addr) { xa.elementsEqual($0) } }
        }
    }
}
