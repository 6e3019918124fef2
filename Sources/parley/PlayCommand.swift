import ArgumentParser
import DequeModule
import Foundation
import Logging
import ParleyChannel
import ParleyCrypto
import ParleyDevchain
import ParleyGames
import ParleyLocks
import ParleyNode
import ParleySettlement
import ParleyTransport
import ParleyWire

/// `parley play`: tic-tac-toe for stakes between two terminals, each move a channel update.
struct PlayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "play",
        abstract: "Play tic-tac-toe for stakes against another terminal, over a state channel.",
        discussion: """
            Each player runs a node (key, journal, listening address) on the same \
            `parley devchain`. The player given --opponent opens the game channel and plays X \
            (moves first); the other waits for the challenge and plays O. Both stake --stake \
            units; the winner takes both stakes, a draw gives each its own back.

            Type a cell number 1-9 when it is your move (1 is top left, 9 bottom right). Every \
            move is a state update signed by both players and fsync'd to both journals; the \
            chain sees nothing until the end, when X closes the channel cooperatively and both \
            are paid.

            If the other player stops moving for --turn-timeout seconds, your node registers \
            the game on chain. They must then move on chain (you type your answers as before) \
            or forfeit everything when the challenge window closes.

            Example (a devchain, then two terminals):
              parley devchain --listen 127.0.0.1:7545 --data /tmp/chain
              parley keygen --out bob.key; parley keygen --out alice.key
              # terminal 1 (O, waits):
              parley play --key bob.key --listen 127.0.0.1:7002 --journal /tmp/bob \\
                --chain devchain://127.0.0.1:7545 --mint 100
              # terminal 2 (X); pk1...: the key terminal 1 printed
              parley play --key alice.key --listen 127.0.0.1:7001 --journal /tmp/alice \\
                --chain devchain://127.0.0.1:7545 --mint 100 \\
                --opponent pk1...@127.0.0.1:7002
            """)

    @OptionGroup var options: NodeOptions

    @Option(name: .long, help: ArgumentHelp("Challenge this player (we play X and move first).", valueName: "pk1…@host:port"))
    var opponent: String?

    @Option(name: .long, help: "What each player stakes.")
    var stake: Amount = 10

    @Option(name: .long, help: "Seconds the other player may take per move before we go to the chain.")
    var turnTimeout = 60.0

    @Option(name: .long, help: "Challenge window in seconds of chain time (for the game we open).")
    var challenge: UInt64 = 60

    @Flag(name: .long, help: #"At the end print {"result", "version", "payout", "board"} as one JSON line."#)
    var json = false

    func validate() throws {
        guard stake > 0 else { throw ValidationError("--stake must be positive.") }
        guard turnTimeout > 0, turnTimeout <= 3600 else { throw ValidationError("--turn-timeout must be in (0, 3600].") }
        guard ChannelParams.challengeDurationRange.contains(challenge) else {
            throw ValidationError("--challenge must be \(ChannelParams.challengeDurationRange) seconds.")
        }
    }

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .error
            return handler
        }
        do { try await play() } catch let error as PlayFailure {
            throw failure("play", error.description)
        } catch {
            throw failure("play", "\(error)")
        }
    }

    private func say(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    private func play() async throws {
        let policy = NodePolicy(
            watcher: WatcherPolicy(clockPollInterval: .milliseconds(250), retryDelay: .milliseconds(250)),
            challengeDuration: challenge, turnTimeout: .milliseconds(Int64(turnTimeout * 1000)))
        let running: NodeOptions.Running
        do { running = try await options.start(policy: policy, apps: [TicTacToe()], label: "parley.play") } catch {
            throw PlayFailure(error.description)
        }
        let (node, client, identity) = (running.node, running.chain, running.identity)
        defer { running.loop.shutdown() }
        node.setUpdateHandler { _ in .accept }  // the game's rules were checked before
        node.setOpenHandler { $0.appID == TicTacToe.id }
        let input = standardInputLines(threadName: "parley-play-stdin")
        let lines = LineSource(input)
        node.setChainMoveHandler { _, state in
            await Self.askForMove(in: state, lines: lines, onChain: true)
        }
        say("You are \(identity.publicKey.humanForm), listening on \(await node.listeningAddress?.description ?? options.listen)")
        let channel: Channel
        if let opponent {
            let (peer, peerAddress) = try Self.parse(opponent)
            say("Challenging \(peer.shortID) for \(stake) each…")
            do {
                channel = try await node.open(
                    with: peer, at: peerAddress, deposit: stake, theirs: stake, app: TicTacToe.id,
                    appData: TicTacToe.initialAppData, challengeDuration: challenge)
            } catch { throw PlayFailure("could not start the game: \(error)") }
        } else {
            say("Waiting for a challenger…")
            channel = try await Self.firstGame(of: node)
        }
        let me = try channel.status.me
        say("Game \(channel.id.shortID): you play \(me == .first ? "X (first)" : "O (second)"), stakes \(stake) each")
        let result = try await playOffChain(channel, me: me, lines: lines)
        let payout: Amount
        if result.onChain {
            say("The game went to the chain; waiting for it to settle…")
            try await channel.waitUntilClosed()
            payout = try await client.channel(channel.id)?.concludedAllocation?[me] ?? 0
        } else if me == .first {
            payout = try await channel.close()
        } else {
            try await channel.waitUntilClosed()
            payout = try channel.status.latest.state.allocation[me]
        }
        let final = try channel.status.latest.state
        let board = (try? TicTacToe.Board(appData: final.appData))?.description ?? ""
        say(board)
        say("\(result.summary). Paid out to you on chain: \(payout)")
        if json {
            try printJSON(PlayResult(result: result.summary, version: try channel.status.latest.version, payout: payout, board: board))
        }
        await node.shutDown()
        await running.closeChain()
    }

    /// Plays until the game ends off-chain or moves to the chain.
    private func playOffChain(_ channel: Channel, me: ParticipantIndex, lines: LineSource) async throws -> (summary: String, onChain: Bool) {
        let rules = TicTacToe()
        var shown: UInt64 = .max
        while true {
            let status = try channel.status
            let state = status.latest.state
            guard let board = try? TicTacToe.Board(appData: state.appData) else { throw PlayFailure("the game state is unreadable") }
            if state.version != shown {
                shown = state.version
                say("\n\(board)\n")
            }
            if board.isOver {  // checked first: the winner closes at once, which also marks the channel closing
                if let winner = board.winner {
                    return (winner.seat == me ? "You win" : "You lose", false)
                }
                return ("Draw", false)
            }
            if status.isClosing || status.isClosed { return ("The game went to the chain", true) }
            guard rules.mover(in: state) == me else {
                try await Task.sleep(for: .milliseconds(20))
                continue
            }
            guard let next = await Self.askForMove(in: state, lines: lines, onChain: false) else {
                throw PlayFailure("stdin ended; the game stays in the journal (start again to resume)")
            }
            do { try await channel.update { $0 = next } } catch {
                say("That move did not go through: \(error)")
            }
        }
    }

    /// Reads cell numbers until one is a legal move; nil when stdin ends.
    private static func askForMove(in state: ChannelState, lines: LineSource, onChain: Bool) async -> ChannelState? {
        if onChain, let board = try? TicTacToe.Board(appData: state.appData) {
            FileHandle.standardOutput.write(Data("\nOn chain now:\n\(board)\n".utf8))
        }
        while true {
            FileHandle.standardOutput.write(Data("Your move (1-9)\(onChain ? " on chain" : ""): ".utf8))
            guard let line = await lines.next() else { return nil }
            guard let cell = Int(line.trimmingCharacters(in: .whitespaces)), (1...9).contains(cell) else {
                FileHandle.standardOutput.write(Data("Type a number from 1 to 9.\n".utf8))
                continue
            }
            do { return try TicTacToe.move(cell - 1, in: state) } catch {
                FileHandle.standardOutput.write(Data("\(error.reason)\n".utf8))
            }
        }
    }

    /// The first tic-tac-toe channel a challenger opens with us, once funded.
    private static func firstGame(of node: Node) async throws -> Channel {
        while true {
            for status in node.statuses where status.isFunded && !status.isClosed {
                if let channel = await node.channel(status.id) { return channel }
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    private static func parse(_ text: String) throws -> (PublicKey, SocketAddress) {
        guard let at = text.firstIndex(of: "@") else { throw PlayFailure("--opponent must be PUBKEY@HOST:PORT") }
        let keyText = String(text[..<at])
        let key: PublicKey
        do {
            key = keyText.count == 64 ? try PublicKey(hex: keyText) : try PublicKey(humanForm: keyText)
        } catch { throw PlayFailure("--opponent: bad key: \(error)") }
        do { return (key, try SocketAddress(String(text[text.index(after: at)...]))) } catch {
            throw PlayFailure("--opponent: bad address: \(error)")
        }
    }
}

private struct PlayResult: Encodable {
    var result: String
    var version: UInt64
    var payout: Amount
    var board: String
}

struct PlayFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Stdin lines, shared by the turn loop and the on-chain move handler: whoever asks next
/// gets the next line.
final class LineSource: Sendable {
    private let buffer = Locked<(lines: Deque<String>, ended: Bool)>(([], false))

    init(_ stream: AsyncStream<String>) {
        Task { [self] in
            for await line in stream { buffer.withLock { $0.lines.append(line) } }
            buffer.withLock { $0.ended = true }
        }
    }

    /// The next line, or nil once stdin has ended and every line was taken.
    func next() async -> String? {
        while true {
            let (line, ended) = buffer.withLock { state -> (String?, Bool) in
                state.lines.popFirst().map { ($0, false) } ?? (nil, state.ended)
            }
            if let line { return line }
            if ended { return nil }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}
