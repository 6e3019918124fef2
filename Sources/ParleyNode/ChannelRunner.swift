import Logging
import Synchronization
import ParleyChannel
import ParleyCrypto
import ParleyJournal
import ParleySettlement
import ParleyTransport
import ParleyWire
import ParleyLocks

/// What a runner needs from its node; closures so the runner never hops to the node actor
/// on the hot path. One per node, shared by all its runners: a class, because a copy in
/// every runner (the node's policy, its logger, ten closures and their captures) cost
/// ≈ 800 bytes per idle channel (Docs/Performance.md, step 10).
final class RunnerContext: Sendable {
    let policy: NodePolicy
    let adapter: any SettlementAdapter
    let watcher: Watcher
    let logger: Logger
    let emit: @Sendable (NodeEvent) -> Void
    let updateHandler: @Sendable () -> UpdateHandlerBox
    /// Drill switch: when true we neither send nor accept anything on the peer link.
    let isSilent: @Sendable () -> Bool
    /// Signs with the node's key (for deliberately malformed proposals only).
    let sign: @Sendable (ChannelParams, ChannelState) -> StateSignature
    /// The node's proposal and turn timers.
    let deadlines: Deadlines<TimerFire>
    /// The node's clock and randomness (retry delays and their jitter).
    let clock: any NodeClock
    let random: any NodeRandom
    /// Drill switch: true when this final proposal was countersigned in secret and must be
    /// answered "declined" (`Node.setHoldingDeclinedFinals`).
    let holdFinal: @Sendable (IncomingProposal, ChannelParams) -> Bool
    /// Makes sure our deposit is in and the chain is watched until the channel is funded
    /// (idempotent). Runners ask whenever their channel is fully signed and not yet funded:
    /// level-triggered, so a channel whose opening completes late (after a crash, on a
    /// resent proposal) is funded too (issue 15, item 7).
    let fund: @Sendable (ChannelParams, Allocation) -> Void
    /// The node's metrics (Docs/Metrics.md).
    let metrics: NodeMetrics
    /// How many of the node's channels have work (a drain task) right now.
    let activity: RunnerActivity

    init(
        policy: NodePolicy, adapter: any SettlementAdapter, watcher: Watcher, logger: Logger,
        emit: @escaping @Sendable (NodeEvent) -> Void, updateHandler: @escaping @Sendable () -> UpdateHandlerBox,
        isSilent: @escaping @Sendable () -> Bool, sign: @escaping @Sendable (ChannelParams, ChannelState) -> StateSignature,
        deadlines: Deadlines<TimerFire>, clock: any NodeClock, random: any NodeRandom,
        holdFinal: @escaping @Sendable (IncomingProposal, ChannelParams) -> Bool,
        fund: @escaping @Sendable (ChannelParams, Allocation) -> Void, metrics: NodeMetrics, activity: RunnerActivity
    ) {
        self.policy = policy
        self.adapter = adapter
        self.watcher = watcher
        self.logger = logger
        self.emit = emit
        self.updateHandler = updateHandler
        self.isSilent = isSilent
        self.sign = sign
        self.deadlines = deadlines
        self.clock = clock
        self.random = random
        self.holdFinal = holdFinal
        self.fund = fund
        self.metrics = metrics
        self.activity = activity
    }
}

/// How many of a node's channels have work right now: a drain task started and not yet
/// back at rest. The node's journal lets a channel commit its own record on its own thread
/// only while this is one (Docs/Journal.md, "A lone appender commits on its own thread").
final class RunnerActivity: Sendable {
    private let busy = Atomic<Int>(0)

    var busyChannels: Int { busy.load(ordering: .relaxed) }
    func started() { busy.add(1, ordering: .relaxed) }
    func finished() { busy.subtract(1, ordering: .relaxed) }
}

/// Drives one channel. It alone owns the channel's `JournaledEngine`: every input goes
/// through one mailbox and is handled to the end — journal appended and fsync'd, messages
/// sent, handler asked — before the next one, so no two inputs ever race on the engine.
///
/// No task lives while the channel is idle. The loop state rests in the mailbox; the first
/// input into an empty mailbox takes it out and starts a task that handles inputs until
/// the mailbox is empty, puts the state back and ends. A long-lived task per channel cost
/// ≈ 18 KB of task-allocator slabs per idle channel (a task keeps the slabs of its deepest
/// call chain until it ends), which is most of what a channel cost before
/// (Docs/Performance.md).
final class ChannelRunner: Sendable {
    enum Input: Sendable {
        case engine(EngineInput)
        /// A message from the peer on the session identified by `via`.
        case received(ChannelMessage, via: ObjectIdentifier)
        case attach(any MessageLink)
        case detach(ObjectIdentifier)
        case request(Request, CheckedContinuation<SignedState, any Error>)
        case perform([Effect])
        case awaitOpened(CheckedContinuation<Void, Never>)
        /// The chain shows the channel funded; resumes the waiter (if any) once the status shows it.
        case funded(CheckedContinuation<Void, Never>?)
        /// A dispute is on chain (or our watcher started one): no more updates.
        case closing(ClosingReason)
        case closed
        case tamper(Tampering, CheckedContinuation<UInt64, any Error>)
        /// The peer has not moved for the turn timeout since version `version` (its turn).
        case turnTimedOut(UInt64)
        /// The wait that started as wait number `generation` (reestablish, or queued updates
        /// while the link is down) is over: the peer did not answer in time.
        case waitTimedOut(generation: UInt64)
        /// The progress deadline armed as number `generation` passed: our updates waited that
        /// long without one of them committing.
        case progressTimedOut(generation: UInt64)
        /// Sign `state`, a move on chain from `base`, through the journal (see `signForChain`).
        case signForChain(ChannelState, base: ChannelState, CheckedContinuation<(ChannelState, StateSignature), any Error>)
        case stop(CheckedContinuation<Void, Never>)
    }

    enum Request: Sendable {
        case intent(UpdateIntent)
        /// Built from the latest state when it reaches the runner.
        case change(@Sendable (inout ChannelState) throws -> Void)
    }

    let id: ChannelID
    let peer: PublicKey
    let me: ParticipantIndex
    let params: ChannelParams
    private let mailbox: Locked<Mailbox>
    private let snapshot: StatusBox
    private let activity: RunnerActivity

    /// Inputs waiting, and the loop state while no task runs it.
    private struct Mailbox: Sendable {
        var queue: [Input] = []
        /// Nil while a task runs the loop, and for good once the runner stopped.
        var resting: RunnerLoop?
        var stopped = false
    }

    init(
        engine: JournaledEngine, funding: Allocation, session: (any MessageLink)?, funded: Bool,
        closing: ClosingReason?, closed: Bool, settlingOnChain: Bool = false, context: RunnerContext
    ) {
        let core = engine.engine
        id = core.channelID
        me = core.me
        params = core.params
        peer = core.params[core.me.peer]
        let initial = ChannelStatus(
            id: id, peer: peer, me: me, latest: core.latest, phase: core.phase, isFunded: funded,
            closingReason: closing ?? (core.latest.state.isFinal ? .finalState : nil), isClosed: closed,
            isConnected: session != nil)
        snapshot = StatusBox(initial)
        mailbox = Locked(Mailbox())
        activity = context.activity
        let loop = RunnerLoop(
            engine: engine, funding: funding, session: session, status: initial, published: snapshot,
            context: context, inputs: RunnerHandle(runner: self))
        loop.settlingOnChain = settlingOnChain
        mailbox.withLock { $0.resting = loop }
    }

    var status: ChannelStatus { snapshot.withLock { $0 } }

    func post(_ input: Input) {
        enum Outcome { case queued, late, start(RunnerLoop) }
        let outcome = mailbox.withLock { box -> Outcome in
            guard !box.stopped else { return .late }
            box.queue.append(input)
            guard let loop = box.resting else { return .queued }
            box.resting = nil
            return .start(loop)
        }
        switch outcome {
        case .queued: break
        case .late: failLate(input)
        case let .start(loop):
            activity.started()
            Task { await self.drain(loop) }
        }
    }

    /// Handles inputs until none is waiting, then puts the loop state back to rest.
    private func drain(_ initial: RunnerLoop) async {
        defer { activity.finished() }
        let loop = initial
        while true {
            let batch = mailbox.withLock { box -> [Input] in
                if box.queue.isEmpty {
                    box.resting = loop
                    return []
                }
                defer { box.queue = [] }
                return box.queue
            }
            if batch.isEmpty { return }
            for (index, input) in batch.enumerated() {
                await loop.handle(input)
                loop.refreshStatus()
                loop.armTurnTimer()
                loop.armWaitTimer()
                loop.armProgressTimer()
                loop.fundIfNeeded()
                if loop.isStopping {
                    let late = mailbox.withLock { box -> [Input] in
                        box.stopped = true
                        defer { box.queue = [] }
                        return box.queue
                    }
                    loop.finish()
                    for input in batch[(index + 1)...] + late { failLate(input) }
                    return
                }
            }
        }
    }

    /// An input posted after the runner stopped: release whoever waits on it.
    private func failLate(_ input: Input) {
        switch input {
        case let .request(_, waiter): waiter.resume(throwing: NodeError.stopped)
        case let .awaitOpened(waiter): waiter.resume()
        case let .stop(waiter): waiter.resume()
        case let .tamper(_, waiter): waiter.resume(throwing: NodeError.stopped)
        case let .funded(waiter?): waiter.resume()
        case let .signForChain(_, _, waiter): waiter.resume(throwing: NodeError.stopped)
        default: break
        }
    }

    func request(_ request: Request) async throws -> SignedState {
        try await withCheckedThrowingContinuation { post(.request(request, $0)) }
    }

    /// Our move on chain from `base` and our signature on it, journaled first at a version we
    /// never signed before. If we already signed another state at that version (our
    /// off-chain proposal of a move, still in flight), that state is the move when it is a
    /// legal one from `base`: its signature is reused and nothing is signed twice. Throws
    /// `UpdateRejection.versionAlreadySigned` otherwise.
    func signForChain(_ state: ChannelState, from base: ChannelState) async throws -> (ChannelState, StateSignature) {
        try await withCheckedThrowingContinuation { post(.signForChain(state, base: base, $0)) }
    }

    /// Sends a deliberately malformed proposal; returns the version it carries.
    func tamper(_ kind: Tampering) async throws -> UInt64 {
        try await withCheckedThrowingContinuation { post(.tamper(kind, $0)) }
    }

    /// Marks the channel funded; returns once `status` shows it.
    func markFunded() async {
        await withCheckedContinuation { post(.funded($0)) }
    }

    func waitUntilOpened() async {
        await withCheckedContinuation { post(.awaitOpened($0)) }
    }

    func stop() async {
        await withCheckedContinuation { post(.stop($0)) }
    }
}

/// The latest status, readable from any thread without waiting for the runner. The lock
/// itself, not a class around it: one object per channel fewer (Docs/Performance.md, step 10).
typealias StatusBox = Locked<ChannelStatus>

extension ChannelStatus {
    /// A copy with what changed; a closing reason is kept once set (the first cause wins).
    func with(funded: Bool? = nil, closing: ClosingReason? = nil, closed: Bool? = nil) -> ChannelStatus {
        ChannelStatus(
            id: id, peer: peer, me: me, latest: latest, phase: phase, isFunded: funded ?? isFunded,
            closingReason: closingReason ?? closing, isClosed: closed ?? isClosed, isConnected: isConnected)
    }
}

/// A weak way back to a runner, for timers: a timer that fires after the runner is gone
/// does nothing.
struct RunnerHandle: Sendable {
    weak let runner: ChannelRunner?

    func post(_ input: ChannelRunner.Input) {
        runner?.post(input)
    }
}
