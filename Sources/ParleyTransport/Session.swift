import DequeModule
import ParleyCrypto
import ParleyWire
import ParleyLocks

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
    /// At most this many of those may come from one source address (an IPv4 address, or an
    /// IPv6 /64 network; the port never counts, see ``HandshakeSource``), so one caller
    /// cannot take every pending slot. Further connections from it are closed as soon as
    /// they are accepted (``SessionCloseReason/tooManyHandshakesFromAddress``).
    public var maxPendingHandshakesPerAddress: Int
    /// Token buckets that bound how often the listener does a handshake's key exchange and
    /// signature, per source address and in total. A hello that finds a bucket empty is
    /// closed before any of that work (``SessionCloseReason/handshakeRateLimited(_:)``).
    public var handshakeRate: HandshakeRateLimits
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
    public static let defaultMaxPendingHandshakesPerAddress = 8
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
        maxPendingHandshakesPerAddress: Int = defaultMaxPendingHandshakesPerAddress,
        handshakeRate: HandshakeRateLimits = .default,
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
        self.maxPendingHandshakesPerAddress = max(1, maxPendingHandshakesPerAddress)
        self.handshakeRate = handshakeRate
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
    /// The listener already had ``SessionConfig/maxPendingHandshakesPerAddress`` handshakes
    /// running from the same source address.
    case tooManyHandshakesFromAddress
    /// The listener's handshake token bucket for `scope` was empty when the hello arrived
    /// (``SessionConfig/handshakeRate``); closed before any key exchange or signature.
    case handshakeRateLimited(HandshakeRateScope)
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
        case .tooManyHandshakesFromAddress: "too many handshakes in progress from the same address"
        case .handshakeRateLimited(.address):
            "too many handshakes from the same address in a short time; try again in a moment"
        case .handshakeRateLimited(.total):
            "the listener is taking too many handshakes per second; try again in a moment"
        case let .tampered(frameIndex): "frame \(frameIndex) did not authenticate (tampered, replayed or reordered)"
        case let .protocolViolation(reason): "protocol violation: \(reason)"
        case let .transport(reason): "transport: \(reason)"
        }
    }
}

extension SessionCloseReason {
    /// Whether the listener refused the connection by one of its handshake bounds (busy or
    /// rate limited) rather than because of anything the peer sent.
    var isListenerRefusal: Bool {
        switch self {
        case .tooManyPendingHandshakes, .tooManyHandshakesFromAddress, .handshakeRateLimited: true
        default: false
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
/// Sent payloads go into an outbox shared with the loop thread. Once per loop iteration,
/// just before the loop waits for I/O again, the loop seals everything in the outbox in
/// order and writes the frames with one write. ``send(_:)`` returns as soon as its payload
/// is in the outbox while the send queue (outbox plus the connection's queued bytes) is
/// below the high-water mark of ``SessionConfig/sendWatermarks``, without a thread hop;
/// above it, it waits until the loop hands its frame to the connection.
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

    /// A payload waiting for the loop to seal and write it, with the sender that waits for
    /// that when it was queued above the high-water mark.
    private struct OutgoingFrame {
        let kind: SessionFrameKind
        let payload: [UInt8]
        let waiter: CheckedContinuation<Void, Error>?

        /// Bytes it takes on the wire: length prefix, kind byte, payload, tag.
        var frameBytes: Int { WireLimits.frameHeaderBytes + 1 + payload.count + AEAD.tagBytes }
    }

    private let outboxLock = PThreadLock()
    // Guarded by outboxLock:
    private var outbox = Deque<OutgoingFrame>()
    /// Wire bytes of the frames in the outbox (sealed or not yet).
    private var outboxBytes = 0
    /// A flush is registered with the loop (or on its way there); no further wake-up is needed.
    private var flushRequested = false
    /// Set by `end`: from then on nothing enters the outbox.
    private var sendClosedReason: SessionCloseReason?
    private var flushCount = 0

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
    /// Set by `deliverMessages(to:)`: messages go here instead of into `events`.
    private var messageHandler: (@Sendable ([UInt8]) -> Void)?
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
        connection.onQueueDrained = { [self] in requestFlushOnLoop() }
        connection.setHandlers(
            onRead: { [self] in received($0) },
            onClose: { [self] in connectionClosed($0) })
        armLivenessTimer()
        received([])
    }

    /// Queues one payload to go out in one encrypted frame, after every payload queued
    /// before it.
    ///
    /// When it returns, the payload is queued in order for the socket: not yet sealed or
    /// written. The loop thread seals and writes it with everything else queued in the
    /// same loop iteration; a session that ends first (either side closes, the connection
    /// fails, the loop shuts down) drops it, like bytes still in flight. Calls from one task
    /// arrive in the order they were made.
    ///
    /// While the session's send queue (frames waiting for the loop plus bytes the connection
    /// has not written yet) is below the high-water mark of ``SessionConfig/sendWatermarks``,
    /// it returns without suspending or waking any thread but the loop's, and wakes that
    /// only when the outbox was empty. At or above the mark it suspends until the loop has
    /// handed its frame to the connection, so a peer that stops reading stops the sender.
    /// - Throws: `SessionError.payloadTooLarge`, or `SessionError.closed` if the session
    ///   has ended (or ends while the call waits).
    public func send(_ payload: [UInt8]) async throws {
        switch queue(.data, payload, waiter: nil) {
        case .queued: return
        case let .refused(error): throw error
        case .full: break
        }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            switch queue(.data, payload, waiter: continuation) {
            case .queued: break  // the loop resumes it
            case let .refused(error): continuation.resume(throwing: error)
            case .full: preconditionFailure("a waiting send is always queued")
            }
        }
    }

    /// How many times the loop has taken frames from the outbox and written them. For tests
    /// that check that payloads queued together leave together.
    var outboxFlushes: Int {
        outboxLock.withLock { flushCount }
    }

    /// Writes what the send queue holds (up to the high-water mark), tells the peer why
    /// (best effort) and closes the connection. Payloads still queued beyond the mark are
    /// dropped and their waiting senders fail with `SessionError.closed`. Idempotent.
    public func close(reason: String = "closed by application") {
        connection.eventLoop.runOnLoop { [self] in
            guard case .open = state else { return }
            flush()
            let frame = try? sealer.sealFrame([SessionFrameKind.close.rawValue] + Array(reason.utf8.prefix(SessionFrameKind.maxCloseReasonBytes)))
            end(.localClose(reason))
            guard let frame, connection.bytesQueued < connection.watermarks.high else {
                return connection.close(reason: reason)
            }
            connection.send(frame) { [connection] _ in connection.close(reason: reason) }
        }
    }

    /// Delivers every message from now on by calling `handler` on the loop thread, in
    /// order, instead of through ``events`` (which then carries only `.peerSilent` and
    /// `.closed`). Messages already waiting in ``events`` go to `handler` first, in order.
    /// Returns once the handler is in place.
    ///
    /// This saves a thread hop per message for a consumer that only routes messages
    /// elsewhere (the node hands each to its channel's mailbox). `handler` runs on the loop
    /// thread: it must be quick and must never block or wait. Messages it takes are not
    /// counted by the receive high-water mark, so the handler must bound whatever it
    /// queues. Call it once; a later call replaces the handler.
    public func deliverMessages(to handler: @escaping @Sendable ([UInt8]) -> Void) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            connection.eventLoop.runOnLoop({ [self] in
                messageHandler = handler
                for message in events.inbox.takeMessages() { handler(message) }
                continuation.resume()
            }, orElse: { continuation.resume() })
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

    // MARK: - Outbox (any thread)

    private enum Admission {
        /// In the outbox; a waiter, if given, is resumed by the loop.
        case queued
        /// No waiter was given and the send queue is at or above the high-water mark.
        case full
        case refused(SessionError)
    }

    /// Puts one frame into the outbox and makes sure a flush is coming. Without a waiter
    /// only below the high-water mark; with one, always (the loop resumes it once the frame
    /// is handed to the connection). Frames the session sends itself (pings, pongs) come
    /// from the loop thread with no waiter and `force`.
    private func queue(
        _ kind: SessionFrameKind, _ payload: [UInt8], waiter: CheckedContinuation<Void, Error>?, force: Bool = false
    ) -> Admission {
        let frame = OutgoingFrame(kind: kind, payload: payload, waiter: waiter)
        return outboxLock.withLock {
            if let reason = sendClosedReason { return .refused(.closed(reason)) }
            guard payload.count < SecureFrames.maxPayloadBytes else {
                return .refused(.payloadTooLarge(length: payload.count, limit: SecureFrames.maxPayloadBytes - 1))
            }
            if waiter == nil && !force && outboxBytes + connection.bytesQueued >= connection.watermarks.high {
                return .full
            }
            if !flushRequested {
                let loop = connection.eventLoop
                if loop.isOnLoopThread {
                    loop.flushBeforeNextPoll(self)
                } else if !loop.enqueue({ [self] in loop.flushBeforeNextPoll(self) }) {
                    return .refused(.closed(.transport(.localClose(EventLoop.shutdownReason))))
                }
                flushRequested = true
            }
            outbox.append(frame)
            outboxBytes += frame.frameBytes
            return .queued
        }
    }

    // MARK: - Loop thread

    /// Registers a flush for the end of this loop iteration if frames wait and none is due.
    private func requestFlushOnLoop() {
        outboxLock.withLock {
            guard !flushRequested, !outbox.isEmpty else { return }
            flushRequested = true
            connection.eventLoop.flushBeforeNextPoll(self)
        }
    }

    /// Seals the frames at the head of the outbox in order and hands them to the
    /// connection as one write, while the connection's queue is below its high-water mark
    /// (always at least one frame when it is). What does not fit stays queued until the
    /// connection drains (`onQueueDrained`). So the connection's queue peaks below the
    /// high-water mark plus one frame, as when every frame was its own send.
    private func takeSendable() -> [OutgoingFrame] {
        outboxLock.withLock {
            flushRequested = false
            guard case .open = state else { return [] }
            let queued = connection.bytesQueued
            let high = connection.watermarks.high
            var taken = 0
            var count = 0
            for frame in outbox {
                guard queued + taken < high else { break }
                taken += frame.frameBytes
                count += 1
            }
            let frames = Array(outbox.prefix(count))
            if count == outbox.count {
                outbox.removeAll(keepingCapacity: count <= Self.retainedOutboxCapacity)
            } else {
                outbox.removeFirst(count)
            }
            if !frames.isEmpty { flushCount += 1 }
            return frames
        }
    }

    /// Frames to a flush keep at most this many slots of outbox capacity between bursts.
    private static let retainedOutboxCapacity = 1024

    private func writeSendable() {
        let frames = takeSendable()
        guard !frames.isEmpty else { return }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(frames.reduce(0) { $0 + $1.frameBytes })
        var waiters: [CheckedContinuation<Void, Error>] = []
        var sealedBytes = 0
        for frame in frames {
            do {
                bytes += try sealer.sealFrame([frame.kind.rawValue] + frame.payload)
            } catch {
                // Only an exhausted frame counter gets here (sizes are checked when queued).
                fail(.protocolViolation("cannot seal frame: \(error)"))
                let reason = closeReason(after: .connectionClosed(.localClose("frame counter exhausted")))
                for frame in frames { frame.waiter?.resume(throwing: SessionError.closed(reason)) }
                return
            }
            sealedBytes += frame.frameBytes
            if let waiter = frame.waiter { waiters.append(waiter) }
        }
        lastSent = .now
        let handedOver = waiters
        connection.send(bytes) { [self] result in
            let outcome = result.mapError { SessionError.closed(closeReason(after: $0)) as Error }
            for waiter in handedOver { waiter.resume(with: outcome) }
        }
        // Counted out of the outbox only now that the connection counts them (`end` may
        // have emptied the outbox meanwhile).
        outboxLock.withLock {
            if sendClosedReason == nil { outboxBytes -= sealedBytes }
        }
        // The socket took everything at once (nothing queued in libuv, so no write
        // completion will call `onQueueDrained`): write what is left in the next round.
        if connection.bytesQueued < connection.watermarks.high { requestFlushOnLoop() }
    }

    /// Queues a frame the session sends on its own (ping, pong) behind everything queued.
    private func sendControlFrame(_ kind: SessionFrameKind) {
        _ = queue(kind, [], waiter: nil, force: true)
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
            if let messageHandler { messageHandler(body) } else { events.inbox.push(.message(body)) }
        case .ping:
            pingsReceived += 1
            sendControlFrame(.pong)
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
        messageHandler = nil  // it may hold its owner, which may hold us
        let dropped: [OutgoingFrame] = outboxLock.withLock {
            sendClosedReason = reason
            defer {
                outbox = []
                outboxBytes = 0
            }
            return Array(outbox)
        }
        for frame in dropped { frame.waiter?.resume(throwing: SessionError.closed(reason)) }
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
            sendControlFrame(.ping)
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

extension Session: LoopFlushable {
    /// The loop's end-of-iteration flush: writes what the outbox holds, up to the high-water mark.
    func flush() {
        writeSendable()
    }
}
