import Logging
import ParleyChannel
@_spi(Simulation) import ParleyCrypto
import ParleyGames
import ParleyJournal
import ParleyNode
import ParleySettlement
import ParleyTransport
import ParleyLocks
import ParleyWire

/// How a simulated run is shaped. Everything else comes from the seed.
public struct SimulationConfig: Sendable {
    /// Adversarial steps before Mallory goes quiet and the liveness phase starts.
    public var steps = 120
    /// Fault kinds on the honest side.
    public var crashes = true
    public var chainOutages = true
    public var partitions = true
    /// Seeded delay, loss, duplication and reordering on the link.
    public var networkFaults = true
    /// Challenge window of every channel, in chain seconds. The honest node is never away
    /// from the chain (crashed, or its endpoint down) for more than ``maxDowntime`` at a
    /// time, well inside a window: the synchrony every state-channel protocol assumes (a
    /// node away for a whole window needs a watchtower).
    public var challengeDuration: UInt64 = 60
    /// Longest a crash keeps the honest node down, and longest a chain outage lasts.
    public var maxDowntime: Duration = .seconds(15)
    /// Largest jump of virtual time between two steps.
    public var maxStepTime: Duration = .seconds(3)

    public init() {}
}

/// What one seed did.
public struct SimulationResult: Sendable {
    public let seed: UInt64
    /// The first oracle rule that broke, if any.
    public var failure: String?
    public var steps = 0
    public var virtualTime: Duration = .zero
    public var jobs = 0
    /// Moves and faults, by kind: Mallory's, the honest user's and the simulator's.
    public var moves: [String: Int] = [:]
    /// What the honest node reported, by event kind: which node paths the run reached.
    public var nodePaths: [String: Int] = [:]
    public var trace = SimTrace()
}

/// One seeded run: the real `Node` (engine, journal over ``SimulatedDisk``, watcher,
/// deadlines) against ``Mallory`` on a ``SimNetwork`` and a `LocalChain`, all in virtual
/// time on one thread under ``SimScheduler``. The same seed replays the same run.
public final class Simulation {
    public let seed: UInt64
    public let config: SimulationConfig
    let scheduler: SimScheduler
    let clock: VirtualClock
    let chain: LocalChain
    /// The simulator's own choices (which move, which fault, how much time passes).
    let choices: SimRandom
    let honestKey: SigningKey
    let malloryKey: SigningKey
    let disk = SimulatedDisk()
    let book = MemoryPeerAddressStore()
    let chainFaults = ChainFaults()
    let box = Box()
    var network: SimNetwork?
    var mallory: Mallory?
    var node: Node?
    var port: SimChainPort?
    var incarnation = 0
    var crashed = false
    var outageUntil: Duration?
    /// When the crashed honest node comes back.
    var restartAt: Duration?
    /// When Mallory reads again, and answers dials again, after she stopped.
    var readingResumes: Duration?
    var dialsResume: Duration?
    var nextUpdate: UpdateID = 1
    var step = 0
    let policy: NodePolicy
    static let journalDirectory = "/sim/honest"
    static let startingBalance: Amount = 1_000_000
    /// How long a user's `pay`, `update` or `close` may take: each wait on the peer (for the
    /// link to come back, for an answer, for its `reestablish`) ends after the proposal
    /// timeout, and a call meets at most a few of them; the rest is slack.
    static let updateCallBound: Duration = .seconds(30)
    /// `open`: its own timeout for the peer's signature (10 s here), then the funding
    /// timeout, a chain outage and slack.
    static let openCallBound: Duration = .seconds(90)

    /// State the node's tasks write from within jobs (on the simulation thread).
    final class Box: @unchecked Sendable {
        var oracle: Oracle?
        var result: SimulationResult?
        var trace = SimTrace()
        var now: () -> Duration = { .zero }
        var step = 0
        var incarnation = 0
        var mallory: Mallory?
        var chain: LocalChain?
        /// How long before a window closes a commitment still counts as one the node can
        /// put on chain (its longest time away from the chain, plus its retry pace).
        var actionMargin: UInt64 = 20

        /// The user's calls not returned yet: what, on which life of the node, since when,
        /// and how long it may take.
        var calls: [Int: (what: String, life: Int, since: Duration, bound: Duration)] = [:]
        private var nextCall = 0

        /// Starts tracking a user call; `finish(_:)` it when it returns or throws.
        func begin(_ what: String, bound: Duration) -> Int {
            nextCall += 1
            calls[nextCall] = (what, incarnation, now(), bound)
            return nextCall
        }

        func finish(_ call: Int) { calls[call] = nil }

        /// Every wait on the peer has a deadline (issue 15, item 6): a call of the user's
        /// returns (or throws) within its bound while the node that took it lives.
        func checkCalls() {
            let now = now()
            for (id, call) in calls.sorted(by: { $0.key < $1.key }) {
                if call.life != incarnation {
                    calls[id] = nil  // that life crashed: the call died with it
                } else if now - call.since > call.bound {
                    oracle?.report(Oracle.Violation(
                        rule: .liveness,
                        detail: "the user's \(call.what) has not returned after \(now - call.since): every wait on the peer needs a deadline"))
                    return
                }
            }
        }

        func note(_ lane: SimTrace.Lane, _ text: String) { trace.add(lane, text, at: now(), step: step) }
        func count(_ key: String) { result?.moves[key, default: 0] += 1 }
    }

    public init(seed: UInt64, config: SimulationConfig = SimulationConfig(), scheduler: SimScheduler) throws {
        self.seed = seed
        self.config = config
        self.scheduler = scheduler
        choices = SimRandom(seed: seed)
        chain = LocalChain(apps: [TicTacToe()])
        clock = VirtualClock(chain: chain)
        let keys = choices.fork(label: "keys")
        honestKey = try SigningKey(seed: keys.bytes(SigningKey.seedByteCount))
        malloryKey = try SigningKey(seed: keys.bytes(SigningKey.seedByteCount))
        var policy = NodePolicy(
            watcher: WatcherPolicy(
                disputeOnSilence: true, disconnectGrace: .seconds(8), fundingTimeout: .seconds(40),
                clockPollInterval: .seconds(1), retryDelay: .seconds(1)),
            proposalTimeout: .seconds(4), challengeDuration: config.challengeDuration,
            redial: RetryPolicy(initialDelay: .milliseconds(200), maxDelay: .seconds(3)),
            turnTimeout: .seconds(10),
            opens: OpenLimits(maxDeposit: 10_000, challengeDurations: 5...600))
        // Timeouts here are seconds: a quarter-second timer tick keeps the wake-ups few.
        policy.timerResolution = .milliseconds(250)
        self.policy = policy
    }

    /// Runs the seed to the end and judges it.
    public func run() -> SimulationResult {
        // Verification answers are remembered within a schedule (pure, so nothing changes
        // but the time) and forgotten between schedules.
        VerificationMemo.setEnabledOnce()
        VerificationMemo.reset()
        box.result = SimulationResult(seed: seed)
        box.oracle = Oracle(honest: honestKey.publicKey)
        let clock = self.clock
        box.now = { clock.now }
        do {
            try setUp()
            while step < config.steps, box.oracle?.violation == nil {
                step += 1
                box.step = step
                act()
                settle(upTo: clock.now + randomDuration(upTo: config.maxStepTime))
                box.oracle?.checkConservation(chain.adjudicator.ledger)
                box.checkCalls()
                // A restart starts the node's funding timeout again; an outage may hold up
                // a deposit or a reclaim by its length.
                box.oracle?.checkFunding(
                    chain.adjudicator.ledger, now: clock.now, life: incarnation,
                    watching: node != nil && !crashed && !chainFaults.isDown,
                    limit: policy.watcher.fundingTimeout + config.maxDowntime + .seconds(20))
            }
            if box.oracle?.violation == nil { endGame() }
        } catch {
            box.oracle?.report(Oracle.Violation(rule: .journalReadable, detail: "\(error)"))
        }
        if scheduler.determinismBroken {
            box.oracle?.report(Oracle.Violation(
                rule: .determinism,
                detail: "\(scheduler.foreignEnqueues) jobs were enqueued from another thread (Task.sleep, Task.yield or a real thread under simulation)"))
        }
        var result = box.result ?? SimulationResult(seed: seed)
        result.failure = box.oracle?.violation?.description
        result.steps = step
        result.virtualTime = clock.now
        result.trace = box.trace
        if let mallory {
            for (move, count) in mallory.moves { result.moves["mallory." + move.rawValue, default: 0] += count }
        }
        if let network {
            let stats = network.statistics
            result.moves["network.dropped", default: 0] += stats.dropped
            result.moves["network.duplicated", default: 0] += stats.duplicated
        }
        tearDown()
        return result
    }

    // MARK: - Setting up

    func setUp() throws {
        let box = self.box
        let clock = self.clock
        let network = try SimNetwork(
            honestKey: honestKey.publicKey, malloryKey: malloryKey.publicKey, seed: choices.fork(label: "network").next(),
            conditions: config.networkFaults
                ? SimNetwork.Conditions(
                    maxDelay: .milliseconds(choices.integer(in: 1...400)), dropRate: choices.chance(0.3) ? 0.02 : 0,
                    duplicateRate: choices.chance(0.3) ? 0.02 : 0, reorder: choices.chance(0.2))
                : SimNetwork.Conditions(),
            now: { clock.now },
            toMallory: { event in box.mallory?.hear(event) },
            tap: { bytes, fromHonest in
                if fromHonest { box.oracle?.honestSent(bytes) } else { box.oracle?.malloryProposed(bytes) }
                box.note(.wire, (fromHonest ? "H → M " : "M → H ") + Self.summary(bytes))
            })
        self.network = network
        let mallory = Mallory(
            key: malloryKey, chain: chain.adapter(for: malloryKey.publicKey), honest: honestKey.publicKey,
            apps: [PaymentApp(), TicTacToe()], seed: choices.fork(label: "mallory").next()
        ) { [box] text in box.note(.mallory, text) }
        self.mallory = mallory
        box.mallory = mallory
        box.chain = chain
        box.actionMargin = UInt64(config.maxDowntime.components.seconds) + 5
        let faucet = chain.adapter(for: honestKey.publicKey)
        let malloryFaucet = chain.adapter(for: malloryKey.publicKey)
        let balance = Self.startingBalance
        Task {
            _ = try? await faucet.mint(balance, to: faucet.identity)
            _ = try? await malloryFaucet.mint(balance, to: malloryFaucet.identity)
        }
        _ = scheduler.runUntilIdle()
        try startHonest()
    }

    /// Starts (or restarts) the honest node on what its disk durably holds.
    func startHonest() throws {
        incarnation += 1
        box.incarnation = incarnation
        let life = incarnation
        let journal: Journal
        do {
            // Zeros written 2 KiB ahead, so crashes land in allocated space, at its edge and
            // past it (a real node allocates 1 MiB; the simulated disk copies whole files).
            journal = try Journal(
                directory: Self.journalDirectory, durability: .fsync, preallocationBytes: 2048, fileSystem: disk.fileSystem(),
                writer: .inline)
        } catch {
            throw Oracle.Violation(rule: .journalReadable, detail: "the journal cannot be opened after a crash: \(error)")
        }
        box.oracle?.checkRecovered(journal.recovery.channels)
        if life > 1 {
            box.note(.honest, "restarts: \(journal.recovery.channels.count) channels, torn tail: \(journal.recovery.truncatedTail)")
        }
        guard let network else { return }
        let box = self.box
        let port = SimChainPort(chain: chain, identity: honestKey.publicKey, faults: chainFaults) { submission in
            box.oracle?.honestSubmitted(submission)
            if case let .register(state) = submission {
                box.note(.chain, "\(state.state.channelID.shortID) honest registers v\(state.version)")
            }
        }
        self.port = port
        let time = clock.view(incarnation: life)
        let random = choices.fork(label: "honest-\(life)")
        let environment = NodeEnvironment(network: network.view(clock: time, random: random), clock: time, random: random)
        var logger = Logger(label: "parley.sim")
        logger.logLevel = .critical
        let (key, address, book, policy) = (honestKey, network.honestAddress, self.book, self.policy)
        let started = Locked<Node?>(nil)
        let player = choices.fork(label: "player-\(life)")
        Task {
            do {
                let node = try await Node(
                    identity: key, listen: address, journal: journal, peerAddresses: book, settlement: port,
                    policy: policy, logger: logger, apps: [TicTacToe()], environment: environment)
                playFair(node, random: player)
                started.withLock { $0 = node }
                for await event in node.events {
                    guard box.incarnation == life else { return }
                    box.record(event)
                }
            } catch {
                box.oracle?.report(Oracle.Violation(rule: .journalReadable, detail: "the node did not start: \(error)"))
            }
        }
        _ = scheduler.runUntilIdle()
        node = started.withLock { $0 }
        crashed = node == nil
    }

    /// The honest process dies: unsynced writes are lost (maybe a torn tail), links drop,
    /// its timers and chain access end. Nothing of it runs again.
    func crashHonest() {
        box.note(.fault, "crash (life \(incarnation))")
        box.count("fault.crash")
        port?.kill()
        network?.crashHonest()
        _ = clock.kill(incarnation: incarnation)
        var tearing = SeededRandom(seed: choices.next())
        disk.crash(tearing: &tearing)
        box.incarnation = -1
        release(node)
        node = nil
        crashed = true
    }

    /// Lets a dead life's tasks end, so a long campaign does not keep every crashed node's
    /// suspended tasks (they held about half a megabyte per schedule, until the task
    /// allocator ran out of mappings thousands of schedules in). Only after everything it
    /// could touch is dead — its chain port, links, timers and disk handle — so the
    /// shutdown has no effect the oracle or the next life could see.
    func release(_ dead: Node?) {
        if let dead { Task { await dead.shutDown() } }
        _ = scheduler.runUntilIdle()
    }

    func tearDown() {
        port?.kill()
        network?.crashHonest()
        _ = clock.kill(incarnation: incarnation)
        disk.crash()
        release(node)
        node = nil
        _ = clock.cancelAll()
        _ = scheduler.runUntilIdle()
        // Mallory's `note` closure holds the box, and the box holds her: without this every
        // schedule's Mallory (and her key, in libsodium's guarded memory: a few mappings
        // each) stayed alive until the process ran out of mappings.
        box.mallory = nil
        box.chain = nil
        mallory = nil
    }

}

/// The honest player: payment channels as the defaults say, games with any legal move
/// (the rules have checked it), and on chain it always makes a move when it is its turn.
func playFair(_ node: Node, random: SimRandom) {
    node.setOpenHandler { request in request.appID == .payment || request.appID == TicTacToe.id }
    node.setUpdateHandler { update in
        update.current.appData.isEmpty ? await Node.acceptPaymentsToMe(update) : .accept
    }
    node.setChainMoveHandler { _, registered in
        guard let board = try? TicTacToe.Board(appData: registered.appData), !board.emptyCells.isEmpty else { return nil }
        return try? TicTacToe.move(board.emptyCells[random.integer(in: 0...(board.emptyCells.count - 1))], in: registered)
    }
}
