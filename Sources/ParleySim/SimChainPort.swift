import ParleyChannel
import ParleyCrypto
import ParleyLocks
import ParleySettlement
import ParleyWire

/// The honest node's way to the simulated chain: `LocalChain` as the honest key, with the
/// simulator's faults on top.
///
/// - **Outages**: while ``outage`` is on, every call fails with `.transport`, as a lost
///   RPC endpoint would (nothing reaches the chain).
/// - **Crashes**: a port belongs to one life of the node. After ``kill()`` every call
///   fails and the event stream ends, so a crashed node's leftover tasks cannot act on the
///   chain after its successor started.
/// - **Taps**: every state the node registers and every move it signs for `progress` goes
///   to `onSubmit` first, so the oracle sees every signature the node hands out.
final class SimChainPort: SettlementAdapter {
    enum Submission: Sendable {
        case register(SignedState)
        case progress(ChannelState, StateSignature)
    }

    let identity: PublicKey
    private let chain: LocalChain
    private let inner: LocalChainAdapter
    private let faults: ChainFaults
    private let alive = Locked(true)
    private let onSubmit: @Sendable (Submission) -> Void

    init(chain: LocalChain, identity: PublicKey, faults: ChainFaults, onSubmit: @escaping @Sendable (Submission) -> Void) {
        self.chain = chain
        self.identity = identity
        inner = chain.adapter(for: identity)
        self.faults = faults
        self.onSubmit = onSubmit
    }

    /// Ends this life: every later call fails, and the event stream ends.
    func kill() { alive.withLock { $0 = false } }

    private func admit(_ call: String) throws(SettlementError) {
        guard alive.withLock({ $0 }) else { throw .transport("the process crashed") }
        if faults.isDown { throw .transport("the chain endpoint is unreachable (simulated outage during \(call))") }
    }

    func domain() async throws(SettlementError) -> SettlementDomain {
        try admit("domain")
        return try await inner.domain()
    }

    func now() async throws(SettlementError) -> ChainTime {
        try admit("now")
        return try await inner.now()
    }

    func deposit(
        params: ChannelParams, opening: Allocation, participant: ParticipantIndex, amount: Amount
    ) async throws(SettlementError) -> [ChainEvent] {
        try admit("deposit")
        return try await inner.deposit(params: params, opening: opening, participant: participant, amount: amount)
    }

    func reclaim(_ channel: ChannelID) async throws(SettlementError) -> [ChainEvent] {
        try admit("reclaim")
        return try await inner.reclaim(channel)
    }

    func register(_ state: SignedState) async throws(SettlementError) -> [ChainEvent] {
        try admit("register")
        onSubmit(.register(state))
        return try await inner.register(state)
    }

    func progress(_ channel: ChannelID, to state: ChannelState, moverSignature: StateSignature) async throws(SettlementError)
        -> [ChainEvent]
    {
        try admit("progress")
        onSubmit(.progress(state, moverSignature))
        return try await inner.progress(channel, to: state, moverSignature: moverSignature)
    }

    func conclude(_ channel: ChannelID) async throws(SettlementError) -> [ChainEvent] {
        try admit("conclude")
        return try await inner.conclude(channel)
    }

    func withdraw(_ channel: ChannelID, participant: ParticipantIndex) async throws(SettlementError) -> [ChainEvent] {
        try admit("withdraw")
        return try await inner.withdraw(channel, participant: participant)
    }

    func channel(_ id: ChannelID) async throws(SettlementError) -> ChannelOnChain? {
        try admit("channel")
        return try await inner.channel(id)
    }

    func balance(of account: PublicKey) async throws(SettlementError) -> Amount {
        try admit("balance")
        return try await inner.balance(of: account)
    }

    /// The chain's events, ending (with `.transport`) when this life ends or an outage starts.
    func events(after sequence: UInt64) -> AsyncThrowingStream<ChainEvent, any Error> {
        let (stream, continuation) = AsyncThrowingStream<ChainEvent, any Error>.makeStream()
        do { try admit("events") } catch {
            continuation.finish(throwing: error)
            return stream
        }
        let source = inner.events(after: sequence)
        let task = Task { [alive, faults] in
            do {
                for try await event in source {
                    guard alive.withLock({ $0 }) else { throw SettlementError.transport("the process crashed") }
                    guard !faults.isDown else { throw SettlementError.transport("the chain endpoint is unreachable") }
                    continuation.yield(event)
                }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }
}

/// Chain faults the simulator switches on and off.
final class ChainFaults: Sendable {
    private let down = Locked(false)
    var isDown: Bool { down.withLock { $0 } }
    func set(down value: Bool) { down.withLock { $0 = value } }
}
