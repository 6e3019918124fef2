import Logging
import ParleyChannel
import ParleyCrypto
import ParleyGames
import ParleyLocks
import ParleyNode
import ParleySettlement
import ParleySubprocess
import ParleyTransport
import ParleyWire

/// The game server: one node that accepts tic-tac-toe channels from anyone and plays O in
/// each of them.
///
/// Every match is its own channel with its own stakes. The node's event stream is read by
/// one task, which only counts and dispatches: each answer runs on a task of its own, so a
/// match whose client is slow or gone never holds up another. The server never closes a
/// game; the client closes cooperatively once it is over. A client that stops moving is
/// caught by the node's turn timeout: the watcher registers the latest state, the client
/// must move on chain or forfeit when the window closes.
final class GameHost: Sendable {
    /// What the server has seen and done so far.
    struct Counters: Sendable, Codable {
        var opened = 0
        var funded = 0
        /// Our answering moves, committed.
        var moves = 0
        /// Answers that could not be made (the channel was closing, the client vanished…).
        var moveFailures = 0
        /// Turn timeouts that sent a match to the chain.
        var exits = 0
        /// Registrations seen on chain (cooperative closes included).
        var registered = 0
        var concluded = 0
        var closed = 0
        /// `error` events: things the node recovered from (a retried chain call, an ignored message).
        var nodeErrors = 0
        var lastNodeError: String?
        var lastMoveFailure: String?
    }

    let node: Node
    private let counters = Locked(Counters())
    /// Time from a client's move being committed here to our answer being committed.
    private let answerTimes = Locked(LatencyRecorder())

    private init(node: Node) {
        self.node = node
    }

    /// Starts the node and begins serving. `settlement` must act as `identity`.
    static func start(
        identity: SigningKey, listen: SocketAddress, journal: String, settlement: any SettlementAdapter,
        policy: NodePolicy, maxStake: Amount, logger: Logger, loop: EventLoop?
    ) async throws -> GameHost {
        let node = try await Node(
            identity: identity, listen: listen, journal: journal, settlement: settlement, policy: policy, logger: logger,
            apps: [TicTacToe()], loop: loop)
        let host = GameHost(node: node)
        node.setOpenHandler { $0.appID == TicTacToe.id && $0.myDeposit <= maxStake }
        node.setUpdateHandler { _ in .accept }  // the engine has already checked the move against the rules
        node.setChainMoveHandler { _, state in
            guard let board = try? TicTacToe.Board(appData: state.appData), let cell = Strategy.answer(on: board) else {
                return nil
            }
            return try? TicTacToe.move(cell, in: state)
        }
        let events = node.events
        Task { for await event in events { host.handle(event) } }
        return host
    }

    var snapshot: Counters { counters.withLock { $0 } }

    var answerLatencies: LatencyRecorder { answerTimes.withLock { $0 } }

    func shutDown() async {
        await node.shutDown()
    }

    private func handle(_ event: NodeEvent) {
        switch event {
        case .opened: counters.withLock { $0.opened += 1 }
        case .funded: counters.withLock { $0.funded += 1 }
        case let .committed(id, signed, mine: false):
            // Our seat is always `.second`: the node accepts only channels that seat us there.
            guard TicTacToe().mover(in: signed.state) == .second else { return }
            let seen = ContinuousClock.now
            Task { await self.answer(id, at: signed.version, seen: seen) }
        case .exitStarted: counters.withLock { $0.exits += 1 }
        case .registered: counters.withLock { $0.registered += 1 }
        case .concluded: counters.withLock { $0.concluded += 1 }
        case .closed: counters.withLock { $0.closed += 1 }
        case let .error(_, text):
            counters.withLock {
                $0.nodeErrors += 1
                $0.lastNodeError = text
            }
        default: break
        }
    }

    /// Plays O on `id`, where the client's move made `version` the latest state.
    private func answer(_ id: ChannelID, at version: UInt64, seen: ContinuousClock.Instant) async {
        guard let channel = await node.channel(id) else { return }
        do {
            try await channel.update { state in
                guard state.version == version else {
                    throw AppRuleViolation("the game moved on from version \(version) to \(state.version)")
                }
                let board = try TicTacToe.Board(appData: state.appData)
                guard let cell = Strategy.answer(on: board) else { throw AppRuleViolation("no free cell") }
                state = try TicTacToe.move(cell, in: state)
            }
            let answered = ContinuousClock.now - seen
            answerTimes.withLock { $0.record(answered) }
            counters.withLock { $0.moves += 1 }
        } catch {
            counters.withLock {
                $0.moveFailures += 1
                $0.lastMoveFailure = "channel \(id.shortID) version \(version): \(error)"
            }
        }
    }
}
