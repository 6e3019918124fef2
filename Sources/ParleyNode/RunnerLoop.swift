import Logging
import ParleyChannel
import ParleyCrypto
import ParleyJournal
import ParleySettlement
import ParleyTransport
import ParleyWire
import ParleyLocks

/// The runner's state and its input handling. Confined to one task at a time: the task
/// that took it out of the runner's mailbox (under the mailbox lock, which orders one
/// task's last access before the next task's first). A class, so handing it over is one
/// reference, not a copy of every field.
final class RunnerLoop: @unchecked Sendable {
    var engine: JournaledEngine
    /// The app's rules: the engine's own (not a copy of the existential per runner).
    var rules: any AppRules { engine.engine.appRules }
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
    /// The fully-signed state before the newest one we have seen (a `replay` tampering
    /// resends it). Out of line: an idle channel that never moved keeps none.
    @Boxed var previousCommitted: SignedState?
    /// A state is registered on chain (or the journal holds a dispute): the chain settles the
    /// channel now, and nothing more is signed, final states included. A state committed
    /// from here on might never reach the chain before the window closes, and the node
    /// would have reported a commitment it cannot honour (found by the simulator, issue 16).
    var settlingOnChain = false

    var id: ChannelID { status.id }

    init(
        engine: JournaledEngine, funding: Allocation, session: (any MessageLink)?, status: ChannelStatus,
        published: StatusBox, context: RunnerContext, inputs: RunnerHandle
    ) {
        self.engine = engine
        self.engine.maxPaymentsPerUpdate = context.policy.maxPaymentsPerUpdate
        self.funding = funding
        self.session = session
        self.status = status
        self.published = published
        self.context = context
        self.inputs = inputs
        countedBucket = status.metricsBucket
        context.metrics.channelMoved(from: nil, to: countedBucket)
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
        published.withLock { $0 = current }
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

    func signForChain(_ state: ChannelState, from base: ChannelState) async throws -> (ChannelState, StateSignature) {
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

    /// Fails every update waiter but `kept` with `channelClosing` and why.
    func failWaiters(except kept: UpdateID?) {
        let reason = status.closingReason ?? .closed
        for (update, waiter) in waiters where update != kept {
            waiter.resume(throwing: NodeError.channelClosing(id, because: reason))
        }
        waiters = waiters.filter { $0.key == kept }
    }

    func submit(_ request: ChannelRunner.Request, _ waiter: CheckedContinuation<SignedState, any Error>) async {
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
    func feed(_ input: EngineInput) async {
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

    func perform(_ effects: [Effect]) async {
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

    func send(_ message: ChannelMessage) async {
        if case let .propose(state, _) = message { armTimer(for: state.version) }
        guard let session, !context.isSilent() else { return }
        do { try await session.send(message.wireBytes) } catch {
            // The session is closing; its close event detaches it and reestablish resends.
            context.logger.debug("send failed", metadata: ["channel": "\(id.shortID)", "error": "\(error)"])
        }
    }

    func decide(_ proposal: IncomingProposal) async -> Decision {
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

    func notify(_ event: ChannelEvent) async {
        switch event {
        case .opened:
            refreshStatus()
            context.emit(.opened(id, peer: status.peer))
            openWaiters.forEach { $0.resume() }
            openWaiters = []
        case let .committed(signed, updates):
            // `status` still shows the state this one supersedes (refreshed after every
            // input and after every commit).
            if status.latest.isFullySigned, status.latest.version < signed.version { previousCommitted = status.latest }
            if signed.state.isFinal { status = status.with(closing: .finalState) }
            refreshStatus()
            let mine = !updates.isEmpty
            // Counted before the payer is resumed, so a caller whose `pay` returned reads
            // the count that includes it (CI once saw the count trail the return).
            context.metrics.committed(mine: mine, payments: updates.count)
            if mine {
                if timer == signed.version { disarmTimer() }
                // Every payment coalesced into this state returns with it.
                for update in updates { waiters.removeValue(forKey: update)?.resume(returning: signed) }
                progressMade()
            }
            context.emit(.committed(id, signed, mine: mine))
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
