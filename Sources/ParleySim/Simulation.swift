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
    private let scheduler: SimScheduler
    private let clock: VirtualClock
    private let chain: LocalChain
    /// The simulator's own choices (which move, which fault, how much time passes).
    private let choices: SimRandom
    private let honestKey: SigningKey
    private let malloryKey: SigningKey
    private let disk = SimulatedDisk()
    private let book = MemoryPeerAddressStore()
    private let chainFaults = ChainFaults()
    private let box = Box()
    private var network: SimNetwork?
    private var mallory: Mallory?
    private var node: Node?
    private var port: SimChainPort?
    private var incarnation = 0
    private var crashed = false
    private var outageUntil: Duration?
    /// When the crashed honest node comes back.
    private var restartAt: Duration?
    /// When Mallory reads again, and answers dials again, after she stopped.
    private var readingResumes: Duration?
    private var dialsResume: Duration?
    private var nextUpdate: UpdateID = 1
    private var step = 0
    private let policy: NodePolicy
    private static let journalDirectory = "/sim/honest"
    private static let startingBalance: Amount = 1_000_000
    /// How long a user's `pay`, `update` or `close` may take: each wait on the peer (for the
    /// link to come back, for an answer, for its `reestablish`) ends after the proposal
    /// timeout, and a call meets at most a few of them; the rest is slack.
    private static let updateCallBound: Duration = .seconds(30)
    /// `open`: its own timeout for the peer's signature (10 s here), then the funding
    /// timeout, a chain outage and slack.
    private static let openCallBound: Duration = .seconds(90)

    /// State the node's tasks write from within jobs (on the simulation thread).
    fileprivate final class Box: @unchecked Sendable {
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

    private func setUp() throws {
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
    private func startHonest() throws {
        incarnation += 1
        box.incarnation = incarnation
        let life = incarnation
        let journal: Journal
        do {
            journal = try Journal(
                directory: Self.journalDirectory, durability: .fsync, fileSystem: disk.fileSystem(), writer: .inline)
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
    private func crashHonest() {
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
    private func release(_ dead: Node?) {
        if let dead { Task { await dead.shutDown() } }
        _ = scheduler.runUntilIdle()
    }

    private func tearDown() {
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

    // MARK: - Steps

    /// One move by someone: Mallory (most often), the honest user, or a fault.
    private func act() {
        let roll = choices.integer(in: 0...99)
        if roll < 55 {
            malloryActs()
        } else if roll < 85 {
            honestUserActs()
        } else {
            injectFault()
        }
        flushMallory()
    }

    private func honestUserActs() {
        guard let node, !crashed else { return }
        let channels = node.statuses.filter { !$0.isClosed }
        let kind = choices.integer(in: 0...9)
        let box = self.box
        if kind < 3 || channels.isEmpty {
            guard let network else { return }
            let game = choices.chance(0.35)
            let deposit = Amount(choices.integer(in: 1...500))
            let theirs = Amount(choices.integer(in: game ? 1...500 : 0...500))
            box.count(game ? "honest.open-game" : "honest.open")
            box.note(.honest, "opens \(game ? "a game" : "a channel"): deposits \(deposit), Mallory \(theirs)")
            let (peer, address, challenge) = (malloryKey.publicKey, network.malloryAddress, config.challengeDuration)
            let call = box.begin("open", bound: Self.openCallBound)
            Task {
                defer { box.finish(call) }
                do {
                    let channel = try await node.open(
                        with: peer, at: address, deposit: deposit, theirs: theirs,
                        app: game ? TicTacToe.id : .payment, appData: game ? TicTacToe.initialAppData : [],
                        challengeDuration: challenge, timeout: .seconds(10))
                    box.note(.honest, "opened \(channel.id.shortID)")
                } catch {
                    box.note(.honest, "open failed: \(error)")
                }
            }
            return
        }
        let status = channels[choices.integer(in: 0...(channels.count - 1))]
        guard let channel = node.channels.first(where: { $0.id == status.id }) else { return }
        if status.latest.state.appData.count == TicTacToe.Board.appDataByteCount, (3...6).contains(kind) {
            // A game: our move when it is our turn.
            guard let board = try? TicTacToe.Board(appData: status.latest.state.appData), !board.emptyCells.isEmpty,
                TicTacToe().mover(in: status.latest.state) == status.me
            else { return }
            let cell = board.emptyCells[choices.integer(in: 0...(board.emptyCells.count - 1))]
            box.count("honest.move")
            box.note(.honest, "marks cell \(cell) on \(status.id.shortID)")
            let call = box.begin("move on \(status.id.shortID)", bound: Self.updateCallBound)
            Task {
                defer { box.finish(call) }
                do { _ = try await channel.update { state in state = try TicTacToe.move(cell, in: state) } } catch {
                    box.note(.honest, "move failed: \(error)")
                    // The node says the game must continue on chain: so be it.
                    if case .updateFailed(_, .refused(.moveMustGoOnChain))? = error as? NodeError {
                        try? await channel.dispute()
                    }
                }
            }
            return
        }
        switch kind {
        case 3...6:
            let mine = status.latest.state.allocation[status.me]
            guard mine > 0 else { return }
            let amount = Amount(choices.integer(in: 1...Int(min(mine, 50).value)))
            box.count("honest.pay")
            box.note(.honest, "pays \(amount) on \(status.id.shortID)")
            let call = box.begin("pay on \(status.id.shortID)", bound: Self.updateCallBound)
            Task {
                defer { box.finish(call) }
                do { _ = try await channel.pay(amount) } catch { box.note(.honest, "pay failed: \(error)") }
            }
        case 7, 8:
            box.count("honest.close")
            box.note(.honest, "closes \(status.id.shortID)")
            let call = box.begin("close of \(status.id.shortID)", bound: Self.updateCallBound)
            Task {
                defer { box.finish(call) }
                do { _ = try await channel.close() } catch {
                    box.note(.honest, "close failed: \(error)")
                    if case .updateFailed(_, .refused(.moveMustGoOnChain))? = error as? NodeError {
                        try? await channel.dispute()
                    }
                }
            }
        default:
            box.count("honest.dispute")
            box.note(.honest, "disputes \(status.id.shortID)")
            Task {
                do { try await channel.dispute() } catch { box.note(.honest, "dispute failed: \(error)") }
            }
        }
    }

    private func injectFault() {
        let kind = choices.integer(in: 0...9)
        switch kind {
        case 0...3 where config.crashes && !crashed:
            crashHonest()
            if choices.chance(0.5) {
                restart()
            } else {
                restartAt = clock.now + randomDuration(upTo: config.maxDowntime)
            }
        case 4...5 where config.chainOutages && !chainFaults.isDown:
            chainFaults.set(down: true)
            outageUntil = clock.now + randomDuration(upTo: config.maxDowntime)
            box.count("fault.chain-outage")
            box.note(.fault, "chain endpoint unreachable")
        case 6...7 where config.partitions:
            let until = clock.now + randomDuration(upTo: .seconds(25))
            network?.partition(until: until)
            box.count("fault.partition")
            box.note(.fault, "partition until \(until)")
        default:
            break
        }
    }

    private func restart() {
        box.count("fault.restart")
        if let mallory, choices.chance(0.3) { mallory.replayOnConnect = finishedOnChain() }
        do { try startHonest() } catch let violation as Oracle.Violation {
            box.oracle?.report(violation)
        } catch {
            box.oracle?.report(Oracle.Violation(rule: .journalReadable, detail: "\(error)"))
        }
    }

    /// Which channels are over as the chain sees them: concluded, given up, or never funded.
    private func finishedOnChain() -> (ChannelID) -> Bool {
        let chain = self.chain
        return { id in chain.channel(id).map { $0.isConcluded || $0.depositsClosed || !$0.isFunded } ?? true }
    }

    private func malloryActs() {
        guard let mallory, let network else { return }
        let channels = mallory.order
        let pick = { [choices] () -> ChannelID? in
            channels.isEmpty ? nil : channels[choices.integer(in: 0...(channels.count - 1))]
        }
        let kind = choices.integer(in: 0...29)
        switch kind {
        case 0...7:
            mallory.follow(limit: choices.integer(in: 1...8))
        case 8:
            mallory.count(.withhold)
        case 9:
            // A bribe where she holds a secret final, else a payment anywhere.
            let bribable = channels.filter { mallory.heldFinal($0) != nil }
            if !bribable.isEmpty, choices.chance(0.7) { mallory.count(.bribe) }
            if let id = bribable.isEmpty || !choices.chance(0.7) ? pick() : bribable[choices.integer(in: 0...(bribable.count - 1))],
                let held = mallory.channels[id], let engine = held.engine,
                engine.latest.isFullySigned
            {
                let mine = engine.latest.state.allocation[held.me]
                if mine > 0 {
                    mallory.pay(id, amount: Amount(choices.integer(in: 1...Int(min(mine, 20).value))), update: nextUpdate)
                    nextUpdate += 1
                }
            }
        case 10:
            if let id = pick() {
                mallory.finalize(id, update: nextUpdate)
                nextUpdate += 1
            }
        case 11...15:
            let forgeries: [Mallory.Move] = [.forgeOlder, .forgeSteal, .forgeFinal, .forgeSkip, .replayOtherChannel]
            if let id = pick() { mallory.forge(forgeries[kind - 11], on: id) }
        case 16:
            if let id = pick() { mallory.forgeCommitProof(on: id) }
        case 17:
            if let id = pick() { mallory.lieAtReestablish(on: id) }
        case 18:
            mallory.garbage()
        case 19:
            mallory.declineFinals.toggle()
            mallory.count(.declineMode)
        case 20:
            mallory.refusingReestablish.toggle()
            mallory.count(.refuseReestablish)
        case 21:
            if let link = mallory.link, choices.chance(0.5) {
                mallory.count(.disconnect)
                network.malloryClose(link)
            } else {
                mallory.count(.dial)
                _ = network.malloryDial(now: clock.now)
            }
        case 22:
            // She stops reading for a while: the honest sender's budget fills, then it waits.
            mallory.count(.stopReading)
            network.setMalloryReading(false, now: clock.now)
            readingResumes = clock.now + randomDuration(upTo: .seconds(12))
        case 23:
            mallory.count(.refuseDials)
            network.setMalloryListening(false)
            dialsResume = clock.now + randomDuration(upTo: .seconds(15))
        case 24...26:
            let moves: [Mallory.Move] = [
                .registerStale, .registerLatest, .registerHeldFinal, .conclude, .withdraw, .reclaim, .deposit, .depositMismatched,
            ]
            if let id = pick() { mallory.chainMove(moves[choices.integer(in: 0...(moves.count - 1))], on: id) }
        case 27:
            let domain = choices.chance(0.8) ? chain.domain : SettlementDomain.devchainDefault
            let game = choices.chance(0.35)
            mallory.count(domain != chain.domain ? .openWrongDomain : game ? .openGame : .open)
            mallory.open(
                mine: Amount(choices.integer(in: game ? 1...500 : 0...500)), theirs: Amount(choices.integer(in: game ? 1...500 : 0...500)),
                domain: domain, challenge: config.challengeDuration, app: game ? TicTacToe.id : .payment)
            if mallory.link == nil { _ = network.malloryDial(now: clock.now) }
        case 28 where choices.chance(0.5):
            // Games: her move off chain, or on chain when the registered game is hers to move.
            let games = channels.filter { mallory.channels[$0]?.params.appID == TicTacToe.id }
            guard !games.isEmpty else { return }
            let id = games[choices.integer(in: 0...(games.count - 1))]
            if let registered = chain.channel(id)?.registeredState, chain.channel(id)?.isConcluded == false {
                switch choices.integer(in: 0...9) {
                case 0...5: mallory.moveOnChain(id, registered: registered, finalCopy: false)
                case 6...7: mallory.moveOnChain(id, registered: registered, finalCopy: true)
                default: mallory.count(.stopMoving)
                }
            } else if choices.chance(0.8) {
                mallory.move(id, update: nextUpdate)
                nextUpdate += 1
            } else {
                mallory.count(.stopMoving)
            }
        case 28:
            if choices.chance(0.5) {
                mallory.replayOpen(preferring: finishedOnChain())
            } else {
                // A channel whose chain record she opens with other amounts than agreed, once
                // the node has signed version 0 (before that, the node would see the chain's
                // record and refuse the proposal: a used id). Half of them she alone funds
                // (the node's share is 0): her short deposit then makes the chain say
                // "funded", and she pays the node with money that is not there.
                mallory.count(.openMismatched)
                mallory.open(
                    mine: Amount(choices.integer(in: 1...500)),
                    theirs: choices.chance(0.5) ? 0 : Amount(choices.integer(in: 0...500)),
                    domain: chain.domain, challenge: config.challengeDuration, deposit: .depositMismatched)
                if mallory.link == nil { _ = network.malloryDial(now: clock.now) }
            }
        default:
            if let id = pick() {
                mallory.count(.skipDeposit)
                mallory.chainMove(choices.chance(0.5) ? .deposit : .depositMismatched, on: id)
            }
        }
    }

    /// Sends what Mallory wrote and runs the chain calls she queued.
    private func flushMallory() {
        guard let mallory, let network else { return }
        for (link, bytes) in mallory.outbox { network.mallorySend(bytes, on: link, now: clock.now) }
        mallory.outbox = []
        if mallory.wantsDisconnect, let link = mallory.link {
            mallory.wantsDisconnect = false
            network.malloryClose(link)
        }
        let calls = mallory.chainCalls
        mallory.chainCalls = []
        let box = self.box
        for (move, call) in calls {
            mallory.count(move)
            Task {
                do {
                    try await call()
                    box.note(.chain, "Mallory \(move.rawValue): done")
                } catch {
                    box.note(.chain, "Mallory \(move.rawValue): refused (\(error))")
                }
            }
        }
    }

    /// Lets virtual time run to `target`: messages delivered and timers fired in time order,
    /// every job run after each.
    private func settle(upTo target: Duration) {
        while true {
            _ = scheduler.runUntilIdle()
            flushMallory()
            if let until = outageUntil, clock.now >= until {
                chainFaults.set(down: false)
                outageUntil = nil
                box.note(.fault, "chain endpoint back")
            }
            if let at = restartAt, clock.now >= at {
                restartAt = nil
                restart()
            }
            if let until = readingResumes, clock.now >= until {
                readingResumes = nil
                mallory?.count(.resumeReading)
                network?.setMalloryReading(true, now: clock.now)
            }
            if let until = dialsResume, clock.now >= until {
                dialsResume = nil
                mallory?.count(.acceptDials)
                network?.setMalloryListening(true)
            }
            let nextMessage = network?.nextDelivery
            let nextTimer = clock.nextDeadline
            let wakeUps = [nextMessage, nextTimer, outageUntil, readingResumes, dialsResume, restartAt]
            guard let next = wakeUps.compactMap({ $0 }).min(), next <= target else { break }
            if next > clock.now { clock.advance(to: next) }
            network?.deliverDue(now: clock.now)
            _ = clock.fireDue()
        }
        if target > clock.now { clock.advance(to: target) }
        _ = scheduler.runUntilIdle()
    }

    // MARK: - The end

    /// Mallory stops cooperating (she may still act on chain); the honest node is healed
    /// and asked to close everything. Within the bound every channel must be settled.
    private func endGame() {
        guard let mallory else { return }
        // A third of the time she stays connected: she dials the node again at once and
        // accepts its dials, but answers nothing, so the node's waits for her `reestablish`
        // must end by themselves. Otherwise she is gone: link closed, dials refused.
        let staysConnected = choices.integer(in: 0...2) == 0
        box.note(.fault, staysConnected ? "heal: Mallory goes quiet, but stays connected" : "heal: Mallory goes quiet")
        mallory.quiet = true
        mallory.count(staysConnected ? .goQuietConnected : .goQuiet)
        chainFaults.set(down: false)
        outageUntil = nil
        network?.setMalloryReading(true, now: clock.now)
        readingResumes = nil
        dialsResume = nil
        restartAt = nil
        if crashed { restart() }
        if let link = mallory.link { network?.malloryClose(link) }
        if staysConnected {
            network?.setMalloryListening(true)
            _ = network?.malloryDial(now: clock.now)
        } else {
            network?.setMalloryListening(false)
        }
        let box = self.box
        // Half the time the user closes everything; the other half nobody asks, and the node
        // must get out by itself (its peer is gone: disconnect grace, funding timeout).
        let userCloses = choices.chance(0.5)
        box.note(.honest, userCloses ? "closes every channel" : "does nothing: the node is on its own")
        if let node, userCloses {
            for status in node.statuses where !status.isClosed {
                guard let channel = node.channels.first(where: { $0.id == status.id }) else { continue }
                let call = box.begin("close of \(status.id.shortID)", bound: Self.updateCallBound)
                Task {
                    defer { box.finish(call) }
                    do { _ = try await channel.close() } catch {
                        box.note(.honest, "close failed (\(error)); disputes")
                        try? await channel.dispute()
                    }
                }
            }
        }
        let challenge = Duration.seconds(Int64(config.challengeDuration))
        let bound = policy.proposalTimeout + policy.watcher.disconnectGrace + policy.watcher.fundingTimeout
            + challenge * 2 + .seconds(30)
        let deadline = clock.now + bound
        while clock.now < deadline {
            // Mallory may still do anything on chain while the honest node leaves.
            if choices.chance(0.2), let id = mallory.order.randomElement(using: &mallory.random) {
                let moves: [Mallory.Move] = [.registerStale, .conclude, .withdraw, .reclaim]
                mallory.chainMove(moves[choices.integer(in: 0...(moves.count - 1))], on: id)
            }
            settle(upTo: min(deadline, clock.now + .seconds(2)))
            box.checkCalls()
        }
        box.oracle?.checkConservation(chain.adjudicator.ledger)
        box.oracle?.checkSettled(chain.adjudicator.ledger, bound: bound)
    }

    /// One line for a message on the wire.
    static func summary(_ bytes: [UInt8]) -> String {
        guard let message = try? ChannelMessage(wireBytes: bytes) else { return "\(bytes.count) undecodable bytes" }
        let id = message.channelID.shortID
        switch message {
        case .openProposal: return "open \(id)"
        case .openAccept: return "open-accept \(id)"
        case let .propose(state, _): return "propose \(id) \(Oracle.describe(state))"
        case let .accept(_, version, _): return "accept \(id) v\(version)"
        case let .reject(_, version, reason): return "reject \(id) v\(version): \(reason)"
        case let .reestablish(_, committed, signed): return "reestablish \(id) c\(committed) s\(signed)"
        case let .commitProof(proof): return "commit-proof \(id) \(Oracle.describe(proof.state))"
        }
    }

    private func randomDuration(upTo limit: Duration) -> Duration {
        .milliseconds(choices.integer(in: 0...max(0, Int(limit / .milliseconds(1)))))
    }
}

extension Simulation.Box {
    /// What the honest node reported, for the oracle and the coverage count.
    func record(_ event: NodeEvent) {
        let kind: String
        switch event {
        case let .opened(id, _):
            kind = "opened"
            oracle?.honestOpened(id)
            note(.honest, "channel \(id.shortID) open")
        case .funded: kind = "funded"
        case .proposed: kind = "proposed"
        case let .committed(id, state, mine):
            kind = mine ? "committed-mine" : "committed-theirs"
            let onChain = chain?.channel(id)
            let now = chain?.now.seconds ?? 0
            let honourable = onChain.map { channel in
                !channel.isConcluded && (channel.deadline.map { now + actionMargin < $0.seconds } ?? true)
            } ?? true
            oracle?.honestCommitted(state, honourable: honourable)
            oracle?.honestCommitted(state, onChain: onChain)
            note(.honest, "\(id.shortID) commits v\(state.version) \(state.state.allocation)\(state.state.isFinal ? " final" : "")")
        case let .rejected(_, _, reason, byPeer):
            kind = byPeer ? "rejected-by-peer" : "rejected-peer's"
            note(.honest, "rejected: \(reason)")
        case .peerConnected: kind = "peer-connected"
        case .peerDisconnected: kind = "peer-disconnected"
        case .peerSilent: kind = "peer-silent"
        case let .registered(id, version, _, by):
            kind = "registered"
            note(.chain, "\(id.shortID) registered v\(version) by \(by)")
        case .progressed: kind = "progressed"
        case .yourTurnOnChain: kind = "your-turn-on-chain"
        case let .refuted(id, stale, with):
            kind = "refuted"
            note(.chain, "\(id.shortID) honest refutes v\(stale) with v\(with)")
        case let .exitStarted(id, version, reason):
            kind = "exit-started"
            note(.chain, "\(id.shortID) honest exits with v\(version) (\(reason))")
        case let .concluded(id, version, allocation):
            kind = "concluded"
            note(.chain, "\(id.shortID) concluded v\(version) \(allocation)")
        case .withdrawn: kind = "withdrawn"
        case let .closed(id):
            kind = "closed"
            oracle?.honestClosed(id)
        case .abandoned: kind = "abandoned"
        case let .error(_, text):
            kind = "error"
            note(.honest, "error: \(text)")
        }
        result?.nodePaths[kind, default: 0] += 1
    }
}

/// The honest player: payment channels as the defaults say, games with any legal move
/// (the rules have checked it), and on chain it always makes a move when it is its turn.
private func playFair(_ node: Node, random: SimRandom) {
    node.setOpenHandler { request in request.appID == .payment || request.appID == TicTacToe.id }
    node.setUpdateHandler { update in
        update.current.appData.isEmpty ? await Node.acceptPaymentsToMe(update) : .accept
    }
    node.setChainMoveHandler { _, registered in
        guard let board = try? TicTacToe.Board(appData: registered.appData), !board.emptyCells.isEmpty else { return nil }
        return try? TicTacToe.move(board.emptyCells[random.integer(in: 0...(board.emptyCells.count - 1))], in: registered)
    }
}
