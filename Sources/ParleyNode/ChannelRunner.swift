import Logging
import ParleyChannel
import ParleyCrypto
import ParleyJournal
import ParleySettlement
import ParleyTransport
import ParleyWire
import ParleyLocks

/// What a runner needs from its node; closures so the runner never hops to the node actor
/// on the hot path.
struct RunnerContext: Sendable {
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

    /// Inputs waiting, and the loop state while no task runs it.
    private struct Mailbox: Sendable {
        var queue: [Input] = []
        /// Nil while a task runs the loop, and for good once the runner stopped.
        var resting: RunnerLoop?
        var stopped = false
    }

    init(
        engine: JournaledEngine, rules: any AppRules, funding: Allocation, session: (any MessageLink)?, funded: Bool,
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
        let loop = RunnerLoop(
            engine: engine, rules: rules, funding: funding, session: session, status: initial, published: snapshot,
            context: context, inputs: RunnerHandle(runner: self))
        loop.settlingOnChain = settlingOnChain
        mailbox.withLock { $0.resting = loop }
    }

    var status: ChannelStatus { snapshot.value.withLock { $0 } }

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
        case let .start(loop): Task { await self.drain(loop) }
        }
    }

    /// Handles inputs until none is waiting, then puts the loop state back to rest.
    private func drain(_ initial: RunnerLoop) async {
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

/// The latest status, readable from any thread without waiting for the runner.
final class StatusBox: Sendable {
    let value: Locked<ChannelStatus>
    init(_ status: ChannelStatus) { value = Locked(status) }
}

/// The runner's state and its input handling. Confined to one task at a time: the task
/// that took it out of the runner's mailbox (under the mailbox lock, which orders one
/// task's last access before the next task's first). A class, so handing it over is one
/// reference, not a copy of every field.
private final class RunnerLoop: @unchecked Sendable {
    var engine: JournaledEngine
    let rules: any AppRules
    /// The opening allocation both journals agreed (what the chain must show funded).
    let funding: Allocation
    /// We asked the node to fund this channel (it does so once; see `fundIfNeeded`).
    var fundingRequested = false
    /// The wait on the peer a deadline is armed for (`armWaitTimer`), by generation.
    var waitTimer: (generation: UInt64, kind: WaitKind)?
    var nextWaitGeneration: UInt64 = 0
    /// The progress deadline armed (`armProgressTimer`), by generation.
    var progressTimer: UInt64?
    var nextProgressGeneration: UInt64 = 0
    var session: (any MessageLink)?
    /// The version the turn timer is armed for, while it is the peer's turn in a game
    /// (see `NodePolicy.turnTimeout`).
    var turnTimer: UInt64?
    var status: ChannelStatus
    /// The `parley_channels` bucket this channel is counted in.
    var countedBucket: NodeMetrics.ChannelBucket
    /// Where `status` is published for readers on other threads.
    let published: StatusBox
    let context: RunnerContext
    /// Where timers post their inputs back (weak: the loop state lives in the runner).
    let inputs: RunnerHandle

    var waiters: [UpdateID: CheckedContinuation<SignedState, any Error>] = [:]
    var openWaiters: [CheckedContinuation<Void, Never>] = []
    var nextUpdate: UpdateID = 1
    /// The version our one outstanding proposal timer is armed for.
    var timer: UInt64?
    var retry: Task<Void, Never>?
    var stopWaiters: [CheckedContinuation<Void, Never>] = []
    /// The two newest fully-signed states we have seen (a `replay` tampering resends the older).
    var recentCommitted: [SignedState] = []
    /// A state is registered on chain (or the journal holds a dispute): the chain settles the
    /// channel now, and nothing more is signed, final states included. A state committed
    /// from here on might never reach the chain before the window closes, and the node
    /// would have reported a commitment it cannot honour (found by the simulator, issue 16).
    var settlingOnChain = false

    var id: ChannelID { status.id }

    init(
        engine: JournaledEngine, rules: any AppRules, funding: Allocation, session: (any MessageLink)?, status: ChannelStatus,
        published: StatusBox, context: RunnerContext, inputs: RunnerHandle
    ) {
        self.engine = engine
        self.rules = rules
        self.funding = funding
        self.session = session
        self.status = status
        self.published = published
        self.context = context
        self.inputs = inputs
        countedBucket = status.metricsBucket
        context.metrics.channelMoved(from: nil, to: countedBucket)
        if engine.engine.latest.isFullySigned { recentCommitted = [engine.engine.latest] }
    }

    var isStopping: Bool { !stopWaiters.isEmpty }

    /// Ends the runner: timers disarmed, every waiter released.
    func finish() {
        context.deadlines.disarm(.init(channel: id, kind: .proposal))
        context.deadlines.disarm(.init(channel: id, kind: .turn))
        context.deadlines.disarm(.init(channel: id, kind: .wait))
        context.deadlines.disarm(.init(channel: id, kind: .progress))
        timer = nil
        turnTimer = nil
        waitTimer = nil
        progressTimer = nil
        retry?.cancel()
        for waiter in waiters.values { waiter.resume(throwing: NodeError.stopped) }
        waiters = [:]
        for waiter in openWaiters { waiter.resume() }
        openWaiters = []
        for waiter in stopWaiters { waiter.resume() }
    }

    /// Recomputes and publishes the status. Called after every input and before any waiter
    /// is resumed, so a caller that wakes up reads a status at least as new as its result.
    func refreshStatus() {
        let core = engine.engine
        status = ChannelStatus(
            id: status.id, peer: status.peer, me: status.me, latest: core.latest, phase: core.phase,
            isFunded: status.isFunded,
            closingReason: status.closingReason ?? (core.latest.state.isFinal ? .finalState : nil),
            isClosed: status.isClosed, isConnected: session != nil)
        let current = status
        published.value.withLock { $0 = current }
        let bucket = current.metricsBucket
        if bucket != countedBucket {
            context.metrics.channelMoved(from: countedBucket, to: bucket)
            countedBucket = bucket
        }
    }

    func handle(_ input: ChannelRunner.Input) async {
        switch input {
        case let .engine(engineInput):
            await feed(engineInput)
        case let .received(message, via):
            guard let session, ObjectIdentifier(session) == via, !context.isSilent() else { return }
            await feed(.received(message))
        case let .attach(new):
            if let session, session === new { return }
            session = new
            // Whatever the engine believed about the old link, it is gone: a fresh engine
            // (link up, but created without a session) and one on a replaced session both
            // go down first, so `.connected` always restarts the open handshake or reestablish.
            // `.disconnected` on an engine that is already down changes nothing.
            await feed(.disconnected)
            await context.watcher.peerReconnected(id)
            await feed(.connected)
        case let .detach(gone):
            guard let current = session, ObjectIdentifier(current) == gone else { return }
            session = nil
            await feed(.disconnected)
            if status.isClosed {
                // A closed channel is never reestablished: nothing more will answer a waiter.
                failWaiters(except: nil)
            } else {
                await context.watcher.peerDisconnected(id)
            }
        case let .request(request, waiter):
            await submit(request, waiter)
        case let .perform(effects):
            await perform(effects)
        case let .awaitOpened(waiter):
            refreshStatus()
            if engine.engine.phase == .opening { openWaiters.append(waiter) } else { waiter.resume() }
        case let .funded(waiter):
            status = status.with(funded: true)
            refreshStatus()
            waiter?.resume()
        case let .closing(reason):
            status = status.with(closing: reason)
            switch reason {
            case .registeredOnChain, .progressedOnChain, .disputeInJournal:
                guard !settlingOnChain else { break }
                settlingOnChain = true
                // Updates not proposed yet never will be: the chain settles the channel now.
                await feed(.dropQueued)
            default: break
            }
        case .closed:
            status = status.with(closing: .closed, closed: true)
            // Our cooperative close can be reported closed before its accept arrives: the
            // peer journals the final state and sends the accept, then its watcher registers
            // it, and that registration (which concludes at once) can reach our watcher
            // before our loop thread reads the accept. The accept is on its way, so `close()`
            // keeps waiting for it; a lost session still releases it (`.detach`).
            let closeInFlight = session == nil
                ? nil : engine.engine.outstandingProposal.flatMap { $0.state.isFinal ? $0.update : nil }
            failWaiters(except: closeInFlight)
        case let .stop(waiter):
            stopWaiters.append(waiter)
        case let .turnTimedOut(version):
            let core = engine.engine
            guard turnTimer == version, core.latest.version == version, !status.isClosing else { return }
            turnTimer = nil
            context.logger.warning(
                "the peer did not move in time",
                metadata: ["channel": "\(id.shortID)", "timeout": "\(context.policy.turnTimeout.map { "\($0)" } ?? "-")"])
            if context.policy.watcher.disputeOnSilence { status = status.with(closing: .peerUnresponsive) }
            await context.watcher.peerUnresponsive(id)
        case let .tamper(kind, waiter):
            do { waiter.resume(returning: try await tamper(kind)) } catch { waiter.resume(throwing: error) }
        case let .waitTimedOut(generation):
            await waitTimedOut(generation)
        case let .progressTimedOut(generation):
            await progressTimedOut(generation)
        case let .signForChain(state, base, waiter):
            do { waiter.resume(returning: try await signForChain(state, from: base)) } catch { waiter.resume(throwing: error) }
        }
    }

    private func signForChain(_ state: ChannelState, from base: ChannelState) async throws -> (ChannelState, StateSignature) {
        do {
            return (state, try await engine.signForChain(state))
        } catch UpdateRejection.versionAlreadySigned(let version) {
            // We signed another state at that version: our proposal there (in flight, or
            // burned since). When it is a legal move from `base`, it is the move we make.
            let me = engine.engine.me
            let signed = [engine.engine.outstandingProposal?.state, engine.engine.signedNext?.state].compactMap { $0 }
            guard let pending = signed.first(where: {
                $0.version == version && !$0.isFinal && (try? rules.validateTransition(from: base, to: $0, mover: me)) != nil
            }) else { throw UpdateRejection.versionAlreadySigned(version) }
            return (pending, try await engine.signForChain(pending))
        }
    }

    /// Asks the node to fund the channel once it is fully signed, unless it is funded,
    /// closing or closed. Called after every input, so however the opening completed —
    /// `open()`, an incoming proposal, a resent proposal after a crash, recovery — the
    /// funding step follows from the state, not from the code path.
    func fundIfNeeded() {
        guard !fundingRequested, !status.isFunded, !status.isClosing, !status.isClosed,
            engine.engine.latest.isFullySigned
        else { return }
        fundingRequested = true
        context.fund(engine.engine.params, funding)
    }

    enum WaitKind: Equatable {
        /// Connected, waiting for the peer's `reestablish` or its commit proof.
        case resync
        /// Updates are waiting while the link is down.
        case reconnect
    }

    /// Keeps one deadline armed while we wait on the peer without a proposal timer: for its
    /// `reestablish` (and commit proof) after a reconnect, and for a link to come back while
    /// updates wait. Every wait on the peer ends (Docs/Protocol.md invariant 9, issue 15 item 6).
    func armWaitTimer() {
        let phase = engine.engine.phase
        let kind: WaitKind? =
            status.isClosed ? nil
            : phase == .syncing ? .resync
            : phase == .offline && (!waiters.isEmpty || engine.engine.queuedUpdates > 0) ? .reconnect
            : nil
        let key = Deadlines<TimerFire>.Key(channel: id, kind: .wait)
        guard let kind else {
            if waitTimer != nil { context.deadlines.disarm(key) }
            waitTimer = nil
            return
        }
        guard waitTimer?.kind != kind else { return }
        nextWaitGeneration += 1
        waitTimer = (nextWaitGeneration, kind)
        context.deadlines.arm(
            key, after: context.policy.proposalTimeout,
            fire: TimerFire(input: .waitTimedOut(generation: nextWaitGeneration), runner: inputs))
    }

    /// The peer did not resynchronise, or did not come back, within the proposal timeout:
    /// waiting updates fail, and a peer that holds the session open without answering is
    /// treated as silent (the session is dropped; with `disputeOnSilence` we exit on chain).
    private func waitTimedOut(_ generation: UInt64) async {
        guard let wait = waitTimer, wait.generation == generation else { return }
        waitTimer = nil
        let timeout = context.policy.proposalTimeout
        for waiter in waiters.values { waiter.resume(throwing: NodeError.peerUnresponsive(id, after: timeout)) }
        waiters = [:]
        // Updates never proposed are dropped, so none commits after its caller heard it failed.
        await feed(.dropQueued)
        switch wait.kind {
        case .resync:
            context.logger.warning("the peer did not resynchronise in time", metadata: ["channel": "\(id.shortID)", "timeout": "\(timeout)"])
            session?.close(reason: "no reestablish from the peer within \(timeout)")
            if context.policy.watcher.disputeOnSilence { status = status.with(closing: .peerUnresponsive) }
            await context.watcher.peerUnresponsive(id)
        case .reconnect:
            context.logger.info(
                "the peer did not come back in time; waiting updates failed",
                metadata: ["channel": "\(id.shortID)", "timeout": "\(timeout)"])
        }
    }

    /// How long our updates may wait without one of them committing: three proposal
    /// timeouts, whatever the link does meanwhile.
    var progressTimeout: Duration { context.policy.proposalTimeout * 3 }

    /// Keeps one deadline armed while updates of ours wait: it is set when they start
    /// waiting and again whenever one of them commits, and disarmed when none waits. The
    /// other deadlines restart with each phase of the link; this one does not, so a peer
    /// that answers `reestablish` but drops the link just before every proposal times out
    /// cannot keep `pay` waiting for ever (found by the simulator, issue 16).
    func armProgressTimer() {
        let key = Deadlines<TimerFire>.Key(channel: id, kind: .progress)
        guard !status.isClosed, !waiters.isEmpty || engine.engine.queuedUpdates > 0 else {
            if progressTimer != nil { context.deadlines.disarm(key) }
            progressTimer = nil
            return
        }
        guard progressTimer == nil else { return }
        nextProgressGeneration += 1
        progressTimer = nextProgressGeneration
        context.deadlines.arm(
            key, after: progressTimeout,
            fire: TimerFire(input: .progressTimedOut(generation: nextProgressGeneration), runner: inputs))
    }

    /// One of our updates committed: the progress deadline starts again (`armProgressTimer`
    /// re-arms it after this input if updates still wait).
    func progressMade() {
        guard progressTimer != nil else { return }
        context.deadlines.disarm(.init(channel: id, kind: .progress))
        progressTimer = nil
    }

    /// Our updates waited `progressTimeout` and none committed: they fail, and the peer is
    /// treated as unresponsive (the session is dropped; with `disputeOnSilence` we exit on
    /// chain), as when a proposal goes unanswered.
    private func progressTimedOut(_ generation: UInt64) async {
        guard progressTimer == generation else { return }
        progressTimer = nil
        let timeout = progressTimeout
        context.logger.warning("no update committed in time", metadata: ["channel": "\(id.shortID)", "timeout": "\(timeout)"])
        for waiter in waiters.values { waiter.resume(throwing: NodeError.peerUnresponsive(id, after: timeout)) }
        waiters = [:]
        await feed(.dropQueued)
        session?.close(reason: "no update committed within \(timeout)")
        if context.policy.watcher.disputeOnSilence { status = status.with(closing: .peerUnresponsive) }
        await context.watcher.peerUnresponsive(id)
    }

    /// Whether the chain shows the channel funded exactly as both journals agreed, with no
    /// dispute open (not merely "funded" on whatever terms the first depositor named).
    private func chainShowsUsable() async -> Bool {
        guard let chain = try? await context.adapter.channel(id) else { return false }
        return chain.usability(params: engine.engine.params, opening: funding) == .usable
    }

    /// Fails every update waiter but `kept` with `channelClosing` and why.
    private func failWaiters(except kept: UpdateID?) {
        let reason = status.closingReason ?? .closed
        for (update, waiter) in waiters where update != kept {
            waiter.resume(throwing: NodeError.channelClosing(id, because: reason))
        }
        waiters = waiters.filter { $0.key == kept }
    }

    private func submit(_ request: ChannelRunner.Request, _ waiter: CheckedContinuation<SignedState, any Error>) async {
        if status.isClosed { return waiter.resume(throwing: NodeError.channelClosed(id)) }
        if status.isClosing {
            let reason = status.closingReason ?? .closed
            return waiter.resume(throwing: NodeError.channelClosing(id, because: reason))
        }
        if !status.isFunded, await !chainShowsUsable() {
            return waiter.resume(throwing: NodeError.notFunded(id))
        }
        status = status.with(funded: true)
        let intent: UpdateIntent
        switch request {
        case let .intent(given):
            intent = given
        case let .change(change):
            let latest = engine.engine.latest.state
            var next = latest
            do { try change(&next) } catch {
                return waiter.resume(throwing: error)
            }
            intent = .replace(base: latest.version, allocation: next.allocation, appData: next.appData, isFinal: next.isFinal)
        }
        let update = nextUpdate
        nextUpdate += 1
        waiters[update] = waiter
        await feed(.update(update, intent))
    }

    /// Feeds one engine input and performs what it asks for. Journal records are durable
    /// before `handle` returns (JournaledEngine), so everything here happens after them.
    private func feed(_ input: EngineInput) async {
        let effects: [Effect]
        do { effects = try await engine.handle(input) } catch {
            // The journal stopped (disk full, I/O error): nothing more is signed. Fail
            // every waiter; the watcher still guards the last durable state.
            context.emit(.error(id, "journal stopped: \(error); channel frozen at its last durable state"))
            context.logger.error("journal stopped", metadata: ["channel": "\(id.shortID)", "error": "\(error)"])
            for waiter in waiters.values { waiter.resume(throwing: NodeError.journal(error)) }
            waiters = [:]
            status = status.with(closing: .journalStopped)
            return
        }
        await perform(effects)
    }

    private func perform(_ effects: [Effect]) async {
        for effect in effects {
            switch effect {
            case .journal:
                break  // already durable: JournaledEngine appended it
            case let .send(message):
                await send(message)
            case let .decide(proposal):
                let decision = await decide(proposal)
                await feed(.decided(version: proposal.proposed.version, decision))
            case let .notify(event):
                await notify(event)
            case .scheduleRetry:
                retry?.cancel()
                let inputs = self.inputs
                let clock = context.clock
                let delay = Duration.milliseconds(context.random.integer(in: 2...20))
                retry = Task {
                    do { try await clock.sleep(for: delay) } catch { return }
                    inputs.post(.engine(.retryDue))
                }
            case let .disconnect(reason):
                if case let .proposalTimeout(version) = reason {
                    session?.close(reason: "no answer to proposal \(version) within \(context.policy.proposalTimeout)")
                }
            }
        }
    }

    private func send(_ message: ChannelMessage) async {
        if case let .propose(state, _) = message { armTimer(for: state.version) }
        guard let session, !context.isSilent() else { return }
        do { try await session.send(message.wireBytes) } catch {
            // The session is closing; its close event detaches it and reestablish resends.
            context.logger.debug("send failed", metadata: ["channel": "\(id.shortID)", "error": "\(error)"])
        }
    }

    /// Builds and sends a malformed proposal (drills). Versions it signs are burned
    /// durably first, and the session is then dropped so the reestablish step tells the peer
    /// which versions we used; the peer must reject the proposal and keep its state.
    private func tamper(_ kind: Tampering) async throws -> UInt64 {
        guard let session else { throw NodeError.peerUnreachable("no session with the peer right now") }
        let core = engine.engine
        guard core.latest.isFullySigned, core.phase == .idle else {
            throw NodeError.invalidParameters("the channel is busy (\(core.phase)); tamper when it is idle")
        }
        let me = core.me
        var next = core.latest.state
        next.version = core.highestSeenVersion + 1
        if next.allocation[me] > 0 {  // a one-unit payment to the peer, the most welcome kind
            next.allocation[me] -= 1
            next.allocation[me.peer] += 1
        }
        var reserve: UInt64?
        let message: ChannelMessage
        switch kind {
        case .badSignature:
            // A real signature of this state with its first byte flipped: well formed, and wrong.
            var bytes = context.sign(engine.engine.params, next).bytes
            bytes[0] ^= 0x01
            let forged: StateSignature = switch engine.engine.params.backendID {
            case .ed25519: .ed25519(try Signature(bytes: bytes))
            case .ethereum: .ethereum(try RecoverableSignature(bytes: bytes))
            }
            message = .propose(state: next, signature: forged)
        case .overspend:
            next = core.latest.state
            next.version = core.highestSeenVersion + 1
            next.allocation[me] = (core.latest.state.allocation.total ?? 0) &+ 1
            next.allocation[me.peer] = 0
            reserve = next.version
            message = .propose(state: next, signature: context.sign(engine.engine.params, next))
        case .versionSkip:
            next.version += 2
            reserve = next.version
            message = .propose(state: next, signature: context.sign(engine.engine.params, next))
        case .wrongChannel:
            next.channelID = ChannelID(digest: try Digest(bytes: SecureRandom.bytes(32)))
            message = .propose(state: next, signature: context.sign(engine.engine.params, next))
        case .replay:
            guard let older = recentCommitted.count == 2 ? recentCommitted[0] : nil, let mine = older[me] else {
                throw NodeError.invalidParameters("nothing to replay yet: make two updates first")
            }
            next = older.state
            message = .propose(state: older.state, signature: mine)
        }
        if let reserve {
            // Journaled as signed, like everything we sign: a move on chain at that version
            // must then reuse it or refuse, never sign a second state there.
            var signed = SignedState(state: next)
            if case let .propose(_, signature) = message { signed[core.me] = signature }
            try await engine.reserveVersions(through: reserve, signed: signed)
        }
        try await session.send(message.wireBytes)
        context.logger.notice(
            "sent a tampered proposal", metadata: ["channel": "\(id.shortID)", "kind": "\(kind.rawValue)", "version": "\(next.version)"])
        if reserve != nil {
            let clock = context.clock
            Task {
                try? await clock.sleep(for: .milliseconds(200))
                session.close(reason: "resynchronising versions after a tampered proposal")
            }
        }
        return next.version
    }

    /// Keeps a turn timer armed exactly while a game waits for the peer's move.
    func armTurnTimer() {
        guard let timeout = context.policy.turnTimeout else { return }
        let core = engine.engine
        let waiting = status.isFunded && !status.isClosing && !status.isClosed
            && core.phase == .idle && core.latest.isFullySigned && rules.mover(in: core.latest.state) == core.me.peer
        let key = Deadlines<TimerFire>.Key(channel: id, kind: .turn)
        guard waiting else {
            if turnTimer != nil { context.deadlines.disarm(key) }
            turnTimer = nil
            return
        }
        let version = core.latest.version
        guard turnTimer != version else { return }
        turnTimer = version
        context.deadlines.arm(key, after: timeout, fire: TimerFire(input: .turnTimedOut(version), runner: inputs))
    }

    private func armTimer(for version: UInt64) {
        timer = version
        context.deadlines.arm(
            .init(channel: id, kind: .proposal), after: context.policy.proposalTimeout,
            fire: TimerFire(input: .engine(.proposalTimedOut(version: version)), runner: inputs))
    }

    private func disarmTimer() {
        timer = nil
        context.deadlines.disarm(.init(channel: id, kind: .proposal))
    }

    private func decide(_ proposal: IncomingProposal) async -> Decision {
        context.emit(.proposed(id, version: proposal.proposed.version))
        let decision: Decision
        // The `reason` label of a rejection here: why, in a word.
        var kind = "declined"
        if context.holdFinal(proposal, engine.engine.params) {
            decision = .reject("declined")
        } else if status.isClosed {
            // Closed means nothing of ours is in it and we take nothing more: a channel
            // given up before it was funded may still be funded by the peer alone later, and
            // a state committed then is one we would never withdraw from (found by the
            // simulator, issue 16).
            decision = .reject("the channel is closed")
            kind = "channelClosed"
        } else if settlingOnChain {
            decision = .reject("the channel is being settled on chain")
            kind = "settlingOnChain"
        } else if status.isClosing, !proposal.proposed.isFinal {
            decision = .reject("the channel is closing")
            kind = "closing"
        } else if !status.isFunded, await !chainShowsUsable() {
            decision = .reject("the channel is not funded on chain yet")
            kind = "notFunded"
        } else {
            decision = await context.updateHandler().decide(IncomingUpdate(
                channel: id, me: status.me, current: proposal.current, proposed: proposal.proposed))
        }
        if case let .reject(reason) = decision {
            context.metrics.rejected(by: .us, reason: kind)
            context.emit(.rejected(id, version: proposal.proposed.version, reason: reason, byPeer: false))
        }
        return decision
    }

    private func notify(_ event: ChannelEvent) async {
        switch event {
        case .opened:
            refreshStatus()
            context.emit(.opened(id, peer: status.peer))
            openWaiters.forEach { $0.resume() }
            openWaiters = []
        case let .committed(signed, update):
            recentCommitted = Array((recentCommitted + [signed]).suffix(2))
            if signed.state.isFinal { status = status.with(closing: .finalState) }
            refreshStatus()
            if let update {
                if timer == signed.version { disarmTimer() }
                waiters.removeValue(forKey: update)?.resume(returning: signed)
                progressMade()
            }
            context.metrics.committed(mine: update != nil)
            context.emit(.committed(id, signed, mine: update != nil))
            if signed.state.isFinal {
                status = status.with(closing: .finalState)
                await context.watcher.settle(id)
            } else if status.isClosing {
                // A proposal of ours the peer accepted while the channel is being settled:
                // the watcher puts it on chain if the window is still open (found by the
                // simulator, issue 16: it used to wait for the deadline and conclude older).
                await context.watcher.settle(id)
            }
        case let .updateFailed(update, failure):
            switch failure {
            case let .rejected(reason):
                context.metrics.rejected(by: .peer, reason: reason.kind)
                context.emit(.rejected(id, version: nil, reason: reason.description, byPeer: true))
            case let .refused(rejection):
                context.metrics.rejected(by: .local, reason: rejection.kind)
            }
            waiters.removeValue(forKey: update)?.resume(throwing: NodeError.updateFailed(id, failure))
        case let .refusedIncoming(rejection):
            context.metrics.rejected(by: .us, reason: rejection.kind)
            context.emit(.error(id, "refused the peer's proposal: \(rejection)"))
        case let .ignoredMessage(rejection):
            context.logger.notice("ignored a message from the peer", metadata: ["channel": "\(id.shortID)", "reason": "\(rejection)"])
            context.emit(.error(id, "ignored a message from the peer: \(rejection)"))
        case let .proposalTimedOut(version):
            timer = nil
            context.logger.warning("no answer to our proposal", metadata: ["channel": "\(id.shortID)", "version": "\(version)"])
            let timeout = context.policy.proposalTimeout
            for waiter in waiters.values { waiter.resume(throwing: NodeError.peerUnresponsive(id, after: timeout)) }
            waiters = [:]
            if context.policy.watcher.disputeOnSilence { status = status.with(closing: .peerUnresponsive) }
            await context.watcher.peerUnresponsive(id)
        case let .reestablished(version):
            context.logger.debug("channel reestablished", metadata: ["channel": "\(id.shortID)", "version": "\(version)"])
        }
    }
}

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
