import ArgumentParser
import Foundation
import Logging
import ParleyBench
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
        do {
            try await BenchPeer.run(
                chain: chain, journal: journal, mint: mint, durability: durability, commands: commands, write: writeUnbuffered)
        } catch {
            throw failure("bench peer", "\(error)")
        }
    }
}

/// One line on stdout at once (stdout is a pipe to the parent, which `print` would buffer).
private func writeUnbuffered(_ line: String) throws {
    try FileHandle.standardOutput.write(contentsOf: Data((line + "\n").utf8))
}
