import Foundation
import ParleyTestSupport
import Testing

/// The command line as a new user meets it (issue 22): every command answers `--help`,
/// its examples fit an 80-column terminal without being wrapped mid-command, `--version`
/// answers, and a mistyped command gets a suggestion.
@Suite("parley --help")
struct CLIHelpTests {
    static let commands = [
        "demo", "bench", "drill", "play", "node", "ctl", "keygen", "evm", "evm devnet", "evm deploy", "journal",
        "journal verify", "transport", "devchain", "sim",
    ]

    @Test(arguments: commands)
    func everyCommandHasHelpWithExamplesThatFitEightyColumns(_ command: String) async throws {
        let result = try await DevchainDaemon.run(command.split(separator: " ").map(String.init) + ["--help"])
        #expect(result.status == 0, "\(command) --help: \(result.stderr)")
        #expect(result.stdout.contains("USAGE:"), "\(command) --help printed no usage")
        let examples = result.stdout.split(separator: "\n").filter { line in
            let trimmed = line.drop { $0 == " " }
            return trimmed.count < line.count && ["parley ", "game-server ", "make "].contains { trimmed.hasPrefix($0) }
        }
        for line in examples {
            #expect(line.count <= 80, "\(command) --help: an example longer than 80 columns is wrapped on a terminal: \(line)")
        }
    }

    @Test func versionAndDidYouMean() async throws {
        let version = try await DevchainDaemon.run(["--version"])
        #expect(version.status == 0)
        #expect(version.stdout.hasPrefix("parley "), "\(version.stdout)")
        #expect(version.stdout.contains("control protocol 1"), "\(version.stdout)")
        let typo = try await DevchainDaemon.run(["nod", "--key", "x"])
        #expect(typo.status != 0)
        #expect(typo.stderr.contains("did you mean 'node'?"), "\(typo.stderr)")
    }
}
