import ArgumentParser
import Foundation
import Logging
import ParleyChannel
import ParleyCrypto
import ParleyDevchain
import ParleyJournal
import ParleyNode
import ParleySubprocess
import ParleyTransport

#if canImport(Glibc)
import Glibc
import ParleyWire
#endif

/// `parley bench peer`: the other side of `parley bench`, in a process of its own.
///
/// Starts a node that listens on loopback, accepts every channel and every update, and
/// prints one JSON line (`BenchPeerLine`) with its key and address. Then it answers
/// `stats` on stdin with a line carrying its resident memory and how many channels it
/// holds funded, and exits when stdin ends (so it never outlives `parley bench`).
struct BenchPeerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peer",
        abstract: "The peer node of `parley bench`, run as its child process.",
        shouldDisplay: false)

    @Option(name: .long, help: ArgumentHelp("The devchain to settle on.", valueName: "devchain://host:port"))
    var chain: String

    @Option(name: .long, help: ArgumentHelp("Journal directory (must be fresh).", valueName: "dir"))
    var journal: String

    @Option(name: .long, help: "Units to mint to our chain account first.")
    var mint: Amount

    @Option(name: .long, help: "fsync or none.")
    var durability: Durability = .fsync

    func run() async throws {
        // Whatever happens, end with the parent: stdin is its pipe.
        let commands = standardInputLines(threadName: "bench-peer-stdin")
        let loop: EventLoop
        let node: Node
        do {
            loop = try EventLoop(name: "bench-peer")
            let key = SigningKey()
            let client = try await DevchainClient.connect(to: chain, identity: key, loop: loop)
            _ = try await client.mint(mint, to: key.publicKey)
            node = try await Node(
                identity: key, listen: .loopbackIPv4(port: 0), journal: journal, settlement: client,
                policy: BenchPolicy.node(durability), logger: Logger(label: "parley.bench.peer") { _ in SwiftLogNoOpLogHandler() },
                loop: loop)
        } catch {
            throw failure("bench peer", "\(error)")
        }
        node.setOpenHandler { _ in true }
        node.setUpdateHandler { _ in .accept }
        guard let address = await node.listeningAddress else { throw failure("bench peer", "the node is not listening") }
        try writeUnbuffered(
            jsonLine(BenchPeerLine(
                key: node.publicKey.hex, ethereumAddress: node.ethereumAddress.checksummed, address: address.description,
                pid: getpid())))
        for await command in commands {
            switch command {
            case "stats":
                let raw = ResidentMemory.bytes() ?? 0
                let trimmed = ResidentMemory.trimmedBytes() ?? 0
                let funded = node.statuses.reduce(0) { $0 + ($1.isFunded ? 1 : 0) }
                try writeUnbuffered(jsonLine(BenchPeerStats(rssBytes: raw, trimmedRssBytes: trimmed, funded: funded)))
            case "trim":
                // A baseline without the free pages malloc kept from earlier phases.
                let trimmed = ResidentMemory.trimmedBytes() ?? 0
                let funded = node.statuses.reduce(0) { $0 + ($1.isFunded ? 1 : 0) }
                try writeUnbuffered(jsonLine(BenchPeerStats(rssBytes: trimmed, trimmedRssBytes: trimmed, funded: funded)))
            case "quit":
                Glibc.exit(0)
            default:
                writeToStandardError("parley bench peer: unknown command \(command)\n")
            }
        }
        // The parent is gone. Every append was durable when acknowledged; nothing to flush.
        Glibc.exit(0)
    }
}

/// The peer's first line.
struct BenchPeerLine: Codable {
    var key: String
    /// The peer's Ethereum settlement address, for Ethereum-backend channels.
    var ethereumAddress: String
    var address: String
    var pid: Int32
}

/// The peer's answer to `stats` or `trim`.
struct BenchPeerStats: Codable {
    var rssBytes: Int
    var trimmedRssBytes: Int
    var funded: Int
}

/// The policy of both bench nodes.
enum BenchPolicy {
    static func node(_ durability: Durability) -> NodePolicy {
        NodePolicy(
            watcher: WatcherPolicy(clockPollInterval: .milliseconds(500), retryDelay: .milliseconds(100)),
            // Thousands of updates queue behind one another at once; none of them is silence.
            proposalTimeout: .seconds(60),
            challengeDuration: 3_600,
            durability: durability,
            session: SessionConfig(),
            // Nobody reads the events: keep the buffer small so it does not count as channel memory.
            eventBuffer: 64,
            // The bench opens thousands of channels between the same two nodes at once.
            opens: .unlimited)
    }
}

/// One line on stdout at once (stdout is a pipe to the parent, which `print` would buffer).
private func writeUnbuffered(_ line: String) throws {
    try FileHandle.standardOutput.write(contentsOf: Data((line + "\n").utf8))
}
