import Logging
import ParleyChannel
import ParleyCrypto
import ParleyJournal
import ParleySettlement
import ParleyTransport
import ParleyWire
import Synchronization
import ParleyLocks

/// Opening channels: ours (`open`), the peer's proposals, and funding both.
extension Node {
    /// Funds `params` once per node life: the first caller starts it, later calls do nothing.
    func ensureFunding(_ params: ChannelParams, opening: Allocation) {
        guard !stopped, fundingStarted.insert(params.id).inserted else { return }
        spawn { await self.fund(params, opening: opening) }
    }
    /// Opens a channel with `peer`, listening at `address`: we deposit `deposit`, they
    /// deposit `theirs`. Returns once both journals hold the channel and the chain shows
    /// it funded.
    ///
    /// - Parameters:
    ///   - appData: the opening app data (empty for payments).
    ///   - app: the app the channel runs (its rules must be known to both nodes).
    ///   - timeout: how long to wait for the peer to connect and accept.
    /// - Throws: ``NodeError``: `.peerUnreachable`, `.openTimedOut`, `.openRefused`,
    ///   `.watcher(.fundingTimedOut)` when the peer's deposit never came (ours is reclaimed).
    public func open(
        with peer: PublicKey, at address: SocketAddress, deposit: Amount, theirs: Amount,
        app: AppID = .payment, appData: [UInt8] = [], challengeDuration: UInt64? = nil,
        peerSigner: SettlementAddress? = nil, timeout: Duration = .seconds(30)
    ) async throws(NodeError) -> Channel {
        guard !stopped else { throw .stopped }
        guard peer != publicKey else { throw .invalidParameters("a channel needs two different keys") }
        guard let rules = apps[app] else { throw .invalidParameters("no rules registered for app \(app)") }
        guard deposit.addingReportingOverflow(theirs).overflow == false else {
            throw .invalidParameters("deposits \(deposit) + \(theirs) overflow")
        }
        let domain: SettlementDomain
        do { domain = try await settlementDomain() } catch { throw .chain(error) }
        // Before anything is signed: a channel we cannot fund would get the peer's deposit
        // made and then stuck until the funding timeout.
        // Opens under way count against the balance too: their deposits are not on chain
        // yet, and concurrent opens must not each see the whole account.
        if deposit > 0 {
            let have: Amount
            do { have = try await settlement.balance(of: publicKey) } catch { throw .chain(error) }
            let (need, overflow) = deposit.addingReportingOverflow(depositsPromised)
            guard !overflow, have >= need else {
                throw .chainBalanceTooLow(have: have > depositsPromised ? have - depositsPromised : 0, need: deposit)
            }
        }
        // Held until our deposit is about to go to the chain: from then on the chain balance
        // shows it (counting both would refuse opens the account can pay, as a game
        // server's clients with exactly their stakes found).
        depositsPromised += deposit
        var promised = deposit
        defer { depositsPromised -= promised }
        if domain.contract.count == EthereumAddress.byteCount, peerSigner?.backend != .ethereum {
            throw .invalidParameters(
                "this node settles on an Ethereum adjudicator (\(domain)), whose channels are signed with Ethereum keys: pass the peer's settlement address (the 0x… of its `parley keygen --show`)")
        }
        let params: ChannelParams
        do {
            params = try ChannelParams(
                participants: [publicKey, peer], signers: signers.seats(peerSigner: peerSigner),
                nonce: random.bytes(ChannelParams.nonceBytes),
                challengeDuration: challengeDuration ?? policy.challengeDuration, appID: app, domain: domain)
        } catch { throw .invalidParameters("\(error)") }
        // The address is kept (file `peers`) only once a handshake on it succeeds
        // (`sessionUp`): a mistyped one, or one given while a session is up, changes nothing.
        guard let session = await session(with: peer, at: address, within: timeout) else {
            let why = dialFailures.removeValue(forKey: peer).map { "dialling \(address) failed: \($0)" }
            await forgetIfUnused(peer)
            throw .peerUnreachable(why ?? "no session with \(peer.shortID) at \(address) within \(timeout)")
        }
        let engine: JournaledEngine
        let effects: [Effect]
        do {
            (engine, effects) = try await JournaledEngine.propose(
                params: params, allocation: Allocation(deposit, theirs), appData: appData, key: signers.signer(for: params), rules: rules,
                journal: journal)
        } catch let error as OpenRejection {
            throw .openRefused(error)
        } catch let error as JournalError {
            throw .journal(error)
        } catch {
            throw .invalidParameters("\(error)")
        }
        // The session may have been replaced while the proposal was journaled: start on
        // the current one (or none; the next session to the peer restarts the handshake).
        let current = peers[peer]?.session
        if current !== session { logger.debug("session changed while opening", metadata: ["peer": "\(peer.shortID)"]) }
        let opening = Allocation(deposit, theirs)
        let runner = ChannelRunner(
            engine: engine, funding: opening, session: current, funded: false, closing: nil, closed: false,
            context: context())
        registry.runners.withLock { $0[params.id] = runner }
        // Funded below, and waited for; the runner's own request (once version 0 is fully
        // signed) is then a no-op. After a restart the runner's request is what funds it.
        fundingStarted.insert(params.id)
        runner.post(.perform(effects))
        let opened = await Self.waitUntilOpened(runner, within: timeout, clock: clock)
        guard opened, runner.status.phase != .opening else {
            // The peer may still accept later (the proposal is offered again on every new
            // session): then the runner's own request funds the channel. Had it asked
            // already, while we held the funding, fund it now.
            fundingStarted.remove(params.id)
            if runner.status.latest.isFullySigned { ensureFunding(params, opening: opening) }
            throw .openTimedOut(params.id)
        }
        depositsPromised -= promised
        promised = 0
        do { try await watcher.fund(params, opening: opening) } catch {
            // The channel is open in both journals: its funding must not end with this call.
            // Unreachable chain: the node goes on trying in the background (and gives the
            // channel up if that fails too); anything else gives it up now. Either way it is
            // never left open at version 0 for good (found by the simulator, issue 16).
            if case .chain(.transport) = error {
                fundingStarted.remove(params.id)
                ensureFunding(params, opening: opening)
            } else if case .stopped = error {
            } else {
                await watcher.abandonFunding(params.id)
            }
            throw .watcher(error)
        }
        await runner.markFunded()
        return Channel(id: params.id, node: self)
    }

    /// Whether `runner` reports the channel open within `timeout`; returns by the deadline.
    /// Not a task group: the runner's wait ignores cancellation (it ends when the runner
    /// stops), and a group would wait for it, so an open the peer never accepts would hang.
    static func waitUntilOpened(_ runner: ChannelRunner, within timeout: Duration, clock: any NodeClock) async -> Bool {
        let outcome = OneShot()
        return await withCheckedContinuation { continuation in
            outcome.arm(continuation)
            let timer = Task {
                try? await clock.sleep(for: timeout)
                outcome.resume(returning: false)
            }
            Task {
                await runner.waitUntilOpened()
                outcome.resume(returning: true)  // before the cancel, which ends the timer's sleep early
                timer.cancel()
            }
        }
    }

    /// A continuation resumed by whichever side finishes first.
    final class OneShot: Sendable {
        private let waiter = Locked<CheckedContinuation<Bool, Never>?>(nil)
        func arm(_ continuation: CheckedContinuation<Bool, Never>) { waiter.withLock { $0 = continuation } }
        func resume(returning value: Bool) { waiter.withLock { $0.take() }?.resume(returning: value) }
    }
    /// A peer proposes a channel: ask the open handler, accept (journal first), fund.
    func incomingOpen(_ proposal: OpenProposal, on session: any MessageLink) async {
        let params = proposal.params
        guard !stopped, registry.runners.withLock({ $0[params.id] }) == nil else { return }
        guard params.index(of: publicKey) == .second, params[.first] == session.peer else {
            sink.yield(.error(params.id, "open proposal from \(session.peer.shortID) does not seat it first and us second"))
            return
        }
        guard let rules = apps[params.appID] else {
            sink.yield(.error(params.id, "peer proposed app \(params.appID), which this node has no rules for"))
            return
        }
        let opening = proposal.initial.allocation
        let request = OpenRequest(
            channel: params.id, peer: session.peer, theirDeposit: opening[.first], myDeposit: opening[.second],
            challengeDuration: params.challengeDuration, appID: params.appID)
        if let refusal = await openRefusal(request, params: params) {
            logger.notice(
                "refused a channel proposal",
                metadata: ["channel": "\(params.id.shortID)", "peer": "\(session.peer.shortID)", "reason": "\(refusal)"])
            sink.yield(.error(params.id, "refused a channel proposal from \(session.peer.shortID): \(refusal)"))
            return
        }
        guard await switches.open.withLock({ $0 }).decide(request) else {
            logger.info("declined a channel proposal", metadata: ["channel": "\(params.id.shortID)", "peer": "\(session.peer.shortID)"])
            return
        }
        guard registry.runners.withLock({ $0[params.id] }) == nil else { return }
        let engine: JournaledEngine
        let effects: [Effect]
        do {
            (engine, effects) = try await JournaledEngine.accept(
                proposal, key: signers.signer(for: proposal.params), rules: rules, journal: journal)
        } catch {
            sink.yield(.error(params.id, "cannot accept the channel: \(error)"))
            return
        }
        let current = peers[session.peer]?.session
        let runner = ChannelRunner(
            engine: engine, funding: opening, session: current === session ? session : nil, funded: false,
            closing: nil, closed: false, context: context())
        registry.runners.withLock { $0[params.id] = runner }
        if let announced = announcedAddresses.removeValue(forKey: session.peer) { keepAnnounced(session.peer, announced) }
        runner.post(.perform(effects))  // the runner then asks for funding: version 0 is fully signed
    }

    /// Why we refuse a peer's channel proposal before the open handler sees it, or nil.
    ///
    /// A channel id is used once, ever (Docs/Protocol.md invariant 8): one our journal knows (open
    /// or closed) or the chain knows is refused, so an old proposal replayed after a restart
    /// opens nothing (issue 15, item 3). The proposal must be bound to our chain's domain,
    /// and within `policy.opens`.
    func openRefusal(_ request: OpenRequest, params: ParleyChannel.ChannelParams) async -> String? {
        if journal.channels[params.id] != nil { return "channel id \(params.id.shortID) was used before" }
        do {
            let domain = try await settlementDomain()
            guard params.domain == domain else { return "it is bound to \(params.domain), but we settle on \(domain)" }
            if try await settlement.channel(params.id) != nil {
                return "the chain already has channel \(params.id.shortID)"
            }
            // We would sign version 0 and then fail to deposit our share.
            if request.myDeposit > 0 {
                let have = try await settlement.balance(of: publicKey)
                if have < request.myDeposit {
                    return "our chain account holds \(have), less than the \(request.myDeposit) it asks us to deposit"
                }
            }
        } catch {
            return "the chain cannot be read to check it (\(error))"
        }
        let now = clock.now
        let window = Self.openRateWindow
        var recent = (recentOpens[request.peer] ?? []).filter { now - $0 < window }
        let limits = policy.opens
        // Counting walks every channel: only when there is a limit to count against.
        let open = limits.maxChannelsPerPeer == .max
            ? 0 : registry.runners.withLock { $0.values.filter { $0.peer == request.peer && !$0.status.isClosed }.count }
        let refusal = limits.violation(request, openChannels: open, recentOpens: recent.count)
        recent.append(now)
        recentOpens[request.peer] = recent
        if recentOpens.count > Self.openRateTableSweep {
            // Strangers come and go: forget the peers whose proposals have all aged out.
            recentOpens = recentOpens.filter { _, times in times.contains { now - $0 < window } }
        }
        return refusal
    }

    /// Makes sure our deposit is in. The channel is marked funded when the chain says so
    /// (the watcher's `.funded` event, see `forward`); nothing waits for it here.
    func fund(_ params: ChannelParams, opening: Allocation) async {
        let giveUp = clock.now + policy.watcher.fundingTimeout
        while !stopped {
            do {
                try await watcher.fundInBackground(params, opening: opening)
                if await watcher.isFunded(params.id) { registry.runners.withLock { $0[params.id] }?.post(.funded(nil)) }
                return
            } catch .chain(.transport(let why)) where clock.now < giveUp {
                logger.info(
                    "funding: the chain is unreachable; retrying", metadata: ["channel": "\(params.id.shortID)", "error": "\(why)"])
                do { try await clock.sleep(for: policy.watcher.retryDelay) } catch { return }
            } catch {
                logger.warning("funding failed", metadata: ["channel": "\(params.id.shortID)", "error": "\(error)"])
                sink.yield(.error(params.id, "funding: \(error)"))
                // The deposit could not be made in time (or at all): the channel is given
                // up, not left open at version 0.
                if case .stopped = error { return }
                await watcher.abandonFunding(params.id)
                return
            }
        }
    }
}
