import ParleyChannel
import ParleyCrypto
import ParleySettlement
import ParleyTransport
import ParleyWire
import ParleyLocks

/// A `SettlementAdapter` that talks to a `parley devchain` daemon over one encrypted session.
///
/// ```swift
/// let chain = try await DevchainClient.connect(to: "devchain://pk1…@127.0.0.1:7545", identity: me)
/// try await chain.mint(100, to: me.publicKey)   // the operator, or a daemon with --allow-faucet
/// try await chain.advance(by: 60)                // --manual-time; the operator, or --allow-time-travel
/// await chain.close()
/// ```
///
/// The session proves `identity` to the daemon, and that key is the caller of every
/// transaction this client submits. The daemon must prove `daemonKey` (the key pinned in
/// `devchain://pk1…@HOST:PORT`, else `Devchain.wellKnownKey`): one that proves another key
/// is sent nothing, and requests fail at once with `DevchainError.wrongDaemonKey`
/// (`SettlementError.transport` carrying its text, from the `SettlementAdapter` methods).
/// Requests are multiplexed over the session by id.
/// When the session drops (the daemon restarted, the network failed) the client redials
/// with backoff by itself; a request made while it is disconnected waits for the next
/// session up to `connectTimeout`.
///
/// Once sent, every request waits at most `requestTimeout` for its answer: against a daemon
/// that is stopped, wedged or overloaded it fails with `SettlementError.transport`
/// (`DevchainError.transport` from the devchain-only calls) saying "no answer … within …",
/// and an answer that arrives later is ignored. The session stays up, so requests work
/// again as soon as the daemon answers again.
///
/// **A transaction or clock move in flight when the connection drops, or that got no answer
/// in time, fails with `.transport`, and the caller cannot know whether the daemon applied
/// it** (the daemon may have made it durable and then crashed, or answered too late).
/// Re-read chain state (`channel(_:)`, `balance(of:)`, the event stream) before retrying a
/// transaction.
///
/// Event streams (`events(after:)`) survive reconnects: the client remembers the last
/// sequence each stream delivered and resubscribes after it, so a consumer sees every
/// event exactly once across a daemon restart. Call `close()` when done.
public final class DevchainClient: SettlementAdapter, DevFaucet, Sendable {
    /// How long a request waits for a session when the client is disconnected.
    public static let defaultConnectTimeout: Duration = .seconds(10)
    /// How long a request sent on a session waits for its answer.
    public static let defaultRequestTimeout: Duration = .seconds(10)
    /// Redial pacing after the session drops.
    public static let defaultRetry = RetryPolicy(initialDelay: .milliseconds(50), maxDelay: .seconds(1))

    public let identity: PublicKey
    /// The daemon's address.
    public let address: SocketAddress
    /// The key the daemon must prove in the handshake.
    public let daemonKey: PublicKey
    public let connectTimeout: Duration
    /// How long a request sent on a session waits for its answer; see the type's comment.
    public let requestTimeout: Duration
    let loop: EventLoop
    let ownsLoop: Bool
    /// Dials the daemon and redials it whenever the session ends, until `close()`.
    let dialer = Locked<PeerLink?>(nil)
    let state = Locked(State())
    /// Each request's latency and failures (Docs/Metrics.md).
    let metrics = ChainCallMetrics()

    struct Stream {
        var continuation: AsyncThrowingStream<ChainEvent, any Error>.Continuation
        /// The newest sequence delivered on this stream: a resubscription starts after it.
        var lastDelivered: UInt64
        /// The daemon's subscription id (the subscribe request's id) while subscribed.
        var subscription: UInt64?
    }

    /// A request waiting for its answer.
    struct Pending {
        /// The session it was sent on.
        var session: ObjectIdentifier
        var continuation: CheckedContinuation<Outcome, Never>
        /// When it fails unanswered: sent + `requestTimeout`.
        var deadline: ContinuousClock.Instant
        /// Whether it only reads (then a missing answer changed nothing).
        var isRead: Bool

        func resume(returning outcome: Outcome) {
            continuation.resume(returning: outcome)
        }
    }

    typealias SessionWaiter = CheckedContinuation<Result<Session, DevchainError>, Never>

    struct State {
        var session: Session?
        var nextID: UInt64 = 1
        /// Requests waiting for an answer, by request id.
        var pending: [UInt64: Pending] = [:]
        /// Fails pending requests past their deadline; runs only while there are any. One task
        /// per client, not one per request: a node funding many channels at once has thousands
        /// of requests in flight, and a sleeping task each would be memory it keeps.
        var sweeper: Task<Void, Never>?
        var sessionWaiters: [UInt64: SessionWaiter] = [:]
        var streams: [UInt64: Stream] = [:]
        /// Daemon subscription id → stream key, and the session it was made on.
        var subscriptions: [UInt64: (key: UInt64, session: ObjectIdentifier)] = [:]
        var isClosed = false
        /// The daemon's settlement domain, once asked (it never changes for a pinned daemon key).
        var domain: SettlementDomain?
        /// The key the address proved on the latest dial when it was not `daemonKey`; cleared by
        /// the next session. While set, a request finding no session fails at once.
        var wrongKey: PublicKey?
        /// Why the latest dial failed, for the message of a request that found no session.
        var lastDialFailure: String?

        mutating func takeID() -> UInt64 {
            defer { nextID += 1 }
            return nextID
        }
    }

    /// A client that starts dialing `address` at once, on `loop`; it never fails here.
    /// `daemonKey` is the key the daemon must prove (see the type's comment).
    public convenience init(
        address: SocketAddress, identity: SigningKey, loop: EventLoop, expecting daemonKey: PublicKey = Devchain.wellKnownKey,
        connectTimeout: Duration = DevchainClient.defaultConnectTimeout,
        requestTimeout: Duration = DevchainClient.defaultRequestTimeout, retry: RetryPolicy = DevchainClient.defaultRetry
    ) {
        self.init(
            address: address, identity: identity, loop: loop, ownsLoop: false, daemonKey: daemonKey,
            connectTimeout: connectTimeout, requestTimeout: requestTimeout, retry: retry)
    }

    private init(
        address: SocketAddress, identity: SigningKey, loop: EventLoop, ownsLoop: Bool, daemonKey: PublicKey,
        connectTimeout: Duration, requestTimeout: Duration, retry: RetryPolicy
    ) {
        self.identity = identity.publicKey
        self.address = address
        self.daemonKey = daemonKey
        self.loop = loop
        self.ownsLoop = ownsLoop
        self.connectTimeout = connectTimeout
        self.requestTimeout = requestTimeout
        let endpoint = SessionEndpoint(identity: identity, loop: loop)
        let link = PeerLink(endpoint: endpoint, peer: daemonKey, address: address, retry: retry) { [weak self] event in
            switch event {
            case let .connected(session):
                guard let self, self.connected(session) else { return session.close(reason: "the client was closed") }
                Task { await self.read(session) }
            case let .attemptFailed(error, _):
                self?.dialFailed(error)
            case .disconnected:
                break  // `read` sees the session end and fails what was in flight on it
            }
        }
        dialer.withLock { $0 = link }
        link.start()
    }

    /// Connects to `address` (`devchain://HOST:PORT`, `devchain://pk1…@HOST:PORT` or `HOST:PORT`)
    /// and waits for the first session. The daemon must prove the key before @, or
    /// `Devchain.wellKnownKey` when there is none.
    /// With `loop == nil` the client runs its own event loop, shut down by `close()`.
    /// - Throws: `.invalidAddress` for a malformed address; `.wrongDaemonKey` as soon as the
    ///   daemon proves another key; `.transport` when no daemon answers within `connectTimeout`.
    public static func connect(
        to address: String, identity: SigningKey, loop: EventLoop? = nil,
        connectTimeout: Duration = DevchainClient.defaultConnectTimeout,
        requestTimeout: Duration = DevchainClient.defaultRequestTimeout
    ) async throws(DevchainError) -> DevchainClient {
        let (socket, key) = try Devchain.endpoint(address)
        return try await connect(
            to: socket, identity: identity, loop: loop, expecting: key, connectTimeout: connectTimeout,
            requestTimeout: requestTimeout)
    }

    /// See `connect(to:identity:loop:connectTimeout:requestTimeout:)`; `daemonKey` is the key
    /// the daemon must prove.
    public static func connect(
        to address: SocketAddress, identity: SigningKey, loop: EventLoop? = nil,
        expecting daemonKey: PublicKey = Devchain.wellKnownKey,
        connectTimeout: Duration = DevchainClient.defaultConnectTimeout,
        requestTimeout: Duration = DevchainClient.defaultRequestTimeout
    ) async throws(DevchainError) -> DevchainClient {
        let runLoop: EventLoop
        do {
            runLoop = try loop ?? EventLoop(name: "devchain-client")
        } catch {
            throw .transport("cannot start an event loop: \(error)")
        }
        let client = DevchainClient(
            address: address, identity: identity, loop: runLoop, ownsLoop: loop == nil, daemonKey: daemonKey,
            connectTimeout: connectTimeout, requestTimeout: requestTimeout, retry: defaultRetry)
        if case let .failure(error) = await client.session() {
            await client.close()
            throw error
        }
        return client
    }

    /// Stops redialing, fails requests in flight, ends every event stream, and closes the session.
    public func close() async {
        let (pending, waiters, streams, session) = state.withLock { state in
            state.isClosed = true
            state.sweeper?.cancel()
            defer {
                state.sweeper = nil
                state.pending = [:]
                state.sessionWaiters = [:]
                state.streams = [:]
                state.subscriptions = [:]
                state.session = nil
            }
            return (
                Array(state.pending.values), Array(state.sessionWaiters.values), Array(state.streams.values),
                state.session
            )
        }
        for request in pending { request.resume(returning: .transport("the client was closed")) }
        for waiter in waiters { waiter.resume(returning: .failure(.transport("the client was closed"))) }
        for stream in streams { stream.continuation.finish() }
        let link = dialer.withLock { value -> PeerLink? in
            defer { value = nil }
            return value
        }
        await link?.stop()
        session?.close(reason: "the client was closed")
        if ownsLoop { loop.shutdown() }
    }

    // MARK: - SettlementAdapter

    public func now() async throws(SettlementError) -> ChainTime {
        try Self.decode(try await request(.now).settlement(), SettlementError.self) { bytes throws(WireError) in
            try ChainTime(wireBytes: bytes)
        }
    }

    @discardableResult
    public func deposit(
        params: ChannelParams, opening: Allocation, participant: ParticipantIndex, amount: Amount
    ) async throws(SettlementError) -> [ChainEvent] {
        try await submit(.deposit(params: params, opening: opening, participant: participant, amount: amount))
    }

    @discardableResult
    public func reclaim(_ channel: ChannelID) async throws(SettlementError) -> [ChainEvent] {
        try await submit(.reclaim(channel: channel))
    }

    @discardableResult
    public func register(_ state: SignedState) async throws(SettlementError) -> [ChainEvent] {
        try await submit(.register(state))
    }

    @discardableResult
    public func progress(
        _ channel: ChannelID, to state: ChannelState, moverSignature: StateSignature
    ) async throws(SettlementError) -> [ChainEvent] {
        try await submit(.progress(channel: channel, state: state, moverSignature: moverSignature))
    }

    @discardableResult
    public func conclude(_ channel: ChannelID) async throws(SettlementError) -> [ChainEvent] {
        try await submit(.conclude(channel: channel))
    }

    @discardableResult
    public func withdraw(_ channel: ChannelID, participant: ParticipantIndex) async throws(SettlementError) -> [ChainEvent] {
        try await submit(.withdraw(channel: channel, participant: participant))
    }

    /// Mints `amount` to `account`. Only the daemon's operator (a client whose `identity` is the
    /// daemon's key) may, unless the daemon runs with `--allow-faucet` or on the well-known key;
    /// anyone else gets `SettlementError.transport` naming `DevchainRefusal.faucetNotAllowed`.
    @discardableResult
    public func mint(_ amount: Amount, to account: PublicKey) async throws(SettlementError) -> [ChainEvent] {
        try await submit(.mint(account: account, amount: amount))
    }

    /// The daemon's settlement domain (from `info`, asked once and then remembered: the
    /// daemon's pinned key names one ledger, whose domain never changes).
    public func domain() async throws(SettlementError) -> SettlementDomain {
        if let known = state.withLock({ $0.domain }) { return known }
        let domain: SettlementDomain
        do { domain = try await info().domain } catch {
            throw .transport("cannot read the devchain's settlement domain: \(error)")
        }
        state.withLock { $0.domain = domain }
        return domain
    }

    public func channel(_ id: ChannelID) async throws(SettlementError) -> ChannelOnChain? {
        try Self.decode(try await request(.channel(id)).settlement(), SettlementError.self, DevchainPayload.decodeChannel)
    }

    public func balance(of account: PublicKey) async throws(SettlementError) -> Amount {
        try Self.decode(try await request(.balance(account)).settlement(), SettlementError.self, DevchainPayload.decodeBalance)
    }

    /// Applies `tx` as `identity`; see the type's comment for what a dropped connection or a
    /// missing answer means.
    @discardableResult
    public func submit(_ tx: ChainTransaction) async throws(SettlementError) -> [ChainEvent] {
        try Self.decode(try await request(.submit(tx)).settlement(), SettlementError.self, DevchainPayload.decodeEvents)
    }

    // MARK: - Devchain-only

    /// Moves the daemon's clock `seconds` later and returns the new chain time.
    /// Only a daemon started with `--manual-time` accepts it (`.refused(.clockNotManual)` otherwise),
    /// and only from its operator unless it runs with `--allow-time-travel` or on the well-known
    /// key (`.refused(.timeTravelNotAllowed)` otherwise).
    @discardableResult
    public func advance(by seconds: UInt64) async throws(DevchainError) -> ChainTime {
        try await time(.advance(seconds: seconds))
    }

    /// The daemon's settings and position: challenge default, time mode, newest sequence, time, domain.
    public func info() async throws(DevchainError) -> DevchainInfo {
        try Self.decode(try await request(.info).devchain(), DevchainError.self) { bytes throws(WireError) in
            try DevchainInfo(wireBytes: bytes)
        }
    }

    public func events(after sequence: UInt64) -> AsyncThrowingStream<ChainEvent, any Error> {
        let (stream, continuation) = AsyncThrowingStream<ChainEvent, any Error>.makeStream()
        let (key, subscribe) = state.withLock { state -> (UInt64, (Session, UInt64)?) in
            let key = state.takeID()
            guard !state.isClosed else {
                continuation.finish()
                return (key, nil)
            }
            state.streams[key] = Stream(continuation: continuation, lastDelivered: sequence)
            return (key, state.session.map { ($0, Self.subscribe(key, on: $0, in: &state)) })
        }
        continuation.onTermination = { [weak self] _ in self?.streamEnded(key) }
        if let (session, id) = subscribe { send(subscribeRequest(id, key: key), on: session) }
        return stream
    }

}

/// Errors the client can report an unreadable answer as.
protocol TransportFailure: Error {
    static func transport(_ why: String) -> Self
}

extension SettlementError: TransportFailure {}
extension DevchainError: TransportFailure {}

extension DevchainRequest.Operation {
    /// Whether the operation only reads chain state (so sending it twice is harmless).
    var isRead: Bool {
        switch self {
        case .now, .channel, .balance, .info: return true
        case .submit, .advance, .subscribe, .unsubscribe: return false
        }
    }
}
