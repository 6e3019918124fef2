import ParleyCrypto
import ParleyWire
import Testing

@testable import ParleyTransport

/// Short keepalive intervals so the suite runs quickly, and timeouts a loaded machine
/// cannot trip: beside another test run the cooperative pool stalled for 17 s and every
/// `SessionSendTests` handshake ran past a 2 s limit. Tests of the timeouts set their own.
let testConfig = SessionConfig(
    connectTimeout: .seconds(20), handshakeTimeout: .seconds(20),
    keepaliveInterval: .seconds(5), silenceInterval: .seconds(20))

extension SessionConfig {
    /// This configuration without the listener's per-address and rate bounds on handshakes
    /// (the total pending limit stays): for tests whose many dialers all call from 127.0.0.1
    /// on purpose. `HandshakeBoundsTests` covers the bounds themselves.
    func liftingPerAddressHandshakeBounds() -> SessionConfig {
        var config = self
        config.maxPendingHandshakesPerAddress = config.maxPendingHandshakes
        config.handshakeRate = .unlimited
        return config
    }
}

/// A listening endpoint and what it produced.
struct ListeningPeer {
    let identity: SigningKey
    let endpoint: SessionEndpoint
    let listener: TCPListener
    let sessions: Recorder<Session>
    let failures: Recorder<SessionCloseReason>

    var address: SocketAddress { listener.localAddress }

    /// `now` is the clock the endpoint's handshake rate buckets read (``ManualClock`` to move it by hand).
    static func start(
        on loop: EventLoop, config: SessionConfig = testConfig,
        now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now },
        accept: @escaping @Sendable (PublicKey) -> Bool = { _ in true }
    ) async throws -> ListeningPeer {
        let identity = SigningKey()
        let endpoint = SessionEndpoint(identity: identity, loop: loop, config: config, now: now)
        let sessions = Recorder<Session>()
        let failures = Recorder<SessionCloseReason>()
        let listener = try await endpoint.listen(
            on: .loopbackIPv4(port: 0), acceptPeer: accept,
            onHandshakeFailure: { _, reason in failures.record(reason) },
            onSession: { sessions.record($0) })
        return ListeningPeer(identity: identity, endpoint: endpoint, listener: listener, sessions: sessions, failures: failures)
    }

    var key: PublicKey { identity.publicKey }

    /// A listener with `config`, a session dialled to it from a fresh identity, and the
    /// listener's end of that session.
    static func connectedPair(
        on loop: EventLoop, config: SessionConfig = testConfig
    ) async throws -> (server: ListeningPeer, session: Session, accepted: Session) {
        let server = try await start(on: loop, config: config)
        let session = try await SessionEndpoint(identity: SigningKey(), loop: loop, config: config)
            .connect(to: server.address, expecting: server.key)
        return (server, session, try await server.session())
    }

    /// The `index`th session the listener produced, waiting for it.
    func session(_ index: Int = 0) async throws -> Session {
        let sessions = self.sessions
        #expect(await eventually(within: .seconds(10)) { sessions.all.count > index })
        let all = sessions.all
        guard all.count > index else { throw TestDeadlineExceeded(deadline: .seconds(10)) }
        return all[index]
    }
}

/// Collects `count` messages from `session`, failing on any other event first.
func receiveMessages(_ count: Int, from session: Session) async throws -> [[UInt8]] {
    try await withDeadline(.seconds(20)) {
        var received: [[UInt8]] = []
        for await event in session.events {
            guard case let .message(bytes) = event else {
                Issue.record("unexpected event \(event)")
                break
            }
            received.append(bytes)
            if received.count == count { break }
        }
        return received
    }
}

/// A hand-driven dialer: completes a real handshake over a raw connection and then
/// sends whatever frames a test wants.
struct RawDialer {
    let connection: TCPConnection
    let inbox: ByteInbox
    let keys: SessionKeys

    static func handshake(on loop: EventLoop, to address: SocketAddress, expecting peer: PublicKey) async throws -> RawDialer {
        let connection = try await loop.dial(to: address, timeout: testConfig.connectTimeout)
        let inbox = ByteInbox()
        inbox.attach(to: connection)
        var initiator = HandshakeInitiator(identity: SigningKey(), expectedPeer: peer)
        try await connection.send(Handshake.frame(initiator.start()))
        let header = try await inbox.read(exactly: 4)
        let length = header.reduce(0) { $0 << 8 | Int($1) }
        let reply = try await inbox.read(exactly: length)
        let (auth, keys) = try initiator.receive(reply)
        try await connection.send(Handshake.frame(auth))
        return RawDialer(connection: connection, inbox: inbox, keys: keys)
    }
}

