import ParleyCrypto
import ParleyWire
import Synchronization

/// Makes sessions under one identity on one loop: dials peers, and listens for them.
///
/// ```swift
/// let endpoint = SessionEndpoint(identity: me, loop: loop)
/// let listener = try await endpoint.listen(on: address, acceptPeer: { known.contains($0) }) { session in … }
/// let session = try await endpoint.connect(to: theirAddress, expecting: theirKey)
/// ```
///
/// As a listener it bounds the work strangers can make it do before they have proven who they
/// are (``SessionConfig``): handshakes in progress in total and per source address, and how
/// often it does a handshake's key exchange and signature, per source address and in total.
/// The bounds belong to the endpoint, so every listener it opens shares them.
public final class SessionEndpoint: Sendable {
    public let identity: SigningKey
    public let loop: EventLoop
    public let config: SessionConfig
    private let pending = Atomic<Int>(0)
    private let failures = Atomic<Int>(0)
    private let refusals = Atomic<Int>(0)
    private let handshakeMetrics = HandshakeMetrics()
    /// Loop-confined: used only on `loop`'s thread.
    private let admission: HandshakeAdmission

    public convenience init(identity: SigningKey, loop: EventLoop, config: SessionConfig = SessionConfig()) {
        self.init(identity: identity, loop: loop, config: config, now: { ContinuousClock.now })
    }

    /// `now` is the monotonic clock the handshake rate buckets read; tests pass one they move.
    init(
        identity: SigningKey, loop: EventLoop, config: SessionConfig,
        now: @escaping @Sendable () -> ContinuousClock.Instant
    ) {
        self.identity = identity
        self.loop = loop
        self.config = config
        admission = HandshakeAdmission(config: config, now: now)
    }

    /// Accepted connections whose handshake is still running.
    public var pendingHandshakeCount: Int {
        pending.load(ordering: .relaxed)
    }

    /// Accepted connections that never became a session (every reason, refusals included).
    public var failedHandshakeCount: Int {
        failures.load(ordering: .relaxed)
    }

    /// Accepted connections the listener refused by its own bounds rather than for anything the
    /// peer sent: ``SessionCloseReason/tooManyPendingHandshakes``,
    /// ``SessionCloseReason/tooManyHandshakesFromAddress`` and
    /// ``SessionCloseReason/handshakeRateLimited(_:)``. Included in ``failedHandshakeCount``.
    public var refusedHandshakeCount: Int {
        refusals.load(ordering: .relaxed)
    }

    /// Dials `address` and runs the dialer's handshake, expecting `peer` to answer.
    /// - Throws: `TCPError` when no TCP connection is made;
    ///   `SessionError.notEstablished(reason)` when the handshake fails or times out
    ///   (a listener that names another key is `.handshakeFailed(.unexpectedPeer)`).
    public func connect(to address: SocketAddress, expecting peer: PublicKey) async throws -> Session {
        let connection = try await loop.dial(
            to: address, timeout: config.connectTimeout, retry: config.dialRetry, watermarks: config.sendWatermarks)
        let initiator = HandshakeInitiator(identity: identity, expectedPeer: peer)
        let config = self.config
        let metrics = handshakeMetrics
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Session, Error>) in
            loop.runOnLoop({
                SessionHandshake(connection: connection, role: .initiator(initiator), config: config) { result in
                    switch result {
                    case let .success(session): continuation.resume(returning: session)
                    case let .failure(reason):
                        metrics.failed(.dialer, reason)
                        continuation.resume(throwing: SessionError.notEstablished(reason))
                    }
                }.start()
            }, orElse: { continuation.resume(throwing: TCPError.loopShutDown) })
        }
    }

    /// Listens on `address`; each accepted connection runs the listener's handshake.
    ///
    /// Only connections that complete it within `handshakeTimeout` with a key
    /// `acceptPeer` approves reach `onSession` (on the loop thread). Every other one is
    /// closed and reported to `onHandshakeFailure` (on the loop thread) with its reason,
    /// refusals by the endpoint's handshake bounds included (``refusedHandshakeCount``).
    public func listen(
        on address: SocketAddress,
        acceptPeer: @escaping @Sendable (PublicKey) -> Bool,
        onHandshakeFailure: @escaping @Sendable (SocketAddress, SessionCloseReason) -> Void = { _, _ in },
        onSession: @escaping @Sendable (Session) -> Void
    ) async throws -> TCPListener {
        try await loop.listen(on: address, watermarks: config.sendWatermarks) { [self] connection in
            accept(connection, acceptPeer: acceptPeer, onFailure: onHandshakeFailure, onSession: onSession)
        }
    }

    /// Loop thread. Refuses the connection at once when the endpoint already has
    /// `maxPendingHandshakes` handshakes running, or `maxPendingHandshakesPerAddress` from the
    /// same source; otherwise runs the responder handshake, whose hello must find a token in
    /// the rate buckets before the key exchange and signature.
    private func accept(
        _ connection: TCPConnection, acceptPeer: @escaping @Sendable (PublicKey) -> Bool,
        onFailure: @escaping @Sendable (SocketAddress, SessionCloseReason) -> Void,
        onSession: @escaping @Sendable (Session) -> Void
    ) {
        let remote = connection.remoteAddress
        let source = HandshakeSource(remote)
        guard pending.load(ordering: .relaxed) < config.maxPendingHandshakes else {
            return refuse(connection, .tooManyPendingHandshakes, onFailure: onFailure)
        }
        if let refusal = admission.start(from: source) {
            return refuse(connection, refusal, onFailure: onFailure)
        }
        pending.wrappingAdd(1, ordering: .relaxed)
        let responder = HandshakeResponder(identity: identity, acceptPeer: acceptPeer)
        SessionHandshake(
            connection: connection, role: .responder(responder), config: config,
            beforeKeyExchange: { [admission] in admission.admitKeyExchange(from: source) }
        ) { [self] result in
            pending.wrappingSubtract(1, ordering: .relaxed)
            admission.finish(from: source)
            switch result {
            case let .success(session):
                onSession(session)
            case let .failure(reason):
                failures.wrappingAdd(1, ordering: .relaxed)
                if reason.isListenerRefusal { refusals.wrappingAdd(1, ordering: .relaxed) }
                handshakeMetrics.failed(.listener, reason)
                onFailure(remote, reason)
            }
        }.start()
    }

    /// Loop thread: closes a connection that may not start its handshake.
    private func refuse(
        _ connection: TCPConnection, _ reason: SessionCloseReason,
        onFailure: @Sendable (SocketAddress, SessionCloseReason) -> Void
    ) {
        connection.close(reason: reason.description)
        failures.wrappingAdd(1, ordering: .relaxed)
        refusals.wrappingAdd(1, ordering: .relaxed)
        handshakeMetrics.failed(.listener, reason)
        onFailure(connection.remoteAddress, reason)
    }
}

/// Runs one side of the handshake over a connection, then hands the connection (and any
/// bytes that followed the last handshake message) to a new ``Session``. Loop-confined.
final class SessionHandshake: @unchecked Sendable {
    enum HandshakeOutcome {
        case success(Session)
        case failure(SessionCloseReason)
    }

    enum Role {
        case initiator(HandshakeInitiator)
        case responder(HandshakeResponder)
    }

    private let connection: TCPConnection
    private let config: SessionConfig
    private let beforeKeyExchange: () -> SessionCloseReason?
    private var role: Role
    private var decoder = Handshake.frameDecoder()
    private var framesReceived = 0
    private var timer: LoopTimer?
    private var completion: ((HandshakeOutcome) -> Void)?

    /// `beforeKeyExchange` runs on the responder once its hello has passed the checks that
    /// cost nothing, right before the key exchange and signature; a reason it returns ends
    /// the handshake with that reason instead.
    init(
        connection: TCPConnection, role: Role, config: SessionConfig,
        beforeKeyExchange: @escaping () -> SessionCloseReason? = { nil },
        completion: @escaping (HandshakeOutcome) -> Void
    ) {
        self.connection = connection
        self.role = role
        self.config = config
        self.beforeKeyExchange = beforeKeyExchange
        self.completion = completion
    }

    func start() {
        timer = LoopTimer.start(on: connection.eventLoop, after: config.handshakeTimeout, fire: { [self] in
            fail(.handshakeTimeout)
        })
        connection.setHandlers(onRead: { [self] in received($0) }, onClose: { [self] in closed($0) })
        if case let .initiator(initiator) = role { write(initiator.start()) }
    }

    private func received(_ bytes: [UInt8]) {
        decoder.append(bytes)
        do {
            while completion != nil, let frame = try decoder.nextFrame() {
                try handle(frame)
            }
        } catch {
            fail(.handshakeFailed(Handshake.handshakeError(error)))
        }
    }

    private func handle(_ frame: [UInt8]) throws(HandshakeError) {
        framesReceived += 1
        switch role {
        case var .initiator(initiator):
            let (auth, keys) = try initiator.receive(frame)
            role = .initiator(initiator)
            write(auth)
            succeed(keys)
        case var .responder(responder):
            if framesReceived == 1 {
                try responder.checkHello(frame)
                if let refusal = beforeKeyExchange() { return fail(refusal) }
                let reply = try responder.receiveHello(frame)
                role = .responder(responder)
                write(reply)
            } else {
                let (_, keys) = try responder.receiveAuth(frame)
                role = .responder(responder)
                succeed(keys)
            }
        }
    }

    private func write(_ payload: [UInt8]) {
        guard let frame = try? Handshake.frame(payload) else { return fail(.handshakeFailed(.oversize)) }
        connection.send(frame) { _ in }
    }

    private func closed(_ reason: TCPCloseReason) {
        if reason == .peerClosed, case let .initiator(initiator) = role {
            finish(.failure(.handshakeFailed(initiator.connectionClosedBeforeReply())))
        } else {
            finish(.failure(.transport(reason)))
        }
    }

    private func fail(_ reason: SessionCloseReason) {
        guard completion != nil else { return }
        connection.close(reason: reason.description)
        finish(.failure(reason))
    }

    private func succeed(_ keys: SessionKeys) {
        let session = Session(connection: connection, keys: keys, decoder: decoder, config: config)
        // The session replaces this handshake's handlers before reading any further.
        session.start()
        finish(.success(session))
    }

    private func finish(_ result: HandshakeOutcome) {
        guard let completion else { return }
        self.completion = nil
        timer?.cancel()
        timer = nil
        completion(result)
    }
}
