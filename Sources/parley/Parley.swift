import ArgumentParser
import Foundation
import ParleyControl
import ParleySubprocess

@main
struct ParleyCLI: AsyncParsableCommand {
    /// This build's version; the protocol versions it speaks are in `--version`'s line.
    static let release = "0.5.0"

    static let configuration = CommandConfiguration(
        commandName: "parley",
        abstract: "Two-party state channels: demos, drills, benchmarks and keys.",
        discussion: """
            Parley keeps a payment or game channel between two peers off-chain, \
            exchanges signed state updates over an encrypted connection, journals \
            every signature, and settles on chain when the other side goes silent \
            or cheats. Run `parley help <command>` for each command's options. \
            Shell completion: `parley --generate-completion-script bash` (or zsh, fish); \
            Docs/Control.md says where to put it.
            """,
        version: "parley \(release) (channel protocol 1, control protocol \(ControlProtocol.version))",
        subcommands: [DemoCommand.self, BenchCommand.self, DrillCommand.self, PlayCommand.self, NodeCommand.self, CtlCommand.self, KeygenCommand.self, EvmCommand.self, JournalCommand.self, TransportCommand.self, DevchainCommand.self, SimCommand.self]
    )

    /// As ArgumentParser's own entry, but a mistyped command gets "did you mean".
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        let names = configuration.subcommands.map { $0._commandName } + ["help"]
        if let first = arguments.first, !first.hasPrefix("-"), !names.contains(first) {
            let guess = ControlCodec.closest(to: first, among: names)
            Terminal.writeError(
                "parley: unknown command '\(first)'" + (guess.map { "; did you mean '\($0)'?" } ?? "")
                    + " (`parley --help` lists the commands)\n")
            Foundation.exit(64)
        }
        do {
            var command = try parseAsRoot(arguments)
            if var asynchronous = command as? AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}
