import Foundation
import Logging
import ParleyChannel
import ParleyCrypto
import ParleyDevchain
import ParleyEthereum
import ParleyGames
import ParleyLocks
import ParleyNode
import ParleySettlement
import ParleySubprocess
import ParleyTransport
import ParleyWire

/// The load generator's players: K client nodes in one process, N matches spread across
/// them, each match one channel to the server in which the client plays X.
///
/// Two phases, so the parent can measure the server with every channel open: `openAll`
/// opens and funds every channel; `playAll` plays them out, closes cooperatively, and
/// waits for forfeits of the matches told to vanish.
final class ClientFleet: Sendable {
    struct Settings: Sendable {
        var server: PublicKey
        var serverAddress: SocketAddress
        var chain: String
        var matches: Int
        var clients: Int
        var vanish: Int
        var stake: Amount
        var seed: UInt64
        var concurrency: Int
        var challenge: UInt64
        var turnTimeout: Duration
        var journalRoot: String
        /// The server's settlement address, on a chain whose channels sign with Ethereum keys.
        var serverSigner: EthereumAddress? = nil
    }

    /// One client node and the channels it opened.
    private final class Player: Sendable {
        let node: Node
        let chain: GameChain
        let mailbox: MoveMailbox
        let matches: [Int]

        init(node: Node, chain: GameChain, mailbox: MoveMailbox, matches: [Int]) {
            self.node = node
            self.chain = chain
            self.mailbox = mailbox
            self.matches = matches
        }
    }

    enum Outcome: Sendable {
        case completed
        /// Settled on chain; why the channel went there, as our node saw it.
        case forfeited(why: String)
        case failed(String)
    }

    private let settings: Settings
    private let loop: EventLoop
    private let players: [Player]
    /// Channel by match index, once open.
    private let channels = Locked<[Int: Channel]>([:])
    /// Matches that stop moving after their first exchange.
    private let vanishing: Set<Int>
    private let tally = Locked(Tally())
    /// Each match's outcome and when, from the start of play, it was settled on our side.
    private let outcomes = Locked<[Int: (outcome: Outcome, after: Duration)]>([:])

    private struct Tally {
        var openFailures: [String] = []
        var latencies = LatencyRecorder()
        var moves = 0
        var lastMove: ContinuousClock.Instant?
    }

    private init(settings: Settings, loop: EventLoop, players: [Player]) {
        self.settings = settings
        self.loop = loop
        self.players = players
        // One in each of `vanish` equal slices of the matches, shifted within its slice so the
        // vanished ones land on every client node (match i plays on node i % clients).
        let step = settings.vanish > 0 ? max(settings.matches / settings.vanish, 1) : 1
        let nodes = max(1, min(settings.clients, settings.matches))
        vanishing = Set((0..<settings.vanish).map { $0 * step + ($0 % nodes) % step }.filter { $0 < settings.matches })
    }

    /// Starts K nodes on one event loop, each with its own key, journal and chain session,
    /// and mints each the stakes of its matches.
    static func start(_ settings: Settings) async throws -> ClientFleet {
        let loop = try EventLoop(name: "game-clients")
        let quiet = Logger(label: "game-server.client") { _ in SwiftLogNoOpLogHandler() }
        let policy = NodePolicy(
            watcher: WatcherPolicy(clockPollInterval: .milliseconds(100), retryDelay: .milliseconds(100)),
            proposalTimeout: .seconds(30), challengeDuration: settings.challenge, turnTimeout: settings.turnTimeout)
        var players: [Player] = []
        let clients = max(1, min(settings.clients, settings.matches))
        for index in 0..<clients {
            let key = SigningKey()
            let matches = Array(stride(from: index, to: settings.matches, by: clients))
            let chain = try await GameChain.connect(settings.chain, identity: key, loop: loop, fundGas: true)
            try await chain.adapter.mint(settings.stake * Amount(matches.count), to: key.publicKey)
            let node = try await Node(
                identity: key, listen: nil, journal: "\(settings.journalRoot)/client-\(index)", settlement: chain.adapter,
                policy: policy, logger: quiet, apps: [TicTacToe()], loop: loop)
            node.setUpdateHandler { _ in .accept }
            let mailbox = MoveMailbox()
            let events = node.events
            Task { for await event in events { mailbox.handle(event) } }
            players.append(Player(node: node, chain: chain, mailbox: mailbox, matches: matches))
        }
        let fleet = ClientFleet(settings: settings, loop: loop, players: players)
        for player in players { fleet.answerOnChain(player) }
        return fleet
    }

    /// A live client keeps playing if its game goes to the chain; a vanished one does not.
    private func answerOnChain(_ player: Player) {
        let seed = settings.seed
        player.node.setChainMoveHandler { [self] id, state in
            guard !isVanished(id), let board = try? TicTacToe.Board(appData: state.appData) else { return nil }
            var generator = SeededRandom(seed: seed ^ state.version)
            guard let cell = Strategy.random(on: board, using: &generator) else { return nil }
            return try? TicTacToe.move(cell, in: state)
        }
    }

    private func isVanished(_ id: ChannelID) -> Bool {
        channels.withLock { open in vanishing.contains { open[$0]?.id == id } }
    }

    var openCount: Int { channels.withLock { $0.count } }
    var openFailures: [String] { tally.withLock { $0.openFailures } }

    /// Opens every match's channel, at most `concurrency` at a time per client node.
    func openAll() async {
        await withTaskGroup(of: Void.self) { group in
            for player in players {
                group.addTask { await self.open(player) }
            }
        }
    }

    private func open(_ player: Player) async {
        await Self.forEach(player.matches, window: settings.concurrency) { match in
            do {
                let channel = try await player.node.open(
                    with: self.settings.server, at: self.settings.serverAddress, deposit: self.settings.stake,
                    theirs: self.settings.stake, app: TicTacToe.id, appData: TicTacToe.initialAppData,
                    challengeDuration: self.settings.challenge, peerSigner: self.settings.serverSigner.map { .ethereum($0) },
                    timeout: .seconds(120))
                self.channels.withLock { $0[match] = channel }
            } catch {
                self.tally.withLock { $0.openFailures.append("match \(match): \(error)") }
            }
        }
    }

    /// Plays every open match to its end; returns the outcome of each.
    func playAll(started: ContinuousClock.Instant) async -> [Int: (outcome: Outcome, after: Duration)] {
        await withTaskGroup(of: Void.self) { group in
            for player in players {
                group.addTask {
                    // Every match starts at once: the server's turn timer runs from funding, so a
                    // match held back longer than the turn timeout would (rightly) be forfeited.
                    await Self.forEach(player.matches, window: player.matches.count) { match in
                        guard let channel = self.channels.withLock({ $0[match] }) else { return }
                        let outcome = await self.play(match, on: channel, mailbox: player.mailbox)
                        let finished = ContinuousClock.now - started
                        self.outcomes.withLock { $0[match] = (outcome, finished) }
                    }
                }
            }
        }
        return outcomes.withLock { $0 }
    }

    struct PlayNumbers {
        var moves: Int
        var latencies: LatencyRecorder
        var lastMove: ContinuousClock.Instant?
    }

    var playNumbers: PlayNumbers {
        tally.withLock { PlayNumbers(moves: $0.moves, latencies: $0.latencies, lastMove: $0.lastMove) }
    }

    /// X's side of one match: a random legal move, then wait for O's answer, until the game
    /// is over; then close. A vanishing match stops after its first exchange and waits for
    /// the chain to settle it.
    private func play(_ match: Int, on channel: Channel, mailbox: MoveMailbox) async -> Outcome {
        var generator = SeededRandom(seed: settings.seed &+ UInt64(match))
        var exchanges = 0
        do {
            while true {
                let latest = try channel.status.latest.state
                if try TicTacToe.Board(appData: latest.appData).isOver { break }
                if vanishing.contains(match), exchanges >= 1 {
                    try await channel.waitUntilClosed()
                    return .forfeited(why: Self.closingReason(of: channel))
                }
                let pick = generator.next()
                let proposed = ContinuousClock.now
                let mine = try await channel.update { state in
                    let cells = try TicTacToe.Board(appData: state.appData).emptyCells
                    guard !cells.isEmpty else { throw AppRuleViolation("no free cell") }
                    state = try TicTacToe.move(cells[Int(pick % UInt64(cells.count))], in: state)
                }
                record(move: nil)
                if try TicTacToe.Board(appData: mine.state.appData).isOver { break }
                guard await mailbox.waitForPeer(channel.id, after: mine.version) else {
                    // The game went to the chain (we or the server timed out): it settles there.
                    try await channel.waitUntilClosed()
                    return .forfeited(why: Self.closingReason(of: channel))
                }
                record(move: ContinuousClock.now - proposed)
                exchanges += 1
            }
            try await channel.close()
            return .completed
        } catch {
            // A match the server sent to the chain (its turn timeout) settles there; the server
            // may decline our move a moment before our watcher sees its registration.
            guard await Self.becomesClosing(channel) else { return .failed("match \(match): \(error)") }
            do { try await channel.waitUntilClosed() } catch { return .failed("match \(match): \(error)") }
            return .forfeited(why: Self.closingReason(of: channel))
        }
    }

    private static func closingReason(of channel: Channel) -> String {
        (try? channel.status)?.closingReason.map { "\($0)" } ?? "unknown"
    }

    /// Whether the channel is (or within `closingGrace` turns) closing: a dispute on chain or a final state.
    private static func becomesClosing(_ channel: Channel) async -> Bool {
        let deadline = ContinuousClock.now + closingGrace
        while ContinuousClock.now < deadline {
            if (try? channel.status)?.isClosing == true { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return (try? channel.status)?.isClosing == true
    }

    /// How long a failed move waits for the chain to show why (a registration by the server).
    static let closingGrace: Duration = .seconds(10)

    /// Counts one committed move; `latency` when it is the server's answer to ours.
    private func record(move latency: Duration?) {
        let now = ContinuousClock.now
        tally.withLock {
            $0.moves += 1
            $0.lastMove = now
            if let latency { $0.latencies.record(latency) }
        }
    }

    func shutDown() async {
        for player in players {
            await player.node.shutDown()
            await player.chain.close()
        }
        loop.shutdown()
    }

    /// Runs `body` for each item, at most `window` at once.
    private static func forEach(_ items: [Int], window: Int, _ body: @escaping @Sendable (Int) async -> Void) async {
        await withTaskGroup(of: Void.self) { group in
            var next = 0
            while next < items.count, next < max(window, 1) {
                let item = items[next]
                group.addTask { await body(item) }
                next += 1
            }
            while await group.next() != nil, next < items.count {
                let item = items[next]
                group.addTask { await body(item) }
                next += 1
            }
        }
    }
}

/// Hands each match the server's answers as its node reports them, and tells it when the
/// game left the channel for the chain.
final class MoveMailbox: Sendable {
    private struct Slot {
        /// The newest version the server committed a move at.
        var peerVersion: UInt64 = 0
        var onChain = false
        var waiter: (after: UInt64, continuation: CheckedContinuation<Bool, Never>)?
    }

    private let slots = Locked<[ChannelID: Slot]>([:])

    func handle(_ event: NodeEvent) {
        switch event {
        case let .committed(id, signed, mine: false): update(id) { $0.peerVersion = max($0.peerVersion, signed.version) }
        case let .registered(id, _, _, _), let .exitStarted(id, _, _), let .closed(id): update(id) { $0.onChain = true }
        default: break
        }
    }

    /// True once the server has committed a move after `version`; false if the game went
    /// to the chain first.
    func waitForPeer(_ id: ChannelID, after version: UInt64) async -> Bool {
        await withCheckedContinuation { continuation in
            let ready: Bool? = slots.withLock { slots in
                var slot = slots[id, default: Slot()]
                if slot.peerVersion > version { return true }
                if slot.onChain { return false }
                slot.waiter = (version, continuation)
                slots[id] = slot
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    private func update(_ id: ChannelID, _ change: (inout Slot) -> Void) {
        let wake: (CheckedContinuation<Bool, Never>, Bool)? = slots.withLock { slots in
            var slot = slots[id, default: Slot()]
            change(&slot)
            var wake: (CheckedContinuation<Bool, Never>, Bool)?
            if let waiter = slot.waiter {
                if slot.peerVersion > waiter.after {
                    wake = (waiter.continuation, true)
                } else if slot.onChain {
                    wake = (waiter.continuation, false)
                }
                if wake != nil { slot.waiter = nil }
            }
            slots[id] = slot
            return wake
        }
        if let (continuation, value) = wake { continuation.resume(returning: value) }
    }
}
