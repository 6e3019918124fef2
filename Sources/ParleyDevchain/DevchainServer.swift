import ParleyChannel
import ParleyCrypto
import ParleySettlement
import ParleyTransport
import ParleyWire
import Synchronization
import ParleyLocks

/// The devchain daemon: an `Adjudicator` with a clock and a durable ledger, served to
/// clients over encrypted sessions. `parley devchain` is a thin shell around it.
///
/// Commit point: a transaction (or clock move) is applied, appended to `ledger.log` and
/// fsync'd before its response is sent, and published to subscribers only then. Requests
/// from all clients are applied one at a time, in the order they take the lock.
/// A client that misbehaves is disconnected with a logged reason; others are unaffected.
///
/// The **operator** is whoever holds the daemon's `identity` key: a client whose session
/// proves that key. Only the operator may mint (`.mint` transactions) and move a manual
/// clock (`advance`), unless `allowFaucet` / `allowTimeTravel` open them to every client;
/// other callers get `DevchainRefusal.faucetNotAllowed` / `.timeTravelNotAllowed` and nothing
/// changes. A daemon on `Devchain.wellKnownIdentity` has no operator to protect: that key is
/// public, anyone can prove it, so every client counts as the operator. Such a daemon is
/// for local development only.
public final class DevchainServer: Sendable {
    public struct Configuration: Sendable {
        public var listen: SocketAddress
        public var dataDirectory: String
        /// Advertised by `info`; nodes use it when they open a channel without choosing one.
        public var challengeDefault: UInt64
        public var timeMode: DevchainTimeMode
        /// The key the daemon proves in every handshake; its holder is the operator.
        public var identity: SigningKey
        /// Every client may mint, not only the operator (`--allow-faucet`).
        public var allowFaucet: Bool
        /// Every client may advance a manual clock, not only the operator (`--allow-time-travel`).
        /// Without `.manual` time nobody may (`clockNotManual`).
        public var allowTimeTravel: Bool
        /// The chain's settlement domain (its chain id): channels bound to another are
        /// refused, and a ledger written under another domain does not replay.
        public var domain: SettlementDomain = .devchainDefault
        public var session: SessionConfig
        /// A caught-up subscriber whose sends fall this many events behind the chain is
        /// disconnected (it reconnects and resubscribes from the last event it handled).
        public var maxSubscriberLag: UInt64 = DevchainLimits.maxSubscriberLag
        /// One line per notable thing (client closed for a reason, torn tail, fatal error).
        public var log: @Sendable (String) -> Void
        /// Called once if the ledger can no longer be written; the server then refuses every
        /// request, and the process should exit (memory may be ahead of disk).
        public var onFatal: @Sendable (String) -> Void = { _ in }
        /// The app rules `progress` and the final payout follow, besides payments (which
        /// every chain knows). `parley devchain` passes ``ParleyGames``' apps; the ledger
        /// records app ids, so replaying it needs the same apps.
        public var apps: [any AppRules]

        public init(
            listen: SocketAddress, dataDirectory: String,
            challengeDefault: UInt64 = ChannelParams.defaultChallengeDuration,
            timeMode: DevchainTimeMode = .blocks(milliseconds: DevchainTimeMode.defaultBlockMilliseconds),
            identity: SigningKey = Devchain.wellKnownIdentity, allowFaucet: Bool = false, allowTimeTravel: Bool = false,
            session: SessionConfig = SessionConfig(), apps: [any AppRules] = [],
            log: @escaping @Sendable (String) -> Void = { _ in }
        ) {
            self.apps = apps
            self.listen = listen
            self.dataDirectory = dataDirectory
            self.challengeDefault = challengeDefault
            self.timeMode = timeMode
            self.identity = identity
            self.allowFaucet = allowFaucet
            self.allowTimeTravel = allowTimeTravel
            self.session = session
            self.log = log
        }

        /// Who may make a privileged request.
        public enum Access: String, Sendable, Equatable {
            /// Only a client that proves the daemon's `identity` key.
            case operatorOnly = "operator"
            /// Every client.
            case anyone
        }

        /// Whether the daemon proves `Devchain.wellKnownIdentity`, whose private key is public:
        /// every client can prove it, so every client counts as the operator. Local development only.
        public var hasWellKnownIdentity: Bool { identity.publicKey == Devchain.wellKnownKey }

        /// Who may mint: everyone with `allowFaucet` or the well-known identity, else the operator.
        public var faucetAccess: Access { allowFaucet || hasWellKnownIdentity ? .anyone : .operatorOnly }

        /// Who may `advance` (a manual clock; a block clock refuses everyone with `clockNotManual`):
        /// everyone with `allowTimeTravel` or the well-known identity, else the operator.
        public var timeTravelAccess: Access { allowTimeTravel || hasWellKnownIdentity ? .anyone : .operatorOnly }

        /// Why `caller` may not make `operation` (a mint without faucet access, an advance without
        /// time-travel access), or nil if it may. Other operations are open to every client.
        public func refusal(of operation: DevchainRequest.Operation, by caller: PublicKey) -> DevchainRefusal? {
            switch operation {
            case .submit(.mint): return admits(caller, faucetAccess) ? nil : .faucetNotAllowed
            case .advance: return admits(caller, timeTravelAccess) ? nil : .timeTravelNotAllowed
            default: return nil
            }
        }

        private func admits(_ caller: PublicKey, _ access: Access) -> Bool {
            access == .anyone || caller == identity.publicKey
        }
    }

    /// What startup found on disk.
    public struct Recovery: Sendable {
        /// Transactions replayed from the ledger.
        public var transactions: Int
        /// Chain time after replay.
        public var time: ChainTime
        /// Bytes of a torn last record that were cut off, if any.
        public var truncatedBytes: Int?
    }

    private struct Core: ~Copyable {
        var adjudicator: Adjudicator
        var clock: DevchainClock
        var persistedTime: ChainTime
        var log: LedgerLog?
        /// Set when an append failed: memory may be ahead of disk, so nothing more is served.
        var failure: String?
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter: UInt64 = 0
        var sessions: [ObjectIdentifier: Session] = [:]
        let metrics: DevchainMetrics
    }

    public let configuration: Configuration
    public let recovery: Recovery
    private let core: Locked<Core>
    private let listener: Locked<TCPListener?>
    private let endpoint: SessionEndpoint
    private let metrics: DevchainMetrics
    /// Live subscriptions, checked for lag after every commit that made events.
    private let subscribers = Locked<[ObjectIdentifier: SubscriberCursor]>([:])
    /// The address clients dial (with the port the OS chose for port 0).
    public let address: SocketAddress

    private init(
        configuration: Configuration, recovery: Recovery, core: consuming sending Core, endpoint: SessionEndpoint,
        address: SocketAddress
    ) {
        self.configuration = configuration
        self.recovery = recovery
        metrics = core.metrics
        self.core = Locked(core)
        listener = Locked(nil)
        self.endpoint = endpoint
        self.address = address
    }

    /// Opens (and locks) the data directory, replays the ledger, and starts listening on `loop`.
    /// - Throws: `DevchainStoreError` (locked, corrupt, unreadable) or the transport's listen error.
    public static func start(_ configuration: Configuration, loop: EventLoop) async throws -> DevchainServer {
        let opened = try LedgerLog.open(directory: configuration.dataDirectory)
        var adjudicator = Adjudicator(apps: configuration.apps, domain: configuration.domain)
        var time = ChainTime.zero
        var transactions = 0
        for (index, record) in opened.records.enumerated() {
            guard record.time >= time else {
                throw DevchainStoreError.replayFailed(
                    path: opened.log.path, record: index + 1, reason: "time goes backwards from \(time) to \(record.time)")
            }
            time = record.time
            guard case let .transaction(tx, caller, at) = record else { continue }
            do throws(SettlementError) {
                _ = try adjudicator.apply(tx, caller: caller, now: at)
            } catch {
                throw DevchainStoreError.replayFailed(path: opened.log.path, record: index + 1, reason: error.description)
            }
            transactions += 1
        }
        if let (offset, bytes) = opened.truncated {
            configuration.log("cut off a torn last record of \(bytes) bytes at offset \(offset) of \(opened.log.path)")
        }
        let recovery = Recovery(transactions: transactions, time: time, truncatedBytes: opened.truncated?.bytes)
        let core = Core(
            adjudicator: adjudicator, clock: DevchainClock(mode: configuration.timeMode, start: time),
            persistedTime: time, log: opened.log, metrics: DevchainMetrics())
        let endpoint = SessionEndpoint(identity: configuration.identity, loop: loop, config: configuration.session)
        let holder = ServerHolder()
        let log = configuration.log
        let listener = try await endpoint.listen(
            on: configuration.listen, acceptPeer: { _ in true },
            onHandshakeFailure: { address, reason in log("handshake from \(address) failed: \(reason)") },
            onSession: { session in
                guard let server = holder.server else { return session.close(reason: "the devchain is starting") }
                server.accepted(session)
            })
        let server = DevchainServer(
            configuration: configuration, recovery: recovery, core: core, endpoint: endpoint,
            address: listener.localAddress)
        server.listener.withLock { $0 = listener }
        holder.server = server
        return server
    }

    /// Chain time now.
    public var now: ChainTime { core.withLock { $0.clock.now() } }

    /// A copy of the adjudicator, for tests and inspection.
    public var adjudicator: Adjudicator { core.withLock { $0.adjudicator } }

    /// Stops listening, closes every client, persists the clock and releases the data directory.
    public func shutdown() async {
        let listener = self.listener.withLock { value -> TCPListener? in
            defer { value = nil }
            return value
        }
        await listener?.close()
        let (sessions, waiters) = core.withLock { core -> ([Session], [CheckedContinuation<Void, Never>]) in
            _ = try? Self.persistClock(&core)
            core.log = nil
            core.failure = core.failure ?? "the devchain shut down"
            defer {
                core.metrics.clients.decrement(by: Double(core.sessions.count))
                core.sessions = [:]
                core.waiters = [:]
            }
            return (Array(core.sessions.values), Array(core.waiters.values))
        }
        for session in sessions { session.close(reason: "the devchain is shutting down") }
        for waiter in waiters { waiter.resume() }
    }

    // MARK: - Requests

    /// Applies one non-subscription request as `caller`. Durable before it returns `ok`.
    /// A mint or advance `caller` may not make (`Configuration.refusal(of:by:)`) is refused
    /// before anything is read or changed.
    func handle(_ operation: DevchainRequest.Operation, caller: PublicKey) -> DevchainResult {
        let result = answer(operation, caller: caller)
        if case let .submit(tx) = operation { metrics.record(tx, result) }
        return result
    }

    private func answer(_ operation: DevchainRequest.Operation, caller: PublicKey) -> DevchainResult {
        if let refusal = configuration.refusal(of: operation, by: caller) { return .failed(refusal) }
        let (result, wake, madeEvents) = core.withLock { core -> (DevchainResult, [CheckedContinuation<Void, Never>], Bool) in
            if let failure = core.failure { return (.failed(.storageFailed(failure)), [], false) }
            let before = core.adjudicator.lastSequence
            do throws(DevchainStoreError) {
                let (result, wake) = try Self.perform(operation, caller: caller, core: &core, settings: settings)
                return (result, wake, core.adjudicator.lastSequence > before)
            } catch {
                core.failure = error.description
                configuration.log("fatal: \(error); refusing every further request")
                configuration.onFatal(error.description)
                return (.failed(.storageFailed(error.description)), [], false)
            }
        }
        for waiter in wake { waiter.resume() }
        if madeEvents { disconnectLaggards() }
        return result
    }

    /// Closes sessions whose caught-up subscriptions are stuck too far behind: their sends
    /// are blocked on a client that stopped reading, and only a new session can fix that.
    private func disconnectLaggards() {
        let head = core.withLock { $0.adjudicator.lastSequence }
        let limit = configuration.maxSubscriberLag
        let stuck = subscribers.withLock { subscribers in
            subscribers.values.filter { $0.caughtUp.load(ordering: .relaxed) && $0.lag(behind: head) > limit }
        }
        for subscriber in stuck {
            let lag = subscriber.lag(behind: head)
            configuration.log(
                "closing client \(subscriber.session.peer.shortID) at \(subscriber.session.remoteAddress): subscription fell \(lag) events behind; reconnect and resubscribe")
            subscriber.session.close(reason: "subscription fell \(lag) events behind the chain; reconnect and resubscribe")
            _ = subscribers.withLock { $0.removeValue(forKey: ObjectIdentifier(subscriber)) }
        }
    }

    func track(_ subscriber: SubscriberCursor) {
        subscribers.withLock { $0[ObjectIdentifier(subscriber)] = subscriber }
    }

    func untrack(_ subscriber: SubscriberCursor) {
        _ = subscribers.withLock { $0.removeValue(forKey: ObjectIdentifier(subscriber)) }
    }

    /// What `perform` needs from the configuration.
    private struct Settings {
        var blockMilliseconds: UInt64
        var challengeDefault: UInt64
        var domain: SettlementDomain
    }

    private var settings: Settings {
        var ms: UInt64 = 0
        if case let .blocks(milliseconds) = configuration.timeMode { ms = milliseconds }
        return Settings(
            blockMilliseconds: ms, challengeDefault: configuration.challengeDefault, domain: configuration.domain)
    }

    private static func perform(
        _ operation: DevchainRequest.Operation, caller: PublicKey, core: inout Core, settings: Settings
    ) throws(DevchainStoreError) -> (DevchainResult, [CheckedContinuation<Void, Never>]) {
        switch operation {
        case let .submit(tx):
            let now = core.clock.now()
            let events: [ChainEvent]
            do throws(SettlementError) {
                events = try core.adjudicator.apply(tx, caller: caller, now: now)
            } catch {
                return (.refused(error), [])
            }
            try append(.transaction(tx, caller: caller, time: now), to: &core)
            let wake = events.isEmpty ? [] : Array(core.waiters.values)
            if !events.isEmpty { core.waiters = [:] }
            return (.ok(DevchainPayload.events(events)), wake)
        case .now:
            try persistClock(&core)
            return (.ok(DevchainPayload.time(core.persistedTime)), [])
        case let .channel(id):
            return (.ok(DevchainPayload.channel(core.adjudicator.channel(id))), [])
        case let .balance(account):
            return (.ok(DevchainPayload.balance(core.adjudicator.balance(of: account))), [])
        case let .advance(seconds):
            guard core.clock.mode == .manual else { return (.failed(.clockNotManual(blockMilliseconds: settings.blockMilliseconds)), []) }
            var clock = core.clock
            let time = clock.advance(by: seconds)
            if time > core.persistedTime { try append(.clock(time), to: &core) }
            core.clock = clock
            return (.ok(DevchainPayload.time(time)), [])
        case .info:
            try persistClock(&core)
            let info = DevchainInfo(
                challengeDefault: settings.challengeDefault, manualTime: core.clock.mode == .manual,
                lastSequence: core.adjudicator.lastSequence, time: core.persistedTime, domain: settings.domain)
            return (.ok(info.wireBytes), [])
        case .subscribe, .unsubscribe:
            return (.failed(.badRequest("subscriptions are handled per connection")), [])
        }
    }

    /// Makes the clock's current time durable before anyone is told it, so time never goes backwards.
    private static func persistClock(_ core: inout Core) throws(DevchainStoreError) {
        let now = core.clock.now()
        guard now > core.persistedTime else { return }
        try append(.clock(now), to: &core)
    }

    private static func append(_ record: LedgerRecord, to core: inout Core) throws(DevchainStoreError) {
        guard let log = core.log else {
            throw .io(operation: "append to", path: "the closed ledger", errno: 9)
        }
        let start = ContinuousClock.now
        try log.append(record)
        core.metrics.ledgerFsync.record(duration: ContinuousClock.now - start)
        core.persistedTime = max(core.persistedTime, record.time)
    }

    /// Up to one message of events after `sequence`, and the newest sequence; waits while there are none.
    /// Returns `nil` when the server stopped or the task was cancelled.
    func events(after sequence: UInt64) async -> ([ChainEvent], UInt64)? {
        while !Task.isCancelled {
            let ready = core.withLock { core -> ([ChainEvent], UInt64)? in
                guard core.failure == nil else { return ([], 0) }
                let events = core.adjudicator.events(after: sequence, limit: DevchainLimits.maxEventsPerMessage)
                return events.isEmpty ? nil : (events, core.adjudicator.lastSequence)
            }
            if let ready { return ready.0.isEmpty ? nil : ready }
            await waitForEvents(after: sequence)
        }
        return nil
    }

    private func waitForEvents(after sequence: UInt64) async {
        let id = core.withLock { core -> UInt64 in
            core.nextWaiter += 1
            return core.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = core.withLock { core -> Bool in
                    if Task.isCancelled || core.failure != nil || core.adjudicator.lastSequence > sequence { return true }
                    core.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            core.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }

    // MARK: - Clients

    private func accepted(_ session: Session) {
        let open = core.withLock { core -> Bool in
            guard core.failure == nil else { return false }
            core.sessions[ObjectIdentifier(session)] = session
            core.metrics.clients.increment()
            return true
        }
        guard open else { return session.close(reason: "the devchain is shutting down") }
        Task { await DevchainConnection(server: self, session: session).serve() }
    }

    func closed(_ session: Session) {
        core.withLock { core in
            if core.sessions.removeValue(forKey: ObjectIdentifier(session)) != nil { core.metrics.clients.decrement() }
        }
    }
}

/// Lets the listener's callback reach the server created after it.
private final class ServerHolder: Sendable {
    private let value = Locked<DevchainServer?>(nil)
    var server: DevchainServer? {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }
}

/// Where one subscription's sending has got to, read by the server's lag check.
final class SubscriberCursor: Sendable {
    let session: Session
    /// The newest sequence handed to the session.
    let sent: Atomic<UInt64>
    /// Set once the backfill is done: only live lag counts.
    let caughtUp = Atomic<Bool>(false)

    init(session: Session, after: UInt64) {
        self.session = session
        sent = Atomic(after)
    }

    /// Events between what was sent and `head`; 0 for a cursor ahead of the chain
    /// (a client may subscribe after a sequence that does not exist yet).
    func lag(behind head: UInt64) -> UInt64 {
        let sent = self.sent.load(ordering: .relaxed)
        return head > sent ? head - sent : 0
    }
}
