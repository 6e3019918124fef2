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
    private let loop: EventLoop
    private let ownsLoop: Bool
    /// Dials the daemon and redials it whenever the session ends, until `close()`.
    private let dialer = Locked<PeerLink?>(nil)
    private let state = Locked(State())
    /// Each request's latency and failures (Docs/Metrics.md).
    private let metrics = ChainCallMetrics()

    private struct Stream {
        var continuation: AsyncThrowingStream<ChainEvent, any Error>.Continuation
        /// The newest sequence delivered on this stream: a resubscription starts after it.
        var lastDelivered: UInt64
        /// The daemon's subscription id (the subscribe request's id) while subscribed.
        var subscription: UInt64?
    }

    /// A request waiting for its answer.
    private struct Pending {
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

    private typealias SessionWaiter = CheckedContinuation<Result<Session, DevchainError>, Never>

    private struct State {
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

    // MARK: - Requests

    /// How one request ended.
    private enum Outcome: Sendable {
        case ok([UInt8])
        case refused(SettlementError)
        case failed(DevchainRefusal)
        /// Sent, and then lost with its connection or not answered in time.
        case transport(String)
        /// Never sent: the client closed, no daemon answered, or the daemon proved another key.
        case unsent(DevchainError)

        /// For the `SettlementAdapter` methods: chain refusals as they are, everything else `.transport`.
        func settlement() throws(SettlementError) -> [UInt8] {
            switch self {
            case let .ok(payload): return payload
            case let .refused(error): throw error
            case let .failed(refusal):
                switch refusal {
                case .faucetNotAllowed, .timeTravelNotAllowed: throw .notPermitted("\(refusal)")
                default: throw .transport("the devchain refused the request: \(refusal)")
                }
            case let .transport(why), let .unsent(.transport(why)): throw .transport(why)
            case let .unsent(error): throw .transport(error.description)
            }
        }

        var metricsOutcome: ChainCallMetrics.Outcome {
            switch self {
            case .ok: .ok
            case .refused, .failed: .refused
            case .transport, .unsent: .transport
            }
        }

        /// For the devchain-only methods.
        func devchain() throws(DevchainError) -> [UInt8] {
            switch self {
            case let .ok(payload): return payload
            case let .refused(error): throw .transport("unexpected chain refusal: \(error)")
            case let .failed(refusal): throw .refused(refusal)
            case let .transport(why): throw .transport(why)
            case let .unsent(error): throw error
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

    /// Sends one request on the current session (waiting up to `connectTimeout` for one if
    /// needed) and waits up to `requestTimeout` for its answer.
    /// Reads change nothing, so one lost with its connection is sent again on the next session
    /// (within `connectTimeout`); transactions and clock moves are not, and nothing that went
    /// unanswered is (see the type's comment).
    private func request(_ operation: DevchainRequest.Operation) async -> Outcome {
        let start = ContinuousClock.now
        let deadline = start + connectTimeout
        while true {
            let outcome = await requestOnce(operation)
            guard case let .transport(why) = outcome, why == Self.lostInFlight, operation.isRead,
                ContinuousClock.now < deadline, !state.withLock({ $0.isClosed })
            else {
                if let call = operation.metricsCall { metrics.record(call, since: start, outcome.metricsOutcome) }
                return outcome
            }
        }
    }

    private func requestOnce(_ operation: DevchainRequest.Operation) async -> Outcome {
        let session: Session
        switch await self.session() {
        case let .success(current): session = current
        case let .failure(error): return .unsent(error)
        }
        return await withCheckedContinuation { (continuation: CheckedContinuation<Outcome, Never>) in
            let id = state.withLock { state -> UInt64? in
                guard state.session === session else { return nil }
                let id = state.takeID()
                state.pending[id] = Pending(
                    session: ObjectIdentifier(session), continuation: continuation,
                    deadline: .now + requestTimeout, isRead: operation.isRead)
                if state.sweeper == nil { state.sweeper = Task { [weak self] in await self?.sweep() } }
                return id
            }
            guard let id else { return continuation.resume(returning: .transport(Self.lostInFlight)) }
            send(DevchainRequest(id: id, operation: operation), on: session)
        }
    }

    /// Fails each pending request whose deadline passed, sleeping until the next deadline;
    /// ends (clearing `State.sweeper`) when nothing is pending or the client closed. Every
    /// request gets the same timeout, so a request added later never has an earlier deadline
    /// than the one slept towards.
    private func sweep() async {
        while true {
            let (expired, next) = state.withLock { state -> ([Pending], ContinuousClock.Instant?) in
                let now = ContinuousClock.now
                var expired: [Pending] = []
                var next: ContinuousClock.Instant?
                for (id, request) in state.pending {
                    if request.deadline <= now {
                        expired.append(request)
                        state.pending[id] = nil
                    } else {
                        next = min(next ?? request.deadline, request.deadline)
                    }
                }
                if next == nil || Task.isCancelled { state.sweeper = nil }
                return (expired, Task.isCancelled ? nil : next)
            }
            for request in expired { request.resume(returning: .transport(unansweredMessage(isRead: request.isRead))) }
            guard let next else { return }
            do { try await Task.sleep(until: next, clock: .continuous) } catch { return }
        }
    }

    static let lostInFlight =
        "the connection to the devchain dropped with the request in flight; it may or may not have been applied, re-read chain state before retrying"

    /// Why a request failed whose answer did not come within `requestTimeout`.
    private func unansweredMessage(isRead: Bool) -> String {
        let head = "no answer from the devchain at \(address) within \(requestTimeout)"
        return isRead
            ? "\(head): the daemon is stopped, wedged or overloaded"
            : "\(head); the request may or may not have been applied, re-read chain state before retrying"
    }

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

    /// Ends request `id` with `outcome`, unless it already ended: then a late answer or a send
    /// failure does nothing.
    private func fail(_ id: UInt64, _ outcome: Outcome) {
        state.withLock { $0.pending.removeValue(forKey: id) }?.resume(returning: outcome)
    }

    /// The current session, or the next one within `connectTimeout`. Fails at once when the
    /// client is closed or the address proved another key than `daemonKey` on the latest dial.
    private func session() async -> Result<Session, DevchainError> {
        let (ready, waiterID) = state.withLock { state -> (Result<Session, DevchainError>?, UInt64) in
            (sessionNow(state), state.takeID())
        }
        // The usual case, connected: no timer to make.
        if let ready { return ready }
        let timeout = connectTimeout
        let timer = Task { [weak self] in
            do { try await Task.sleep(for: timeout) } catch { return }
            guard let self else { return }
            let (waiter, lastFailure) = state.withLock {
                ($0.sessionWaiters.removeValue(forKey: waiterID), $0.lastDialFailure)
            }
            let why = "no devchain answered at \(address) within \(timeout)" + (lastFailure.map { " (last attempt: \($0))" } ?? "")
            waiter?.resume(returning: .failure(.transport(why)))
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { (continuation: SessionWaiter) in
            let ready = state.withLock { state -> Result<Session, DevchainError>? in
                if let ready = sessionNow(state) { return ready }
                state.sessionWaiters[waiterID] = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    /// What `session()` returns without waiting: the session, or why there will be none; nil to wait.
    private func sessionNow(_ state: State) -> Result<Session, DevchainError>? {
        if state.isClosed { return .failure(.transport("the client was closed")) }
        if let session = state.session { return .success(session) }
        if let proved = state.wrongKey { return .failure(wrongKey(proved)) }
        return nil
    }

    private func wrongKey(_ proved: PublicKey) -> DevchainError {
        .wrongDaemonKey(address: address, pinned: daemonKey, proved: proved)
    }

    // MARK: - Sessions

    /// Notes why a dial failed. A daemon that proved another key fails every waiting request
    /// at once: waiting for it to change its key would only delay the error.
    private func dialFailed(_ error: any Error) {
        var proved: PublicKey?
        if case let .notEstablished(.handshakeFailed(.unexpectedPeer(_, got)))? = error as? SessionError { proved = got }
        let waiters = state.withLock { state -> [SessionWaiter] in
            state.lastDialFailure = "\(error)"
            state.wrongKey = proved
            guard proved != nil else { return [] }
            defer { state.sessionWaiters = [:] }
            return Array(state.sessionWaiters.values)
        }
        if let proved { for waiter in waiters { waiter.resume(returning: .failure(wrongKey(proved))) } }
    }

    /// Makes `session` the current one and resubscribes every stream on it; false if the client closed.
    private func connected(_ session: Session) -> Bool {
        let (open, waiters, subscribes) = state.withLock { state -> (Bool, [SessionWaiter], [(UInt64, UInt64)]) in
            guard !state.isClosed else { return (false, [], []) }
            state.session = session
            state.wrongKey = nil
            state.lastDialFailure = nil
            let waiters = Array(state.sessionWaiters.values)
            state.sessionWaiters = [:]
            let subscribes = state.streams.keys.sorted().map { key in (Self.subscribe(key, on: session, in: &state), key) }
            return (true, waiters, subscribes)
        }
        guard open else { return false }
        for waiter in waiters { waiter.resume(returning: .success(session)) }
        for (id, key) in subscribes { send(subscribeRequest(id, key: key), on: session) }
        return true
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

    /// Handles `session`'s messages until it ends, then fails what was in flight on it.
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
        let pending = state.withLock { state -> [Pending] in
            if state.session === session {
                state.session = nil
                for key in state.streams.keys { state.streams[key]?.subscription = nil }
            }
            state.subscriptions = state.subscriptions.filter { $0.value.session != ended }
            let lost = state.pending.filter { $0.value.session == ended }
            for id in lost.keys { state.pending[id] = nil }
            return Array(lost.values)
        }
        for request in pending { request.resume(returning: .transport(Self.lostInFlight)) }
    }

    /// An answer for a request that already ended (it timed out) finds nothing and is dropped.
    private func answered(_ id: UInt64, _ result: DevchainResult) {
        let (request, stream) = state.withLock { state in
            (state.pending.removeValue(forKey: id), state.subscriptions[id].flatMap { state.streams[$0.key] })
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
