import Logging
import ParleyChannel
import ParleyCrypto
import ParleyJournal
import ParleySettlement
import ParleyTransport
import ParleyWire
import ParleyLocks

/// Funding and the deadlines of a channel: waits on the peer, progress, turns and the
/// proposal timer. Every wait on the peer ends (Docs/Protocol.md invariant 9).
extension RunnerLoop {
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
    func waitTimedOut(_ generation: UInt64) async {
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
    func progressTimedOut(_ generation: UInt64) async {
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
    func chainShowsUsable() async -> Bool {
        guard let chain = try? await context.adapter.channel(id) else { return false }
        return chain.usability(params: engine.engine.params, opening: funding) == .usable
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

    func armTimer(for version: UInt64) {
        timer = version
        context.deadlines.arm(
            .init(channel: id, kind: .proposal), after: context.policy.proposalTimeout,
            fire: TimerFire(input: .engine(.proposalTimedOut(version: version)), runner: inputs))
    }

    func disarmTimer() {
        timer = nil
        context.deadlines.disarm(.init(channel: id, kind: .proposal))
    }
}
