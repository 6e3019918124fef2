import ParleyChannel
import ParleyCrypto
import ParleySettlement
import ParleyTransport
import ParleyWire
import ParleyLocks

/// A `SettlementAdapter` that talks to a `parley devchain` daemon over one encrypted session.
///
/// ```swift
/// let chain = try await DevchainClient.connect(to: "devchain://127.0.0.1:7545", identity: me)
/// try await chain.mint(100, to: me.publicKey)
/// try await chain.advance(by: 60)          // --manual-time daemons only
/// await chain.close()
/// ```
///
/// The session proves `identity` to the daemon, and that key is the caller of every
/// transaction this client submits. Requests are multiplexed over the session by id.
/// When the session drops (the daemon restarted, the network failed) the client redials
/// with backoff by itself; a request made while it is disconnected waits for the next
/// session up to `connectTimeout`.
///
/// **A request in flight when the connection drops fails with `SettlementError.transport`,
/// and the caller cannot know whether the daemon applied it** (the daemon may have made it
/// durable and crashed before answering). Re-read chain state (`channel(_:)`,
/// `balance(of:)`, the event stream) before retrying a transaction.
///
/// Event streams (`events(after:)`) survive reconnects: the client remembers the last
/// sequence each stream delivered and resubscribes after it, so a consumer sees every
/// event exactly once across a daemon restart. Call `close()` when done.
public final class DevchainClient: SettlementAdapter, DevFaucet, Sendable {
    /// How long a request waits for a session when the client is disconnected.
    public static let defaultConnectTimeout: Duration = .seconds(10)
    /// Redial pacing after the session drops.
    public static let defaultRetry = RetryPolicy(initialDelay: .milliseconds(50), maxDelay: .seconds(1))

    public let identity: PublicKey
    /// The daemon's address.
    public let address: SocketAddress
    public let connectTimeout: Duration
    private let loop: EventLoop
    private let ownsLoop: Bool
    private let link: Locked<PeerLink?>
    private let state = Locked(State())

    private struct Stream {
        var continuation: AsyncThrowingStream<ChainEvent, any Error>.Continuation
        /// The newest sequence delivered on this stream: a resubscription starts after it.
        var lastDelivered: UInt64
        /// The daemon's subscription id (the subscribe request's id) while subscribed.
        var subscription: UInt64?
    }

    private struct State {
        var session: Session?
        var nextID: UInt64 = 1
        /// Requests waiting for an answer, with the session they were sent on.
        var pending: [UInt64: (session: ObjectIdentifier, continuation: CheckedContinuation<Outcome, Never>)] = [:]
        var sessionWaiters: [UInt64: CheckedContinuation<Session?, Never>] = [:]
        var streams: [UInt64: Stream] = [:]
        /// Daemon subscription id → stream key, and the session it was made on.
        var subscriptions: [UInt64: (key: UInt64, session: ObjectIdentifier)] = [:]
        var isClosed = false
        /// The daemon's settlement domain, once asked (it never changes for a pinned daemon key).
        var domain: SettlementDomain?

        mutating func takeID() -> UInt64 {
            defer { nextID += 1 }
            return nextID
        }
    }

    /// A client that starts dialing `address` at once, on `loop`; it never fails here.
    public convenience init(
        address: SocketAddress, identity: SigningKey, loop: EventLoop, expecting daemonKey: PublicKey = Devchain.wellKnownKey,
        connectTimeout: Duration = DevchainClient.defaultConnectTimeout, retry: RetryPolicy = DevchainClient.defaultRetry
    ) {
        self.init(
            address: address, identity: identity, loop: loop, ownsLoop: false, daemonKey: daemonKey,
            connectTimeout: connectTimeout, retry: retry)
    }

    private init(
        address: SocketAddress, identity: SigningKey, loop: EventLoop, ownsLoop: Bool, daemonKey: PublicKey,
        connectTimeout: Duration, retry: RetryPolicy
    ) {
        self.identity = identity.publicKey
        self.address = address
        self.loop = loop
        self.ownsLoop = ownsLoop
        self.connectTimeout = connectTimeout
        link = Locked(nil)
        let endpoint = SessionEndpoint(identity: identity, loop: loop)
        let peerLink = PeerLink(endpoint: endpoint, peer: daemonKey, address: address, retry: retry) { [weak self] event in
            if case let .connected(session) = event { self?.connected(session) }
        }
        link.withLock { $0 = peerLink }
        peerLink.start()
    }

    /// Connects to `address` (`devchain://HOST:PORT`, `devchain://pk1…@HOST:PORT` or `HOST:PORT`)
    /// and waits for the first session.
    /// With `loop == nil` the client runs its own event loop, shut down by `close()`.
    /// - Throws: `.transport` when the daemon cannot be reached within `connectTimeout`.
    public static func connect(
        to address: String, identity: SigningKey, loop: EventLoop? = nil,
        connectTimeout: Duration = DevchainClient.defaultConnectTimeout
    ) async throws(DevchainError) -> DevchainClient {
        let (socket, key) = try Devchain.endpoint(address)
        return try await connect(
            to: socket, identity: identity, loop: loop, expecting: key, connectTimeout: connectTimeout)
    }

    /// See `connect(to:identity:loop:connectTimeout:)`; `daemonKey` is the key the daemon must prove.
    public static func connect(
        to address: SocketAddress, identity: SigningKey, loop: EventLoop? = nil,
        expecting daemonKey: PublicKey = Devchain.wellKnownKey,
        connectTimeout: Duration = DevchainClient.defaultConnectTimeout
    ) async throws(DevchainError) -> DevchainClient {
        let runLoop: EventLoop
        do {
            runLoop = try loop ?? EventLoop(name: "devchain-client")
        } catch {
            throw .transport("cannot start an event loop: \(error)")
        }
        let client = DevchainClient(
            address: address, identity: identity, loop: runLoop, ownsLoop: loop == nil, daemonKey: daemonKey,
            connectTimeout: connectTimeout, retry: defaultRetry)
        guard await client.session() != nil else {
            await client.close()
            throw .transport("no devchain answered at \(address) within \(connectTimeout)")
        }
        return client
    }

    /// Stops redialing, fails requests in flight, ends every event stream, and closes the session.
    public func close() async {
        let (pending, waiters, streams) = state.withLock { state in
            state.isClosed = true
            defer {
                state.pending = [:]
                state.sessionWaiters = [:]
                state.streams = [:]
                state.subscriptions = [:]
                state.session = nil
            }
            return (state.pending.values.map(\.continuation), Array(state.sessionWaiters.values), Array(state.streams.values))
        }
        for request in pending { request.resume(returning: .transport("the client was closed")) }
        for waiter in waiters { waiter.resume(returning: nil) }
        for stream in streams { stream.continuation.finish() }
        let peerLink = link.withLock { value -> PeerLink? in
            defer { value = nil }
            return value
        }
        await peerLink?.stop()
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
        params: ChannelParams, opening: Allocation, participant: ParticipantIndex, amount: UInt64
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
        _ channel: ChannelID, to state: ChannelState, moverSignature: Signature
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

    @discardableResult
    public func mint(_ amount: UInt64, to account: PublicKey) async throws(SettlementError) -> [ChainEvent] {
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

    public func balance(of account: PublicKey) async throws(SettlementError) -> UInt64 {
        try Self.decode(try await request(.balance(account)).settlement(), SettlementError.self, DevchainPayload.decodeBalance)
    }

    /// Applies `tx` as `identity`; see the type's comment for what a dropped connection means.
    @discardableResult
    public func submit(_ tx: ChainTransaction) async throws(SettlementError) -> [ChainEvent] {
        try Self.decode(try await request(.submit(tx)).settlement(), SettlementError.self, DevchainPayload.decodeEvents)
    }

    // MARK: - Devchain-only

    /// Moves the daemon's clock `seconds` later and returns the new chain time.
    /// Only a daemon started with `--manual-time` accepts it (`.refused(.clockNotManual)` otherwise).
    @discardableResult
    public func advance(by seconds: UInt64) async throws(DevchainError) -> ChainTime {
        try await time(.advance(seconds: seconds))
    }

    /// The daemon's settings and position: challenge default, time mode, newest sequence, time.
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

    // MARK: - Requests

    /// How one request ended.
    private enum Outcome: Sendable {
        case ok([UInt8])
        case refused(SettlementError)
        case failed(DevchainRefusal)
        case transport(String)

        /// For the `SettlementAdapter` methods: chain refusals as they are, everything else `.transport`.
        func settlement() throws(SettlementError) -> [UInt8] {
            switch self {
            case let .ok(payload): return payload
            case let .refused(error): throw error
            case let .failed(refusal): throw .transport("the devchain refused the request: \(refusal)")
            case let .transport(why): throw .transport(why)
            }
        }

        /// For the devchain-only methods.
        func devchain() throws(DevchainError) -> [UInt8] {
            switch self {
            case let .ok(payload): return payload
            case let .refused(error): throw .transport("unexpected chain refusal: \(error)")
            case let .failed(refusal): throw .refused(refusal)
            case let .transport(why): throw .transport(why)
            }
        }
    }

    private func time(_ operation: DevchainRequest.Operation) async throws(DevchainError) -> ChainTime {
        try Self.decode(try await request(operation).devchain(), DevchainError.self) { bytes throws(WireError) in
            try ChainTime(wireBytes: bytes)
        }
    }

    /// An answer that does not decode means the daemon speaks another protocol: a transport failure.
    private static func decode<T, E: Error>(
        _ payload: [UInt8], _ failure: E.Type, _ decoder: ([UInt8]) throws(WireError) -> T
    ) throws(E) -> T where E: TransportFailure {
        do {
            return try decoder(payload)
        } catch {
            throw E.transport("unreadable answer from the devchain: \(error)")
        }
    }

    /// Sends one request on the current session (waiting for one if needed) and waits for its answer.
    /// Reads change nothing, so one lost with its connection is sent again on the next session
    /// (within `connectTimeout`); transactions and clock moves are not (see the type's comment).
    private func request(_ operation: DevchainRequest.Operation) async -> Outcome {
        let deadline = ContinuousClock.now + connectTimeout
        while true {
            let outcome = await requestOnce(operation)
            guard case let .transport(why) = outcome, why == Self.lostInFlight, operation.isRead,
                ContinuousClock.now < deadline, !state.withLock({ $0.isClosed })
            else { return outcome }
        }
    }

    private func requestOnce(_ operation: DevchainRequest.Operation) async -> Outcome {
        guard let session = await session() else {
            let closed = state.withLock { $0.isClosed }
            return .transport(closed ? "the client was closed" : "no devchain answered at \(address) within \(connectTimeout)")
        }
        return await withCheckedContinuation { (continuation: CheckedContinuation<Outcome, Never>) in
            let id = state.withLock { state -> UInt64? in
                guard state.session === session else { return nil }
                let id = state.takeID()
                state.pending[id] = (ObjectIdentifier(session), continuation)
                return id
            }
            guard let id else { return continuation.resume(returning: .transport(Self.lostInFlight)) }
            send(DevchainRequest(id: id, operation: operation), on: session)
        }
    }

    static let lostInFlight =
        "the connection to the devchain dropped with the request in flight; it may or may not have been applied, re-read chain state before retrying"

    private func send(_ request: DevchainRequest, on session: Session) {
        let bytes = request.wireBytes
        Task {
            do {
                try await session.send(bytes)
            } catch {
                fail(request.id, .transport(Self.lostInFlight))
            }
        }
    }

    private func fail(_ id: UInt64, _ outcome: Outcome) {
        state.withLock { $0.pending.removeValue(forKey: id) }?.continuation.resume(returning: outcome)
    }

    /// The current session, or the next one within `connectTimeout`; nil if none came or the client closed.
    private func session() async -> Session? {
        let waiterID = state.withLock { $0.takeID() }
        let timeout = connectTimeout
        let timer = Task { [weak self] in
            try? await Task.sleep(for: timeout)
            self?.state.withLock { $0.sessionWaiters.removeValue(forKey: waiterID) }?.resume(returning: nil)
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { (continuation: CheckedContinuation<Session?, Never>) in
            let ready = state.withLock { state -> Session?? in
                if state.isClosed { return .some(nil) }
                if let session = state.session { return .some(session) }
                state.sessionWaiters[waiterID] = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    // MARK: - Sessions

    private func connected(_ session: Session) {
        let (waiters, subscribes) = state.withLock { state -> ([CheckedContinuation<Session?, Never>], [(UInt64, UInt64)]) in
            guard !state.isClosed else { return ([], []) }
            state.session = session
            let waiters = Array(state.sessionWaiters.values)
            state.sessionWaiters = [:]
            let subscribes = state.streams.keys.sorted().map { key in (Self.subscribe(key, on: session, in: &state), key) }
            return (waiters, subscribes)
        }
        for waiter in waiters { waiter.resume(returning: session) }
        for (id, key) in subscribes { send(subscribeRequest(id, key: key), on: session) }
        Task { await read(session) }
    }

    /// Records a new daemon subscription for stream `key`; returns its id.
    private static func subscribe(_ key: UInt64, on session: Session, in state: inout State) -> UInt64 {
        let id = state.takeID()
        state.subscriptions[id] = (key, ObjectIdentifier(session))
        state.streams[key]?.subscription = id
        return id
    }

    private func subscribeRequest(_ id: UInt64, key: UInt64) -> DevchainRequest {
        let after = state.withLock { $0.streams[key]?.lastDelivered } ?? 0
        return DevchainRequest(id: id, operation: .subscribe(after: after))
    }

    private func read(_ session: Session) async {
        for await event in session.events {
            guard case let .message(bytes) = event else { continue }
            do {
                switch try DevchainServerMessage(wireBytes: bytes) {
                case let .response(id, result): answered(id, result)
                case let .events(subscription, events): deliver(events, to: subscription)
                }
            } catch {
                session.close(reason: "undecodable message from the devchain: \(error)")
            }
        }
        // The next session may already be up: clean up only what belonged to this one.
        let ended = ObjectIdentifier(session)
        let pending = state.withLock { state -> [CheckedContinuation<Outcome, Never>] in
            if state.session === session {
                state.session = nil
                for key in state.streams.keys { state.streams[key]?.subscription = nil }
            }
            state.subscriptions = state.subscriptions.filter { $0.value.session != ended }
            let lost = state.pending.filter { $0.value.session == ended }
            for id in lost.keys { state.pending[id] = nil }
            return lost.values.map(\.continuation)
        }
        for request in pending { request.resume(returning: .transport(Self.lostInFlight)) }
    }

    private func answered(_ id: UInt64, _ result: DevchainResult) {
        let (request, stream) = state.withLock { state in
            (state.pending.removeValue(forKey: id)?.continuation, state.subscriptions[id].flatMap { state.streams[$0.key] })
        }
        if let request {
            switch result {
            case let .ok(payload): request.resume(returning: .ok(payload))
            case let .refused(error): request.resume(returning: .refused(error))
            case let .failed(refusal): request.resume(returning: .failed(refusal))
            }
        } else if let stream, case let .failed(refusal) = result {
            stream.continuation.finish(throwing: SettlementError.transport("the devchain refused the subscription: \(refusal)"))
        }
    }

    private func deliver(_ events: [ChainEvent], to subscription: UInt64) {
        state.withLock { state in
            guard let key = state.subscriptions[subscription]?.key, var stream = state.streams[key] else { return }
            // Yielding under the lock keeps order; the sequence check makes resubscription exactly-once.
            for event in events where event.sequence > stream.lastDelivered {
                stream.continuation.yield(event)
                stream.lastDelivered = event.sequence
            }
            state.streams[key] = stream
        }
    }

    private func streamEnded(_ key: UInt64) {
        let unsubscribe = state.withLock { state -> (Session, UInt64)? in
            guard let stream = state.streams.removeValue(forKey: key) else { return nil }
            guard let id = stream.subscription, let session = state.session else { return nil }
            state.subscriptions[id] = nil
            return (session, id)
        }
        guard let (session, id) = unsubscribe else { return }
        let request = state.withLock { DevchainRequest(id: $0.takeID(), operation: .unsubscribe(subscription: id)) }
        send(request, on: session)
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
