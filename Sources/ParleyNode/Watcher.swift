import Logging
import Metrics
import ParleyChannel
import ParleyCrypto
import ParleyJournal
import ParleySettlement

/// Guards one node's channels on chain.
///
/// The watcher follows the chain's events for the channels in the node's journal and,
/// using the newest fully-signed state *in the journal* (so it only ever acts on durable
/// states, invariant 2):
/// - refutes a registration older than that state while the window is open (invariant 4);
/// - registers that state itself when asked to exit — by `dispute`, or on its own when the
///   peer is silent and the policy says so — then concludes once the window has closed
///   and withdraws (invariant 5);
/// - after a cooperative final state, registers it (which concludes at once) and withdraws;
/// - funds channels and takes a deposit back when the other one never comes.
///
/// Every decision is recomputed from the chain's current snapshot and the journal
/// (`WatcherStep.decide`), so replaying the chain's whole event history after a restart
/// resumes every dispute that was in flight, and duplicated or missed wake-ups are harmless.
/// What it saw is journaled as `.dispute` entries, written only while handling chain
/// events (one at a time, in chain order, skipping anything the journal already holds),
/// and `.closed` at the end; everything is also reported through `events`.
public actor Watcher {
    /// Our key: the seat we act for in every channel.
    public nonisolated let identity: PublicKey
    public nonisolated let policy: WatcherPolicy
    /// What the watcher saw and did, in order. One consumer; unconsumed events are buffered.
    public nonisolated let events: AsyncStream<WatcherEvent>

    let adapter: any SettlementAdapter
    let journal: Journal
    /// Polling, retries and funding timeouts (``NodeClock``; virtual under the simulator).
    let time: any NodeClock
    let logger: Logger
    /// Our registrations the chain took, by why we made them (Docs/Metrics.md).
    let disputesStarted = Counter(label: "parley_disputes_started_total")
    let refutationsSubmitted = Counter(label: "parley_refutations_submitted_total")
    let sink: AsyncStream<WatcherEvent>.Continuation

    /// Reconciliation rounds per wake-up before yielding: each round follows a state change,
    /// so a handful always suffices; the cap only stops a misbehaving chain from spinning us.
    static let maxRoundsPerWakeUp = 16

    var started = false
    var stopped = false
    var subscription: Task<Void, Never>?
    var clock: Task<Void, Never>?
    var lastSequence: UInt64 = 0
    var exitRequested: [ChannelID: ExitReason] = [:]
    var deadlines: [ChannelID: ChainTime] = [:]
    var reconciling: Set<ChannelID> = []
    var dirty: Set<ChannelID> = []
    var funded: Set<ChannelID> = []
    /// Channels with a deposit of ours submitted and not answered yet.
    var depositing: Set<ChannelID> = []
    var fundingWaiters: [ChannelID: [CheckedContinuation<Bool, Never>]] = [:]
    /// `fundInBackground` channels not funded yet, with when to give up on them (our clock).
    var fundingDeadlines: [ChannelID: Duration] = [:]
    /// The chain time of each unfunded channel's first deposit (either seat's), from the
    /// chain's history. A channel is also given up once `fundingTimeout` of chain time has
    /// passed since then: the money on chain has waited that long, whenever this process
    /// started, so a restart does not extend the wait (issue 22, item 2).
    var firstDepositAt: [ChannelID: ChainTime] = [:]
    var closeWaiters: [ChannelID: [CheckedContinuation<Result<Void, WatcherError>, Never>]] = [:]
    var silenceTimers: [ChannelID: Task<Void, Never>] = [:]
    var notRefuting: Set<ChannelID> = []
    /// Deposits per seat, from the chain's `deposited` events, for journal channels not yet
    /// funded: at the `funded` event they tell, without a chain read, whether the channel
    /// was funded on the terms we agreed (the chain funds when deposits equal its opening).
    var depositsSeen: [ChannelID: Allocation] = [:]

    public init(
        identity: PublicKey, adapter: any SettlementAdapter, journal: Journal,
        policy: WatcherPolicy = WatcherPolicy(), logger: Logger = Logger(label: "parley.watcher"),
        clock: any NodeClock = SystemClock()
    ) {
        self.identity = identity
        time = clock
        self.adapter = adapter
        self.journal = journal
        self.policy = policy
        self.logger = logger
        (events, sink) = AsyncStream<WatcherEvent>.makeStream()
    }

    /// Subscribes to the chain from its first event and looks at every open channel in the
    /// journal. Safe to call once; later calls do nothing.
    public func start() {
        guard !started, !stopped else { return }
        started = true
        subscription = Task { await self.follow() }
        clock = Task { await self.watchClock() }
        for (id, record) in journal.channels where !record.isClosed {
            // An exit decided before a restart is resumed (it was journaled before it was acted on).
            if let reason = record.exit { exitRequested[id] = reason }
            Task { await self.reconcile(id) }
        }
    }

    /// Stops following the chain. Waiters in `fund` and `waitUntilClosed` are released
    /// (`waitUntilClosed` throws `.stopped`). On-chain work already submitted stays done;
    /// a new watcher on the same journal picks up where this one stopped.
    public func stop() async {
        guard !stopped else { return }
        stopped = true
        subscription?.cancel()
        clock?.cancel()
        for timer in silenceTimers.values { timer.cancel() }
        silenceTimers = [:]
        for waiters in fundingWaiters.values { waiters.forEach { $0.resume(returning: false) } }
        fundingWaiters = [:]
        for waiters in closeWaiters.values { waiters.forEach { $0.resume(returning: .failure(.stopped)) } }
        closeWaiters = [:]
        await subscription?.value
        await clock?.value
        sink.finish()
    }

    // MARK: - What the node tells the watcher

    /// Whether the watcher has seen the channel funded on chain.
    public func isFunded(_ id: ChannelID) -> Bool {
        funded.contains(id)
    }

    /// Leave the channel through the chain: register our newest fully-signed state, wait
    /// out the window, conclude and withdraw. Returns at once; follow `events` or call
    /// `waitUntilClosed`.
    public func dispute(_ id: ChannelID) {
        requestExit(id, reason: .requested)
    }

    /// Our proposal got no answer in time. Reported as `.peerSilent`; with
    /// `disputeOnSilence` the exit starts at once.
    public func peerUnresponsive(_ id: ChannelID) {
        emit(.peerSilent(id))
        if policy.disputeOnSilence { requestExit(id, reason: .peerUnresponsive) }
    }

    /// The session to the peer ended. If it stays down for `disconnectGrace` while we have
    /// funds in the channel, and the policy allows, the exit starts.
    public func peerDisconnected(_ id: ChannelID) {
        guard policy.disputeOnSilence, silenceTimers[id] == nil, !stopped else { return }
        guard let record = journal.channels[id], !record.isClosed, let me = record.params.index(of: identity),
            record.latest.isFullySigned, record.latest.state.allocation[me] > 0
        else { return }
        let grace = policy.disconnectGrace
        silenceTimers[id] = Task {
            do { try await time.sleep(for: grace) } catch { return }
            self.disconnectGraceExpired(id)
        }
    }

    /// The session is back: the pending disconnect exit, if any, is called off.
    public func peerReconnected(_ id: ChannelID) {
        silenceTimers.removeValue(forKey: id)?.cancel()
    }

    /// A final state was journaled (cooperative close): register it, which concludes at
    /// once, and withdraw.
    public func settle(_ id: ChannelID) {
        Task { await self.reconcile(id) }
    }

    /// Drill switch: from now on, do not refute registrations on this channel (still
    /// conclude and withdraw). For a node that registers an old state on purpose, so that
    /// the *other* side's watcher is the one that answers it. Never use it to guard money.
    public func stopRefuting(_ id: ChannelID) {
        notRefuting.insert(id)
    }

    /// Returns once the channel is closed in the journal: our payout withdrawn, or nothing
    /// left for us.
    public func waitUntilClosed(_ id: ChannelID) async throws(WatcherError) {
        guard let record = journal.channels[id] else { throw .unknownChannel(id) }
        if record.isClosed { return }
        guard !stopped else { throw .stopped }
        let result = await withCheckedContinuation { continuation in
            closeWaiters[id, default: []].append(continuation)
        }
        try result.get()
    }

}

extension DisputeEvent {
    /// Disputes move forward: registrations and refutations by version, then progress,
    /// conclusion and withdrawal.
    var order: (stage: Int, version: UInt64) {
        switch self {
        case let .registered(version, _): (1, version)
        case let .refuted(version): (1, version)
        case let .progressed(version): (2, version)
        case let .concluded(version): (3, version)
        case .withdrawn: (4, 0)
        }
    }

    /// The version a registration or refutation put on chain.
    var registeredVersion: UInt64? {
        switch self {
        case let .registered(version, _), let .refuted(version): version
        default: nil
        }
    }

    func isAfter(_ other: DisputeEvent) -> Bool {
        order.stage != other.order.stage ? order.stage > other.order.stage : order.version > other.order.version
    }
}
