import Foundation
import Logging
import ParleyChannel
import ParleyCrypto
import ParleyDevchain
import ParleyJournal
import ParleyNode
import ParleySubprocess
import ParleyTransport
import ParleyWire

#if canImport(Glibc)
import Glibc
#endif

/// The other side of `parley bench`, run in a process of its own (`parley bench peer`).
///
/// Starts a node that listens on loopback, accepts every channel and every update, and
/// writes one JSON line (`BenchPeerLine`) with its key and address. Then it answers
/// `stats` and `trim` with a line carrying its resident memory and how many channels it
/// holds funded, and exits when `commands` end (so it never outlives `parley bench`).
package enum BenchPeer {
    /// Runs until `commands` end or say `quit`, then exits the process.
    /// - Parameter write: writes one line to the parent, unbuffered.
    package static func run(
        chain: String, journal: String, mint: Amount, durability: Durability,
        commands: AsyncStream<String>, write writeUnbuffered: (String) throws -> Void
    ) async throws -> Never {
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
            throw BenchFailure("\(error)")
        }
        node.setOpenHandler { _ in true }
        node.setUpdateHandler { _ in .accept }
        guard let address = await node.listeningAddress else { throw BenchFailure("the node is not listening") }
        try writeUnbuffered(
            line(BenchPeerLine(
                key: node.publicKey.hex, ethereumAddress: node.ethereumAddress.checksummed, address: address.description,
                pid: getpid())))
        for await command in commands {
            switch command {
            case "stats":
                let raw = ResidentMemory.bytes() ?? 0
                let trimmed = ResidentMemory.trimmedBytes() ?? 0
                let funded = node.statuses.reduce(0) { $0 + ($1.isFunded ? 1 : 0) }
                try writeUnbuffered(line(BenchPeerStats(rssBytes: raw, trimmedRssBytes: trimmed, funded: funded)))
            case "trim":
                // A baseline without the free pages malloc kept from earlier phases.
                let trimmed = ResidentMemory.trimmedBytes() ?? 0
                let funded = node.statuses.reduce(0) { $0 + ($1.isFunded ? 1 : 0) }
                try writeUnbuffered(line(BenchPeerStats(rssBytes: trimmed, trimmedRssBytes: trimmed, funded: funded)))
            case "quit":
                Glibc.exit(0)
            default:
                Terminal.writeError("parley bench peer: unknown command \(command)\n")
            }
        }
        // The parent is gone. Every append was durable when acknowledged; nothing to flush.
        Glibc.exit(0)
    }

    private static func line(_ value: some Encodable) throws -> String {
        String(decoding: try JSONEncoder().encode(value), as: UTF8.self)
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

