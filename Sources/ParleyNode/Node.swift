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

    let identity: SigningKey
    /// What signs states: the identity on Ed25519 channels, its settlement key on Ethereum ones.
    let signers: NodeSigners
    let watcher: Watcher
    let logger: Logger
    /// What this node records (Docs/Metrics.md), made with the factory bound at `init`.
    let metrics = NodeMetrics()
    /// How peers are reached (libuv TCP sessions, or the simulator's in-memory links).
    let network: any LinkNetwork
    let clock: any NodeClock
    let random: any NodeRandom
    let sink: AsyncStream<NodeEvent>.Continuation
    let apps: [AppID: any AppRules]
    let book: any PeerAddressStore
    let registry = Registry()
    let switches = Switches()
    let notices: AsyncStream<SessionNotice>.Continuation
    /// Channel proposals from peers, handled one at a time by one task.
    let incomingOpens: AsyncStream<(OpenProposal, any MessageLink)>.Continuation
    var listener: (any LinkListener)?
    var peers: [PublicKey: PeerState] = [:]
    var addresses: [PublicKey: SocketAddress] = [:]
    var sessionWaiters: [PublicKey: [CheckedContinuation<(any MessageLink)?, Never>]] = [:]
    /// Why the last dial for an `open` failed, for its error message.
    var dialFailures: [PublicKey: String] = [:]
    /// Our deposits for opens under way (checked against the chain balance, not yet on it).
    var depositsPromised: Amount = 0
    /// Where peers without a channel (yet) said they listen; bounded.
    var announcedAddresses: [PublicKey: SocketAddress] = [:]
    /// Tasks that run for the node's life (session notices, watcher events).
    var tasks: [Task<Void, Never>] = []
    /// Short tasks (funding, on-chain moves), each removed when it ends: keeping finished
    /// task handles kept their memory (≈ 1.5 KB per opened channel).
    var transient: [Int: Task<Void, Never>] = [:]
    var nextTransient = 0
    /// Every channel's proposal and turn timers.
    let deadlines: Deadlines<TimerFire>
    /// The registered version we last considered moving on, per game channel.
    var chainMoves: [ChannelID: UInt64] = [:]
    /// The registered version we last reported `yourTurnOnChain` for, per game channel.
    var announcedTurns: [ChannelID: UInt64] = [:]
    /// A move on chain we signed that the chain has not taken yet (its endpoint was down),
    /// by channel, with the registered version it moves from: submitted again as it is,
    /// never replaced by another (that would be a second state at one version).
    var unsentChainMoves: [ChannelID: (base: UInt64, move: ChannelState, signature: StateSignature)] = [:]
    /// The settlement adapter's domain, once asked (`settlementDomain()`).
    var knownDomain: SettlementDomain?
    /// See `context()`.
    private var runnerContext: RunnerContext?
    /// How many channels have work (see `RunnerActivity`).
    nonisolated let runnerActivity = RunnerActivity()
    /// Channels whose funding this node started (see `ensureFunding`).
    var fundingStarted: Set<ChannelID> = []
    /// When each peer proposed channels within the last minute (`OpenLimits.maxOpensPerMinute`).
    var recentOpens: [PublicKey: [Duration]] = [:]
    /// How long a proposal counts towards `OpenLimits.maxOpensPerMinute`.
    static let openRateWindow: Duration = .seconds(60)
    /// Past this many peers in `recentOpens`, the ones with no recent proposal are dropped.
    static let openRateTableSweep = 1_024
    var stopped = false

    final class Registry: Sendable {
        let runners = Locked<[ChannelID: ChannelRunner]>([:])
    }

    /// Settings channel tasks read without hopping to the node.
    final class Switches: Sendable {
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

    struct PeerState {
        var session: (any MessageLink)?
        var link: (any LinkKeeper)?
        var readers = 0
    }

    enum SessionNotice: Sendable {
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
        // A channel commits its own journal record on its own thread only while it is the
        // only channel with work (Docs/Journal.md, "A lone appender commits on its own thread").
        let activity = runnerActivity
        journal.enableInlineCommits { activity.busyChannels <= 1 }
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

    func start(
        _ noticeStream: AsyncStream<SessionNotice>, opens: AsyncStream<(OpenProposal, any MessageLink)>, listen: SocketAddress?
    ) async throws {
        tasks.append(Task { for await notice in noticeStream { await self.handle(notice) } })
        tasks.append(Task { for await (proposal, session) in opens { await self.incomingOpen(proposal, on: session) } })
        let watcherEvents = watcher.events
        tasks.append(Task { for await event in watcherEvents { self.forward(event) } })
        let (known, problems) = book.load()
        addresses = known
        for problem in problems { logger.warning("reading the peer book", metadata: ["problem": "\(problem)"]) }
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
                    logger.info("handshake failed", metadata: ["address": "\(address)", "reason": "\(reason)"])
                },
                onLink: { session in notices.yield(.up(session, dialed: nil)) })
            listeningAddress = listener?.localAddress
        }
        for peer in Set(registry.runners.withLock { $0.values.filter { !$0.status.isClosed }.map(\.peer) }) {
            if let address = addresses[peer] { startLink(to: peer, at: address) }
        }
    }

    /// Restores an engine for every channel the journal holds that is not closed.
    func recoverChannels() throws {
        for (id, record) in journal.channels where !record.isClosed {
            guard let rules = apps[record.params.appID] else {
                logger.error(
                    "channel uses an app this node has no rules for; not restored",
                    metadata: ["channel": "\(id.shortID)", "app": "\(record.params.appID)"])
                sink.yield(.error(id, "no rules for app \(record.params.appID); channel not restored"))
                continue
            }
            let engine: JournaledEngine
            do { engine = try JournaledEngine.restore(record, key: signers.signer(for: record.params), rules: rules, journal: journal) } catch {
                logger.error("channel could not be restored", metadata: ["channel": "\(id.shortID)", "error": "\(error)"])
                sink.yield(.error(id, "could not restore from the journal: \(error)"))
                continue
            }
            let closing: ClosingReason? =
                record.exit.map { .exiting($0) } ?? (record.dispute != nil ? .disputeInJournal : nil)
            let runner = ChannelRunner(
                engine: engine, funding: record.funding, session: nil, funded: false,
                closing: closing, closed: false, settlingOnChain: record.dispute != nil, context: context())
            registry.runners.withLock { $0[id] = runner }
            logger.info("recovered channel", metadata: ["channel": "\(id.shortID)", "version": "\(record.latest.version)"])
            // One empty input: the runner then does what its state calls for (funding a fully
            // signed channel that is not funded yet), whichever way the opening completed.
            runner.post(.perform([]))
        }
    }

    /// Recovered channels have no session yet: they get the same disconnect deadline as a
    /// channel whose session just dropped (issue 15, item 5). A session that comes back
    /// calls it off; a peer that never does leads to the on-chain exit.
    func armRecoveredDeadlines() async {
        for runner in registry.runners.withLock({ Array($0.values) }) where !runner.status.isClosed {
            await watcher.peerDisconnected(runner.id)
        }
    }

    /// The adapter's settlement domain, asked once (it never changes for one adapter).
    func settlementDomain() async throws(SettlementError) -> SettlementDomain {
        if let known = knownDomain { return known }
        let domain = try await settlement.domain()
        knownDomain = domain
        return domain
    }

    /// The runners' context, made once and shared by every runner of this node.
    func context() -> RunnerContext {
        if let runnerContext { return runnerContext }
        let made = makeRunnerContext()
        runnerContext = made
        return made
    }

    private func makeRunnerContext() -> RunnerContext {
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
            },
            metrics: metrics, activity: runnerActivity)
    }

    /// Runs `work` on a task of its own that the node forgets once it ends (and cancels at shutdown).
    func spawn(_ work: @escaping @Sendable () async -> Void) {
        let key = nextTransient
        nextTransient += 1
        transient[key] = Task {
            await work()
            self.forget(key)
        }
    }

    func forget(_ key: Int) {
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

    /// Decides on the peers' channel proposals from now on (default ``Node/acceptPaymentChannels``).
    public nonisolated func setOpenHandler(_ handler: @escaping OpenHandler) {
        switches.open.withLock { $0 = OpenHandlerBox(handler) }
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

    /// Submits `state` to the chain ourselves, outside the watcher. Our watcher keeps
    /// guarding the channel: if `state` is older than our newest fully-signed state (a
    /// mistake), the watcher answers it with the newest one, as it would the peer's.
    public func register(_ state: SignedState) async throws(NodeError) {
        _ = try runner(state.state.channelID)
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
        metrics.peerSessions.decrement(by: Double(peers.values.filter { $0.session != nil }.count))
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

}
