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

/// One `game-server --load N` run: a devchain and the game server in this process, the
/// clients in a child process, then the chain checked for conservation.
struct LoadRun {
    struct Options {
        var matches: Int
        var clients: Int
        var vanish: Int
        var idle: Bool
        var stake: Amount
        var seed: UInt64
        var concurrency: Int
        var turnTimeout: Duration
        var challenge: UInt64
        var realTime: Bool
        /// A devchain to use instead of one in this process (its RSS then stays out of ours).
        var externalChain: String?
        /// Settle on the local EVM (a child process, Parley's adjudicator deployed there)
        /// instead of a devchain: Ethereum-backend channels, forfeits paid by the contracts.
        var evm = false
        var keep: Bool
        var quiet: Bool
    }

    let options: Options

    /// How long the chain may take to settle every channel after the clients are done.
    static let settleTimeout: Duration = .seconds(120)
    /// Block time of a real-time devchain.
    static let blockMilliseconds: UInt64 = 100

    private func say(_ text: String) {
        if !options.quiet { Terminal.writeError(text + "\n") }
    }

    func run() async throws -> LoadSummary {
        let root = try makeTemporaryDirectory("game-server-load")
        defer { if !options.keep { try? FileManager.default.removeItem(atPath: root) } }
        let chainLoop = try EventLoop(name: "devchain")
        defer { chainLoop.shutdown() }
        var devchain: DevchainServer?
        var localEVM: LocalEVM?
        let chainURL: String
        if options.evm {
            let evm = try LocalEVM.start(manualTime: !options.realTime, startTime: options.realTime ? nil : 0, blockTime: options.realTime ? 0.1 : nil)
            localEVM = evm
            guard let deployer = evm.accounts.first else { throw GameServerFailure("the local EVM has no funded accounts") }
            let deployment = try await EthereumDeployer.deploy(endpoint: evm.endpoint, key: deployer.key, asset: .devToken)
            chainURL = "\(evm.endpoint.absoluteString)#\(deployment.adjudicator)@\(deployment.block)"
        } else if let external = options.externalChain {
            chainURL = external
        } else {
            let server = try await DevchainServer.start(
                DevchainServer.Configuration(
                    listen: .loopbackIPv4(port: 0), dataDirectory: root + "/devchain", challengeDefault: options.challenge,
                    timeMode: options.realTime ? .blocks(milliseconds: Self.blockMilliseconds) : .manual,
                    apps: GameRules.all),
                loop: chainLoop)
            devchain = server
            chainURL = "devchain://\(server.address)"
        }
        let hostLoop = try EventLoop(name: "game-server")
        let serverKey = SigningKey()
        let chain = try await GameChain.connect(chainURL, identity: serverKey, loop: hostLoop, fundGas: options.evm)
        try await chain.adapter.mint(options.stake * Amount(options.matches), to: serverKey.publicKey)
        let host = try await GameHost.start(
            identity: serverKey, listen: .loopbackIPv4(port: 0), journal: root + "/server", settlement: chain.adapter,
            // Idle channels never move; a turn timeout would send every one of them to the chain.
            policy: Self.serverPolicy(turnTimeout: options.idle ? nil : options.turnTimeout, challenge: options.challenge),
            maxStake: options.stake, logger: Logger(label: "game-server") { _ in SwiftLogNoOpLogHandler() }, loop: hostLoop)
        let advance: @Sendable (UInt64) async -> Void = { [devchain, localEVM] seconds in
            if let localEVM {
                try? await localEVM.increaseTime(seconds)
            } else if let client = chain.adapter as? DevchainClient, devchain != nil || options.externalChain != nil {
                _ = try? await client.advance(by: seconds)
            }
        }
        let summary: LoadSummary
        do {
            summary = try await drive(
                host: host, chain: chain, devchain: devchain, chainURL: chainURL, advance: advance, root: root)
        } catch {
            await host.shutDown()
            await chain.close()
            await devchain?.shutdown()
            localEVM?.stop()
            hostLoop.shutdown()
            throw error
        }
        await host.shutDown()
        await chain.close()
        await devchain?.shutdown()
        localEVM?.stop()
        hostLoop.shutdown()
        if options.keep { say("kept \(root)") }
        return summary
    }

    static func serverPolicy(turnTimeout: Duration?, challenge: UInt64) -> NodePolicy {
        NodePolicy(
            watcher: WatcherPolicy(clockPollInterval: .milliseconds(100), retryDelay: .milliseconds(100)),
            proposalTimeout: .seconds(30), challengeDuration: challenge, turnTimeout: turnTimeout,
            // A game server takes many matches from each client; its open handler vets them.
            opens: OpenLimits(maxChannelsPerPeer: 10_000, maxOpensPerMinute: 10_000))
    }

    private func drive(
        host: GameHost, chain: GameChain, devchain: DevchainServer?, chainURL: String,
        advance: @escaping @Sendable (UInt64) async -> Void, root: String
    ) async throws -> LoadSummary {
        guard let address = await host.node.listeningAddress else { throw GameServerFailure("the server is not listening") }
        let rssBefore = ResidentMemory.bytes() ?? 0
        let trimmedBefore = ResidentMemory.trimmedBytes() ?? 0
        let started = ContinuousClock.now
        var arguments = [
            "client", "--server", "\(host.node.publicKey.humanForm)@\(address)", "--chain", chainURL,
            "--matches", "\(options.matches)", "--clients", "\(options.clients)", "--vanish", "\(options.vanish)",
            "--stake", "\(options.stake)", "--seed", "\(options.seed)", "--concurrency", "\(options.concurrency)",
            "--challenge", "\(options.challenge)", "--journal", root + "/clients", "--exit-at-end-of-input",
        ]
        if options.idle { arguments.append("--idle") }
        if let signer = chain.ethereumSigner { arguments += ["--server-signer", signer.description] }
        let child = try PipedChild(readerName: "load-clients-stdout", arguments: arguments)
        say("game-server: \(options.matches) matches, \(options.clients) client nodes in process \(child.processIdentifier), seed \(options.seed)")
        let phase = Locked("opening")
        let matches = options.matches
        let progress = Task {
            await Terminal.showProgressLine(every: .milliseconds(250)) {
                let counts = host.snapshot
                return "  \(phase.withLock { $0 }): funded \(counts.funded)/\(matches) · server moves \(counts.moves) · to chain \(counts.exits) · closed \(counts.closed)"
            }
        }
        let clock = options.realTime ? nil : Task { await Self.keepTime(host: host, advance: advance, challenge: options.challenge) }
        defer {
            progress.cancel()
            clock?.cancel()
            child.terminate()
        }
        var rssOpen = rssBefore
        var trimmedOpen = trimmedBefore
        var openSeconds = 0.0
        var opened = 0
        var report: ClientReport?
        for await line in child.lines {
            guard let parsed = try? JSONDecoder().decode(ClientLine.self, from: Data(line.utf8)) else {
                Terminal.writeError("game-server client: \(line)\n")
                continue
            }
            switch parsed {
            case let .opened(count, _):
                opened = count
                openSeconds = Reporting.seconds(ContinuousClock.now - started)
                // Every open channel is funded on our side too before we measure.
                let deadline = ContinuousClock.now + .seconds(60)
                while host.snapshot.funded < count, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
                rssOpen = ResidentMemory.bytes() ?? rssBefore
                trimmedOpen = ResidentMemory.trimmedBytes() ?? trimmedBefore
                phase.withLock { $0 = options.idle ? "closing down" : "playing" }
                try? child.send(options.idle ? "stop" : "go")
            case let .done(result):
                report = result
            }
        }
        let status = await child.exitStatus()
        guard let report else { throw GameServerFailure("the client process exited (status \(status)) without a report") }
        phase.withLock { $0 = "settling" }
        var conservation = Conservation(stakes: 0, payouts: 0, unsettled: 0, completed: 0, forfeits: 0)
        if !options.idle {
            let deadline = ContinuousClock.now + Self.settleTimeout
            repeat {
                if let devchain {
                    conservation = Conservation(devchain.adjudicator.ledger)
                } else {
                    conservation = try await Conservation(host.node.channels.map(\.id), on: chain.adapter)
                }
                if conservation.unsettled == 0 { break }
                try await Task.sleep(for: .milliseconds(100))
            } while ContinuousClock.now < deadline
        }
        let seconds = Reporting.seconds(ContinuousClock.now - started)
        let counts = host.snapshot
        let answers = host.answerLatencies
        var errorSamples = report.errorSamples
        var errors = max(report.errors, options.matches - opened)  // every open failure is among the client's errors
        if !options.idle {
            if conservation.payouts != conservation.stakes {
                errors += 1
                errorSamples.append("conservation: \(conservation.payouts) paid out of channels holding \(conservation.stakes)")
            }
            if report.completed != conservation.completed || report.forfeits != conservation.forfeits {
                errors += 1
                errorSamples.append(
                    "the clients counted \(report.completed) completed and \(report.forfeits) forfeited, "
                        + "the chain \(conservation.completed) and \(conservation.forfeits)")
            }
            if conservation.unsettled > 0 {
                errors += 1
                errorSamples.append("\(conservation.unsettled) channels still hold funds \(Self.settleTimeout) after the clients finished")
            }
        }
        if status != 0 {
            errors += 1
            errorSamples.append("the client process exited with status \(status)")
        }
        let denominator = Double(max(opened, 1))
        return LoadSummary(
            matches: options.matches, opened: opened, completed: conservation.completed, forfeits: conservation.forfeits,
            errors: errors, errorSamples: errorSamples,
            movesPerSecond: Reporting.rounded(report.playSeconds > 0 ? Double(report.moves) / report.playSeconds : 0, digits: 1),
            p50Micros: report.p50Micros, p99Micros: report.p99Micros,
            bytesPerChannel: Reporting.rounded(Double(rssOpen - rssBefore) / denominator, digits: 0),
            trimmedBytesPerChannel: Reporting.rounded(Double(trimmedOpen - trimmedBefore) / denominator, digits: 0),
            seconds: Reporting.rounded(seconds, digits: 3), clients: report.clients, vanish: options.vanish, idle: options.idle,
            conservation: options.idle ? "skipped" : (conservation.payouts == conservation.stakes && conservation.unsettled == 0 ? "held" : "mismatch"),
            stakes: conservation.stakes, payouts: conservation.payouts, moves: report.moves, serverMoves: counts.moves,
            serverAnswerP50Micros: Reporting.rounded(answers.micros(at: 0.5), digits: 1),
            serverAnswerP99Micros: Reporting.rounded(answers.micros(at: 0.99), digits: 1),
            forfeitsToServer: conservation.forfeitsToServer, serverMoveFailures: counts.moveFailures, serverNodeErrors: counts.nodeErrors, rssBeforeBytes: rssBefore, rssOpenBytes: rssOpen,
            openSeconds: Reporting.rounded(openSeconds, digits: 3), lastCompletedSeconds: report.lastCompletedSeconds,
            firstForfeitSeconds: report.firstForfeitSeconds, clientCompleted: report.completed,
            clientForfeits: report.forfeits, forfeitReasons: report.forfeitReasons, serverLastNodeError: counts.lastNodeError,
            serverLastMoveFailure: counts.lastMoveFailure, timeMode: options.evm ? (options.realTime ? "evm real" : "evm manual") : options.externalChain != nil ? "external" : options.realTime ? "real" : "manual",
            seed: options.seed, build: Reporting.buildConfiguration)
    }

    /// Manual chain time: whenever a game waits out a challenge window on chain, jump past it.
    private static func keepTime(host: GameHost, advance: @Sendable (UInt64) async -> Void, challenge: UInt64) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(250))
            let counts = host.snapshot
            if counts.registered > counts.concluded {
                await advance(challenge + 1)
            }
        }
    }
}

/// Money in and out of the run's channels, read from the chain's ledger.
struct Conservation {
    /// Deposited into channels, minus what was reclaimed before funding.
    var stakes: Amount
    /// Withdrawn from concluded channels.
    var payouts: Amount
    /// Channels that still hold funds.
    var unsettled: Int
    /// Concluded from a final (cooperatively closed) state.
    var completed: Int
    /// Concluded from an unfinished game once the window closed.
    var forfeits: Int
    /// Forfeits whose whole pot went to the server (seat `.second`): the client stopped moving.
    var forfeitsToServer = 0

    init(stakes: Amount, payouts: Amount, unsettled: Int, completed: Int, forfeits: Int) {
        self.stakes = stakes
        self.payouts = payouts
        self.unsettled = unsettled
        self.completed = completed
        self.forfeits = forfeits
    }

    /// From each channel's state on chain: what it was funded with and, once every payout
    /// is withdrawn, what it paid. For a chain not in this process.
    init(_ channels: [ChannelID], on chain: any ChainReader) async throws {
        var stakes: Amount = 0
        var payouts: Amount = 0
        var unsettled = 0
        var completed = 0
        var forfeits = 0
        var forfeitsToServer = 0
        for id in channels {
            guard let channel = try await chain.channel(id) else { continue }
            stakes += channel.fundedTotal
            if channel.holdings > 0 { unsettled += 1 }
            guard let payout = channel.concludedAllocation, let registered = channel.registeredState else { continue }
            if channel.holdings == 0 { payouts += payout.total ?? 0 }
            if registered.isFinal {
                completed += 1
            } else {
                forfeits += 1
                if payout[.second] == payout.total { forfeitsToServer += 1 }
            }
        }
        self.init(stakes: stakes, payouts: payouts, unsettled: unsettled, completed: completed, forfeits: forfeits)
        self.forfeitsToServer = forfeitsToServer
    }

    init(_ ledger: Ledger) {
        var stakes: Amount = 0
        var payouts: Amount = 0
        for event in ledger.events {
            switch event.kind {
            case let .deposited(_, amount, _): stakes += amount
            case let .reclaimed(_, amount): stakes -= amount
            case let .withdrawn(_, amount): payouts += amount
            default: break
            }
        }
        var unsettled = 0
        var completed = 0
        var forfeits = 0
        var toServer = 0
        for channel in ledger.channels.values {
            if channel.holdings > 0 { unsettled += 1 }
            guard let payout = channel.concludedAllocation, let registered = channel.registeredState else { continue }
            if registered.isFinal {
                completed += 1
            } else {
                forfeits += 1
                if payout[.second] == payout.total { toServer += 1 }
            }
        }
        self.init(stakes: stakes, payouts: payouts, unsettled: unsettled, completed: completed, forfeits: forfeits)
        forfeitsToServer = toServer
    }
}
