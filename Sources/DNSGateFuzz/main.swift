// libFuzzer target over everything dnsgate does with bytes from the network: the query decoder, the
// policy decision, the replies it writes itself, and the upstream-answer checker with its renderer.
//
// One file, two builds. SwiftPM links every executable with `--defsym main=DNSGateFuzz_main`, so
// libFuzzer's own `main` is never linked in and a file of bare declarations fails with "undefined symbol
// DNSGateFuzz_main". The entry point is therefore always the `@main` type at the bottom (SwiftPM sees
// `@main` in a single-file executable and compiles it with -parse-as-library by itself, so the fuzz
// recipe's -parse-as-library changes nothing), and DNSGATE_LIBFUZZER picks what it does:
//
// - fuzz build (.ci/fuzz): `swift build -c release --product DNSGateFuzz -Xswiftc -sanitize=fuzzer
//   -Xswiftc -parse-as-library -Xswiftc -DDNSGATE_LIBFUZZER --scratch-path .build-fuzz`:
//   `main` hands control to libFuzzer through `LLVMFuzzerRunDriver`, with the same options and corpus
//   arguments as a libFuzzer binary.
// - normal build (`swift build`, debug or release): `main` replays every file (or every file in every
//   directory) named on the command line through the same function, to check a corpus or reproduce a
//   crash artifact: `DNSGateFuzz fuzz-artifacts/crash-...`.
//
// Invariants checked here besides "does not crash": a decoded name survives its presentation form,
// every reply dnsgate writes starts with the query's ID and has QR set, and a rendered answer keeps the
// client's question bytes.

import DNSGateCore
import Foundation

/// The fixed policy the fuzzer decides against: exact and wildcard entries, per-entry types, and RPZ
/// deny, NODATA and local-data entries, so every branch of `PolicyDecision` is reachable.
enum FuzzPolicy {
    static let policy: Policy = {
        let plain = """
            example.com                 # apex
            *.example.org               # wildcard
            api.example.org  A,TXT      # per-entry types
            example.net      AAAA       # v6 only
            """
        let rpz = """
            $ORIGIN rpz.example.org.
            @ SOA ns.example.org. hostmaster.example.org. 1 3600 600 86400 60
            bad.example.org     CNAME .
            nodata.example.org  CNAME *.
            sink.example.org    A 192.0.2.99
            sink.example.org    AAAA 2001:db8::99
            """
        do {
            let entries = try PlainListLoader.load(text: plain, file: "fuzz.allow")
                + RPZLoader.load(text: rpz, file: "fuzz.rpz")
            return Policy(allowList: try AllowList(entries), sinkholeTTL: 30)
        } catch {
            fatalError("fuzz policy does not load: \(error)")
        }
    }()

    static let blocked = ExtendedError(.blocked, "blocked by dnsgate policy (fuzz)")
}

/// One input, every stage. Never throws out and never traps on its own; a trap means a bug found.
func fuzzOne(_ bytes: [UInt8]) {
    switch RequestSanity.decode(bytes) {
    case .drop:
        break
    case .reject(let r):
        check(ResponseBuilder.error(r, ede: FuzzPolicy.blocked), answers: r.header.id)
    case .query(let q):
        precondition((try? DNSName(q.name.description)) == q.name, "name does not round-trip: \(q.name)")
        let verdict = PolicyDecision.decide(FuzzPolicy.policy, name: q.name, type: q.type)
        switch verdict.action {
        case .forward:
            _ = UpstreamQuery.make(id: q.header.id, name: q.name, type: q.type, dnssecOK: q.edns?.dnssecOK ?? false)
        case .sinkhole(let mode):
            let rcode: ResponseCode = mode == .refused ? .refused : mode == .nxdomain ? .nxDomain : .noError
            check(ResponseBuilder.synthesized(q, rcode: rcode, answers: [], ttl: FuzzPolicy.policy.sinkholeTTL,
                                              ede: FuzzPolicy.blocked), answers: q.header.id)
        case .local(let records):
            check(ResponseBuilder.synthesized(q, rcode: .noError, answers: records, ttl: FuzzPolicy.policy.sinkholeTTL,
                                              ede: nil), answers: q.header.id)
        }
        check(ResponseBuilder.truncated(q), answers: q.header.id)
        _ = ResponseBuilder.sizeLimit(edns: q.edns, overTCP: false)
    }
    fuzzUpstream(bytes)
}

/// Reads the input as an upstream reply to the question it carries itself (ID from octets 0–1, name and
/// type from the uncompressed question at 12), so the checker gets past its first guards often.
func fuzzUpstream(_ bytes: [UInt8]) {
    guard bytes.count >= 12 else { return }
    let id = UInt16(bytes[0]) << 8 | UInt16(bytes[1])
    var i = 12
    while i < bytes.count, bytes[i] != 0, bytes[i] <= 63 { i += Int(bytes[i]) + 1 }
    guard i + 4 < bytes.count, bytes[i] == 0, let name = try? DNSName(wire: Array(bytes[12...i])) else { return }
    let type = RecordType(UInt16(bytes[i + 1]) << 8 | UInt16(bytes[i + 2]))
    guard let answer = try? UpstreamAnswer(bytes, id: id, name: name, type: type) else { return }
    // A client asking the same question in its own case, once with EDNS and once without.
    for dnssecOK in [true, false] {
        var query = UpstreamQuery.make(id: id ^ 0x5A5A, name: name, type: type, dnssecOK: dnssecOK)
        if !dnssecOK { query.removeLast(11); query[11] = 0 }   // drop the OPT: ARCOUNT 0
        guard case .query(let client) = RequestSanity.decode(query) else {
            preconditionFailure("our own upstream query does not decode")
        }
        let out = answer.render(for: client, age: UInt32(bytes.count), staleTTL: dnssecOK ? 30 : nil,
                                ede: dnssecOK ? ExtendedError(.staleAnswer, "fuzz") : nil)
        check(out, answers: client.header.id)
        precondition(out[12..<(12 + client.rawQuestion.count)].elementsEqual(client.rawQuestion), "question not echoed")
    }
}

/// Every reply dnsgate writes answers the query it was given.
func check(_ reply: [UInt8], answers id: UInt16) {
    precondition(reply.count >= 12, "reply shorter than a header")
    precondition(UInt16(reply[0]) << 8 | UInt16(reply[1]) == id, "reply has the wrong ID")
    precondition(reply[2] & 0x80 != 0, "reply without QR")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    fuzzOne(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

/// Replays files and directories named on the command line (normal build only; see the file header).
enum CommandLineReplay {
    static func run() -> Int32 {
        let paths = CommandLine.arguments.dropFirst()
        if paths.isEmpty {
            print("usage: DNSGateFuzz FILE|DIR...   (replays inputs; build with -sanitize=fuzzer to fuzz)")
            return 2
        }
        var count = 0
        for path in paths {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
                print("\(path): no such file"); return 1
            }
            let files = isDir.boolValue
                ? ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted().map { path + "/" + $0 }
                : [path]
            for f in files {
                guard let data = FileManager.default.contents(atPath: f) else { print("\(f): unreadable"); return 1 }
                fuzzOne([UInt8](data))
                count += 1
            }
        }
        print("replayed \(count) inputs without a crash")
        return 0
    }
}

#if DNSGATE_LIBFUZZER
/// libFuzzer's driver (compiler-rt `FuzzerDriver.cpp`), linked in by -sanitize=fuzzer.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt
#endif

@main
enum FuzzEntry {
    static func main() {
        #if DNSGATE_LIBFUZZER
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in
            guard let data else { fuzzOne([]); return 0 }   // libFuzzer may pass null for the empty input
            return fuzz(data, size)
        })
        #else
        exit(CommandLineReplay.run())
        #endif
    }
}
