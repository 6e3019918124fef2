import ArgumentParser
import Foundation
import ParleyChannel
import ParleyCrypto
import ParleyDaemon
import ParleyDevchain
import ParleyGames
import ParleyLocks
import ParleyMetricsEndpoint
import ParleySettlement
import ParleySubprocess
import ParleyTransport

/// `parley devchain`: the adjudicator rules as a separate, persistent, networked process.
struct DevchainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devchain",
        abstract: "Run a development chain: the settlement rules as a persistent network daemon.",
        discussion: """
            Runs the same adjudicator as the embedded LocalChain in its own process, shared \
            by any number of nodes. Clients dial it over Parley's encrypted transport; the key \
            a client proves in the handshake is the caller of every transaction it submits, \
            and the key the daemon proves is checked against the one the client pinned.

            Identity and operator: with --identity KEYFILE the daemon proves that key, and \
            clients pin it by dialing devchain://pk1…@HOST:PORT (printed on stderr at \
            startup); a daemon that proves another key is refused by the client with a clear \
            error. Whoever holds KEYFILE is the operator: only a client proving that key may \
            mint and advance the clock, unless --allow-faucet (every client may mint) or \
            --allow-time-travel (every client may advance a --manual-time clock) say otherwise. \
            Anyone else's mint or advance is refused (faucetNotAllowed, timeTravelNotAllowed) \
            and changes nothing.

            Without --identity the daemon proves a well-known key (derived from the public seed \
            "parley/devchain/v1"), so clients dial devchain://HOST:PORT with nothing else. \
            That key is public: anyone can prove it, so every client counts as the operator \
            (anyone may mint and advance time) and nothing proves the chain to its clients. \
            Such a daemon is for local development only, and says so on stderr at startup.

            Clients (parley node, play, demo, drill) give every request a deadline: one \
            unanswered within 10 s (DevchainClient.requestTimeout) fails, and a transaction \
            or clock move that fails so may or may not have been applied.

            Every accepted transaction (with its caller and chain time) and every clock move \
            is appended to DIR/ledger.log as a CRC-32C framed record and fsync'd before the \
            answer is sent, so nothing acknowledged is lost even to SIGKILL. On start the log \
            is replayed into a fresh adjudicator; a torn last record is cut off (and noted on \
            stderr), damage before the last record stops the daemon with exit status 1. \
            Refused transactions are not persisted. A lock on DIR keeps a second daemon out.

            Time: with --manual-time chain time moves only on `advance` requests from the \
            operator, or from any client with --allow-time-travel (tests, drills); otherwise \
            one block is made every --block-time ms and chain time is the whole seconds of elapsed block time. Chain time never goes backwards \
            across restarts; time the daemon was down does not count.

            Once listening it prints one line to stdout and flushes it:
              devchain listening on HOST:PORT (data DIR, N transactions replayed, time T)
            or with --json one object (faucet and timeTravel: "operator", "anyone" or, for \
            time travel without --manual-time, "off"):
              {"data":DIR,"faucet":WHO,"key":"pk1…","listening":"HOST:PORT",
               "manualTime":BOOL,"replayed":N,"time":T,"timeTravel":WHO}
            It runs until SIGINT or SIGTERM (or, with --stop-on-eof, until standard input \
            ends), then closes the listener and every client and persists the clock. Protocol and guarantees: Docs/Settlement.md, "The devchain daemon".

            With --metrics HOST:PORT it serves its metrics (transactions applied and \
            refused, clients, ledger fsyncs) at http://HOST:PORT/metrics in the Prometheus \
            text format; Docs/Metrics.md lists them.

            Examples:
              parley devchain --listen 127.0.0.1:7545 --data ~/.parley/devchain
              parley devchain --listen 127.0.0.1:0 --data /tmp/chain --manual-time --json
              parley keygen --out chain.key
              parley devchain --listen 0.0.0.0:7545 --data /srv/chain \\
                  --identity chain.key --allow-faucet
            """)

    @Option(name: .long, help: ArgumentHelp("Address to listen on; port 0 picks a free port.", valueName: "host:port"))
    var listen: String

    @Option(name: .long, help: ArgumentHelp("Data directory (created if missing; locked while running).", valueName: "dir"))
    var data: String

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Challenge duration advertised to clients (`info`) for channels opened without one.",
            valueName: "seconds"))
    var challengeDefault: UInt64 = ChannelParams.defaultChallengeDuration

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Milliseconds per block; chain time is the whole seconds of elapsed block time. Default \(DevchainTimeMode.defaultBlockMilliseconds).",
            valueName: "ms"))
    var blockTime: UInt64?

    @Flag(
        name: .long,
        help: "Chain time moves only on `advance` requests (from the operator, or any client with --allow-time-travel).")
    var manualTime = false

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Answer the handshake with this key (a `parley keygen` file) instead of the well-known one; clients pin it with devchain://pk1…@HOST:PORT, and its holder is the operator: the only client that may mint and advance time unless the flags below say otherwise.",
            valueName: "keyfile"))
    var identity: String?

    @Flag(
        name: .long,
        help: "Let every client mint, not only the operator (the client proving --identity's key). Without --identity every client may anyway.")
    var allowFaucet = false

    @Flag(
        name: .long,
        help: "Let every client advance the clock (needs --manual-time), not only the operator. Without --identity every client may anyway.")
    var allowTimeTravel = false

    @Option(
        name: .long,
        help: ArgumentHelp(
            "The chain id every channel on this devchain is bound to (its settlement domain). Default \(SettlementDomain.devchainDefault.chainID); a ledger written under another id does not replay.",
            valueName: "id"))
    var chainID: UInt64?

    @Flag(name: .long, help: "Print the listening line as one JSON object.")
    var json = false

    @OptionGroup var metricsOption: MetricsOption

    @Flag(
        name: .long,
        help: "Stop (as on SIGTERM) when standard input reaches its end: a parent that holds the write end of a pipe takes the daemon down with it, however the parent ends.")
    var stopOnEOF = false

    func validate() throws {
        if manualTime && blockTime != nil { throw ValidationError("--manual-time and --block-time exclude each other.") }
        if let blockTime, blockTime == 0 { throw ValidationError("--block-time must be at least 1 ms.") }
        if allowTimeTravel && !manualTime {
            throw ValidationError("--allow-time-travel needs --manual-time: a clock that follows blocks cannot be advanced.")
        }
        do { _ = try SocketAddress(listen) } catch { throw ValidationError("--listen: \(error)") }
        guard !data.isEmpty else { throw ValidationError("--data needs a directory.") }
    }

    func run() async throws {
        let metricsBackend = metricsOption.bootstrap()
        let stop = StopSignal()
        let loop: EventLoop
        let server: DevchainServer
        let metricsServer: MetricsHTTPServer?
        do {
            try createDirectories((data as NSString).deletingLastPathComponent)
            loop = try EventLoop(name: "devchain")
            var configuration = DevchainServer.Configuration(
                listen: try SocketAddress(listen), dataDirectory: data, challengeDefault: challengeDefault,
                timeMode: manualTime ? .manual : .blocks(milliseconds: blockTime ?? DevchainTimeMode.defaultBlockMilliseconds),
                identity: try identity.map { path throws(KeyFileError) in try KeyFile.load(from: path) } ?? Devchain.wellKnownIdentity,
                allowFaucet: allowFaucet, allowTimeTravel: allowTimeTravel, apps: GameRules.all, log: { Terminal.writeError("parley devchain: \($0)\n") })
            configuration.onFatal = { stop.trigger(.fatal($0)) }
            if let chainID { configuration.domain = try SettlementDomain(chainID: chainID) }
            server = try await DevchainServer.start(configuration, loop: loop)
            metricsServer = try await metricsOption.serve(metricsBackend, loop: loop, command: "devchain")
        } catch {
            throw failure("devchain", "\(error)")
        }
        // The listening line is printed from inside the service, once signals are handled, so a
        // SIGTERM right after it always stops the daemon cleanly.
        try await DaemonService.run(label: "parley.devchain.lifecycle", stop: stop) {
            if stopOnEOF { stop.watchStandardInput() }
            Terminal.writeError(Self.accessNote(server))
            try announce(server)
            let reason = await stop.wait()
            // Stops accepting, closes every client, persists the clock; every accepted
            // transaction was fsync'd before its answer.
            await server.shutdown()
            await metricsServer?.close()
            loop.shutdown()
            switch reason {
            case .signal:
                Terminal.writeError("parley devchain: stopped by a signal at chain time \(server.now.seconds)\n")
            case .inputClosed, .quit:
                Terminal.writeError("parley devchain: standard input closed; stopped at chain time \(server.now.seconds)\n")
            case let .fatal(why):
                throw failure("devchain", "stopped: \(why)")
            }
        }
    }

    /// Who the daemon is and who may mint and move its clock, for stderr at startup.
    private static func accessNote(_ server: DevchainServer) -> String {
        let configuration = server.configuration
        guard !configuration.hasWellKnownIdentity else {
            return """
                parley devchain: no --identity: this daemon proves the well-known public key, which anyone can prove, \
                so every client counts as its operator (anyone may mint and advance time) and no client can tell it \
                from an impersonator. For local development only; give a chain others share --identity KEYFILE.

                """
        }
        let key = configuration.identity.publicKey.humanForm
        let faucet = configuration.faucetAccess == .anyone ? "any client (--allow-faucet)" : "the operator only"
        let time: String
        switch (configuration.timeMode, configuration.timeTravelAccess) {
        case (.blocks, _): time = "nobody (the clock follows blocks)"
        case (.manual, .anyone): time = "any client (--allow-time-travel)"
        case (.manual, .operatorOnly): time = "the operator only"
        }
        return """
            parley devchain: identity \(key); dial devchain://\(key)@\(server.address)
            parley devchain: the operator is the client proving that key; mint: \(faucet); advance: \(time)

            """
    }

    private func announce(_ server: DevchainServer) throws {
        let recovery = server.recovery
        let configuration = server.configuration
        if json {
            try printJSON(DevchainListening(
                listening: server.address.description, data: data, replayed: recovery.transactions,
                time: recovery.time.seconds, manualTime: manualTime, key: configuration.identity.publicKey.humanForm,
                faucet: configuration.faucetAccess.rawValue,
                timeTravel: manualTime ? configuration.timeTravelAccess.rawValue : "off"))
        } else {
            print(
                "devchain listening on \(server.address) (data \(data), \(recovery.transactions) transactions replayed, time \(recovery.time.seconds))")
        }
        fflush(nil)  // tests read this line from a pipe
    }
}

private struct DevchainListening: Encodable {
    var listening: String
    var data: String
    var replayed: Int
    var time: UInt64
    var manualTime: Bool
    /// The key the daemon proves (`pk1…`); clients pin it.
    var key: String
    /// Who may mint: "operator" or "anyone".
    var faucet: String
    /// Who may advance the clock: "operator", "anyone", or "off" without --manual-time.
    var timeTravel: String
}

