import ArgumentParser
import Foundation
import ParleyChannel
import ParleyCrypto
import ParleyDevchain
import ParleyLocks
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
            by any number of nodes. Clients dial devchain://HOST:PORT over Parley's encrypted \
            transport; the key a client proves in the handshake is the caller of every \
            transaction it submits. The daemon's own key is well known (derived from the \
            public seed "parley/devchain/v1"), so clients need nothing but the address, and \
            nothing proves the chain to them: fine for development, never for real money.

            Every accepted transaction (with its caller and chain time) and every clock move \
            is appended to DIR/ledger.log as a CRC-32C framed record and fsync'd before the \
            answer is sent, so nothing acknowledged is lost even to SIGKILL. On start the log \
            is replayed into a fresh adjudicator; a torn last record is cut off (and noted on \
            stderr), damage before the last record stops the daemon with exit status 1. \
            Refused transactions are not persisted. A lock on DIR keeps a second daemon out.

            Time: with --manual-time chain time moves only when a client sends `advance` \
            (tests, drills); otherwise one block is made every --block-time ms and chain time \
            is the whole seconds of elapsed block time. Chain time never goes backwards \
            across restarts; time the daemon was down does not count.

            Once listening it prints one line to stdout and flushes it:
              devchain listening on HOST:PORT (data DIR, N transactions replayed, time T)
            or with --json one object:
              {"data":DIR,"listening":"HOST:PORT","manualTime":BOOL,"replayed":N,"time":T}
            It runs until SIGINT or SIGTERM (or, with --stop-on-eof, until standard input \
            ends), then closes the listener and every client and persists the clock. Protocol and guarantees: Docs/Settlement.md, "The devchain daemon".

            With --identity KEYFILE the daemon answers with that key instead, and clients \
            pin it by dialing devchain://pk1…@HOST:PORT (printed on stderr at startup).

            Examples:
              parley devchain --listen 127.0.0.1:7545 --data ~/.parley/devchain
              parley devchain --listen 127.0.0.1:0 --data /tmp/chain --manual-time --json
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

    @Flag(name: .long, help: "Chain time moves only on `advance` requests from clients.")
    var manualTime = false

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Answer the handshake with this key (a `parley keygen` file) instead of the well-known one; clients pin it with devchain://pk1…@HOST:PORT.",
            valueName: "keyfile"))
    var identity: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "The chain id every channel on this devchain is bound to (its settlement domain). Default \(SettlementDomain.devchainDefault.chainID); a ledger written under another id does not replay.",
            valueName: "id"))
    var chainID: UInt64?

    @Flag(name: .long, help: "Print the listening line as one JSON object.")
    var json = false

    @Flag(
        name: .long,
        help: "Stop (as on SIGTERM) when standard input reaches its end: a parent that holds the write end of a pipe takes the daemon down with it, however the parent ends.")
    var stopOnEOF = false

    func validate() throws {
        if manualTime && blockTime != nil { throw ValidationError("--manual-time and --block-time exclude each other.") }
        if let blockTime, blockTime == 0 { throw ValidationError("--block-time must be at least 1 ms.") }
        do { _ = try SocketAddress(listen) } catch { throw ValidationError("--listen: \(error)") }
        guard !data.isEmpty else { throw ValidationError("--data needs a directory.") }
    }

    func run() async throws {
        let stop = StopSignal()
        let loop: EventLoop
        let server: DevchainServer
        do {
            loop = try EventLoop(name: "devchain")
            var configuration = DevchainServer.Configuration(
                listen: try SocketAddress(listen), dataDirectory: data, challengeDefault: challengeDefault,
                timeMode: manualTime ? .manual : .blocks(milliseconds: blockTime ?? DevchainTimeMode.defaultBlockMilliseconds),
                identity: try identity.map { path throws(KeyFileError) in try KeyFile.load(from: path) } ?? Devchain.wellKnownIdentity,
                log: { writeToStandardError("parley devchain: \($0)\n") })
            configuration.onFatal = { stop.trigger(.fatal($0)) }
            if let chainID { configuration.domain = try SettlementDomain(chainID: chainID) }
            server = try await DevchainServer.start(configuration, loop: loop)
        } catch {
            throw failure("devchain", "\(error)")
        }
        stop.watchSignals()
        if stopOnEOF { stop.watchStandardInput() }
        if identity != nil {
            writeToStandardError(
                "parley devchain: identity \(server.configuration.identity.publicKey.humanForm); dial devchain://\(server.configuration.identity.publicKey.humanForm)@\(server.address)\n")
        }
        try announce(server)
        let reason = await stop.wait()
        await server.shutdown()
        loop.shutdown()
        switch reason {
        case let .signal(name):
            writeToStandardError("parley devchain: stopped by \(name) at chain time \(server.now.seconds)\n")
        case .inputClosed:
            writeToStandardError("parley devchain: standard input closed; stopped at chain time \(server.now.seconds)\n")
        case let .fatal(why):
            throw failure("devchain", "stopped: \(why)")
        }
    }

    private func announce(_ server: DevchainServer) throws {
        let recovery = server.recovery
        if json {
            try printJSON(DevchainListening(
                listening: server.address.description, data: data, replayed: recovery.transactions,
                time: recovery.time.seconds, manualTime: manualTime))
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
}

/// Why the daemon stops: a signal, or a ledger it can no longer write.
private enum StopReason: Sendable {
    case signal(String)
    /// `--stop-on-eof` and standard input ended.
    case inputClosed
    case fatal(String)
}

/// Written once, before the daemon waits; only keeps the sources alive.
nonisolated(unsafe) private var signalSources: [any DispatchSourceSignal] = []

/// Resolves once, on SIGINT/SIGTERM or a fatal error.
private final class StopSignal: Sendable {
    private struct State {
        var reason: StopReason?
        var waiter: CheckedContinuation<StopReason, Never>?
    }

    private let state = Locked(State())

    func watchSignals() {
        var sources: [any DispatchSourceSignal] = []
        for (number, name) in [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM")] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [self] in trigger(.signal(name)) }
            source.resume()
            sources.append(source)
        }
        // Kept for the life of the process: a released source stops delivering.
        signalSources = sources
    }

    /// Reads (and ignores) standard input on a thread of its own until it ends.
    func watchStandardInput() {
        let thread = Thread { [self] in
            var buffer = [UInt8](repeating: 0, count: 512)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress, $0.count) }
                if count > 0 { continue }
                if count < 0, errno == EINTR { continue }
                break
            }
            trigger(.inputClosed)
        }
        thread.name = "devchain-stdin"
        thread.start()
    }

    func trigger(_ reason: StopReason) {
        let waiter = state.withLock { state -> CheckedContinuation<StopReason, Never>? in
            guard state.reason == nil else { return nil }
            state.reason = reason
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: reason)
    }

    func wait() async -> StopReason {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> StopReason? in
                if let reason = state.reason { return reason }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}
