import DNSGateCore
import Foundation
import NIOCore
import NIOExtras
import NIOPosix

/// A request on the control socket: one JSON object per line, answered by one JSON object per line.
public struct ControlRequest: Codable, Sendable {
    public var command: String
    public var arguments: [String: String]?
    public init(command: String, arguments: [String: String]? = nil) { self.command = command; self.arguments = arguments }
}

/// Answers control requests; implemented by the service.
public protocol ControlResponder: Sendable {
    /// Returns a JSON object (already encoded) for the request.
    func respond(to request: ControlRequest) -> [String: Any]
}

/// The control API on a local Unix socket, spoken by `dnsgate stats`, `reload` and friends.
///
/// The socket file gets owner-and-group permissions (config `control.mode`); its directory is created
/// if missing. Each connection carries one request and is closed after the answer; its
/// `ConnectionLimit` caps how many are open and closes one with no request line within its idle timeout.
final class ControlServer {
    private let channel: Channel
    let path: String
    /// A request line past this is answered with an error and the connection closed: requests are
    /// under 1 KB, and the line decoder alone buffered 256 MB without a newline (QA pass 5).
    /// Room for `suggest --diff`, which sends the file's text (an allow-list of 100,000 entries is
    /// about 3 MB); other requests are under 1 KB.
    static let maxRequestBytes = 8 << 20

    init(path: String, mode: UInt16, group: EventLoopGroup, limit: ConnectionLimit, responder: ControlResponder) throws {
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o750]) }
        channel = try ServerBootstrap(group: group)
            .childChannelInitializer { ch in
                guard limit.admit(ch) else { return ch.eventLoop.makeSucceededVoidFuture() }
                return ch.eventLoop.makeCompletedFuture {
                    let ops = ch.pipeline.syncOperations
                    try ops.addHandler(ByteToMessageHandler(LineBasedFrameDecoder(), maximumBufferSize: Self.maxRequestBytes))
                    try limit.addIdleTimeout(to: ops)
                    try ops.addHandler(ControlRequestHandler(responder: responder))
                }
            }
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true)
            .wait()
        chmod(path, mode_t(mode))
        self.path = path
    }

    func close() {
        try? channel.close().wait()
        unlink(path)
    }
}

final class ControlRequestHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private let responder: ControlResponder
    /// One request a connection: lines after the first are not answered.
    private var answered = false
    init(responder: ControlResponder) { self.responder = responder }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let line = unwrapInboundIn(data)
        if let req = try? JSONDecoder().decode(ControlRequest.self, from: Data(line.readableBytesView)) {
            answer(responder.respond(to: req), context: context)
        } else {
            answer(["ok": false, "error": "expected one JSON object per line: {\"command\": \"stats\"}"], context: context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if error is ByteToMessageDecoderError.PayloadTooLargeError {
            answer(["ok": false, "error": "request line longer than \(ControlServer.maxRequestBytes) bytes"], context: context)
        } else if !answered {   // once answered, the close follows the answer out
            context.close(promise: nil)
        }
    }

    /// Writes the answer and closes once it is out; reads nothing more.
    private func answer(_ answer: [String: Any], context: ChannelHandlerContext) {
        guard !answered else { return }
        answered = true
        context.channel.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in }
        var out = (try? JSONSerialization.data(withJSONObject: answer, options: [.sortedKeys])) ?? Data("{\"ok\":false}".utf8)
        out.append(0x0A)
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: out))).whenComplete { _ in context.close(promise: nil) }
    }
}

/// Client side of the control socket, used by the CLI.
public enum ControlClient {
    public static func send(_ request: ControlRequest, socket path: String, timeout: TimeAmount = .seconds(10)) throws -> [String: Any] {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let promise = group.next().makePromise(of: ByteBuffer.self)
        let channel: Channel
        do {
            channel = try ClientBootstrap(group: group)
                .channelInitializer { ch in
                    ch.eventLoop.makeCompletedFuture {
                        try ch.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineBasedFrameDecoder()))
                        try ch.pipeline.syncOperations.addHandler(LineCollector(promise: promise))
                    }
                }
                .connect(unixDomainSocketPath: path).wait()
        } catch {
            promise.fail(error)   // every promise is completed, also on this path
            throw ControlClientError("cannot reach dnsgate at \(path): \(errorText(error)). Is `dnsgate serve` running, and is this the socket in its config (control.socket)?")
        }
        var req = try JSONEncoder().encode(request); req.append(0x0A)
        try channel.writeAndFlush(ByteBuffer(bytes: req)).wait()
        group.next().scheduleTask(in: timeout) { promise.fail(ControlClientError("no answer from \(path) within \(timeout)")) }
        let line = try promise.futureResult.wait()
        guard let obj = try JSONSerialization.jsonObject(with: Data(line.readableBytesView)) as? [String: Any] else {
            throw ControlClientError("unreadable answer from \(path)")
        }
        return obj
    }

    final class LineCollector: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let promise: EventLoopPromise<ByteBuffer>
        init(promise: EventLoopPromise<ByteBuffer>) { self.promise = promise }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { promise.succeed(unwrapInboundIn(data)) }
        func channelInactive(context: ChannelHandlerContext) { promise.fail(ControlClientError("connection closed without an answer")) }
    }
}

public struct ControlClientError: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
    public static func make(_ d: String) -> ControlClientError { ControlClientError(d) }
}

/// Convenience for the CLI: one command with string arguments.
public enum DNSGateServerControl {
    public static func send(_ command: String, _ args: [String: String], socket: String) throws -> [String: Any] {
        try ControlClient.send(ControlRequest(command: command, arguments: args.isEmpty ? nil : args), socket: socket)
    }
}
