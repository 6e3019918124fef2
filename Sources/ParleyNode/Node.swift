import Logging
import ParleyChannel
import ParleyCrypto
import ParleyJournal
import ParleySettlement
import ParleyTransport
import ParleyWire
import Synchronization
import ParleyLocks

/// One identity's state channels: the public face of Parley.
///
/// A node owns everything a channel needs — the encrypted peer sessions (libuv TCP), the
/// fsync'd journal, the settlement adapter and the watcher — and runs many channels with
/// many peers at once:
///
/// ```swift
/// let node = try await Node(identity: key, listen: try SocketAddress("127.0.0.1:7000"),
///                           journal: "/var/lib/parley/alice", settlement: chain.adapter(for: key.publicKey))
/// let channel = try await node.open(with: bobKey, at: try SocketAddress("127.0.0.1:7001"),
///                                   deposit: 1_000, theirs: 1_000)
/// try await channel.pay(10)
/// let payout = try await channel.close()
/// ```
///
/// Safety does not depend on the caller: every signature is journaled before it leaves,
/// every countersigned state before it is reported (``JournaledEngine``); a registration
/// older than our newest state is refuted by the watcher; a silent peer leads to an
/// on-chain exit (``NodePolicy/watcher``). A restarted node recovers every channel from
/// its journal, redials the peers it dialled before (their addresses are kept in the
/// journal directory, file `peers`), and resumes every dispute in flight.
///
/// Threading: the node is an actor; each channel runs on its own task, so a slow update
/// handler on one channel never holds up another. Peer I/O runs on one libuv loop thread.
public actor Node {
    /// Our public key: the seat we hold in every channel.
    public nonisolated let publicKey: PublicKey
    /// The Ethereum account this node signs Ethereum-backend channels with, derived from its
    /// identity's seed (`SigningKey.settlementKey`). Give it to a peer that opens such a
    /// channel with us (`open(…, peerSigner: .ethereum(address))`).
    public nonisolated let ethereumAddress: EthereumAddress
    public nonisolated let policy: NodePolicy
    /// Everything that happens on every channel, in order per channel. One reader; if it
    /// falls more than `policy.eventBuffer` events behind, the oldest are dropped.
    public nonisolated let events: AsyncStream<NodeEvent>
    /// Where peers reach us, once listening (the real port when asked for port 0).
    public private(set) var listeningAddress: SocketAddress?
    /// The journal all channels of this node are written to.
    public nonisolated let journal: Journal
    /// The chain this node settles on.
    public nonisolated let settlement: any SettlementAdapter

    private let identity: SigningKey
    /// What signs states: the identity on Ed25519 channels, its settlement key on Ethereum ones.
    private let signers: NodeSigners
    private let watcher: Watcher
    private let logger: Logger
    /// How peers are reached (libuv TCP sessions, or the simulator's in-memory links).
    private let network: any LinkNetwork
    private let clock: any NodeClock
    private let random: any NodeRandom
    private let sink: AsyncStream<NodeEvent>.Continuation
    private let apps: [AppID: any AppRules]
    private let book: any PeerAddressStore
    private let registry = Registry()
    private let switches = Switches()
    private let notices: AsyncStream<SessionNotice>.Continuation
    /// Channel proposals from peers, handled one at a time by one task.
    private let incomingOpens: AsyncStream<(OpenProposal, any MessageLink)>.Continuation
    private var listener: (any LinkListener)?
    private var peers: [PublicKey: PeerState] = [:]
    private var addresses: [PublicKey: SocketAddress] = [:]
    private var sessionWaiters: [PublicKey: [CheckedContinuation<(any MessageLink)?, Never>]] = [:]
    /// Why the last dial for an `open` failed, for its error message.
    private var dialFailures: [PublicKey: String] = [:]
    /// Our deposits for opens under way (checked against the chain balance, not yet on it).
    private var depositsPromised: Amount = 0
    /// Where peers without a channel (yet) said they listen; bounded.
    private var announcedAddresses: [PublicKey: SocketAddress] = [:]
    /// Tasks that run for the node's life (session notices, watcher events).
    private var tasks: [Task<Void, Never>] = []
    /// Short tasks (funding, on-chain moves), each removed when it ends: keeping finished
    /// task handles kept their memory (≈ 1.5 KB per opened channel).
    private var transient: [Int: Task<Void, Never>] = [:]
    private var nextTransient = 0
    /// Every channel's proposal and turn timers.
    private let deadlines: Deadlines<TimerFire>
    /// The registered version we last considered moving on, per game channel.
    private var chainMoves: [ChannelID: UInt64] = [:]
    /// The registered version we last reported `yourTurnOnChain` for, per game channel.
    private var announcedTurns: [ChannelID: UInt64] = [:]
    /// A move on chain we signed that the chain has not taken yet (its endpoint was down),
    /// by channel, with the registered version it moves from: submitted again as it is,
    /// never replaced by another (that would be a second state at one version).
    private var unsentChainMoves: [ChannelID: (base: UInt64, move: ChannelState, signature: StateSignature)] = [:]
    /// The settlement adapter's domain, once asked (`settlementDomain()`).
    private var knownDomain: SettlementDomain?
    /// Channels whose funding this node started (see `ensureFunding`).
    private var fundingStarted: Set<ChannelID> = []
    /// When each peer proposed channels within the last minute (`OpenLimits.maxOpensPerMinute`).
    private var recentOpens: [PublicKey: [Duration]] = [:]
    /// How long a proposal counts towards `OpenLimits.maxOpensPerMinute`.
    private static let openRateWindow: Duration = .seconds(60)
    /// Past this many peers in `recentOpens`, the ones with no recent proposal are dropped.
    private static let openRateTableSweep = 1_024
    private var stopped = false

    private final class Registry: Sendable {
        let runners = Locked<[ChannelID: ChannelRunner]>([:])
    }

    /// Settings channel tasks read without hopping to the node.
    private final class Switches: Sendable {
        // Each handler sits in a class of its own, at its concrete function type. Keeping the
        // async closures in a generic container (a tuple inside `Mutex`) made every call go
        // through a reabstraction thunk whose async frame the long-lived channel task never
        // got back: memory grew with every update (`parley bench`, Docs/Performance.md).
        let update = Locked(UpdateHandlerBox(Node.acceptPaymentsToMe))
        let open = Locked(OpenHandlerBox(Node.acceptPaymentChannels))
        let silent = Atomic<Bool>(false)
        let offline = Atomic<Bool>(false)
        /// Drill switch: decline every final state the peer proposes, but keep it countersigned.
        let holdFinals = Atomic<Bool>(false)
        /// Final states countersigned in secret while `holdFinals` was on, by channel.
        let heldFinals = Locked<[ChannelID: SignedState]>([:])
        let chainMove = Locked<ChainMoveHandlerBox?>(nil)
    }

    private struct PeerState {
        var session: (any MessageLink)?
        var link: (any LinkKeeper)?
        var readers = 0
    }

    private enum SessionNotice: Sendable {
        /// A session is up; `dialed` carries the address we dialled for it.
        case up(any MessageLink, dialed: SocketAddress?)
        case down(any MessageLink, SessionCloseReason)
        /// A dial to `peer` failed (refused, timed out); the link retries.
        case dialFailed(PublicKey, String)
        /// The peer on `session` says it listens on `port` (of the address it came from).
        case announced(any MessageLink, UInt16)
    }

    /// Opens the journal, recovers its channels, listens, starts the watcher and redials
    /// the peers of recovered channels.
    ///
    /// - Parameters:
    ///   - identity: our signing key.
    ///   - listen: where to accept peers (`nil`: dial only; port 0 picks a free port).
    ///   - journal: the journal directory (created if missing; locked while the node runs).
    ///     The peers we dial are remembered next to it (file `peers`).
    ///   - settlement: the chain adapter, acting as `identity`.
    ///   - apps: rules for app channels besides payments, by app id.
    ///   - loop: the libuv loop to use; by default the node runs its own.
    /// - Throws: ``NodeError/journal(_:)`` when the journal cannot be opened or recovered,
    ///   `TCPError` when `listen` cannot be bound.
    public init(
        identity: SigningKey, listen: SocketAddress?, journal directory: String, settlement: any SettlementAdapter,
        policy: NodePolicy = NodePolicy(), logger: Logger = Logger(label: "parley.node"),
        apps: [any AppRules] = [], loop: EventLoop? = nil
    ) async throws {
        let journal: Journal
        do { journal = try Journal(directory: directory, durability: policy.durability) } catch {
            throw NodeError.journal(error)
        }
        do { try NodeIdentityFile.check(directory: directory, key: identity.publicKey, journal: journal) } catch {
            journal.close()
            throw error
        }
        let network: TCPLinkNetwork
        do { network = try TCPLinkNetwork(identity: identity, config: policy.session, loop: loop) } catch {
            journal.close()
            throw error
        }
        try await self.init(
            identity: identity, listen: listen, journal: journal, peerAddresses: PeerBook(directory: directory),
            settlement: settlement, policy: policy, logger: logger, apps: apps,
            environment: NodeEnvironment(network: network))
    }

    /// A node on an open `journal`, in `environment` (how it reaches peers, its clock, its
    /// randomness): the simulator's entry, and the one for callers that open journals
    /// themselves. The node owns `journal` from here on and closes it at ``shutDown()``
    /// (also when this initializer throws).
    ///
    /// - Parameters:
    ///   - peerAddresses: where the addresses of peers we dial are kept across restarts.
    ///   - environment: nil network means encrypted libuv TCP sessions on a loop of the
    ///     node's own, configured by `policy.session`.
    public init(
        identity: SigningKey, listen: SocketAddress?, journal: Journal, peerAddresses: any PeerAddressStore,
        settlement: any SettlementAdapter, policy: NodePolicy = NodePolicy(),
        logger: Logger = Logger(label: "parley.node"), apps: [any AppRules] = [],
        environment: NodeEnvironment = .production
    ) async throws {
        self.identity = identity
        publicKey = identity.publicKey
        let signers = NodeSigners(identity: identity)
        self.signers = signers
        ethereumAddress = signers.ethereum.address
        self.policy = policy
        self.journal = journal
        self.settlement = settlement
        self.logger = logger
        var rules: [AppID: any AppRules] = [AppID.payment: PaymentApp()]
        for app in apps { rules[app.appID] = app }
        self.apps = rules
        book = peerAddresses
        clock = environment.clock
        random = environment.random
        deadlines = Deadlines(clock: environment.clock, resolution: max(policy.timerResolution, .milliseconds(1))) {
            $0.runner.post($0.input)
        }
        (events, sink) = AsyncStream<NodeEvent>.makeStream(bufferingPolicy: .bufferingNewest(policy.eventBuffer))
        if let network = environment.network {
            self.network = network
        } else {
            do { network = try TCPLinkNetwork(identity: identity, config: policy.session) } catch {
                journal.close()
                throw error
            }
        }
        watcher = Watcher(
            identity: identity.publicKey, adapter: settlement, journal: journal, policy: policy.watcher,
            logger: logger, clock: environment.clock)
        let (noticeStream, notices) = AsyncStream<SessionNotice>.makeStream()
        self.notices = notices
        let (openStream, incomingOpens) = AsyncStream<(OpenProposal, any MessageLink)>.makeStream()
        self.incomingOpens = incomingOpens
        do {
            try await start(noticeStream, opens: openStream, listen: listen)
        } catch {
            await shutDown()
            throw error
        }
    }

    private func start(
        _ noticeStream: AsyncStream<SessionNotice>, opens: AsyncStream<(OpenProposal, any MessageLink)>, listen: SocketAddress?
    ) async throws {
        tasks.append(Task { for await notice in noticeStream { await self.handle(notice) } })
        tasks.append(Task { for await (proposal, session) in opens { await self.incomingOpen(proposal, on: session) } })
        let watcherEvents = watcher.events
        tasks.append(Task { for await event in watcherEvents { self.forward(event) } })
        let (known, problems) = book.load()
        addresses = known
        for problem in problems { logger.warning("\(problem)") }
        try recoverChannels()
        await watcher.start()
        await armRecoveredDeadlines()
        if let listen {
            let notices = self.notices
            let me = publicKey
            let switches = self.switches
            listener = try await network.listen(
                on: listen, accept: { $0 != me && !switches.offline.load(ordering: .relaxed) },
                onRefused: { [logger] address, reason in
                    logger.info("handshake from \(address) failed: \(reason)")
                },
                onLink: { session in notices.yield(.up(session, dialed: nil)) })
            listeningAddress = listener?.localAddress
        }
        for peer in Set(registry.runners.withLock { $0.values.filter { !$0.status.isClosed }.map(\.peer) }) {
            if let address = addresses[peer] { startLink(to: peer, at: address) }
        }
    }

    /// Restores an engine for every channel the journal holds that is not closed.
    private func recoverChannels() throws {
        for (id, record) in journal.channels where !record.isClosed {
            guard let rules = apps[record.params.appID] else {
                logger.error("channel \(id.shortID) uses app \(record.params.appID), which this node has no rules for; not restored")
                sink.yield(.error(id, "no rules for app \(record.params.appID); channel not restored"))
                continue
            }
            let engine: JournaledEngine
            do { engine = try JournaledEngine.restore(record, key: signers.signer(for: record.params), rules: rules, journal: journal) } catch {
                logger.error("channel \(id.shortID) could not be restored: \(error)")
                sink.yield(.error(id, "could not restore from the journal: \(error)"))
                continue
            }
            let closing: ClosingReason? =
                record.exit.map { .exiting($0) } ?? (record.dispute != nil ? .disputeInJournal : nil)
            let runner = ChannelRunner(
                engine: engine, rules: rules, funding: record.funding, session: nil, funded: false,
                closing: closing, closed: false, settlingOnChain: record.dispute != nil, context: context())
            registry.runners.withLock { $0[id] = runner }
            logger.info("recovered channel \(id.shortID) at version \(record.latest.version)")
            // One empty input: the runner then does what its state calls for (funding a fully
            // signed channel that is not funded yet), whichever way the opening completed.
            runner.post(.perform([]))
        }
    }

    /// Recovered channels have no session yet: they get the same disconnect deadline as a
    /// channel whose session just dropped (issue 15, item 5). A session that comes back
    /// calls it off; a peer that never does leads to the on-chain exit.
    private func armRecoveredDeadlines() async {
        for runner in registry.runners.withLock({ Array($0.values) }) where !runner.status.isClosed {
            await watcher.peerDisconnected(runner.id)
        }
    }

    /// The adapter's settlement domain, asked once (it never changes for one adapter).
    private func settlementDomain() async throws(SettlementError) -> SettlementDomain {
        if let known = knownDomain { return known }
        let domain = try await settlement.domain()
        knownDomain = domain
        return domain
    }

    /// Funds `params` once per node life: the first caller starts it, later calls do nothing.
    private func ensureFunding(_ params: ChannelParams, opening: Allocation) {
        guard !stopped, fundingStarted.insert(params.id).inserted else { return }
        spawn { await self.fund(params, opening: opening) }
    }

    private func context() -> RunnerContext {
        let switches = self.switches
        let signers = self.signers
        return RunnerContext(
            policy: policy, adapter: settlement, watcher: watcher, logger: logger,
            emit: { [sink] in sink.yield($0) },
            updateHandler: { switches.update.withLock { $0 } },
            isSilent: { switches.silent.load(ordering: .relaxed) },
            sign: { params, state in params.sign(state, with: signers.signer(for: params)) },
            deadlines: deadlines, clock: clock, random: random,
            holdFinal: { proposal, params in
                guard switches.holdFinals.load(ordering: .relaxed), proposal.proposed.isFinal else { return false }
                var held = SignedState(state: proposal.proposed)
                held[proposal.proposer] = proposal.signature
                held[proposal.proposer.peer] = params.sign(proposal.proposed, with: signers.signer(for: params))
                switches.heldFinals.withLock { $0[params.id] = held }
                return true
            },
            fund: { [weak self] params, opening in
                Task { await self?.ensureFunding(params, opening: opening) }
            })
    }

    /// Runs `work` on a task of its own that the node forgets once it ends (and cancels at shutdown).
    private func spawn(_ work: @escaping @Sendable () async -> Void) {
        let key = nextTransient
        nextTransient += 1
        transient[key] = Task {
            await work()
            self.forget(key)
        }
    }

    private func forget(_ key: Int) {
        transient[key] = nil
    }

    // MARK: - Public API

    /// Decides on the peers' proposals from now on (default ``Node/acceptPaymentsToMe``).
    public nonisolated func setUpdateHandler(_ handler: @escaping UpdateHandler) {
        switches.update.withLock { $0 = UpdateHandlerBox(handler) }
    }

    /// Makes our moves when a game continues on chain (force-move): called with the
    /// registered state whenever it is our turn there. Without a handler we do not move on
    /// chain, so we forfeit once the window closes.
    public nonisolated func setChainMoveHandler(_ handler: @escaping ChainMoveHandler) {
        switches.chainMove.withLock { $0 = ChainMoveHandlerBox(handler) }
        // A game registered before the handler was set (a restarted node replays the chain
        // before its caller can set one) is looked at again now: else we would forfeit it
        // (found by the simulator, issue 16).
        Task { await self.reconsiderChainMoves() }
    }

    private func reconsiderChainMoves() {
        for id in registry.runners.withLock({ $0.values.filter { !$0.status.isClosed }.map(\.id) }).sorted(by: {
            $0.digest.bytes.lexicographicallyPrecedes($1.digest.bytes)
        }) {
            spawn { await self.considerChainMove(id) }
        }
    }

    /// Decides on the peers' channel proposals from now on (default ``Node/acceptPaymentChannels``).
    public nonisolated func setOpenHandler(_ handler: @escaping OpenHandler) {
        switches.open.withLock { $0 = OpenHandlerBox(handler) }
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
        if current !== session { logger.debug("session with \(peer.shortID) changed while opening") }
        let opening = Allocation(deposit, theirs)
        let runner = ChannelRunner(
            engine: engine, rules: rules, funding: opening, session: current, funded: false, closing: nil, closed: false,
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
    private static func waitUntilOpened(_ runner: ChannelRunner, within timeout: Duration, clock: any NodeClock) async -> Bool {
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
    private final class OneShot: Sendable {
        private let waiter = Locked<CheckedContinuation<Bool, Never>?>(nil)
        func arm(_ continuation: CheckedContinuation<Bool, Never>) { waiter.withLock { $0 = continuation } }
        func resume(returning value: Bool) { waiter.withLock { $0.take() }?.resume(returning: value) }
    }

    /// The channel with `id`, if this node has it.
    public func channel(_ id: ChannelID) -> Channel? {
        registry.runners.withLock { $0[id] } == nil ? nil : Channel(id: id, node: self)
    }

    /// Every channel this node has (closed ones included until restart).
    public nonisolated var channels: [Channel] {
        registry.runners.withLock { $0.keys.map { Channel(id: $0, node: self) } }
    }

    /// Status of every channel, most useful for dashboards and `parley node status`.
    public nonisolated var statuses: [ChannelStatus] {
        // By ID bytes: the same order as by hex, without making two strings per comparison.
        registry.runners.withLock { $0.values.map(\.status) }
            .sorted { $0.id.digest.bytes.lexicographicallyPrecedes($1.id.digest.bytes) }
    }

    /// Drill and demo switch: while silent, this node drops every channel message it
    /// receives and sends none (its sessions stay up, its watcher keeps following the
    /// chain). This is how a peer that "stops answering" is simulated.
    @_spi(Drills) public nonisolated func setSilent(_ isSilent: Bool) {
        switches.silent.store(isSilent, ordering: .relaxed)
    }

    /// Drill switch: while offline the node has no peer sessions at all — links stopped,
    /// sessions closed, inbound handshakes refused — as if the network were cut. Back
    /// online, it redials the peers it dialled before. Channels and the watcher carry on.
    @_spi(Drills) public func setOffline(_ offline: Bool) async {
        switches.offline.store(offline, ordering: .relaxed)
        if offline {
            for (peer, state) in peers {
                peers[peer]?.link = nil
                await state.link?.stop()
                state.session?.close(reason: "node went offline")
            }
        } else {
            let open = Set(registry.runners.withLock { $0.values.filter { !$0.status.isClosed }.map(\.peer) })
            for peer in open { if let address = addresses[peer] { startLink(to: peer, at: address) } }
        }
    }

    /// Drill switch, the attack of issue 15 item 1: while on, this node answers every final
    /// state the peer proposes with "declined", but first countersigns it in secret (outside
    /// its journal) and keeps it (``heldFinalState(_:)``), to register it later. An honest
    /// peer must then take no more updates on that channel.
    @_spi(Drills) public nonisolated func setHoldingDeclinedFinals(_ on: Bool) {
        switches.holdFinals.store(on, ordering: .relaxed)
    }

    /// The final state this node countersigned in secret on channel `id` (drills).
    @_spi(Drills) public nonisolated func heldFinalState(_ id: ChannelID) -> SignedState? {
        switches.heldFinals.withLock { $0[id] }
    }

    /// Drill tool, the attack of issue 15 item 4: the player to move tries to end a game on
    /// chain by "moving" to a final copy of the registered state, signed by itself alone.
    /// The chain must refuse it (`progressNotAllowed(.finalStateNeedsBothSignatures)`).
    /// The copy is signed through the journal like any signature of ours.
    @_spi(Drills) public func progressToFinalCopy(_ id: ChannelID) async throws(NodeError) {
        let runner = try runner(id)
        let chain: ChannelOnChain?
        do { chain = try await settlement.channel(id) } catch { throw .chain(error) }
        guard let registered = chain?.registeredState else {
            throw .invalidParameters("nothing is registered on chain for channel \(id.shortID)")
        }
        var copy = registered
        copy.version = registered.version + 1
        copy.isFinal = true
        let signature: StateSignature
        do { (_, signature) = try await runner.signForChain(copy, from: registered) } catch {
            throw .invalidParameters("\(error)")
        }
        do { _ = try await settlement.progress(id, to: copy, moverSignature: signature) } catch { throw .chain(error) }
    }

    /// Drill tool: sends a deliberately malformed update on channel `id` (see `Tampering`).
    /// Returns the version it carried. The peer must reject it; our own state is untouched,
    /// and any version the bad state used is burned first (never signed twice).
    @discardableResult
    @_spi(Drills) public func sendTampered(_ id: ChannelID, _ kind: Tampering) async throws(NodeError) -> UInt64 {
        do { return try await runner(id).tamper(kind) } catch let error as NodeError {
            throw error
        } catch {
            throw .invalidParameters("\(error)")
        }
    }

    /// Submits `state` to the chain ourselves, outside the watcher. Our watcher keeps
    /// guarding the channel: if `state` is older than our newest fully-signed state (a
    /// mistake), the watcher answers it with the newest one, as it would the peer's.
    public func register(_ state: SignedState) async throws(NodeError) {
        _ = try runner(state.state.channelID)
        do { _ = try await settlement.register(state) } catch { throw .chain(error) }
    }

    /// Drill tool: registers `state` as a cheater would, and switches off our own
    /// watcher's refutation on this channel for good, so that the *other* side's watcher is
    /// the one tested. Never use it on a channel that holds money you care about.
    @_spi(Drills) public func registerAsCheater(_ state: SignedState) async throws(NodeError) {
        let id = state.state.channelID
        _ = try runner(id)
        await watcher.stopRefuting(id)
        do { _ = try await settlement.register(state) } catch { throw .chain(error) }
    }

    /// Stops everything: peer links, listener, sessions, channel tasks, the watcher, the
    /// journal and (if the node made it) the event loop. Channels stay in the journal; a
    /// new node on the same journal resumes them.
    public func shutDown() async {
        guard !stopped else { return }
        stopped = true
        for state in peers.values { await state.link?.stop() }
        await listener?.close()
        for state in peers.values { state.session?.close(reason: "node shut down") }
        peers = [:]
        for waiters in sessionWaiters.values { waiters.forEach { $0.resume(returning: nil) } }
        sessionWaiters = [:]
        for runner in registry.runners.withLock({ Array($0.values) }) { await runner.stop() }
        await watcher.stop()
        notices.finish()
        incomingOpens.finish()
        for task in tasks { task.cancel() }
        for task in transient.values { task.cancel() }
        transient = [:]
        deadlines.stop()
        journal.close()
        sink.finish()
        await network.shutDown()
    }

    // MARK: - Channel operations (through `Channel`)

    nonisolated func runner(_ id: ChannelID) throws(NodeError) -> ChannelRunner {
        guard let runner = registry.runners.withLock({ $0[id] }) else { throw .unknownChannel(id) }
        return runner
    }

    func dispute(_ id: ChannelID) async throws(NodeError) {
        let runner = try runner(id)
        // The journal says closed as soon as the payout is withdrawn; the runner hears of it
        // a moment later.
        guard !runner.status.isClosed, journal.channels[id]?.isClosed != true else { throw .channelClosed(id) }
        runner.post(.closing(.exiting(.requested)))
        await watcher.dispute(id)
    }

    func waitUntilClosed(_ id: ChannelID) async throws(NodeError) {
        _ = try runner(id)
        do { try await watcher.waitUntilClosed(id) } catch { throw .watcher(error) }
    }

    // MARK: - Sessions

    /// The current session with `peer`, dialling `address` if there is none.
    private func session(
        with peer: PublicKey, at address: SocketAddress, within timeout: Duration
    ) async -> (any MessageLink)? {
        if let session = peers[peer]?.session { return session }
        startLink(to: peer, at: address)
        let clock = self.clock
        let timer = Task {
            do { try await clock.sleep(for: timeout) } catch { return }
            self.expireSessionWaiters(for: peer)
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { sessionWaiters[peer, default: []].append($0) }
    }

    private func expireSessionWaiters(for peer: PublicKey) {
        sessionWaiters.removeValue(forKey: peer)?.forEach { $0.resume(returning: nil) }
    }

    /// After a failed open: stop dialling a peer we have no channel with, and forget its address.
    private func forgetIfUnused(_ peer: PublicKey) async {
        guard !hasChannel(with: peer) else { return }
        if let link = peers[peer]?.link {
            peers[peer]?.link = nil
            await link.stop()
        }
        if addresses.removeValue(forKey: peer) != nil {
            saveAddresses()
        }
    }

    private func startLink(to peer: PublicKey, at address: SocketAddress) {
        guard !stopped, !switches.offline.load(ordering: .relaxed), peers[peer]?.link == nil else { return }
        let notices = self.notices
        let logger = self.logger
        let link = network.keepLink(to: peer, at: address, retry: policy.redial) { event in
            switch event {
            case let .connected(session): notices.yield(.up(session, dialed: address))
            case let .attemptFailed(why, retryIn):
                logger.debug("dial \(peer.shortID) at \(address) failed: \(why); retrying in \(retryIn)")
                notices.yield(.dialFailed(peer, "\(why)"))
            case .disconnected: break  // the session's own close event reports it
            }
        }
        peers[peer, default: PeerState()].link = link
        link.start()
    }

    private func handle(_ notice: SessionNotice) async {
        switch notice {
        case let .up(session, dialed): await sessionUp(session, dialed: dialed)
        case let .down(session, reason): sessionDown(session, reason: reason)
        case let .dialFailed(peer, why): dialFailed(peer, why)
        case let .announced(session, port): announced(session, port: port)
        }
    }

    /// A peer's announcement of its listening port. Kept only when we know no address for
    /// that peer yet: a dialled address that worked is never replaced by a claim. The host
    /// is the one the session came from, never one the peer names, so an announcement can
    /// only point us back at the peer's own machine; and any dial to it still has to
    /// meet the peer's key in the handshake.
    private func announced(_ session: any MessageLink, port: UInt16) {
        let peer = session.peer
        guard port != 0, addresses[peer] == nil, let came = try? SocketAddress(session.remoteDescription) else { return }
        // Written only for peers we have a channel with: anyone can connect with a fresh
        // key and announce, and the book must not grow with strangers. A stranger's
        // announcement waits in memory (bounded) for the channel it may propose next.
        guard hasChannel(with: peer) else {
            if announcedAddresses.count >= Self.maxAnnouncedAddresses, let any = announcedAddresses.keys.first {
                announcedAddresses[any] = nil
            }
            announcedAddresses[peer] = came.with(port: port)
            return
        }
        keepAnnounced(peer, came.with(port: port))
    }

    /// Whether any channel (open or closed) of ours is with `peer`.
    private func hasChannel(with peer: PublicKey) -> Bool {
        registry.runners.withLock { $0.values.contains { $0.peer == peer } }
    }

    /// Writes `addresses` to the peer book; a failure is only logged (the book is a
    /// convenience, not part of any channel's safety).
    private func saveAddresses() {
        do { try book.save(addresses) } catch { logger.warning("\(error)") }
    }

    /// At most this many announcements from peers without a channel are held.
    static let maxAnnouncedAddresses = 1024

    private func keepAnnounced(_ peer: PublicKey, _ address: SocketAddress) {
        guard addresses[peer] == nil else { return }
        addresses[peer] = address
        saveAddresses()
        logger.info("peer \(peer.shortID) announced it listens on \(address)")
    }

    /// An `open` waiting for a first session with a peer we have no channel with fails at
    /// the first failed dial (a refused connection answers in milliseconds; the user should
    /// not wait out the open's whole timeout). Peers with channels are redialled as before.
    private func dialFailed(_ peer: PublicKey, _ why: String) {
        guard sessionWaiters[peer]?.isEmpty == false,
            !hasChannel(with: peer)
        else { return }
        dialFailures[peer] = why
        expireSessionWaiters(for: peer)
    }

    /// Newest session wins. An inbound session from a peer we also dial pauses our link
    /// (otherwise both sides would keep replacing each other's session); the link comes
    /// back when that inbound session ends.
    private func sessionUp(_ session: any MessageLink, dialed: SocketAddress?) async {
        guard !stopped else { return session.close(reason: "node shut down") }
        let peer = session.peer
        if let dialed, addresses[peer] != dialed {
            // A handshake on this address succeeded: now it is worth keeping.
            addresses[peer] = dialed
            saveAddresses()
        }
        if dialed == nil, let link = peers[peer]?.link {
            peers[peer]?.link = nil
            await link.stop()
        }
        let old = peers[peer]?.session
        peers[peer, default: PeerState()].session = session
        let id = ObjectIdentifier(session)
        for runner in registry.runners.withLock({ $0.values.filter { $0.peer == peer } }) { runner.post(.attach(session)) }
        sink.yield(.peerConnected(peer))
        if let port = listeningAddress?.port {
            // Tell the peer where we listen, so it can dial us back after a restart even if
            // it only ever accepted (`PeerAnnouncement`). Best effort: a lost one is resent
            // with the next session.
            let bytes = PeerAnnouncement(port: port).wireBytes
            Task { try? await session.send(bytes) }
        }
        logger.info("session with \(peer.shortID) up (\(dialed == nil ? "accepted" : "dialled"), \(session.remoteDescription))")
        sessionWaiters.removeValue(forKey: peer)?.forEach { $0.resume(returning: session) }
        if let old, old !== session { old.close(reason: "replaced by a newer session") }
        // Messages go from the transport straight to their channel's mailbox (no hop
        // through a reader task). Not kept in `tasks`: the task ends by itself when its
        // session closes (shutDown closes them all).
        let notices = self.notices
        Task {
            let reason = await session.run { [weak self] bytes in self?.route(bytes, from: session, id: id) }
            notices.yield(.down(session, reason))
        }
    }

    private func sessionDown(_ session: any MessageLink, reason: SessionCloseReason) {
        let peer = session.peer
        guard let current = peers[peer]?.session, current === session else { return }
        peers[peer]?.session = nil
        let id = ObjectIdentifier(session)
        for runner in registry.runners.withLock({ $0.values.filter { $0.peer == peer } }) { runner.post(.detach(id)) }
        sink.yield(.peerDisconnected(peer, reason: reason.description))
        logger.info("session with \(peer.shortID) ended: \(reason)")
        if !stopped, peers[peer]?.link == nil, let address = addresses[peer],
            registry.runners.withLock({ $0.values.contains { $0.peer == peer && !$0.status.isClosed } })
        {
            startLink(to: peer, at: address)
        }
    }

    /// Decodes one message and posts it to its channel's runner. Runs on the loop thread:
    /// it never waits (channel proposals go to the node's open queue).
    private nonisolated func route(_ bytes: [UInt8], from session: any MessageLink, id: ObjectIdentifier) {
        guard !switches.silent.load(ordering: .relaxed) else { return }
        let message: ChannelMessage
        if PeerAnnouncement.isAnnouncement(bytes) {
            if let announcement = PeerAnnouncement(wireBytes: bytes) {
                let notices = self.notices
                notices.yield(.announced(session, announcement.port))
            }
            return
        }
        do { message = try ChannelMessage(wireBytes: bytes) } catch {
            logger.notice("undecodable message from \(session.peer.shortID): \(error)")
            sink.yield(.error(nil, "undecodable message from peer \(session.peer.shortID): \(error)"))
            return
        }
        if let runner = registry.runners.withLock({ $0[message.channelID] }) {
            guard runner.peer == session.peer else {
                sink.yield(.error(message.channelID, "message for this channel from \(session.peer.shortID), who is not in it"))
                return
            }
            runner.post(.received(message, via: id))
        } else if case let .openProposal(proposal) = message {
            // One at a time for the whole node, in arrival order: a proposal repeated on a
            // reconnect must find the channel the first one created.
            incomingOpens.yield((proposal, session))
        } else if journal.channels[message.channelID]?.isClosed == true {
            // A peer that has not seen the end of a channel we closed (it reestablishes
            // after a restart): nothing to do, and nothing wrong.
            logger.debug("message for closed channel \(message.channelID.shortID) from \(session.peer.shortID)")
        } else {
            logger.notice("message for unknown channel \(message.channelID.shortID) from \(session.peer.shortID)")
            sink.yield(.error(nil, "ignored a \(message.kind) for unknown channel \(message.channelID.shortID) from \(session.peer.shortID)"))
        }
    }

    /// A peer proposes a channel: ask the open handler, accept (journal first), fund.
    private func incomingOpen(_ proposal: OpenProposal, on session: any MessageLink) async {
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
            logger.notice("refused channel \(params.id.shortID) from \(session.peer.shortID): \(refusal)")
            sink.yield(.error(params.id, "refused a channel proposal from \(session.peer.shortID): \(refusal)"))
            return
        }
        guard await switches.open.withLock({ $0 }).decide(request) else {
            logger.info("declined channel \(params.id.shortID) from \(session.peer.shortID)")
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
            engine: engine, rules: rules, funding: opening, session: current === session ? session : nil, funded: false,
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
    private func openRefusal(_ request: OpenRequest, params: ParleyChannel.ChannelParams) async -> String? {
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
    private func fund(_ params: ChannelParams, opening: Allocation) async {
        let giveUp = clock.now + policy.watcher.fundingTimeout
        while !stopped {
            do {
                try await watcher.fundInBackground(params, opening: opening)
                if await watcher.isFunded(params.id) { registry.runners.withLock { $0[params.id] }?.post(.funded(nil)) }
                return
            } catch .chain(.transport(let why)) where clock.now < giveUp {
                logger.info("funding channel \(params.id.shortID): the chain is unreachable (\(why)); retrying")
                do { try await clock.sleep(for: policy.watcher.retryDelay) } catch { return }
            } catch {
                logger.warning("funding channel \(params.id.shortID): \(error)")
                sink.yield(.error(params.id, "funding: \(error)"))
                // The deposit could not be made in time (or at all): the channel is given
                // up, not left open at version 0.
                if case .stopped = error { return }
                await watcher.abandonFunding(params.id)
                return
            }
        }
    }

    // MARK: - Games on chain

    /// When the chain's registered state of a game is ours to move, asks the chain-move
    /// handler and submits its move (`progress`, signed by us alone). Once per version.
    private func considerChainMove(_ id: ChannelID) async {
        guard !stopped, let runner = registry.runners.withLock({ $0[id] }), let rules = apps[runner.params.appID] else { return }
        let chain: ChannelOnChain?
        do { chain = try await settlement.channel(id) } catch {
            sink.yield(.error(id, "reading the chain for an on-chain move: \(error)"))
            return
        }
        guard let chain, !chain.isConcluded, let registered = chain.registeredState, let deadline = chain.deadline,
            !registered.isFinal, rules.mover(in: registered) == runner.me, chainMoves[id] != registered.version
        else { return }
        if announcedTurns[id] != registered.version {
            announcedTurns[id] = registered.version
            sink.yield(.yourTurnOnChain(id, state: registered, deadline: deadline))
        }
        if let unsent = unsentChainMoves[id], unsent.base == registered.version {
            chainMoves[id] = registered.version
            return await submitChainMove(id, unsent.move, unsent.signature, base: registered.version)
        }
        // Recorded as done only once a handler made the move (or the chain refused it for
        // good): without a handler yet, or with the chain out of reach, we look again.
        guard let handler = switches.chainMove.withLock({ $0 }), var next = await handler.move(id, registered) else { return }
        guard chainMoves[id] != registered.version else { return }  // another look got here first
        chainMoves[id] = registered.version
        next.channelID = id
        next.version = registered.version + 1
        guard !next.isFinal else {
            sink.yield(.error(id, "the chain-move handler's move is marked final; a move on chain never is"))
            return
        }
        do { try rules.validateTransition(from: registered, to: next, mover: runner.me) } catch {
            sink.yield(.error(id, "the chain-move handler's move is illegal: \(error.reason)"))
            return
        }
        // Signed through the journal like every signature (invariant 1): never a second
        // state at a version we already signed off chain. A move we already proposed off
        // chain at that version is the move we make.
        let move: ChannelState
        let signature: StateSignature
        do { (move, signature) = try await runner.signForChain(next, from: registered) } catch {
            sink.yield(.error(id, "cannot sign the move on chain: \(error)"))
            return
        }
        if move != next { sink.yield(.error(id, "moving on chain with the move we already proposed off chain, not the handler's")) }
        await submitChainMove(id, move, signature, base: registered.version)
    }

    /// Submits our signed move; when the chain cannot be reached, keeps it and tries again.
    private func submitChainMove(_ id: ChannelID, _ move: ChannelState, _ signature: StateSignature, base: UInt64) async {
        do {
            _ = try await settlement.progress(id, to: move, moverSignature: signature)
            unsentChainMoves[id] = nil
        } catch .transport(let why) {
            // The move is journaled and signed; the same move goes again once the chain answers.
            unsentChainMoves[id] = (base, move, signature)
            chainMoves[id] = nil
            sink.yield(.error(id, "moving on chain: the chain is unreachable (\(why)); retrying"))
            let delay = policy.watcher.retryDelay
            let clock = self.clock
            spawn {
                do { try await clock.sleep(for: delay) } catch { return }
                await self.considerChainMove(id)
            }
        } catch {
            unsentChainMoves[id] = nil
            sink.yield(.error(id, "moving on chain: \(error)"))
        }
    }

    // MARK: - Watcher

    private func forward(_ event: WatcherEvent) {
        let runner = { (id: ChannelID) in self.registry.runners.withLock { $0[id] } }
        switch event {
        case let .funded(id):
            runner(id)?.post(.funded(nil))
            sink.yield(.funded(id))
        case let .registered(id, version, deadline, by):
            runner(id)?.post(.closing(.registeredOnChain(version: version)))
            sink.yield(.registered(id, version: version, deadline: deadline, by: by))
            spawn { await self.considerChainMove(id) }
        case let .refuted(id, stale, with):
            sink.yield(.refuted(id, stale: stale, with: with))
            spawn { await self.considerChainMove(id) }
        case let .progressed(id, version, deadline, mover):
            runner(id)?.post(.closing(.progressedOnChain(version: version)))
            sink.yield(.progressed(id, version: version, deadline: deadline, mover: mover))
            spawn { await self.considerChainMove(id) }
        case let .exitStarted(id, version, reason):
            runner(id)?.post(.closing(.exiting(reason)))
            sink.yield(.exitStarted(id, version: version, reason: reason))
        case let .peerSilent(id):
            sink.yield(.peerSilent(id))
        case let .concluded(id, version, allocation):
            sink.yield(.concluded(id, version: version, allocation: allocation))
        case let .withdrawn(id, amount):
            sink.yield(.withdrawn(id, amount: amount))
        case let .closed(id):
            runner(id)?.post(.closed)
            sink.yield(.closed(id))
        case let .failed(id, why):
            sink.yield(.error(id, why))
        case let .abandoned(id):
            sink.yield(.abandoned(id))
        }
    }
}
