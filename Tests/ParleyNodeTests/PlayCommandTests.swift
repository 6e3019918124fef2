import Foundation
import ParleyCrypto
import ParleySubprocess
import ParleyTestSupport
import Testing

/// `parley play` end to end: two processes on one devchain play a scripted game through
/// their stdin; the winner takes both stakes, on chain.
@Suite("parley play", .serialized, .timeLimit(.minutes(2)))
struct PlayCommandTests {
    @Test("X wins the top row; bad input is asked again; payouts follow the result")
    func scriptedGame() async throws {
        let directory = DevchainDaemon.temporaryDirectory()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let daemon = try DevchainDaemon.start(directory: directory + "/chain")
        defer {
            daemon.stop(SIGTERM)
            try? FileManager.default.removeItem(atPath: directory)
        }
        for name in ["alice", "bob"] {
            let made = try await DevchainDaemon.run(["keygen", "--out", "\(directory)/\(name).key"])
            try #require(made.status == 0, "\(made.stderr)")
        }
        let shown = try await DevchainDaemon.run(["keygen", "--show", "\(directory)/bob.key", "--json"])
        let shownFields = try JSONSerialization.jsonObject(with: Data(shown.stdout.utf8)) as? [String: Any]
        let bobKey = try #require(shownFields?["humanForm"] as? String)
        // The same file's Ethereum settlement account, derived from its seed.
        let bobIdentity = try KeyFile.load(from: "\(directory)/bob.key")
        #expect(shownFields?["ethereumAddress"] as? String == bobIdentity.settlementKey.address.checksummed)
        let chain = "devchain://\(daemon.address)"
        // Bob (O) types a bad number, a word, then plays 4 and 5; he answers before Alice moves
        // again, so his lines are read in order.
        let bob = try Self.launch(
            ["play", "--key", "\(directory)/bob.key", "--listen", "127.0.0.1:0", "--journal", "\(directory)/bob",
             "--chain", chain, "--mint", "100", "--stake", "25", "--json"], input: "0\nfour\n4\n5\n")
        defer { bob.process.signal(SIGKILL) }
        // Bob prints where he listens before anything else.
        let bobOut = PipeText(bob.stdout)
        try #require(bobOut.wait(until: Date(timeIntervalSinceNow: 30)) { $0.contains { $0.contains("listening on") } })
        let listening = try #require(bobOut.lines.first { $0.contains("listening on") }?.components(separatedBy: "listening on ").last)
        // Alice (X) tries Bob's cell once (refused by the rules, asked again), then takes the top row.
        let alice = try Self.launch(
            ["play", "--key", "\(directory)/alice.key", "--listen", "127.0.0.1:0", "--journal", "\(directory)/alice",
             "--chain", chain, "--mint", "100", "--stake", "25", "--opponent", "\(bobKey)@\(listening)", "--json"],
            input: "1\n4\n2\n3\n")
        defer { alice.process.signal(SIGKILL) }
        let aliceOut = PipeText(alice.stdout)
        let deadline = Date(timeIntervalSinceNow: 60)
        let (aliceEnded, bobEnded) = try await offPool {
            let ended = (aliceOut.waitForEnd(before: deadline), bobOut.waitForEnd(before: deadline))
            alice.process.waitUntilExit()
            bob.process.waitUntilExit()
            return ended
        }
        #expect(aliceEnded, "alice: \(aliceOut.text)")
        #expect(bobEnded, "bob: \(bobOut.text)")
        #expect(alice.process.termination == .exited(0), "\(aliceOut.text)")
        #expect(bob.process.termination == .exited(0), "\(bobOut.text)")
        let aliceResult = try Self.result(aliceOut)
        let bobResult = try Self.result(bobOut)
        #expect(aliceResult["result"] as? String == "You win")
        #expect(bobResult["result"] as? String == "You lose")
        #expect(aliceResult["payout"] as? Int == 50)
        #expect(bobResult["payout"] as? Int == 0)
        #expect(bobOut.text.contains("Type a number from 1 to 9."))
        #expect(aliceOut.text.contains("taken") || aliceOut.text.contains("exactly one"), "a taken cell is refused: \(aliceOut.text)")
    }

    static func launch(_ arguments: [String], input: String) throws -> (process: SpawnedProcess, stdout: FileHandle) {
        let process = try SpawnedProcess(
            executable: try ParleyExecutable.require(), arguments: arguments, standardInput: .pipe, standardOutput: .pipe,
            standardError: .null)
        let stdin = try #require(process.standardInput)
        try stdin.write(contentsOf: Data(input.utf8))
        try stdin.close()
        return (process, try #require(process.standardOutput))
    }

    static func result(_ out: PipeText) throws -> [String: Any] {
        let line = try #require(out.lines.last { $0.hasPrefix("{") })
        return try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }
}
