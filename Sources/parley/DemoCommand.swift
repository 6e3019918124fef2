import ArgumentParser
import Foundation
import Logging
import ParleyChannel
import ParleyDemo
import ParleyCrypto
import ParleyDevchain
import ParleyEthereum
import ParleyJournal
import ParleyLocks
import ParleyNode
import ParleySettlement
import ParleySubprocess
import ParleyTransport
import ParleyWire
import Synchronization

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Two nodes, one payment channel, thousands of payments, settled on chain.",
        discussion: """
            Starts a chain (the embedded LocalChain, a running `parley devchain`, or with \
            --chain evm the local EVM with Parley's Vyper adjudicator), and two \
            nodes, Alice and Bob, in this process, talking over real loopback TCP through \
            libuv with encrypted sessions. Alice opens a channel (both deposit), streams \
            payments of 1 unit to Bob — every one signed by both, every signature fsync'd to \
            each side's journal first — then they close cooperatively on chain, where the final \
            state pays both.

            --dispute silent: Bob stops answering halfway; Alice's proposal times out and her \
            watcher exits on chain with the latest fully-signed state.
            --dispute cheat: after the payments Alice goes offline and registers an old state \
            in which she had more; Bob's watcher refutes it with the latest state before the \
            window closes. Alice's node comes back from its journal and collects what she is owed.

            Examples:
              parley demo
              parley demo --payments 10000 --json
              parley demo --dispute cheat --data /tmp/demo && parley journal verify /tmp/demo/bob
              parley demo --chain evm --dispute cheat      (the local EVM: `make evm-env` first)
              parley devchain --listen 127.0.0.1:7545 --data /tmp/chain --manual-time &
              parley demo --devchain 127.0.0.1:7545
            """)

    @Option(name: .long, help: "Payments of 1 unit from Alice to Bob.")
    var payments = 10_000

    @Option(name: .long, help: "What each side deposits.")
    var deposit: Amount = 1_000_000

    @Option(name: .long, help: "none, silent (Bob stops answering) or cheat (Alice registers an old state).")
    var dispute: DemoDispute = .none

    @Option(name: .long, help: "Use the `parley devchain` at HOST:PORT instead of the embedded chain.")
    var devchain: String?

    @Option(
        name: .long,
        help: "embedded (default), or evm: start the local EVM (`make evm-env`), deploy the Vyper adjudicator and settle there, with Ethereum-backend channels.")
    var chain: DemoChainKind = .embedded

    @Option(name: .long, help: "Keep the journals in DIR/alice and DIR/bob (must not hold journals yet).")
    var data: String?

    @Option(name: .long, help: "Challenge window in seconds of chain time.")
    var challenge: UInt64 = 60

    @Option(name: .long, help: "How long Alice waits for an answer before she counts Bob as silent (seconds).")
    var proposalTimeout = 2.0

    @Flag(
        name: .long,
        help: #"Print one JSON object at the end: {"payments", "seconds", "updatesPerSecond", "p50Micros", "p99Micros", "finalVersion", "settledVersion", "payout": {"alice", "bob"}, "dispute", "staleVersion", ...}."#)
    var json = false

    func validate() throws {
        guard payments >= 0, payments <= 100_000_000 else { throw ValidationError("--payments must be 0...100000000.") }
        guard deposit > 0 else { throw ValidationError("--deposit must be positive.") }
        guard Amount(payments) <= deposit else { throw ValidationError("--payments cannot exceed --deposit (Alice pays 1 unit each).") }
        guard ChannelParams.challengeDurationRange.contains(challenge) else {
            throw ValidationError("--challenge must be \(ChannelParams.challengeDurationRange) seconds.")
        }
        guard proposalTimeout > 0, proposalTimeout <= 600 else { throw ValidationError("--proposal-timeout must be in (0, 600].") }
        if dispute != .none, payments < 2 { throw ValidationError("--dispute \(dispute.rawValue) needs at least 2 payments.") }
        if chain == .evm, devchain != nil { throw ValidationError("--chain evm and --devchain are two different chains: pick one.") }
    }

    func run() async throws {
        let result: DemoResult
        do {
            result = try await DemoRun(options: demoOptions).run()
        } catch let error as DemoFailure {
            throw failure("demo", error.description)
        } catch {
            throw failure("demo", "\(error)")
        }
        if json { try printJSON(result) }
    }

    private var demoOptions: DemoOptions {
        var options = DemoOptions()
        options.payments = payments
        options.deposit = deposit
        options.dispute = dispute
        options.devchain = devchain
        options.chain = chain
        options.data = data
        options.challenge = challenge
        options.proposalTimeout = proposalTimeout
        options.json = json
        return options
    }
}

extension DemoDispute: ExpressibleByArgument {}
extension DemoChainKind: ExpressibleByArgument {}
