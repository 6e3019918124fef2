import ArgumentParser

@main
struct ParleyCLI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parley",
        abstract: "Two-party state channels: demos, drills, benchmarks and keys.",
        discussion: """
            Parley keeps a payment or game channel between two peers off-chain, \
            exchanges signed state updates over an encrypted connection, journals \
            every signature, and settles on chain when the other side goes silent \
            or cheats. Run `parley help <command>` for each command's options.
            """,
        subcommands: [DemoCommand.self, BenchCommand.self, DrillCommand.self, PlayCommand.self, NodeCommand.self, CtlCommand.self, KeygenCommand.self, EvmCommand.self, JournalCommand.self, TransportCommand.self, DevchainCommand.self, JournalCrashChildCommand.self, SimCommand.self]
    )
}
