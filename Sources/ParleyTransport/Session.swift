import ParleyCrypto
import ParleyWire

/// Limits and timers of sessions made by a ``SessionEndpoint``. Every value is injectable
/// so tests can run the same code with short intervals.
public struct SessionConfig: Sendable {
    /// The TCP connect timeout of one dial attempt.
    public var connectTimeout: Duration
    /// How `connect(to:expecting:)` retries a TCP dial that failed.
    public var dialRetry: RetryPolicy
    /// A handshake (either role) that has not finished this long after the TCP connection
    /// was established is abandoned and its connection closed.
    public var handshakeTimeout: Duration
    /// At most this many accepted connections may be in their handshake at once; further
    /// connections are closed as soon as they are accepted.
    public var maxPendingHandshakes: Int
    /// A ping is sent when nothing has been sent for this long.
    public var keepaliveInterval: Duration
    /// `.peerSilent` is reported (once per silence) when nothing arrives for this long.
    public var silenceInterval: Duration
    /// When this many received message bytes wait for the application, the session stops
    /// reading the socket until the application has taken them down to `receiveLowWater`.
    public var receiveHighWater: Int
    /// Reading resumes at or below this many undelivered bytes.
    public var receiveLowWater: Int
    /// The send queue of each session's TCP connection.
    public var sendWatermarks: TCPConnection.Watermarks

    public static let defaultHandshakeTimeout: Duration = .seconds(5)
    public static let defaultMaxPendingHandshakes = 256
    public static let defaultKeepaliveInterval: Duration = .seconds(15)
    public static let defaultSilenceInterval: Duration = .seconds(45)
    public static let defaultReceiveHighWater = 1 << 20
    public static let defaultReceiveLowWater = 256 << 10
    /// Keepalive and silence intervals are at least this long: a zero interval would
    /// make the liveness timer fire on every loop iteration.
    public static let minimumLivenessInterval: Duration = .milliseconds(4)

    public init(
        connectTimeout: Duration = TCPConnection.defaultConnectTimeout,
        dialRetry: RetryPolicy = RetryPolicy(maxAttempts: 1),
        handshakeTimeout: Duration = defaultHandshakeTimeout,
        maxPendingHandshakes: Int = defaultMaxPendingHandshakes,
        keepaliveInterval: Duration = defaultKeepaliveInterval,
        silenceInterval: Duration = defaultSilenceInterval,
        receiveHighWater: Int = defaultReceiveHighWater,
        receiveLowWater: Int = defaultReceiveLowWater,
        sendWatermarks: TCPConnection.Watermarks = .default
    ) {
        self.connectTimeout = connectTimeout
        self.dialRetry = dialRetry
        self.handshakeTimeout = handshakeTimeout
        self.maxPendingHandshakes = max(1, maxPendingHandshakes)
        self.keepaliveInterval = max(keepaliveInterval, Self.minimumLivenessInterval)
        self.silenceInterval = max(silenceInterval, Self.minimumLivenessInterval)
        self.receiveHighWater = max(1, receiveHighWater)
        self.receiveLowWater = min(max(0, receiveLowWater), self.receiveHighWater - 1)
        self.sendWatermarks = sendWatermarks
    }
}

/// Why a session (or a connection that never became one) ended.
public enum SessionCloseReason: Equatable, Sendable, CustomStringConvertible {
    /// The peer sent a close frame (with its reason) or, when nil, just ended the stream.
    case peerClosed(String?)
    /// This process closed it, for the stated reason.
    case localClose(String)
    /// The handshake failed on this side.
    case handshakeFailed(HandshakeError)
    /// The handshake did not finish within ``SessionConfig/handshakeTimeout``.
    case handshakeTimeout
    /// The listener already had ``SessionConfig/maxPendingHandshakes`` handshakes running.
    case tooManyPendingHandshakes
    /// A received frame did not authenticate: tampered, replayed, reordered or truncated.
    case tampered(frameIndex: UInt64)
    /// The peer broke the framing or message rules (oversize length, unknown kind, …).
    case protocolViolation(String)
    /// The TCP connection failed or the event loop shut down.
    case transport(TCPCloseReason)

    public var description: String {
        switch self {
        case .peerClosed(nil): "the peer closed the connection"
        case let .peerClosed(reason?): "the peer closed the session: \(reason)"
        case let .localClose(reason): "closed locally: \(reason)"
        case let .handshakeFailed(error): "handshake failed: \(error)"
        case .handshakeTimeout: "the handshake did not finish in time"
        case .tooManyPendingHandshakes: "too many handshakes in progress"
        case let .tampered(frameIndex): "frame \(frameIndex) did not authenticate (tampered, replayed or reordered)"
        case let .protocolViolation(reason): "protocol violation: \(reason)"
        case let .transport(reason): "transport: \(reason)"
        }
    }
}

/// Why a session operation failed.
public enum SessionError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `connect` got a TCP connection but no session: the reason it ended.
    case notEstablished(SessionCloseReason)
    /// The session is closed; the payload was not sent.
    case closed(SessionCloseReason)
    /// The payload does not fit in one frame.
    case payloadTooLarge(length: Int, limit: Int)

    public var description: String {
        switch self {
        case let .notEstablished(reason): "no session established: \(reason)"
        case let .closed(reason): "session closed: \(reason)"
        case let .payloadTooLarge(length, limit): "payload of \(length) bytes exceeds the session limit of \(limit)"
        }
    }
}

/// What a session reports to the application, in order.
public enum SessionEvent: Equatable, Sendable {
    /// One application payload, as the peer passed it to `send`.
    case message([UInt8])
    /// Nothing has arrived since `since` for ``SessionConfig/silenceInterval``. Reported
    /// once per silence; the session stays open.
    case peerSilent(since: ContinuousClock.Instant)
    /// The session ended; always the last event.
    case closed(SessionCloseReason)
}

/// The first plaintext byte of every encrypted frame.
enum SessionFrameKind: UInt8 {
    case data = 0
    case ping = 1
    case pong = 2
    case close = 3
}

/// An authenticated, encrypted session with one peer over one TCP connection.
///
/// State is confined to the connection's loop thread; the public API is safe from any
/// thread. Each payload travels in one encrypted frame whose plaintext starts with a
/// ``SessionFrameKind`` byte. Any frame that fails to open, has an unknown kind or an
/// oversize length ends the session with a typed ``SessionCloseReason``.
///
/// Received messages wait in a bounded inbox read through ``events``: above
/// ``SessionConfig/receiveHighWater`` undelivered bytes the socket is not read, so a slow
/// application slows the peer instead of growing memory.
///
/// Like its connection, a session lives until it is closed (by either side, an error or
/// loop shutdown), even when the application drops its reference.
public final class Session: @unchecked Sendable {
    /// The peer's identity key, proven in the handshake.
    public let peer: PublicKey
    /// The negotiated protocol version.
    public let version: UInt16
    public let config: SessionConfig
    let connection: TCPConnection
    /// The peer's socket address.
    public var remoteAddress: SocketAddress { connection.remoteAddress }
    /// Everything the session reports. Iterate it from one task only.
    public let events: SessionEvents

    private enum State {
        case open
        case closed(SessionCloseReason)
    }

    // Loop-confined.
    private var state = State.open
    private var sealer: FrameSealer
    private var opener: FrameOpener
    private var decoder: FrameDecoder
    private var lastSent: ContinuousClock.Instant
    private var lastReceived: ContinuousClock.Instant
    private var reportedSilence = false
    private var livenessTimer: LoopTimer?
    private var closeWaiters: [CheckedContinuation<SessionCloseReason, Never>] = []
    private(set) var pingsSent = 0
    private(set) var pongsReceived = 0
    private(set) var pingsReceived = 0

    /// Called on the loop thread by the handshake with what it learned and any bytes the
    /// peer sent after its last handshake message.
    init(connection: TCPConnection, keys: SessionKeys, decoder: FrameDecoder, config: SessionConfig) {
        peer = keys.peer
        version = keys.version
        self.connection = connection
        self.config = config
        sealer = FrameSealer(session: keys)
        opener = FrameOpener(session: keys)
        var decoder = decoder
        decoder.maxFrameBytes = WireLimits.maxFrameBytes
        self.decoder = decoder
        let now = ContinuousClock.now
        lastSent = now
        lastReceived = now
        let inbox = SessionInbox(highWater: config.receiveHighWater, lowWater: config.receiveLowWater)
        events = SessionEvents(inbox: inbox)
        inbox.onPressureChange = { [connection] paused in
            if paused { connection.pauseReading() } else { connection.resumeReading() }
        }
    }

    /// Takes over the connection and opens any frames already buffered (loop thread).
    func start() {
        connection.setHandlers(
            onRead: { [self] in received($0) },
            onClose: { [self] in connectionClosed($0) })
        armLivenessTimer()
        received([])
    }

    /// Sends one payload in one encrypted frame, waiting while the connection's send
    /// queue is above its high-water mark.
    /// - Throws: `SessionError.payloadTooLarge` or `SessionError.closed`.
    public func send(_ payload: [UInt8]) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            connection.eventLoop.runOnLoop({ [self] in
                sendFrame(.data, payload) { continuation.resume(with: $0.mapError { $0 as Error }) }
            }, orElse: {
                continuation.resume(throwing: SessionError.closed(.transport(.localClose(EventLoop.shutdownReason))))
            })
        }
    }

    /// Tells the peer why (best effort) and closes the connection. Idempotent.
    public func close(reason: String = "closed by application") {
        connection.eventLoop.runOnLoop { [self] in
            guard case .open = state else { return }
            let frame = try? sealer.sealFrame([SessionFrameKind.close.rawValue] + Array(reason.utf8.prefix(SessionFrameKind.maxCloseReasonBytes)))
            end(.localClose(reason))
            guard let frame, connection.bytesQueued < connection.watermarks.high else {
                return connection.close(reason: reason)
            }
            connection.send(frame) { [connection] _ in connection.close(reason: reason) }
        }
    }

    /// Waits until the session has ended and returns why.
    public func waitUntilClosed() async -> SessionCloseReason {
        await withCheckedContinuation { (continuation: CheckedContinuation<SessionCloseReason, Never>) in
            connection.eventLoop.runOnLoop({ [self] in
                if case let .closed(reason) = state { return continuation.resume(returning: reason) }
                closeWaiters.append(continuation)
            }, orElse: { continuation.resume(returning: .transport(.localClose(EventLoop.shutdownReason))) })
        }
    }

    // MARK: - Loop thread

    private func sendFrame(
        _ kind: SessionFrameKind, _ payload: [UInt8],
        accepted: @escaping @Sendable (Result<Void, SessionError>) -> Void
    ) {
        guard case .open = state else {
            if case let .closed(reason) = state { accepted(.failure(.closed(reason))) }
            return
        }
        let frame: [UInt8]
        do {
            frame = try sealer.sealFrame([kind.rawValue] + payload)
        } catch {
            return accepted(.failure(.payloadTooLarge(length: payload.count, limit: SecureFrames.maxPayloadBytes - 1)))
        }
        lastSent = .now
        connection.send(frame) { [self] result in
            switch result {
            case .success: accepted(.success(()))
            case let .failure(error): accepted(.failure(.closed(closeReason(after: error))))
            }
        }
    }

    private func closeReason(after error: TCPError) -> SessionCloseReason {
        if case let .closed(reason) = state { return reason }
        if case let .connectionClosed(reason) = error { return .transport(reason) }
        return .transport(.localClose(error.description))
    }

    private func received(_ bytes: [UInt8]) {
        guard case .open = state else { return }
        if !bytes.isEmpty {
            decoder.append(bytes)
            lastReceived = .now
            reportedSilence = false
        }
        do {
            while case .open = state, let frame = try decoder.nextFrame() {
                try handle(frame)
            }
        } catch let error as SecureFrameError {
            if case let .tampered(frameIndex) = error {
                fail(.tampered(frameIndex: frameIndex))
            } else {
                fail(.protocolViolation(error.description))
            }
        } catch {
            fail(.protocolViolation(String(describing: error)))
        }
    }

    private func handle(_ frame: [UInt8]) throws {
        let plaintext = try opener.open(frame)
        guard let first = plaintext.first, let kind = SessionFrameKind(rawValue: first) else {
            throw SessionProtocolViolation(reason: "unknown frame kind \(plaintext.first.map(String.init) ?? "(empty frame)")")
        }
        let body = Array(plaintext.dropFirst())
        switch kind {
        case .data:
            events.inbox.push(.message(body))
        case .ping:
            pingsReceived += 1
            sendFrame(.pong, []) { _ in }
        case .pong:
            pongsReceived += 1
        case .close:
            end(.peerClosed(String(decoding: body, as: UTF8.self)))
            connection.close(reason: "the peer closed the session")
        }
    }

    private func connectionClosed(_ reason: TCPCloseReason) {
        livenessTimer?.cancel()
        livenessTimer = nil
        end(reason == .peerClosed ? .peerClosed(nil) : .transport(reason))
    }

    /// Ends the session and closes the connection with `reason`.
    private func fail(_ reason: SessionCloseReason) {
        guard case .open = state else { return }
        end(reason)
        connection.close(reason: reason.description)
    }

    /// Records the end, reports it and wakes waiters; the first reason wins.
    private func end(_ reason: SessionCloseReason) {
        guard case .open = state else { return }
        state = .closed(reason)
        livenessTimer?.cancel()
        livenessTimer = nil
        events.inbox.finish(reason)
        let waiters = closeWaiters
        closeWaiters = []
        for waiter in waiters { waiter.resume(returning: reason) }
    }

    /// Checks liveness a few times per interval, so a ping or a silence report is at most
    /// a quarter interval late.
    private func armLivenessTimer() {
        guard case .open = state else { return }
        // The fields are settable after init, so clamp here too.
        let tick = max(min(config.keepaliveInterval, config.silenceInterval), SessionConfig.minimumLivenessInterval) / 4
        livenessTimer = LoopTimer.start(on: connection.eventLoop, after: tick, fire: { [self] in
            checkLiveness()
            armLivenessTimer()
        })
    }

    private func checkLiveness() {
        let now = ContinuousClock.now
        if now - lastSent >= config.keepaliveInterval {
            pingsSent += 1
            sendFrame(.ping, []) { _ in }
        }
        if !reportedSilence, now - lastReceived >= config.silenceInterval {
            reportedSilence = true
            events.inbox.push(.peerSilent(since: lastReceived))
        }
    }
}

extension SessionFrameKind {
    /// A close frame carries at most this many bytes of reason.
    static let maxCloseReasonBytes = 256
}

private struct SessionProtocolViolation: Error, CustomStringConvertible {
    let reason: String
    var description: String { reason }
}
