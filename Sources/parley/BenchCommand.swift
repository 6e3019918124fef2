import ArgumentParser
import ParleyBench
import ParleyChannel
import Foundation
import ParleyJournal

/// `parley bench`: the numbers of the design's performance model (Docs/Performance.md), measured in one run.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure the crypto ceiling, fsync, one channel, concurrent payers, many channels and memory per idle channel.",
        usage: "parley bench [--seconds <s>] [--payers <p>] [--channels <n>] [--idle-channels <m>] [--durability fsync|none] [--json]",
        discussion: """
            One run, meant for a release build (`swift build -c release`; the build is printed):

            1. crypto ceiling: Ed25519 sign and verify (libsodium) for about a second each on \
            one thread; an update costs 2 signs and 2 verifies, so the ceiling is \
            cores / (2·sign + 2·verify) updates/s. Then the same for each settlement backend \
            as an update pays for it, state hashing included: Ed25519 (BLAKE2b) and Ethereum \
            (Keccak-256 EIP-712 digest, secp256k1 sign and signer recovery).
            2. fsync: 200 appends of 100 bytes to a file in the journal's temporary directory, \
            each followed by fsync; p50 and p99.
            With --backend ethereum the channel phases (3 to 5) run Ethereum-backend channels \
            and their ratios are to that backend's ceiling.
            3. single channel: a devchain in this process, one node here and a peer node in a \
            child process (`parley bench peer`), over loopback TCP with durable journals. \
            Sequential fully countersigned payments for --seconds: updates/s and latency.
            Then --payers tasks paying on that one channel at once for --seconds: payments/s, \
            how many payments each update carried (they coalesce) and latency.
            4. many channels: --channels channels between the same two processes, a payment in \
            flight on every one at once for --seconds: aggregate updates/s and its ratio to the \
            crypto ceiling.
            5. memory: the peer's resident memory before and after --idle-channels more channels \
            are open, per channel.

            See Docs/Performance.md for the method, the numbers and what limits each.

            Examples:
              swift build -c release --product parley && .build/release/parley bench
              parley bench --seconds 1 --channels 20 --idle-channels 100 --json
            """,
        subcommands: [BenchPeerCommand.self])

    @Option(name: .long, help: "How long each throughput phase measures (after a short warm-up).")
    var seconds = 5.0

    @Option(name: .long, help: "Tasks paying at once on one channel in the concurrent-payers phase.")
    var payers = 64

    @Option(name: .long, help: "Channels with a payment in flight at once in the many-channel phase.")
    var channels = 1_000

    @Option(name: .long, help: "Extra idle channels opened to measure the peer's memory per channel.")
    var idleChannels = 10_000

    @Option(
        name: .long,
        help: "fsync: every journal append waits for fsync (the default, as a node runs). none: write(2) only, not crash-safe.")
    var durability: Durability = .fsync

    @Option(
        name: .long,
        help: "The settlement backend the channel phases run on: ed25519 (the default) or ethereum (secp256k1, EIP-712).")
    var backend: ChannelBackendID = .ed25519

    @Flag(
        name: .long,
        help: #"Print one JSON object: {"cryptoCeilingPerSecond", "signPerSecond", "verifyPerSecond", "cores", "backends": [...], "channelBackend", "fsyncMicrosP50", "fsyncMicrosP99", "single": {...}, "concurrent": {...}, "multi": {...}, "memory": {...}, "durability", "build", "seconds", ...}."#)
    var json = false

    func validate() throws {
        guard seconds > 0, seconds <= 600 else { throw ValidationError("--seconds must be in (0, 600].") }
        guard (1...10_000).contains(payers) else { throw ValidationError("--payers must be 1...10000.") }
        guard (1...20_000).contains(channels) else { throw ValidationError("--channels must be 1...20000.") }
        guard (1...100_000).contains(idleChannels) else { throw ValidationError("--idle-channels must be 1...100000.") }
    }

    func run() async throws {
        let result: BenchReport
        do {
            result = try await BenchRun(
                seconds: seconds, payers: payers, channels: channels, idleChannels: idleChannels, durability: durability, backend: backend,
                narrate: !json
            ).run()
        } catch {
            throw failure("bench", "\(error)")
        }
        if json {
            try printJSON(result)
        } else {
            // The phases were printed as they finished; close with the verdict.
            print(result.verdict)
        }
    }
}
