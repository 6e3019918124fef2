import ArgumentParser
import Foundation
import ParleySubprocess
import Logging
import ParleyChannel
import ParleyCrypto
import ParleyDaemon
import ParleyDevchain
import ParleyEthereum
import ParleyGames
import ParleyNode
import ParleySettlement
import ParleyTransport
import ParleyWire

struct GameServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "game-server",
        abstract: "A tic-tac-toe server for stakes over state channels, and a load generator for it.",
        discussion: """
            Every match is its own two-party state channel between a client (X) and the server \
            (O), each staking --stake on a devchain. The server accepts every legal move and \
            answers at once; the client closes cooperatively when the game is over. A client that \
            stops moving is caught by the server's turn timeout: the game goes to the chain and \
            the client forfeits when the challenge window closes.

            With --load N, this process starts a devchain (in process, on 127.0.0.1) and the \
            server, and runs the clients in a second process (`game-server client`). It prints \
            progress on stderr and a summary at the end, or one JSON object with --json: \
            matches, opened, completed, forfeits, errors, movesPerSecond (moves of both sides \
            committed per second of play), p50Micros and p99Micros (from proposing X's move to \
            O's answer committed on the client), bytesPerChannel (server process RSS with all \
            channels open and funded, minus RSS before, per channel; the in-process devchain's \
            share is included), seconds, clients, conservation ("held" when the chain paid out \
            exactly what the channels held), forfeitReasons (why forfeited matches went to the \
            chain, as the client's node saw it, with counts), serverLastNodeError and \
            serverLastMoveFailure, and more.

            Subcommands (each with --help):
              serve    host matches against all comers on a devchain
              client   play X in many matches (what --load runs in its second process)

            Examples:
              game-server --load 500
              game-server --load 1000 --json
              game-server --load 100 --vanish 5
              game-server --load 10000 --idle --json
              parley devchain --listen 127.0.0.1:7545 --data /tmp/chain --manual-time &
              game-server --load 10000 --idle --chain devchain://127.0.0.1:7545
              parley devchain --listen 127.0.0.1:7545 --data /tmp/chain &
              game-server serve --listen 127.0.0.1:7600 --chain devchain://127.0.0.1:7545 --journal /tmp/gs
            """,
        )

    /// Parses the command line and runs the command it names.
    ///
    /// A subcommand is parsed on its own: ArgumentParser also decodes the root's options from
    /// a subcommand's arguments, and `client` shares option names with the root
    /// (`--clients`, `--vanish`, …), which the root would take. Written out rather than
    /// `main()`, which from top-level code resolves to the synchronous entry point.
    static func start() async {
        // (SIGPIPE: every EventLoop ignores it, so a client that hangs up mid-write costs an
        // EPIPE on that socket, not the server.)
        let arguments = Array(CommandLine.arguments.dropFirst())
        let subcommands: [any AsyncParsableCommand.Type] = [ServeCommand.self, ClientCommand.self]
        if let name = arguments.first, let subcommand = subcommands.first(where: { $0._commandName == "game-server " + name }) {
            await run(subcommand, Array(arguments.dropFirst()))
        } else {
            await run(Self.self, arguments)
        }
    }

    private static func run(_ type: any AsyncParsableCommand.Type, _ arguments: [String]) async {
        do {
            var command = try type.parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            type.exit(withError: error)
        }
    }

    @Option(name: .long, help: "Run a load test with this many matches.")
    var load: Int?

    @Flag(name: .long, help: "Print one JSON object at the end instead of the summary.")
    var json = false

    @Option(name: .long, help: "Client nodes the matches are spread over.")
    var clients = 4

    @Option(name: .long, help: "Matches whose client stops moving after the first exchange (they forfeit on chain).")
    var vanish = 0

    @Flag(name: [.customLong("idle"), .customLong("hold")], help: "Open the channels and measure memory; play nothing, settle nothing.")
    var idle = false

    @Option(name: .long, help: "What each side stakes per match.")
    var stake: Amount = 10

    @Option(name: .long, help: "Seed for the clients' moves (random by default; printed in the results).")
    var seed: UInt64?

    @Option(name: .long, help: "Channels each client node opens at once. Play starts every match at once: the server's turn timer runs from funding.")
    var concurrency = 64

    @Option(
        name: .long,
        help: "Seconds a client may take to move before the server goes to the chain. It runs from funding, so it must exceed the time it takes to open all matches: by default 5 s plus 10 ms per match (5 s for 1, 105 s for 10,000; opening runs at 150 to 350 matches a second here). Not used with --idle.")
    var turnTimeout: Double?

    /// `--turn-timeout`, or what covers opening `matches` on this machine with room to spare.
    static func defaultTurnTimeout(matches: Int) -> Double { min(5 + 0.01 * Double(matches), 3600) }

    @Option(name: .long, help: "Challenge window in seconds of chain time.")
    var challenge: UInt64 = 60

    @Flag(name: .long, help: "Chain time follows the wall clock (100 ms blocks) instead of being advanced by the run.")
    var realTime = false

    @Option(
        name: .customLong("chain"),
        help: "Use this devchain (devchain://HOST:PORT, started with --manual-time) instead of one in this process, so the server's RSS holds no chain state.")
    var externalChain: String?

    @Flag(
        name: .long,
        help: "Settle on the local EVM (`make evm-env`): Parley's Vyper adjudicator and tic-tac-toe rules deployed there; forfeits are paid by the contracts.")
    var evm = false

    @Flag(name: .long, help: "Keep the temporary directory (journals, chain ledger) and print where it is.")
    var keep = false

    func validate() throws {
        guard let load else { return }
        guard (1...1_000_000).contains(load) else { throw ValidationError("--load must be 1...1000000.") }
        guard clients >= 1 else { throw ValidationError("--clients must be at least 1.") }
        guard (0...load).contains(vanish) else { throw ValidationError("--vanish must be 0...--load.") }
        guard !(idle && vanish > 0) else { throw ValidationError("--vanish needs play; it cannot go with --idle.") }
        guard stake > 0 else { throw ValidationError("--stake must be positive.") }
        guard !(evm && externalChain != nil) else { throw ValidationError("--evm and --chain name two chains: pick one.") }
        guard concurrency >= 1 else { throw ValidationError("--concurrency must be at least 1.") }
        if let turnTimeout, !(turnTimeout > 0 && turnTimeout <= 3600) { throw ValidationError("--turn-timeout must be in (0, 3600].") }
        guard ChannelParams.challengeDurationRange.contains(challenge) else {
            throw ValidationError("--challenge must be \(ChannelParams.challengeDurationRange) seconds.")
        }
    }

    func run() async throws {
        guard let load else { throw CleanExit.helpRequest(self) }
        let options = LoadRun.Options(
            matches: load, clients: clients, vanish: vanish, idle: idle, stake: stake,
            seed: seed ?? UInt64.random(in: 0...UInt64(UInt32.max)), concurrency: concurrency,
            turnTimeout: .milliseconds(Int((turnTimeout ?? Self.defaultTurnTimeout(matches: load)) * 1000)), challenge: challenge,
            realTime: realTime, externalChain: externalChain, evm: evm, keep: keep,
            quiet: json)
        let summary: LoadSummary
        do { summary = try await LoadRun(options: options).run() } catch {
            Terminal.writeError("game-server: \(error)\n")
            throw ExitCode.failure
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            writeLine(String(decoding: try encoder.encode(summary), as: UTF8.self))
        } else {
            print(Self.text(summary))
        }
        if summary.errors > 0 { throw ExitCode.failure }
    }

    static func text(_ s: LoadSummary) -> String {
        var lines = [
            "\(s.matches) matches over \(s.clients) client nodes (\(s.build) build, \(s.timeMode) chain time, seed \(s.seed)):",
            "  opened \(s.opened) in \(s.openSeconds) s; \(Int(s.bytesPerChannel)) bytes of server RSS per open channel "
                + "(\(Int(s.trimmedBytesPerChannel)) after malloc_trim)",
        ]
        if s.idle {
            lines.append("  idle run: nothing played or settled")
        } else {
            lines += [
                "  completed \(s.completed), forfeits \(s.forfeits) (\(s.forfeitsToServer) won by the server), errors \(s.errors)",
                "  \(s.moves) moves at \(Int(s.movesPerSecond)) moves/s; answer latency p50 \(Int(s.p50Micros)) µs, p99 \(Int(s.p99Micros)) µs",
                "  server: \(s.serverMoves) answers, its own time per answer p50 \(Int(s.serverAnswerP50Micros)) µs, p99 \(Int(s.serverAnswerP99Micros)) µs",
                "  conservation \(s.conservation): \(s.payouts) paid out of \(s.stakes) staked",
            ]
        }
        if s.serverMoveFailures > 0 || s.serverNodeErrors > 0 {
            lines.append("  server: \(s.serverMoveFailures) answers not made, \(s.serverNodeErrors) recovered node errors")
            if let last = s.serverLastMoveFailure { lines.append("  server's last answer not made: \(last)") }
            if let last = s.serverLastNodeError { lines.append("  server's last node error: \(last)") }
        }
        lines += s.forfeitReasons.sorted { $0.value > $1.value }.map { "  forfeited because \($0.key): \($0.value)" }
        lines.append("  \(s.seconds) s in all")
        lines += s.errorSamples.map { "  error: \($0)" }
        return lines.joined(separator: "\n")
    }
}

/// `PK@HOST:PORT`, the key in its `pk1…` form or as hex.
struct PeerAddress: ExpressibleByArgument, Sendable {
    let key: PublicKey
    let address: SocketAddress

    init?(argument: String) {
        guard let at = argument.firstIndex(of: "@") else { return nil }
        let keyText = String(argument[..<at])
        guard let key = (try? PublicKey(humanForm: keyText)) ?? (try? PublicKey(hex: keyText)),
            let address = try? SocketAddress(String(argument[argument.index(after: at)...]))
        else { return nil }
        self.key = key
        self.address = address
    }
}

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "game-server serve",
        abstract: "Host tic-tac-toe matches: accept channels from any client and play O.",
        discussion: """
            Prints the address clients dial (PK@HOST:PORT) and runs until SIGINT or SIGTERM. \
            Channels survive a restart on the same --journal and --key.
            """)

    @Option(name: .long, help: "HOST:PORT to accept clients on (port 0 picks one).")
    var listen: String

    @Option(
        name: .long,
        help: "The chain: devchain://HOST:PORT, devchain://pk1…@HOST:PORT, or Parley's adjudicator on Ethereum as http://HOST:PORT#0xADJUDICATOR@DEPLOYBLOCK.")
    var chain: String

    @Option(name: .long, help: "Journal directory (created if missing).")
    var journal: String

    @Option(name: .long, help: "Key file (`parley keygen`); a fresh key each run when omitted.")
    var key: String?

    @Option(name: .long, help: "Mint this much to the server's account from the devchain faucet at startup.")
    var mint: Amount = 1_000_000

    @Option(name: .long, help: "The largest stake the server matches per game.")
    var maxStake: Amount = 1_000

    @Option(name: .long, help: "Seconds a client may take to move before the game goes to the chain.")
    var turnTimeout = 5.0

    func run() async throws {
        let identity = try key.map { try KeyFile.load(from: $0) } ?? SigningKey()
        let loop = try EventLoop(name: "game-server")
        let gameChain = try await GameChain.connect(chain, identity: identity, loop: loop)
        let settlement = gameChain.adapter
        if let signer = gameChain.ethereumSigner {
            writeLine("game-server: Ethereum channels: clients open with our settlement address \(signer)")
        }
        if mint > 0 { try await settlement.mint(mint, to: identity.publicKey) }
        var logger = Logger(label: "game-server") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = .notice
        let host = try await GameHost.start(
            identity: identity, listen: try SocketAddress(listen), journal: journal, settlement: settlement,
            policy: LoadRun.serverPolicy(turnTimeout: .milliseconds(Int(turnTimeout * 1000)), challenge: ChannelParams.defaultChallengeDuration),
            maxStake: maxStake, logger: logger, loop: loop)
        guard let address = await host.node.listeningAddress else { throw GameServerFailure("not listening") }
        // Serves until SIGINT or SIGTERM; the host's channels stop and its journal closes
        // before the service returns.
        let stop = StopSignal()
        try await DaemonService.run(label: "game-server.lifecycle", stop: stop) {
            writeLine("game-server: serving tic-tac-toe at \(identity.publicKey.humanForm)@\(address)")
            _ = await stop.wait()
            let counts = host.snapshot
            writeLine("game-server: \(counts.opened) matches, \(counts.moves) moves, \(counts.closed) closed; shutting down")
            await host.shutDown()
            await gameChain.close()
            loop.shutdown()
        }
    }
}

struct ClientCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "game-server client",
        abstract: "Play X in many matches against a game server (the load generator's second process).",
        discussion: """
            Opens every match's channel, prints {"phase":"opened",…} and waits for a line on \
            stdin: `go` plays the matches out, `stop` shuts down without playing. Then prints \
            {"phase":"done","report":{…}} and exits. `game-server --load` runs this for you.
            """)

    @Option(name: .long, help: "The server: PK@HOST:PORT.")
    var server: PeerAddress

    @Option(name: .long, help: "The chain: devchain://HOST:PORT, or http://HOST:PORT#0xADJUDICATOR@DEPLOYBLOCK.")
    var chain: String

    @Option(name: .long, help: "On an Ethereum chain: the server's settlement address (0x…).")
    var serverSigner: String?

    @Option(name: .long, help: "Matches to play.")
    var matches: Int

    @Option(name: .long, help: "Client nodes the matches are spread over.")
    var clients = 4

    @Option(name: .long, help: "Matches that stop moving after the first exchange.")
    var vanish = 0

    @Option(name: .long, help: "What each side stakes per match (minted from the faucet).")
    var stake: Amount = 10

    @Option(name: .long, help: "Seed for the moves.")
    var seed: UInt64 = 1

    @Option(name: .long, help: "Channels each client node opens at once (play starts every match at once).")
    var concurrency = 64

    @Option(name: .long, help: "Challenge window in seconds of chain time.")
    var challenge: UInt64 = 60

    @Option(name: .long, help: "Seconds the server may take to answer before we go to the chain.")
    var turnTimeout = 60.0

    @Option(name: .long, help: "Directory for the client nodes' journals.")
    var journal: String

    @Flag(name: .long, help: "Open the channels, then wait for `stop` without playing.")
    var idle = false

    @Flag(name: .long, help: "Exit (status 3) when stdin ends after `go`: how the load run keeps an orphaned client from playing on.")
    var exitAtEndOfInput = false

    func validate() throws {
        guard matches >= 1 else { throw ValidationError("--matches must be at least 1.") }
        guard (0...matches).contains(vanish) else { throw ValidationError("--vanish must be 0...--matches.") }
    }

    func run() async throws {
        let fleet = try await ClientFleet.start(
            ClientFleet.Settings(
                server: server.key, serverAddress: server.address, chain: chain, matches: matches, clients: clients,
                vanish: vanish, stake: stake, seed: seed, concurrency: concurrency, challenge: challenge,
                turnTimeout: .milliseconds(Int(turnTimeout * 1000)), journalRoot: journal,
                serverSigner: try serverSigner.map { try EthereumAddress(hex: $0) }))
        await fleet.openAll()
        let failures = fleet.openFailures
        writeLine(ClientLine.opened(opened: fleet.openCount, failed: failures.count).json)
        let command = await StandardInput.nextLine()
        if exitAtEndOfInput { StandardInput.exitAtEndOfInput() }
        var outcomes: [Int: (outcome: ClientFleet.Outcome, after: Duration)] = [:]
        let started = ContinuousClock.now
        if command == "go" { outcomes = await fleet.playAll(started: started) }
        let numbers = fleet.playNumbers
        await fleet.shutDown()
        var errors = failures
        for case let .failed(text) in outcomes.values.map(\.outcome) { errors.append(text) }
        let completed = outcomes.values.filter { if case .completed = $0.outcome { true } else { false } }
        let forfeited = outcomes.values.filter { if case .forfeited = $0.outcome { true } else { false } }
        var forfeitReasons: [String: Int] = [:]
        for case let .forfeited(why) in outcomes.values.map(\.outcome) { forfeitReasons[why, default: 0] += 1 }
        let playSeconds = numbers.lastMove.map { Reporting.seconds($0 - started) } ?? 0
        let report = ClientReport(
            matches: matches, clients: max(1, min(clients, matches)), opened: fleet.openCount,
            completed: completed.count, forfeits: forfeited.count,
            errors: errors.count, errorSamples: Array(errors.prefix(10)), moves: numbers.moves,
            playSeconds: Reporting.rounded(playSeconds, digits: 3),
            p50Micros: Reporting.rounded(numbers.latencies.micros(at: 0.5), digits: 1),
            p99Micros: Reporting.rounded(numbers.latencies.micros(at: 0.99), digits: 1),
            lastCompletedSeconds: completed.map { Reporting.seconds($0.after) }.max().map { Reporting.rounded($0, digits: 3) },
            firstForfeitSeconds: forfeited.map { Reporting.seconds($0.after) }.min().map { Reporting.rounded($0, digits: 3) },
            forfeitReasons: forfeitReasons)
        writeLine(ClientLine.done(report).json)
    }
}

/// Stakes and mints are amounts in the smallest unit of the chain's asset.
extension Amount: ExpressibleByArgument {}
