import ArgumentParser
import Foundation
import Logging
import ParleyChannel
import ParleyControl
import ParleyDaemon
import ParleyCrypto
import ParleyDevchain
import ParleyGames
import ParleyLocks
import ParleyMetricsEndpoint
import ParleyNode
import ParleySettlement
import ParleySubprocess
import ParleyTransport

/// `parley node`: one long-running node driven by commands on stdin, for two-terminal
/// demos and scripts.
struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node",
        abstract: "Run a node: open, pay, close and dispute channels by typing commands on stdin or through `parley ctl`.",
        discussion: """
            Runs one Parley node with the identity in --key (a `parley keygen` file), \
            accepting peers on --listen, journaling every signature to --journal and \
            settling on the chain at --chain. It reads one command per line on stdin and \
            answers each with one line on stdout: JSON (sorted keys, flushed at once) when \
            stdout is not a terminal or with --json, a short human line on a terminal. \
            Commands run concurrently: each answers when it is done, with the id of its \
            request (a typed line gets its line number), so a slow `open` or `close` never \
            holds `status`. A line may also be a JSON request of the control protocol, \
            e.g. {"command":"pay","channel":"3f9a12cd","amount":20,"id":"a1"} \
            (Docs/Control.md). Blank lines are skipped; `help` lists the commands.

            With --control unix:PATH the node also serves the same commands on a Unix \
            socket (mode 0600, only this user) for `parley ctl`, and keeps running when \
            stdin ends: run it in the background, under systemd or in a container, and stop \
            it with SIGTERM or SIGINT (or `quit`); journal writes under way finish first.

            With --metrics HOST:PORT the node serves its metrics (updates, channels, \
            sessions, journal fsyncs, chain calls) at http://HOST:PORT/metrics in the \
            Prometheus text format; Docs/Metrics.md lists them.

            Commands (CHANNEL: the 64-hex channel id or a unique prefix of >= 8 digits):
              open PUBKEY@HOST:PORT MINE THEIRS [tictactoe]
                  Dial the peer (PUBKEY: its pk1... form or 64 hex digits) and open a
                  payment channel: we deposit MINE, it deposits THEIRS. Answers once
                  both deposits are on chain, with "channel", "version" (0), "peer"
                  and "balances" {"me","peer"}.
              pay CHANNEL AMOUNT [COUNT]
                  Pay AMOUNT to the peer (COUNT times, default 1); either side of a
                  channel may pay. Answers once the peer countersigned the last one:
                  "channel", "version", "balances", "paid" (how many went through; on
                  failure the answer has ok false, the error and "paid"). COUNT
                  payments that our balance cannot cover are refused before the
                  first is made.
              move CHANNEL CELL
                  Tic-tac-toe channels (opened with `tictactoe`): our mark in cell
                  0...8. Answers with "channel", "version", "balances".
              close CHANNEL
                  Close cooperatively; answers once our payout is in our chain
                  account: "channel", "version", "balances", "payout". A peer that
                  does not countersign within --close-timeout fails the command with
                  a hint to `dispute`.
              dispute CHANNEL
                  Register our latest state on chain without the peer. Answers at
                  once; the watcher concludes after the challenge window and
                  withdraws (follow the events).
              state CHANNEL
                  Our latest fully-signed state, "state" (hex of its canonical
                  encoding) and "version": what a drill keeps to register later.
              register CHANNEL HEX|latest
                  Submit a state (from `state`) or our latest to the chain ourselves,
                  outside the watcher. Our watcher keeps guarding the channel: an older
                  state is answered with our newest, as if the peer had registered it.
              cheat CHANNEL HEX|latest
                  Drills: like register, but our watcher stops refuting on that
                  channel for good, so the other side's watcher is the one tested.
              silence | wake
                  Drills: drop every channel message we receive and send none, or
                  stop doing so. Sessions stay up; the watcher keeps working.
              disconnect | reconnect
                  Drills: cut every peer connection and refuse new ones, or allow them
                  again (peers we dialled are redialled).
              tamper CHANNEL KIND
                  Drills: send the peer a malformed update, KIND one of bad-signature,
                  overspend, version-skip, wrong-channel, replay. The peer must reject
                  it; our state is untouched. Answers with the "version" it carried.
              hold-finals on|off
                  Drills (the attack of issue 15, item 1): answer every final state
                  the peer proposes with "declined", but countersign it in secret
                  first. Honest peers then take no more updates on that channel.
              held CHANNEL
                  The final state countersigned in secret: "state" (hex), "version".
              progress-final CHANNEL
                  Drills (issue 15, item 4): as the player to move, "move" on chain
                  to a final copy of the registered state. The chain refuses it.
              status
                  "key", "listening", "chainBalance" and "channels": one object per
                  channel with "channel", "peer", "seat" (0 opener, 1 responder),
                  "version", "balances", "status" (funding, open, closing, closed,
                  abandoned), "phase", "funded", "closing", "closed", "connected".
              balance
                  "chainBalance" (our chain account) and "inChannels" (what our open
                  channels hold for us).
              help
                  Every command, its usage and what it does ("commands").
              quit
                  Answer {"command":"quit","ok":true}, shut down, exit 0. End of
                  stdin shuts down the same way, without an answer.

            Every answer has "v" (the protocol version), "id", "ok" and "command". A \
            command that fails answers {"command":VERB,"error":MESSAGE,"hint":…,"ok":false,…} \
            and the node keeps running.

            Lines with "event" instead of "ok" are events, printed as they happen and \
            never interleaved with other lines. The first line is \
            {"channels":N,"event":"ready","key":PK,"listening":"HOST:PORT"} once the node \
            is up, N being the channels recovered from the journal: send commands after \
            it. Then, with "channel" (or "peer"): opened, funded, proposed, committed \
            ("version", "mine", "balances"), rejected, peerConnected, peerDisconnected, \
            peerSilent, registered ("version", "deadline", "by"), refuted, exitStarted, \
            concluded, withdrawn ("amount"), closed, abandoned (a channel never funded, \
            given up and any deposit reclaimed) and error ("error"). Events about a \
            window carry "deadline" (chain time) and "secondsLeft".

            Money: --mint N tops our chain account up to N units at start from the \
            devchain faucet (or a development token), so a demo user has something to \
            deposit; a restart does not mint again what is already there (default 0).

            Crashes: every signature is fsync'd to the journal before it is sent. Kill \
            the node (even with SIGKILL) and start it again with the same --key, \
            --journal and --listen: it recovers every open channel, redials the peers it \
            dialled before, and waits for the others to dial back. Logs go to stderr \
            (warnings and errors; --verbose for more).

            Example: a devchain, then Bob and Alice in two terminals.
              parley devchain --listen 127.0.0.1:7545 --data /tmp/chain --manual-time &
              parley keygen --out alice.key && parley keygen --out bob.key
              # terminal 1, Bob:
              parley node --key bob.key --listen 127.0.0.1:7001 --journal /tmp/bob \\
                --chain devchain://127.0.0.1:7545 --mint 1000
              {"channels":0,"event":"ready","key":"pk1bob...","listening":"127.0.0.1:7001"}
              # terminal 2, Alice:
              parley node --key alice.key --listen 127.0.0.1:7000 --journal /tmp/alice \\
                --chain devchain://127.0.0.1:7545 --mint 1000
              open pk1bob...@127.0.0.1:7001 100 100      # pk1bob...: parley keygen --show bob.key
              {"balances":{"me":100,"peer":100},"channel":"3f9a12cd...",...,"ok":true}
              pay 3f9a12cd 20
              {"balances":{"me":80,"peer":120},...,"command":"pay","ok":true,"version":1}
              # terminal 1, Bob sees {...,"event":"committed","mine":false,"version":1}
              pay 3f9a12cd 5
              {"balances":{"me":115,"peer":85},...,"command":"pay","ok":true,"version":2}
              # terminal 2, Alice:
              close 3f9a12cd
              {...,"command":"close","ok":true,"payout":85,"version":3}
              quit
            """)

    @OptionGroup var options: NodeOptions

    @OptionGroup var metricsOption: MetricsOption

    @Option(
        name: .long,
        help: ArgumentHelp(
            "How long our proposal may go unanswered before the peer counts as silent (then we exit on chain).",
            valueName: "seconds"))
    var proposalTimeout: Double = Reporting.seconds(NodePolicy.defaultProposalTimeout)

    @Option(
        name: .long,
        help: ArgumentHelp("Challenge window, in seconds of chain time, for channels we open.", valueName: "seconds"))
    var challenge: UInt64 = ChannelParams.defaultChallengeDuration

    @Option(
        name: .long,
        help: ArgumentHelp("How often the watcher reads the chain clock (drills use a short one).", valueName: "ms"))
    var clockPollMs = 250

    @Option(
        name: .long,
        help: ArgumentHelp(
            "How long the peer may stay disconnected, while we have funds in a channel, before we exit on chain (default \(Reporting.seconds(WatcherPolicy.defaultDisconnectGrace)) s).",
            valueName: "seconds"))
    var disconnectGrace: Double = Reporting.seconds(WatcherPolicy.defaultDisconnectGrace)

    @Flag(name: .long, help: "Log at info level on stderr (default: warnings and errors only).")
    var verbose = false

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Also serve the commands on a Unix socket (mode 0600; `parley ctl --control unix:PATH`). The node then keeps running when stdin ends, until SIGTERM, SIGINT or `quit`.",
            valueName: "unix:PATH"))
    var control: String?

    @Flag(name: .long, help: "Print answers and events as JSON lines even on a terminal (they are JSON when stdout is not a terminal).")
    var json = false

    @Option(
        name: .long,
        help: ArgumentHelp(
            "How long `close` waits for the peer to countersign before it fails with a hint to `dispute` (the close may still complete later).",
            valueName: "seconds"))
    var closeTimeout: Double = 30

    @Option(
        name: .long,
        help: ArgumentHelp(
            "The most payments one update carries when they wait together on a channel (they coalesce: Docs/Node.md, \"Concurrent payments\"); 1 sends each payment as its own update.",
            valueName: "n"))
    var maxPaymentsPerUpdate = ChannelEngine.defaultMaxPaymentsPerUpdate

    /// The socket path of --control.
    var controlPath: String? { control.map { String($0.dropFirst("unix:".count)) } }

    func validate() throws {
        if let control, !control.hasPrefix("unix:") || control.count <= 5 {
            throw ValidationError("--control must be unix:PATH (a Unix socket path), got '\(control)'.")
        }
        guard closeTimeout > 0, closeTimeout <= 3600 else { throw ValidationError("--close-timeout must be in (0, 3600] seconds.") }
        guard (1...100_000).contains(maxPaymentsPerUpdate) else {
            throw ValidationError("--max-payments-per-update must be 1...100000, got \(maxPaymentsPerUpdate).")
        }
        guard proposalTimeout > 0, proposalTimeout <= 3600 else {
            throw ValidationError("--proposal-timeout must be in (0, 3600] seconds.")
        }
        guard ChannelParams.challengeDurationRange.contains(challenge) else {
            throw ValidationError("--challenge must be \(ChannelParams.challengeDurationRange) seconds.")
        }
        guard (1...60_000).contains(clockPollMs) else { throw ValidationError("--clock-poll-ms must be 1...60000.") }
        guard disconnectGrace > 0, disconnectGrace <= 7 * 24 * 3600 else {
            throw ValidationError("--disconnect-grace must be in (0, 604800] seconds.")
        }
    }

    func run() async throws {
        let level: Logger.Level = verbose ? .info : .warning
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let metricsBackend = metricsOption.bootstrap()
        let output = ConsoleOutput(human: !json && isatty(STDOUT_FILENO) == 1)
        let running: NodeOptions.Running
        do { running = try await options.start(policy: policy(), apps: [TicTacToe()], label: "parley.node") } catch {
            throw failure("node", error.description)
        }
        let node = running.node
        // Payment channels as the defaults say; tic-tac-toe too, where the rules have
        // already checked every move, so any legal move (and the close) is accepted.
        node.setOpenHandler { request in request.appID == .payment || request.appID == TicTacToe.id }
        node.setUpdateHandler { update in
            update.current.appData.isEmpty ? await Node.acceptPaymentsToMe(update) : .accept
        }
        let stop = StopSignal()
        let controller = NodeController(node: node, closeDeadline: .milliseconds(Int64((closeTimeout * 1000).rounded())))
        let subscribers = EventSubscribers()
        let server: ControlSocketServer?
        do {
            server = try controlPath.map { path in
                try ControlSocketServer(path: path) { connection in
                    Task { await controller.serve(connection, subscribers: subscribers, stop: { stop.trigger(.quit) }) }
                }
            }
        } catch {
            await node.shutDown()
            await running.closeChain()
            running.loop.shutdown()
            throw failure("node", "\(error)")
        }
        let metricsServer: MetricsHTTPServer?
        do { metricsServer = try await metricsOption.serve(metricsBackend, loop: running.loop, command: "node") } catch {
            server?.stop()
            await node.shutDown()
            await running.closeChain()
            running.loop.shutdown()
            throw failure("node", "--metrics: \(error)")
        }
        // Signals are handled from the first line of the service body on: the ready line, the
        // events and the console start there, so a supervisor's SIGTERM right after `ready`
        // always shuts the node down cleanly.
        try await DaemonService.run(label: "parley.node.lifecycle", stop: stop) {
            var ready = ControlEvent(.ready)
            ready.key = node.publicKey.humanForm
            ready.listening = await node.listeningAddress?.description
            ready.channels = node.statuses.count
            output.event(ready)
            subscribers.send(ready)
            let events = node.events
            let printer = Task {
                for await event in events {
                    let line = await NodeEventLine.render(event, node: node)
                    output.event(line)
                    subscribers.send(line)
                }
            }
            // The console: each line runs as soon as it arrives, beside the others; answers come
            // as they finish. A line typed as words gets the line number as its id.
            let console = Task {
                var number = 0
                await withTaskGroup(of: Void.self) { group in
                    for await line in standardInputLines(threadName: "parley-node-stdin") {
                        number += 1
                        let request: ControlRequest
                        do {
                            guard var parsed = try ControlCodec.request(line) else { continue }
                            if parsed.id == nil { parsed.id = String(number) }
                            request = parsed
                        } catch {
                            output.response(.failure(line.split(separator: " ").first.map(String.init) ?? "?", id: String(number), error: "\(error)"))
                            continue
                        }
                        if request.command == .quit {
                            output.response(ControlResponse(command: "quit", id: request.id, ok: true))
                            stop.trigger(.quit)
                            return
                        }
                        if request.command == .subscribe {
                            output.response(.failure("subscribe", id: request.id, error: "the console already shows every event"))
                            continue
                        }
                        group.addTask { output.response(await controller.answer(request)) }
                    }
                }
                // Without a control socket, the end of stdin ends the node once the commands
                // under way have answered (scripts and pipes); with one, the node keeps serving
                // until SIGTERM/SIGINT or `quit`.
                if controlPath == nil { stop.trigger(.inputClosed) }
            }
            let reason = await stop.wait()
            if case .signal = reason { Terminal.writeError("parley node: signalled to stop: shutting down\n") }
            let stage = Locked("closing the control socket")
            let watchdog = Task.detached {
                try await Task.sleep(for: Self.shutdownGrace)
                Terminal.writeError(
                    "parley node: still \(stage.withLock { $0 }) after \(Self.shutdownGrace); exiting anyway (the journal is durable)\n")
                Foundation.exit(1)
            }
            server?.stop()
            console.cancel()
            stage.withLock { $0 = "shutting the node down" }
            await node.shutDown()
            stage.withLock { $0 = "printing the last events" }
            await printer.value
            stage.withLock { $0 = "closing the chain client" }
            await running.closeChain()
            stage.withLock { $0 = "closing the metrics endpoint" }
            await metricsServer?.close()
            stage.withLock { $0 = "stopping the event loop" }
            running.loop.shutdown()
            watchdog.cancel()
        }
    }

    /// How long `quit` waits for the node to shut down before the process exits regardless.
    static let shutdownGrace: Duration = .seconds(10)

    private func policy() -> NodePolicy {
        var policy = NodePolicy(
            watcher: WatcherPolicy(
                disconnectGrace: .milliseconds(Int64((disconnectGrace * 1000).rounded())),
                clockPollInterval: .milliseconds(clockPollMs), retryDelay: .milliseconds(250)),
            proposalTimeout: .milliseconds(Int64((proposalTimeout * 1000).rounded())),
            challengeDuration: challenge)
        policy.maxPaymentsPerUpdate = maxPaymentsPerUpdate
        return policy
    }
}
