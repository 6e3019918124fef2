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

    private let adapter: any SettlementAdapter
    private let journal: Journal
    /// Polling, retries and funding timeouts (``NodeClock``; virtual under the simulator).
    private let time: any NodeClock
    private let logger: Logger
    /// Our registrations the chain took, by why we made them (Docs/Metrics.md).
    private let disputesStarted = Counter(label: "parley_disputes_started_total")
    private let refutationsSubmitted = Counter(label: "parley_refutations_submitted_total")
    private let sink: AsyncStream<WatcherEvent>.Continuation

    /// Reconciliation rounds per wake-up before yielding: each round follows a state change,
    /// so a handful always suffices; the cap only stops a misbehaving chain from spinning us.
    private static let maxRoundsPerWakeUp = 16

    private var started = false
    private var stopped = false
    private var subscription: Task<Void, Never>?
    private var clock: Task<Void, Never>?
    private var lastSequence: UInt64 = 0
    private var exitRequested: [ChannelID: ExitReason] = [:]
    private var deadlines: [ChannelID: ChainTime] = [:]
    private var reconciling: Set<ChannelID> = []
    private var dirty: Set<ChannelID> = []
    private var funded: Set<ChannelID> = []
    /// Channels with a deposit of ours submitted and not answered yet.
    private var depositing: Set<ChannelID> = []
    private var fundingWaiters: [ChannelID: [CheckedContinuation<Bool, Never>]] = [:]
    /// `fundInBackground` channels not funded yet, with when to give up on them (our clock).
    private var fundingDeadlines: [ChannelID: Duration] = [:]
    /// The chain time of each unfunded channel's first deposit (either seat's), from the
    /// chain's history. A channel is also given up once `fundingTimeout` of chain time has
    /// passed since then: the money on chain has waited that long, whenever this process
    /// started, so a restart does not extend the wait (issue 22, item 2).
    private var firstDepositAt: [ChannelID: ChainTime] = [:]
    private var closeWaiters: [ChannelID: [CheckedContinuation<Result<Void, WatcherError>, Never>]] = [:]
    private var silenceTimers: [ChannelID: Task<Void, Never>] = [:]
    private var notRefuting: Set<ChannelID> = []
    /// Deposits per seat, from the chain's `deposited` events, for journal channels not yet
    /// funded: at the `funded` event they tell, without a chain read, whether the channel
    /// was funded on the terms we agreed (the chain funds when deposits equal its opening).
    private var depositsSeen: [ChannelID: Allocation] = [:]

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

    /// Deposits our share of `opening` (unless already deposited) and returns once the chain
    /// shows the channel funded. If the other deposit does not arrive within
    /// `policy.fundingTimeout`, takes ours back and throws `.fundingTimedOut`.
    public func fund(_ params: ChannelParams, opening: Allocation) async throws(WatcherError) {
        let id = params.id
        if try await depositShare(params, opening: opening) { return }
        if await waitForFunding(id) { return }
        guard !stopped else { throw .stopped }
        // Not funded in time: the channel is given up (`abandonFunding`), whatever the reclaim did.
        let fundedAfterAll: Bool
        do { fundedAfterAll = try await reclaimUnfunded(id) } catch {
            abandonFunding(id)
            throw error
        }
        if fundedAfterAll { return }
        abandonFunding(id)
        throw .fundingTimedOut(id, after: policy.fundingTimeout)
    }

    /// Deposits our share of `opening` (unless already deposited) and returns without
    /// waiting for the peer's: the `.funded` event reports the channel funded. If that does
    /// not happen within `policy.fundingTimeout`, ours is taken back and `.failed` reported.
    ///
    /// No task waits meanwhile: the deadline is checked by the watcher's clock poll. (A
    /// task per channel waiting for funding kept that task's frames, ≈ 8 KB, for each of
    /// the channels a busy node was accepting: `parley bench`, Docs/Performance.md.)
    public func fundInBackground(_ params: ChannelParams, opening: Allocation) async throws(WatcherError) {
        let id = params.id
        if try await depositShare(params, opening: opening) { return }
        guard !funded.contains(id), !stopped else { return }
        fundingDeadlines[id] = time.now + policy.fundingTimeout
    }

    /// Whether the watcher has seen the channel funded on chain.
    public func isFunded(_ id: ChannelID) -> Bool {
        funded.contains(id)
    }

    /// Deposits what is missing of our share; true when the chain shows the channel funded.
    private func depositShare(_ params: ChannelParams, opening: Allocation) async throws(WatcherError) -> Bool {
        guard let me = params.index(of: identity) else { throw .notAParticipant(params.id) }
        let id = params.id
        do {
            let chain = try await adapter.channel(id)
            if try judge(chain, params, opening) { return true }
            let deposited = chain?.deposits[me] ?? 0
            if opening[me] > deposited {
                // Never into a channel we are leaving or have left: the exit would not wait
                // for it (`WatcherStep.decide` closes an unfunded channel holding nothing of
                // ours). Checked and marked in one turn of the actor, so no exit decision
                // falls between them.
                guard exitRequested[id] == nil, journal.channels[id]?.isClosed != true else { return false }
                depositing.insert(id)
                defer {
                    depositing.remove(id)
                    if exitRequested[id] != nil { Task { await self.reconcile(id) } }
                }
                try await adapter.deposit(params: params, opening: opening, participant: me, amount: opening[me] - deposited)
            }
            return try judge(try await adapter.channel(id), params, opening)
        } catch let error as WatcherError {
            throw error
        } catch let error as SettlementError {
            throw .chain(error)
        } catch {
            throw .chain(.transport("\(error)"))
        }
    }

    /// True (and the channel marked funded) when the chain shows it funded exactly as both
    /// journals agreed; throws `.fundingMismatch` when the chain's record can never match.
    /// The chain's own `isFunded` is not enough: the first depositor names the opening the
    /// chain records, and an attacker names a cheaper one (issue 15, item 2).
    private func judge(_ chain: ChannelOnChain?, _ params: ChannelParams, _ opening: Allocation) throws(WatcherError) -> Bool {
        switch chain.usability(params: params, opening: opening) {
        case .usable:
            markFunded(params.id)
            return true
        case .notFunded, .settling:
            // Settling: a dispute is open, so the channel takes no updates anyway; the
            // reconciliation of its dispute is what matters now, not funding.
            return false
        case let .mismatch(why):
            throw .fundingMismatch(params.id, why)
        }
    }

    /// The chain says "funded": reports it only if it is funded as both journals agreed.
    private func confirmFunding(_ id: ChannelID, _ record: ChannelRecord) async {
        do {
            if try judge(try await adapter.channel(id), record.params, record.funding) { emit(.funded(id)) }
        } catch let error as WatcherError {
            emit(.failed(id, "funding: \(error)"))
        } catch {
            emit(.failed(id, "funding: \(error)"))
        }
    }

    /// The funding deadline passed: takes our deposit back unless the channel got funded
    /// after all (then true).
    private func reclaimUnfunded(_ id: ChannelID) async throws(WatcherError) -> Bool {
        do {
            if try await markFundedIfUsable(id) { return true }
            try await adapter.reclaim(id)
        } catch .alreadyFunded {
            // The peer's deposit can land between the check above and the reclaim: look
            // again before calling the channel mismatched (a test forces that race). A chain
            // we cannot read now is a chain error (retried), never a mismatch.
            do { if try await markFundedIfUsable(id) { return true } } catch { throw .chain(error) }
            // Funded, but not as we agreed: never usable.
            throw .fundingMismatch(id, "the chain shows the channel funded on terms we did not agree")
        } catch .nothingToReclaim {
            // We had nothing in it (a zero opening share).
        } catch {
            throw .chain(error)
        }
        return false
    }

    /// Marks the channel funded when the chain holds it funded exactly as our journal agreed.
    private func markFundedIfUsable(_ id: ChannelID) async throws(SettlementError) -> Bool {
        guard let record = journal.channels[id],
            try await adapter.channel(id).usability(params: record.params, opening: record.funding) == .usable
        else { return false }
        markFunded(id)
        return true
    }

    /// A `fundInBackground` deadline passed: unless the channel got funded after all, the
    /// channel is given up (`abandonFunding`). That is an outcome, not an error: it is
    /// reported by the exit it starts (`exitStarted` with `.fundingTimedOut`, the console's
    /// `abandoned`), and only a reclaim that fails is an error.
    private func backgroundFundingTimedOut(_ id: ChannelID) async {
        do {
            if try await reclaimUnfunded(id) { return }
        } catch {
            emit(.failed(id, "funding: \(error)"))
        }
        abandonFunding(id)
    }

    /// Gives up a channel whose funding failed (timed out, or could not be made): it leaves
    /// through the chain like any exit, which for a channel never funded means our deposit
    /// back (if it is in) and then closed. Without this a channel whose funding failed stayed
    /// open at version 0 for ever, taking no updates (found by the simulator, issue 16).
    public func abandonFunding(_ id: ChannelID) {
        guard journal.channels[id]?.isClosed == false, !funded.contains(id) else { return }
        fundingDeadlines[id] = nil
        firstDepositAt[id] = nil
        if journal.channels[id]?.exit != .fundingTimedOut { emit(.abandoned(id)) }
        requestExit(id, reason: .fundingTimedOut)
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

    // MARK: - Following the chain

    private func follow() async {
        while !stopped, !Task.isCancelled {
            do {
                for try await event in adapter.events(after: lastSequence) {
                    await handle(event)
                    if stopped { return }
                }
                return  // the adapter ended the stream: it is shutting down
            } catch {
                logger.warning("chain event stream failed; resubscribing", metadata: ["error": "\(error)", "after": "\(lastSequence)"])
                do { try await time.sleep(for: policy.retryDelay) } catch { return }
            }
        }
    }

    private func handle(_ event: ChainEvent) async {
        lastSequence = max(lastSequence, event.sequence)
        let id = event.channel
        guard let record = journal.channels[id], !record.isClosed else { return }
        switch event.kind {
        case .funded:
            if depositsSeen.removeValue(forKey: id) == record.funding {
                // The deposits that made the chain call it funded are the ones we agreed, so
                // its opening is ours too (and nothing can be registered before funding).
                markFunded(id)
                emit(.funded(id))
            } else {
                // We did not see every deposit (some came before the channel was in our
                // journal), or they differ: judge the chain's snapshot, on a task of its own
                // since it reads the chain and this loop serves every channel.
                Task { await self.confirmFunding(id, record) }
            }
        case let .registered(version, deadline, by):
            // Our registration answering an earlier one is a refutation; the journal
            // entries all come from chain events, so a replay rebuilds the same history.
            // What we report about our own registrations also comes from here, not from the
            // call's answer: the chain event is the proof it happened, even when the answer
            // was lost or the call was retried.
            let ours = by == record.params.index(of: identity)
            let earlier = record.dispute?.registeredVersion
            let entry: DisputeEvent = ours && earlier != nil
                ? .refuted(version: version) : .registered(version: version, deadline: deadline.seconds)
            if await journalDispute(entry, id) {
                emit(.registered(id, version: version, deadline: deadline, by: by))
                if ours, let earlier {
                    emit(.refuted(id, stale: earlier, with: version))
                } else if ours, let reason = exitRequested[id] {
                    emit(.exitStarted(id, version: version, reason: reason))
                }
            }
        case let .progressed(version, deadline, mover):
            if await journalDispute(.progressed(version: version), id) {
                emit(.progressed(id, version: version, deadline: deadline, mover: mover))
            }
        case let .concluded(version, allocation):
            if await journalDispute(.concluded(version: version), id) {
                emit(.concluded(id, version: version, allocation: allocation))
            }
        case let .withdrawn(participant, amount):
            if participant == record.params.index(of: identity),
                await journalDispute(.withdrawn(amount: amount), id)
            {
                emit(.withdrawn(id, amount: amount))
            }
        case let .deposited(participant, _, total):
            if firstDepositAt[id] == nil, !funded.contains(id) { firstDepositAt[id] = event.time }
            var seen = depositsSeen[id] ?? Allocation(0, 0)
            seen[participant] = total
            depositsSeen[id] = seen
        case .reclaimed:
            depositsSeen[id] = nil  // the chain takes no more deposits: it will never be funded
        }
        // On a task of its own: the events of every channel go through this one loop, and
        // one channel's slow chain calls must not hold up another channel's refutation.
        Task { await self.reconcile(id) }
    }

    /// Reads chain time while windows we wait on are open, and looks again once one closes.
    private func watchClock() async {
        while !stopped, !Task.isCancelled {
            do { try await time.sleep(for: policy.clockPollInterval) } catch { return }
            if !fundingDeadlines.isEmpty {
                let now = time.now
                // Whole chain seconds, rounded up, plus one for the clock's granularity: the
                // chain deadline never comes before the timeout has really passed.
                let parts = policy.fundingTimeout.components
                let timeout = UInt64(max(parts.seconds, 0)) + (parts.attoseconds > 0 ? 1 : 0) + 1
                let chainNow = fundingDeadlines.keys.contains { firstDepositAt[$0] != nil } ? try? await adapter.now() : nil
                for (id, deadline) in fundingDeadlines {
                    // No addition: a chain reporting absurd times must not trap us.
                    let onChain = chainNow.map { chainNow in
                        firstDepositAt[id].map { chainNow.seconds >= $0.seconds && chainNow.seconds - $0.seconds >= timeout } ?? false
                    } ?? false
                    guard now >= deadline || onChain else { continue }
                    fundingDeadlines[id] = nil
                    Task { await self.backgroundFundingTimedOut(id) }
                }
            }
            guard !deadlines.isEmpty, let now = try? await adapter.now() else { continue }
            for (id, deadline) in deadlines where now >= deadline {
                deadlines[id] = nil
                await reconcile(id)
            }
        }
    }

    // MARK: - Acting

    /// Takes steps for `id` until there is nothing to do now. One reconciliation per channel
    /// runs at a time; a wake-up during it makes it look once more.
    private func reconcile(_ id: ChannelID) async {
        guard !stopped else { return }
        guard !reconciling.contains(id) else {
            dirty.insert(id)
            return
        }
        reconciling.insert(id)
        defer { reconciling.remove(id) }
        var rounds = 0
        var again = true
        while again, rounds < Self.maxRoundsPerWakeUp, !stopped {
            rounds += 1
            dirty.remove(id)
            guard let known = journal.channels[id], let me = known.params.index(of: identity) else { return }
            let step: WatcherStep
            do {
                let chain = try await adapter.channel(id)
                let now = try await adapter.now()
                // Read the journal after the chain: a state committed while we waited for the
                // chain must not be passed over for an older one.
                let record = journal.channels[id] ?? known
                step = WatcherStep.decide(
                    chain: chain, record: record, me: me, now: now, exitRequested: exitRequested[id] != nil,
                    refutes: !notRefuting.contains(id), depositInFlight: depositing.contains(id))
            } catch {
                retryLater(id, after: "\(error)")
                return
            }
            again = await perform(step, id: id, me: me) || dirty.contains(id)
        }
        // The cap was hit while things still moved: look again later rather than drop the wake-up.
        if again, !stopped { retryLater(id, after: "the channel was still changing after \(rounds) steps") }
    }

    /// Performs one step; true when the facts changed and the channel should be looked at again.
    private func perform(_ step: WatcherStep, id: ChannelID, me: ParticipantIndex) async -> Bool {
        switch step {
        case .idle:
            return false
        case let .waitUntil(deadline):
            deadlines[id] = deadline
            return false
        case let .register(state, reason):
            do {
                try await adapter.register(state)
                switch reason {
                case .refute: refutationsSubmitted.increment()
                case .exit: disputesStarted.increment()
                case .cooperativeClose: break
                }
            } catch {
                // Someone moved first (a higher registration, the window closed, …): look again.
                logger.info(
                    "registering refused", metadata: ["channel": "\(id.shortID)", "version": "\(state.version)", "error": "\(error)"])
                return !isTransport(error) || retryLater(id, after: "\(error)")
            }
            // `.refuted` and `.exitStarted` are reported when the chain's event arrives.
            return true
        case .conclude:
            do {
                try await adapter.conclude(id)
            } catch {
                return !isTransport(error) || retryLater(id, after: "\(error)")
            }
            return true
        case .withdraw:
            do {
                try await adapter.withdraw(id, participant: me)
            } catch {
                return !isTransport(error) || retryLater(id, after: "\(error)")
            }
            // The chain's `withdrawn` event journals it and closes the channel.
            return false
        case .reclaim:
            do {
                _ = try await reclaimUnfunded(id)
                return true
            } catch let .chain(error) where isTransport(error) {
                return retryLater(id, after: "\(error)")
            } catch {
                emit(.failed(id, "reclaiming the deposit of an unfunded channel: \(error)"))
                return false
            }
        case .markClosed:
            do {
                try await journal.append([JournalEntry(channelID: id, body: .closed)])
            } catch {
                return retryLater(id, after: "journal: \(error)")
            }
            exitRequested[id] = nil
            deadlines[id] = nil
            silenceTimers.removeValue(forKey: id)?.cancel()
            emit(.closed(id))
            for waiter in closeWaiters.removeValue(forKey: id) ?? [] { waiter.resume(returning: .success(())) }
            return false
        }
    }

    /// Decides to leave through the chain: journals the decision first (a restart resumes
    /// it, issue 15 item 5), then acts. A journal that fails does not stop the exit itself:
    /// it only registers states that are already durable.
    private func requestExit(_ id: ChannelID, reason: ExitReason) {
        guard !stopped, exitRequested[id] == nil else { return }
        exitRequested[id] = reason
        Task {
            if let record = self.journal.channels[id], record.exit == nil, !record.isClosed {
                do { try await self.journal.append([JournalEntry(channelID: id, body: .exitDecided(reason))]) } catch {
                    self.emit(.failed(id, "journaling the exit decision: \(error)"))
                }
            }
            await self.reconcile(id)
        }
    }

    private func disconnectGraceExpired(_ id: ChannelID) {
        guard silenceTimers.removeValue(forKey: id) != nil else { return }
        emit(.peerSilent(id))
        requestExit(id, reason: .peerDisconnected)
    }

    /// Reports a failure and looks at the channel again after `retryDelay`. Returns false
    /// (nothing changed yet).
    @discardableResult
    private func retryLater(_ id: ChannelID, after failure: String) -> Bool {
        emit(.failed(id, failure))
        logger.warning("retrying", metadata: ["channel": "\(id.shortID)", "error": "\(failure)"])
        let delay = policy.retryDelay
        Task {
            do { try await time.sleep(for: delay) } catch { return }
            await self.reconcile(id)
        }
        return false
    }

    private func isTransport(_ error: SettlementError) -> Bool {
        if case .transport = error { return true }
        return false
    }

    private func markFunded(_ id: ChannelID) {
        funded.insert(id)
        fundingDeadlines[id] = nil
        firstDepositAt[id] = nil
        for waiter in fundingWaiters.removeValue(forKey: id) ?? [] { waiter.resume(returning: true) }
    }

    /// True once funded, false when `fundingTimeout` passes first or the watcher stops.
    private func waitForFunding(_ id: ChannelID) async -> Bool {
        if funded.contains(id) { return true }
        guard !stopped else { return false }
        let timeout = policy.fundingTimeout
        let timer = Task {
            do { try await time.sleep(for: timeout) } catch { return }
            self.fundingTimedOut(id)
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { continuation in
            fundingWaiters[id, default: []].append(continuation)
        }
    }

    private func fundingTimedOut(_ id: ChannelID) {
        for waiter in fundingWaiters.removeValue(forKey: id) ?? [] { waiter.resume(returning: false) }
    }

    /// Journals `event` unless the journal already holds it or something later (replaying
    /// the chain's history after a restart must not write the same dispute twice).
    /// True when it was new.
    private func journalDispute(_ event: DisputeEvent, _ id: ChannelID) async -> Bool {
        guard let record = journal.channels[id], !record.isClosed else { return false }
        if let last = record.dispute, !event.isAfter(last) { return false }
        do {
            try await journal.append([JournalEntry(channelID: id, body: .dispute(event))])
            return true
        } catch {
            emit(.failed(id, "journal: \(error)"))
            return false
        }
    }

    private func emit(_ event: WatcherEvent) {
        sink.yield(event)
    }
}

extension DisputeEvent {
    /// Disputes move forward: registrations and refutations by version, then progress,
    /// conclusion and withdrawal.
    fileprivate var order: (stage: Int, version: UInt64) {
        switch self {
        case let .registered(version, _): (1, version)
        case let .refuted(version): (1, version)
        case let .progressed(version): (2, version)
        case let .concluded(version): (3, version)
        case .withdrawn: (4, 0)
        }
    }

    /// The version a registration or refutation put on chain.
    fileprivate var registeredVersion: UInt64? {
        switch self {
        case let .registered(version, _), let .refuted(version): version
        default: nil
        }
    }

    fileprivate func isAfter(_ other: DisputeEvent) -> Bool {
        order.stage != other.order.stage ? order.stage > other.order.stage : order.version > other.order.version
    }
}
