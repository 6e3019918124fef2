import ParleyChannel
import ParleyCrypto
import ParleyLocks
import ParleyWire

/// The embedded chain: an `Adjudicator` behind a lock, with a virtual clock.
///
/// The clock starts at `ChainTime.zero` and moves only through `advance`, so
/// tests and drills decide exactly when windows close. Transactions are applied
/// one at a time in the order their calls take the lock; the same calls in the
/// same order give the same events. Safe to share between tasks and threads.
public final class LocalChain: Sendable {
    private struct State {
        var adjudicator: Adjudicator
        var now: ChainTime = .zero
        var subscribers: [UInt64: AsyncThrowingStream<ChainEvent, any Error>.Continuation] = [:]
        var nextSubscriber: UInt64 = 0
    }

    private let state: Locked<State>

    /// The chain's settlement domain: channels bound to another are refused.
    public let domain: SettlementDomain

    /// `apps` add to the always-known `PaymentApp` (see `Adjudicator.init(apps:)`); `domain`
    /// names this chain (two chains with different domains never accept each other's states).
    public init(apps: [any AppRules] = [], domain: SettlementDomain = .embedded) {
        self.domain = domain
        state = Locked(State(adjudicator: Adjudicator(apps: apps, domain: domain)))
    }

    /// An adapter that submits transactions as `identity`.
    public func adapter(for identity: PublicKey) -> LocalChainAdapter {
        LocalChainAdapter(chain: self, identity: identity)
    }

    /// Current chain time.
    public var now: ChainTime { state.withLock { $0.now } }

    /// Moves the clock `seconds` later (saturating). Emits no events: windows close by
    /// the clock alone, and someone must still `conclude`.
    public func advance(by seconds: UInt64) {
        state.withLock { $0.now = $0.now + seconds }
    }

    /// Moves the clock to `time`; the clock never runs backwards, so an earlier `time` changes nothing.
    public func advance(to time: ChainTime) {
        state.withLock { $0.now = max($0.now, time) }
    }

    /// Applies `tx` as `caller` at the current chain time and hands its events to every subscriber.
    @discardableResult
    public func submit(_ tx: ChainTransaction, as caller: PublicKey) throws(SettlementError) -> [ChainEvent] {
        try state.withLock { (state: inout State) throws(SettlementError) -> [ChainEvent] in
            let events = try state.adjudicator.apply(tx, caller: caller, now: state.now)
            // Yielding under the lock keeps every subscriber's order equal to chain order.
            var ended: [UInt64] = []
            for (id, continuation) in state.subscribers {
                for event in events {
                    if case .terminated = continuation.yield(event) { ended.append(id) }
                }
            }
            for id in ended { state.subscribers[id] = nil }
            return events
        }
    }

    /// A copy of the whole adjudicator (ledger and rules), for inspection and tests.
    public var adjudicator: Adjudicator { state.withLock { $0.adjudicator } }

    /// The channel's snapshot now, or `nil` if no deposit ever named it.
    public func channel(_ id: ChannelID) -> ChannelOnChain? {
        state.withLock { $0.adjudicator.channel(id) }
    }

    /// The account's balance outside any channel.
    public func balance(of account: PublicKey) -> Amount {
        state.withLock { $0.adjudicator.balance(of: account) }
    }

    /// See `EventSubscriber.events(after:)`. Backfill and registration happen under one
    /// lock, so an event appended meanwhile is delivered exactly once, live.
    public func events(after sequence: UInt64) -> AsyncThrowingStream<ChainEvent, any Error> {
        let (stream, continuation) = AsyncThrowingStream<ChainEvent, any Error>.makeStream()
        let id = state.withLock { (state: inout State) -> UInt64 in
            for event in state.adjudicator.events(after: sequence) { continuation.yield(event) }
            let id = state.nextSubscriber
            state.nextSubscriber += 1
            state.subscribers[id] = continuation
            return id
        }
        // Set after registering: termination runs on the consumer's side and takes the lock itself.
        continuation.onTermination = { [weak self] _ in
            self?.state.withLock { _ = $0.subscribers.removeValue(forKey: id) }
        }
        return stream
    }

    /// Live subscriptions; for tests that check cancelled streams are dropped.
    public var subscriberCount: Int { state.withLock { $0.subscribers.count } }
}

/// `LocalChain` seen by one identity. Never fails with `.transport`.
///
/// Each call is one `LocalChain.submit`: when it returns, the transaction is
/// applied and its events are already queued to every subscriber; when it
/// throws, nothing changed. The contracts are those of the role protocols.
public struct LocalChainAdapter: SettlementAdapter, DevFaucet {
    /// The chain this adapter submits to.
    public let chain: LocalChain
    /// The key every transaction from this adapter is submitted as.
    public let identity: PublicKey

    public func domain() async throws(SettlementError) -> SettlementDomain { chain.domain }

    public func now() async throws(SettlementError) -> ChainTime { chain.now }

    @discardableResult
    public func deposit(
        params: ChannelParams, opening: Allocation, participant: ParticipantIndex, amount: Amount
    ) async throws(SettlementError) -> [ChainEvent] {
        try chain.submit(.deposit(params: params, opening: opening, participant: participant, amount: amount), as: identity)
    }

    @discardableResult
    public func reclaim(_ channel: ChannelID) async throws(SettlementError) -> [ChainEvent] {
        try chain.submit(.reclaim(channel: channel), as: identity)
    }

    @discardableResult
    public func register(_ state: SignedState) async throws(SettlementError) -> [ChainEvent] {
        try chain.submit(.register(state), as: identity)
    }

    @discardableResult
    public func progress(
        _ channel: ChannelID, to state: ChannelState, moverSignature: StateSignature
    ) async throws(SettlementError) -> [ChainEvent] {
        try chain.submit(.progress(channel: channel, state: state, moverSignature: moverSignature), as: identity)
    }

    @discardableResult
    public func conclude(_ channel: ChannelID) async throws(SettlementError) -> [ChainEvent] {
        try chain.submit(.conclude(channel: channel), as: identity)
    }

    @discardableResult
    public func withdraw(_ channel: ChannelID, participant: ParticipantIndex) async throws(SettlementError) -> [ChainEvent] {
        try chain.submit(.withdraw(channel: channel, participant: participant), as: identity)
    }

    public func channel(_ id: ChannelID) async throws(SettlementError) -> ChannelOnChain? { chain.channel(id) }

    public func balance(of account: PublicKey) async throws(SettlementError) -> Amount {
        chain.balance(of: account)
    }

    public func events(after sequence: UInt64) -> AsyncThrowingStream<ChainEvent, any Error> {
        chain.events(after: sequence)
    }

    @discardableResult
    public func mint(_ amount: Amount, to account: PublicKey) async throws(SettlementError) -> [ChainEvent] {
        try chain.submit(.mint(account: account, amount: amount), as: identity)
    }
}
